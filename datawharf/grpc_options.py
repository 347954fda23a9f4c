"""Every channel and server option, each with its reason."""

from __future__ import annotations

import json

from datawharf.chunking import CHUNK_BYTES

# A chunk plus its envelope must fit; anything bigger is a misbehaving peer.
MAX_MESSAGE_BYTES = 2 * CHUNK_BYTES + (64 << 10)

_COMMON: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


# Client pings: every 20 s, even when idle, so NATs and firewalls between a holder and the
# gateway keep the party stream's mapping alive. The server's policing below must allow it.
CLIENT_PING_MS = 20_000
# The server refuses pings closer together than this when no data flows; half the clients'
# interval, so a client's ping never counts as a strike, while a ping flood does.
MIN_PING_INTERVAL_MS = CLIENT_PING_MS // 2
# Calls the whole server runs at once; past it gRPC answers RESOURCE_EXHAUSTED at once
# instead of queueing without bound. Party streams and buyers' watches hold one each.
MAX_CONCURRENT_RPCS = 1024


# A buyer's calls are idempotent (a submission by its request id; the rest read or end a job), so a
# call that found no gateway (UNAVAILABLE: a replica died, a gateway restarted) is tried again by
# gRPC itself, a few times with backoff, on whichever replica the balancer picks next.
_RETRY_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "datawharf.v1.BuyerService"}],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.25s", "maxBackoff": "3s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"]},
}]})


def client_options() -> list[tuple[str, int | str]]:
    return [
        *_COMMON,
        ("grpc.service_config", _RETRY_CONFIG),
        ("grpc.keepalive_time_ms", CLIENT_PING_MS),
        # A gateway that does not answer a ping in 10 s is gone: reconnect.
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Allow pings on a stream that carries no data for hours.
        ("grpc.http2.max_pings_without_data", 0),
        # Reconnect quickly after a gateway restart instead of gRPC's 120 s cap.
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]


def server_options(*, idle_s: float = 300.0) -> list[tuple[str, int]]:
    """``idle_s``: a connection with no call for this long is closed (clients reconnect when they
    next call), so abandoned connections do not hold the gateway's memory and file handles."""
    return _COMMON + [
        # Ping policing: pings without data closer than MIN_PING_INTERVAL_MS are strikes, and
        # the third strike ends the connection (GOAWAY "too_many_pings"); a flood of pings
        # cannot keep the server busy answering them.
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", 2),
        # Idle clients (a party between tasks) ping too; that is allowed, at the pace above.
        ("grpc.keepalive_permit_without_calls", 1),
        # The server pings idle party streams too, to notice a vanished holder.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_connection_idle_ms", int(idle_s * 1000)),
        # A TLS handshake must finish in 10 s: half-open connections do not pile up.
        ("grpc.server_handshake_timeout_ms", 10_000),
        # Streams one connection may open at once (HTTP/2 SETTINGS); a client queues beyond it.
        ("grpc.max_concurrent_streams", 256),
    ]
