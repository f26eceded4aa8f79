"""The ``snowload`` command. Sub-commands are imported lazily so that a worker process
never loads the controller (and neither loads the TUI)."""

from __future__ import annotations

import sys

USAGE = """usage: snowload <command> [options]

commands:
  run WORKLOAD       run a workload headless: local controller + workers, live progress
  controller         the controller daemon (gRPC API, optional local workers)
  worker             a worker process that attaches to a controller
  runs               list, show, compare and export stored runs
  tui                the terminal UI

'snowload <command> --help' describes a command's options.
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] in ("--version", "version"):
        from snowload import __version__

        print(f"snowload {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command == "worker":
        from worker.cli import main as worker_main

        return worker_main(rest)
    if command in ("run", "controller", "runs"):
        from controller.cli import main as controller_main

        return controller_main([command, *rest])
    if command == "tui":
        from tui.app import main as tui_main

        return tui_main(rest)
    print(f"snowload: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
