"""The executor: one thread per connection (worker/connection.py), the load's controls.

The agent writes to ``LoadControl`` (boundaries, connections, stop) and the connection
threads read it; every change bumps ``epoch``, the one attribute a thread reads per
query besides the next boundary. Intervals are gathered by worker/collection.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from snowload.v1 import common_pb2, control_pb2
from snowload.workload import Workload
from worker.boundaries import NEVER, Boundaries
from worker.cancels import cancel_all
from worker.collection import (
    LAT_SHIFT,
    PHASE_SHIFT,
    Cells,
    KindPhaseData,
    ScheduleData,
    collect,
)
from worker.connection import ConnectionWorker
from worker.drivers import Driver
from worker.generators import Sequences
from worker.query_log import LogShape, gather
from worker.schedule import Schedule

__all__ = [
    "LAT_SHIFT",
    "PHASE_SHIFT",
    "ConnectionWorker",
    "Executor",
    "KindPhaseData",
    "LoadControl",
    "RunPlan",
    "Schedule",
]


CLOSE_WAIT_S = 5.0
"""After the cancels: how long the connection threads get, together, to end."""


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

    def __init__(self) -> None:
        self.epoch = 0
        """Bumped on every change below: the hot loop reads this one attribute per query
        and looks at the rest only when it moved."""
        self._bounds = Boundaries(())
        self._stopping = False
        self._target_connections = 0
        self.go = threading.Event()
        self._changed = threading.Condition()

    def _bump(self) -> None:
        with self._changed:
            self.epoch += 1
            self._changed.notify_all()

    def wait_change(self, epoch: int, timeout_s: float) -> bool:
        """Block until ``epoch`` moved on (True) or ``timeout_s`` passed: a parked
        connection sleeps here instead of polling, so that it costs no wake-ups (and no
        GIL) while parked."""
        with self._changed:
            return self._changed.wait_for(lambda: self.epoch != epoch, timeout_s)

    @property
    def bounds(self) -> Boundaries:
        return self._bounds

    @bounds.setter
    def bounds(self, value: Boundaries) -> None:
        self._bounds = value
        self._bump()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stopping = value
        self._bump()

    @property
    def target_connections(self) -> int:
        return self._target_connections

    @target_connections.setter
    def target_connections(self, value: int) -> None:
        self._target_connections = value
        self._bump()


class Executor:
    """Opens the worker's connections with bounded parallelism and runs the load."""

    def __init__(
        self,
        plan: RunPlan,
        driver: Driver,
        phase: int = common_pb2.STATE_MEASUREMENT,
        connect_timeout_s: float = 30.0,
        connect_delay_s: float = 0.0,
    ) -> None:
        self.plan = plan
        self.phase = phase if phase != common_pb2.STATE_PREPARING else common_pb2.STATE_WARMUP
        """Without a plan (benchmarks): the phase the load starts in."""
        self.connect_delay_s = connect_delay_s
        self.driver = driver
        self.connect_timeout_s = connect_timeout_s
        self.connect_deadline: float | None = None
        """time.monotonic() by which a connect must give up (the READY deadline less a
        margin: see worker.preparation.ReadyBudget); None: ``connect_timeout_s`` each."""
        self.control = LoadControl()
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
        self.ended = NEVER
        """perf ns of an unplanned end that was decided before its command arrived."""

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

    def connect_timeout(self) -> float:
        """The timeout of a connect that starts now."""
        if self.connect_deadline is None:
            return self.connect_timeout_s
        return min(self.connect_timeout_s, max(1.0, self.connect_deadline - time.monotonic()))

    def connected_one(self, _thread: ConnectionWorker) -> None:
        with self._lock:
            self._connected += 1
            done = self._connected
        if self.on_progress is not None:
            self.on_progress(done)
        if done == len(self.threads):
            self._all_connected.set()

    # -- control -------------------------------------------------------------------------

    def start(self, bounds: Boundaries | None = None) -> None:
        """Release the threads: they issue from the load start on (now without a plan)."""
        if bounds is not None:
            self.control.bounds = bounds
        elif not self.control.bounds.edges:
            self.control.bounds = Boundaries.from_now(self.phase, time.perf_counter_ns())
        if self.schedule is not None:
            self.schedule.start(max(self.control.bounds.load_start, time.perf_counter_ns()))
        self.control.go.set()

    def set_bounds(self, bounds: Boundaries) -> None:
        self.control.bounds = bounds

    def set_phase(self, phase: int, at: int | None = None) -> None:
        """``phase`` from perf ns ``at`` (now by default) on."""
        at = time.perf_counter_ns() if at is None else at
        self.control.bounds = self.control.bounds.with_phase(phase, at)

    def end_at(self, at: int, *, decided_before: bool = False) -> None:
        """Issue nothing at or after perf ns ``at``; if it was decided before this call
        (an unplanned stop), what was issued since is not MEASUREMENT."""
        self.control.bounds = self.control.bounds.ending_at(at)
        if decided_before:
            self.ended = min(self.ended, at)

    def set_connections(self, n: int) -> None:
        self.control.target_connections = max(0, min(n, self.plan.connections))

    def set_rate(self, rate: float) -> None:
        if self.schedule is not None:
            self.schedule.set_rate(rate)

    @property
    def rate(self) -> float:
        return self.schedule.rate if self.schedule is not None else 0.0

    def stop(self, drain_timeout_s: float) -> None:
        """Blocking: stop issuing, let in-flight queries finish, cancel stragglers (all at
        once: worker/cancels.py), close."""
        self.control.stopping = True
        self.control.go.set()
        deadline = time.monotonic() + drain_timeout_s
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        cancel_all([t.cancel for t in self.threads if t.is_alive()])
        closed = time.monotonic() + CLOSE_WAIT_S
        for t in self.threads:
            t.join(max(0.0, closed - time.monotonic()))

    def current_phase(self) -> int:
        """The phase a query issued now would take."""
        return self.control.bounds.phase_at(time.perf_counter_ns())

    @property
    def active_connections(self) -> int:
        return sum(1 for t in self.threads if t.active)

    # -- measurements --------------------------------------------------------------------

    def collect(self, cut: int = NEVER) -> Cells:
        """Everything issued before ``cut`` (perf ns) and recorded since the last call,
        keyed by (phase, kind index)."""
        cells, self.last_schedule = collect(
            self.threads, self.schedule is not None, ended=self.ended, cut=cut
        )
        return cells

    def query_log(self, to_run_clock: Callable[[int], int]) -> control_pb2.QueryLog:
        """The worker's query log (worker/query_log.py), from the threads that stopped;
        ``to_run_clock`` maps perf ns onto the run's clock."""
        workload = self.plan.workload
        load = workload.load
        shape = LogShape(
            tuple(q.name for q in workload.queries),
            load.slow_queries,
            load.query_sample,
            load.record_params,
        )
        logs = [t.qlog for t in self.threads if not t.is_alive()]
        seed = None if self.plan.seed is None else self.plan.seed * 31 + self.plan.worker_index
        return gather(logs, shape, to_run_clock, ended=self.ended, rng=random.Random(seed))
