"""The buyer's connection to a gateway: calls, streams, the catalog, job status.

``buyers.client.Client`` builds on it; the PSI rounds (``buyers.psi``) take
one. Every failed call becomes a ``datawharf.errors.WharfError``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import grpc

from datawharf.chunking import Assembler, ChunkError, Piece
from datawharf.errors import DeadlineExceeded, NotFound, WharfError, from_rpc_error
from datawharf.grpc_options import client_options
from datawharf.identity import caller_metadata
from datawharf.model import ColumnSpec, JobView
from datawharf.serde import column_from_proto, job_from_proto
from datawharf.states import ANSWERED_TASK_STATES
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc

MAX_RESULT_BYTES = 64 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class CatalogItem:
    dataset: str
    holders: tuple[str, ...]
    holders_online: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    approx_rows: int

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
    """A channel to the gateway under the buyer's name.

    Args:
        gateway: ``host:port`` of the gateway's gRPC listener.
        caller: the buyer's name, as holders' policies grant it.
        rpc_timeout_s: the deadline of each unary call.
    """

    def __init__(self, gateway: str, *, caller: str, rpc_timeout_s: float = 30.0) -> None:
        self.caller = caller
        self.rpc_timeout_s = rpc_timeout_s
        self.metadata = caller_metadata(caller)
        self._channel = grpc.insecure_channel(gateway, options=client_options())
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

    # ------------------------------------------------------------------ catalog
    def catalog(self) -> list[CatalogItem]:
        """Every dataset holders list: names, holders (and which are online), columns, rounded row counts."""
        resp = self.call(self.stub.ListCatalog, buyer_pb2.ListCatalogRequest())
        return [
            CatalogItem(e.dataset, tuple(e.holders), tuple(e.holders_online),
                        tuple(column_from_proto(c) for c in e.columns), e.approx_rows)
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
    def status(self, job: "str | Any") -> JobView:
        """The job now. ``job`` is a job id or a submitted job. NotFound for another buyer's job."""
        job_id = job if isinstance(job, str) else job.job_id
        return job_from_proto(self.call(self.stub.GetJob, buyer_pb2.GetJobRequest(job_id=job_id)))

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
                if exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
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

    def fetch_result(self, job_id: str) -> buyer_pb2.JobResult:
        """The encrypted result as sent by the gateway (FailedPrecondition until DONE)."""
        assembler = Assembler(MAX_RESULT_BYTES)
        payload = None
        try:
            for chunk in self.stub.FetchResult(buyer_pb2.GetJobRequest(job_id=job_id), metadata=self.metadata,
                                               timeout=self.rpc_timeout_s):
                payload = assembler.add(Piece(chunk.seq, chunk.data, chunk.last))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        except ChunkError as exc:
            raise WharfError(f"result stream was malformed: {exc}") from None
        if payload is None:
            raise WharfError("result stream ended before its last chunk; fetch it again")
        return buyer_pb2.JobResult.FromString(payload)


__all__ = ["CatalogItem", "Connection", "answered"]
