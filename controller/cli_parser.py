"""The argument parser of ``snowload run|check|controller|runs``.

Conventions: every option and positional has help; an argument error prints the usage of
the (sub)command it belongs to; options of a command group (``runs --db``) are accepted
before or after the sub-command; a duration option takes a negative-looking value
(``--duration -5s``) so that it can say what is wrong with it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from typing import Any, NoReturn, TypeAlias

from controller.gate import margin_arg
from snowload.channel import TOKEN_ENV
from snowload.durations import parse_duration
from snowload.exit_codes import describe as exit_codes

Subparsers: TypeAlias = "argparse._SubParsersAction[Any]"
DB_HELP = "results database (default: $SNOWLOAD_DB, else <data dir>/results.db)"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
VALUE_OPTIONS = frozenset({"--duration", "--warmup", "--workers", "--connections", "--limit"})
_NEGATIVE = re.compile(r"-\d")

RUN_DESCRIPTION = """\
Run a workload headless: a local controller and local worker processes (or, with
--controller, a controller daemon and its workers), with live progress.

Progress and the summary table go to stderr; with --json the summary is also printed as
JSON on stdout (and only the JSON goes there). Ctrl-C stops the run cleanly (it ends
CANCELLED and what was measured is reported); a second Ctrl-C stops waiting for it.
"""


class Parser(argparse.ArgumentParser):
    """Unrecognised arguments are reported with the usage of the innermost sub-command
    (argparse reports them against the top-level parser)."""

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self.innermost(ns).error(f"unrecognized arguments: {' '.join(extras)}")
        return ns

    def innermost(self, ns: argparse.Namespace) -> argparse.ArgumentParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(ns, action.dest, None) or "")
                if isinstance(chosen, Parser):
                    return chosen.innermost(ns)
                if chosen is not None:
                    return chosen  # type: ignore[no-any-return]
        return self

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def join_negative_values(argv: list[str]) -> list[str]:
    """``--duration -5s`` -> ``--duration=-5s``: argparse would take '-5s' for an option
    and say only "expected one argument"."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in VALUE_OPTIONS and i + 1 < len(argv) and _NEGATIVE.match(argv[i + 1]):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def log_level_arg(parser: argparse.ArgumentParser | Any, default: str) -> None:
    parser.add_argument(
        "--log-level",
        default=default,
        type=str.upper,
        choices=LOG_LEVELS,
        help=f"log verbosity on stderr (default {default}); local workers get the same",
    )


