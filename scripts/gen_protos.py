"""Regenerate snowload/v1/*_pb2*.py from protos/ (the one command: python scripts/gen_protos.py).

With --check, regenerate into a temporary folder and fail if the committed files differ.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT_PACKAGE = Path("snowload") / "v1"


def generate(out_root: Path) -> list[Path]:
    protos = sorted(p.relative_to(PROTO_ROOT) for p in (PROTO_ROOT / OUT_PACKAGE).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_root / OUT_PACKAGE).glob("*_pb2*.py*"))


def main() -> int:
    check = "--check" in sys.argv[1:]
    if not check:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = []
        committed = {p.name for p in (ROOT / OUT_PACKAGE).glob("*_pb2*.py*")}
        for path in fresh:
            mine = ROOT / OUT_PACKAGE / path.name
            if not mine.exists() or not filecmp.cmp(path, mine, shallow=False):
                stale.append(path.name)
        stale += sorted(committed - {p.name for p in fresh})
    if stale:
        print(f"generated code is stale: {', '.join(stale)}; run python scripts/gen_protos.py")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
