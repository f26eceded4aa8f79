"""``snowload runs list|show|compare|export``: the results store, read directly (``--db``)
or through a controller daemon's API (``--controller``)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from datetime import UTC
from typing import Any, TextIO

import grpc
from hdrh.log import HistogramLogWriter
from rich.console import Console
from rich.table import Table

from controller import lifecycle as lc
from controller.report import stats_dict, summary_dict, summary_table
from controller.store import RunStore, open_store
from controller.store_remote import RemoteRunStore, RemoteUnsupported
from snowload import hdr
from snowload.channel import ChannelConfig
from snowload.v1 import common_pb2, run_pb2

EXIT_NOT_FOUND = 2
SPECTRUM = hdr.SPECTRUM
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("runs", help="list, show, compare and export stored runs")
    runs.add_argument("--db", help="results database (default: $SNOWLOAD_DB or the data dir)")
    remote = runs.add_argument_group("remote", "read the runs of a controller daemon instead")
    remote.add_argument("--controller", metavar="HOST:PORT", help="the daemon's address")
    remote.add_argument(
        "--token", default=None, help="bearer token for the daemon (default: $SNOWLOAD_TOKEN)"
    )
    remote.add_argument("--tls", action="store_true", help="TLS with the system trust store")
    remote.add_argument("--tls-ca", default=None, help="PEM CA of the daemon's certificate")
    remote.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    remote.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    verbs = runs.add_subparsers(dest="verb", required=True)
    ls = verbs.add_parser("list", help="stored runs, newest first")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    show = verbs.add_parser("show", help="one run in full")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--percentiles",
        action="store_true",
        help="the tail per phase and kind from the stored histograms: "
        + ", ".join(f"p{p:g}" for p in SPECTRUM)
        + ", max",
    )
    cmp_ = verbs.add_parser("compare", help="two runs side by side, per query kind")
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.add_argument("--json", action="store_true")
    enrich = verbs.add_parser(
        "enrich",
        help="a later pass from Snowflake's AGGREGATE_QUERY_HISTORY (hybrid tables); "
        "connects from this host with its connections.toml",
    )
    enrich.add_argument("run_id")
    exp = verbs.add_parser("export", help="a run as JSON, CSV (per-second series) or hlog")
    exp.add_argument("run_id")
    exp.add_argument("--format", choices=("json", "csv", "hlog"), default="json")
    exp.add_argument("-o", "--output", help="file to write (default: stdout)")


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
            return _show(store, args)
        if args.verb == "compare":
            return _compare(store, args)
        if args.verb == "enrich":
            return _enrich(store, args)
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


def _find(store: RunStore, run_id: str) -> run_pb2.Run | None:
    run = store.find(run_id)
    if run is None:
        print(f"error: no run {run_id!r} in {getattr(store, 'path', 'the store')}", file=sys.stderr)
    return run


def _measurement(run: run_pb2.Run) -> common_pb2.PhaseSummary | None:
    return next((p for p in run.summary.phases if p.phase == lc.MEASUREMENT), None)


def _duration_s(run: run_pb2.Run) -> float:
    if run.HasField("end_time") and run.HasField("start_time"):
        return (run.end_time.ToNanoseconds() - run.start_time.ToNanoseconds()) / 1e9
    return 0.0


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
                    "duration_s": round(_duration_s(run), 3),
                    "slo_passed": run.slo_passed if run.slo else None,
                    "measurement": stats_dict(meas.overall) if meas else None,
                }
            )
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"{len(runs)} run(s), newest first", title_justify="left")
    for col in (
        "run",
        "name",
        "target",
        "state",
        "started",
        "took",
        "QPS",
        "p95 ms",
        "errors",
        "SLO",
    ):
        table.add_column(
            col, justify="right" if col in ("QPS", "p95 ms", "errors", "took") else "left"
        )
    for run in runs:
        meas = _measurement(run)
        state = lc.state_name(run.state)
        if run.reason and run.reason != "duration_elapsed":
            state += f" ({run.reason})"
        table.add_row(
            run.run_id,
            run.name,
            run.target,
            state,
            run.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
            f"{_duration_s(run):.0f}s",
            f"{meas.overall.qps:,.0f}" if meas else "-",
            f"{meas.overall.p95_ms:.3f}" if meas else "-",
            f"{meas.overall.errors:,}" if meas else "-",
            ("pass" if run.slo_passed else "FAIL") if run.slo else "-",
        )
    Console(width=max(Console().width, 120)).print(table)
    return 0


def _show(store: RunStore, args: argparse.Namespace) -> int:
    run = _find(store, args.run_id)
    if run is None:
        return EXIT_NOT_FOUND
    if args.json:
        out = summary_dict(run)
        out["events"] = [
            {
                "state": lc.state_name(e.state),
                "time": e.event_time.ToJsonString(),
                "reason": e.reason,
            }
            for e in run.events
        ]
        out["workers_detail"] = [
            {
                "worker_id": w.worker_id,
                "host": w.host,
                "index": w.index,
                "connections": w.connections,
                "intervals": w.intervals,
                "count": w.count,
                "errors": w.errors,
                "lost": w.lost,
            }
            for w in run.run_workers
        ]
        out["error_samples"] = [
            {"category": e.category, "message": e.message} for e in run.error_samples
        ]
        if args.percentiles:
            out["percentiles"] = spectrum(store.histograms(run.run_id))
        print(json.dumps(out, indent=2))
        return 0
    console = Console(width=max(Console().width, 120))
    console.print(summary_table(run))
    if args.percentiles:
        console.print(_spectrum_table(spectrum(store.histograms(run.run_id))))
    for e in run.events:
        when = e.event_time.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
        console.print(f"  {when}  {lc.state_name(e.state):<12} {e.reason}", highlight=False)
    for w in run.run_workers:
        console.print(
            f"  worker {w.index} {w.worker_id} on {w.host}: {w.connections} connections, "
            f"{w.count:,} queries, {w.errors:,} errors, {w.intervals} intervals, "
            f"clock {w.clock_offset.ToNanoseconds() / 1e6:+.3f} ms "
            f"± {w.clock_uncertainty.ToNanoseconds() / 1e6:.3f} ms"
            + (
                f", {w.late_commands} planned command(s) late by up to "
                f"{w.max_lateness.ToNanoseconds() / 1e6:.1f} ms"
                if w.late_commands
                else ""
            )
            + (" [LOST]" if w.lost else ""),
            highlight=False,
        )
    for sample in run.error_samples:
        console.print(f"  error {sample.category}: {sample.message}", highlight=False)
    return 0


def spectrum(histograms: dict[tuple[int, str], bytes]) -> dict[str, dict[str, dict[str, float]]]:
    """Phase -> kind ('all' for every kind) -> {"p50": ms, ..., "max": ms, "count": n},
    read from the stored histograms (HdrHistogram's percentile semantics)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (phase, kind), data in sorted(histograms.items()):
        row = hdr.spectrum(data)
        if row:
            out.setdefault(lc.state_name(phase), {})[kind or "all"] = row
    return out


def _spectrum_table(data: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title="latency percentiles (ms), from the stored histograms")
    columns = [*(f"p{p:g}" for p in SPECTRUM), "max"]
    for col in ("phase", "kind", *columns):
        table.add_column(col, justify="left" if col in ("phase", "kind") else "right")
    for phase, kinds in data.items():
        for kind, row in sorted(kinds.items(), key=lambda kv: kv[0] != "all"):
            table.add_row(phase, kind, *(f"{row[c]:.3f}" for c in columns))
    return table


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
    a, b = _find(store, args.run_a), _find(store, args.run_b)
    if a is None or b is None:
        return EXIT_NOT_FOUND
    result = compare(a, b)
    if args.json:
        print(json.dumps({"a": a.run_id, "b": b.run_id, "by_kind": result}, indent=2))
        return 0
    table = Table(
        title=f"A = {a.run_id} ({a.name})   B = {b.run_id} ({b.name})   MEASUREMENT",
        title_justify="left",
    )
    table.add_column("query")
    table.add_column("metric")
    for col in ("A", "B", "B - A", "change"):
        table.add_column(col, justify="right")
    for kind, row in result.items():
        for i, (metric, v) in enumerate(row.items()):
            table.add_row(
                kind if i == 0 else "",
                metric,
                _fmt(v["a"]),
                _fmt(v["b"]),
                _fmt(v["delta"], signed=True),
                f"{v['relative']:+.1%}" if v["relative"] is not None else "-",
            )
        table.add_section()
    Console(width=max(Console().width, 100)).print(table)
    return 0


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+,.3f}" if signed else f"{value:,.3f}"


