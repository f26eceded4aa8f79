"""Live progress of ``snowload run`` on stderr: a bar on a terminal, plain lines in logs;
the first error of each failing query kind is printed the moment it is known."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from controller import lifecycle as lc
from snowload.v1 import run_pb2


def stats_text(prog: run_pb2.Progress) -> str:
    return (
        f"QPS {prog.qps:>9,.0f}  p95 {prog.p95_ms:7.2f} ms  "
        f"errors {prog.errors:,}  conns {prog.active_connections}"
    )


class FirstErrors:
    """Prints each kind's first error once, as soon as an update carries it."""

    def __init__(self, err: Console) -> None:
        self.err = err
        self.shown: set[str] = set()

    def update(self, prog: run_pb2.Progress) -> None:
        for sample in prog.first_errors:
            if sample.kind in self.shown:
                continue
            self.shown.add(sample.kind)
            self.err.print(
                Text("error ", style="red")
                + Text(f"in query {sample.kind!r} [{sample.category}]: {sample.message}"),
                highlight=False,
                soft_wrap=True,
            )


class ProgressBar:
    def __init__(self, err: Console) -> None:
        columns = (
            TextColumn("[bold]{task.fields[phase]:<11}"),
            BarColumn(bar_width=30),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
        )
        self.progress = Progress(*columns, console=err, transient=False, refresh_per_second=4)
        self.task = self.progress.add_task("run", total=None, phase="PENDING", stats="")
        self.errors = FirstErrors(err)

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, update: run_pb2.WatchRunResponse) -> None:
        run, prog = update.run, update.progress
        self.errors.update(prog)  # (printed above the live bar)
        total = None
        if run.state == lc.WARMUP:
            total = run.warmup.ToTimedelta().total_seconds()
        elif run.state == lc.MEASUREMENT:
            total = run.duration.ToTimedelta().total_seconds()
        done = prog.state_elapsed.ToTimedelta().total_seconds()
        self.progress.update(
            self.task,
            phase=lc.state_name(run.state),
            total=total,
            completed=min(done, total) if total else 0,
            stats=stats_text(prog),
        )


class ProgressLines:
    """Non-interactive output (CI logs): a line per state change and every 5 seconds."""

    EVERY_S = 5.0

    def __init__(self, err: Console, run_id: str) -> None:
        self.err = err
        self.run_id = run_id
        self.state = -1
        self.printed_at = 0.0
        self.errors = FirstErrors(err)

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, update: run_pb2.WatchRunResponse) -> None:
        run, prog = update.run, update.progress
        elapsed = prog.state_elapsed.ToTimedelta().total_seconds()
        if run.state != self.state:
            self.state = run.state
            self.printed_at = time.monotonic()
            self.err.print(f"run {self.run_id} {lc.state_name(run.state)}", highlight=False)
        elif time.monotonic() - self.printed_at >= self.EVERY_S and run.state in lc.LOAD_PHASES:
            self.printed_at = time.monotonic()
            self.err.print(
                f"run {self.run_id} {lc.state_name(run.state)} {elapsed:5.0f}s  "
                + stats_text(prog),
                highlight=False,
            )
        self.errors.update(prog)
