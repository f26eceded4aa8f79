"""Drives the load of one run while it is under way: fixed, staged, or a find-max search.

Levels are connections (closed mode, find_max by connections) or queries per second
(open mode, find_max by rate); SetLoad carries them to the workers. When a closed-mode
level needs more connections than the run's workers hold, idle attached workers are
recruited: they start directly in the current phase, with sequence slots of their own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from controller import lifecycle as lc
from controller.load_control import FindMaxSearch, split_connections, split_rate, stage_target
from controller.registry import WorkerRecord, WorkerRegistry
from controller.runs import ActiveRun
from snowload.v1 import common_pb2, control_pb2

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

SPARE_SLOTS = 16
"""Sequence slots kept free for workers recruited mid-run (their keys stay disjoint)."""
TICK_S = 0.25


class LoadDriver:
    def __init__(
        self,
        run: ActiveRun,
        registry: WorkerRegistry,
        sleep: Callable[[ActiveRun, float], Awaitable[None]],
    ) -> None:
        self.run = run
        self.registry = registry
        self.sleep = sleep
        self.load = run.workload.load
        self.by_rate = self.load.stepped_by_rate
        self.search = FindMaxSearch(self.load.find_max) if self.load.find_max else None
        run.find_max = self.search
        self._at_ns = 0

    @property
    def controls_level(self) -> bool:
        """Whether the level changes during the run (else Assign says it all)."""
        return bool(self.load.stages) or self.search is not None

    def initial_level(self) -> float:
        if self.search is not None:
            return self.search.config.start
        if self.load.stages:
            first = self.load.stages[0]
            return float(first.connections if first.connections is not None else first.rate or 0)
        return self.load.rate if self.by_rate else float(self.load.connections)

    def planned_measurement_s(self) -> float | None:
        """How long MEASUREMENT lasts, if known ahead (a find-max search decides its end)."""
        if self.search is not None:
            return None
        if self.load.stages:
            return sum(s.duration_s for s in self.load.stages)
        return self.load.duration_s

    def apply(self, level: float, at_ns: int = 0) -> None:
        """Ask the workers for ``level`` in total (SetLoad only to those whose part changes),
        from the instant ``at_ns`` if it is planned, else at once."""
        run = self.run
        self._at_ns = at_ns
        run.level = level
        workers = [w for w in run.workers if w.worker_id not in run.dropped and not w.lost]
        if not workers:
            return
        if self.by_rate:
            for rec, rate in zip(workers, split_rate(level, len(workers)), strict=True):
                self._set_load(rec, connections=0, rate=rate)
            return
        needed = int(level)
        if needed > sum(run.shares.get(w.worker_id, 0) for w in workers):
            self._recruit(needed - sum(run.shares.get(w.worker_id, 0) for w in workers))
            workers = [w for w in run.workers if w.worker_id not in run.dropped and not w.lost]
        parts = split_connections(needed, [run.shares.get(w.worker_id, 0) for w in workers])
        for rec, part in zip(workers, parts, strict=True):
            self._set_load(rec, connections=part, rate=0.0)

    def _set_load(self, rec: WorkerRecord, *, connections: int, rate: float) -> None:
        key = (connections, rate)
        if self.run.sent_load.get(rec.worker_id) == key:
            return
        self.run.sent_load[rec.worker_id] = key
        set_load = control_pb2.SetLoad(run_id=self.run.run_id, connections=connections, rate=rate)
        set_load.decide_time.FromNanoseconds(time.time_ns())
        if self._at_ns:
            set_load.apply_time.FromNanoseconds(self._at_ns)
        self.registry.send(rec, control_pb2.AttachResponse(set_load=set_load))

    def _recruit(self, missing: int) -> None:
        """Idle attached workers join the run in its current phase, no warmup of their own."""
        run = self.run
        for rec in self.registry.idle():
            if missing <= 0 or len(run.workers) >= run.sequence_slots:
                break
            share = min(missing, rec.hello.capacity or missing)
            index = len(run.workers)
            assign = control_pb2.Assign(
                run_id=run.run_id,
                workload_json=run.workload.to_json(),
                worker_index=index,
                worker_count=index + 1,
                connections=share,
                run_setup=False,
                phase=run.state,
                started=run.start_ns > 0,
                sequence_slot=index,
                sequence_slots=run.sequence_slots,
            )
            if run.start_ns:
                stamp: Timestamp = assign.start_time
                stamp.FromNanoseconds(run.start_ns)
            if run.plan is not None:
                # its phase and its seconds come from the run's instants, like everyone's
                assign.plan.CopyFrom(run.plan)
            rec.run_id = run.run_id
            rec.assignment = assign
            run.workers.append(rec)
            run.shares[rec.worker_id] = share
            run.recruited.append(rec.worker_id)
            self.registry.send(rec, control_pb2.AttachResponse(assign=assign))
            if run.pools:
                self.registry.send(
                    rec,
                    control_pb2.AttachResponse(
                        set_pools=control_pb2.SetPools(run_id=run.run_id, pools=run.pools)
                    ),
                )
            missing -= share

    async def measure(self) -> str:
        """Run MEASUREMENT to its end; returns the reason it ended."""
        if self.search is not None:
            return await self._find_max()
        plan = self.run.plan
        began = plan.measurement_start_time.ToNanoseconds() if plan else time.time_ns()
        lead = (
            began - plan.decide_time.ToNanoseconds() - int(self.load.warmup_s * 1e9) if plan else 0
        )
        total = self.planned_measurement_s() or 0.0
        if self.load.stages:
            # each tick's level is known ahead: sent a lead before its instant, applied at it
            tick = 1
            while tick * TICK_S < total:
                at = began + int(tick * TICK_S * 1e9)
                await self._until(at - lead)
                self.apply(stage_target(self.load.stages, tick * TICK_S, 0.0), at_ns=at)
                tick += 1
        await self._until(began + int(total * 1e9))
        return lc.Reason.DURATION_ELAPSED

    def prime(self) -> None:
        """Right after Start: a staged run's level at MEASUREMENT start, planned ahead."""
        plan = self.run.plan
        if self.load.stages and plan is not None:
            self.apply(
                stage_target(self.load.stages, 0.0, 0.0),
                at_ns=plan.measurement_start_time.ToNanoseconds(),
            )

    async def _until(self, at_ns: int) -> None:
        await self.sleep(self.run, max(0.0, (at_ns - time.time_ns()) / 1e9))

    async def _find_max(self) -> str:
        search = self.search
        assert search is not None
        deadline = time.monotonic() + self.load.duration_s
        while (level := search.next_level()) is not None:
            if time.monotonic() + search.config.step_duration_s > deadline:
                search.concluded = True
                search.reason = f"time limit ({self.load.duration_s:g}s) reached; best so far kept"
                break
            self.apply(level)
            began_ns = time.time_ns()
            await self.sleep(self.run, search.config.step_duration_s)
            ended_ns = time.time_ns()
            # the second that ends the step arrives with the workers' next reports
            waited = time.monotonic()
            while time.monotonic() - waited < 1.5:
                point = self.run.metrics.complete_point()
                if point is not None and point.end_ns >= ended_ns - 300_000_000:
                    break
                await self.sleep(self.run, 0.05)
            stats = self.window_stats(began_ns + 1_000_000_000, ended_ns)
            search.record(level, stats)
            self.run.broadcaster.publish(self.run.update())
        return "search_concluded"

    def window_stats(self, start_ns: int, end_ns: int) -> common_pb2.LatencyStats:
        """Merged stats of the series seconds that ended inside the window."""
        merged, seconds = self.run.metrics.window(start_ns, end_ns + 500_000_000)
        return merged.stats(seconds)
