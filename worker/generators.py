"""Parameter value generators, compiled once per run into small closures.

Every query kind gets one ``make()`` that returns the tuple of bound values. Sequences
are disjoint across workers: worker slot ``s`` of ``n`` slots yields
``start + s, start + s + n, start + s + 2n, ...`` and the threads of one worker share
its counter, so no two connections anywhere issue the same key.
"""

from __future__ import annotations

import itertools
import math
import random
import string
from collections.abc import Callable, Sequence
from typing import Any

from snowload.workload import ParamSpec, Query

Maker = Callable[[], tuple[Any, ...]]
_ALPHABET = string.ascii_letters + string.digits
_FLOAT_EXACT = 2**53


def _empty() -> tuple[Any, ...]:
    return ()


class Sequences:
    """The worker-wide counters behind ``sequence`` generators (one per query parameter)."""

    def __init__(self, slot: int, slots: int) -> None:
        if not 0 <= slot < slots:
            raise ValueError(f"sequence slot {slot} outside 0..{slots - 1}")
        self.slot = slot
        self.slots = slots
        self._counters: dict[tuple[Any, ...], itertools.count[int]] = {}
        self._pools: dict[tuple[int, int], list[Any]] = {}

    def set_pools(self, pools: dict[tuple[int, int], list[Any]]) -> None:
        """This worker's slice of every sampled pool (slot ``s`` of ``n`` takes values
        s, s + n, s + 2n, ...), so workers walk disjoint slices."""
        self._pools = {
            key: values[self.slot :: self.slots] or values[:1] for key, values in pools.items()
        }

    def pool(self, key: tuple[int, int]) -> list[Any]:
        return self._pools.get(key, [])

    def walker(self, key: tuple[int, int]) -> Callable[[], int]:
        """A worker-wide position in a pool slice, shared by the worker's threads."""
        counter = self._counters.setdefault(("pool", *key), itertools.count())
        return counter.__next__

    def generator(self, key: tuple[int, int], start: int) -> Callable[[], int]:
        counter = self._counters.setdefault(key, itertools.count())
        base, step = start + self.slot, self.slots
        nxt = counter.__next__  # itertools.count.__next__ is atomic under the GIL

        def gen() -> int:
            return base + nxt() * step

        return gen


def compile_param(
    spec: ParamSpec, rnd: random.Random, sequences: Sequences, key: tuple[int, int]
) -> Callable[[], Any]:
    r = rnd.random
    if spec.kind == "int":
        lo, hi = int(spec.args[0]), int(spec.args[1])
        span = hi - lo + 1
        if span > _FLOAT_EXACT:
            # r() has 53 bits: r() * span would skip most values and could exceed hi
            randint = rnd.randint
            return lambda: randint(lo, hi)
        return lambda: lo + int(r() * span)
    if spec.kind == "float":
        flo, fspan = float(spec.args[0]), float(spec.args[1]) - float(spec.args[0])
        return lambda: flo + r() * fspan
    if spec.kind == "sequence":
        return sequences.generator(key, int(spec.args[0]))
    if spec.kind == "string":
        smin, smax = int(spec.args[0]), int(spec.args[1])
        choices = rnd.choices
        if smin == smax:
            return lambda: "".join(choices(_ALPHABET, k=smin))
        return lambda: "".join(choices(_ALPHABET, k=smin + int(r() * (smax - smin + 1))))
    if spec.kind == "zipf":
        return zipf_sampler(int(spec.args[0]), int(spec.args[1]), float(spec.args[2]), r)
    if spec.kind == "hotspot":
        hlo, hhi = int(spec.args[0]), int(spec.args[1])
        n = hhi - hlo + 1
        hot_n = max(1, int(n * float(spec.args[2])))
        cold_n = max(1, n - hot_n)
        traffic = float(spec.args[3])

        def hotspot() -> int:
            if r() < traffic:
                return hlo + int(r() * hot_n)
            return min(hhi, hlo + hot_n + int(r() * cold_n))

        return hotspot
    if spec.kind == "pool":
        slice_ = sequences.pool(key)
        if not slice_:
            raise ValueError(f"pool for query {key[0]} param {key[1]} is empty")
        walk = sequences.walker(key)
        size = len(slice_)
        return lambda: slice_[walk() % size]
    if spec.kind == "choice":
        values: Sequence[Any] = spec.args
        n = len(values)
        return lambda: values[int(r() * n)]
    raise ValueError(f"unknown generator {spec.kind!r}")


def _log1p_over(x: float) -> float:
    """log(1 + x) / x, accurate near 0."""
    return math.log1p(x) / x if abs(x) > 1e-8 else 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))


def _expm1_over(x: float) -> float:
    """(exp(x) - 1) / x, accurate near 0."""
    return (
        math.expm1(x) / x if abs(x) > 1e-8 else 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    )


def zipf_sampler(lo: int, hi: int, s: float, r: Callable[[], float]) -> Callable[[], int]:
    """Keys lo..hi with P(lo + k - 1) proportional to 1 / k**s (k = 1 is the hottest).

    Rejection-inversion (Hörmann and Derflinger): exact for the discrete law, O(1)
    expected time per value whatever the range."""
    n = hi - lo + 1

    def h(x: float) -> float:
        return math.exp(-s * math.log(x))

    def h_integral(x: float) -> float:
        log_x = math.log(x)
        return _expm1_over((1.0 - s) * log_x) * log_x

    def h_integral_inverse(x: float) -> float:
        t = max(-1.0, x * (1.0 - s))
        return math.exp(_log1p_over(t) * x)

    h_x1 = h_integral(1.5) - 1.0
    h_n = h_integral(n + 0.5)
    squeeze = 2.0 - h_integral_inverse(h_integral(2.5) - h(2.0))

    def zipf() -> int:
        while True:
            u = h_n + r() * (h_x1 - h_n)
            x = h_integral_inverse(u)
            k = min(n, max(1, int(x + 0.5)))
            if k - x <= squeeze or u >= h_integral(k + 0.5) - h(k):
                return lo + k - 1

    return zipf


def compile_query(index: int, query: Query, rnd: random.Random, sequences: Sequences) -> Maker:
    gens = [compile_param(p, rnd, sequences, (index, i)) for i, p in enumerate(query.params)]
    if not gens:
        return _empty
    if len(gens) == 1:
        g0 = gens[0]
        return lambda: (g0(),)
    if len(gens) == 2:
        g0, g1 = gens
        return lambda: (g0(), g1())
    return lambda: tuple([g() for g in gens])


def weighted_picker(weights: Sequence[float], rnd: random.Random) -> Callable[[], int]:
    """Index of a query kind, chosen with probability proportional to its weight."""
    if len(weights) == 1:
        return lambda: 0
    import bisect

    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    r = rnd.random
    find = bisect.bisect_right
    last = len(weights) - 1
    return lambda: min(find(cumulative, r() * total), last)
