"""A live stream that ends cleanly (status OK) without the run's final message: a gateway
with a stream time limit, a controller restarting its streams. The TUI must not take the
end of the stream for the end of the run: it asks GetRun, and goes on watching while the
run is still going.

The controller here is a real gRPC server on a free port whose RunService ends WatchRun
early on purpose (the real controller never does); the TUI side is the real client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc
from tui import format as fmt
from tui.client import ConnectionSettings, RunClient
from tui.live_model import LiveModel
from tui.watcher import follow_run

RUN_ID = "5e1f0c3a9b27"


class EndsStreamsEarly(run_pb2_grpc.RunServiceServicer):
    """The run moves MEASUREMENT -> COMPLETED on its own clock; each WatchRun sends the
    current state once and then ends with OK, never with the final message."""

    def __init__(self, clean_ends_before_done: int) -> None:
        self.states = [common_pb2.STATE_MEASUREMENT] * clean_ends_before_done
        self.get_runs = 0
        self.watches = 0

    def run(self) -> run_pb2.Run:
        state = self.states[0] if self.states else common_pb2.STATE_COMPLETED
        run = run_pb2.Run(run_id=RUN_ID, name="x", state=state)
        run.events.add(state=common_pb2.STATE_PENDING)
        run.events.add(state=common_pb2.STATE_MEASUREMENT)
        if state == common_pb2.STATE_COMPLETED:
            run.events.add(state=common_pb2.STATE_PROCESSING)
            run.events.add(state=common_pb2.STATE_COMPLETED)
            run.reason = "duration_elapsed"
        return run

    async def GetRun(
        self, request: run_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> run_pb2.GetRunResponse:
        self.get_runs += 1
        return run_pb2.GetRunResponse(run=self.run())

    async def GetRunSeries(
        self, request: run_pb2.GetRunSeriesRequest, context: grpc.aio.ServicerContext
    ) -> run_pb2.GetRunSeriesResponse:
        return run_pb2.GetRunSeriesResponse()

    async def WatchRun(
        self, request: run_pb2.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[run_pb2.WatchRunResponse]:
        self.watches += 1
        yield run_pb2.WatchRunResponse(run=self.run(), progress=run_pb2.Progress())
        if self.states:
            self.states.pop()  # time passes: the run ends while nobody watches


async def serve(servicer: EndsStreamsEarly) -> tuple[grpc.aio.Server, str]:
    srv = grpc.aio.server()
    run_pb2_grpc.add_RunServiceServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    return srv, f"127.0.0.1:{port}"


@pytest.mark.parametrize("clean_ends", [1, 3])
async def test_a_stream_that_ends_without_the_final_state_is_not_the_end(
    clean_ends: int,
) -> None:
    """Fails if the TUI treats a stream that closes cleanly without a final message as
    the end of the run (it would stop on MEASUREMENT instead of asking GetRun)."""
    servicer = EndsStreamsEarly(clean_ends)
    srv, address = await serve(servicer)
    client = RunClient(ConnectionSettings(address, backoff_initial_s=0.01, backoff_max_s=0.02))
    model = LiveModel(RUN_ID)
    states: list[int] = []
    try:
        await asyncio.wait_for(
            follow_run(client, model, lambda: states.append(model.state)), timeout=20
        )
    finally:
        await client.close()
        await srv.stop(None)
    assert model.state == fmt.COMPLETED
    assert model.terminal
    assert model.run is not None and model.run.reason == "duration_elapsed"
    # every clean end was followed by a GetRun; the stream was re-opened while it ran
    assert servicer.watches == clean_ends
    assert servicer.get_runs == clean_ends + 1
    # and it never showed the run as ended before it had
    first_end = states.index(fmt.COMPLETED)
    assert set(states[first_end:]) == {fmt.COMPLETED}
    assert servicer.get_runs == clean_ends + 1
