"""The buyer's connection to a gateway: calls, streams, the catalog, job status.

``buyers.client.Client`` builds on it; the PSI rounds (``buyers.psi``) take
one. Every failed call becomes a ``datawharf.errors.WharfError``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import grpc

from datawharf import signing
from datawharf.chunking import Assembler, ChunkError, Piece
from datawharf.errors import DeadlineExceeded, NotFound, Unavailable, WharfError, from_rpc_error
from datawharf.identity import caller_metadata
from datawharf.pki import Credentials, TrustStore
from datawharf.tls import channel
from datawharf.v1 import common_pb2
from datawharf.model import ColumnSpec, JobView, PrivacyTerms
from datawharf.serde import column_from_proto, job_from_proto, privacy_from_proto
from datawharf.states import ANSWERED_TASK_STATES
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc

MAX_RESULT_BYTES = 64 << 20
T = TypeVar("T")
log = logging.getLogger("datawharf.buyer")
# How a call that broke mid-stream reads when the gateway vanished (killed, restarted): gRPC calls it
# UNAVAILABLE, or, once the stream had started, sometimes UNKNOWN or INTERNAL naming the reset.
_BROKEN_WORDS = ("stream removed", "rst_stream", "connection reset", "socket closed", "goaway", "broken pipe")


def gateway_gone(error: WharfError) -> bool:
    """Whether ``error`` says the gateway went away (a restart, a replica's death) rather than refused."""
    if isinstance(error, Unavailable):
        return True
    code = getattr(error, "code", None)
    return code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) and any(
        w in str(error).lower() for w in _BROKEN_WORDS)


@dataclass(frozen=True)
class CatalogItem:
    dataset: str
    holders: tuple[str, ...]
    holders_online: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    approx_rows: int
    terms: dict[str, PrivacyTerms] = field(default_factory=dict)  # each holder's privacy terms
    # Holders whose sum each holder answers with (more than 1 for a link to another exchange).
    behind: dict[str, int] = field(default_factory=dict)

    def contributors(self, parties: Sequence[str] = ()) -> int:
        """Holders whose figures a job asking ``parties`` (default: every holder) would sum."""
        return sum(self.behind.get(p, 1) for p in (set(parties) or set(self.holders)))

    def column(self, name: str) -> ColumnSpec:
        """The column ``name``; NotFound (naming the columns there are) if the dataset lacks it."""
        spec = next((c for c in self.columns if c.name == name), None)
        if spec is None:
            raise NotFound(f"column {name!r} is not in dataset {self.dataset!r} "
                           f"(columns: {', '.join(c.name for c in self.columns)})", argument="column")
        return spec


def answered(view: JobView) -> int:
    """Holders that have answered one way or another: the progress of a job."""
    return sum(t.state in ANSWERED_TASK_STATES for t in view.tasks)


