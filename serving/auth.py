"""API-key authentication for the public port (metadata `authorization: Bearer <key>`).

Health checks and server reflection stay open (probes and grpcurl's service listing need no
key); every other method answers UNAUTHENTICATED without a valid key. Keys are compared in
constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def _key_from(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without one of `keys` (an empty key list disables the check)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = [k.encode() for k in keys if k]

    def is_authorised(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        if not self.keys:
            return True
        given = _key_from(metadata)
        if given is None:
            return False
        return any(hmac.compare_digest(given.encode(), key) for key in self.keys)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if self.is_authorised(handler_call_details.invocation_metadata):  # type: ignore[arg-type]
            return handler
        message = "missing or wrong API key: send metadata 'authorization: Bearer <key>'"

        async def refuse_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
            yield  # pragma: no cover - makes this an async generator

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                refuse_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            refuse_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
