"""Layering: a worker never loads the controller or the TUI, the controller never loads
the TUI or Textual, and the ``snowload`` entry point loads none of them up front.

Imports are checked twice: at run time in a fresh interpreter (what actually gets loaded)
and statically over every source file (which also catches imports inside functions).
"""

from __future__ import annotations

import ast
import fnmatch
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def modules_after(*imports: str) -> set[str]:
    """Names in sys.modules after importing ``imports`` in a fresh interpreter."""
    code = (
        "import json, sys\n"
        + "".join(f"import {name}\n" for name in imports)
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def matching(modules: set[str], patterns: tuple[str, ...]) -> list[str]:
    """Modules whose top-level package matches one of the glob ``patterns``."""
    return sorted(m for m in modules if any(fnmatch.fnmatch(m.split(".")[0], p) for p in patterns))


@pytest.mark.parametrize(
    ("imports", "forbidden"),
    [
        (
            ("worker", "worker.agent", "worker.executor", "worker.cli"),
            # numpy: only the controller merges histograms (snowload.hdr loads it then)
            ("controller*", "tui*", "textual*", "numpy*"),
        ),
        (("controller", "controller.cli", "controller.server"), ("textual*", "tui*")),
        (("snowload.cli",), ("controller*", "worker*", "textual*")),
    ],
    ids=["worker", "controller", "snowload.cli"],
)
def test_runtime_imports_stay_in_their_layer(
    imports: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    loaded = modules_after(*imports)
    assert set(imports) <= loaded  # the probe really imported what it was asked to
    assert matching(loaded, forbidden) == []


def test_the_runtime_probe_sees_lazily_loaded_layers() -> None:
    # the control for the test above: importing a layer does show up in the probe
    loaded = modules_after("snowload.cli", "worker.cli")
    assert matching(loaded, ("worker*",)) != []
    assert matching(loaded, ("controller*",)) == []


# ------------------------------------------------------------------------------ statically


def imported_modules(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, wherever it is: at the
    top, inside functions, and ``importlib.import_module("...")`` / ``__import__("...")``
    with a literal name. ``package`` is the file's package (for relative imports)."""
    parts = package.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - (node.level - 1)]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            else:
                yield node.lineno, node.module or ""
        elif isinstance(node, ast.Call) and node.args:
            func, first = node.func, node.args[0]
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                yield node.lineno, str(first.value)


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(REPO).parent.parts)


def forbidden_imports(package: str, forbidden: tuple[str, ...]) -> tuple[int, list[str]]:
    files = sorted((REPO / package).rglob("*.py"))
    found = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        for line, name in imported_modules(source, package_of(path)):
            if any(fnmatch.fnmatch(name.split(".")[0], p) for p in forbidden):
                found.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    return len(files), found


def test_no_worker_source_imports_the_controller_or_the_tui() -> None:
    count, found = forbidden_imports("worker", ("controller*", "tui*", "textual*"))
    assert count >= 8  # agent, cli, executor, generators, drivers, ...
    assert found == []


def test_no_controller_source_imports_textual_or_the_tui() -> None:
    count, found = forbidden_imports("controller", ("textual*", "tui*"))
    assert count >= 8
    assert found == []


def test_the_static_check_catches_lazy_and_dynamic_imports() -> None:
    source = """\
import os

def later():
    import controller.runs
    from tui import app
    from ..controller import lifecycle
    return importlib.import_module("textual.app"), __import__("tui")
"""
    names = [name for _, name in imported_modules(source, "worker.drivers")]
    assert names == ["os", "controller.runs", "tui", "worker.controller", "textual.app", "tui"]
