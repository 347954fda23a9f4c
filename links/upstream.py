"""The link's side at exchange A: a buyer that submits B's jobs and checks A's answers.

``Upstream`` is the seam the link's node calls; ``GrpcUpstream`` speaks to
A's gateway through ``buyers.connection.Connection`` under the link's
A-buyer certificate (blocking calls: the node runs them in threads), and
tests put an in-process exchange in its place. Errors are three named
exceptions, each with a reason that names exchange A:

    RemoteError
    ├── RemoteRefused    A's gateway or every one of A's holders said no
    ├── RemoteFailed     A's job failed, or A could not be reached
    └── RemoteCancelled  the job was cancelled (the link asked, B's job having ended)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from buyers.connection import CatalogItem, Connection
from datawharf import signing
from datawharf.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    WharfError,
)
from datawharf.model import AggregateJob, JobView
from datawharf.pki import Credentials
from datawharf.serde import aggregate_to_proto, job_from_proto
from datawharf.states import JobState, TaskState
from datawharf.v1 import buyer_pb2, common_pb2
from links.config import BuyerSide

log = logging.getLogger("datawharf.link")

__all__ = ["GrpcUpstream", "RemoteAnswer", "RemoteCancelled", "RemoteError", "RemoteFailed", "RemoteRefused",
           "Upstream"]


class RemoteError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RemoteRefused(RemoteError):
    """A's gateway refused the job, or every holder asked at A refused its task."""


class RemoteFailed(RemoteError):
    """A's job failed, or A's gateway could not be reached."""


class RemoteCancelled(RemoteError):
    """A's job ended cancelled."""


@dataclass(frozen=True)
class RemoteAnswer:
    """A's result for one job, its contributors' receipts checked against A's CA."""

    job_id: str
    ciphertexts: tuple[bytes, ...]
    contributors: tuple[str, ...]
    suppressed: tuple[int, ...]  # groups any of A's holders suppressed
    receipts: tuple[common_pb2.ContributionReceipt, ...]


class Upstream(Protocol):
    label: str

    def catalog(self) -> list[CatalogItem]: ...

    def run(self, request_id: str, spec: AggregateJob, *, min_parties: int, timeout_s: int, signed_at: float,
            on_job: Callable[[str], None]) -> RemoteAnswer: ...

    def _submit(self, request_id: str, spec: AggregateJob, min_parties: int, timeout_s: int,
                signed_at: float) -> tuple[JobView, bytes]:
        # Connection.submit_job stamps the body with the time of each call; the link's body is fixed
        # by B's task instead (ECDSA signatures differ each time, the body's digest does not).
        creds = self.conn.identity
        assert creds is not None
        body = signing.new_body(creds, request_id, parties=(), min_parties=min_parties,
                                aggregate=aggregate_to_proto(spec))
        body.signed_at = signed_at
        signed = signing.sign_job(creds, body)
        request = buyer_pb2.SubmitJobRequest(request_id=request_id, min_parties=min_parties,
                                             timeout_seconds=timeout_s, signed=signed)
        return job_from_proto(self.conn.call(self.conn.stub.SubmitJob, request)), signing.digest(signed.body)

    def cancel(self, job_id: str) -> None: ...


