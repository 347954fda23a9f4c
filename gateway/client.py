"""The buyer's Python client.

    from gateway.client import Client

    with Client("127.0.0.1:50051", caller="acme-insurance") as wharf:
        job = wharf.submit("visits", "cost", "mean", where="age >= 65")
        for status in wharf.watch(job):
            print(status.state, status.answered, "/", len(status.tasks))
        answer = wharf.result(job)
        print(answer.value, answer.rows, answer.contributors)

The Paillier key pair is made in ``submit`` and kept in the returned
``SubmittedJob``; only the public key is sent. Decryption happens in
``result``, in this process.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Sequence

import grpc

from datawharf import filters
from datawharf.chunking import Assembler, ChunkError, Piece
from datawharf.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    WharfError,
    from_rpc_error,
)
from datawharf.grpc_options import client_options
from datawharf.identity import caller_metadata
from datawharf.model import AggregateJob, ColumnKind, ColumnSpec, JobView
from datawharf.serde import aggregate_to_proto, column_from_proto, figures_from_proto, job_from_proto
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc
from protocols import paillier_aggregate as pa

MAX_RESULT_BYTES = 64 << 20


class JobFailed(WharfError):
    """The job ended FAILED or CANCELLED; ``view`` has every holder's state."""

    def __init__(self, view: JobView) -> None:
        super().__init__(f"job {view.job_id} {view.state}: {view.reason or 'no reason given'}")
        self.view = view


@dataclass(frozen=True)
class CatalogItem:
    dataset: str
    holders: tuple[str, ...]
    holders_online: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    approx_rows: int


@dataclass
class SubmittedJob:
    """A job id and the buyer role holding its private key. Keep it to decrypt."""

    job_id: str
    request_id: str
    buyer: pa.Buyer
    view: JobView


@dataclass(frozen=True)
class AggregateAnswer:
    job_id: str
    statistic: str
    exact: Fraction
    rows: int | None
    contributors: tuple[str, ...]
    view: JobView

    @property
    def value(self) -> float:
        return float(self.exact)


def answered(view: JobView) -> int:
    return sum(t.state in ("CONTRIBUTED", "REFUSED", "FAILED", "EXPIRED") for t in view.tasks)


