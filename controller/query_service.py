"""``RunService.GetRunQueries``: a page of a stored run's query log, filtered."""

from __future__ import annotations

import grpc

from controller import lifecycle as lc
from controller.query_log import to_protos
from controller.store import RunStore
from snowload.v1 import run_pb2

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


async def get_run_queries(
    store: RunStore,
    active: bool,
    request: run_pb2.GetRunQueriesRequest,
    context: grpc.aio.ServicerContext[object, object],
) -> run_pb2.GetRunQueriesResponse:
    if active:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"run {request.run_id!r} is still active: its query log is stored when it ends",
        )
    if store.get(request.run_id) is None:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
    if request.phase and request.phase not in lc.ALL_STATES:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown phase {request.phase}")
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    try:
        offset = int(request.page_token or 0)
        if offset < 0:
            raise ValueError(offset)
    except ValueError:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token")
    page = store.run_queries(
        request.run_id,
        kind=request.kind or None,
        phase=int(request.phase) or None,
        slowest=request.slowest or None,
        errors=request.errors,
        limit=size + 1,
        offset=offset,
    )
    out = run_pb2.GetRunQueriesResponse(entries=to_protos(page[:size]))
    if len(page) > size:
        out.next_page_token = str(offset + size)
    return out
