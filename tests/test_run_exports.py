"""What a finished run exports: the HdrHistogram interval log read back with hdrh's own
reader (its Interval_Max column to the microsecond, as the format's Java writer writes
it), and rates with one number of decimals everywhere (overall, per kind, per second)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hdrh.log import HistogramLogReader

from controller import export
from controller import lifecycle as lc
from controller.server import Controller
from snowload import hdr
from snowload.report import RATE_DECIMALS, summary_dict
from tests.cluster import WorkerProcs, attached, run_to_end, workload

WORKLOAD = """
name = "exports"
[target]
driver = "sqlite"
database = "exports.db"
[setup]
sql = ["DROP TABLE IF EXISTS kv", "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)",
       "INSERT INTO kv VALUES (1, 'a'), (2, 'b')"]
[load]
workers = 1
connections = 3
warmup = "1s"
duration = "2s"
think_time = "1ms"
[[query]]
name = "get"
sql = "SELECT v FROM kv WHERE k = ?"
params = [{ int = [1, 2] }]
[[query]]
name = "put"
weight = 0.3
sql = "UPDATE kv SET v = ? WHERE k = ?"
params = [{ string = 4 }, { int = [1, 2] }]
"""


def decimals(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0


async def test_hlog_and_rates(controller: Controller, workers: WorkerProcs, tmp_path: Path) -> None:
    workers.spawn("w")
    await attached(controller, 1)
    active = await run_to_end(controller, workload(WORKLOAD))
    assert active.state == lc.COMPLETED, active.message
    run = controller.runs.get(active.run_id)

    # -- the hlog, read back by hdrh's reader: one histogram per interval line
    path = tmp_path / "run.hlog"
    with path.open("w", encoding="utf-8") as out:
        export.write_hlog(run, controller.store, out)
    lines = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith(("#", '"'))
    ]
    reader = HistogramLogReader(str(path), hdr.new_histogram())
    sub_ms = 0
    for line in lines:
        start, length, interval_max, _payload = line.split(",", 3)
        histogram = reader.get_next_interval_histogram()
        assert histogram is not None, line
        assert float(length) > 0 and float(start) >= 0
        # Interval_Max is the interval's max in ms (values are µs), to the µs
        assert float(interval_max) == round(histogram.get_max_value() / 1000, 3), line
        sub_ms += histogram.get_max_value() % 1000 != 0
    assert reader.get_next_interval_histogram() is None
    assert sub_ms, "every interval max was a whole millisecond: nothing was checked"

    # -- rates: two decimals, overall as per kind, summary as series
    summary = summary_dict(run)
    for phase in summary["phases"].values():
        for stats in [phase, *phase["by_kind"].values()]:
            assert decimals(stats["qps"]) <= RATE_DECIMALS, stats
            assert abs(stats["qps"] - stats["count"] / phase["duration_s"]) <= max(
                0.01, 2e-3 * stats["qps"]
            )
    text = io.StringIO()
    export.write_csv(controller.runs.series(run.run_id), text)
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert rows and all(decimals(float(r["qps"])) <= RATE_DECIMALS for r in rows)
