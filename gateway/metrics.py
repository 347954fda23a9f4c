"""Prometheus metrics for the gateway, in a registry of its own.

    wharf_jobs{type,state}                      jobs in the store now (read at scrape time)
    wharf_jobs_submitted_total{type,backend}
    wharf_jobs_finished_total{type,backend,state}
    wharf_job_duration_seconds{type,backend}    submission to final state
    wharf_grpc_bytes_received_total{method}     serialized message bytes, per RPC method
    wharf_grpc_bytes_sent_total{method}
    wharf_parties_connected
    wharf_contribution_latency_seconds          task dispatched → contribution received
    wharf_refusals_total{reason}                the holder's policy rule that refused
    wharf_invalid_contributions_total
    wharf_auth_refusals_total{reason}           calls refused for their certificate: no_certificate, expired,
                                                revoked, foreign_ca, wrong_role, bad_certificate, bad_signature
                                                (a handshake without a certificate of this CA never reaches here)
    process_*, python_info                      the gateway process: CPU, memory, open files, start time
"""

from __future__ import annotations

from typing import Any, Iterator

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

from gateway.interceptors import MessageInterceptor
from gateway.jobs.observer import JobObserver
from gateway.store import SqliteStore

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


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

    def auth_refused(self, reason: str) -> None:
        self.auth.labels(reason).inc()

    # JobObserver ---------------------------------------------------------------
    def job_submitted(self, kind: str, backend: str) -> None:
        self.submitted.labels(kind, backend).inc()

    def job_finished(self, kind: str, backend: str, state: str, seconds: float) -> None:
        self.finished.labels(kind, backend, state).inc()
        self.duration.labels(kind, backend).observe(max(0.0, seconds))

    def contribution(self, party: str, latency_s: float) -> None:
        self.latency.observe(latency_s)

    def refusal(self, code: str) -> None:
        self.refusals.labels(code).inc()

    def invalid_contribution(self) -> None:
        self.invalid.inc()

    def parties_online(self, count: int) -> None:
        self.parties.set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ByteCounter(MessageInterceptor):
    """Counts serialized message bytes in and out per method."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(self._count)
        self.metrics = metrics

    def _count(self, method: str, caller: str, direction: str, message: Any) -> None:
        counter = self.metrics.bytes_in if direction == "in" else self.metrics.bytes_out
        counter.labels(method.rsplit("/", 1)[-1]).inc(message.ByteSize())
