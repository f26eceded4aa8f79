"""scripts/mutation.sh stays runnable: what [tool.mutmut] names exists (mutation testing
itself is too slow for this suite; docs/testing.md)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]


def test_every_module_to_mutate_exists_and_is_documented() -> None:
    documented = (REPO / "docs" / "testing.md").read_text(encoding="utf-8")
    assert CONFIG["only_mutate"]
    for path in CONFIG["only_mutate"]:
        assert (REPO / path).is_file(), path
        assert f"`{path}`" in documented, f"{path} has no row in docs/testing.md"
        package = path.split("/")[0]
        assert package in CONFIG["source_paths"], f"{package} is not copied into mutants/"


def test_every_selected_test_exists() -> None:
    selection = [a for a in CONFIG["pytest_add_cli_args_test_selection"] if a.startswith("tests/")]
    assert selection
    for arg in selection:
        file, _, name = arg.partition("::")
        assert (REPO / file).is_file(), file
        if name:
            text = (REPO / file).read_text(encoding="utf-8")
            assert re.search(rf"^(async )?def {re.escape(name)}\(", text, re.M), arg


def test_the_script_is_executable() -> None:
    assert os.access(REPO / "scripts" / "mutation.sh", os.X_OK)
