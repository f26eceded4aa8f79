"""``snowload run`` (headless), ``snowload check``, ``snowload controller`` (the daemon),
``snowload runs``: parse the arguments and hand over to the command's module.

Exit codes: snowload/exit_codes.py (the same table is in the README and ``run --help``).
"""

from __future__ import annotations

import argparse
import sys

from controller import cli_parser, runs_cli
from snowload.exit_codes import ExitCode
from snowload.logs import configure

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser.Parser(prog="snowload")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli_parser.add_run(sub)
    cli_parser.add_check(sub)
    cli_parser.add_controller(sub)
    runs_cli.add_parser(sub)
    cli_parser.add_deploy(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    raw = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(cli_parser.join_negative_values(raw))
    except SystemExit as exc:
        return ExitCode.BAD_INPUT if exc.code else ExitCode.OK
    configure(
        getattr(args, "log_level", "WARNING"), "%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if args.command == "run":
        from controller.run_cli import run_main

        return run_main(args)
    if args.command == "check":
        from controller.check_cli import check_main

        return check_main(args)
    if args.command == "runs":
        return runs_cli.main(args)
    if args.command == "deploy":
        from controller.deploy_cli import deploy_main

        return deploy_main(args)
    import asyncio

    from controller.daemon_cli import controller_main

    return asyncio.run(controller_main(args))
