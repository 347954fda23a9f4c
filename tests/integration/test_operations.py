"""The operator's side of a real gateway: JSON API, Prometheus metrics, health, reflection."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from buyers.client import JobFailed
from tests.exchange import Exchange, StartExchange

TOKEN = "operator-token-0123456789"


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("ops", parties=("st-mary", "riverside"), rows=300, http=True, http_token=TOKEN)


def get(ex: Exchange, path: str, token: str | None = TOKEN, *, data: bytes | None = None,
        opener: urllib.request.OpenerDirector | None = None, **headers: str) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://{ex.http_address}{path}", data=data, headers=headers)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def metrics(ex: Exchange) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = get(ex, "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(m: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return sum(v for (n, ls), v in m.items() if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


def test_token_is_required(exchange: Exchange) -> None:
    assert get(exchange, "/api/overview", token=None)[0] == 401
    assert get(exchange, "/metrics", token="wrong-token-wrong-token")[0] == 401
    assert get(exchange, "/healthz", token=None)[0] == 200
    # A token in the URL would be kept by browser history, proxy logs and Referer headers.
    assert get(exchange, f"/api/overview?token={TOKEN}", token=None)[0] == 401


def test_browser_signs_in_with_a_session_cookie_and_out_again(exchange: Exchange) -> None:
    cookies = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    status, body = get(exchange, "/", token=None, opener=browser, Accept="text/html")
    assert status == 200 and b'name="token"' in body  # redirected to the login form
    status, body = get(exchange, "/login", token=None, opener=browser,
                       data=urllib.parse.urlencode({"token": "wrong-token-wrong-token"}).encode())
    assert status == 401 and b"not the operator token" in body
    status, body = get(exchange, "/login", token=None, opener=browser,
                       data=urllib.parse.urlencode({"token": TOKEN}).encode())
    assert status == 200 and b"DataWharf gateway" in body and b'id="logout"' in body
    (session,) = cookies
    assert session.has_nonstandard_attr("HttpOnly") and session.path == "/"
    assert get(exchange, "/api/overview", token=None, opener=browser)[0] == 200
    status, body = get(exchange, "/logout", token=None, opener=browser, data=b"")
    assert status == 200 and b'name="token"' in body
    assert get(exchange, "/api/overview", token=None, Cookie=f"{session.name}={session.value}")[0] == 401


def test_cross_site_login_and_foreign_host_names_are_refused(exchange: Exchange) -> None:
    form = urllib.parse.urlencode({"token": TOKEN}).encode()
    assert get(exchange, "/login", token=None, data=form, Origin="http://evil.example")[0] == 403
    # A DNS-rebinding page reaches the loopback dashboard under its own name.
    status, body = get(exchange, "/api/overview", Host="evil.example")
    assert status == 421 and b"--http-host evil.example" in body
    port = exchange.http_address.rpartition(":")[2]
    assert get(exchange, "/api/overview", Host=f"localhost:{port}")[0] == 200


def test_metrics_and_api_move_with_a_real_job(exchange: Exchange) -> None:
    before = metrics(exchange)
    with exchange.client() as c:
        job = c.submit("visits", "cost", "sum")
        c.result(job)
        with pytest.raises(JobFailed):
            (m := exchange.client("mallory")).result(m.submit("visits", "cost", "sum"))
        m.close()
    after = metrics(exchange)
    assert total(after, "wharf_jobs_submitted_total") - total(before, "wharf_jobs_submitted_total") == 2
    assert total(after, "wharf_jobs_finished_total", state="DONE") - total(before, "wharf_jobs_finished_total", state="DONE") == 1
    assert total(after, "wharf_jobs_finished_total", state="FAILED") - total(before, "wharf_jobs_finished_total", state="FAILED") == 1
    assert total(after, "wharf_jobs", type="aggregate", state="DONE") >= 1
    assert total(after, "wharf_refusals_total", reason="buyer_not_granted") - total(
        before, "wharf_refusals_total", reason="buyer_not_granted") == 2
    assert total(after, "wharf_parties_connected") == 2
    assert total(after, "wharf_grpc_bytes_received_total", method="Connect") > total(
        before, "wharf_grpc_bytes_received_total", method="Connect")
    assert total(after, "wharf_grpc_bytes_sent_total", method="FetchResult") > 0
    assert total(after, "wharf_job_duration_seconds_count") >= 2
    assert total(after, "wharf_contribution_latency_seconds_count") >= 2

    status, body = get(exchange, "/api/overview")
    data = json.loads(body)
    assert status == 200 and data["parties_online"] == 2
    row = next(j for j in data["jobs"] if j["job_id"] == job.job_id)
    assert row["state"] == "DONE" and row["answered"] == row["expected"] == 2 and row["backend"] == "paillier-packed"
    assert {p["name"] for p in data["parties"]} == {"st-mary", "riverside"}
    assert all(p["contributions"] >= 1 for p in data["parties"])
    assert sum(s["jobs_per_min"] for s in data["series"]) >= 2
    # Nothing secret: no key material or spec travels to the dashboard.
    assert b"paillier_n" not in body and b"public_context" not in body


def test_health_and_reflection(exchange: Exchange) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with exchange.channel() as ch:
        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
        services = set(ProtoReflectionDescriptorDatabase(ch).get_services())
    assert {"datawharf.v1.BuyerService", "datawharf.v1.PartyService", "grpc.health.v1.Health"} <= services


def test_dashboard_page_and_static_files(exchange: Exchange) -> None:
    status, body = get(exchange, "/")
    assert status == 200 and b"DataWharf gateway" in body
    status, body = get(exchange, "/static/vendor/chart.umd.min.js")
    assert status == 200 and body.startswith(b"/*!\n * Chart.js")
    assert get(exchange, "/static/../app.py")[0] in (403, 404)


def test_refuses_an_exposed_dashboard_without_a_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "wharf", "gateway", "serve", "--listen", "127.0.0.1:0",
                          "--data-dir", str(tmp_path), "--http", "0.0.0.0:0"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and "--http-allow-remote" in out.stderr


def test_refuses_an_exposed_dashboard_without_https(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "wharf", "gateway", "serve", "--listen", "127.0.0.1:0",
                          "--data-dir", str(tmp_path), "--http", "0.0.0.0:0", "--http-allow-remote",
                          "--http-token", TOKEN], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "must serve HTTPS" in out.stderr and "--identity" in out.stderr


def test_dashboard_serves_https_with_the_gateways_certificate(start_exchange: StartExchange) -> None:
    from datawharf.pki import Role

    ex = start_exchange("ops-https", parties=("st-mary",), rows=50)
    ident = ex.identity("gateway", Role.GATEWAY)
    ex.stop_gateway()
    ex.start_gateway("--http", "127.0.0.1:0", "--http-token", TOKEN, "--http-tls")
    trusting = ssl.create_default_context(cafile=str(ident / "ca.pem"))
    req = urllib.request.Request(f"https://{ex.http_address}/api/overview",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, context=trusting, timeout=10) as resp:
        assert resp.status == 200
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://{ex.http_address}/healthz", timeout=10)
