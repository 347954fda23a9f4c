"""Server interceptors that watch every message of every call.

``watch_messages`` rewraps a method handler so that each request and each
response passes through a callback, whatever the call's shape; the wire tap
and the byte counters are both built on it.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

from datawharf.identity import peer_name

# (method, caller, direction "in"/"out", message)
Watcher = Callable[[str, str, str, Any], None]


def watch_messages(handler: grpc.RpcMethodHandler, method: str, watch: Watcher) -> grpc.RpcMethodHandler:
    """``watch`` sees each message with the caller's name as its certificate (or, on an
    --insecure gateway, its header) gives it, for records; nothing here authorises."""

    def incoming(message: Any, context: Any) -> Any:
        watch(method, peer_name(context), "in", message)
        return message

    async def requests(it: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for message in it:
            yield incoming(message, context)

    async def responses(it: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        caller = peer_name(context)
        async for message in it:
            watch(method, caller, "out", message)
            yield message

    kw = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def uu(request: Any, context: Any) -> Any:
            response = await inner_uu(incoming(request, context), context)
            if response is not None:
                watch(method, peer_name(context), "out", response)
            return response

        return grpc.unary_unary_rpc_method_handler(uu, **kw)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        async def us(request: Any, context: Any) -> AsyncIterator[Any]:
            async for m in responses(inner_us(incoming(request, context), context), context):
                yield m

        return grpc.unary_stream_rpc_method_handler(us, **kw)
    if handler.stream_stream:
        inner_ss = handler.stream_stream

        async def ss(it: Any, context: Any) -> AsyncIterator[Any]:
            async for m in responses(inner_ss(requests(it, context), context), context):
                yield m

        return grpc.stream_stream_rpc_method_handler(ss, **kw)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def su(it: Any, context: Any) -> Any:
            response = await inner_su(requests(it, context), context)
            if response is not None:
                watch(method, peer_name(context), "out", response)
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
        return watch_messages(handler, details.method, self._watch)
