"""One connection thread: connect, wait for the load start, run the hot loop.

The per-query path does only what it must: pick a kind, make its parameters, read the
clock, execute, and append one packed integer ``latency_us << 12 | phase << 8 | kind``
(and its issue time) to the thread's own lists. The phase comes from the query's issue
time (open model: its intended start) against the run's boundaries: the thread looks at
them only when the issue time reaches the next boundary or the control epoch moved, so a
query costs one integer comparison against the next boundary, whatever the commands do.
"""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, Any

from worker.boundaries import AFTER_END, BEFORE_LOAD, NEVER, Boundaries
from worker.collection import LAT_SHIFT, PHASE_SHIFT
from worker.drivers import Connection, DriverError
from worker.generators import Maker, compile_query, weighted_picker
from worker.query_log import ThreadLog
from worker.schedule import DROPPED, MAX_WAIT_NS, Schedule
from worker.tags import Tag

if TYPE_CHECKING:
    from worker.executor import Executor

PARK_S = 0.01
PARK_MAX_S = 2.0
"""A connection parked by SetLoad waits for the load control to change (it is woken by
the change), looking again at least this often."""
WAIT_STEP_NS = 50_000_000
"""Waiting for the load start: in steps of at most this, to notice commands."""


class ConnectionWorker(threading.Thread):
    def __init__(self, index: int, executor: Executor) -> None:
        super().__init__(name=f"conn-{index}", daemon=True)
        self.index = index
        self.ex = executor
        self.samples: list[int] = []
        self.issued: list[int] = []
        """Issue time (perf ns; open mode: intended start) of each sample, appended just
        before it: an unplanned end re-labels what was issued after it."""
        self.service: list[int] = []
        """Open mode: uncorrected service times, packed like ``samples``."""
        self.lags: list[int] = []
        """Open mode: ``lag_us << 8 | flags | phase`` (phase in bits 0-3; flags 0xF0
        mark a dropped query, see DROPPED)."""
        self.errors: list[tuple[int, str, str, int]] = []
        """(phase << 8 | kind, category, message, issue time)"""
        self._compiled: dict[int, list[Any]] = {}
        load = executor.plan.workload.load
        seed = executor.plan.seed
        self.qlog = ThreadLog(
            index,
            len(executor.plan.workload.queries),
            load.slow_queries,
            load.query_sample,
            random.Random(None if seed is None else seed * 104729 + index),
        )
        """The thread's query log (worker/query_log.py)."""
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
                self.conn = ex.driver.connect(ex.plan.workload.target, ex.connect_timeout())
        except DriverError as exc:
            self.connect_error = exc
        except Exception as exc:  # a driver bug must not hang READY
            self.connect_error = DriverError(ex.driver.classify(exc), ex.driver.describe_error(exc))
        finally:
            ex.connected_one(self)
        if self.conn is None:
            return
        self.qlog.server_id = self.conn.server_id
        try:
            ex.control.go.wait()
            if not ex.control.stopping:
                self._precompile(self.conn)
                if ex.schedule is not None:
                    self.open_loop(self.conn, ex.schedule)
                else:
                    self.hot_loop(self.conn)
        finally:
            self.active = False
            self.conn.close()

    def _wait_until(self, at: int) -> None:
        """Sleep until perf ns ``at`` (the load start), in steps that notice a stop."""
        control = self.ex.control
        epoch = control.epoch
        while (left := at - time.perf_counter_ns()) > 0 and control.epoch == epoch:
            time.sleep(min(left, WAIT_STEP_NS) / 1e9)

    def _compile(self, conn: Connection, phase: int) -> list[Any]:
        """Every kind's statement for ``phase`` (compiled once per phase)."""
        compiled = self._compiled.get(phase)
        if compiled is None:
            plan = self.ex.plan
            queries = plan.workload.queries
            tags = [Tag(plan.run_id, plan.worker_index, phase, q.name) for q in queries]
            compiled = self._compiled[phase] = [
                conn.compile(q, t) for q, t in zip(queries, tags, strict=True)
            ]
        return compiled

    def _tags(self, conn: Connection, phase: int) -> list[Any]:
        """Tag the session with ``phase``: its statements are ready (see _precompile)."""
        plan = self.ex.plan
        conn.apply_tag(Tag(plan.run_id, plan.worker_index, phase, plan.workload.queries[0].name))
        return self._compile(conn, phase)

    def _precompile(self, conn: Connection) -> None:
        """Before the load starts: every phase's statements (a driver may prepare them
        now), so that a boundary costs a query only the session tag."""
        for phase in {p for _, p in self.ex.control.bounds.edges}:
            self._compile(conn, phase)

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
        issued = self.issued.append
        execute = conn.execute
        index = self.index
        phase = -1
        compiled: list[Any] = []
        key_base = 0
        epoch = -1
        next_edge = 0
        one_kind = len(queries) == 1
        no_params = [not q.params for q in queries]
        empty: tuple[Any, ...] = ()
        qlog = self.qlog
        floors: list[int] = []
        left = qlog.reservoir.first_gap()
        k = 0
        while True:
            if not one_kind:
                k = pick()
            params = empty if no_params[k] else makers[k]()
            t0 = perf()
            if t0 >= next_edge or control.epoch != epoch:  # the rest only at an edge
                epoch = control.epoch
                if control.stopping:
                    break
                if index >= control.target_connections:
                    # parked by SetLoad: sleep until the control changes, look again
                    self.active = False
                    control.wait_change(epoch, PARK_MAX_S)
                    epoch = -1
                    continue
                bounds = control.bounds
                now_phase = bounds.phase_at(t0)
                if now_phase == AFTER_END:
                    break  # nothing is issued at or after the end
                if now_phase == BEFORE_LOAD:
                    self.active = False
                    self._wait_until(bounds.load_start)
                    epoch = -1
                    continue
                self.active = True
                next_edge = bounds.next_edge(t0)
                if now_phase != phase:
                    phase = now_phase
                    compiled = self._tags(conn, phase)
                    key_base = phase << PHASE_SHIFT
                    floors = qlog.floors(phase)
                    t0 = perf()
            try:
                execute(compiled[k], params)
            except Exception as exc:
                left = self._failed(exc, phase, k, t0, params, left)
            else:
                issued(t0)
                lat = (perf() - t0 + 500) // 1000
                append(lat << LAT_SHIFT | key_base | k)
                if lat > floors[k]:  # one of the slowest so far
                    qlog.slow(phase, k, lat, t0, params)
                left -= 1
                if not left:  # the uniform sample's next pick
                    left = qlog.sample(phase, k, lat, t0, params)
            if think:
                sleep(think)
        qlog.reservoir.finish(left)

    def _failed(
        self,
        exc: Exception,
        phase: int,
        k: int,
        issued_at: int,
        params: Any,
        left: int,
    ) -> int:
        """A failed query: counted, logged among the first failures, and offered to the
        uniform sample when its turn came; returns the sample's gap left to count."""
        driver = self.ex.driver
        category = str(driver.classify(exc))
        text = driver.describe_error(exc)
        self.errors.append(((phase << PHASE_SHIFT) | k, category, text, issued_at))
        latency = (time.perf_counter_ns() - issued_at + 500) // 1000
        self.qlog.fail(phase, k, latency, issued_at, params, exc, text, category)
        left -= 1
        if not left:
            left = self.qlog.sample(phase, k, latency, issued_at, params, exc, text, category)
        return left

    def open_loop(self, conn: Connection, schedule: Schedule) -> None:  # noqa: PLR0915
        """Open model: each free connection takes the next intended start time; a query
        belongs to the phase its intended start falls in (a slot planned before a boundary
        but started after it keeps the earlier phase)."""
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
        issued = self.issued.append
        service = self.service.append
        lags = self.lags.append
        execute = conn.execute
        next_slot = schedule.next
        index = self.index
        phase = -1
        compiled: list[Any] = []
        key_base = 0
        epoch = -1
        edge_start = NEVER
        next_edge = 0
        end = NEVER
        bounds: Boundaries | None = None
        qlog = self.qlog
        floors: list[int] = []
        left = qlog.reservoir.first_gap()
        while not control.stopping:
            seen = control.epoch  # (read first: a change after it ends the wait at once)
            if index >= control.target_connections:
                self.active = False
                control.wait_change(seen, PARK_MAX_S)
                continue
            self.active = True
            generation = schedule.generation
            intended = next_slot()
            if intended < 0:
                sleep(PARK_S)
                continue
            if intended >= next_edge or intended < edge_start or control.epoch != epoch:
                epoch = control.epoch
                bounds = control.bounds
                slot_phase = bounds.phase_at(intended)
                if slot_phase == AFTER_END:
                    break  # no slot at or after the end is issued
                if slot_phase == BEFORE_LOAD:
                    self._wait_until(bounds.load_start)
                    epoch = -1
                    continue
                edge_start = intended
                next_edge = bounds.next_edge(intended)
                end = bounds.end
                if slot_phase != phase:
                    phase = slot_phase
                    compiled = self._tags(conn, phase)
                    key_base = phase << PHASE_SHIFT
                    floors = qlog.floors(phase)
            wait = intended - perf()
            while wait > 0 and not control.stopping and generation == schedule.generation:
                sleep(min(wait, MAX_WAIT_NS) / 1e9)
                wait = intended - perf()
            if control.stopping:
                break
            if generation != schedule.generation and wait > 0:
                continue  # the rate changed while waiting: this slot is no longer planned
            started = perf()
            lag = started - intended
            if started >= end or (control.epoch != epoch and started >= control.bounds.end):
                lags(((lag // 1000) << 8) | DROPPED | phase)
                break  # planned before the end, but it would be issued after it
            if max_lag and lag > max_lag:
                lags(((lag // 1000) << 8) | DROPPED | phase)
                continue
            lags(((lag // 1000) << 8) | phase)
            k = pick()
            params = makers[k]()
            try:
                execute(compiled[k], params)
            except Exception as exc:
                left = self._failed(exc, phase, k, intended, params, left)
            else:
                end_ns = perf()
                issued(intended)
                lat = (end_ns - intended + 500) // 1000
                append(lat << LAT_SHIFT | key_base | k)
                service(((end_ns - started + 500) // 1000) << LAT_SHIFT | key_base | k)
                if lat > floors[k]:  # one of the slowest so far
                    qlog.slow(phase, k, lat, intended, params)
                left -= 1
                if not left:  # the uniform sample's next pick
                    left = qlog.sample(phase, k, lat, intended, params)
        qlog.reservoir.finish(left)

    def cancel(self) -> None:
        if self.conn is not None:
            self.conn.cancel()