class Client:
    def __init__(self, gateway: str, *, caller: str, rpc_timeout_s: float = 30.0) -> None:
        self._metadata = caller_metadata(caller)
        self.caller = caller
        self.rpc_timeout_s = rpc_timeout_s
        self._channel = grpc.insecure_channel(gateway, options=client_options())
        self._stub = buyer_pb2_grpc.BuyerServiceStub(self._channel)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method, request, timeout: float | None = None):  # type: ignore[no-untyped-def]
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self.rpc_timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    # ------------------------------------------------------------------ catalog
    def catalog(self) -> list[CatalogItem]:
        resp = self._call(self._stub.ListCatalog, buyer_pb2.ListCatalogRequest())
        return [
            CatalogItem(
                e.dataset,
                tuple(e.holders),
                tuple(e.holders_online),
                tuple(column_from_proto(c) for c in e.columns),
                e.approx_rows,
            )
            for e in resp.datasets
        ]

    def _column(self, dataset: str, column: str) -> ColumnSpec:
        items = {c.dataset: c for c in self.catalog()}
        if dataset not in items:
            known = ", ".join(sorted(items)) or "none"
            raise NotFound(f"dataset {dataset!r} is not in the catalog (listed: {known})")
        item = items[dataset]
        spec = next((c for c in item.columns if c.name == column), None)
        if spec is None:
            raise NotFound(
                f"column {column!r} is not in dataset {dataset!r} (columns: {', '.join(c.name for c in item.columns)})"
            )
        return spec

    # --------------------------------------------------------------------- jobs
    def submit(
        self,
        dataset: str,
        column: str,
        statistic: str | pa.Statistic,
        *,
        where: str | None = None,
        parties: Sequence[str] = (),
        min_parties: int = 1,
        timeout_s: int = 120,
        request_id: str | None = None,
        key_bits: int = pa.DEFAULT_KEY_BITS,
    ) -> SubmittedJob:
        try:
            stat = pa.Statistic(statistic)
        except ValueError:
            raise InvalidArgument(
                f"unknown statistic {statistic!r}; use one of {', '.join(s.value for s in pa.Statistic)}"
            ) from None
        try:
            conditions = tuple(filters.parse(where or ""))
        except filters.FilterSyntaxError as exc:
            raise InvalidArgument(f"--where: {exc}") from None
        col = self._column(dataset, column)
        if col.kind is ColumnKind.STRING and stat is not pa.Statistic.COUNT:
            raise InvalidArgument(f"column {column!r} holds text; {stat.value} needs a numeric column")
        buyer = pa.Buyer(stat, col.decimals, key_bits=key_bits)
        job = AggregateJob(dataset, column, stat, conditions, col.decimals, buyer.request.public_n)
        request_id = request_id or uuid.uuid4().hex
        msg = buyer_pb2.SubmitJobRequest(
            request_id=request_id,
            aggregate=aggregate_to_proto(job),
            parties=list(parties),
            min_parties=min_parties,
            timeout_seconds=timeout_s,
        )
        view = job_from_proto(self._call(self._stub.SubmitJob, msg))
        return SubmittedJob(view.job_id, request_id, buyer, view)

    def status(self, job: str | SubmittedJob) -> JobView:
        job_id = job if isinstance(job, str) else job.job_id
        return job_from_proto(self._call(self._stub.GetJob, buyer_pb2.GetJobRequest(job_id=job_id)))

    def cancel(self, job: str | SubmittedJob) -> JobView:
        job_id = job if isinstance(job, str) else job.job_id
        return job_from_proto(self._call(self._stub.CancelJob, buyer_pb2.GetJobRequest(job_id=job_id)))

    def watch(self, job: str | SubmittedJob, *, timeout_s: float = 300.0) -> Iterator[JobView]:
        """Yield the job's state at every change until it is final.

        Reconnects if the stream breaks (a gateway restart); raises
        DeadlineExceeded after ``timeout_s``."""
        job_id = job if isinstance(job, str) else job.job_id
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"job {job_id} not final after {timeout_s:.0f} s")
            try:
                stream = self._stub.WatchJob(
                    buyer_pb2.GetJobRequest(job_id=job_id), metadata=self._metadata, timeout=remaining
                )
                for msg in stream:
                    view = job_from_proto(msg)
                    yield view
                    if view.final:
                        return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                    continue
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise DeadlineExceeded(f"job {job_id} not final after {timeout_s:.0f} s") from None
                raise from_rpc_error(exc) from None

    def wait(self, job: str | SubmittedJob, *, timeout_s: float = 300.0) -> JobView:
        view: JobView | None = None
        for view in self.watch(job, timeout_s=timeout_s):
            pass
        assert view is not None
        return view

    def fetch_result(self, job_id: str) -> buyer_pb2.JobResult:
        """The encrypted result as sent by the gateway (FAILED_PRECONDITION until DONE)."""
        assembler = Assembler(MAX_RESULT_BYTES)
        payload = None
        try:
            for chunk in self._stub.FetchResult(
                buyer_pb2.GetJobRequest(job_id=job_id), metadata=self._metadata, timeout=self.rpc_timeout_s
            ):
                payload = assembler.add(Piece(chunk.seq, chunk.data, chunk.last))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        except ChunkError as exc:
            raise WharfError(f"result stream was malformed: {exc}") from None
        if payload is None:
            raise WharfError("result stream ended before its last chunk; fetch it again")
        return buyer_pb2.JobResult.FromString(payload)

    def result(self, job: SubmittedJob, *, wait: bool = True, timeout_s: float = 300.0) -> AggregateAnswer:
        """Wait for the job, fetch the encrypted totals and decrypt them here."""
        view = self.wait(job, timeout_s=timeout_s) if wait else self.status(job)
        if view.state in ("FAILED", "CANCELLED"):
            raise JobFailed(view)
        if view.state != "DONE":
            raise FailedPrecondition(f"job {job.job_id} is {view.state}; wait for DONE")
        result = self.fetch_result(job.job_id)
        if result.job_id != job.job_id:
            raise WharfError(f"gateway returned the result of {result.job_id!r} for {job.job_id!r}")
        figures = figures_from_proto(result.figures, job.buyer.request.public_n)
        outcome = job.buyer.finish(pa.AggregateResult(figures))
        return AggregateAnswer(
            job.job_id, outcome.statistic.value, outcome.value, outcome.rows, tuple(result.contributors), view
        )
