"""The repository's static checks, each run as the README's developer would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUF = REPO / "node_modules" / ".bin" / "buf"


def check(*command: str | Path) -> None:
    proc = subprocess.run(
        [str(part) for part in command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        shown = " ".join(str(part) for part in command)
        pytest.fail(
            f"`{shown}` exited with {proc.returncode}\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )


def test_ruff_check() -> None:
    check(sys.executable, "-m", "ruff", "check", ".")


def test_ruff_format() -> None:
    check(sys.executable, "-m", "ruff", "format", "--check", ".")


def test_mypy() -> None:
    check(sys.executable, "-m", "mypy")  # packages and strictness come from pyproject.toml


def test_buf_lint() -> None:
    if not BUF.exists():
        pytest.fail(f"{BUF} is missing: run `npm ci` in {REPO}", pytrace=False)
    check(BUF, "lint")


def test_generated_protobuf_code_is_current() -> None:
    check(sys.executable, "scripts/gen_protos.py", "--check")
