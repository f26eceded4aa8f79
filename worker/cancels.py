"""Cancelling the statements still in flight at a drain's end, all at once.

A cancel may be a blocking network request of its own (PostgreSQL: a cancel request on a
new socket; Snowflake: an abort request through the connector), so cancelling N
connections one after another takes N times one cancel's time on a slow or unreachable
server. :func:`cancel_all` runs them concurrently, in short-lived daemon threads (at most
:data:`MAX_PARALLEL` at a time), and returns when all have returned or at an overall
deadline, whichever comes first: the drain ends within about one cancel's time whatever
the number of connections. A cancel still blocked at the deadline is left to its driver's
own timeout, in its daemon thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("snowload.worker")

MAX_PARALLEL = 64
"""Cancels in flight at once (each holds a socket to the server while it runs)."""
CANCEL_DEADLINE_S = 10.0
"""How long a drain waits for its cancels, all together."""


def cancel_all(cancels: Sequence[Callable[[], None]], deadline_s: float = CANCEL_DEADLINE_S) -> int:
    """Call every one of ``cancels`` concurrently; return how many had returned (or
    raised: logged) by the deadline."""
    if not cancels:
        return 0
    gate = threading.BoundedSemaphore(MAX_PARALLEL)
    done = threading.Semaphore(0)

    def one(cancel: Callable[[], None]) -> None:
        try:
            with gate:
                cancel()
        except Exception:
            log.warning("cancelling an in-flight statement failed", exc_info=True)
        finally:
            done.release()

    for i, cancel in enumerate(cancels):
        threading.Thread(target=one, args=(cancel,), name=f"cancel-{i}", daemon=True).start()
    end = time.monotonic() + deadline_s
    count = 0
    while count < len(cancels) and done.acquire(timeout=max(0.0, end - time.monotonic())):
        count += 1
    if count < len(cancels):
        log.warning(
            "%d of %d cancels of in-flight statements still blocked after %.0fs; the drain "
            "goes on without them",
            len(cancels) - count,
            len(cancels),
            deadline_s,
        )
    return count
