"""Channel and server options: names gRPC knows, and a client keepalive the server's policing allows."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from datawharf.grpc_options import CLIENT_PING_MS, MIN_PING_INTERVAL_MS, client_options, server_options


@pytest.fixture(scope="module")
def core_strings() -> bytes:
    # gRPC ignores an option it does not know, without a word: a misspelt name is a limit that
    # silently does not exist (the ping policing did, under min_recv_ping_interval_...).
    (library,) = Path(grpc.__file__).parent.joinpath("_cython").glob("cygrpc*.so")
    return library.read_bytes()


@pytest.mark.parametrize("name", sorted({k for k, _ in client_options() + server_options()}))
def test_every_option_is_one_grpc_knows(core_strings: bytes, name: str) -> None:
    assert name.encode() + b"\x00" in core_strings


def test_the_clients_pings_are_never_strikes() -> None:
    server = dict(server_options())
    client = dict(client_options())
    assert client["grpc.keepalive_time_ms"] == CLIENT_PING_MS
    assert server["grpc.http2.min_ping_interval_without_data_ms"] == MIN_PING_INTERVAL_MS < CLIENT_PING_MS
    assert server["grpc.http2.max_ping_strikes"] > 0  # 0 would mean a flood is never cut off
    assert server["grpc.keepalive_permit_without_calls"] == client["grpc.keepalive_permit_without_calls"] == 1


def test_idle_connections_are_closed_after_the_given_time() -> None:
    assert dict(server_options(idle_s=42))["grpc.max_connection_idle_ms"] == 42_000
