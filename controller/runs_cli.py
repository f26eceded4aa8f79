"""``snowload runs list|show|compare|export``: the results store, read directly (``--db``)
or through a controller daemon's API (``--controller``)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from typing import Any

import grpc

from controller import export, render, run_verdicts, runs_profile, runs_queries, runs_report
from controller import lifecycle as lc
from controller.cli_parser import Subparsers, add_client_options, positive_int
from controller.report import stats_dict, summary_dict
from controller.run_tags import tag_problem
from controller.runs_show import SPECTRUM, find, show
from controller.store import RunStore, open_store
from controller.store_remote import RemoteRunStore, RemoteUnsupported
from snowload.channel import ChannelConfig
from snowload.v1 import common_pb2, run_pb2
from snowload.verdicts import TooShort

EXIT_NOT_FOUND = 2
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3


def add_parser(sub: Subparsers) -> None:
    runs = sub.add_parser(
        "runs",
        help="list, show, compare, export and report stored runs",
        description="Stored runs: from the results database (--db) or a controller "
        "daemon's API (--controller). These options go before or after the verb.",
    )
    _store_options(runs, suppress=False)
    verbs = runs.add_subparsers(dest="verb", required=True, metavar="VERB")
    ls = _verb(verbs, "list", "stored runs, newest first")
    ls.add_argument("--limit", type=positive_int, default=50, help="at most this many runs")
    ls.add_argument("--json", action="store_true", help="JSON on stdout")
    show = _verb(verbs, "show", "one run in full")
    show.add_argument("run_id", help="the run's id (as in 'runs list')")
    show.add_argument("--json", action="store_true", help="JSON on stdout")
    show.add_argument(
        "--percentiles",
        action="store_true",
        help="the tail per phase and kind from the stored histograms: "
        + ", ".join(f"p{p:g}" for p in SPECTRUM)
        + ", max",
    )
    cmp_ = _verb(verbs, "compare", "two runs side by side, per query kind")
    cmp_.add_argument("run_a", help="run A (the baseline)")
    cmp_.add_argument("run_b", help="run B (compared with A)")
    cmp_.add_argument("--json", action="store_true", help="JSON on stdout")
    run_verdicts.add_options(cmp_)
    tag = _verb(
        verbs,
        "tag",
        "name a finished run (a baseline for 'snowload run --baseline NAME'); a name "
        "names one run: naming another run with it moves it",
    )
    tag.add_argument("run_id", help="the run's id (or unique id prefix, or another name)")
    tag.add_argument("name", help="letters, digits, '.', '_', '-' or '/'")
    enrich = _verb(
        verbs,
        "enrich",
        "a later pass from Snowflake's AGGREGATE_QUERY_HISTORY (hybrid tables); "
        "connects from this host with its connections.toml",
    )
    enrich.add_argument("run_id", help="the run's id (a Snowflake run)")
    exp = _verb(verbs, "export", "a run as JSON, CSV (per-second series) or hlog")
    exp.add_argument("run_id", help="the run's id")
    exp.add_argument(
        "--format",
        choices=("json", "csv", "hlog"),
        default="json",
        help="json (summary and series), csv (per-second series), hlog (HdrHistogram "
        "interval log); default json",
    )
    exp.add_argument("-o", "--output", help="file to write (default: stdout)")
    tables = exp.add_argument_group(
        "tables", "write the run into database tables instead (docs/results-tables.md)"
    )
    tables.add_argument(
        "--to",
        choices=("postgres", "snowflake"),
        help="create the results tables if absent and replace this run's rows in them",
    )
    tables.add_argument("--dsn", help="--to postgres: libpq connection string")
    tables.add_argument("--connection", help="--to snowflake: a connections.toml entry")
    tables.add_argument(
        "--schema", default="", help="schema of the tables (default: the connection's)"
    )
    runs_report.add_verb(verbs, _verb)
    runs_queries.add_verb(verbs, _verb)
    runs_profile.add_verb(verbs, _verb)


def _verb(verbs: Subparsers, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = verbs.add_parser(name, help=text, description=text)
    _store_options(parser, suppress=True)
    return parser


def _store_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Which store to read; repeated on every verb (``runs list --db X``) with SUPPRESS
    defaults, so that a value given after the verb wins and none given keeps the first."""
    parser.add_argument(
        "--db",
        default=argparse.SUPPRESS if suppress else None,
        help="results database (default: $SNOWLOAD_DB or the data dir)",
    )
    remote = parser.add_argument_group("remote", "read the runs of a controller daemon instead")
    add_client_options(remote, suppress=suppress)