def _enrich(store: RunStore, args: argparse.Namespace) -> int:
    from snowload.workload import Driver, parse_json
    from worker.enrichment import AggregateEnricher, Window

    run = _find(store, args.run_id)
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
    run = _find(store, args.run_id)
    if run is None:
        return EXIT_NOT_FOUND
    buf = io.StringIO()
    if args.format == "json":
        out = summary_dict(run)
        out["series"] = [_point_row(p) for p in store.series(run.run_id)]
        json.dump(out, buf, indent=2)
        buf.write("\n")
    elif args.format == "csv":
        write_csv(store.series(run.run_id), buf)
    else:
        write_hlog(run, store, buf)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
    else:
        sys.stdout.write(buf.getvalue())
    return 0


CSV_FIELDS = (
    "second",
    "phase",
    "end_time",
    "duration_s",
    "count",
    "errors",
    "qps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "active_connections",
    "workers_active",
)


def _point_row(p: common_pb2.SeriesPoint) -> dict[str, Any]:
    return {
        "second": p.second,
        "phase": lc.state_name(p.phase),
        "end_time": p.end_time.ToJsonString() if p.HasField("end_time") else "",
        "duration_s": round(p.duration.ToTimedelta().total_seconds(), 3),
        "count": p.overall.count,
        "errors": p.overall.errors,
        "qps": round(p.overall.qps, 3),
        "p50_ms": p.overall.p50_ms,
        "p95_ms": p.overall.p95_ms,
        "p99_ms": p.overall.p99_ms,
        "max_ms": p.overall.max_ms,
        "active_connections": p.active_connections,
        "workers_active": p.workers_active,
    }


