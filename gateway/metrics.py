"""Prometheus metrics for the gateway, in a registry of its own.

    wharf_jobs{type,state}                      jobs in the store now (read at scrape time)
    wharf_jobs_submitted_total{type,backend}
    wharf_jobs_finished_total{type,backend,state}
    wharf_job_duration_seconds{type,backend}    submission to final state
    wharf_grpc_bytes_received_total{method}     serialized message bytes, per RPC method
    wharf_grpc_bytes_sent_total{method}
    wharf_parties_connected
    wharf_contribution_latency_seconds          task dispatched → contribution received
    wharf_refusals_total{reason}                the holder's policy rule that refused (REFUSAL_REASONS,
                                                else other; unspecified when the holder gave none)
    wharf_invalid_contributions_total
    wharf_quota_refusals_total{reason}          calls refused RESOURCE_EXHAUSTED by a per-caller quota
                                                (gateway/quotas.py; a fixed set of reasons)
    wharf_auth_refusals_total{reason}           calls refused for their certificate: no_certificate, expired,
                                                revoked, foreign_ca, wrong_role, bad_certificate, bad_signature,
                                                no_identity, else other
                                                (a handshake without a certificate of this CA never reaches here)
    grpc_server_started_total{grpc_service,grpc_method,grpc_type}
    grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}
    grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}
                                                calls of the gateway's services, health and reflection, as
                                                go-grpc-prometheus names them; a stream is handled when it ends
    process_*, python_info                      the gateway process: CPU, memory, open files, start time
"""

from __future__ import annotations

from typing import Any, Iterator

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.interceptors import CallInterceptor, MessageInterceptor
from gateway.jobs.observer import JobObserver
from gateway.store import SqliteStore

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
# One histogram serves unary calls that take milliseconds and streams that last minutes
# (WatchJob, FetchResult, UploadSet); a holder's Connect lasts as long as the holder stays
# online and falls in +Inf.
_RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
                900, 3600)

# A label takes only values from a fixed set: a holder chooses its refusal code, and a
# label per distinct string would let any holder grow the gateway's series without end.
# These are the codes the project's holders send (parties/policy.py, runner.py,
# psi_runner.py, verify.py).
REFUSAL_REASONS = frozenset({
    "buyer_not_granted", "statistic_not_allowed", "min_parties", "min_rows", "small_groups",
    "psi_not_allowed", "max_buyer_set",
    "unsigned_job", "unsigned_set", "bad_signature", "replayed_job", "stale_job", "not_asked", "bad_spec",
    "weak_key",
    "column_role", "dp", "dp_budget", "dp_per_job", "max_figures", "grant", "grant_missing", "exact_intersection", "psi_quota", "psi_repeated_point",
})
# datawharf.identity._reason and the servicers' own signature check.
AUTH_REASONS = frozenset({
    "no_certificate", "expired", "revoked", "foreign_ca", "wrong_role", "bad_certificate", "bad_signature",
    "no_identity",
})


def bounded(reason: str, known: frozenset[str]) -> str:
    """``reason`` if it is one of ``known``; ``unspecified`` if empty; else ``other``."""
    if not reason:
        return "unspecified"
    return reason if reason in known else "other"


class _JobsByState(Collector):
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("wharf_jobs", "Jobs in the store by type and state", labels=["type", "state"])
        for row in self.store.job_counts():
            g.add_metric([row["kind"], row["state"]], row["n"])
        yield g


class Metrics(JobObserver):
    def __init__(self, store: SqliteStore) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(_JobsByState(store))
        # The registry is our own, not prometheus_client's global one, so the
        # process and platform collectors it would carry are added here.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.submitted = Counter("wharf_jobs_submitted", "Jobs submitted", ["type", "backend"], registry=r)
        self.finished = Counter("wharf_jobs_finished", "Jobs that reached a final state",
                                ["type", "backend", "state"], registry=r)
        self.duration = Histogram("wharf_job_duration_seconds", "Submission to final state", ["type", "backend"],
                                  buckets=_DURATION_BUCKETS, registry=r)
        self.bytes_in = Counter("wharf_grpc_bytes_received", "Message bytes received", ["method"], registry=r)
        self.bytes_out = Counter("wharf_grpc_bytes_sent", "Message bytes sent", ["method"], registry=r)
        self.parties = Gauge("wharf_parties_connected", "Party nodes with an open stream", registry=r)
        self.latency = Histogram("wharf_contribution_latency_seconds", "Task dispatched to contribution received",
                                 buckets=_DURATION_BUCKETS, registry=r)
        self.refusals = Counter("wharf_refusals", "Tasks refused by holders' policies", ["reason"], registry=r)
        self.invalid = Counter("wharf_invalid_contributions", "Contributions rejected as malformed", registry=r)
        self.auth = Counter("wharf_auth_refusals", "Calls refused for who made them", ["reason"], registry=r)
        call = ["grpc_service", "grpc_method", "grpc_type"]
        self.rpc_started = Counter("grpc_server_started", "RPCs started on the server", call, registry=r)
        self.rpc_handled = Counter("grpc_server_handled", "RPCs completed on the server, whatever their status",
                                   call + ["grpc_code"], registry=r)
        self.rpc_seconds = Histogram("grpc_server_handling_seconds",
                                     "Time from an RPC's start to its end (a stream's last message)", call,
                                     buckets=_RPC_BUCKETS, registry=r)

    def auth_refused(self, reason: str) -> None:
        self.auth.labels(bounded(reason, AUTH_REASONS)).inc()

    # JobObserver ---------------------------------------------------------------
    def job_submitted(self, kind: str, backend: str) -> None:
        self.submitted.labels(kind, backend).inc()

    def job_finished(self, kind: str, backend: str, state: str, seconds: float) -> None:
        self.finished.labels(kind, backend, state).inc()
        self.duration.labels(kind, backend).observe(max(0.0, seconds))

    def contribution(self, party: str, latency_s: float) -> None:
        self.latency.observe(latency_s)

    def refusal(self, code: str) -> None:
        self.refusals.labels(bounded(code, REFUSAL_REASONS)).inc()

    def invalid_contribution(self) -> None:
        self.invalid.inc()

    def parties_online(self, count: int) -> None:
        self.parties.set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def rpc_interceptor(self) -> RpcMetrics:
        """The server interceptor that feeds the grpc_server_* families; put it first, so
        that the time it measures includes the other interceptors'."""
        return RpcMetrics(self)


class ByteCounter(MessageInterceptor):
    """Counts serialized message bytes in and out per method."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(self._count)
        self.metrics = metrics

    def _count(self, method: str, caller: str, direction: str, message: Any) -> None:
        counter = self.metrics.bytes_in if direction == "in" else self.metrics.bytes_out
        counter.labels(method.rsplit("/", 1)[-1]).inc(message.ByteSize())


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


class RpcMetrics(CallInterceptor):
    """Counts calls started and handled, by status code, and times them, per method."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def started(self, method: str, kind: str) -> None:
        self.metrics.rpc_started.labels(*_split(method), kind).inc()

    def ended(self, method: str, kind: str, code: grpc.StatusCode, seconds: float) -> None:
        service, name = _split(method)
        self.metrics.rpc_handled.labels(service, name, kind, code.name).inc()
        self.metrics.rpc_seconds.labels(service, name, kind).observe(seconds)