class Connection:
    """A mutual-TLS channel to the gateway under the buyer's certificate.

    Args:
        gateway: ``host:port`` of the gateway's gRPC listener.
        identity: the buyer's credentials, or the directory `wharf ca issue --role buyer NAME --out DIR`
            wrote (``ca.pem``, ``cert.pem``, ``key.pem``). The buyer's name is its certificate's.
        insecure: plaintext to a gateway started with ``--insecure`` on loopback; then ``caller``
            is the self-asserted name.
        crl: a CA revocation list to check holders' receipts against (optional).
        rpc_timeout_s: the deadline of each unary call.
        reconnect_s: how long a stage transfer or a result download that broke because the gateway went
            away (restarted, or a replica died) is tried again, from its start, before its error is raised.
    """

    def __init__(self, gateway: str, identity: Credentials | Path | str | None = None, *, caller: str = "",
                 insecure: bool = False, crl: Path | None = None, rpc_timeout_s: float = 30.0,
                 reconnect_s: float = 60.0) -> None:
        self.reconnect_s = reconnect_s
        if identity is not None and not isinstance(identity, Credentials):
            identity = Credentials.load(Path(identity))
        self.identity: Credentials | None = identity
        self.rpc_timeout_s = rpc_timeout_s
        if identity is not None:
            self.caller = identity.identity.name
            self.metadata: tuple[tuple[str, str], ...] = ()
            self.trust: TrustStore | None = identity.trust(crl)
        else:
            self.caller = caller
            self.metadata = caller_metadata(caller) if insecure else ()
            self.trust = None
        self._channel = channel(gateway, identity, insecure=insecure)
        self.stub = buyer_pb2_grpc.BuyerServiceStub(self._channel)

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def call(self, method: Callable[..., T], request: Any, timeout: float | None = None) -> T:
        """One call with the buyer's metadata; a failed status raises the matching WharfError."""
        try:
            return method(request, metadata=self.metadata, timeout=timeout or self.rpc_timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def retried(self, attempt: Callable[[], T], what: str) -> T:
        """``attempt()``, made again from its start while the gateway is away (``gateway_gone``), for up to
        ``reconnect_s``; any other error, or the last one, is raised. For calls that may be repeated:
        gRPC itself retries a call only before its first response, not a stream broken half-way."""
        deadline = time.monotonic() + self.reconnect_s
        delay = 0.25
        while True:
            try:
                return attempt()
            except WharfError as exc:
                if not gateway_gone(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("%s: the gateway went away (%s); trying again in %.2f s", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 4.0)

    # ------------------------------------------------------------------ catalog
    def catalog(self) -> list[CatalogItem]:
        """Every dataset holders list: names, holders (and which are online), columns, rounded row counts."""
        resp = self.call(self.stub.ListCatalog, buyer_pb2.ListCatalogRequest())
        return [
            CatalogItem(e.dataset, tuple(e.holders), tuple(e.holders_online),
                        tuple(column_from_proto(c) for c in e.columns), e.approx_rows,
                        {t.holder: privacy_from_proto(t.privacy) for t in e.terms},
                        {t.holder: max(1, t.holders) for t in e.terms})
            for e in resp.datasets
        ]

    def item(self, dataset: str) -> CatalogItem:
        """The catalog entry of ``dataset``; NotFound (naming what is listed) otherwise."""
        items = {c.dataset: c for c in self.catalog()}
        if dataset not in items:
            known = ", ".join(sorted(items)) or "none"
            raise NotFound(f"dataset {dataset!r} is not in the catalog (listed: {known})", argument="dataset")
        return items[dataset]

    # --------------------------------------------------------------------- jobs
    def submit_job(self, request_id: str, *, parties: Sequence[str], min_parties: int, timeout_s: int,
                   aggregate: common_pb2.AggregateSpec | None = None,
                   psi: common_pb2.PsiSpec | None = None, set_digest: bytes = b"") -> tuple[JobView, bytes]:
        """Submit a job, signed with the buyer's key when it has one; (the job, the digest receipts refer to)."""
        request = buyer_pb2.SubmitJobRequest(request_id=request_id, parties=list(parties), min_parties=min_parties,
                                             timeout_seconds=timeout_s)
        body_digest = b""
        if self.identity is not None:
            body = signing.new_body(self.identity, request_id, parties=parties, min_parties=min_parties,
                                    aggregate=aggregate, psi=psi, set_digest=set_digest)
            signed = signing.sign_job(self.identity, body)
            request.signed.CopyFrom(signed)
            body_digest = signing.digest(signed.body)
        elif aggregate is not None:
            request.aggregate.CopyFrom(aggregate)
        elif psi is not None:
            request.psi.CopyFrom(psi)
        # Idempotent by request id: sent again if the gateway went away before answering.
        submitted = self.retried(lambda: self.call(self.stub.SubmitJob, request), f"submitting {request_id}")
        return job_from_proto(submitted), body_digest

    def check_contributors(self, result: buyer_pb2.JobResult, body_digest: bytes, min_parties: int) -> None:
        """Every holder the gateway names as a contributor signed a receipt for this job, and they
        are ``min_parties`` organisations; raises SignatureError otherwise. A no-op when insecure."""
        if self.trust is None or not body_digest:
            return
        signing.check_receipts(result.receipts, self.trust, body_digest, contributors=result.contributors,
                               min_parties=min_parties)

    def status(self, job: "str | Any") -> JobView:
        """The job now. ``job`` is a job id or a submitted job. NotFound for another buyer's job."""
        job_id = job if isinstance(job, str) else job.job_id
        return job_from_proto(self.call(self.stub.GetJob, buyer_pb2.GetJobRequest(job_id=job_id)))

    def purge(self, job: "str | Any") -> buyer_pb2.DestructionReceipt:
        """Destroy a finished job's result at the gateway now; the destruction receipt, as the
        gateway's ledger records it. FailedPrecondition for a running job (cancel it first)."""
        job_id = job if isinstance(job, str) else job.job_id
        return self.call(self.stub.PurgeJob, buyer_pb2.GetJobRequest(job_id=job_id))

    def job_ledger(self, job: "str | Any") -> list[str]:
        """The gateway's signed ledger entries about one of your jobs (its destruction receipts among
        them), checked against the ledger key its genesis names; LedgerError if one does not hold."""
        from datawharf.ledger import check_entries, parse_lines

        job_id = job if isinstance(job, str) else job.job_id
        lines = list(self.call(self.stub.GetJobLedger, buyer_pb2.GetJobRequest(job_id=job_id)).entries)
        entries = list(parse_lines(lines))
        if entries:
            check_entries(entries[0], entries[1:])
        return lines

    def cancel(self, job: "str | Any") -> JobView:
        """Cancel a running job; FailedPrecondition if it has already ended."""
        job_id = job if isinstance(job, str) else job.job_id
        return job_from_proto(self.call(self.stub.CancelJob, buyer_pb2.GetJobRequest(job_id=job_id)))

    def watch(self, job: "str | Any", *, timeout_s: float = 300.0) -> Iterator[JobView]:
        """Yield the job's state at every change until it is final.

        Reconnects if the stream breaks (a gateway restart); raises
        DeadlineExceeded after ``timeout_s``."""
        job_id = job if isinstance(job, str) else job.job_id
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"job {job_id} not final after {timeout_s:.0f} s", argument="timeout_s")
            try:
                stream = self.stub.WatchJob(buyer_pb2.GetJobRequest(job_id=job_id), metadata=self.metadata,
                                            timeout=remaining)
                for msg in stream:
                    view = job_from_proto(msg)
                    yield view
                    if view.final:
                        return
            except grpc.RpcError as exc:
                if gateway_gone(from_rpc_error(exc)) and time.monotonic() < deadline:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                    continue
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise DeadlineExceeded(f"job {job_id} not final after {timeout_s:.0f} s",
                                           argument="timeout_s") from None
                raise from_rpc_error(exc) from None

    def wait(self, job: "str | Any", *, timeout_s: float = 300.0) -> JobView:
        """The job's final state (DONE, FAILED or CANCELLED); DeadlineExceeded after ``timeout_s``."""
        view: JobView | None = None
        for view in self.watch(job, timeout_s=timeout_s):
            pass
        assert view is not None
        return view

    def download(self, chunks: Callable[[], Iterable[Any]], assembler: Assembler, what: str, again: str) -> bytes:
        """A chunked download reassembled under ``assembler``'s caps; ``what`` and ``again`` word the errors."""
        payload = None
        try:
            for chunk in chunks():
                payload = assembler.add(Piece(chunk.seq, chunk.data, chunk.last))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        except ChunkError as exc:
            raise WharfError(f"{what} arrived malformed ({exc}); {again}") from None
        if payload is None:
            raise WharfError(f"{what} ended before its last chunk; {again}")
        return payload

    def fetch_result(self, job_id: str) -> buyer_pb2.JobResult:
        """The encrypted result as sent by the gateway (FailedPrecondition until DONE)."""
        payload = self.retried(lambda: self.download(
            lambda: self.stub.FetchResult(buyer_pb2.GetJobRequest(job_id=job_id), metadata=self.metadata,
                                          timeout=self.rpc_timeout_s),
            Assembler(MAX_RESULT_BYTES), "the result stream", "fetch it again"), f"the result of job {job_id}")
        return buyer_pb2.JobResult.FromString(payload)


__all__ = ["CatalogItem", "Connection", "answered", "gateway_gone"]
