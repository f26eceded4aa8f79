"""Verdicts of ``runs compare`` (and the TUI's Compare screen, and the CI gate): the full
MEASUREMENT seconds of two runs, per query kind and every kind merged ('all'), handed to
the bootstrap in snowload/bootstrap.py.

Input is what the API and the results store both serve: the run's per-second series and
its per-second histograms (every kind merged, and per kind for runs stored since per-kind
seconds were kept)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from snowload import bootstrap, hdr
from snowload.bootstrap import MIN_SECONDS, Difference, Metric, Second
from snowload.v1 import common_pb2

ALL = "all"
MEASUREMENT = common_pb2.STATE_MEASUREMENT


class TooShort(ValueError):
    """A run has fewer full MEASUREMENT seconds than a comparison needs."""


@dataclass(frozen=True)
class SecondHistogram:
    """One second's encoded histogram; kind '' is every kind merged."""

    second: int
    kind: str
    histogram: bytes


@dataclass
class RunSeconds:
    run_id: str
    by_kind: dict[str, list[Second]] = field(default_factory=dict)
    kinds_missing: bool = False
    """The store has no per-kind seconds for this run (stored before they were kept)."""

    @property
    def seconds(self) -> int:
        return len(self.by_kind.get(ALL, []))


def run_seconds(
    run_id: str,
    points: Sequence[common_pb2.SeriesPoint],
    histograms: Iterable[SecondHistogram],
) -> RunSeconds:
    """The full seconds of MEASUREMENT: not partial, in MEASUREMENT, load active."""
    encoded: dict[tuple[int, str], bytes] = {(h.second, h.kind): h.histogram for h in histograms}
    full = [
        p
        for p in points
        if p.phase == MEASUREMENT and not p.partial and p.duration.ToNanoseconds() > 0
    ]
    kinds = sorted({k for p in full for k in p.by_kind})
    out = RunSeconds(run_id, {ALL: []})
    out.kinds_missing = bool(kinds) and not any(k for _, k in encoded)
    for kind in kinds:
        out.by_kind[kind] = []
    for p in full:
        duration = p.duration.ToNanoseconds() / 1e9
        out.by_kind[ALL].append(
            Second(
                duration,
                p.overall.count,
                p.overall.errors,
                tuple(hdr.recorded(encoded.get((p.second, ""), b""))),
            )
        )
        for kind in kinds:
            stats = p.by_kind.get(kind)
            out.by_kind[kind].append(
                Second(
                    duration,
                    stats.count if stats is not None else 0,
                    stats.errors if stats is not None else 0,
                    tuple(hdr.recorded(encoded.get((p.second, kind), b""))),
                )
            )
    return out


@dataclass
class Comparison:
    a: str
    b: str
    seconds_a: int
    seconds_b: int
    by_kind: dict[str, dict[Metric, Difference]]
    notes: list[str]
    resamples: int
    seed: int
    threshold: float

    def verdicts(self) -> dict[str, str]:
        """One word per kind (bootstrap.overall_verdict)."""
        return {k: bootstrap.overall_verdict(m).value for k, m in self.by_kind.items()}

    def as_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "method": {
                "name": "circular block bootstrap over full MEASUREMENT seconds",
                "confidence": 0.95,
                "resamples": self.resamples,
                "seed": self.seed,
                "threshold": self.threshold,
                "seconds_a": self.seconds_a,
                "seconds_b": self.seconds_b,
            },
            "verdicts": self.verdicts(),
            "by_kind": {
                kind: {m.value: d.as_dict() for m, d in metrics.items()}
                for kind, metrics in self.by_kind.items()
            },
            "notes": self.notes,
        }


def check_length(runs: Sequence[RunSeconds]) -> None:
    for run in runs:
        if run.seconds < MIN_SECONDS:
            raise TooShort(
                f"run {run.run_id} has {run.seconds} full second(s) of MEASUREMENT; a "
                f"comparison needs at least {MIN_SECONDS} in each run (a measurement of "
                f"{MIN_SECONDS + 1}s or more: the last second may be partial)"
            )


def compare(
    a: RunSeconds,
    b: RunSeconds,
    *,
    resamples: int = bootstrap.RESAMPLES,
    seed: int = 0,
    threshold: float = 0.0,
    kinds: bool = True,
) -> Comparison:
    """B against A, per kind ('all' first). Raises TooShort."""
    check_length((a, b))
    notes: list[str] = []
    names = [ALL]
    if kinds:
        if a.kinds_missing or b.kinds_missing:
            old = a.run_id if a.kinds_missing else b.run_id
            notes.append(
                f"run {old} was stored without per-kind seconds: verdicts for every kind "
                "merged only"
            )
        else:
            names += sorted(set(a.by_kind) & set(b.by_kind) - {ALL})
            for kind in sorted(set(a.by_kind) ^ set(b.by_kind)):
                notes.append(f"query kind {kind!r} is in one run only")
    by_kind: dict[str, dict[Metric, Difference]] = {}
    for i, kind in enumerate(names):
        by_kind[kind] = bootstrap.compare(
            bootstrap.Sample(a.by_kind[kind]),
            bootstrap.Sample(b.by_kind[kind]),
            resamples=resamples,
            seed=seed + i,
            threshold=threshold,
        )
    return Comparison(
        a.run_id,
        b.run_id,
        a.seconds,
        b.seconds,
        by_kind,
        notes,
        resamples,
        seed,
        threshold,
    )
