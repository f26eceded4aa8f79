"""The live stream is cut mid-run; the TUI reconnects (backoff from 0.2 s), asks GetRun and
shows the run's true final state — never a phase that has already ended.

Two real cuts, no mocks:

* the network between the TUI and the controller: the TUI dials the controller through a
  small TCP relay that the test can cut (every connection reset, new ones refused) and
  restore. The run goes on meanwhile (the workers talk to the controller directly) and
  ends while the TUI is cut off, so it learns the end from GetRun on reconnect;
* the TUI's own gRPC channel closed under the running stream (the stream's read is
  cancelled, later calls on that channel fail): the client opens a new channel and the
  stream resumes while the run is still going.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from textual.widgets import Static

from snowload.v1 import run_pb2
from tests.tui_support import SIZE, cluster, model_state, until, workload_toml
from tui import format as fmt
from tui.app import SnowloadApp
from tui.client import ConnectionSettings, RunClient
from tui.live_model import Connection
from tui.screens.live import LiveScreen
from tui.widgets.timeline import PhaseTimeline

pytestmark = pytest.mark.slow


class Relay:
    """A TCP relay to ``target`` whose connections can be cut and refused."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.refusing = False
        self.accepted = 0
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        link = (writer, up_writer)
        self._links.add(link)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(src, dst, link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._abort(link)

    def _abort(self, link: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        for w in link:
            w.transport.abort()  # a reset, as a dropped network gives
        self._links.discard(link)

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``restore()``."""
        self.refusing = True
        for link in list(self._links):
            self._abort(link)

    def restore(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SNOWLOAD_HOME", str(tmp_path))
    return tmp_path


async def test_a_network_cut_mid_run_ends_on_the_true_final_state(home: Path) -> None:
    async with cluster(home, workers=1) as c:
        direct = RunClient(ConnectionSettings(c.address))
        relay = Relay(c.address)
        via_relay = await relay.start()
        run = await direct.start_run(
            run_pb2.StartRunRequest(
                workload_toml=workload_toml(name="tui-cut", database="cut.db"),
                warmup="1s",
                duration="3s",
            )
        )
        app = SnowloadApp(via_relay)
        async with app.run_test(size=SIZE) as pilot:
            app.open_live(run.run_id)
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), 5, "Live")
            live = app.screen
            assert isinstance(live, LiveScreen)
            model = live.model
            await until(
                pilot,
                lambda: model.state == fmt.MEASUREMENT and model.connection is Connection.LIVE,
                30,
                "MEASUREMENT, streaming",
                lambda: model_state(model),
            )
            relay.cut()
            await until(
                pilot, lambda: model.connection is Connection.RECONNECTING, 10, "the drop noticed"
            )
            status = live.query_one("#live-status", Static)
            await pilot.pause(0.1)
            assert "reconnecting" in str(status.content)
            # the run ends while the TUI is cut off from the controller
            task = c.controller.runs.active[run.run_id].task
            assert task is not None
            await until(pilot, task.done, 30, "the run to end on the controller")
            truth = await direct.get_run(run.run_id)
            assert truth.state == fmt.COMPLETED
            assert not model.terminal  # it cannot know yet, and does not pretend
            relay.restore()
            # back within one backoff step (at most 5 s) plus a round trip
            await until(
                pilot,
                lambda: model.terminal,
                15,
                "the final state after reconnecting",
                lambda: model_state(model),
            )
            await pilot.pause(0.2)
            assert model.state == fmt.COMPLETED
            assert model.run is not None
            assert model.run.reason == "duration_elapsed"
            assert model.run.summary == truth.summary
            assert model.connection is Connection.ENDED
            texts = [e.text for e in model.events]
            assert any(t.startswith("stream lost") for t in texts)
            assert "run COMPLETED (duration_elapsed)" in texts
            timeline = str(live.query_one("#timeline", PhaseTimeline).content)
            assert "✓ MEASUREMENT" in timeline and "✓ COMPLETED" in timeline
            assert "● " not in timeline  # no phase shown as current
            # the plotted series was backfilled from GetRunSeries: no gap from the cut
            seconds = [p.second for p in model.points]
            assert seconds == list(range(1, len(seconds) + 1)) and len(seconds) >= 4
            assert relay.accepted >= 2
        await relay.close()
        await direct.close()


async def test_a_closed_channel_mid_run_resumes_the_stream(home: Path) -> None:
    async with cluster(home, workers=1) as c:
        app = SnowloadApp(c.address)
        async with app.run_test(size=SIZE) as pilot:
            client = await app.wait_client()
            assert client is not None
            run = await client.start_run(
                run_pb2.StartRunRequest(
                    workload_toml=workload_toml(name="tui-close", database="close.db"),
                    warmup="0s",
                    duration="4s",
                )
            )
            app.open_live(run.run_id)
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), 5, "Live")
            live = app.screen
            assert isinstance(live, LiveScreen)
            model = live.model
            await until(
                pilot,
                lambda: model.state == fmt.MEASUREMENT and model.connection is Connection.LIVE,
                30,
                "MEASUREMENT, streaming",
                lambda: model_state(model),
            )
            old_channel = client.channel
            await old_channel.close(None)
            await until(
                pilot, lambda: model.connection is Connection.RECONNECTING, 10, "the drop noticed"
            )
            await until(
                pilot,
                lambda: model.connection is Connection.LIVE or model.terminal,
                10,
                "the stream resumed",
            )
            assert client.channel is not old_channel
            assert not model.terminal  # resumed while the run was still going
            await until(pilot, lambda: model.terminal, 30, "the final state")
            assert model.state == fmt.COMPLETED
            texts = [e.text for e in model.events]
            assert "stream restored" in texts
            assert texts.index("stream restored") < texts.index("run COMPLETED (duration_elapsed)")
