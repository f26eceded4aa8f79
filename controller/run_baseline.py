"""``snowload run --baseline``: find the baseline before the run (refusing one that cannot
be compared, and saying why), and judge the run against it once it has ended (the gate
itself: controller/gate.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from controller import lifecycle as lc
from controller.gate import GateResult, gate, workload_differences
from controller.run_verdicts import load
from controller.store import RunStore
from controller.store_remote import RemoteUnsupported
from snowload.bootstrap import RESAMPLES
from snowload.v1 import run_pb2
from snowload.verdicts import RunSeconds, TooShort, check_length, compare
from snowload.workload import Workload


class BaselineError(ValueError):
    """The baseline cannot be used (the message says why)."""


@dataclass(frozen=True)
class Baseline:
    ref: str
    run: run_pb2.Run
    seconds: RunSeconds

    @property
    def label(self) -> str:
        return self.run.run_id if self.ref == self.run.run_id else f"{self.ref} ({self.run.run_id})"


def resolve(store: RunStore, ref: str, workload: Workload, *, force: bool) -> Baseline:
    run = store.find(ref)
    if run is None:
        raise BaselineError(
            f"--baseline {ref}: no run or name {ref!r} in {getattr(store, 'path', 'the store')} "
            "(name a run with 'snowload runs tag RUN NAME')"
        )
    if run.state != lc.COMPLETED:
        raise BaselineError(
            f"--baseline {ref}: run {run.run_id} ended {lc.state_name(run.state)} "
            f"({run.reason}); a baseline must have COMPLETED"
        )
    differ = workload_differences(run.workload_json, workload.to_dict())
    if differ and not force:
        raise BaselineError(
            f"--baseline {ref}: run {run.run_id} ran a different workload; these fields "
            f"differ: {', '.join(differ)} (--force compares anyway)"
        )
    seconds = load(store, run)
    try:
        check_length([seconds])
    except TooShort as exc:
        raise BaselineError(f"--baseline {ref}: {exc}") from None
    return Baseline(ref, run, seconds)


def judge(
    store: RunStore,
    baseline: Baseline,
    final: run_pb2.Run,
    margin: float,
    *,
    timeout_s: float = 10,
    resamples: int = RESAMPLES,
) -> GateResult:
    """The ended run against its baseline. Raises TooShort. A daemon stores a run's
    histograms as it ends: wait for them a little."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            seconds = load(store, final)
        except RemoteUnsupported:
            seconds = None
        if (seconds is not None and seconds.seconds) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if seconds is None:
        raise TooShort(f"run {final.run_id}: its histograms were not stored in time")
    return gate(baseline.label, compare(baseline.seconds, seconds, resamples=resamples), margin)