def add_client_options(parser: argparse.ArgumentParser | Any, *, suppress: bool) -> None:
    """How to reach a controller daemon. ``suppress``: leave the option out of the
    namespace when it is not given (for options repeated after a sub-command)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--controller", metavar="HOST:PORT", default=default(None), help="the daemon's address"
    )
    parser.add_argument(
        "--token",
        default=default(None),
        help="bearer token for the daemon (default: $SNOWLOAD_TOKEN)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=default(False),
        help="TLS with the system trust store",
    )
    parser.add_argument(
        "--tls-ca", default=default(None), help="PEM CA of the daemon's certificate"
    )
    parser.add_argument(
        "--tls-cert", default=default(None), help="PEM client certificate (mutual TLS)"
    )
    parser.add_argument("--tls-key", default=default(None), help="PEM client key (mutual TLS)")


def add_run(sub: Subparsers) -> None:
    run = sub.add_parser(
        "run",
        help="run a workload headless with local workers",
        description=RUN_DESCRIPTION,
        epilog=exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("workload", help="workload file (TOML)")
    run.add_argument("--workers", type=int, help="worker processes (overrides the file)")
    run.add_argument("--connections", type=int, help="total connections (overrides the file)")
    run.add_argument(
        "--warmup",
        type=duration_arg,
        help="warmup, e.g. 5s or 5 (a bare number is seconds; 0 skips it)",
    )
    run.add_argument(
        "--duration",
        type=duration_arg,
        help="measurement duration, e.g. 30s, 1m30s or 90 (a bare number is seconds)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="also print the summary as JSON on stdout (progress and table stay on stderr)",
    )
    run.add_argument("--db", help=DB_HELP)
    log_level_arg(run, "WARNING")
    gate = run.add_argument_group(
        "baseline", "gate the run against an earlier one (exit 5 on a significant regression)"
    )
    gate.add_argument(
        "--baseline",
        metavar="RUN_OR_NAME",
        help="a stored run (id, unique id prefix, or a name given by 'snowload runs tag') "
        "of the same workload to compare with",
    )
    gate.add_argument(
        "--max-regression",
        type=margin_arg,
        default=0.10,
        metavar="PCT",
        help="how much worse than the baseline p95, p99, QPS or error rate may be "
        "(significantly so) before the run fails with exit 5 (default 10%%)",
    )
    gate.add_argument(
        "--force",
        action="store_true",
        help="compare with a baseline of a different workload anyway",
    )
    remote = run.add_argument_group(
        "remote", "run on a controller daemon and its workers instead of local ones"
    )
    add_client_options(remote, suppress=False)


def add_check(sub: Subparsers) -> None:
    check = sub.add_parser(
        "check",
        help="validate a workload and print its resolved plan",
        description="Validate a workload file and print the plan it resolves to: workers, "
        "connections per worker, phases, query kinds with weights and parameters. With "
        "--connect, open one connection to the target from this host and prepare every "
        "query without running it.",
        epilog="exit codes:\n  0    the workload is valid (and every query prepared)\n"
        "  2    the workload is invalid, or the target rejects a query (--connect)\n"
        "  3    --connect: the target could not be reached (or refused the login)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("workload", help="workload file (TOML)")
    check.add_argument(
        "--connect",
        action="store_true",
        help="connect to the target and prepare every query (nothing runs, setup included)",
    )
    check.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")
    check.add_argument("--workers", type=int, help="worker processes (overrides the file)")
    check.add_argument("--connections", type=int, help="total connections (overrides the file)")
    check.add_argument("--warmup", type=duration_arg, help="warmup (overrides the file)")
    check.add_argument(
        "--duration", type=duration_arg, help="measurement duration (overrides the file)"
    )


def add_controller(sub: Subparsers) -> None:
    ctl = sub.add_parser(
        "controller",
        help="run the controller daemon",
        description="The controller daemon: the gRPC API on one port, the results store, "
        "optional local workers. Workers anywhere attach to it with 'snowload worker'.",
    )
    ctl.add_argument(
        "--listen", default="127.0.0.1:7070", help="HOST:PORT to bind (default 127.0.0.1:7070)"
    )
    ctl.add_argument("--local-workers", type=int, default=0, help="start N local worker processes")
    ctl.add_argument("--db", help=DB_HELP)
    ctl.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV, ""),
        help="bearer token every client must send (default: $SNOWLOAD_TOKEN)",
    )
    ctl.add_argument("--tls-cert", default="", help="PEM certificate chain: serve TLS")
    ctl.add_argument("--tls-key", default="", help="PEM private key for --tls-cert")
    ctl.add_argument(
        "--tls-client-ca", default="", help="PEM CA: require client certificates (mutual TLS)"
    )
    ctl.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond loopback without a token",
    )
    ctl.add_argument(
        "--max-active-runs", type=int, default=16, help="refuse new runs beyond this many"
    )
    ctl.add_argument(
        "--loss-timeout",
        type=duration_arg,
        default=3.0,
        help="a worker silent for longer than this is lost (default 3s)",
    )
    ctl.add_argument(
        "--parent-pid",
        type=int,
        default=0,
        help="shut down (cleanly) when this process dies, e.g. the TUI that started it",
    )
    log_level_arg(ctl, "INFO")
    ctl.add_argument(
        "--export-to",
        metavar="postgres:DSN|snowflake:CONNECTION",
        default="",
        help="write every finished run into results tables there (docs/results-tables.md)",
    )
    ctl.add_argument("--export-schema", default="", help="--export-to: schema of the tables")
    ctl.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        default="",
        help="serve Prometheus metrics on this address (e.g. 127.0.0.1:9464); beyond "
        "loopback it needs --token (scrapes send it as a bearer token) or --insecure",
    )
    ctl.add_argument(
        "--metrics-retention",
        type=duration_arg,
        default=600.0,
        help="how long a finished run's series stay on the metrics endpoint (default 10m)",
    )


DEPLOY_EPILOG = """\
exit codes:
  0    rendered (or, with --execute, deployed and READY; the job's run passed)
  2    bad arguments: an image without a tag, an invalid workload file, ...
  3    --execute: Snowflake refused a statement, a service did not become READY, or the
       job's run failed (its exit code is in the job's log)"""


def add_deploy(sub: Subparsers) -> None:
    deploy = sub.add_parser(
        "deploy",
        help="render (or run) a deployment: Kubernetes manifests, Snowpark Container Services",
        description="Render what runs snowload on a platform: a controller, N workers and, "
        "with --run, a headless run of a workload whose exit status is the run's.",
    )
    where = deploy.add_subparsers(dest="platform", required=True, metavar="PLATFORM")
    k8s = where.add_parser(
        "kubernetes",
        help="manifests for 'kubectl apply -f -'",
        description=textwrap.fill(
            "Print the manifests of deploy/kubernetes/ with this image and number of "
            "workers (and, with --run, a ConfigMap holding the workload and a Job that runs it) "
            "for 'kubectl apply -f -'. Credentials come from Secrets (deploy/README.md).",
            88,
        ),
        epilog=DEPLOY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k8s.add_argument(
        "--image", required=True, help="image with a tag, e.g. reg.example/snowload:0.1.0"
    )
    k8s.add_argument("--workers", type=positive_int, required=True, help="worker pods")
    k8s.add_argument("--run", metavar="WORKLOAD", help="also a Job that runs this workload")
    k8s.add_argument("--namespace", default="snowload", help="namespace (default snowload)")
    spcs = where.add_parser(
        "spcs",
        help="SQL for Snowpark Container Services (or run it: --execute)",
        description=textwrap.fill(
            "Print the SQL that creates the controller and worker services (and, "
            "with --run, a job service that runs the workload), the grants it needs as "
            "comments. --execute runs it through the connector and waits until the services "
            "are READY; --down removes what it creates and needs only the services' names "
            "(--run WORKLOAD for the job; --execute --connection NAME to run it).",
            88,
        ),
        epilog=DEPLOY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # required to deploy, not to --down (controller/deploy_cli.py says which are missing)
    spcs.add_argument("--compute-pool", help="compute pool of the services (not for --down)")
    spcs.add_argument(
        "--image",
        help="image in the account's repository: /db/schema/repo/snowload:TAG (not for --down)",
    )
    spcs.add_argument("--workers", type=positive_int, help="worker instances (not for --down)")
    spcs.add_argument("--warehouse", default="", help="query warehouse of the workers and the job")
    spcs.add_argument(
        "--run", metavar="WORKLOAD", help="also a job service that runs this workload"
    )
    spcs.add_argument(
        "--reuse",
        action="store_true",
        help="with --run: the services run already; only upload the workload and run the job",
    )
    spcs.add_argument("--down", action="store_true", help="remove what the deployment creates")
    spcs.add_argument(
        "--execute", action="store_true", help="run the statements (needs --connection)"
    )
    spcs.add_argument("--connection", help="connection name in connections.toml (--execute)")
    spcs.add_argument(
        "--wait", type=duration_arg, default=900.0, help="--execute: READY deadline (default 15m)"
    )
    spcs.add_argument(
        "--poll",
        type=duration_arg,
        default=5.0,
        help="--execute: status poll interval (default 5s)",
    )
