"""Verdicts for ``runs compare`` and the CI gate: two stored runs' full MEASUREMENT seconds
(from any RunStore: the results database or a daemon's API) through the bootstrap of
snowload/verdicts.py, merged into the per-kind delta table of ``runs compare``."""

from __future__ import annotations

import argparse
from typing import Any

from controller.store import RunStore
from snowload import bootstrap
from snowload.v1 import run_pb2
from snowload.verdicts import Comparison, RunSeconds, SecondHistogram, compare, run_seconds


def load(store: RunStore, run: run_pb2.Run) -> RunSeconds:
    """A stored run's full MEASUREMENT seconds, every kind merged and per kind."""
    histograms = [SecondHistogram(i.second, "", i.histogram) for i in store.intervals(run.run_id)]
    histograms += [
        SecondHistogram(i.second, i.kind, i.histogram) for i in store.kind_intervals(run.run_id)
    ]
    return run_seconds(run.run_id, store.series(run.run_id), histograms)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap's random draws (default 0)"
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=bootstrap.RESAMPLES,
        help=f"bootstrap resamples (default {bootstrap.RESAMPLES})",
    )


def verdicts(
    store: RunStore,
    a: run_pb2.Run,
    b: run_pb2.Run,
    *,
    seed: int = 0,
    resamples: int = bootstrap.RESAMPLES,
    kinds: bool = True,
) -> Comparison:
    """B against A, every kind merged and (``kinds``) per kind. Raises
    snowload.verdicts.TooShort."""
    return compare(load(store, a), load(store, b), seed=seed, resamples=resamples, kinds=kinds)


def merge_into(result: dict[str, dict[str, dict[str, Any]]], comparison: Comparison) -> None:
    """Each metric row of the delta table gains its interval and verdict."""
    for kind, metrics in comparison.by_kind.items():
        row = result.get(kind)
        if row is None:
            continue
        for metric, diff in metrics.items():
            cell = row.get(metric.value)
            if cell is None:
                continue
            found = diff.as_dict()
            cell["ci95"] = found["ci95"]
            cell["relative_ci95"] = found["relative_ci95"]
            cell["verdict"] = found["verdict"]
