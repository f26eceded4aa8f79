"""Where runs are kept. ``RunStore`` is the interface; every implementation passes the
shared suite in tests/test_store.py."""

from __future__ import annotations

from abc import ABC, abstractmethod

from snowload.v1 import run_pb2


class RunStore(ABC):
    @abstractmethod
    def put(self, run: run_pb2.Run) -> None:
        """Insert or replace a run (the whole record)."""

    @abstractmethod
    def get(self, run_id: str) -> run_pb2.Run | None: ...

    @abstractmethod
    def list(self, limit: int, offset: int = 0) -> list[run_pb2.Run]:
        """Runs, newest first."""

    def close(self) -> None:  # noqa: B027 - optional
        """Flush and release resources."""


class MemoryRunStore(RunStore):
    """Runs held in memory for the life of the controller."""

    def __init__(self) -> None:
        self._runs: dict[str, run_pb2.Run] = {}

    def put(self, run: run_pb2.Run) -> None:
        copy = run_pb2.Run()
        copy.CopyFrom(run)
        self._runs[run.run_id] = copy

    def get(self, run_id: str) -> run_pb2.Run | None:
        run = self._runs.get(run_id)
        if run is None:
            return None
        copy = run_pb2.Run()
        copy.CopyFrom(run)
        return copy

    def list(self, limit: int, offset: int = 0) -> list[run_pb2.Run]:
        runs = sorted(
            self._runs.values(),
            key=lambda r: (r.create_time.ToNanoseconds(), r.run_id),
            reverse=True,
        )
        return runs[offset : offset + limit]
