"""Record every message the gateway receives and sends, for privacy audits.

``wharf gateway serve --wire-log FILE`` appends one JSON line per message:
method, direction, caller, message type and its serialized bytes (base64).
It holds only what crossed the wire, which is everything the gateway saw; the
privacy tests read it to show that no raw value ever did.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

from datawharf.identity import CALLER_KEY


class WireTap(grpc.aio.ServerInterceptor):
    def __init__(self, path: Path) -> None:
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._file.close()

    def _record(self, method: str, caller: str, direction: str, message: Any) -> None:
        line = json.dumps(
            {
                "at": time.time(),
                "method": method,
                "caller": caller,
                "direction": direction,
                "type": message.DESCRIPTOR.full_name,
                "bytes": base64.b64encode(message.SerializeToString()).decode(),
            }
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc."):
            return handler
        method = details.method
        caller = dict(details.invocation_metadata or ()).get(CALLER_KEY, "")
        rec = self._record

        def incoming(message: Any) -> Any:
            rec(method, caller, "in", message)
            return message

        async def tapped_requests(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for message in requests:
                yield incoming(message)

        async def tapped_responses(responses: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for message in responses:
                rec(method, caller, "out", message)
                yield message

        kw = dict(
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def uu(request: Any, context: Any) -> Any:
                response = await inner_uu(incoming(request), context)
                if response is not None:
                    rec(method, caller, "out", response)
                return response

            return grpc.unary_unary_rpc_method_handler(uu, **kw)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def us(request: Any, context: Any) -> AsyncIterator[Any]:
                async for m in tapped_responses(inner_us(incoming(request), context)):
                    yield m

            return grpc.unary_stream_rpc_method_handler(us, **kw)
        if handler.stream_stream:
            inner_ss = handler.stream_stream

            async def ss(requests: Any, context: Any) -> AsyncIterator[Any]:
                async for m in tapped_responses(inner_ss(tapped_requests(requests), context)):
                    yield m

            return grpc.stream_stream_rpc_method_handler(ss, **kw)
        return handler  # stream-unary: none in this contract