def write_csv(points: list[common_pb2.SeriesPoint], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for p in points:
        writer.writerow(_point_row(p))


def write_hlog(run: run_pb2.Run, store: RunStore, out: TextIO) -> None:
    """HdrHistogram interval log (format 1.2): one line per second, values in µs,
    max column in ms; the base time is the run's start time."""
    writer = HistogramLogWriter(out)
    base_ms = run.start_time.ToMilliseconds() if run.HasField("start_time") else 0
    out.write(f"#snowload run {run.run_id} ({run.name}); latencies in microseconds\n")
    writer.output_log_format_version()
    # (hdrh's own output_start_time mistakes milliseconds for seconds)
    start = run.start_time.ToDatetime(tzinfo=UTC) if run.HasField("start_time") else None
    out.write(
        f"#[StartTime: {base_ms / 1000.0:f} (seconds since epoch), "
        f"{start.isoformat(' ') if start else '-'}]\n"
    )
    writer.output_base_time(base_ms)
    writer.output_legend()
    for interval in store.intervals(run.run_id):
        histogram = hdr.decode(interval.histogram)
        start_s = (interval.start_ns / 1e6 - base_ms) / 1000.0
        end_s = (interval.end_ns / 1e6 - base_ms) / 1000.0
        writer.output_interval_histogram(
            histogram,
            start_time_stamp_sec=max(start_s, 0.000001),
            end_time_stamp_sec=end_s,
            max_value_unit_ratio=1000.0,
        )
