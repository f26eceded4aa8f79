"""``snowload deploy kubernetes|spcs``: check the arguments (and the workload of ``--run``),
print what the renderers make, and for ``spcs --execute`` run it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from controller import deploy_k8s, deploy_spcs
from controller.deploy_image import ImageError
from controller.deploy_spcs_execute import DeployFailed, connect, execute
from snowload.exit_codes import ExitCode
from snowload.workload import WorkloadError, load_file


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def checked_workload(path: str | None) -> tuple[Path | None, str | None]:
    """The workload of ``--run``, parsed here so that a bad one is refused before anything
    is deployed (WorkloadError names the file, line and field)."""
    if path is None:
        return None, None
    load_file(path)
    return Path(path), Path(path).read_text(encoding="utf-8")


DEPLOY_NEEDS = ("--compute-pool", "--image", "--workers")
"""What creating the services needs (``--down`` needs only their names)."""


def missing_deploy_arguments(args: argparse.Namespace) -> list[str]:
    return [opt for opt in DEPLOY_NEEDS if getattr(args, opt[2:].replace("-", "_")) is None]


def deploy_main(args: argparse.Namespace) -> int:
    if args.platform == "spcs" and args.down:
        return spcs_down(args)
    try:
        workload, text = checked_workload(args.run)
        if args.platform == "kubernetes":
            docs = deploy_k8s.render(args.image, args.workers, text, args.namespace)
            sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
            return ExitCode.OK
        if missing := missing_deploy_arguments(args):
            fail(
                f"the following arguments are required: {', '.join(missing)} "
                "(only --down goes without them)"
            )
            return ExitCode.BAD_INPUT
        d = deploy_spcs.SpcsDeployment(
            args.compute_pool, args.image, args.workers, args.warehouse, workload
        )
    except (ImageError, ValueError, WorkloadError, OSError) as exc:
        fail(str(exc))
        return ExitCode.BAD_INPUT
    if args.execute and not args.connection:
        fail("--execute needs --connection NAME (a connection in connections.toml)")
        return ExitCode.BAD_INPUT
    if args.reuse and workload is None:
        fail("--reuse runs a workload on running services: it needs --run and not --down")
        return ExitCode.BAD_INPUT
    statements = deploy_spcs.up(d, reuse=args.reuse)
    if not args.execute:
        sys.stdout.write(deploy_spcs.render(statements, deploy_spcs.grants(d)))
        return ExitCode.OK
    try:
        conn = connect(args.connection)
        try:
            execute(
                conn,
                statements,
                args.connection,
                say,
                workers=d.workers,
                workload=workload,
                wait_s=args.wait,
                poll_s=args.poll,
            )
        finally:
            conn.close()
    except DeployFailed as exc:
        fail(str(exc))
        return ExitCode.RUN_FAILED
    if d.job:
        say(
            f"-- the job {d.job} completed: the run passed. Its summary: "
            f"SELECT SYSTEM$GET_SERVICE_LOGS('{d.job}', 0, 'run');"
        )
    else:
        say(
            f"-- READY: {deploy_spcs.CONTROLLER} and {d.workers} x {deploy_spcs.WORKERS} "
            f"(controller {d.controller_host}:{deploy_spcs.PORT})"
        )
    return ExitCode.OK


def spcs_down(args: argparse.Namespace) -> int:
    """``--down``: drop the services by name. The pool, image and worker count are not
    needed (and not checked); ``--run WORKLOAD`` names the job by its file name alone, so
    the file need not exist any more."""
    if args.reuse:
        fail("--reuse runs a workload on running services: it needs --run and not --down")
        return ExitCode.BAD_INPUT
    if args.execute and not args.connection:
        fail("--execute needs --connection NAME (a connection in connections.toml)")
        return ExitCode.BAD_INPUT
    workload = Path(args.run) if args.run else None
    statements = deploy_spcs.down(workload)
    if not args.execute:
        comments = [
            f"Dropping {deploy_spcs.CONTROLLER} deletes its block volume and the results",
            "database on it: export the runs you want to keep first. The stage "
            f"{deploy_spcs.STAGE} is kept.",
        ]
        sys.stdout.write(deploy_spcs.render(statements, comments))
        return ExitCode.OK
    try:
        conn = connect(args.connection)
        try:
            execute(conn, statements, args.connection, say, workload=workload)
        finally:
            conn.close()
    except DeployFailed as exc:
        fail(str(exc))
        return ExitCode.RUN_FAILED
    say(f"-- removed (if present): {', '.join(deploy_spcs.services(workload))}")
    return ExitCode.OK
