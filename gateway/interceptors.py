"""Server interceptors that watch every message of every call.

``watch_messages`` rewraps a method handler so that each request and each
response passes through a callback, whatever the call's shape; the wire tap
and the byte counters are both built on it.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

from datawharf.identity import CALLER_KEY

# (method, caller, direction "in"/"out", message)
Watcher = Callable[[str, str, str, Any], None]


def watch_messages(handler: grpc.RpcMethodHandler, method: str, caller: str, watch: Watcher) -> grpc.RpcMethodHandler:
    def incoming(message: Any) -> Any:
        watch(method, caller, "in", message)
        return message

    async def requests(it: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for message in it:
            yield incoming(message)

    async def responses(it: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for message in it:
            watch(method, caller, "out", message)
            yield message

    kw = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def uu(request: Any, context: Any) -> Any:
            response = await inner_uu(incoming(request), context)
            if response is not None:
                watch(method, caller, "out", response)
            return response

        return grpc.unary_unary_rpc_method_handler(uu, **kw)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        async def us(request: Any, context: Any) -> AsyncIterator[Any]:
            async for m in responses(inner_us(incoming(request), context)):
                yield m

        return grpc.unary_stream_rpc_method_handler(us, **kw)
    if handler.stream_stream:
        inner_ss = handler.stream_stream

        async def ss(it: Any, context: Any) -> AsyncIterator[Any]:
            async for m in responses(inner_ss(requests(it), context)):
                yield m

        return grpc.stream_stream_rpc_method_handler(ss, **kw)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def su(it: Any, context: Any) -> Any:
            response = await inner_su(requests(it), context)
            if response is not None:
                watch(method, caller, "out", response)
            return response

        return grpc.stream_unary_rpc_method_handler(su, **kw)
    return handler


class MessageInterceptor(grpc.aio.ServerInterceptor):
    """Calls ``watch`` for every message of the project's own services."""

    def __init__(self, watch: Watcher) -> None:
        self._watch = watch

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith("/datawharf."):
            return handler
        caller = dict(details.invocation_metadata or ()).get(CALLER_KEY, "")
        return watch_messages(handler, details.method, str(caller), self._watch)
