"""Uniform samples of queries: a reservoir that one thread fills (Li's Algorithm L, which
draws how many queries to skip instead of a random number per query), and the merge of
several reservoirs into one that is still a uniform sample of everything they saw.

Shared by the worker (its connection threads' reservoirs) and the controller (its
workers' samples); no I/O, no imports from either side.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Reservoir(Generic[T]):
    """A uniform sample of at most ``size`` of the items counted so far.

    The caller counts items down from the gap the reservoir gave it (one integer per
    item on the hot path) and offers the item that brings the count to zero; when it
    stops, it hands back what was left of the count (``finish``).
    """

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.items: list[T] = []
        self.seen = 0
        """Items counted so far (after ``finish``; before, counted ahead to the next
        offer)."""
        self._rng = rng
        self._w = 1.0

    def first_gap(self) -> int:
        """The count to the first offer (1: the next item); 0: never offer."""
        if self.size <= 0:
            return 0
        self.seen = 1
        return 1

    def offer(self, item: T) -> int:
        """Take ``item`` (the one the last gap led to); returns the next gap."""
        rng = self._rng
        if len(self.items) < self.size:
            self.items.append(item)
            if len(self.items) < self.size:
                self.seen += 1
                return 1
            self._w = math.exp(math.log(rng.random() or 1e-300) / self.size)
        else:
            self.items[rng.randrange(self.size)] = item
            self._w *= math.exp(math.log(rng.random() or 1e-300) / self.size)
        gap = self._skip() + 1
        self.seen += gap
        return gap

    def finish(self, left: int) -> None:
        """The caller stopped with ``left`` still to count to the next offer."""
        if left > 0:
            self.seen -= left

    def _skip(self) -> int:
        w = self._w
        if w >= 1.0:
            return 0
        u = self._rng.random() or 1e-300
        return math.floor(math.log(u) / math.log1p(-w))


def merge_samples(
    parts: Sequence[tuple[int, Sequence[T]]], size: int, rng: random.Random
) -> list[T]:
    """One uniform sample of at most ``size`` items from several uniform samples, each
    given as (how many items it was drawn from, the sample). Draws ``size`` items without
    replacement from the union of the populations (a multivariate hypergeometric split),
    then takes that many at random from each part's sample: a uniform subset of a uniform
    sample is a uniform sample of its population."""
    remaining = [max(seen, len(items)) for seen, items in parts]
    taken = [0] * len(parts)
    total = sum(remaining)
    for _ in range(min(size, total)):
        pick = rng.randrange(total)
        for i, left in enumerate(remaining):
            if pick < left:
                taken[i] += 1
                remaining[i] -= 1
                break
            pick -= left
        total -= 1
    out: list[T] = []
    for (_, items), n in zip(parts, taken, strict=True):
        out.extend(rng.sample(list(items), min(n, len(items))))
    return out
