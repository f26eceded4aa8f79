"""Parameter value generators, compiled once per run into small closures.

Every query kind gets one ``make()`` that returns the tuple of bound values. Sequences
are disjoint across workers: worker slot ``s`` of ``n`` slots yields
``start + s, start + s + n, start + s + 2n, ...`` and the threads of one worker share
its counter, so no two connections anywhere issue the same key.
"""

from __future__ import annotations

import itertools
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
        self._counters: dict[tuple[int, int], itertools.count[int]] = {}

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
    if spec.kind == "choice":
        values: Sequence[Any] = spec.args
        n = len(values)
        return lambda: values[int(r() * n)]
    raise ValueError(f"unknown generator {spec.kind!r}")


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
