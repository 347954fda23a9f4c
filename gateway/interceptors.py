"""Server interceptors that watch every message of every call.

``watch_messages`` rewraps a method handler so that each request and each
response passes through a callback, whatever the call's shape; the wire tap
and the byte counters are both built on it. ``watch_calls`` rewraps it the
same way to see each call whole: when it starts, and how and when it ends.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from types import TracebackType
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

from datawharf.errors import InvalidArgument, WharfError
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


# Services whose calls are counted: the project's own, and health and reflection, whose
# methods are as few and as fixed. Any other name a client sends has no handler here.
CALL_PREFIXES = ("/datawharf.", "/grpc.health.v1.", "/grpc.reflection.")


def call_type(handler: grpc.RpcMethodHandler) -> str:
    """The handler's shape, in go-grpc-prometheus' words."""
    if handler.unary_unary:
        return "unary"
    if handler.stream_unary:
        return "client_stream"
    if handler.unary_stream:
        return "server_stream"
    return "bidi_stream"


def status_of(exc: BaseException | None, context: Any) -> grpc.StatusCode:
    """The status code a call ended with, as the client sees it."""
    if exc is None or isinstance(exc, grpc.aio.AbortError):
        # abort() leaves its code on the context; a handler may also set_code() and return.
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code
        return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        # The client went away (or its deadline passed): grpc cancels the handler, or
        # closes a response stream left suspended at a yield.
        return grpc.StatusCode.CANCELLED
    # grpc answers UNKNOWN to any exception that is not an abort.
    return grpc.StatusCode.UNKNOWN


# (status code, seconds from the handler's start to the end of its last response)
CallEnded = Callable[[grpc.StatusCode, float], None]


class _Timed:
    def __init__(self, context: Any, started: Callable[[], None], ended: CallEnded) -> None:
        self.context = context
        self.ended = ended
        started()
        self.t0 = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.ended(status_of(exc, self.context), time.perf_counter() - self.t0)


def watch_calls(handler: grpc.RpcMethodHandler, started: Callable[[], None], ended: CallEnded) -> grpc.RpcMethodHandler:
    """``started`` when the handler is entered, ``ended`` once when its call is over, whatever
    the outcome; a stream is over when its last response is sent or the stream breaks."""

    async def unary_response(inner: Callable[..., Any], request: Any, context: Any) -> Any:
        with _Timed(context, started, ended):
            result = inner(request, context)
            return await result if inspect.isawaitable(result) else result

    def stream_response(inner: Callable[..., Any]) -> Callable[..., Any]:
        # grpc tells a reader/writer handler (a coroutine that calls context.write, as the
        # health service's Watch does) from a generator by the function's kind, so the
        # wrapper must be of the same kind.
        if inspect.iscoroutinefunction(inner):

            async def writer(request: Any, context: Any) -> None:
                with _Timed(context, started, ended):
                    await inner(request, context)

            return writer

        async def generator(request: Any, context: Any) -> AsyncIterator[Any]:
            with _Timed(context, started, ended):
                async for m in inner(request, context):
                    yield m

        return generator

    kw = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def uu(request: Any, context: Any) -> Any:
            return await unary_response(inner_uu, request, context)

        return grpc.unary_unary_rpc_method_handler(uu, **kw)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def su(it: Any, context: Any) -> Any:
            return await unary_response(inner_su, it, context)

        return grpc.stream_unary_rpc_method_handler(su, **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **kw)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), **kw)
    return handler


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Sees the start and the end of every call to the services of ``CALL_PREFIXES``."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        # Only a registered handler is wrapped, so a client cannot make up method names here.
        if handler is None or not details.method.startswith(CALL_PREFIXES):
            return handler
        method, kind = details.method, call_type(handler)
        return watch_calls(handler, lambda: self.started(method, kind),
                           lambda code, seconds: self.ended(method, kind, code, seconds))

    def started(self, method: str, kind: str) -> None:
        """A call of ``method`` (its full /package.Service/Method name) began."""

    def ended(self, method: str, kind: str, code: grpc.StatusCode, seconds: float) -> None:
        """A call of ``method`` ended with ``code`` after ``seconds``."""


# Told the caller's name when one of its calls starts; raises a WharfError (the call is then
# refused with its status) or returns the function to call once the call is over.
Admit = Callable[[str], Callable[[], None]]


def limit_calls(handler: grpc.RpcMethodHandler, admit: Admit) -> grpc.RpcMethodHandler:
    """``handler`` behind ``admit``: a refused call ends with the refusal's status before the
    handler sees it; an admitted one is released however it ends."""

    async def enter(context: Any) -> Callable[[], None]:
        try:
            return admit(peer_name(context))
        except WharfError as exc:
            trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else ()
            await context.abort(exc.code, exc.message, trailing_metadata=trailing)
            raise  # abort raises; this line only reassures the type checker

    async def unary_response(inner: Callable[..., Any], request: Any, context: Any) -> Any:
        release = await enter(context)
        try:
            result = inner(request, context)
            return await result if inspect.isawaitable(result) else result
        finally:
            release()

    def stream_response(inner: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(inner):  # a reader/writer handler (see watch_calls)

            async def writer(request: Any, context: Any) -> None:
                release = await enter(context)
                try:
                    await inner(request, context)
                finally:
                    release()

            return writer

        async def generator(request: Any, context: Any) -> AsyncIterator[Any]:
            release = await enter(context)
            try:
                async for m in inner(request, context):
                    yield m
            finally:
                release()

        return generator

    kw = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def uu(request: Any, context: Any) -> Any:
            return await unary_response(inner_uu, request, context)

        return grpc.unary_unary_rpc_method_handler(uu, **kw)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def su(it: Any, context: Any) -> Any:
            return await unary_response(inner_su, it, context)

        return grpc.stream_unary_rpc_method_handler(su, **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **kw)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), **kw)
    return handler


class CallLimiter(grpc.aio.ServerInterceptor):
    """Caps the calls each caller has running on the project's own services at once, so that
    one caller cannot take all of the server's ``maximum_concurrent_rpcs``."""

    def __init__(self, admit: Admit) -> None:
        self._admit = admit

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith("/datawharf."):
            return handler
        return limit_calls(handler, self._admit)


