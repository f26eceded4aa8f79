"""The TUI talks to a controller only over gRPC: importing it (every module of it) in a
fresh interpreter loads no ``controller`` and no ``worker`` module."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import tui

REPO = Path(__file__).resolve().parent.parent


def tui_modules() -> list[str]:
    names = ["tui"]
    for info in pkgutil.walk_packages(tui.__path__, prefix="tui."):
        names.append(info.name)
    return sorted(names)


def test_every_tui_module_loads_without_controller_or_worker() -> None:
    modules = tui_modules()
    assert {"tui.app", "tui.client", "tui.screens.live", "tui.widgets.plots"} <= set(modules)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('controller', 'worker'))\n"
        "print(json.dumps({'bad': bad, 'textual': 'textual' in sys.modules,"
        " 'loaded': sorted(m for m in sys.modules if m.startswith('tui'))}))\n"
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
    result = json.loads(proc.stdout)
    assert result["bad"] == []
    # the probe did import what it was asked to
    assert result["textual"] is True
    assert set(modules) <= set(result["loaded"])


def test_snowload_tui_entry_point_parses_its_options() -> None:
    from tui.app import build_parser, main

    args = build_parser().parse_args(["--controller", "127.0.0.1:7070"])
    assert args.controller == "127.0.0.1:7070"
    assert main(["--controller", "not an address"]) == 2
    assert main(["--help"]) == 0
