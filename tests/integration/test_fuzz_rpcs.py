"""Malformed and oversize messages to every RPC of the gateway's two services, over mutual TLS.

Whatever arrives, the answer is a status a caller can act on (never UNKNOWN or INTERNAL), and
the gateway's memory stays bounded. The RPCs are read from the services' descriptors, so a new
RPC is fuzzed without a change here. Messages come from Hypothesis: random bytes, messages of
the right type with random fields (nested, repeated, unknown enum values), the same with
garbage appended, and for streams a valid opening followed by any of these.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datawharf.grpc_options import MAX_MESSAGE_BYTES
from datawharf.pki import Role
from datawharf.serde import listing_to_proto
from datawharf.tls import channel_credentials
from datawharf.v1 import buyer_pb2, party_pb2
from tests.exchange import VISITS, Exchange

EXPECTED = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
    # a second party stream under a name whose previous stream the gateway is still closing
    grpc.StatusCode.ALREADY_EXISTS,
}
METHODS: list[MethodDescriptor] = [
    *buyer_pb2.DESCRIPTOR.services_by_name["BuyerService"].methods,
    *party_pb2.DESCRIPTOR.services_by_name["PartyService"].methods,
]
CALL_TIMEOUT_S = 15
SEEN: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    ex = Exchange(tmp_path_factory.mktemp("fuzz"), parties=())
    try:
        ex.start_gateway()
        yield ex
    finally:
        ex.stop()


@pytest.fixture(scope="module")
def channels(exchange: Exchange) -> Iterator[dict[Role, grpc.Channel]]:
    # The project's client would not even send an oversize message; these channels send anything.
    def raw(name: str, role: Role) -> grpc.Channel:
        return grpc.secure_channel(exchange.address, channel_credentials(exchange.creds(name, role)),
                                   options=[("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES)])

    chans = {Role.BUYER: raw("fuzz-buyer", Role.BUYER), Role.PARTY: raw("fuzz-holder", Role.PARTY)}
    yield chans
    for ch in chans.values():
        ch.close()


def gateway_rss_mib(exchange: Exchange) -> float:
    pid = json.loads((exchange.gateway_dir / "gateway.json").read_text())["pid"]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS for the gateway")


# ------------------------------------------------------------------------ messages
_INTS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INTS:
        lo, hi = _INTS[t]
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 1]))
    if t == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=80)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=300)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if t == FieldDescriptor.TYPE_FLOAT else 64)
    if t == FieldDescriptor.TYPE_ENUM:  # proto3 enums are open: unknown numbers arrive too
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-5, 99))
    raise AssertionError(f"no strategy for field type {t} ({field.full_name})")


@st.composite
def message(draw: st.DrawFn, desc: Descriptor, depth: int = 0) -> Any:
    """A message of type ``desc`` with a random subset of its fields set to random values."""
    msg = message_factory.GetMessageClass(desc)()
    for field in desc.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue  # none of the request messages has a map; skipped rather than half-supported
        if not draw(st.booleans()):
            continue
        repeated = field.is_repeated
        if field.message_type is not None:
            if depth >= 3:
                continue
            values = draw(st.lists(message(field.message_type, depth + 1), min_size=1, max_size=3 if repeated else 1))
            if repeated:
                getattr(msg, field.name).extend(values)
            else:
                getattr(msg, field.name).CopyFrom(values[0])
        elif repeated:
            getattr(msg, field.name).extend(draw(st.lists(_scalar(field), max_size=4)))
        else:
            setattr(msg, field.name, draw(_scalar(field)))
    return msg


def wire(desc: Descriptor) -> st.SearchStrategy[bytes]:
    """What a caller may put on the wire for a message of type ``desc``."""
    typed = message(desc).map(lambda m: m.SerializeToString())
    return st.one_of(
        st.binary(max_size=512),  # anything at all
        typed,  # the right type, any content
        st.tuples(typed, st.binary(min_size=1, max_size=64)).map(lambda t: t[0] + t[1]),  # garbage after it
    )


def opening(method: MethodDescriptor) -> list[bytes]:
    """A well-formed first message, so that fuzz reaches past the opening checks."""
    if method.name == "Connect":
        return [party_pb2.PartyMessage(register=party_pb2.Register(
            datasets=[listing_to_proto(VISITS)])).SerializeToString()]
    return []


def requests(method: MethodDescriptor) -> st.SearchStrategy[list[bytes]]:
    one = wire(method.input_type)
    if not method.client_streaming:
        return one.map(lambda b: [b])
    return st.tuples(st.booleans(), st.lists(one, max_size=5)).map(
        lambda t: (opening(method) if t[0] else []) + t[1])


# --------------------------------------------------------------------------- calls
def call(channel: grpc.Channel, method: MethodDescriptor, messages: list[bytes]) -> tuple[grpc.StatusCode, str]:
    """Send ``messages`` (already serialised) and read the whole answer; the status it ended with."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.client_streaming and method.server_streaming:
            for _ in channel.stream_stream(path)(iter(messages), timeout=CALL_TIMEOUT_S):
                pass
        elif method.client_streaming:
            channel.stream_unary(path)(iter(messages), timeout=CALL_TIMEOUT_S)
        elif method.server_streaming:
            for _ in channel.unary_stream(path)(messages[0], timeout=CALL_TIMEOUT_S):
                pass
        else:
            channel.unary_unary(path)(messages[0], timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        assert code in EXPECTED, f"{method.name} answered {code.name}: {exc.details()}"
        SEEN[method.name][code.name] += 1
        return code, exc.details() or ""
    SEEN[method.name]["OK"] += 1
    return grpc.StatusCode.OK, ""


def role_of(method: MethodDescriptor) -> Role:
    return Role.PARTY if method.containing_service.name == "PartyService" else Role.BUYER


# --------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def rss_before(exchange: Exchange) -> float:
    return gateway_rss_mib(exchange)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_malformed_messages_get_an_actionable_status(channels: dict[Role, grpc.Channel], rss_before: float,
                                                     method: MethodDescriptor) -> None:
    @settings(max_examples=80, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages=requests(method), wrong_role=st.integers(0, 4))
    def fuzz(messages: list[bytes], wrong_role: int) -> None:
        role = role_of(method)
        if wrong_role == 2:  # now and then the other service's certificate (not 0: Hypothesis favours it)
            role = Role.BUYER if role is Role.PARTY else Role.PARTY
        if not messages and not method.client_streaming:
            messages = [b""]
        call(channels[role], method, messages)

    fuzz()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_oversize_messages_are_refused(channels: dict[Role, grpc.Channel], method: MethodDescriptor) -> None:
    # One length-delimited field 1 just over the limit: grpc refuses it before any handler runs.
    size = MAX_MESSAGE_BYTES + 1024
    big = b"\x0a" + _varint(size) + b"\x00" * size
    messages = opening(method) + [big] if method.client_streaming else [big]
    code, details = call(channels[role_of(method)], method, messages)
    # Refused by the gateway (the client sent it: its own limit was raised for this test).
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
    assert not details.startswith("CLIENT"), details


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_the_gateway_memory_stayed_bounded(exchange: Exchange, rss_before: float) -> None:
    """Runs after the fuzzing above (file order): its RSS did not grow with what was sent."""
    grown = gateway_rss_mib(exchange) - rss_before
    print(f"gateway RSS grew by {grown:.1f} MiB over the fuzzing; statuses: "
          + "; ".join(f"{m}: {dict(c)}" for m, c in sorted(SEEN.items())))
    assert grown < 64
    exchange.alive()