def main(args: argparse.Namespace) -> int:
    store: RunStore
    if args.controller:
        if args.db:
            print("error: --db and --controller name two different stores", file=sys.stderr)
            return EXIT_BAD_INPUT
        if args.verb == "enrich":  # (it writes server timings into the results database)
            print(
                "error: enrich writes to the results database: run it where the database is "
                "(snowload runs enrich --db <the controller's results.db>)",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        store = RemoteRunStore(
            ChannelConfig.from_env(
                args.controller,
                token=args.token,
                tls_ca=args.tls_ca,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                tls=args.tls,
            )
        )
    else:
        store = open_store(args.db)
    try:
        if args.verb == "list":
            return _list(store, args)
        if args.verb == "show":
            return show(store, args)
        if args.verb == "compare":
            return _compare(store, args)
        if args.verb == "enrich":
            return _enrich(store, args)
        if args.verb == "report":
            return runs_report.report(store, args)
        if args.verb == "queries":
            return runs_queries.main(store, args)
        if args.verb == "profile":
            return runs_profile.main(store, args)
        if args.verb == "tag":
            return _tag(store, args)
        return _export(store, args)
    except RemoteUnsupported as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except grpc.RpcError as exc:
        print(
            f"error: controller {args.controller}: {exc.code().name}: {exc.details()}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    finally:
        store.close()


def _measurement(run: run_pb2.Run) -> common_pb2.PhaseSummary | None:
    return next((p for p in run.summary.phases if p.phase == lc.MEASUREMENT), None)


def _list(store: RunStore, args: argparse.Namespace) -> int:
    runs = store.list_runs(args.limit)
    if args.json:
        rows = []
        for run in runs:
            meas = _measurement(run)
            rows.append(
                {
                    "run_id": run.run_id,
                    "name": run.name,
                    "target": run.target,
                    "mode": common_pb2.LoadMode.Name(run.mode).removeprefix("LOAD_MODE_").lower(),
                    "state": lc.state_name(run.state),
                    "reason": run.reason,
                    "create_time": run.create_time.ToJsonString(),
                    "duration_s": round(render.duration_s(run), 3),
                    "slo_passed": run.slo_passed if run.slo else None,
                    "measurement": stats_dict(meas.overall) if meas else None,
                }
            )
        print(json.dumps(rows, indent=2))
        return 0
    render.print_runs(runs)
    return 0


METRICS = ("qps", "p50_ms", "p95_ms", "p99_ms", "error_rate")


def compare(a: run_pb2.Run, b: run_pb2.Run) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per kind ('all' first): each metric for A and B, absolute and relative delta."""
    ma, mb = _measurement(a), _measurement(b)
    kinds = ["all", *sorted(set(ma.by_kind if ma else {}) | set(mb.by_kind if mb else {}))]
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for kind in kinds:
        sa = _stats(ma, kind)
        sb = _stats(mb, kind)
        out[kind] = {
            metric: _delta(sa[metric] if sa else None, sb[metric] if sb else None)
            for metric in METRICS
        }
    # mode-specific rows: open model schedule, find_max conclusion
    mode: dict[str, dict[str, float | None]] = {}
    if (ma is not None and ma.HasField("lag")) or (mb is not None and mb.HasField("lag")):
        for name in ("target_rate", "achieved_rate", "lag_p99_ms", "service_p99_ms", "dropped"):
            mode[name] = _delta(_open_figure(ma, name), _open_figure(mb, name))
    if a.find_max.concluded or b.find_max.concluded:
        for name in ("best_level", "best_qps", "best_p95_ms"):
            mode[f"find_max_{name}"] = _delta(_find_max_figure(a, name), _find_max_figure(b, name))
    if mode:
        out["mode"] = mode
    return out


def _open_figure(phase: common_pb2.PhaseSummary | None, name: str) -> float | None:
    if phase is None:
        return None
    if name in ("lag_p99_ms", "service_p99_ms"):
        stats = phase.lag if name == "lag_p99_ms" else phase.service
        return float(stats.p99_ms)
    return float(getattr(phase, name))


def _find_max_figure(run: run_pb2.Run, name: str) -> float | None:
    result = run.find_max
    if not result.concluded:
        return None
    if name == "best_level":
        return float(result.best_level)
    return float(result.best.qps if name == "best_qps" else result.best.p95_ms)


def _delta(va: float | None, vb: float | None) -> dict[str, float | None]:
    delta = vb - va if va is not None and vb is not None else None
    rel = delta / va if delta is not None and va else None
    return {"a": va, "b": vb, "delta": delta, "relative": rel}


def _stats(summary: common_pb2.PhaseSummary | None, kind: str) -> dict[str, Any] | None:
    if summary is None:
        return None
    if kind == "all":
        return stats_dict(summary.overall)
    return stats_dict(summary.by_kind[kind]) if kind in summary.by_kind else None


def _compare(store: RunStore, args: argparse.Namespace) -> int:
    a, b = find(store, args.run_a), find(store, args.run_b)
    if a is None or b is None:
        return EXIT_NOT_FOUND
    result = compare(a, b)
    notes: list[str] = []
    method: dict[str, object] | None = None
    words: dict[str, str] = {}
    try:
        found = run_verdicts.verdicts(store, a, b, seed=args.seed, resamples=args.resamples)
    except TooShort as exc:
        notes.append(f"no verdicts: {exc}")
    else:
        run_verdicts.merge_into(result, found)
        notes += found.notes
        method = found.as_dict()["method"]  # type: ignore[assignment]
        words = found.verdicts()
    if args.json:
        out = {
            "a": a.run_id,
            "b": b.run_id,
            "verdicts": words,
            "by_kind": result,
            "method": method,
            "notes": notes,
        }
        print(json.dumps(out, indent=2))
        return 0
    render.print_compare(a, b, result)
    if words:
        print("B against A: " + "; ".join(f"{kind}: {word}" for kind, word in words.items()))
    for note in notes:
        print(f"note: {note}")
    if method is not None:
        print(
            f"95% intervals: bootstrap over {method['seconds_a']} and {method['seconds_b']} full "
            f"seconds of MEASUREMENT ({method['resamples']} resamples, seed {method['seed']})"
        )
    return 0


def _tag(store: RunStore, args: argparse.Namespace) -> int:
    problem = tag_problem(args.name)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    run = find(store, args.run_id)
    if run is None:
        return EXIT_NOT_FOUND
    if not lc.is_terminal(run.state):
        print(
            f"error: run {run.run_id} is still active: name it once it has ended", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    store.tag(args.name, run.run_id)
    print(f"run {run.run_id} is now {args.name!r}")
    return 0


def _enrich(store: RunStore, args: argparse.Namespace) -> int:
    from snowload.workload import Driver, parse_json
    from worker.enrichment import AggregateEnricher, Window

    run = find(store, args.run_id)
    if run is None:
        return EXIT_NOT_FOUND
    workload = parse_json(run.workload_json)
    if workload.target.driver is not Driver.SNOWFLAKE:
        print(f"error: run {run.run_id} is not a Snowflake run", file=sys.stderr)
        return EXIT_NOT_FOUND
    start = run.start_time if run.HasField("start_time") else run.create_time
    end = run.end_time if run.HasField("end_time") else run.create_time
    enricher = AggregateEnricher(workload)
    try:
        found = enricher.collect(
            Window(run.run_id, start.ToNanoseconds(), end.ToNanoseconds()), time.monotonic() + 300
        )
    finally:
        enricher.close()
    if found.status != common_pb2.ENRICHMENT_STATUS_COMPLETED:
        print(f"error: {found.message}", file=sys.stderr)
        return 1
    run.server.CopyFrom(found)
    run.enrichment = found.status
    store.put(run)
    print(f"run {run.run_id}: {found.message}")
    return 0


def _export(store: RunStore, args: argparse.Namespace) -> int:
    if getattr(args, "to", None):
        return _export_tables(store, args)
    run = find(store, args.run_id)
    if run is None:
        return EXIT_NOT_FOUND
    buf = io.StringIO()
    if args.format == "json":
        out = summary_dict(run)
        out["series"] = [export.point_row(p) for p in store.series(run.run_id)]
        out["queries"] = export.queries_rows(store, run.run_id)
        json.dump(out, buf, indent=2)
        buf.write("\n")
    elif args.format == "csv":
        export.write_csv(store.series(run.run_id), buf)
    else:
        export.write_hlog(run, store, buf)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
    else:
        sys.stdout.write(buf.getvalue())
    return 0


def _export_tables(store: RunStore, args: argparse.Namespace) -> int:
    from controller.results_export import Destination, ExportError, Sink, export_run

    try:
        dest = Destination(
            Sink(args.to), dsn=args.dsn or "", connection=args.connection or "", schema=args.schema
        )
        done = export_run(store, args.run_id, dest)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.refused else 1
    print(f"run {done.run_id} exported to {dest.describe()}: {done.describe()}")
    return 0
