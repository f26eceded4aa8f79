"""Bearer-token authentication for every service on the controller's port.

Health checks stay open (orchestrators probe them without credentials); everything else,
server reflection included, needs ``authorization: Bearer <token>`` when a token is set.
A refused call gets UNAUTHENTICATED and no information beyond that.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
REFUSAL = "missing or invalid bearer token"


if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the runtime class is not subscriptable
    _Interceptor = grpc.aio.ServerInterceptor


class TokenAuth(_Interceptor):
    def __init__(self, token: str) -> None:
        self._expected = token.encode()

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        if details.method.startswith(OPEN_PREFIXES):
            return True
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                text = value if isinstance(value, str) else bytes(value).decode("latin-1")
                scheme, _, credential = text.partition(" ")
                # the scheme is case-insensitive (RFC 7235); the token is compared in
                # constant time
                return scheme.lower() == "bearer" and hmac.compare_digest(
                    credential.strip().encode("latin-1", "replace"), self._expected
                )
        return False

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or self._allowed(handler_call_details):
            return handler
        return _refusing(handler)


async def _deny(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


async def _deny_stream(
    _request: Any, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[Any]:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
    yield None  # pragma: no cover - abort raises


async def _deny_client_stream(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    # take the client's first message before refusing: refusing while it is still being
    # sent can make the client report INTERNAL instead of UNAUTHENTICATED
    with contextlib.suppress(Exception):
        await asyncio.wait_for(anext(aiter(requests)), 1.0)
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


async def _deny_bidi(
    requests: Any, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[Any]:
    await _deny_client_stream(requests, context)
    yield None  # pragma: no cover - abort raises


def _refusing(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    kw = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_deny, **kw)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_deny_stream, **kw)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_deny_client_stream, **kw)
    return grpc.stream_stream_rpc_method_handler(_deny_bidi, **kw)