class Malformed:
    """What the lenient deserializer returns for bytes that are not the expected message."""

    def __init__(self, type_name: str, error: BaseException) -> None:
        self.message = (f"the request is not a valid {type_name} message ({error}); send messages as the "
                        "datawharf.v1 .proto files describe them, e.g. with the project's client")


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    cls = getattr(deserializer, "__self__", None)
    type_name = getattr(getattr(cls, "DESCRIPTOR", None), "full_name", "request")
    real = deserializer

    def parse(data: bytes) -> Any:
        try:
            return real(data)
        except Exception as exc:  # grpc would answer UNKNOWN for it, which tells the caller nothing
            return Malformed(type_name, exc)

    return parse


def reject_malformed(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` answering INVALID_ARGUMENT, with what was expected, to a request that does not
    parse; in a request stream, the handler meets it as an InvalidArgument it translates."""

    async def checked(it: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for m in it:
            if isinstance(m, Malformed):
                raise InvalidArgument(m.message)
            yield m

    async def first(request: Any, context: Any) -> None:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)

    kw = dict(request_deserializer=_lenient(handler.request_deserializer),
              response_serializer=handler.response_serializer)
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def uu(request: Any, context: Any) -> Any:
            await first(request, context)
            result = inner_uu(request, context)
            return await result if inspect.isawaitable(result) else result

        return grpc.unary_unary_rpc_method_handler(uu, **kw)
    if handler.unary_stream and not inspect.iscoroutinefunction(handler.unary_stream):
        inner_us = handler.unary_stream

        async def us(request: Any, context: Any) -> AsyncIterator[Any]:
            await first(request, context)
            async for m in inner_us(request, context):
                yield m

        return grpc.unary_stream_rpc_method_handler(us, **kw)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def su(it: Any, context: Any) -> Any:
            result = inner_su(checked(it), context)
            return await result if inspect.isawaitable(result) else result

        return grpc.stream_unary_rpc_method_handler(su, **kw)
    if handler.stream_stream and not inspect.iscoroutinefunction(handler.stream_stream):
        inner_ss = handler.stream_stream

        async def ss(it: Any, context: Any) -> AsyncIterator[Any]:
            async for m in inner_ss(checked(it), context):
                yield m

        return grpc.stream_stream_rpc_method_handler(ss, **kw)
    return handler


class MalformedGuard(grpc.aio.ServerInterceptor):
    """Requests to the project's services that do not parse get INVALID_ARGUMENT, not UNKNOWN.
    Put it outside every interceptor that reads messages: they only ever see parsed ones."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith("/datawharf."):
            return handler
        return reject_malformed(handler)
