"""Bookkeeping every job kind shares: rows, ownership, tasks, notices, endings.

A job kind (``aggregate``, ``psi``) decides what to send and when a job is
complete; everything about *recording* that — the store, the buyer's
ownership, which task a holder may answer, the change events that wake
watchers, the observer, the final state — lives here once. Kinds call these
public methods; this module imports no kind.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from typing import Callable, Protocol

from google.protobuf.message import DecodeError

from datawharf.errors import InvalidArgument, NotFound, WharfError
from datawharf.messages import CancelTask, Notice, TaskOffer
from datawharf.pki import TrustStore, digest
from datawharf.signing import MAX_RELAYED_CRL_BYTES, noise_digest, verify_receipt
from datawharf.v1 import buyer_pb2, common_pb2
from datawharf.model import AggregateJob, Listing, PsiJob
from datawharf.serde import listings_from_bytes, listings_to_bytes
from datawharf.states import ACTIVE_JOB_STATES, FINAL_JOB_STATES, OPEN_TASK_STATES, JobState, TaskState
from gateway.catalog import CatalogEntry, merge
from gateway.dispatch import Dispatcher
from gateway.jobs.observer import JobObserver
from gateway.store import JobRow, SqliteStore, TaskRow

log = logging.getLogger("datawharf.gateway")

Spec = AggregateJob | PsiJob
MAX_TIMEOUT_S = 24 * 3600
MAX_REQUEST_ID = 128


class JobKind(Protocol):
    """What each kind of job provides; the orchestrator routes by ``JobRow.kind``."""

    def decode(self, spec: bytes) -> Spec: ...

    def dispatch(self, job: JobRow, task_id: str, party: str) -> None: ...

    async def evaluate(self, job: JobRow, tasks: list[TaskRow], *, at_deadline: bool) -> None: ...

    async def recover(self, job: JobRow) -> None: ...

    def next_stage(self, job_id: str) -> str: ...

    def forget(self, job_id: str) -> None: ...


class JobBook:
    def __init__(self, store: SqliteStore, dispatcher: Dispatcher, *, clock: Callable[[], float],
                 observer: JobObserver, trust: TrustStore | None = None) -> None:
        self.store = store
        self.trust = trust
        self.dispatcher = dispatcher
        self.clock = clock
        self.observer = observer
        self.decoders: dict[str, Callable[[bytes], Spec]] = {}
        self.cleanups: dict[str, Callable[[str], None]] = {}
        self.on_ended: list[Callable[[JobRow], None]] = []  # told of every job that reaches a final state
        # Whether a holder's dataset may be in the catalog (the market's listing review); all by default.
        self.admit: Callable[[str, Listing], bool] = lambda party, listing: True
        self._changed: dict[str, asyncio.Event] = {}
        self._sent_at: dict[str, float] = {}
        self._specs: dict[str, Spec] = {}
        self._body_digests: dict[str, bytes] = {}
        rows = store.parties()
        self._listings: dict[str, list[Listing]] = {row["name"]: listings_from_bytes(row["listings"]) for row in rows}
        self._orgs: dict[str, str] = {row["name"]: row["organisation"] or row["name"] for row in rows}
        self._serials: dict[str, str] = {row["name"]: row["serial"] for row in rows}
        self._not_after: dict[str, float] = {}  # when each connected party's certificate ends
        # Among replicas (gateway.replicas): this one's name, which owns the jobs it opens for lease_s
        # at a time, and who hears of every job's change. One gateway alone leaves these be.
        self.owner = ""
        self.lease_s = 0.0
        self.on_notify: Callable[[str], None] | None = None

    # ---------------------------------------------------------------- catalog
    def datasets_by_party(self) -> dict[str, list[str]]:
        """Dataset names each known party last listed."""
        return {party: [x.name for x in listings] for party, listings in self._listings.items()}

    def registered(self, dataset: str) -> dict[str, Listing]:
        """Each known party's last listing of ``dataset``, whether or not the catalog admits it."""
        return {p: x for p, listings in self._listings.items() for x in listings if x.name == dataset}

    def catalog(self) -> dict[str, CatalogEntry]:
        online = {p for p in self._listings if self.dispatcher.is_online(p)}
        admitted = {p: [x for x in listings if self.admit(p, x)] for p, listings in self._listings.items()}
        return merge(admitted, online)

    def learn_party(self, party: str, listings: list[Listing], *, organisation: str, serial: str) -> None:
        """A party another replica holds the stream of: into the catalog here too."""
        self._listings[party] = listings
        self._orgs[party] = organisation or party
        self._serials[party] = serial

    def list_party(self, party: str, listings: list[Listing], *, organisation: str = "", serial: int = 0,
                   not_after: float = float("inf")) -> None:
        self._listings[party] = listings
        self._not_after[party] = not_after
        self._orgs[party] = organisation or party
        self._serials[party] = f"{serial:x}" if serial else ""
        self.store.upsert_party(party, listings_to_bytes(listings), organisation=organisation or party,
                                serial=self._serials[party])
        self.store.record("party_connected", party=party,
                          detail=f"{len(listings)} dataset(s), organisation={organisation or party}",
                          evidence={"datasets": [x.name for x in listings], "organisation": organisation or party,
                                    "serial": self._serials[party]})
        self.parties_changed()

    def delist_revoked(self, is_revoked: Callable[[int], bool]) -> list[str]:
        """Drop the listings and the stream of every party whose certificate is now revoked; the
        parties newly dropped (a party dropped before, offline and unlisted, is not again)."""
        gone = [p for p, serial in self._serials.items() if serial and is_revoked(int(serial, 16))
                and (self._listings.get(p) or self.dispatcher.is_online(p))]
        for party in gone:
            self._listings[party] = []
            self.store.upsert_party(party, listings_to_bytes([]), organisation=self._orgs.get(party, party),
                                    serial=self._serials[party])
            self.store.record("party_revoked", party=party, detail="certificate revoked; listings removed")
            log.warning("party %s: certificate revoked; its listings leave the catalog", party)
            self.dispatcher.disconnect(party)
        if gone:
            self.parties_changed()
        return gone

    def disconnect_expired(self, now: float) -> list[str]:
        """End the streams of parties whose certificate has expired since they connected (they can
        come back once renewed); the parties disconnected."""
        gone = [p for p, end in self._not_after.items() if end < now and self.dispatcher.is_online(p)]
        for party in gone:
            self.store.record("party_expired", party=party, detail="certificate expired; stream closed")
            log.warning("party %s: certificate expired; closing its stream", party)
            self.dispatcher.disconnect(party)
        return gone

    def organisation(self, party: str) -> str:
        return self._orgs.get(party, party)

    def holder_minimum(self, party: str, dataset: str) -> int:
        """The min_parties a holder's own policy sets for ``dataset`` (1 if it lists none)."""
        listing = next((x for x in self._listings.get(party, []) if x.name == dataset), None)
        return max(1, listing.min_parties) if listing is not None else 1

    def quorum(self, job: JobRow, dataset: str, parties: list[str]) -> tuple[int, int]:
        """(distinct organisations among ``parties``, organisations required): the buyer's
        min_parties, raised to each of those holders' own minimum."""
        need = max([job.min_parties, *(self.holder_minimum(p, dataset) for p in parties)])
        return len({self.organisation(p) for p in parties}), need

    def check_receipt(self, job: JobRow, party: str, receipt: bytes, content: bytes | None) -> str | None:
        """None if ``receipt`` is ``party``'s valid signature for this job (over ``content`` when
        given); else what is wrong. Always None on an --insecure gateway."""
        if self.trust is None or not job.signed:
            return None
        if not receipt:
            return "the contribution carries no signed receipt"
        try:
            r = common_pb2.ContributionReceipt.FromString(receipt)
            holder = verify_receipt(r, self.trust, self.body_digest(job))
        except (WharfError, DecodeError) as exc:
            return f"the receipt does not hold: {getattr(exc, 'message', exc)}"
        if holder.name != party:
            return f"the receipt is signed by {holder.name}, not by the sender {party}"
        if content is not None and r.content_digest != digest(content):
            return "the receipt's digest does not match the contribution it came with"
        return None

    def body_digest(self, job: JobRow) -> bytes:
        """SHA-256 of the buyer's signed body (up to ~1.5 MiB), hashed once per job, not per receipt."""
        d = self._body_digests.get(job.job_id)
        if d is None:
            d = self._body_digests[job.job_id] = digest(common_pb2.SignedJob.FromString(job.signed).body)
        return d

    def offer(self, job: JobRow, task_id: str, *, min_parties: int, spec: "Spec",
              cached_tables: tuple[str, ...] = ()) -> TaskOffer:
        """A task as the holder receives it: the buyer's signed job and the newest CRL ride along."""
        crl = self.trust.crl_pem if self.trust is not None else b""
        if len(crl) > MAX_RELAYED_CRL_BYTES:  # holders then rely on their own copy of the CA's file
            crl = b""
        task = self.store.task(task_id)
        # Among replicas only the one holding the party's stream sends (and records) the offer.
        holds = getattr(self.dispatcher, "holds", self.dispatcher.is_online)
        if task is not None and holds(task.party):
            self.store.record("task_offered", job_id=job.job_id, task_id=task_id, party=task.party)
        head = self.store.ledger.current() if self.store.ledger is not None else None
        return TaskOffer(task_id, job.job_id, job.buyer, min_parties, job.deadline, spec, cached_tables,
                         signed=job.signed, crl=crl, head=head)

    def parties_changed(self) -> None:
        self.observer.parties_online(sum(self.dispatcher.is_online(p) for p in self._listings))

    # ------------------------------------------------------------- submission
    @staticmethod
    def check_request(request_id: str, timeout_s: int) -> None:
        if not request_id or len(request_id) > MAX_REQUEST_ID:
            raise InvalidArgument(
                f"request_id must be 1-{MAX_REQUEST_ID} characters (any unique string you choose)",
                argument="request_id")
        if timeout_s < 0 or timeout_s > MAX_TIMEOUT_S:
            raise InvalidArgument(f"timeout_s must be between 1 and {MAX_TIMEOUT_S} seconds", argument="timeout_s")

    def existing(self, buyer: str, request_id: str, spec_bytes: bytes, timeout_s: int) -> JobRow | None:
        """The job this buyer already submitted under ``request_id`` (submission is idempotent),
        after checking the request's id and timeout."""
        self.check_request(request_id, timeout_s)
        job = self.store.find_job_by_request(buyer, request_id)
        if job is not None and job.spec != spec_bytes:
            raise InvalidArgument(
                f"request_id {request_id!r} was already used for a different job ({job.job_id}); "
                "choose a new request id", argument="request_id")
        return job

    def open_job(self, *, buyer: str, request_id: str, kind: str, backend: str, spec: Spec, spec_bytes: bytes,
                 state: JobState, min_parties: int, timeout_s: float, parties: list[str], detail: str,
                 signed: bytes = b"") -> JobRow:
        now = self.clock()
        job = JobRow(
            job_id=f"job-{uuid.uuid4().hex[:16]}", buyer=buyer, request_id=request_id, kind=kind, backend=backend,
            spec=spec_bytes, state=state, reason="", min_parties=min_parties, created_at=now,
            deadline=now + timeout_s, finished_at=0.0, signed=signed, owner=self.owner,
            lease_until=now + self.lease_s if self.owner else 0.0,
        )
        self.store.insert_job(job, [(f"task-{uuid.uuid4().hex[:16]}", p) for p in parties])
        self.store.record("job_submitted", job_id=job.job_id, detail=f"buyer={buyer} {detail}",
                          evidence=_job_evidence(buyer, kind, signed))
        self._specs[job.job_id] = spec
        self.observer.job_submitted(kind, backend)
        log.info("job %s submitted by %s: %s", job.job_id, buyer, detail)
        return job

    def spec(self, job: JobRow) -> Spec:
        """The job's spec, decoded once and kept while the job is known to this process."""
        spec = self._specs.get(job.job_id)
        if spec is None:
            spec = self.decoders[job.kind](job.spec)
            if job.state not in FINAL_JOB_STATES:  # a finished job's spec is read rarely; keep none
                self._specs[job.job_id] = spec
        return spec

    # -------------------------------------------------------------- ownership
    def owned(self, job_id: str, buyer: str) -> JobRow:
        job = self.store.job(job_id)
        # The same answer for "no such job" and "not yours": job ids are not
        # an oracle for other buyers' activity.
        if job is None or job.buyer != buyer:
            raise NotFound(f"no job {job_id!r} submitted by {buyer!r}")
        return job

    def task_for(self, party: str, task_id: str) -> JobRow | None:
        """The active job of ``party``'s open task ``task_id``; None (and a notice) if it is not one."""
        task = self.store.task(task_id)
        problem = None
        if task is None or task.party != party:
            problem = f"unknown task {task_id!r}"
        elif task.state not in OPEN_TASK_STATES:
            problem = f"task {task_id} is already {task.state}; the answer was ignored"
        job = self.store.job(task.job_id) if task else None
        if problem is None and (job is None or job.state not in ACTIVE_JOB_STATES):
            problem = f"job of task {task_id} is {job.state if job else 'gone'}; the answer was ignored"
        if problem is not None or job is None:
            self.store.record("rejected_message", task_id=task_id, party=party, detail=problem or "")
            log.warning("from %s: %s", party, problem)
            self.dispatcher.send(party, Notice(task_id, problem or ""))
            return None
        return job

    # ------------------------------------------------------------------ tasks
    def mark_dispatched(self, job: JobRow, task_id: str) -> None:
        self._sent_at[task_id] = time.monotonic()
        self.store.set_task_state(task_id, TaskState.DISPATCHED)
        self.store.set_dispatched_at(task_id, self.clock())
        if job.state == JobState.PENDING:
            self.store.set_job_state(job.job_id, JobState.DISPATCHED)
        self.notify(job.job_id)

    def forget_sent(self, task_id: str) -> float | None:
        """Seconds since the task was dispatched (None if unknown), and forget it."""
        sent = self._sent_at.pop(task_id, None)
        return None if sent is None else time.monotonic() - sent

    def answered(self, task_id: str, nbytes: int | None = None) -> None:
        """Keep when the holder answered (and what it sent, when known) past the job's end."""
        self.store.set_answered_at(task_id, self.clock(), nbytes)

    def contributed(self, job: JobRow, task_id: str, party: str, detail: str = "", *,
                    nbytes: int | None = None) -> None:
        self.store.record("contribution", job_id=job.job_id, task_id=task_id, party=party, detail=detail,
                          evidence=self._receipt_evidence(job, self.store.receipt(task_id)))
        self.answered(task_id, nbytes)
        took = self.forget_sent(task_id)
        if took is not None:
            self.observer.contribution(party, took)

    def invalid(self, job: JobRow, task_id: str, party: str, reason: str) -> None:
        """The holder sent something unusable: its task fails, it is told why, the job goes on."""
        self.forget_sent(task_id)
        self.answered(task_id)
        self.store.set_task_state(task_id, TaskState.FAILED, reason)
        self.store.record("invalid_contribution", job_id=job.job_id, task_id=task_id, party=party, detail=reason)
        self.observer.invalid_contribution()
        self.dispatcher.send(party, Notice(task_id, reason))
        log.warning("job %s: %s from %s", job.job_id, reason, party)

    def expire_open(self, tasks: list[TaskRow]) -> None:
        for t in tasks:
            if t.state in OPEN_TASK_STATES:
                self.forget_sent(t.task_id)
                self.store.set_task_state(t.task_id, TaskState.EXPIRED, "no answer before the job's deadline")

    def cancel_open(self, job_id: str, reason: str) -> None:
        for task in self.store.tasks(job_id):
            self.forget_sent(task.task_id)
            if task.state in OPEN_TASK_STATES:
                self.store.set_task_state(task.task_id, TaskState.CANCELLED, reason)
                self.dispatcher.send(task.party, CancelTask(task.task_id, reason))

    # ---------------------------------------------------------------- endings
    def _ended(self, job: JobRow, state: JobState) -> None:
        self.observer.job_finished(job.kind, job.backend, state, self.clock() - job.created_at)
        for hook in self.on_ended:
            hook(job)
        cleanup = self.cleanups.get(job.kind)
        if cleanup is not None:
            cleanup(job.job_id)
        self._specs.pop(job.job_id, None)
        self._body_digests.pop(job.job_id, None)
        self.notify(job.job_id)

    def fail(self, job: JobRow, reason: str) -> None:
        self.cancel_open(job.job_id, "the job failed before this holder answered")
        self.store.set_job_state(job.job_id, JobState.FAILED, reason, finished=True)
        self.store.drop_contributions(job.job_id)
        self.store.record("job_failed", job_id=job.job_id, detail=reason)
        self._destroyed(job)
        log.info("job %s failed: %s", job.job_id, reason)
        self._ended(job, JobState.FAILED)

    def cancel(self, job: JobRow, reason: str) -> None:
        self.cancel_open(job.job_id, "job cancelled by the buyer")
        self.store.set_job_state(job.job_id, JobState.CANCELLED, reason, finished=True)
        self.store.drop_contributions(job.job_id)
        self.store.record("job_cancelled", job_id=job.job_id)
        self._destroyed(job)
        self._ended(job, JobState.CANCELLED)

    def finish(self, job: JobRow, result: bytes, detail: str) -> None:
        """Store the result with the holders' receipts (the store drops per-holder ciphertexts with it)
        and end the job DONE."""
        receipts = self.store.receipts(job.job_id)
        if receipts:
            msg = buyer_pb2.JobResult.FromString(result)
            msg.receipts.extend(common_pb2.ContributionReceipt.FromString(r) for r in receipts)
            result = msg.SerializeToString()
        if not self.store.finish_job(job.job_id, result):
            log.info("job %s had already ended; this result is dropped", job.job_id)
            return
        self.store.record("job_done", job_id=job.job_id, detail=detail,
                          evidence={"result_digest": hashlib.sha256(result).hexdigest()})
        self._destroyed(job)
        log.info("job %s done: %s", job.job_id, detail)
        self._ended(job, JobState.DONE)

    def destroyed_result(self, job: JobRow, why: str) -> dict[str, object]:
        """Record a result's destruction; the receipt the buyer gets (and the ledger keeps)."""
        method = "row overwritten (secure_delete), WAL checkpointed and truncated"
        at = self.clock()
        self.store.record("destroyed", job_id=job.job_id, detail=f"result, {why}",
                          evidence={"artefact": "result", "method": method, "destroyed_at": at})
        seq, digest_hex = (self.store.ledger.current()[:2] if self.store.ledger is not None else (0, ""))
        log.info("job %s: result destroyed (%s)", job.job_id, why)
        return {"job_id": job.job_id, "artefact": "result", "method": method, "destroyed_at": at,
                "ledger_seq": seq, "ledger_hash": digest_hex}

    def _receipt_evidence(self, job: JobRow, receipt: bytes) -> dict[str, object]:
        """A holder's receipt as the ledger keeps it: enough to check its signature, nothing it sent."""
        if not receipt or not job.signed:
            return {}
        r = common_pb2.ContributionReceipt.FromString(receipt)
        out: dict[str, object] = {"body_digest": self.body_digest(job).hex(), "content_digest": r.content_digest.hex(),
                                  "receipt_signature": r.signature.hex(), "holder_certificate": r.certificate.decode()}
        if r.HasField("noise"):
            # What the use cost the buyer's privacy budget, as the holder signed it.
            out.update(noise_digest=noise_digest(r.noise).hex(), rho=r.noise.rho, exact=r.noise.exact)
        return out

    def _destroyed(self, job: JobRow) -> None:
        # A destruction receipt: what was destroyed for which job, and how.
        self.store.record("destroyed", job_id=job.job_id, detail="per-holder contributions",
                          evidence={"artefact": "contributions",
                                    "method": "rows overwritten (secure_delete), WAL checkpointed and truncated"})

    # ---------------------------------------------------------------- changes
    def notify(self, job_id: str) -> None:
        self.wake(job_id)
        if self.on_notify is not None:
            self.on_notify(job_id)

    def wake(self, job_id: str) -> None:
        """Wake this process's watchers of ``job_id`` (a change seen here or told by another replica)."""
        event = self._changed.pop(job_id, None)
        if event is not None:
            event.set()

    def changed(self, job_id: str) -> asyncio.Event:
        """An event set at the job's next change (one per change)."""
        return self._changed.setdefault(job_id, asyncio.Event())


def _job_evidence(buyer: str, kind: str, signed: bytes) -> dict[str, object]:
    """What the ledger keeps of a submission: the buyer's signature over its job's digest, never the job."""
    if not signed:
        return {"buyer": buyer, "kind": kind}
    s = common_pb2.SignedJob.FromString(signed)
    return {"buyer": buyer, "kind": kind, "body_digest": digest(s.body).hex(), "buyer_signature": s.signature.hex(),
            "buyer_certificate": s.certificate.decode()}


__all__ = ["JobBook", "JobKind", "MAX_TIMEOUT_S", "Spec"]
