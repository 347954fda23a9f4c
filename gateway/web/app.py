"""aiohttp application: routes, access control, and the server's lifecycle."""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.dispatch import StreamDispatcher
from gateway.metrics import Metrics
from gateway.jobs import Orchestrator
from gateway.web.auth import Access
from gateway.web.benchdata import load_records
from gateway.web.jobview import job_detail, valid_job_id
from gateway.web.market import market_overview

STATIC = Path(__file__).resolve().parent / "static"
WINDOW_S = 3600
BUCKET_S = 60
ACCESS = web.AppKey("access", Access)


class AccessError(ValueError):
    """The dashboard's bind address and token settings are unsafe together."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_access(host: str, *, allow_remote: bool, token: str | None, tls: bool = False) -> None:
    """Loopback by default; anything else needs an explicit flag, a token, and HTTPS.

    Without TLS the token, and the session cookie it buys, would cross the
    network in the clear.
    """
    if is_loopback(host):
        return
    if not allow_remote:
        raise AccessError(
            f"the dashboard would listen on {host}, beyond this machine; pass --http-allow-remote "
            "and --http-token (or WHARF_HTTP_TOKEN) to do that deliberately"
        )
    if not token or len(token) < 16:
        raise AccessError("a dashboard reachable from other machines needs --http-token of at least 16 characters")
    if not tls:
        raise AccessError("a dashboard reachable from other machines must serve HTTPS with the gateway's "
                          "certificate: start the gateway with --identity (not --insecure)")


def overview(orch: Orchestrator, dispatcher: StreamDispatcher, now: float) -> dict[str, Any]:
    store = orch.store
    parties = []
    catalog_by_party = orch.datasets_by_party()
    for row in store.parties():
        parties.append({
            "name": row["name"],
            "online": dispatcher.is_online(row["name"]),
            "datasets": catalog_by_party.get(row["name"], []),
            "last_seen": row["last_seen"],
            "contributions": row["contributions"],
        })
    jobs = []
    for r in store.recent_jobs(50):
        end = r["finished_at"] or now
        jobs.append({
            "job_id": r["job_id"], "buyer": r["buyer"], "type": r["kind"], "backend": r["backend"],
            "state": r["state"], "reason": r["reason"], "answered": r["answered"] or 0,
            "expected": r["expected"] or 0, "contributed": r["contributed"] or 0,
            "created_at": r["created_at"], "duration_s": round(end - r["created_at"], 3),
        })
    start = now - WINDOW_S
    buckets = [{"t": start + i * BUCKET_S, "jobs": 0, "durations": []} for i in range(WINDOW_S // BUCKET_S)]
    for r in store.finished_since(start):
        i = min(len(buckets) - 1, int((r["finished_at"] - start) // BUCKET_S))
        buckets[i]["jobs"] += 1
        buckets[i]["durations"].append(r["finished_at"] - r["created_at"])
    series = []
    for b in buckets:
        d = sorted(b["durations"])
        series.append({"t": b["t"], "jobs_per_min": b["jobs"],
                       "median_latency_s": d[len(d) // 2] if d else None,
                       "max_latency_s": d[-1] if d else None})
    return {"now": now, "parties": parties, "jobs": jobs, "series": series,
            "parties_online": sum(p["online"] for p in parties)}


def create_app(
    orch: Orchestrator,
    dispatcher: StreamDispatcher,
    metrics: Metrics,
    *,
    results_dir: Path | None,
    token: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> web.Application:
    """The dashboard. It answers to localhost, loopback addresses, ``allowed_hosts``
    and, once :func:`start_http` serves it, the address it listens on."""
    access = Access(token, allowed_hosts)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    if token:  # without a token there is no session to end
        page = page.replace('id="logout" hidden', 'id="logout"')

    async def index(_: web.Request) -> web.StreamResponse:
        return web.Response(text=page, content_type="text/html")

    async def api_overview(_: web.Request) -> web.StreamResponse:
        return web.json_response(overview(orch, dispatcher, time.time()))

    async def api_market(_: web.Request) -> web.StreamResponse:
        return web.json_response(market_overview(orch.market, time.time(), orch.store._db))

    async def job_page(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "job.html")

    async def api_job(request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["job_id"]
        if not valid_job_id(job_id):
            return web.json_response({"error": f"{job_id!r} is not a job id (job- and 16 hex digits)"}, status=400)
        detail = job_detail(orch.store, job_id, time.time())
        if detail is None:
            return web.json_response({"error": f"no job {job_id} at this gateway"}, status=404)
        return web.json_response(detail)

    async def api_benchmarks(_: web.Request) -> web.StreamResponse:
        return web.json_response({"records": load_records(results_dir)})

    async def prometheus(_: web.Request) -> web.StreamResponse:
        # Set as a header: aiohttp's content_type argument refuses a value that carries a charset.
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app[ACCESS] = access
    access.install(app)
    app.router.add_get("/", index)
    app.router.add_get("/api/overview", api_overview)
    app.router.add_get("/api/benchmarks", api_benchmarks)
    app.router.add_get("/api/market", api_market)
    app.router.add_get("/jobs/{job_id}", job_page)
    app.router.add_get("/api/jobs/{job_id}", api_job)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC)
    return app


def server_ssl_context(cert_pem_path: str | Path, key_pem_path: str | Path) -> ssl.SSLContext:
    """TLS 1.2 or later with this certificate chain; browsers are not asked for a certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_pem_path), str(key_pem_path))
    return context


async def start_http(app: web.Application, listen: str, ssl_context: ssl.SSLContext | None = None
                     ) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``listen`` (host:port; port 0 picks one), over TLS when given a context.

    Returns the runner to clean up and the host:port actually bound.
    """
    host, _, port = listen.rpartition(":")
    bind = host.strip("[]") or "127.0.0.1"
    if ACCESS in app:
        app[ACCESS].hosts.serve(bind)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, bind, int(port), ssl_context=ssl_context)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    bound = sockets[0].getsockname()[1] if sockets else int(port)
    return runner, f"{host}:{bound}"
