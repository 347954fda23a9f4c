"""The grpc_server_* families from a real grpc.aio server, and the fixed sets of refusal reasons."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import grpc
import pytest

from gateway.metrics import REFUSAL_REASONS, Metrics
from gateway.store import SqliteStore

SERVICE = "datawharf.test.Probe"


def _same(b: bytes) -> bytes:
    return b


async def ok(request: bytes, context: Any) -> bytes:
    return b"ok"


async def missing(request: bytes, context: Any) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return b""


async def quiet_code(request: bytes, context: Any) -> bytes:
    context.set_code(grpc.StatusCode.ALREADY_EXISTS)
    return b""


async def broken(request: bytes, context: Any) -> bytes:
    raise RuntimeError("a bug")


async def slow(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(30)
    return b""


async def three(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for _ in range(3):
        await asyncio.sleep(0.1)
        yield b"m"


async def endless(request: bytes, context: Any) -> AsyncIterator[bytes]:
    while True:
        yield b"m"
        await asyncio.sleep(0.01)


async def written(request: bytes, context: Any) -> None:
    # The reader/writer API, as grpc's health Watch uses it.
    await context.write(b"w")
    await context.write(b"w")


async def summed(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return b"".join([r async for r in requests])


async def echoed(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for r in requests:
        yield r


class Probe(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        name = details.method.rpartition("/")[2]
        kw: dict[str, Any] = {"request_deserializer": _same, "response_serializer": _same}
        unary = {"Ok": ok, "Missing": missing, "QuietCode": quiet_code, "Broken": broken, "Slow": slow}
        if name in unary:
            return grpc.unary_unary_rpc_method_handler(unary[name], **kw)
        if name in ("Three", "Endless", "Written"):
            return grpc.unary_stream_rpc_method_handler({"Three": three, "Endless": endless, "Written": written}[name],
                                                        **kw)
        if name == "Summed":
            return grpc.stream_unary_rpc_method_handler(summed, **kw)
        if name == "Echoed":
            return grpc.stream_stream_rpc_method_handler(echoed, **kw)
        return None


@pytest.fixture()
def metrics(tmp_path: Path) -> Iterator[Metrics]:
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    try:
        yield Metrics(store)
    finally:
        store.close()


def sample(metrics: Metrics, name: str, method: str, kind: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(
        name, {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": kind, **labels})
    return value or 0.0


async def drive(metrics: Metrics) -> None:
    server = grpc.aio.server(interceptors=[metrics.rpc_interceptor()])
    server.add_generic_rpc_handlers((Probe(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            def uu(name: str) -> Any:
                return ch.unary_unary(f"/{SERVICE}/{name}")

            assert await uu("Ok")(b"") == b"ok"
            for name in ("Missing", "QuietCode", "Broken"):
                with pytest.raises(grpc.aio.AioRpcError):
                    await uu(name)(b"")
            with pytest.raises(grpc.aio.AioRpcError):
                await uu("Unregistered")(b"")
            call = uu("Slow")(b"")
            await asyncio.sleep(0.2)
            call.cancel()
            assert [m async for m in ch.unary_stream(f"/{SERVICE}/Three")(b"")] == [b"m"] * 3
            assert [m async for m in ch.unary_stream(f"/{SERVICE}/Written")(b"")] == [b"w"] * 2
            stream = ch.unary_stream(f"/{SERVICE}/Endless")(b"")
            await stream.read()
            stream.cancel()

            async def two() -> AsyncIterator[bytes]:
                yield b"a"
                yield b"b"

            assert await ch.stream_unary(f"/{SERVICE}/Summed")(two()) == b"ab"
            assert [m async for m in ch.stream_stream(f"/{SERVICE}/Echoed")(two())] == [b"a", b"b"]
            # The server sees a cancellation a moment after the client does.
            for _ in range(100):
                if (sample(metrics, "grpc_server_handled_total", "Slow", "unary", grpc_code="CANCELLED")
                        and sample(metrics, "grpc_server_handled_total", "Endless", "server_stream",
                                   grpc_code="CANCELLED")):
                    break
                await asyncio.sleep(0.05)
    finally:
        await server.stop(None)


def test_each_call_is_counted_by_its_code_and_timed(metrics: Metrics) -> None:
    asyncio.run(drive(metrics))

    def handled(method: str, kind: str, code: str) -> float:
        return sample(metrics, "grpc_server_handled_total", method, kind, grpc_code=code)

    assert handled("Ok", "unary", "OK") == 1
    assert handled("Missing", "unary", "NOT_FOUND") == 1  # from context.abort
    assert handled("QuietCode", "unary", "ALREADY_EXISTS") == 1  # set_code, then a normal return
    assert handled("Broken", "unary", "UNKNOWN") == 1
    assert handled("Slow", "unary", "CANCELLED") == 1
    assert handled("Three", "server_stream", "OK") == 1
    assert handled("Written", "server_stream", "OK") == 1
    assert handled("Endless", "server_stream", "CANCELLED") == 1
    assert handled("Summed", "client_stream", "OK") == 1
    assert handled("Echoed", "bidi_stream", "OK") == 1
    for method, kind in (("Ok", "unary"), ("Slow", "unary"), ("Three", "server_stream"), ("Echoed", "bidi_stream")):
        assert sample(metrics, "grpc_server_started_total", method, kind) == 1
        assert sample(metrics, "grpc_server_handling_seconds_count", method, kind) == 1
    # A stream is timed to its end: three messages 0.1 s apart.
    assert sample(metrics, "grpc_server_handling_seconds_sum", "Three", "server_stream") >= 0.25
    assert sample(metrics, "grpc_server_handling_seconds_bucket", "Ok", "unary", le="0.1") == 1
    # A method the server does not have adds no series.
    names = {s.labels.get("grpc_method") for f in metrics.registry.collect() for s in f.samples
             if f.name.startswith("grpc_server_")}
    assert "Unregistered" not in names


def test_refusal_reasons_are_a_fixed_set(metrics: Metrics) -> None:
    metrics.refusal("min_rows")
    metrics.refusal("x" * 200)  # any string a holder cares to send
    metrics.refusal("Min_Rows")
    metrics.refusal("")
    metrics.auth_refused("revoked")
    metrics.auth_refused("made-up")

    def value(name: str, reason: str) -> float:
        return metrics.registry.get_sample_value(name, {"reason": reason}) or 0.0

    assert value("wharf_refusals_total", "min_rows") == 1
    assert value("wharf_refusals_total", "other") == 2
    assert value("wharf_refusals_total", "unspecified") == 1
    assert value("wharf_auth_refusals_total", "revoked") == 1
    assert value("wharf_auth_refusals_total", "other") == 1
    reasons = {s.labels["reason"] for f in metrics.registry.collect() for s in f.samples
               if f.name in ("wharf_refusals", "wharf_auth_refusals")}
    assert reasons == {"min_rows", "other", "unspecified", "revoked"}


def codes_sent_by_holders() -> set[str]:
    """Every literal refusal code in parties/: ``code=...``, ``Refused(reason, code)`` and
    ``Decision(False, reason, code)``. The gateway may not import parties/, so its source is read."""
    found: set[str] = set()
    for path in (Path(__file__).resolve().parents[3] / "parties").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            args = [kw.value for kw in node.keywords if kw.arg == "code"]
            name = getattr(node.func, "id", "")
            if name == "Refused" and len(node.args) >= 2:
                args.append(node.args[1])
            if name == "Decision" and len(node.args) >= 3:
                args.append(node.args[2])
            found |= {a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value}
    return found


def test_the_fixed_set_has_every_code_the_holders_send() -> None:
    sent = codes_sent_by_holders()
    assert len(sent) >= 10, sent
    assert sent <= REFUSAL_REASONS, sent - REFUSAL_REASONS
