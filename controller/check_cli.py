"""``snowload check WORKLOAD [--connect]``: validate a workload, print the plan it resolves
to, and optionally have the target compile every query without running it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from controller.console import StdoutConsole
from snowload.durations import format_duration
from snowload.exit_codes import ExitCode
from snowload.workload import Mode, Overrides, Workload, WorkloadError, load_file


def check_main(args: argparse.Namespace) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    overrides = Overrides(
        workers=args.workers,
        connections=args.connections,
        warmup_s=args.warmup,
        duration_s=args.duration,
    )
    try:
        workload = load_file(args.workload, overrides)
    except WorkloadError as exc:
        err.print(f"error: {exc}", markup=False)
        return ExitCode.BAD_INPUT
    plan = plan_dict(workload)
    if args.json and not args.connect:
        print(json.dumps(plan, indent=2))
        return ExitCode.OK
    if not args.json:
        _print_plan(StdoutConsole(soft_wrap=True, highlight=False), workload, plan)
    if not args.connect:
        return ExitCode.OK
    code, results = _connect(workload, Path(args.workload), err)
    if args.json:
        print(json.dumps(plan | {"connect": results}, indent=2))
    return code


def shares(connections: int, workers: int) -> list[int]:
    """Connections per worker, as the controller splits them."""
    base, extra = divmod(connections, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def plan_dict(w: Workload) -> dict[str, Any]:
    load = w.load
    total = sum(q.weight for q in w.queries)
    phases = []
    if load.warmup_s:
        phases.append({"phase": "WARMUP", "duration": format_duration(load.warmup_s)})
    phases.append({"phase": "MEASUREMENT", "duration": format_duration(load.duration_s)})
    out: dict[str, Any] = {
        "name": w.name,
        "target": {"driver": w.target.driver.value}
        | {
            k: getattr(w.target, k)
            for k in ("database", "dsn", "connection")
            if getattr(w.target, k)
        },
        "mode": load.mode.value,
        "workers": load.workers,
        "connections": load.connections,
        "connections_per_worker": shares(load.connections, load.workers),
        "phases": phases,
        "setup_statements": len(w.setup_sql),
        "on_query_failure": load.on_query_failure.value,
        "on_worker_loss": load.on_worker_loss.value,
        "queries": [
            {
                "name": q.name,
                "weight": q.weight,
                "share": round(q.weight / total, 4),
                "params": [p.to_toml_value() for p in q.params],
            }
            for q in w.queries
        ],
    }
    if load.mode is Mode.OPEN:
        out["rate"] = load.rate
        out["arrival"] = load.arrival.value
    if load.stages:
        out["stages"] = [
            {
                "duration": format_duration(s.duration_s),
                "connections": s.connections,
                "rate": s.rate,
            }
            for s in load.stages
        ]
    if load.find_max is not None:
        fm = load.find_max
        out["find_max"] = {"by": fm.by.value, "start": fm.start, "step": fm.step, "max": fm.max}
    return out


def _target(w: Workload) -> dict[str, str]:
    out = {"driver": w.target.driver.value}
    for key in ("database", "dsn", "connection"):
        if value := getattr(w.target, key):
            out[key] = value
    return out


def _print_plan(out: Console, w: Workload, plan: dict[str, Any]) -> None:
    per = plan["connections_per_worker"]
    spread = f"{min(per)}" if min(per) == max(per) else f"{min(per)}-{max(per)}"
    out.print(f"{w.name}: valid", style="bold", markup=False)
    target = plan["target"]
    where = next((f" {k}={v}" for k, v in target.items() if k != "driver"), "")
    out.print(f"  target      {target['driver']}{where}", markup=False)
    out.print(
        f"  load        {plan['mode']}, {plan['workers']} worker(s) x {spread} connection(s) "
        f"= {plan['connections']} connections"
        + (f", {plan['rate']:g} queries/s ({plan['arrival']})" if "rate" in plan else ""),
        markup=False,
    )
    out.print(
        "  phases      " + " -> ".join(f"{p['phase']} {p['duration']}" for p in plan["phases"]),
        markup=False,
    )
    if plan["setup_statements"]:
        out.print(f"  setup       {plan['setup_statements']} statement(s)", markup=False)
    out.print(
        f"  on failure  query: {plan['on_query_failure']}, worker loss: {plan['on_worker_loss']}",
        markup=False,
    )
    table = Table(title="query kinds", title_justify="left")
    for col in ("name", "weight", "share", "parameters"):
        table.add_column(col, justify="right" if col in ("weight", "share") else "left")
    for q in plan["queries"]:
        params = ", ".join(json.dumps(p) for p in q["params"]) or "-"
        table.add_row(q["name"], f"{q['weight']:g}", f"{q['share']:.1%}", params)
    out.print(table)


def _connect(workload: Workload, path: Path, err: Console) -> tuple[int, dict[str, Any]]:
    """Prepare every query on the target; (exit code, results for JSON)."""
    from snowload.workload_parser import Parser
    from worker.drivers import DriverError, prepare_failure
    from worker.dry_run import Outcome, dry_run

    try:
        result = dry_run(workload)
    except DriverError as exc:
        reason = prepare_failure(exc).value
        err.print(f"error: cannot connect to the target ({reason}): {exc}", markup=False)
        return ExitCode.RUN_FAILED, {"connected": False, "reason": reason, "message": str(exc)}
    locate = Parser(str(path), path.read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = []
    code = ExitCode.OK
    for note in result.notes:
        err.print(f"note: {note}", markup=False)
    if result.setup_error:
        line = locate.line_of("setup.sql")
        err.print(f"error: {path}:{line}: setup: {result.setup_error}", markup=False)
        return ExitCode.BAD_INPUT, {"connected": True, "setup_error": result.setup_error}
    for check in result.queries:
        line = locate.line_of(f"query[{check.index}]")
        row = {"name": check.name, "line": line, "outcome": check.outcome.value}
        if check.outcome is Outcome.REJECTED:
            code = ExitCode.BAD_INPUT
            row |= {"category": check.category, "message": check.message}
            err.print(
                f"error: {path}:{line}: query {check.name!r} [{check.category}]: {check.message}",
                markup=False,
            )
        elif check.outcome is Outcome.UNCHECKED:
            row["message"] = check.message
            err.print(f"note: query {check.name!r} not checked: {check.message}", markup=False)
        rows.append(row)
    ok = sum(1 for c in result.queries if c.outcome is Outcome.OK)
    setup = " (after the setup SQL, rolled back)" if result.setup_ran else ""
    err.print(
        f"{workload.target.driver.value}: {ok} of {len(result.queries)} queries prepared{setup}",
        markup=False,
    )
    return code, {"connected": True, "setup_ran": result.setup_ran, "queries": rows}
