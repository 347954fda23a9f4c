"""Per-method call counts by status code and call latency, as a real gateway's /metrics shows them."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from datawharf.errors import NotFound
from tests.exchange import Exchange, StartExchange

BUYER = "datawharf.v1.BuyerService"
CODES = {code.name for code in grpc.StatusCode}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("rpc-metrics", parties=("st-mary",), rows=100, http=True)


def scrape(ex: Exchange) -> Samples:
    with urllib.request.urlopen(f"http://{ex.http_address}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def test_calls_are_counted_by_method_and_code(exchange: Exchange) -> None:
    before = scrape(exchange)
    with exchange.client() as c:
        c.catalog()
        with pytest.raises(NotFound):
            c.status("job-nope")
        c.result(c.submit("visits", "cost", "sum", timeout_s=60))
    after = scrape(exchange)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    unary = {"grpc_service": BUYER, "grpc_type": "unary"}
    assert moved("grpc_server_handled_total", grpc_method="GetJob", grpc_code="NOT_FOUND", **unary) == 1
    assert moved("grpc_server_handled_total", grpc_method="ListCatalog", grpc_code="OK", **unary) >= 1
    assert moved("grpc_server_handled_total", grpc_method="SubmitJob", grpc_code="OK", **unary) == 1
    for method in ("GetJob", "ListCatalog"):
        assert moved("grpc_server_handling_seconds_count", grpc_method=method, **unary) >= 1
        assert (value(after, "grpc_server_handling_seconds_count", grpc_method=method, **unary)
                == value(after, "grpc_server_handled_total", grpc_method=method, **unary))
    # The holder's stream is open for as long as it is online: started, not yet handled.
    assert value(after, "grpc_server_started_total", grpc_method="Connect", grpc_type="bidi_stream") >= 1

    started: dict[tuple[str, ...], float] = defaultdict(float)
    handled: dict[tuple[str, ...], float] = defaultdict(float)
    for (name, labels), v in after.items():
        ls = dict(labels)
        key = (ls.get("grpc_service", ""), ls.get("grpc_method", ""), ls.get("grpc_type", ""))
        if name == "grpc_server_started_total":
            started[key] += v
        elif name == "grpc_server_handled_total":
            handled[key] += v
            assert ls["grpc_code"] in CODES, ls
    assert handled
    for key, n in handled.items():
        assert started[key] >= n, key
    for service, method, kind in started:
        assert service.startswith(("datawharf.", "grpc.health.", "grpc.reflection.")), service
        assert kind in ("unary", "client_stream", "server_stream", "bidi_stream"), kind
    assert ("datawharf.v1.BuyerService", "WatchJob", "server_stream") in started
