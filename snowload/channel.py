"""Client channels to a controller: plaintext on loopback, TLS (optionally mutual), and a
bearer token on every call. Workers, ``snowload run`` and the TUI all dial through here."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

TOKEN_ENV = "SNOWLOAD_TOKEN"


@dataclass(frozen=True)
class ChannelConfig:
    address: str
    """HOST:PORT of the controller."""
    token: str = ""
    """Bearer token sent as ``authorization: Bearer <token>`` on every call."""
    tls_ca: str = ""
    """PEM file of the CA that signed the controller's certificate; enables TLS."""
    tls_cert: str = ""
    """PEM client certificate for mutual TLS (with ``tls_key``)."""
    tls_key: str = ""
    tls: bool = False
    """TLS with the system's trust store (when no ``tls_ca`` is given)."""

    @classmethod
    def from_env(
        cls,
        address: str,
        *,
        token: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls: bool = False,
    ) -> ChannelConfig:
        """The token defaults to ``$SNOWLOAD_TOKEN``."""
        return cls(
            address,
            token=token or os.environ.get(TOKEN_ENV, ""),
            tls_ca=tls_ca or "",
            tls_cert=tls_cert or "",
            tls_key=tls_key or "",
            tls=tls,
        )

    @property
    def secure(self) -> bool:
        return bool(self.tls or self.tls_ca or self.tls_cert)


def _metadata(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", f"Bearer {token}")
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


if TYPE_CHECKING:
    _UU = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _US = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _SU = grpc.aio.StreamUnaryClientInterceptor[Any, Any]
    _SS = grpc.aio.StreamStreamClientInterceptor[Any, Any]
else:  # the runtime classes are not subscriptable
    _UU = grpc.aio.UnaryUnaryClientInterceptor
    _US = grpc.aio.UnaryStreamClientInterceptor
    _SU = grpc.aio.StreamUnaryClientInterceptor
    _SS = grpc.aio.StreamStreamClientInterceptor


class _BearerToken:
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_metadata(details, self._token), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_metadata(details, self._token), request)

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_metadata(details, self._token), request_iterator)

    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_metadata(details, self._token), request_iterator)


class _BearerUU(_BearerToken, _UU):
    pass


class _BearerUS(_BearerToken, _US):
    pass


class _BearerSU(_BearerToken, _SU):
    pass


class _BearerSS(_BearerToken, _SS):
    pass


def open_channel(
    config: ChannelConfig, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A grpc.aio channel; create it inside the running event loop."""
    # grpc.aio files each interceptor under the first call type it implements only: one
    # interceptor per call type, or streaming calls (WatchRun, Attach) go without the token
    interceptors: list[Any] | None = (
        [cls(config.token) for cls in (_BearerUU, _BearerUS, _BearerSU, _BearerSS)]
        if config.token
        else None
    )
    if not config.secure:
        return grpc.aio.insecure_channel(
            config.address, options=list(options), interceptors=interceptors
        )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(config.tls_ca).read_bytes() if config.tls_ca else None,
        private_key=Path(config.tls_key).read_bytes() if config.tls_key else None,
        certificate_chain=Path(config.tls_cert).read_bytes() if config.tls_cert else None,
    )
    return grpc.aio.secure_channel(
        config.address, credentials, options=list(options), interceptors=interceptors
    )
