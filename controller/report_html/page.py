"""The report as one HTML document: styles inline, charts as inline SVG, no script, no
font file, no URL. Its Content-Security-Policy forbids loading anything, so a browser
that opens it offline shows exactly what one online would."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from controller.report_html import charts, tables
from controller.report_html.model import ReportRun

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
:root { color-scheme: light; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  margin: 24px auto; max-width: 920px; color: #1b1b1b; background: #fff; padding: 0 12px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
  border-bottom: 1px solid #ddd; } h3 { font-size: 15px; margin: 18px 0 6px; }
h4 { font-size: 13px; margin: 12px 0 4px; }
.meta { color: #555; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; } .bad { color: #b00020; font-weight: 600; }
.active-banner { background: #fff4d6; border: 1px solid #e6b800; padding: 8px 12px;
  font-weight: 600; }
.warn { background: #fdeceb; border: 1px solid #e0a0a0; padding: 6px 12px; }
.notes { color: #555; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 12px; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 3px 8px; text-align: left;
  vertical-align: top; } th { background: #f5f5f5; } td.num { text-align: right;
  font-variant-numeric: tabular-nums; }
table.slowest td:nth-child(8), table.failed td:last-child, table.error-samples td:last-child
  { font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
table.slowest td:nth-child(4), table.failed td:nth-child(3) { white-space: nowrap; }
svg.chart, svg.timeline { display: block; margin: 8px 0; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .title { font-weight: 600; font-size: 12px; }
svg .axis { stroke: #666; } svg .grid { stroke: #eee; }
svg .series { stroke-width: 1.5; } svg .band { fill: #e69f00; fill-opacity: 0.12; }
svg .band-label { fill: #8a5a00; } svg .empty { fill: #999; }
svg .phase-label { fill: #fff; font-weight: 600; }
details > summary { cursor: pointer; font-size: 18px; font-weight: 600; margin: 20px 0 6px; }
p.empty { color: #888; font-style: italic; }
@media print { details { page-break-inside: avoid; } }
"""


def render(runs: Sequence[ReportRun], now: datetime | None = None) -> str:
    """The whole document for one run, or for several (overlays and deltas against the
    first, then each run in full)."""
    now = now or datetime.now(UTC)
    now_ns = int(now.timestamp() * 1e9)
    if len(runs) == 1:
        title = f"snowload run {runs[0].run.run_id} · {runs[0].run.name}"
    else:
        title = "snowload: " + ", ".join(rr.run.run_id[:8] for rr in runs)
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">made {escape(now.isoformat(timespec="seconds"))} by snowload runs '
        "report</p>",
    ]
    if len(runs) > 1:
        body.append(_comparison(runs))
        for rr in runs:
            body.append(
                f"<details open><summary>{escape(rr.run.run_id)} · {escape(rr.run.name)}"
                f"</summary>{_run(rr, now_ns)}</details>"
            )
    else:
        body.append(_run(runs[0], now_ns))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )


def _comparison(runs: Sequence[ReportRun]) -> str:
    base = runs[0]
    out = ["<h2>Comparison</h2>", f"<p>A is the first run, {escape(base.run.run_id)}.</p>"]
    out.append(charts.overlay_charts(runs))
    for other in runs[1:]:
        out.append(
            f"<h3>{escape(base.run.run_id[:8])} (A) → {escape(other.run.run_id[:8])} (B), "
            "measurement</h3>"
        )
        out.append(tables.deltas(base, other))
    return "".join(out)


def _section(title: str, content: str) -> str:
    return f"<h2>{escape(title)}</h2>{content}" if content else ""


def _run(rr: ReportRun, now_ns: int) -> str:
    notes = rr.notes
    parts = [
        _section("Run", tables.header(rr)),
        (
            '<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"
            if notes
            else ""
        ),
        _section("Phases", charts.timeline(rr, now_ns)),
        _section(
            "Over time",
            charts.rate_chart(rr)
            + charts.latency_chart(rr)
            + '<p class="notes">Dashed and shaded: the warmup. Unjoined circles: seconds the '
            "load did not cover in full (the second it stopped in, one that only drained): "
            "their rate is over the part covered.</p>",
        ),
        _section("Latency spectrum", charts.spectrum_chart(rr)),
        _section("Per query kind", tables.per_kind(rr)),
        _section("Errors", tables.errors(rr)),
        _section("Slowest queries", tables.slowest_queries(rr.queries)),
        _section("Server-side timings", tables.server_timings(rr)),
    ]
    if charts.has_warehouse(rr):
        parts.append(_section("Warehouse", tables.warehouse(rr) + charts.warehouse_chart(rr)))
    if charts.has_open_model(rr):
        parts.append(_section("Open model", tables.open_model(rr) + charts.open_model_charts(rr)))
    parts.append(_section("find_max steps", tables.find_max(rr)))
    return "".join(parts)
