"""The clock-sync burst after Welcome is bounded: a few round trips when the estimate is
good at once, never more than SYNC_MAX nor (with an estimate) longer than its budget, and
spaced, so a fleet that attaches together does not flood the controller. A real agent
against an in-process controller; the controller's own Pongs are counted."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controller.server import Controller, ControllerSettings
from snowload.v1 import control_pb2
from tests.cluster import wait_for
from worker import agent as agent_mod
from worker.agent import Agent
from worker.sync_burst import (
    SYNC_BUDGET_NS,
    SYNC_GAP_NS,
    SYNC_MAX,
    SYNC_MIN,
    SYNC_MIN_GAP_NS,
    SyncBurst,
)

MS = 1_000_000


def gaps(rule: SyncBurst, **clock: Any) -> list[int]:
    """The gaps the rule asks for, round trip after round trip, with ``clock`` fixed and
    each round trip taking 1 ms."""
    out: list[int] = []
    sent, elapsed = 1, 0
    rnd = random.Random(7)
    while (gap := rule.next_gap_ns(sent, elapsed, rnd=rnd, **clock)) is not None:
        out.append(gap)
        sent += 1
        elapsed += gap + MS
    return out


def test_a_good_estimate_ends_the_burst_after_its_minimum() -> None:
    asked = gaps(SyncBurst(), known=True, uncertainty_ns=100_000, last_rtt_ns=200_000)
    assert len(asked) + 1 == SYNC_MIN
    assert all(SYNC_MIN_GAP_NS[0] <= g <= SYNC_MIN_GAP_NS[1] for g in asked)


def test_a_poor_estimate_ends_the_burst_at_its_maximum() -> None:
    rule = SyncBurst()
    asked = gaps(rule, known=True, uncertainty_ns=5 * MS, last_rtt_ns=10 * MS)
    assert len(asked) + 1 == SYNC_MAX
    # SYNC_MIN round trips nearly back to back, then 5-15 ms apart (the 10 ms round trip,
    # jittered)
    assert all(g <= SYNC_MIN_GAP_NS[1] for g in asked[: SYNC_MIN - 1])
    assert all(5 * MS <= g <= 15 * MS for g in asked[SYNC_MIN - 1 :])
    assert rule.exhausted(SYNC_MAX, sum(asked), known=True)
    assert not rule.exhausted(SYNC_MAX - 1, sum(asked[:-1]), known=True)


def test_a_slow_controller_ends_the_burst_at_its_budget() -> None:
    rule = SyncBurst(maximum=1000)
    assert not rule.exhausted(20, SYNC_BUDGET_NS - 1, known=True)
    assert rule.exhausted(20, SYNC_BUDGET_NS, known=True)
    # ... but not before there is an estimate: READY needs one
    assert not rule.exhausted(20, SYNC_BUDGET_NS, known=False)
    # a 200 ms round trip spaces them 100-300 ms apart
    gap = rule.next_gap_ns(20, MS, known=True, uncertainty_ns=100 * MS, last_rtt_ns=200 * MS)
    assert gap is not None and 100 * MS <= gap <= 300 * MS


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


async def test_an_agent_that_never_reaches_the_target_stops_its_burst_at_the_bounds(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a target no round trip can meet: only the count and the budget end the burst
    monkeypatch.setattr(agent_mod, "SyncBurst", lambda: SyncBurst(target_ns=-1))
    pongs: list[int] = []
    send = controller.registry.send_unsequenced

    def counted(rec: Any, msg: control_pb2.AttachResponse) -> None:
        if msg.WhichOneof("command") == "pong":
            pongs.append(time.monotonic_ns())
        send(rec, msg)

    monkeypatch.setattr(controller.registry, "send_unsequenced", counted)
    agent = Agent(controller.address, worker_id="burst")
    task = asyncio.create_task(agent.serve())
    try:
        began = time.monotonic()
        await wait_for(agent._synced.is_set, 20, "the burst to end")
        took = time.monotonic() - began
        # an estimate before READY, and the burst ended by its bounds
        assert agent.clock.known
        assert SYNC_MIN <= len(pongs) <= SYNC_MAX + 1 + int(took)  # + 1/s regular heartbeats
        # after the first SYNC_MIN, spaced: at least half SYNC_GAP_NS apart on average
        spaced = pongs[SYNC_MIN - 1 : SYNC_MAX]
        assert spaced[-1] - spaced[0] >= (len(spaced) - 1) * SYNC_GAP_NS // 2
        # then only the regular heartbeat, once a second
        burst = len(pongs)
        await asyncio.sleep(2.0)
        assert len(pongs) - burst <= 3
    finally:
        await agent.shutdown(0.5)
        await asyncio.wait_for(task, 10)
