"""The executor: one thread per connection, the hot loop inside the thread.

The per-query path does only what it must: pick a kind, make its parameters, execute,
and append one packed integer ``latency_us << 12 | phase << 8 | kind`` to the thread's
own list. Histograms are built once per interval from those lists (``Counter`` counts
them in C, then each distinct value is recorded once), so recording costs the hot loop
one ``append``. The phase is read before each query is issued, so every sample carries
the phase its query was issued in.

Draining a list while its thread appends is lossless: ``chunk = lst[:n]; del lst[:n]``
only ever removes the first ``n`` items that were copied; appends land after them.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from snowload import hdr
from snowload.workload import Workload
from worker.drivers import Connection, Driver, DriverError
from worker.generators import Maker, Sequences, compile_query, weighted_picker
from worker.tags import Tag

KIND_BITS = 8
PHASE_SHIFT = 8
LAT_SHIFT = 12
KEY_MASK = (1 << LAT_SHIFT) - 1
MAX_ERROR_SAMPLES = 3


@dataclass
class ErrorTally:
    count: int = 0
    samples: list[str] = field(default_factory=list)


@dataclass
class KindPhaseData:
    """One (kind, phase) cell of an interval."""

    histogram: HdrHistogram = field(default_factory=hdr.new_histogram)
    errors: dict[str, ErrorTally] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.histogram.get_total_count())


@dataclass(frozen=True)
class RunPlan:
    """Everything the executor needs, built from an Assign."""

    run_id: str
    workload: Workload
    worker_index: int
    connections: int
    sequences: Sequences
    seed: int | None = None


class LoadControl:
    """Shared between the agent (writer) and connection threads (readers)."""

    def __init__(self, phase: int) -> None:
        self.phase = phase
        self.stopping = False
        self.go = threading.Event()
        self.target_connections = 0


class ConnectionWorker(threading.Thread):
    def __init__(
        self,
        index: int,
        executor: Executor,
    ) -> None:
        super().__init__(name=f"conn-{index}", daemon=True)
        self.index = index
        self.ex = executor
        self.samples: list[int] = []
        self.errors: list[tuple[int, str, str]] = []
        self.conn: Connection | None = None
        self.connect_error: DriverError | None = None
        self.active = False

    def run(self) -> None:
        ex = self.ex
        try:
            with ex.connect_gate:
                if ex.control.stopping:
                    return
                if ex.connect_delay_s:
                    time.sleep(ex.connect_delay_s)
                self.conn = ex.driver.connect(ex.plan.workload.target, ex.connect_timeout_s)
        except DriverError as exc:
            self.connect_error = exc
        except Exception as exc:  # a driver bug must not hang READY
            self.connect_error = DriverError(ex.driver.classify(exc), ex.driver.describe_error(exc))
        finally:
            ex.connected_one(self)
        if self.conn is None:
            return
        try:
            ex.control.go.wait()
            if not ex.control.stopping:
                self.active = True
                self.hot_loop(self.conn)
        finally:
            self.active = False
            self.conn.close()

    def hot_loop(self, conn: Connection) -> None:
        ex = self.ex
        control = ex.control
        plan = ex.plan
        queries = plan.workload.queries
        rnd = random.Random(None if plan.seed is None else plan.seed * 7919 + self.index)
        pick = weighted_picker([q.weight for q in queries], rnd)
        makers: list[Maker] = [
            compile_query(i, q, rnd, plan.sequences) for i, q in enumerate(queries)
        ]
        think = plan.workload.load.think_time_s
        sleep = time.sleep
        perf = time.perf_counter_ns
        append = self.samples.append
        classify = ex.driver.classify
        describe = ex.driver.describe_error
        execute = conn.execute
        index = self.index
        phase = -1
        compiled: list[Any] = []
        key_base = 0
        while not control.stopping:
            if index >= control.target_connections:
                # parked by SetLoad: wait without spinning
                self.active = False
                sleep(0.01)
                continue
            self.active = True
            if control.phase != phase:
                phase = control.phase
                tags = [Tag(plan.run_id, plan.worker_index, phase, q.name) for q in queries]
                conn.apply_tag(tags[0])
                compiled = [conn.compile(q, t) for q, t in zip(queries, tags, strict=True)]
                key_base = phase << PHASE_SHIFT
            k = pick()
            params = makers[k]()
            t0 = perf()
            try:
                execute(compiled[k], params)
            except Exception as exc:
                self.errors.append((key_base | k, str(classify(exc)), describe(exc)))
            else:
                append(((perf() - t0 + 500) // 1000) << LAT_SHIFT | key_base | k)
            if think:
                sleep(think)

    def cancel(self) -> None:
        if self.conn is not None:
            self.conn.cancel()


class Executor:
    """Opens the worker's connections with bounded parallelism and runs the load."""

    def __init__(
        self,
        plan: RunPlan,
        driver: Driver,
        phase: int,
        connect_timeout_s: float = 30.0,
        connect_delay_s: float = 0.0,
    ) -> None:
        self.plan = plan
        self.connect_delay_s = connect_delay_s
        self.driver = driver
        self.connect_timeout_s = connect_timeout_s
        self.control = LoadControl(phase)
        self.control.target_connections = plan.connections
        self.connect_gate = threading.BoundedSemaphore(
            max(1, plan.workload.load.max_parallel_connects)
        )
        self.threads: list[ConnectionWorker] = []
        self._lock = threading.Lock()
        self._connected = 0
        self._all_connected = threading.Event()
        self.on_progress: Callable[[int], None] | None = None

    # -- preparation -------------------------------------------------------------------

    def open_connections(self) -> None:
        """Blocking: returns when every connection is open; raises the first DriverError."""
        self.threads = [ConnectionWorker(i, self) for i in range(self.plan.connections)]
        for t in self.threads:
            t.start()
        self._all_connected.wait()
        failures = [t.connect_error for t in self.threads if t.connect_error is not None]
        if failures:
            self.control.stopping = True
            self.control.go.set()
            raise failures[0]

    def connected_one(self, _thread: ConnectionWorker) -> None:
        with self._lock:
            self._connected += 1
            done = self._connected
        if self.on_progress is not None:
            self.on_progress(done)
        if done == len(self.threads):
            self._all_connected.set()

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        self.control.go.set()

    def set_phase(self, phase: int) -> None:
        self.control.phase = phase

    def set_connections(self, n: int) -> None:
        self.control.target_connections = max(0, min(n, len(self.threads)))

    def stop(self, drain_timeout_s: float) -> None:
        """Blocking: stop issuing, let in-flight queries finish, cancel stragglers, close."""
        self.control.stopping = True
        self.control.go.set()
        deadline = time.monotonic() + drain_timeout_s
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for t in self.threads:
            if t.is_alive():
                t.cancel()
        for t in self.threads:
            t.join(5.0)

    @property
    def active_connections(self) -> int:
        return sum(1 for t in self.threads if t.active)

    # -- measurements --------------------------------------------------------------------

    def collect(self) -> dict[tuple[int, int], KindPhaseData]:
        """Everything recorded since the last call, keyed by (phase, kind index)."""
        counts: Counter[int] = Counter()
        errors: list[tuple[int, str, str]] = []
        for t in self.threads:
            lst = t.samples
            n = len(lst)
            if n:
                chunk = lst[:n]
                del lst[:n]
                counts.update(chunk)
            errs = t.errors
            m = len(errs)
            if m:
                errors.extend(errs[:m])
                del errs[:m]
        cells: dict[tuple[int, int], KindPhaseData] = {}
        for packed, c in counts.items():
            key = packed & KEY_MASK
            cell = cells.get((key >> PHASE_SHIFT, key & 0xFF))
            if cell is None:
                cell = cells[(key >> PHASE_SHIFT, key & 0xFF)] = KindPhaseData()
            cell.histogram.record_value(packed >> LAT_SHIFT, c)
        for key, category, message in errors:
            cell = cells.setdefault((key >> PHASE_SHIFT, key & 0xFF), KindPhaseData())
            tally = cell.errors.setdefault(category, ErrorTally())
            tally.count += 1
            if len(tally.samples) < MAX_ERROR_SAMPLES and message not in tally.samples:
                tally.samples.append(message)
        return cells
