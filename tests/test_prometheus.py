"""``--metrics-listen``: a real Prometheus server (Debian's package) scrapes a controller
every second through a run, with the controller's bearer token; the totals read back from
Prometheus' HTTP API are the run's own counts, per phase and kind, errors included;
``promtool check metrics`` finds nothing to say; a finished run's series go after the
retention; every query of the Grafana dashboard names a metric the endpoint serves and
parses in Prometheus. And the daemon refuses a metrics address it cannot have."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.cli import build_parser
from controller.daemon_cli import controller_main
from controller.prom_server import expose
from controller.server import Controller
from tests.cluster import WorkerProcs, attached, run_to_end, wait_for, worker_env, workload
from tests.pg import free_port

pytestmark = pytest.mark.slow

TOKEN = "scrape-token-5521"
DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "snowload.json"
WORKLOAD = """
name = "prom"
[target]
database = "{db}"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY)",
       "INSERT OR IGNORE INTO t VALUES (1), (2), (3)"]
[load]
workers = 1
connections = 2
warmup = "1s"
duration = "2s"
think_time = "2ms"
on_query_failure = "continue"
[[query]]
name = "read"
weight = 4
sql = "SELECT k FROM t WHERE k = ?"
params = [{{ int = [1, 3] }}]
[[query]]
name = "dup"
weight = 1
sql = "INSERT INTO t VALUES (?)"
params = [{{ int = [1, 3] }}]
"""


def get(url: str, token: str | None = TOKEN, *, post: bool = False) -> tuple[int, str]:
    request = urllib.request.Request(url, data=b"" if post else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


@contextlib.contextmanager
def prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """A Prometheus server on a free port scraping ``target`` every second (with the
    token); yields its base URL once it has scraped the target."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "Prometheus is not installed (scripts/test.sh installs it: apt-get install prometheus)"
        )
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config(target))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"{base}/-/ready", None)[0] == 200 and query(base, "up == 1"):
                    break
            except OSError:
                pass
            assert proc.poll() is None, "prometheus exited"
            assert time.monotonic() < deadline, "prometheus did not scrape the controller"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)


def scrape_config(target: str) -> str:
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: snowload\n    scrape_interval: 1s\n"
        f"    authorization:\n      credentials: {TOKEN}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )


def query(base: str, expr: str) -> list[dict[str, object]]:
    status, body = get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), None)
    found = json.loads(body)
    assert status == 200 and found["status"] == "success", (expr, body)
    result: list[dict[str, object]] = found["data"]["result"]
    return result


def served_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if kind == "counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


async def test_prometheus_reads_the_runs_counts(controller: Controller, tmp_path: Path) -> None:
    endpoint = expose(controller, "127.0.0.1:0", token=TOKEN, retention_s=4.0)
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    scraper = prometheus(tmp_path, endpoint.address)
    try:
        procs.spawn("prom-w")
        base = await asyncio.to_thread(scraper.__enter__)
        url = f"http://{endpoint.address}/metrics"
        assert (await asyncio.to_thread(get, url, None))[0] == 401  # no token, no metrics
        assert (await asyncio.to_thread(get, url, "wrong"))[0] == 401
        await attached(controller, 1)
        run = await run_to_end(controller, workload(WORKLOAD.format(db=tmp_path / "p.db")))
        assert run.state == lc.COMPLETED, run.message
        expected = {
            (lc.state_name(ph).lower(), kind): cell.count
            for (ph, kind), cell in run.metrics.cells.items()
        }
        errors = sum(c.error_count for c in run.metrics.cells.values())
        assert errors > 0 and len(expected) == 4

        def totals() -> dict[tuple[str, str], int]:
            rows = query(base, f'snowload_queries_total{{run_id="{run.run_id}"}}')
            return {
                (str(r["metric"]["phase"]), str(r["metric"]["kind"])): int(r["value"][1])  # type: ignore[index]
                for r in rows
            }

        await wait_for(lambda: totals() == expected, 20, "Prometheus to hold the final counts")
        # ... and the run's own summary says the same per phase
        for summary in run.summary().phases:
            name = lc.state_name(summary.phase).lower()
            assert sum(n for (ph, _), n in expected.items() if ph == name) == summary.overall.count
        # scraped through the run (every second), with the token
        scrapes = query(base, 'count_over_time(up{job="snowload"}[5m])')
        assert int(scrapes[0]["value"][1]) >= 3  # type: ignore[index]
        assert query(base, 'min_over_time(up{job="snowload"}[5m])')[0]["value"][1] == "1"  # type: ignore[index]
        failed = query(base, f'sum(snowload_query_errors_total{{run_id="{run.run_id}"}})')
        assert int(failed[0]["value"][1]) == errors  # type: ignore[index]
        # histograms: +Inf holds every success; the buckets are cumulative
        status, text = await asyncio.to_thread(get, url)
        assert status == 200
        for (phase, kind), cell in run.metrics.cells.items():
            name = lc.state_name(phase).lower()
            labels = f'kind="{kind}",le="+Inf",phase="{name}",run_id="{run.run_id}"'
            assert (
                f"snowload_query_duration_seconds_bucket{{{labels}}} {float(cell.successes)}"
                in text
            )
        checked = await asyncio.to_thread(
            subprocess.run,
            ["promtool", "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0 and not checked.stdout.strip(), (
            checked.stdout + checked.stderr
        )

        # every query of the dashboard names a served metric and parses in Prometheus
        names = served_names(text)
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [
            target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
        ]
        assert len(exprs) >= 8
        for expr in exprs:
            used = set(re.findall(r"\bsnowload_[a-z0-9_]+", expr))
            assert used and used <= names, (expr, used - names)
            concrete = expr.replace("$run_id", ".+").replace("$__rate_interval", "1m")
            await asyncio.to_thread(query, base, concrete)

        # the finished run's series go after the retention (4 s here); the scrape off the
        # event loop, which builds the families (get() on it would block the loop that
        # must answer it, until one side's 10 s timeout)
        deadline = time.monotonic() + 15
        while run.run_id in (await asyncio.to_thread(get, url))[1]:
            assert time.monotonic() < deadline, "the finished run's series did not go"
            await asyncio.sleep(0.2)
    finally:
        procs.stop_all()
        scraper.__exit__(None, None, None)
        endpoint.stop()


async def test_daemon_refuses_a_metrics_address_it_cannot_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        args = parser.parse_args(
            ["controller", "--listen", "127.0.0.1:0", "--metrics-listen", address,
             "--db", str(tmp_path / "r.db")]
        )  # fmt: skip
        assert await controller_main(args) == 2
    assert f"cannot serve metrics on {address}" in capsys.readouterr().err
    args = parser.parse_args(
        ["controller", "--listen", "127.0.0.1:0", "--metrics-listen", "0.0.0.0:0",
         "--db", str(tmp_path / "r.db")]
    )  # fmt: skip
    assert await controller_main(args) == 2
    assert "refusing to serve metrics on 0.0.0.0:0 without a token" in capsys.readouterr().err
