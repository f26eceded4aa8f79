"""The report's charts, from a run's stored data: rate and latency over time (warmup
shaded and dashed, partial seconds as unjoined markers), the latency spectrum, the open
model's schedule, the warehouse, the phase timeline; and the overlays of several runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from controller import lifecycle as lc
from controller.report_html import spectrum
from controller.report_html.model import ReportRun
from controller.report_html.svg import BLACK, PALETTE, Axis, Band, Line, Markers, chart
from snowload.v1 import common_pb2

PARTIAL = "partial second"
SECONDS = Axis("seconds since the load started")
Getter = Callable[[common_pb2.SeriesPoint], float]


def _phase_name(phase: int) -> str:
    return lc.state_name(phase).lower()


def _by_phase(points: Sequence[common_pb2.SeriesPoint]) -> dict[int, list[common_pb2.SeriesPoint]]:
    out: dict[int, list[common_pb2.SeriesPoint]] = {}
    for p in points:
        out.setdefault(int(p.phase), []).append(p)
    return out


def _warmup_band(points: Sequence[common_pb2.SeriesPoint]) -> list[Band]:
    seconds = [p.second for p in points if p.phase == lc.WARMUP]
    if not seconds:
        return []
    return [Band(min(seconds) - 1, max(seconds), "warmup (not in the headline numbers)")]


def _metric_lines(
    points: Sequence[common_pb2.SeriesPoint],
    metrics: Sequence[tuple[str, str, Getter]],
    *,
    skip_empty: bool,
) -> tuple[list[Line], list[Markers]]:
    """Per metric and phase one line of the full seconds (dashed in warmup) and markers
    for the partial ones. ``skip_empty``: leave out seconds that completed no query (a
    latency there does not exist; a rate there is a true zero)."""
    lines: list[Line] = []
    markers: list[Markers] = []
    for i, (key, name, get) in enumerate(metrics):
        color = PALETTE[i % len(PALETTE)]
        for phase, group in _by_phase(points).items():
            shown = [p for p in group if not (skip_empty and p.overall.count == 0)]
            data = {"series": key, "phase": _phase_name(phase)}
            full = [(float(p.second), get(p)) for p in shown if not p.partial]
            part = [(float(p.second), get(p)) for p in shown if p.partial]
            lines.append(Line(name, full, color, dashed=phase == lc.WARMUP, data=data))
            markers.append(Markers(PARTIAL, part, color, data))
    return lines, markers


def rate_chart(rr: ReportRun) -> str:
    """Queries per second; in the open model, the target rate too."""
    metrics: list[tuple[str, str, Getter]] = [("qps", "queries/s", lambda p: p.overall.qps)]
    if has_open_model(rr):
        metrics.append(("target_rate", "target queries/s", lambda p: p.target_rate))
    lines, markers = _metric_lines(rr.series, metrics, skip_empty=False)
    return chart(
        "Throughput (queries per second)",
        SECONDS,
        Axis("queries/s"),
        lines,
        markers,
        _warmup_band(rr.series),
    )


LATENCIES: list[tuple[str, str, Getter]] = [
    ("p50_ms", "p50", lambda p: p.overall.p50_ms),
    ("p95_ms", "p95", lambda p: p.overall.p95_ms),
    ("p99_ms", "p99", lambda p: p.overall.p99_ms),
]


def latency_chart(rr: ReportRun) -> str:
    lines, markers = _metric_lines(rr.series, LATENCIES, skip_empty=True)
    return chart(
        "Latency per second (p50, p95, p99)",
        SECONDS,
        Axis("ms"),
        lines,
        markers,
        _warmup_band(rr.series),
    )


def spectrum_phase(rr: ReportRun) -> int | None:
    """The phase whose spectrum is drawn: MEASUREMENT, else the last one stored."""
    phases = sorted({phase for phase, _ in rr.histograms})
    if lc.MEASUREMENT in phases:
        return lc.MEASUREMENT
    return phases[-1] if phases else None


SPECTRUM_X = Axis("percentile (1/(1-p), log scale)", log=True, ticks=spectrum.NINES)


def spectrum_chart(rr: ReportRun) -> str:
    phase = spectrum_phase(rr)
    lines = []
    if phase is not None:
        kinds = sorted(kind for p, kind in rr.histograms if p == phase)
        for i, kind in enumerate(kinds):  # '' (all kinds) sorts first
            name = kind or "all kinds"
            lines.append(
                Line(
                    name,
                    spectrum.points(rr.histograms[(phase, kind)]),
                    BLACK if not kind else PALETTE[(i - 1) % len(PALETTE)],
                    data={"series": "spectrum", "kind": name, "phase": _phase_name(phase)},
                )
            )
    title = "Latency by percentile"
    if phase is not None:
        title += f" ({_phase_name(phase)})"
    return chart(title, SPECTRUM_X, Axis("ms"), lines)


def has_open_model(rr: ReportRun) -> bool:
    return any(ps.HasField("lag") for ps in rr.run.summary.phases) or any(
        p.target_rate or p.lag_p99_ms or p.late or p.dropped for p in rr.series
    )


def open_model_charts(rr: ReportRun) -> str:
    lag, lag_markers = _metric_lines(
        rr.series,
        [
            ("lag_p99_ms", "schedule lag p99", lambda p: p.lag_p99_ms),
            ("service_p99_ms", "service time p99", lambda p: p.service_p99_ms),
        ],
        skip_empty=True,
    )
    late, late_markers = _metric_lines(
        rr.series,
        [
            ("late", "late", lambda p: float(p.late)),
            ("dropped", "dropped", lambda p: float(p.dropped)),
        ],
        skip_empty=False,
    )
    band = _warmup_band(rr.series)
    return chart(
        "Open model: schedule lag and service time", SECONDS, Axis("ms"), lag, lag_markers, band
    ) + chart(
        "Open model: late and dropped queries per second",
        SECONDS,
        Axis("queries"),
        late,
        late_markers,
        band,
    )


def has_warehouse(rr: ReportRun) -> bool:
    return rr.run.HasField("warehouse") or any(p.HasField("warehouse") for p in rr.series)


def warehouse_chart(rr: ReportRun) -> str:
    sampled = [p for p in rr.series if p.HasField("warehouse")]
    metrics: list[tuple[str, Callable[[common_pb2.WarehouseSample], float]]] = [
        ("running", lambda w: float(w.running)),
        ("queued", lambda w: float(w.queued)),
        ("started clusters", lambda w: float(w.started_clusters)),
    ]
    lines = [
        Line(
            name,
            [(float(p.second), get(p.warehouse)) for p in sampled],
            PALETTE[i],
            data={"series": "warehouse-" + name.replace(" ", "-")},
        )
        for i, (name, get) in enumerate(metrics)
    ]
    return chart(
        "Warehouse: running and queued queries, started clusters",
        SECONDS,
        Axis("count"),
        lines,
        bands=_warmup_band(rr.series),
    )


PHASE_COLORS = {
    lc.PENDING: "#bbbbbb",
    lc.PREPARING: "#999999",
    lc.WARMUP: "#e69f00",
    lc.MEASUREMENT: "#0072b2",
    lc.PROCESSING: "#56b4e9",
}


def timeline(rr: ReportRun, now_ns: int) -> str:
    """One bar per phase the run went through, from its event to the next (a run still
    active: to ``now_ns``, when the report was made); the terminal state as a mark."""
    events = sorted(rr.run.events, key=lambda e: e.event_time.ToNanoseconds())
    if not events:
        return '<p class="empty">no phase events recorded</p>'
    t0 = events[0].event_time.ToNanoseconds()
    ends = [e.event_time.ToNanoseconds() for e in events[1:]]
    last = events[-1]
    if not lc.is_terminal(last.state):
        ends.append(max(now_ns, last.event_time.ToNanoseconds()))
    span = max((ends[-1] if ends else t0) - t0, 1)
    width, left, right = 880, 8, 8
    scale = (width - left - right) / span
    out = [f'<svg class="timeline" width="{width}" height="46" viewBox="0 0 {width} 46">']
    for event, end in zip(events, ends, strict=False):
        start = event.event_time.ToNanoseconds()
        x = left + (start - t0) * scale
        w = max((end - start) * scale, 1.0)
        name = lc.state_name(event.state)
        secs = (end - start) / 1e9
        color = PHASE_COLORS.get(event.state, "#777777")
        out.append(
            f'<rect class="phase" data-phase="{name.lower()}" x="{x:.1f}" y="4" width="{w:.1f}" '
            f'height="20" fill="{color}"><title>{name}: {secs:.1f} s</title></rect>'
        )
        if w > 8 * len(name):
            out.append(f'<text class="phase-label" x="{x + 3:.1f}" y="18">{name}</text>')
    if lc.is_terminal(last.state):
        x = left + (last.event_time.ToNanoseconds() - t0) * scale
        name = lc.state_name(last.state)
        out.append(
            f'<text class="end-label" x="{x:.1f}" y="40" text-anchor="end">'
            f"{escape(name)} {escape(last.reason)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------ several runs


def _run_label(rr: ReportRun) -> str:
    return f"{rr.run.run_id[:8]} {rr.run.name}"


def overlay_charts(runs: Sequence[ReportRun]) -> str:
    """Rate, p99 and the spectrum of every run on shared axes (seconds since each run's
    load started): one colour per run."""
    rate_lines, rate_markers, p99_lines, p99_markers, spectra = [], [], [], [], []
    for i, rr in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        label = _run_label(rr)
        data = {"run": rr.run.run_id}
        rate_lines.append(
            Line(
                label,
                [(float(p.second), p.overall.qps) for p in rr.series if not p.partial],
                color,
                data=data | {"series": "qps"},
            )
        )
        rate_markers.append(
            Markers(
                PARTIAL,
                [(float(p.second), p.overall.qps) for p in rr.series if p.partial],
                color,
                data | {"series": "qps"},
            )
        )
        measured = [p for p in rr.series if p.overall.count]
        p99_lines.append(
            Line(
                label,
                [(float(p.second), p.overall.p99_ms) for p in measured if not p.partial],
                color,
                data=data | {"series": "p99_ms"},
            )
        )
        p99_markers.append(
            Markers(
                PARTIAL,
                [(float(p.second), p.overall.p99_ms) for p in measured if p.partial],
                color,
                data | {"series": "p99_ms"},
            )
        )
        phase = spectrum_phase(rr)
        if phase is not None and (phase, "") in rr.histograms:
            spectra.append(
                Line(
                    label,
                    spectrum.points(rr.histograms[(phase, "")]),
                    color,
                    data=data | {"series": "spectrum"},
                )
            )
    return (
        chart("Throughput, all runs", SECONDS, Axis("queries/s"), rate_lines, rate_markers)
        + chart("p99 latency per second, all runs", SECONDS, Axis("ms"), p99_lines, p99_markers)
        + chart("Latency by percentile (measurement), all runs", SPECTRUM_X, Axis("ms"), spectra)
    )
