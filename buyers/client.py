"""The buyer's Python client.

    from buyers.client import Client

    with Client("127.0.0.1:50051", caller="acme-insurance") as wharf:
        job = wharf.submit("visits", "cost", "mean", where="age >= 65")
        for status in wharf.watch(job):
            print(status.state, [(t.party, t.state) for t in status.tasks])
        answer = wharf.result(job)
        print(answer.value, answer.rows, answer.contributors)

        job = wharf.submit("visits", "cost", "sum", group_by="department")
        for group in wharf.result(job).groups:
            print(group.label, group.values, group.suppressed_by)

The key material is made in ``submit`` and kept in the returned
``SubmittedJob``; only public parameters are sent. Decryption happens in
``result``, in this process.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Iterator, Sequence

import grpc

from datawharf import filters
from datawharf.chunking import Assembler, ChunkError, Piece
from datawharf.errors import (
    DeadlineExceeded,
    JobFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    WharfError,
    from_rpc_error,
)
from datawharf.grpc_options import client_options
from datawharf.identity import caller_metadata
from datawharf.model import AggregateJob, ColumnKind, ColumnSpec, GroupBy, JobView
from datawharf.serde import aggregate_to_proto, column_from_proto, job_from_proto, result_from_proto
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc
from buyers.psi import PsiAnswer, PsiClientMixin
from protocols.aggregate import Buyer, choose_backend
from protocols.figures import Layout, Statistic
from protocols.schemes import Backend
from protocols.schemes.paillier import DEFAULT_KEY_BITS

MAX_RESULT_BYTES = 64 << 20
__all__ = ["AggregateAnswer", "CatalogItem", "Client", "GroupAnswer", "JobFailed", "PsiAnswer", "SubmittedJob"]


@dataclass(frozen=True)
class CatalogItem:
    dataset: str
    holders: tuple[str, ...]
    holders_online: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    approx_rows: int


@dataclass
class SubmittedJob:
    """A job id and the buyer role holding its secret key. Keep it to decrypt."""

    job_id: str
    request_id: str
    buyer: Buyer
    spec: AggregateJob
    view: JobView


@dataclass(frozen=True)
class GroupAnswer:
    label: str  # "" when the job is not grouped
    values: tuple[Fraction | float, ...]  # one per vector element; Fractions when exact
    rows: int | None
    suppressed_by: tuple[str, ...]  # holders whose policy withheld this group


@dataclass(frozen=True)
class AggregateAnswer:
    job_id: str
    statistic: str
    backend: str
    exact_backend: bool
    max_abs_error: float  # 0 when exact; else a bound on each value's absolute error
    groups: tuple[GroupAnswer, ...]
    contributors: tuple[str, ...]
    view: JobView

    @property
    def scalar(self) -> bool:
        return len(self.groups) == 1 and len(self.groups[0].values) == 1

    @property
    def exact(self) -> Fraction:
        """The value of an ungrouped scalar job from an exact backend."""
        if not self.scalar or not self.exact_backend:
            raise ValueError("exact applies to an ungrouped scalar result from an exact backend")
        v = self.groups[0].values[0]
        assert isinstance(v, Fraction)
        return v

    @property
    def value(self) -> float:
        if not self.scalar:
            raise ValueError("this result has several values: read .groups")
        return float(self.groups[0].values[0])

    @property
    def rows(self) -> int | None:
        return self.groups[0].rows if len(self.groups) == 1 else None


def answered(view: JobView) -> int:
    return sum(t.state in ("CONTRIBUTED", "REFUSED", "FAILED", "EXPIRED") for t in view.tasks)


class Client(PsiClientMixin):
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

    def _item(self, dataset: str) -> CatalogItem:
        items = {c.dataset: c for c in self.catalog()}
        if dataset not in items:
            known = ", ".join(sorted(items)) or "none"
            raise NotFound(f"dataset {dataset!r} is not in the catalog (listed: {known})")
        return items[dataset]

    @staticmethod
    def _column(item: CatalogItem, column: str) -> ColumnSpec:
        spec = next((c for c in item.columns if c.name == column), None)
        if spec is None:
            raise NotFound(
                f"column {column!r} is not in dataset {item.dataset!r} "
                f"(columns: {', '.join(c.name for c in item.columns)})"
            )
        return spec

    # --------------------------------------------------------------------- jobs
    def submit(
        self,
        dataset: str,
        column: str,
        statistic: str | Statistic,
        *,
        where: str | None = None,
        group_by: str | None = None,
        bins: Sequence[str | float | int] | str | None = None,
        backend: str | Backend = "auto",
        parties: Sequence[str] = (),
        min_parties: int = 1,
        timeout_s: int = 120,
        request_id: str | None = None,
        key_bits: int = DEFAULT_KEY_BITS,
        slot_bits: int | None = None,
    ) -> SubmittedJob:
        try:
            stat = Statistic(statistic)
        except ValueError:
            raise InvalidArgument(
                f"unknown statistic {statistic!r}; use one of {', '.join(s.value for s in Statistic)}"
            ) from None
        try:
            conditions = tuple(filters.parse(where or ""))
        except filters.FilterSyntaxError as exc:
            raise InvalidArgument(f"--where: {exc}") from None
        item = self._item(dataset)
        col = self._column(item, column)
        if col.kind is ColumnKind.STRING and stat is not Statistic.COUNT:
            raise InvalidArgument(f"column {column!r} holds text; {stat.value} needs a numeric column")
        grouping = None
        if group_by:
            gcol = self._column(item, group_by)
            if not gcol.categories:
                raise InvalidArgument(
                    f"column {group_by!r} has no categories declared by every holder, so it cannot be grouped by"
                )
            grouping = GroupBy(group_by, gcol.categories)
        edges = _edges(bins)
        if stat is Statistic.HISTOGRAM and not edges:
            raise InvalidArgument("--stat histogram needs --bins, e.g. --bins 0,18,35,50,65,80,120")
        if edges and stat is not Statistic.HISTOGRAM:
            raise InvalidArgument("--bins applies only to --stat histogram")
        dimension = col.dimension if stat is not Statistic.COUNT else 1
        groups = len(grouping.categories) if grouping else (len(edges) - 1 if edges else 1)
        layout = Layout(stat, dimension, groups)
        try:
            chosen = Backend(backend) if backend != "auto" else choose_backend(
                stat, layout, real_valued=col.kind is not ColumnKind.INT and col.decimals > 0)
        except ValueError:
            raise InvalidArgument(
                f"unknown backend {backend!r}; use auto, {', '.join(b.value for b in Backend)}") from None
        max_contributors = len(set(parties)) or len(item.holders)
        buyer = Buyer(layout, col.decimals, chosen, max_contributors, key_bits=key_bits, slot_bits=slot_bits)
        job = AggregateJob(dataset, column, stat, conditions, col.decimals, buyer.request.params,
                           dimension, grouping, edges)
        request_id = request_id or uuid.uuid4().hex
        msg = buyer_pb2.SubmitJobRequest(
            request_id=request_id,
            aggregate=aggregate_to_proto(job),
            parties=list(parties),
            min_parties=min_parties,
            timeout_seconds=timeout_s,
        )
        view = job_from_proto(self._call(self._stub.SubmitJob, msg))
        return SubmittedJob(view.job_id, request_id, buyer, job, view)

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
        try:
            outcome = job.buyer.finish(result_from_proto(result))
        except ValueError as exc:
            raise WharfError(f"the result does not decrypt: {exc}") from None
        labels = job.spec.group_labels
        groups = tuple(
            GroupAnswer(
                labels[g],
                gv.values,
                gv.rows,
                tuple(p for p, gs in sorted(outcome.suppressed.items()) if g in gs),
            )
            for g, gv in enumerate(outcome.groups)
        )
        return AggregateAnswer(
            job.job_id, job.spec.statistic.value, outcome.backend.value, outcome.exact,
            outcome.max_abs_error, groups, tuple(result.contributors), view,
        )


def _edges(bins: Sequence[str | float | int] | str | None) -> tuple[Decimal, ...]:
    if bins is None or bins == "":
        return ()
    parts = bins.split(",") if isinstance(bins, str) else [str(b) for b in bins]
    try:
        return tuple(Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        raise InvalidArgument(f"--bins must be numbers separated by commas, got {bins!r}") from None
