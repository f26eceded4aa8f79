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
    service: HdrHistogram | None = None
    """Open mode: uncorrected service times."""

    @property
    def count(self) -> int:
        return int(self.histogram.get_total_count())


@dataclass
class ScheduleData:
    """Open mode, one phase of an interval: lag, late and dropped."""

    lag: HdrHistogram = field(default_factory=hdr.new_histogram)
    late: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class RunPlan:
    """Everything the executor needs, built from an Assign."""

    run_id: str
    workload: Workload
    worker_index: int
    connections: int
    sequences: Sequences
    seed: int | None = None
    rate: float = 0.0
    """Open mode: this worker's share of the target rate."""
    active_connections: int | None = None
    """Connections issuing load at first (the rest wait for SetLoad); None: all."""


class LoadControl:
    """Shared between the agent (writer) and connection threads (readers)."""

    def __init__(self, phase: int) -> None:
        self.epoch = 0
        """Bumped on every change below: the hot loop reads this one attribute per query
        and looks at the rest only when it moved."""
        self.phase = phase
        self.previous_phase = phase
        self.phase_since_ns = 0
        """perf_counter ns when ``phase`` took effect (open mode attributes a query to the
        phase its intended start fell in)."""
        self._stopping = False
        self._target_connections = 0
        self.go = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stopping = value
        self.epoch += 1

    @property
    def target_connections(self) -> int:
        return self._target_connections

    @target_connections.setter
    def target_connections(self, value: int) -> None:
        self._target_connections = value
        self.epoch += 1

    def set_phase(self, phase: int) -> None:
        if phase != self.phase:
            self.previous_phase = self.phase
            self.phase_since_ns = time.perf_counter_ns()
            self.phase = phase
            self.epoch += 1


DROPPED = 0xF0
MAX_WAIT_NS = 50_000_000
"""Open mode: threads wait for a slot in steps of at most this, to notice rate changes."""
LATE_NS = 10_000_000
"""Open mode: a query that starts more than 10 ms behind its schedule counts as late."""


