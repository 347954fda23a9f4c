"""Every channel and server option, each with its reason."""

from __future__ import annotations

from datawharf.chunking import CHUNK_BYTES

# A chunk plus its envelope must fit; anything bigger is a misbehaving peer.
MAX_MESSAGE_BYTES = 2 * CHUNK_BYTES + (64 << 10)

_COMMON: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def client_options() -> list[tuple[str, int]]:
    return _COMMON + [
        # Ping every 20 s even when idle so NATs and firewalls between a holder
        # and the gateway keep the party stream's mapping alive.
        ("grpc.keepalive_time_ms", 20_000),
        # A gateway that does not answer a ping in 10 s is gone: reconnect.
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Allow pings on a stream that carries no data for hours.
        ("grpc.http2.max_pings_without_data", 0),
        # Reconnect quickly after a gateway restart instead of gRPC's 120 s cap.
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]


def server_options() -> list[tuple[str, int]]:
    return _COMMON + [
        # Accept the clients' 20 s pings (the default minimum of 5 min would
        # make the server answer GOAWAY "too_many_pings").
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_ping_strikes", 0),
        # The server pings idle party streams too, to notice a vanished holder.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
    ]