class GrpcUpstream:
    """Exchange A over gRPC, as the buyer the link's A certificate names."""

    def __init__(self, side: BuyerSide, creds: Credentials) -> None:
        self.label = side.label
        self.gateway = side.gateway
        self.conn = Connection(side.gateway, creds, crl=side.crl)

    def close(self) -> None:
        self.conn.close()

    def _unreachable(self, exc: WharfError) -> RemoteFailed:
        how = "cannot be reached" if isinstance(exc, Unavailable) else "did not answer"
        return RemoteFailed(f"{self.label} ({self.gateway}) {how}: {exc.message}")

    def catalog(self) -> list[CatalogItem]:
        """A's catalog; RemoteFailed when A cannot be asked."""
        try:
            return self.conn.catalog()
        except WharfError as exc:
            raise self._unreachable(exc) from None

    def run(self, request_id: str, spec: AggregateJob, *, min_parties: int, timeout_s: int, signed_at: float,
            on_job: Callable[[str], None]) -> RemoteAnswer:
        """Submit ``spec`` to A (signed by the link, with the B buyer's public parameters unchanged),
        wait for it and return its result with every contributor's receipt checked.

        ``request_id`` makes the submission idempotent: a task B resends after the link reconnects
        finds the same job at A, so A's holders are not asked (or charged) twice. ``signed_at`` (the
        B buyer's) makes the link's signed body the same bytes each time, so the receipts A's holders
        signed for the first submission hold for the resubmission too."""
        label = self.label
        try:
            view, body_digest = self._submit(request_id, spec, min_parties, timeout_s, signed_at)
        except (InvalidArgument, NotFound, PermissionDenied) as exc:
            raise RemoteRefused(f"{label} refused the job: {exc.message}") from None
        except Unavailable as exc:
            raise self._unreachable(exc) from None
        except WharfError as exc:
            raise RemoteFailed(f"{label} did not take the job: {exc.message}") from None
        on_job(view.job_id)
        try:
            view = self.conn.wait(view.job_id, timeout_s=timeout_s + 30)
        except WharfError as exc:
            raise self._unreachable(exc) from None
        if view.state is JobState.CANCELLED:
            raise RemoteCancelled(f"{label}: job {view.job_id} was cancelled")
        if view.state is JobState.FAILED:
            refused = view.tasks and all(t.state is TaskState.REFUSED for t in view.tasks)
            # Counts and the holders' own reasons, never their names: B is not told who holds A's data.
            states: dict[str, int] = {}
            for t in view.tasks:
                states[t.state.lower()] = states.get(t.state.lower(), 0) + 1
            told = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
            why = "; ".join(sorted({t.reason for t in view.tasks if t.reason}))
            reason = f"{label}: job failed ({len(view.tasks)} holders: {told})" + (f": {why}" if why else "")
            raise (RemoteRefused if refused else RemoteFailed)(reason)
        try:
            result = self.conn.fetch_result(view.job_id)
            # The holders at A signed for the job the link signed; A's gateway cannot add or drop one.
            self.conn.check_contributors(result, body_digest, min_parties)
        except WharfError as exc:
            raise RemoteFailed(f"{label}: the result of job {view.job_id} does not hold: {exc.message}") from None
        receipts = tuple(common_pb2.ContributionReceipt.FromString(r) if isinstance(r, bytes) else r
                         for r in result.receipts)
        suppressed = sorted({g for s in result.suppressed for g in s.groups})
        return RemoteAnswer(view.job_id, tuple(result.figures.ciphertexts), tuple(result.contributors),
                            tuple(suppressed), receipts)

    def _submit(self, request_id: str, spec: AggregateJob, min_parties: int, timeout_s: int,
                signed_at: float) -> tuple[JobView, bytes]:
        # Connection.submit_job stamps the body with the time of each call; the link's body is fixed
        # by B's task instead (ECDSA signatures differ each time, the body's digest does not).
        creds = self.conn.identity
        assert creds is not None
        body = signing.new_body(creds, request_id, parties=(), min_parties=min_parties,
                                aggregate=aggregate_to_proto(spec))
        body.signed_at = signed_at
        signed = signing.sign_job(creds, body)
        request = buyer_pb2.SubmitJobRequest(request_id=request_id, min_parties=min_parties,
                                             timeout_seconds=timeout_s, signed=signed)
        return job_from_proto(self.conn.call(self.conn.stub.SubmitJob, request)), signing.digest(signed.body)

    def cancel(self, job_id: str) -> None:
        try:
            self.conn.cancel(job_id)
        except WharfError as exc:  # already final, or A unreachable: nothing more to do
            log.info("cancelling job %s at %s: %s", job_id, self.label, exc.message)