class Schedule:
    """Open mode: intended start times at a target rate, constant or Poisson.

    Connection threads take the next slot when they are free; a slot in the past is
    started at once and its latency is still measured from the slot (no coordinated
    omission). Changing the rate re-bases the schedule at the current time."""

    def __init__(self, rate: float, poisson: bool, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rnd = random.Random(seed)
        self.poisson = poisson
        self.rate = 0.0
        self._next_ns = 0
        self.generation = 0
        """Bumped on every rate change: a thread waiting for an older slot drops it."""
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        with self._lock:
            now = time.perf_counter_ns()
            self.rate = max(0.0, rate)
            self.generation += 1
            if not self.rate:
                self._next_ns = now
                return
            # a backlog (next slot in the past) is kept; a slot far ahead, left by a lower
            # rate, comes in to one new interval from now
            self._next_ns = min(self._next_ns or now, now + int(1e9 / self.rate))

    def start(self) -> None:
        with self._lock:
            self._next_ns = time.perf_counter_ns()

    def next(self) -> int:
        """The next intended start (perf_counter ns), or -1 while the rate is 0."""
        with self._lock:
            if not self.rate:
                return -1
            slot = self._next_ns
            gap = self._rnd.expovariate(self.rate) if self.poisson else 1.0 / self.rate
            self._next_ns = slot + int(gap * 1e9)
            return slot


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
        self.service: list[int] = []
        """Open mode: uncorrected service times, packed like ``samples``."""
        self.lags: list[int] = []
        """Open mode: ``lag_us << 8 | flags | phase`` (phase in bits 0-3; flags 0xF0
        mark a dropped query, see DROPPED)."""
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
                if ex.schedule is not None:
                    self.open_loop(self.conn, ex.schedule)
                else:
                    self.hot_loop(self.conn)
        finally:
            self.active = False
            self.conn.close()

    def hot_loop(self, conn: Connection) -> None:  # noqa: PLR0915 - the one hot path
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
        epoch = -1
        one_kind = len(queries) == 1
        no_params = [not q.params for q in queries]
        empty: tuple[Any, ...] = ()
        k = 0
        while True:
            if control.epoch != epoch:  # one attribute read per query; the rest on change
                epoch = control.epoch
                if control.stopping:
                    break
                if index >= control.target_connections:
                    # parked by SetLoad: wait without spinning, look again
                    self.active = False
                    sleep(0.01)
                    epoch = -1
                    continue
                self.active = True
                if control.phase != phase:
                    phase = control.phase
                    tags = [Tag(plan.run_id, plan.worker_index, phase, q.name) for q in queries]
                    conn.apply_tag(tags[0])
                    compiled = [conn.compile(q, t) for q, t in zip(queries, tags, strict=True)]
                    key_base = phase << PHASE_SHIFT
            if not one_kind:
                k = pick()
            params = empty if no_params[k] else makers[k]()
            t0 = perf()
            try:
                execute(compiled[k], params)
            except Exception as exc:
                self.errors.append((key_base | k, str(classify(exc)), describe(exc)))
            else:
                append(((perf() - t0 + 500) // 1000) << LAT_SHIFT | key_base | k)
            if think:
                sleep(think)

    def open_loop(self, conn: Connection, schedule: Schedule) -> None:  # noqa: PLR0915
        """Open model: each free connection takes the next intended start time."""
        ex = self.ex
        control = ex.control
        plan = ex.plan
        queries = plan.workload.queries
        rnd = random.Random(None if plan.seed is None else plan.seed * 7919 + self.index)
        pick = weighted_picker([q.weight for q in queries], rnd)
        makers: list[Maker] = [
            compile_query(i, q, rnd, plan.sequences) for i, q in enumerate(queries)
        ]
        max_lag = int((plan.workload.load.max_lag_s or 0) * 1e9)
        sleep = time.sleep
        perf = time.perf_counter_ns
        append = self.samples.append
        service = self.service.append
        lags = self.lags.append
        classify = ex.driver.classify
        describe = ex.driver.describe_error
        execute = conn.execute
        next_slot = schedule.next
        index = self.index
        phase = -1
        compiled: list[Any] = []
        key_base = 0
        while not control.stopping:
            if index >= control.target_connections:
                self.active = False
                sleep(0.01)
                continue
            self.active = True
            generation = schedule.generation
            intended = next_slot()
            if intended < 0:
                sleep(0.01)
                continue
            wait = intended - perf()
            while wait > 0 and not control.stopping and generation == schedule.generation:
                sleep(min(wait, MAX_WAIT_NS) / 1e9)
                wait = intended - perf()
            if control.stopping:
                break
            if generation != schedule.generation and wait > 0:
                continue  # the rate changed while waiting: this slot is no longer planned
            # a query belongs to the phase its intended start fell in: a slot scheduled
            # before a phase change but started after it (late) stays in the old phase
            slot_phase = (
                control.phase if intended >= control.phase_since_ns else control.previous_phase
            )
            if slot_phase != phase:
                phase = slot_phase
                tags = [Tag(plan.run_id, plan.worker_index, phase, q.name) for q in queries]
                conn.apply_tag(tags[0])
                compiled = [conn.compile(q, t) for q, t in zip(queries, tags, strict=True)]
                key_base = phase << PHASE_SHIFT
            started = perf()
            lag = started - intended
            if max_lag and lag > max_lag:
                lags(((lag // 1000) << 8) | DROPPED | phase)
                continue
            lags(((lag // 1000) << 8) | phase)
            k = pick()
            params = makers[k]()
            try:
                execute(compiled[k], params)
            except Exception as exc:
                self.errors.append((key_base | k, str(classify(exc)), describe(exc)))
            else:
                end = perf()
                append(((end - intended + 500) // 1000) << LAT_SHIFT | key_base | k)
                service(((end - started + 500) // 1000) << LAT_SHIFT | key_base | k)

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
        self.control.target_connections = (
            plan.connections if plan.active_connections is None else plan.active_connections
        )
        load = plan.workload.load
        self.schedule: Schedule | None = None
        if load.stepped_by_rate:
            self.schedule = Schedule(plan.rate, load.arrival.value == "poisson", plan.seed)
        self.connect_gate = threading.BoundedSemaphore(
            max(1, plan.workload.load.max_parallel_connects)
        )
        self.threads: list[ConnectionWorker] = []
        self._lock = threading.Lock()
        self._connected = 0
        self._all_connected = threading.Event()
        self.on_progress: Callable[[int], None] | None = None
        self.last_schedule: dict[int, ScheduleData] = {}
        """Open mode: per phase, what the last ``collect`` found about the schedule."""

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
        if self.schedule is not None:
            self.schedule.start()
        self.control.go.set()

    def set_phase(self, phase: int) -> None:
        self.control.set_phase(phase)

    def set_connections(self, n: int) -> None:
        self.control.target_connections = max(0, min(n, self.plan.connections))

    def set_rate(self, rate: float) -> None:
        if self.schedule is not None:
            self.schedule.set_rate(rate)

    @property
    def rate(self) -> float:
        return self.schedule.rate if self.schedule is not None else 0.0

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
        service: Counter[int] = Counter()
        lags: Counter[int] = Counter()
        errors: list[tuple[int, str, str]] = []
        for t in self.threads:
            _drain(t.samples, counts)
            if self.schedule is not None:
                _drain(t.service, service)
                _drain(t.lags, lags)
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
        # (get, then create: setdefault would build a throwaway histogram per entry)
        for key, category, message in errors:
            cell = cells.get((key >> PHASE_SHIFT, key & 0xFF))
            if cell is None:
                cell = cells[(key >> PHASE_SHIFT, key & 0xFF)] = KindPhaseData()
            tally = cell.errors.setdefault(category, ErrorTally())
            tally.count += 1
            if len(tally.samples) < MAX_ERROR_SAMPLES and message not in tally.samples:
                tally.samples.append(message)
        for packed, c in service.items():
            key = packed & KEY_MASK
            cell = cells.get((key >> PHASE_SHIFT, key & 0xFF))
            if cell is None:
                cell = cells[(key >> PHASE_SHIFT, key & 0xFF)] = KindPhaseData()
            if cell.service is None:
                cell.service = hdr.new_histogram()
            cell.service.record_value(packed >> LAT_SHIFT, c)
        self.last_schedule = {}
        for packed, c in lags.items():
            phase = packed & 0x0F
            sched = self.last_schedule.get(phase)
            if sched is None:
                sched = self.last_schedule[phase] = ScheduleData()
            lag_us = packed >> 8
            if packed & DROPPED == DROPPED:
                sched.dropped += c
                continue
            sched.lag.record_value(lag_us, c)
            if lag_us * 1000 > LATE_NS:
                sched.late += c
        return cells


def _drain(lst: list[int], into: Counter[int]) -> None:
    """Move everything appended so far into ``into`` (appends may continue meanwhile)."""
    n = len(lst)
    if n:
        chunk = lst[:n]
        del lst[:n]
        into.update(chunk)
