"""Gateway server lifecycle: build, serve, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from datawharf.grpc_options import MAX_CONCURRENT_RPCS, server_options
from datawharf.identity import Gate
from datawharf.pki import Credentials, Role, RoleError, TrustStore
from datawharf.tls import check_insecure, server_credentials
from datawharf.v1 import market_pb2, market_pb2_grpc
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc, grants_pb2, grants_pb2_grpc, party_pb2, party_pb2_grpc
from gateway.dispatch import StreamDispatcher
from gateway.grants import GrantServicer
from gateway.interceptors import CallLimiter, MalformedGuard
from gateway.anchor import Anchor
from gateway.ledger import Ledger
from gateway.metrics import ByteCounter, Metrics
from gateway.jobs import Orchestrator
from gateway.market import Market
from gateway.market.servicer import MarketServicer
from gateway.servicers import BuyerServicer, PartyServicer
from gateway.quotas import Quotas, QuotaSettings, refusal_counter
from gateway.spool import DEFAULT_MAX_BYTES as DEFAULT_SPOOL_BYTES, Spool
from gateway.store import open_store
from gateway.store.postgres import PostgresStore
from gateway.replicas import ReplicaDispatcher, Replicas
from gateway.web.app import check_access, create_app, is_loopback, server_ssl_context, start_http
from gateway.wiretap import WireTap

log = logging.getLogger("datawharf.gateway")

SERVICES = ("datawharf.v1.BuyerService", "datawharf.v1.PartyService", "datawharf.v1.GrantService")
SERVICES += ("datawharf.v1.MarketService",)
READY_FILE = "gateway.json"


@dataclass(frozen=True)
class GatewaySettings:
    listen: str = "127.0.0.1:50051"
    data_dir: Path = Path("wharf-data")
    store: str = "sqlite"  # the data directory's file; postgresql://...: a database replicas share
    blob_dir: Path | None = None  # contributions with a PostgreSQL store; replicas share it (default data_dir/blobs)
    replica: str = ""  # this replica's name among those sharing a PostgreSQL store (default: host and data dir)
    lease_s: float = 10.0  # how long a replica's jobs stay its own without renewal
    wire_log: Path | None = None
    grace_s: float = 5.0
    http: str | None = None  # dashboard and /metrics address, e.g. 127.0.0.1:8080
    http_token: str | None = None
    http_allow_remote: bool = False
    results_dir: Path | None = None  # benchmark records shown on the dashboard
    identity: Path | None = None  # the gateway's ca.pem, cert.pem and key.pem (`wharf ca issue --role gateway`)
    crl: Path | None = None  # the CA's revocation list, re-read when it changes
    insecure: bool = False  # plaintext, self-asserted names; loopback only
    http_hosts: tuple[str, ...] = ()  # names the dashboard answers to besides its address and localhost
    http_tls: bool | None = None  # HTTPS with the gateway's certificate; None: when not on loopback
    ledger: bool = True  # off only to measure what the ledger costs
    result_ttl_s: float | None = 7 * 24 * 3600  # a result is destroyed this long after it is made
    anchor_url: str | None = None  # an RFC 3161 time-stamping authority for the ledger's head
    anchor_every_s: float = 3600.0
    crl_poll_s: float = 1.0
    quotas: QuotaSettings = QuotaSettings()  # per buyer: open jobs, jobs a minute, upload bytes; calls per caller
    spool_max_bytes: int = DEFAULT_SPOOL_BYTES  # the PSI spool's disk quota
    max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS  # calls of all callers at once
    idle_s: float = 300.0  # a connection without a call is closed after this long
    listing_review: bool = True  # only listings an operator approved are in the catalog; False: every one
    fee_percent: Decimal = Decimal(0)  # the operator's fee on each charged job, a line of its own


def _trust(settings: GatewaySettings) -> tuple[Credentials | None, TrustStore | None]:
    if settings.insecure:
        check_insecure(settings.listen, "the gateway")
        if settings.listing_review:
            raise RoleError("listing review needs certificates (listings and decisions are signed): start an "
                            "--insecure gateway with --listing-review off")
        return None, None
    if settings.identity is None:
        raise RoleError("the gateway needs its certificate: --identity DIR from "
                        "`wharf ca issue --role gateway NAME --out DIR` (or --insecure on loopback)")
    creds = Credentials.load(settings.identity)
    trust = creds.trust(settings.crl)
    trust.verify(creds.cert_pem, roles=(Role.GATEWAY,), what="the gateway's certificate")
    return creds, trust


async def _follow_revocations(trust: TrustStore, orch: Orchestrator, stop: asyncio.Event, every_s: float) -> None:
    """Re-read the CRL; a revoked holder is disconnected and its listings leave the catalog. A holder
    whose certificate expires while connected is disconnected too."""
    while not stop.is_set():
        try:
            if trust.refresh():
                orch.store.record("crl_updated", detail=f"CRL {trust.crl_number}: {len(trust.revoked)} revoked",
                                  evidence={"crl_number": trust.crl_number,
                                            "revoked_serials": sorted(f"{s:x}" for s in trust.revoked)})
                orch.revoked(trust.is_revoked)
            orch.book.disconnect_expired(time.time())
        except Exception:
            log.exception("cannot apply the revocation list %s", trust.crl_path)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except asyncio.TimeoutError:
            pass


def default_replica_name(data_dir: Path) -> str:
    """Stable across restarts of the same replica (its host and data directory), distinct between two."""
    return f"{socket.gethostname()}-{hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]}"


async def _watch_store(store: PostgresStore, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """While the database is away, try it again now and then (off the event loop)."""
    while not stop.is_set():
        if not store.available:
            await asyncio.to_thread(store.reconnect, 0.5)
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except asyncio.TimeoutError:
            pass


async def serve(settings: GatewaySettings, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set or SIGTERM/SIGINT arrives."""
    http_tls = False
    if settings.http:
        http_host = settings.http.rpartition(":")[0].strip("[]")
        http_tls = settings.http_tls if settings.http_tls is not None else not is_loopback(http_host)
        http_tls = http_tls and settings.identity is not None and not settings.insecure
        check_access(http_host, allow_remote=settings.http_allow_remote, token=settings.http_token, tls=http_tls)
    creds, trust = _trust(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    health_servicer = health.aio.HealthServicer()

    def store_changed(available: bool) -> None:
        # Told from whichever call found the database gone (or back): health follows, so a load
        # balancer checking it sends no new callers here while the store is away.
        status = health_pb2.HealthCheckResponse.SERVING if available else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICES):
            loop.call_soon_threadsafe(lambda n=name: asyncio.ensure_future(health_servicer.set(n, status)))

    store = open_store(settings.store, settings.data_dir, blob_dir=settings.blob_dir, on_change=store_changed)
    if settings.ledger:
        try:
            store.attach_ledger(lambda lines, insert: Ledger.open(settings.data_dir, lines, creds, insert))
        except BaseException:
            store.close()
            raise
    else:
        log.warning("the ledger is off (--no-ledger): no use of data is recorded for audit")
    streams = StreamDispatcher()
    dispatcher: StreamDispatcher | ReplicaDispatcher = streams
    replicas = None
    spool_root = settings.data_dir / "spool"
    if isinstance(store, PostgresStore):
        replicas = Replicas(store, settings.replica or default_replica_name(settings.data_dir),
                            lease_s=settings.lease_s)
        dispatcher = ReplicaDispatcher(streams, replicas)
        spool_root = (settings.blob_dir or settings.data_dir / "blobs") / "spool"  # shared, like the blobs
    metrics = Metrics(store)
    gate = Gate(trust, on_refusal=metrics.auth_refused)
    quotas = Quotas(settings.quotas, on_refusal=refusal_counter(metrics.registry))
    orch = Orchestrator(store, dispatcher, observer=metrics,
                        spool=Spool(spool_root, max_bytes=settings.spool_max_bytes), trust=trust,
                        result_ttl_s=settings.result_ttl_s, quotas=quotas,
                        market=Market(store, trust, review_required=settings.listing_review,
                                      fee_percent=settings.fee_percent))
    tap = WireTap(settings.wire_log) if settings.wire_log else None
    # Metrics first, so that calls refused by the others are counted with their status; the
    # malformed-request guard before every interceptor that reads messages.
    interceptors: list[grpc.aio.ServerInterceptor] = [metrics.rpc_interceptor(), MalformedGuard(),
                                                      CallLimiter(quotas.admit_call), ByteCounter(metrics)]
    interceptors += [tap] if tap else []
    server = grpc.aio.server(interceptors=interceptors, options=server_options(idle_s=settings.idle_s),
                             maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None)
    buyer_pb2_grpc.add_BuyerServiceServicer_to_server(BuyerServicer(orch, gate), server)
    party_pb2_grpc.add_PartyServiceServicer_to_server(PartyServicer(orch, dispatcher, gate), server)
    assert orch.market is not None
    market_pb2_grpc.add_MarketServiceServicer_to_server(MarketServicer(orch.market, gate, catalog=orch.catalog),
                                                        server)
    grants_pb2_grpc.add_GrantServiceServicer_to_server(GrantServicer(store, orch.catalog, gate), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # Reflection lets grpcurl list and call the services without the .proto files.
    reflection.enable_server_reflection(
        (
            buyer_pb2.DESCRIPTOR.services_by_name["BuyerService"].full_name,
            party_pb2.DESCRIPTOR.services_by_name["PartyService"].full_name,
            market_pb2.DESCRIPTOR.services_by_name["MarketService"].full_name,
            grants_pb2.DESCRIPTOR.services_by_name["GrantService"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    if creds is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, server_credentials(creds))
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}: address in use or not local")
    host = settings.listen.rsplit(":", 1)[0]
    address = f"{host}:{port}"

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass

    if replicas is not None:
        orch.join(replicas)
        replicas.start(loop)
    await server.start()
    await orch.recover()
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    ticker = asyncio.create_task(orch.run_deadlines(stop))
    watchdog = asyncio.create_task(_watch_store(store, stop)) if isinstance(store, PostgresStore) else None
    follower = asyncio.create_task(_follow_revocations(trust, orch, stop, settings.crl_poll_s)) if trust else None
    anchoring = None
    if settings.anchor_url and store.ledger is not None:
        anchor = Anchor(settings.anchor_url, store, settings.data_dir / "anchors")
        anchoring = asyncio.create_task(anchor.run(stop, settings.anchor_every_s))
    http_runner = None
    http_address = ""
    if settings.http:
        app = create_app(orch, dispatcher, metrics, results_dir=settings.results_dir, token=settings.http_token,
                         allowed_hosts=settings.http_hosts)
        assert settings.identity is not None or not http_tls
        ssl_context = server_ssl_context(settings.identity / "cert.pem", settings.identity / "key.pem") \
            if http_tls and settings.identity is not None else None
        http_runner, http_address = await start_http(app, settings.http, ssl_context)
        scheme = "https" if ssl_context else "http"
        print(f"wharf dashboard on {scheme}://{http_address}/  (metrics at /metrics)", flush=True)
    ready = settings.data_dir / READY_FILE
    ready.write_text(json.dumps({"address": address, "http": http_address, "pid": os.getpid()}))
    log.info("gateway listening on %s (data in %s, store %s%s)", address, settings.data_dir, store.path,
             f", replica {replicas.name}" if replicas else "")
    mode = f"mutual TLS as {creds.identity}" if creds else "INSECURE plaintext"
    print(f"wharf gateway listening on {address} ({mode})", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: draining for up to %.0f s", settings.grace_s)
        for name in ("", *SERVICES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        ready.unlink(missing_ok=True)
        if http_runner is not None:
            await http_runner.cleanup()
        await server.stop(settings.grace_s)
        ticker.cancel()
        if replicas is not None:
            replicas.stop()
            if store.available:
                store.renew_leases(replicas.name, 0.0)  # the others take this replica's jobs at once
        if watchdog:
            watchdog.cancel()
        if follower:
            follower.cancel()
        if anchoring:
            anchoring.cancel()
        store.close()
        if tap:
            tap.close()
