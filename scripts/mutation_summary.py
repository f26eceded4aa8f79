"""Scores per module of the last mutation runs: reads `mutmut results --all true` on stdin.

Used by scripts/mutation.sh; the modules are [tool.mutmut] only_mutate of pyproject.toml.
"""

from __future__ import annotations

import sys
import tomllib
from collections import Counter
from pathlib import Path

# A mutant that crashes the test process (add_encoded writes through ctypes) or makes it
# time out is detected as surely as one that fails an assertion.
KILLED = ("killed", "timeout", "segfault")


def main() -> None:
    config = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
    paths: list[str] = config["tool"]["mutmut"]["only_mutate"]
    dotted = {p.removesuffix(".py").replace("/", "."): p for p in paths}
    counts: dict[str, Counter[str]] = {p: Counter() for p in paths}
    others: list[str] = []
    for line in sys.stdin:
        name, _, status = line.strip().rpartition(": ")
        for prefix, path in dotted.items():
            if name.startswith(prefix + "."):
                counts[path][status] += 1
                if status not in (*KILLED, "not checked"):
                    others.append(f"  {status:12} {name}")
    print(f"{'module':32} {'killed':>7} {'checked':>8} {'score':>7}")
    for path, c in counts.items():
        checked = sum(c.values()) - c["not checked"]
        killed = sum(c[k] for k in KILLED)
        score = f"{100 * killed / checked:.1f}%" if checked else "-"
        print(f"{path:32} {killed:7} {checked:8} {score:>7}")
    if others:
        print("not killed:")
        print("\n".join(others))


if __name__ == "__main__":
    main()
