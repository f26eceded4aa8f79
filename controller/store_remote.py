"""A read-only RunStore over a controller's RunService: what ``snowload runs --controller``
reads, so the runs CLI works against a daemon whose results database lives elsewhere
(another host, a Kubernetes volume)."""

from __future__ import annotations

from pathlib import Path

import grpc

from controller.query_log import QueryLogEntry
from controller.store import IntervalHistogram, RunRecord, RunStore
from snowload.channel import ChannelConfig
from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc

MAX_PAGE = 1000


class RemoteUnsupported(RuntimeError):
    """What the API does not serve (or a client must not do) against a remote daemon."""


class RemoteRunStore(RunStore):
    def __init__(self, config: ChannelConfig, timeout_s: float = 10.0) -> None:
        self.address = config.address
        self.path = f"the controller at {config.address}"  # (named in messages)
        if config.secure:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=Path(config.tls_ca).read_bytes() if config.tls_ca else None,
                private_key=Path(config.tls_key).read_bytes() if config.tls_key else None,
                certificate_chain=Path(config.tls_cert).read_bytes() if config.tls_cert else None,
            )
            self._channel = grpc.secure_channel(config.address, credentials)
        else:
            self._channel = grpc.insecure_channel(config.address)
        self._stub = run_pb2_grpc.RunServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {config.token}"),) if config.token else ()
        self._timeout_s = timeout_s

    def put(self, run: run_pb2.Run) -> None:
        raise RemoteUnsupported("the controller alone writes its results database")

    def save(self, record: RunRecord) -> None:
        raise RemoteUnsupported("the controller alone writes its results database")

    def get(self, run_id: str) -> run_pb2.Run | None:
        try:
            response = self._stub.GetRun(
                run_pb2.GetRunRequest(run_id=run_id),
                metadata=self._metadata,
                timeout=self._timeout_s,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        run: run_pb2.Run = response.run
        return run

    def tag(self, name: str, run_id: str) -> None:
        self._stub.TagRun(
            run_pb2.TagRunRequest(run_id=run_id, tag=name),
            metadata=self._metadata,
            timeout=self._timeout_s,
        )

    def tagged(self, name: str) -> str | None:
        try:
            response = self._stub.GetRun(
                run_pb2.GetRunRequest(tag=name), metadata=self._metadata, timeout=self._timeout_s
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return str(response.run.run_id)

    def list_runs(self, limit: int, offset: int = 0) -> list[run_pb2.Run]:
        out: list[run_pb2.Run] = []
        token = str(offset) if offset else ""
        while len(out) < limit:
            page = self._stub.ListRuns(
                run_pb2.ListRunsRequest(
                    page_size=min(MAX_PAGE, limit - len(out)), page_token=token
                ),
                metadata=self._metadata,
                timeout=self._timeout_s,
            )
            out.extend(page.runs)
            token = page.next_page_token
            if not token:
                break
        return out[:limit]

    def series(self, run_id: str) -> list[common_pb2.SeriesPoint]:
        response = self._stub.GetRunSeries(
            run_pb2.GetRunSeriesRequest(run_id=run_id),
            metadata=self._metadata,
            timeout=self._timeout_s,
        )
        return list(response.points)

    def histograms(self, run_id: str) -> dict[tuple[int, str], bytes]:
        response = self._histograms(run_id)
        return {(int(p.phase), p.kind): p.histogram for p in response.phases}

    def intervals(self, run_id: str) -> list[IntervalHistogram]:
        response = self._histograms(run_id)
        return [
            IntervalHistogram(
                int(i.second),
                int(i.phase),
                i.start_time.ToNanoseconds(),
                i.end_time.ToNanoseconds(),
                i.histogram,
            )
            for i in response.intervals
        ]

    def kind_intervals(self, run_id: str) -> list[IntervalHistogram]:
        response = self._histograms(run_id)
        return [
            IntervalHistogram(
                int(i.second),
                int(i.phase),
                i.start_time.ToNanoseconds(),
                i.end_time.ToNanoseconds(),
                i.histogram,
                i.kind,
            )
            for i in response.kind_intervals
        ]

    def _histograms(self, run_id: str) -> run_pb2.GetRunHistogramsResponse:
        try:
            response: run_pb2.GetRunHistogramsResponse = self._stub.GetRunHistograms(
                run_pb2.GetRunHistogramsRequest(run_id=run_id),
                metadata=self._metadata,
                timeout=self._timeout_s,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise RemoteUnsupported(str(exc.details())) from exc
            raise
        return response

    def query_entries(self, run_id: str) -> list[QueryLogEntry]:
        return self.run_queries(run_id, limit=1 << 31)

    def run_queries(
        self,
        run_id: str,
        kind: str | None = None,
        phase: int | None = None,
        slowest: int | None = None,
        errors: bool = False,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[QueryLogEntry]:
        """Filtered by the controller (GetRunQueries), a page at a time."""
        out: list[QueryLogEntry] = []
        token = str(offset) if offset else ""
        while len(out) < limit:
            request = run_pb2.GetRunQueriesRequest(
                run_id=run_id,
                kind=kind or "",
                phase=phase or 0,  # type: ignore[arg-type]
                slowest=slowest or 0,
                errors=errors,
                page_size=min(MAX_PAGE, limit - len(out)),
                page_token=token,
            )
            try:
                page = self._stub.GetRunQueries(
                    request, metadata=self._metadata, timeout=self._timeout_s
                )
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    raise RemoteUnsupported(str(exc.details())) from exc
                raise
            out.extend(QueryLogEntry.from_proto(e) for e in page.entries)
            token = page.next_page_token
            if not token:
                break
        return out[:limit]

    def close(self) -> None:
        self._channel.close()
