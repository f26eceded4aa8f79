"""The ``snowload`` command. Sub-commands are imported lazily so that a worker process
never loads the controller (and neither loads the TUI)."""

from __future__ import annotations

import os
import sys

from snowload.exit_codes import ExitCode

USAGE = """usage: snowload <command> [options]

commands:
  run WORKLOAD       run a workload headless: local controller + workers, live progress
  check WORKLOAD     validate a workload and print its resolved plan (--connect: prepare
                     every query on the target without running it)
  controller         the controller daemon (gRPC API, optional local workers)
  worker             a worker process that attaches to a controller
  runs               list, show, compare, export and report stored runs
  tui                the terminal UI
  deploy             Kubernetes manifests, Snowpark Container Services SQL (--execute)

'snowload <command> --help' describes a command's options and exit codes.
"""

CONTROLLER_COMMANDS = ("run", "check", "controller", "runs", "deploy")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        code = _dispatch(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _pipe_closed()
    return code


def _pipe_closed() -> int:
    """The reader went away (``snowload runs show ID --json | head -1``): stop quietly.
    stdout now points at /dev/null so that the interpreter's final flush stays silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return ExitCode.PIPE_CLOSED


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return ExitCode.OK if args else ExitCode.BAD_INPUT
    if args[0] in ("--version", "version"):
        from snowload import __version__

        print(f"snowload {__version__}")
        return ExitCode.OK
    command, rest = args[0], args[1:]
    if command == "worker":
        from worker.cli import main as worker_main

        return worker_main(rest)
    if command in CONTROLLER_COMMANDS:
        from controller.cli import main as controller_main

        return controller_main([command, *rest])
    if command == "tui":
        from tui.app import main as tui_main

        return tui_main(rest)
    print(f"snowload: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return ExitCode.BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
