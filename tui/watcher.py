"""Following one run to its end over WatchRun, surviving dropped streams.

On a drop (a gRPC error, or no update for a while) it waits with backoff (0.2 s doubling
to 5 s), asks GetRun for the truth and, unless the run has ended meanwhile, re-opens the
stream after backfilling the series with GetRunSeries. A run is never left shown in a
phase that has ended: a terminal GetRun ends the watch with that state.

Updates carry the phase events, so a state change needs no GetRun (only updates without
events, from an older controller, make it ask).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from tui import format as fmt
from tui.client import ControllerError, RunClient
from tui.live_model import LiveModel


async def follow_run(
    client: RunClient,
    model: LiveModel,
    changed: Callable[[], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Feed ``model`` until the run's terminal state; call ``changed`` after each change."""
    settings = client.settings
    backoff = settings.backoff_initial_s
    run_id = model.run_id
    while True:
        try:
            # the truth first (also the fallback after a drop), then the history so far
            run = await client.get_run(run_id)
            model.apply_run(run)
            model.apply_series(await client.get_series(run_id))
            changed()
            if fmt.is_terminal(run.state):
                return
            async for update in client.watch(run_id):
                model.stream_ok()
                backoff = settings.backoff_initial_s
                before = model.state
                model.apply_update(update)
                if update.final:
                    await _best_effort(_final_series(client, model))
                    changed()
                    return
                if model.state != before and not update.run.events:
                    # an older controller's updates carry no phase events: ask for them
                    await _best_effort(_details(client, model))
                changed()
            raise ControllerError(
                client.address, None, "the stream ended before the run's final state"
            )
        except ControllerError as exc:
            if exc.final:
                detail = (
                    f"no run {run_id} on the controller at {client.address}"
                    if exc.not_found
                    else str(exc)
                )
                model.give_up(detail)
                changed()
                return
            model.stream_lost(str(exc), backoff)
            changed()
            await sleep(backoff)
            backoff = min(backoff * 2, settings.backoff_max_s)


async def _final_series(client: RunClient, model: LiveModel) -> None:
    model.apply_series(await client.get_series(model.run_id))


async def _details(client: RunClient, model: LiveModel) -> None:
    model.apply_run(await client.get_run(model.run_id))


async def _best_effort(aw: Awaitable[None]) -> None:
    """Extra detail that the stream does not need: a failure here is not a drop."""
    with contextlib.suppress(ControllerError):
        await aw
