"""The HTML report in a real headless Chromium (Debian's package) with the network
blocked: it renders with no console message, the DOM the browser built holds every
plotted second, and its screenshot is not blank. A copy of the report that names one
image on the web shows that a console message would be caught."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from controller.report_html import page
from controller.report_html.model import collect
from controller.store import MemoryRunStore
from tests.png import grey_variance
from tests.report_dom import ReportDom
from tests.report_runs import made_run

BLOCKED = (
    "--proxy-server=127.0.0.1:9",  # (nothing listens there)
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is missing: scripts/test.sh installs it", pytrace=False)
    return path


def open_in_chromium(html: Path, tmp: Path, screenshot: Path | None) -> subprocess.Popen[str]:
    args = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        *BLOCKED,
        f"--user-data-dir={tmp / ('profile-' + html.stem)}",
        "--window-size=900,2000",
        "--force-device-scale-factor=0.4",
        "--hide-scrollbars",
        "--dump-dom",
    ]
    if screenshot is not None:
        args.append(f"--screenshot={screenshot}")
    return subprocess.Popen(
        [*args, html.as_uri()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_the_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    a = made_run("aaaa11112222", seconds=90, warmup=10, kinds=3, seed=5)
    b = made_run("bbbb33334444", seconds=80, warmup=10, kinds=3, seed=6, scale=1.4)
    store = MemoryRunStore()
    for m in (a, b):
        store.save(m.record)
    runs = [collect(store, m.record.run, m.queries) for m in (a, b)]
    text = page.render(runs)
    report = tmp_path / "report.html"
    report.write_text(text, encoding="utf-8")
    control = tmp_path / "control.html"
    control.write_text(
        text.replace("<body>", '<body><img alt="" src="https://example.invalid/x.png">', 1),
        encoding="utf-8",
    )
    shot = tmp_path / "report.png"
    procs = [open_in_chromium(report, tmp_path, shot), open_in_chromium(control, tmp_path, None)]
    (dom_text, err), (_, control_err) = (p.communicate(timeout=60) for p in procs)
    assert procs[0].returncode == 0, err[-2000:]

    assert console(err) == []
    # the control: the page's policy refused the image, and the console said so
    assert any("example.invalid" in line for line in console(control_err)), control_err[-2000:]

    dom = ReportDom(dom_text)
    for m in (a, b):
        run_id = m.record.run.run_id
        n = len(m.record.series)
        assert dom.count(run=run_id, series="qps") == n  # the overlay
    # each run in full: rate and latency lines hold every second
    assert dom.count(series="qps", phase="measurement") + dom.count(
        series="qps", phase="warmup"
    ) == len(a.record.series) + len(b.record.series)
    assert len(dom.select(tag="line", series="spectrum")) == 2 * 4 + 2

    png = shot.read_bytes()
    assert grey_variance(png) > 100, "the screenshot is blank"
