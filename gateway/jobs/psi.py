"""PSI jobs at the gateway: relaying blinded sets and doing the final match.

    submit ─► AWAITING_BUYER(A) ─► DISPATCHED ─► COLLECTING ─► AWAITING_BUYER(Z|Q) ─► AGGREGATING ─► DONE
                                   (A relayed)   (holder's stages)                       (match)

Which stage is written and read by whom is the table in
``protocols.psi_stages``; the buyer may download only the stages that table
gives it (and R, the holder's signed receipt, once the holder has answered).
Sets live in the spool, never whole in a message.

Nothing a job needs lives only in this process: where a job stands is its
row (state, tasks) and its spool (which stages are whole, and each holder's
``answer.json``: its minimum intersection and OPRF table epoch), so any
replica on a shared spool serves its uploads and downloads, the holder's
answer may land at one replica and the match run at the job's owner, and a
restarted gateway resumes the job (``recover``): stages half-received at the
crash start again from chunk 0, a holder's unanswered task is resent when it
reconnects, a stage that was whole moves the job on. OPRF tables are kept
on disk beside the spool's folder, one epoch per holder, dataset and key column.

Output controls the gateway applies for the holder: every point and tag set
must be duplicate-free (a buyer's repeat refuses its upload with
INVALID_ARGUMENT naming the stage; a holder's fails the job); the holder's
notes (stage N) give the noise it adds to the size, the padding rows to
count and the canaries Z must pass; the match works on packed sets in
numpy and an OPRF table is kept as one sorted array (16 bytes a tag).

A multi-holder job (``protocols.psi_multi``: k holders, IDs at t of them)
has one task per holder and goes through the same states: stage A is
relayed to every holder; each holder's stages are spooled apart (the job's
id with the holder's index); once all k have answered the job waits for
the buyer, which reads and writes its per-holder stages as ``W@holder``,
``Z@holder`` and so on; the match runs when all k Z's are in. A holder
that refuses or fails ends the job, naming it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import AsyncIterator, Callable, Iterable, Iterator

from datawharf.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from datawharf.messages import HolderUpload, SetForHolder, StagePiece
from datawharf.model import PsiJob
from datawharf.serde import psi_from_proto, psi_to_proto
from datawharf.states import OPEN_TASK_STATES, JobState, TaskState
from datawharf.v1 import buyer_pb2, common_pb2
from datawharf import buckets as psi_buckets
from gateway.jobs.book import JobBook
from gateway.spool import Spool, SpoolError, SpoolFull
from gateway.store import JobRow, TaskRow
from protocols import oprf, psi, psi_multi, psi_sum
from protocols.psi_stages import (
    BUYER_READS,
    DISTINCT,
    HOLDER_STAGES,
    OPTIONAL_STAGES,
    SECOND_ROUND,
    STAGES,
    GatewayNotes,
    PsiMode,
    Role,
    Stage,
    canonical_u,
    item_bytes,
    max_items,
    pack_sums,
    parse_stage,
)

log = logging.getLogger("datawharf.gateway")

KINDS = ("psi", "psi-sum", "psi-unbalanced")
# Chunks of the buyer's set queued for a holder's stream at most (about 1 MiB each) before waiting.
MAX_QUEUED_CHUNKS = 8
DEFAULT_TIMEOUT_S = 600
_TableKey = tuple[str, str, str, str]  # holder, dataset, key column, epoch
ANSWER_FILE = "answer.json"  # in a holder's spool folder: what its done message said that the match needs
# Beside the spool's folder (shared by replicas as the spool is; outside the spool's quota for job stages):
# holders' OPRF tables, one epoch each per holder, dataset and key column.
TABLES_DIR = "oprf-tables"


class PsiJobs:
    """The PSI kinds: the buyer's uploads and downloads, the holder's answer, the match."""

    def __init__(self, book: JobBook, spool: Spool) -> None:
        self.book = book
        self.spool = spool
        # A job's state is read from its row and spool every time (see the module's docstring); what is
        # kept here cannot go stale: tables read from disk (an epoch's table never changes) and the
        # matches running in this process now.
        self._tables: dict[_TableKey, oprf.SortedTags] = {}
        self._matching: set[str] = set()
        self._feeds: dict[str, object] = {}  # task → the feed of A now sending it (a newer one replaces it)
        self._feeding: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def decode(self, spec: bytes) -> PsiJob:
        return psi_from_proto(common_pb2.PsiSpec.FromString(spec))

    def holder_digests(self, job: JobRow, party: str = "") -> dict[str, bytes]:
        """SHA-256 of each stage ``party`` answered ``job`` with, as spooled: what its receipt must list."""
        spec = self._spec(job)
        slot = self._slot(job.job_id, spec, party)
        stages = HOLDER_STAGES[spec.mode]
        return {str(s): self.spool.digest(slot, s) for s in stages if self.spool.has(slot, s)}

    @staticmethod
    def _slot(job_id: str, spec: PsiJob, party: str) -> str:
        """Where ``party``'s stages (and the buyer's for it) are spooled: the job's own folder, or in a
        multi-holder job one per holder."""
        if not spec.multi:
            return job_id
        if party not in spec.holders:
            raise NotFound(f"{party!r} is not one of this job's holders ({', '.join(spec.holders)})",
                           argument="stage")
        return f"{job_id}.{spec.holders.index(party)}"

    def _slots(self, job_id: str, spec: PsiJob) -> list[tuple[str, str]]:
        """(holder, slot) for every holder of a multi-holder job."""
        return [(h, self._slot(job_id, spec, h)) for h in spec.holders]

    def _spec(self, job: JobRow) -> PsiJob:
        spec = self.book.spec(job)
        assert isinstance(spec, PsiJob)
        return spec

    # ------------------------------------------------------------------ buyer
    async def submit(self, buyer: str, request_id: str, spec: PsiJob, *, parties: list[str], timeout_s: int,
                     signed: bytes = b"") -> JobRow:
        book = self.book
        spec_bytes = psi_to_proto(spec).SerializeToString(deterministic=True)
        existing = book.existing(buyer, request_id, spec_bytes, timeout_s)
        if existing is not None:
            return existing
        if spec.multi:
            return self._submit_multi(buyer, request_id, spec, parties=parties, timeout_s=timeout_s, signed=signed,
                                      spec_bytes=spec_bytes)
        party = self._target(spec, parties)
        job = book.open_job(
            buyer=buyer, request_id=request_id, kind=spec.kind,
            backend="ed25519-oprf" if spec.mode is PsiMode.UNBALANCED else "x25519",
            spec=spec, spec_bytes=spec_bytes, state=JobState.AWAITING_BUYER, min_parties=1,
            timeout_s=timeout_s or DEFAULT_TIMEOUT_S, parties=[party], detail=f"{spec.kind} against {party}",
            signed=signed)
        return job

    def _submit_multi(self, buyer: str, request_id: str, spec: PsiJob, *, parties: list[str], timeout_s: int,
                      signed: bytes, spec_bytes: bytes) -> JobRow:
        if parties and sorted(parties) != sorted(spec.holders):
            raise InvalidArgument(f"the job's parties ({', '.join(parties)}) are not its PSI holders "
                                  f"({', '.join(spec.holders)})", argument="party")
        for holder in spec.holders:  # each is checked as a one-holder job's party would be
            self._target(spec, [holder])
        k, t = len(spec.holders), spec.threshold
        job = self.book.open_job(
            buyer=buyer, request_id=request_id, kind=spec.kind, backend="x25519", spec=spec, spec_bytes=spec_bytes,
            state=JobState.AWAITING_BUYER, min_parties=1, timeout_s=timeout_s or DEFAULT_TIMEOUT_S,
            parties=list(spec.holders), detail=f"{spec.kind} against {k} holders, at least {t} of {k}: "
                                              f"{', '.join(spec.holders)}", signed=signed)
        return job

    def _target(self, spec: PsiJob, parties: list[str]) -> str:
        entry = self.book.catalog().get(spec.dataset)
        if entry is None:
            raise NotFound(f"dataset {spec.dataset!r} is not listed by any holder; the catalog shows what is",
                           argument="dataset")
        if len(parties) > 1:
            raise InvalidArgument("a PSI job runs against one holder; name one party, or several as the holders "
                                  "of a multi-holder job", argument="party")
        if parties:
            party = parties[0]
            if party not in entry.holders:
                raise NotFound(f"{party!r} does not hold dataset {spec.dataset!r}; its holders are "
                               f"{', '.join(entry.holders)}", argument="party")
        elif len(entry.holders) == 1:
            party = entry.holders[0]
        else:
            raise InvalidArgument(f"dataset {spec.dataset!r} has several holders ({', '.join(entry.holders)}); "
                                  "name one as party", argument="party")
        listing = entry.listings[party]
        key = listing.column(spec.key_column)
        if key is None or not key.join_key:
            keys = [c.name for c in listing.columns if c.join_key] or ["none"]
            raise NotFound(f"{spec.key_column!r} is not a join key of {spec.dataset!r} at {party} "
                           f"(join keys: {', '.join(keys)})", argument="key_column")
        for name in spec.value_columns:
            col = listing.column(name)
            if col is None or not col.psi_value:
                vals = [c.name for c in listing.columns if c.psi_value] or ["none"]
                raise NotFound(f"{name!r} is not a value column of {spec.dataset!r} at {party} "
                               f"(value columns: {', '.join(vals)})", argument="value_columns")
        return party

    def next_stage(self, job_id: str) -> str:
        job = self.book.store.job(job_id)
        stage = self._expected(job, self._spec(job)) if job is not None else None
        return str(stage) if stage is not None else ""

    def _expected(self, job: JobRow, spec: PsiJob) -> Stage | None:
        """The stage the buyer uploads next, read from the job's row and spool (every replica, and a
        restarted gateway, reads the same): A until it is whole; nothing while the holders answer; then
        the second round's stage once every holder has (in a multi-holder job, Z for each holder)."""
        if job.state != JobState.AWAITING_BUYER:
            return None
        if not self.spool.has(job.job_id, Stage.A):
            return Stage.A
        if all(t.state == TaskState.CONTRIBUTED for t in self.book.store.tasks(job.job_id)):
            return SECOND_ROUND[spec.mode]
        return None

    def _limit(self, slot: str, spec: PsiJob, stage: Stage) -> int:
        return max_items(stage, buyer_set_size=spec.buyer_set_size, value_columns=len(spec.value_columns),
                         holder_rows=self._items(slot, Stage.W))

    async def upload(self, buyer: str, job_id: str, pieces: AsyncIterator[StagePiece]) -> None:
        """The buyer's set for the stage the job waits for, streamed into the spool."""
        book = self.book
        job = book.owned(job_id, buyer)
        if job.state != JobState.AWAITING_BUYER:
            raise FailedPrecondition(f"job {job_id} is {job.state}; it is not waiting for an upload")
        spec = self._spec(job)
        stage = self._expected(job, spec)
        if stage is None:
            raise FailedPrecondition(f"job {job_id} is not waiting for an upload")
        slot, party, expected = job_id, "", self._limit(job_id, spec, stage)
        done = False
        chunks = 0
        first = True
        async for piece in pieces:
            named, holder = parse_stage(piece.stage)
            per_holder = spec.multi and stage is Stage.Z  # the buyer's Z for each holder, named
            if named != stage or bool(holder) != per_holder or (not first and holder != party):
                want = f"{stage}@<holder>" if per_holder else str(stage)
                raise InvalidArgument(f"job {job_id} expects stage {want}, got {piece.stage!r}")
            if first and holder:
                slot, party = self._slot(job_id, spec, holder), holder
                expected = self._limit(slot, spec, stage)
            if first and self.spool.has(slot, stage):
                # A retry whose first attempt got through (its answer lost with a connection): it stands.
                raise AlreadyExists(f"stage {piece.stage} of job {job_id} was already received")
            if first:
                self.spool.reset(slot, stage)  # a new upload starts the stage afresh: an earlier one broke off
            first = False
            try:
                done = self.spool.append(slot, stage, piece.seq, piece.data, piece.last,
                                         item=item_bytes(stage), max_items=expected)
            except SpoolError as exc:
                book.fail(job, f"the buyer's upload was malformed: {exc}")
                raise InvalidArgument(str(exc)) from None
            except SpoolFull:
                if slot != job_id:
                    self.spool.reset(slot, stage)  # the caller resets the job's own folder only
                raise
            if done:
                chunks = piece.seq + 1
                break
        if not done:
            self.spool.reset(slot, stage)  # a retry starts again from chunk 0
            raise InvalidArgument(f"the upload of stage {stage} ended before its last chunk; upload it again")
        got = self._items(slot, stage)
        self._stage_received(job_id, stage, chunks, buyer, slot=slot, holder=party)
        if got != expected:
            book.fail(job, f"stage {stage} holds {got} items; {expected} were expected")
            raise InvalidArgument(f"stage {stage} holds {got} items; {expected} were expected")
        repeat = await asyncio.to_thread(self._repeat, slot, spec, stage)
        if repeat:
            book.fail(job, repeat)
            raise InvalidArgument(repeat, argument="ids")
        if spec.multi and stage is Stage.Z:
            if not all(self.spool.has(s, Stage.Z) for _, s in self._slots(job_id, spec)):
                book.notify(job_id)
                return  # the buyer's stages for the other holders are still to come
        if stage is Stage.A:
            self._relay(job_id, spec)
        else:
            await self._to_match(job_id)
        book.notify(job_id)

    def _relay(self, job_id: str, spec: PsiJob) -> None:
        """The buyer's set is whole: the job is DISPATCHED and each holder offered its task (by the replica
        holding its stream)."""
        self.book.store.set_job_state(job_id, JobState.DISPATCHED)
        fresh = self.book.store.job(job_id)
        assert fresh is not None
        tasks = self.book.store.tasks(job_id)
        if not spec.multi:
            (task,) = tasks
        for task in tasks:
            self.dispatch(fresh, task.task_id, task.party)

    async def _to_match(self, job_id: str) -> None:
        """The buyer's last stage is in: the job is AGGREGATING, and its owner matches it, here or there
        (``Orchestrator.evaluate`` routes by owner, and owners re-evaluate their jobs at every tick)."""
        self.book.store.set_job_state(job_id, JobState.AGGREGATING)
        self.book.notify(job_id)
        job = self.book.store.job(job_id)
        if job is not None and job.owner == self.book.owner:
            await self._match_once(job)

    async def _match_once(self, job: JobRow) -> None:
        """Match an AGGREGATING job once: two uploads ending together, or a tick beside an upload, start one
        match between them."""
        if job.job_id in self._matching:
            return
        self._matching.add(job.job_id)
        try:
            fresh = self.book.store.job(job.job_id)
            if fresh is not None and fresh.state == JobState.AGGREGATING:
                await self._finish(fresh, self._spec(fresh))
        finally:
            self._matching.discard(job.job_id)

    def download(self, buyer: str, job_id: str, stage: str) -> Iterable[StagePiece]:
        job = self.book.owned(job_id, buyer)
        named, holder = parse_stage(stage)
        spec = self._spec(job)
        if spec.multi and named in BUYER_READS:
            if not holder:
                raise InvalidArgument(f"job {job_id} has {len(spec.holders)} holders; name the one whose stage "
                                      f"you read, as {named}@<holder>", argument="stage")
            return self._download_multi(job, spec, Stage(named), holder)
        if stage not in BUYER_READS:
            readable = ", ".join(sorted(BUYER_READS))
            raise PermissionDenied(f"stage {stage!r} is not the buyer's to read; buyers read {readable}")
        if stage == Stage.R:
            # The holder's signed receipt, so the buyer checks what it downloads before it
            # re-blinds anything: re-blinding points the gateway chose would answer the gateway's
            # guesses about the buyer's set.
            receipts = [self.book.store.receipt(t.task_id) for t in self.book.store.tasks(job_id)
                        if t.state == TaskState.CONTRIBUTED]
            if not receipts or not receipts[0]:
                raise FailedPrecondition(f"job {job_id} has no holder's receipt yet (it is {job.state})")
            return [StagePiece(stage, 0, receipts[0], True)]
        if not self.spool.has(job_id, stage):
            raise FailedPrecondition(f"job {job_id} has no stage {stage} yet (it is {job.state})")
        # Lazily, chunk by chunk from the file: a set is never whole in the gateway's memory.
        return (StagePiece(stage, seq, data, last)
                for seq, data, last in self.spool.chunks(job_id, stage, item_bytes(stage)))

    def _download_multi(self, job: JobRow, spec: PsiJob, stage: Stage, holder: str) -> Iterable[StagePiece]:
        slot = self._slot(job.job_id, spec, holder)
        name = f"{stage}@{holder}"
        if stage is Stage.R:  # that holder's signed receipt (see download)
            receipt = next((self.book.store.receipt(t.task_id) for t in self.book.store.tasks(job.job_id)
                            if t.party == holder and t.state == TaskState.CONTRIBUTED), b"")
            if not receipt:
                raise FailedPrecondition(f"job {job.job_id} has no receipt from {holder} yet (it is {job.state})")
            return [StagePiece(name, 0, receipt, True)]
        if not self.spool.has(slot, stage):
            raise FailedPrecondition(f"job {job.job_id} has no stage {name} yet (it is {job.state})")
        return (StagePiece(name, seq, data, last)
                for seq, data, last in self.spool.chunks(slot, stage, item_bytes(stage)))

    # ----------------------------------------------------------------- holder
    def dispatch(self, job: JobRow, task_id: str, party: str) -> None:
        if job.state == JobState.AWAITING_BUYER or not self.spool.has(job.job_id, Stage.A):
            return  # the buyer's set is not whole yet, or not yet checked and relayed (``_relay``)
        spec = self._spec(job)
        cached = self._cached_epochs((party, spec.dataset, spec.key_column))
        offer = self.book.offer(job, task_id, min_parties=1, spec=spec, cached_tables=cached)
        if not self.book.dispatcher.send(party, offer):
            return
        slot = self._slot(job.job_id, spec, party)
        for stage in HOLDER_STAGES[spec.mode]:  # a resent task starts the holder's stages afresh
            self.spool.reset(slot, stage)
        (self.spool.root / slot / ANSWER_FILE).unlink(missing_ok=True)
        chunks = self.spool.chunks(job.job_id, Stage.A, item_bytes(Stage.A))
        backlog = getattr(self.book.dispatcher, "backlog", None)
        if backlog is None:  # an in-memory dispatcher keeps nothing queued: send it all now
            for seq, data, last in chunks:
                self.book.dispatcher.send(party, SetForHolder(task_id, StagePiece(Stage.A, seq, data, last)))
        else:
            # A stream's outbox is unbounded: feed A into it a few chunks ahead of the holder, so the
            # gateway holds megabytes of the buyer's set, not all of it, however large the set.
            token = object()
            self._feeds[task_id] = token
            feed = asyncio.get_running_loop().create_task(self._feed(party, task_id, chunks, backlog, token))
            self._feeding.add(feed)
            feed.add_done_callback(self._feeding.discard)
        self.book.mark_dispatched(job, task_id)

    async def _feed(self, party: str, task_id: str, chunks: Iterator[tuple[int, bytes, bool]],
                    backlog: Callable[[str], int], token: object) -> None:
        try:
            for seq, data, last in chunks:
                while backlog(party) > MAX_QUEUED_CHUNKS:
                    await asyncio.sleep(0.005)
                # A newer dispatch of this task (the holder reconnected) feeds its own stream.
                if self._feeds.get(task_id) is not token or not self.book.dispatcher.send(
                        party, SetForHolder(task_id, StagePiece(Stage.A, seq, data, last))):
                    return
        finally:
            if self._feeds.get(task_id) is token:
                del self._feeds[task_id]

    async def holder_upload(self, job: JobRow, party: str, task_id: str, msg: HolderUpload) -> None:
        book = self.book
        spec = self._spec(job)
        slot = self._slot(job.job_id, spec, party)
        try:
            if msg.piece is not None:
                stage = msg.piece.stage
                if stage not in HOLDER_STAGES[spec.mode]:
                    raise SpoolError(f"stage {stage!r} is not part of a {spec.kind} answer")
                st = Stage(stage)
                complete = self.spool.append(slot, st, msg.piece.seq, msg.piece.data, msg.piece.last,
                                             item=item_bytes(st), max_items=self._limit(slot, spec, st))
                book.store.add_task_bytes(task_id, len(msg.piece.data))
                if complete:
                    self._stage_received(job.job_id, st, msg.piece.seq + 1, party, slot=slot)
                if job.state == JobState.DISPATCHED:
                    book.store.set_job_state(job.job_id, JobState.COLLECTING)
                    book.notify(job.job_id)
            if msg.done:
                self._check_answer(job, spec, msg, slot)
        except (SpoolError, psi.PsiError) as exc:
            book.invalid(job, task_id, party, f"invalid PSI answer: {exc}")
            book.fail(job, f"{party} sent an invalid PSI answer: {exc}")
            return
        if msg.done:
            book.store.set_task_state(task_id, TaskState.CONTRIBUTED)
            book.contributed(job, task_id, party)
            if spec.multi and any(t.state != TaskState.CONTRIBUTED for t in book.store.tasks(job.job_id)):
                book.notify(job.job_id)
                return  # the buyer's second round waits for every holder's answer
            book.store.set_job_state(job.job_id, JobState.AWAITING_BUYER)
            book.notify(job.job_id)

    def _check_answer(self, job: JobRow, spec: PsiJob, msg: HolderUpload, slot: str) -> None:
        jid = slot  # the holder's stages: the job's own folder, or this holder's in a multi-holder job
        for stage in HOLDER_STAGES[spec.mode]:
            repeat = self._repeat(jid, spec, stage)
            if repeat:
                raise psi.RepeatedPoint(repeat)
        try:
            noise = self._notes(jid)
        except ValueError as exc:
            raise psi.PsiError(str(exc)) from None
        if noise.canaries and spec.mode is PsiMode.UNBALANCED:
            raise psi.PsiError("stage N hides canaries in W, which an unbalanced answer has not")
        if noise.include and spec.mode is not PsiMode.SUM:
            raise psi.PsiError("stage N counts padding rows, which only a psi-sum answer has")
        if noise.offset and not spec.cardinality_only and spec.mode is not PsiMode.SUM:
            raise psi.PsiError("stage N adds noise to an intersection whose positions are released")
        minimum = max(1, msg.min_intersection)
        if spec.mode is PsiMode.UNBALANCED:
            if self._items(jid, Stage.E) != spec.buyer_set_size:
                raise psi.PsiError("the holder evaluated a different number of points than the buyer sent")
            key = (self.book.store.tasks(job.job_id)[0].party, spec.dataset, spec.key_column, msg.table_epoch)
            if self.spool.has(jid, Stage.T):
                self._keep_table(key, jid)
            elif not self._table_path(key).exists():
                raise psi.PsiError(f"no table for epoch {msg.table_epoch!r} was sent or is cached")
            self._save_answer(jid, minimum, msg.table_epoch)
            return
        for stage in HOLDER_STAGES[spec.mode]:
            if stage not in OPTIONAL_STAGES and not self.spool.has(jid, stage):
                raise psi.PsiError(f"the answer lacks stage {stage}")
        # With canaries the holder re-blinds A less the buyer's commitment, which ends it.
        sent = spec.buyer_set_size - (psi.COMMITMENT_POINTS if noise.canaries else 0)
        if self._items(jid, Stage.D) != sent:
            raise psi.PsiError("the holder re-blinded a different number of points than the buyer sent")
        if any(not 0 <= c.position < self._items(jid, Stage.W) for c in noise.canaries):
            raise psi.PsiError("a canary lies outside the holder's set W")
        if spec.mode is PsiMode.SUM and \
                self._items(jid, Stage.M) != self._items(jid, Stage.W) * len(spec.value_columns):
            raise psi.PsiError("masked values do not match the holder's rows and value columns")
        self._save_answer(jid, minimum, "")

    def _repeat(self, job_id: str, spec: PsiJob, stage: Stage) -> str:
        """Why ``stage`` is refused for repeating an item ("" if it does not).

        A repeated point or tag would count one ID several times against the
        holder's minimum: the membership oracle this closes. Points of stage A
        are compared as canonical u-coordinates under X25519 (two byte strings
        can be one point); other encodings of one point are caught by the
        holder after its blinding."""
        if stage not in DISTINCT or not self.spool.has(job_id, stage):
            return ""
        # In buckets on disk by leading byte (datawharf.buckets): memory is a bucket's, not the set's.
        item = item_bytes(stage)
        transform = canonical_u if stage is Stage.A and spec.mode is not PsiMode.UNBALANCED else None
        with self.spool.scratch() as tmp:
            at = psi_buckets.first_repeat(psi_buckets.read_chunks(self.spool.path(job_id, stage), item), item,
                                          Path(tmp), items=self._items(job_id, stage), transform=transform)
        if at is None:
            return ""
        if STAGES[stage].writer is Role.BUYER:
            return (f"{DISTINCT[stage]} repeats an item at position {at}; every ID may be sent once "
                    "(the client removes repeats itself)")
        return f"{DISTINCT[stage]} repeats an item at position {at}; an honest holder never does"

    def _stage_received(self, job_id: str, stage: Stage, chunks: int, sender: str, *, slot: str = "",
                        holder: str = "") -> None:
        """Sizes outlive the spool, which is emptied when the job ends; the job page reads them here."""
        size = self.spool.size(slot or job_id, stage)
        name = f"{stage}@{holder}" if holder else str(stage)
        self.book.store.record("stage_received", job_id=job_id, party=sender,
                               detail=f"stage={name} items={size // item_bytes(stage)} chunks={chunks} bytes={size}")

    # ------------------------------------------------------------------ match
    def _notes(self, job_id: str) -> GatewayNotes:
        """The holder's notes for the gateway (stage N): noise on the size, rows to count, canaries; none if absent."""
        if not self.spool.has(job_id, Stage.N):
            return GatewayNotes()
        return GatewayNotes.unpack(self.spool.read(job_id, Stage.N))

    def _items(self, job_id: str, stage: Stage) -> int:
        return self.spool.size(job_id, stage) // item_bytes(stage) if self.spool.has(job_id, stage) else 0

    async def _finish(self, job: JobRow, spec: PsiJob) -> None:
        jid = job.job_id
        try:
            if spec.multi:
                result = await asyncio.to_thread(self._match_many, jid, spec)
            else:
                result = await asyncio.to_thread(self._match, jid, spec, self._answer(jid)[0])
        except psi.PsiError as exc:
            self.book.fail(job, str(exc))
            return
        if spec.multi:
            contributors = list(spec.holders)
        else:
            (task,) = self.book.store.tasks(jid)
            contributors = [task.party]
        payload = buyer_pb2.JobResult(job_id=jid, contributors=contributors, psi=result).SerializeToString()
        self.book.finish(job, payload, f"intersection size {result.size}")

    def _match(self, jid: str, spec: PsiJob, minimum: int) -> buyer_pb2.PsiResult:
        if spec.mode is PsiMode.UNBALANCED:
            (task,) = self.book.store.tasks(jid)
            table = self._table((task.party, spec.dataset, spec.key_column, self._answer(jid)[1]))
            if table is None:
                raise psi.PsiError("the holder's table for this epoch is no longer held; submit the job again")
            m = oprf.lookup(table, self.spool.read(jid, Stage.Q), minimum=minimum,
                            cardinality_only=spec.cardinality_only, offset=self._notes(jid).offset)
            return buyer_pb2.PsiResult(size=m.size, positions=m.positions)
        if spec.mode is PsiMode.INTERSECTION:
            return self._match_buckets(jid, spec, minimum)
        # Packed, not as a Python object per point: millions of points stay a few hundred MiB.
        d = self.spool.read(jid, Stage.D)
        z = self.spool.read(jid, Stage.Z)
        masked = psi_sum.PackedMasked(self.spool.read(jid, Stage.M), len(spec.value_columns))
        noise = self._notes(jid)
        r = psi_sum.gateway_sum(d, z, masked, minimum=minimum, offset=noise.offset, counted=noise.include,
                                canaries=noise.canaries)
        return buyer_pb2.PsiResult(size=r.size, positions=r.positions, holder_rows=len(z) // item_bytes(Stage.Z),
                                   masked_sums=pack_sums(r.masked_sums))

    def _match_buckets(self, jid: str, spec: PsiJob, minimum: int) -> buyer_pb2.PsiResult:
        """``protocols.psi.match`` over D and Z on disk: both checked for repeats, Z for the canaries, and
        D's positions found in Z, one bucket of each in memory at a time (``datawharf.buckets``)."""
        notes = self._notes(jid)
        if notes.offset and not spec.cardinality_only:
            raise psi.PsiError("noise on the size of an intersection whose positions are released hides nothing")
        d_path, z_path = self.spool.path(jid, Stage.D), self.spool.path(jid, Stage.Z)
        n = max(self._items(jid, Stage.D), self._items(jid, Stage.Z))
        item = item_bytes(Stage.D)
        with self.spool.scratch() as tmp:
            for stage, path in ((Stage.D, d_path), (Stage.Z, z_path)):
                at = psi_buckets.first_repeat(psi_buckets.read_chunks(path, item), item, Path(tmp), items=n)
                if at is not None:
                    raise psi.RepeatedPoint(f"{DISTINCT[stage]} repeats a value at position {at}; "
                                            "each ID may appear once")
            if notes.canaries:
                got = psi_buckets.items_at(z_path, [c.position for c in notes.canaries], item)
                psi.check_canaries(b"".join(g if len(g) == item else b"\0" * item for g in got), [
                    psi.Canary(i, c.expected if got[i] else b"") for i, c in enumerate(notes.canaries)])
            positions = psi_buckets.positions_in(psi_buckets.read_chunks(d_path, item),
                                                 psi_buckets.read_chunks(z_path, item), item, Path(tmp), items=n)
        size = psi.released_size(int(positions.size), notes.offset, minimum)
        result = buyer_pb2.PsiResult(size=size)
        if not spec.cardinality_only:
            # A slice at a time: protobuf takes a whole array through a Python int per item, all at once.
            for i in range(0, positions.size, 1 << 16):
                result.positions.extend(positions[i:i + (1 << 16)].tolist())
        return result

    def _match_many(self, jid: str, spec: PsiJob) -> buyer_pb2.PsiResult:
        answers = []
        for holder, slot in self._slots(jid, spec):
            notes = self._notes(slot)
            masked = (psi_sum.PackedMasked(self.spool.read(slot, Stage.M), len(spec.value_columns))
                      if spec.mode is PsiMode.SUM else None)
            answers.append(psi_multi.HolderStages(
                holder, self.spool.read(slot, Stage.D), self.spool.read(slot, Stage.Z),
                minimum=self._answer(slot)[0], offset=notes.offset, canaries=notes.canaries, masked=masked,
                counted=notes.include))
        if spec.mode is PsiMode.INTERSECTION:
            m = psi_multi.match_many(answers, at_least=spec.threshold, cardinality_only=spec.cardinality_only)
            return buyer_pb2.PsiResult(size=m.size, positions=m.positions)
        r = psi_multi.sum_many(answers, at_least=spec.threshold)
        return buyer_pb2.PsiResult(size=r.size, holder_sums=[
            buyer_pb2.PsiHolderSums(party=h.party, positions=part.positions, masked_sums=pack_sums(part.masked_sums),
                                    holder_rows=len(psi.packed(h.z)) // item_bytes(Stage.Z))
            for h, part in zip(answers, r.holders)])

    # -------------------------------------------------------------- lifecycle
    async def evaluate(self, job: JobRow, tasks: list[TaskRow], *, at_deadline: bool) -> None:
        # Called at the job's owner only (Orchestrator.evaluate routes by owner): the match runs there.
        if job.state == JobState.AGGREGATING and (not at_deadline or job.job_id in self._matching):
            await self._match_once(job)
            return
        if job.state == JobState.AGGREGATING:  # a match that kept failing (each tick tries again) until now
            self.book.fail(job, "deadline passed before the gateway could match the sets; submit the job again")
            return
        if job.state in (JobState.DISPATCHED, JobState.COLLECTING) and self._answered(job, tasks):
            # Every holder answered, but whoever stored the last answer stopped before the job moved on.
            self.book.store.set_job_state(job.job_id, JobState.AWAITING_BUYER)
            self.book.notify(job.job_id)
            return
        if self._spec(job).multi:
            self._evaluate_multi(job, tasks, at_deadline=at_deadline)
            return
        (task,) = tasks
        if task.state in (TaskState.REFUSED, TaskState.FAILED):
            self.book.fail(job, f"{task.party} {task.state.lower()}: {task.reason}")
        elif at_deadline:
            if task.state in OPEN_TASK_STATES:
                self.book.expire_open([task])
            waiting = "the buyer's upload" if job.state == JobState.AWAITING_BUYER else f"{task.party}'s answer"
            self.book.fail(job, f"deadline passed waiting for {waiting}")

    def _evaluate_multi(self, job: JobRow, tasks: list[TaskRow], *, at_deadline: bool) -> None:
        """Every named holder must answer: a refusal or failure ends the job, naming the holder."""
        ended = [t for t in tasks if t.state in (TaskState.REFUSED, TaskState.FAILED)]
        if ended:
            t = ended[0]
            self.book.fail(job, f"{t.party} {t.state.lower()}: {t.reason} (a multi-holder PSI job needs every "
                                "holder it names)")
        elif at_deadline:
            self.book.expire_open([t for t in tasks if t.state in OPEN_TASK_STATES])
            late = [t.party for t in tasks if t.state in OPEN_TASK_STATES]
            waiting = ("the buyer's upload" if job.state == JobState.AWAITING_BUYER or not late
                       else f"{', '.join(late)}'s answer")
            self.book.fail(job, f"deadline passed waiting for {waiting}")

    async def recover(self, job: JobRow) -> None:
        """Resume ``job`` from its row and spool after a restart, or at the replica that took it over.

        On a lone gateway nothing else writes the job's spool, so stages half-received at the crash are
        forgotten (they start again from chunk 0) and so are the answers of holders whose task is to be
        resent; among replicas a live one may be writing them, and a stage restarts when it is sent again.
        A stage that was whole at the crash moves the job on as its upload would have: checked, then the
        holders are offered their tasks (A) or the job goes to its match (Z, Q). An AGGREGATING job is
        matched by the evaluation that follows recovery."""
        spec = self._spec(job)
        jid = job.job_id
        tasks = self.book.store.tasks(jid)
        if not self.book.owner:
            self._reset_partial(jid, spec, tasks)
        answered = self._answered(job, tasks)
        if job.state == JobState.AWAITING_BUYER and self.spool.has(jid, Stage.A) and not any(
                t.state == TaskState.CONTRIBUTED for t in tasks):
            problem = await self._stage_problem(jid, spec, Stage.A)
            if problem:
                self.book.fail(job, problem)
                return
            self._relay(jid, spec)
            self.book.notify(jid)
        elif job.state == JobState.AWAITING_BUYER and answered:
            second = SECOND_ROUND[spec.mode]
            slots = [s for _, s in self._slots(jid, spec)] if spec.multi else [jid]
            if all(self.spool.has(s, second) for s in slots):
                for slot in slots:
                    problem = await self._stage_problem(slot, spec, second)
                    if problem:
                        self.book.fail(job, problem)
                        return
                await self._to_match(jid)
        elif job.state in (JobState.DISPATCHED, JobState.COLLECTING) and answered:
            self.book.store.set_job_state(jid, JobState.AWAITING_BUYER)
            self.book.notify(jid)
        log.info("PSI job %s resumed (%s)", jid, job.state)

    def _answered(self, job: JobRow, tasks: list[TaskRow]) -> bool:
        """Every holder's task CONTRIBUTED, with its answer record kept."""
        spec = self._spec(job)
        return bool(tasks) and all(
            t.state == TaskState.CONTRIBUTED and (self.spool.root / self._slot(job.job_id, spec, t.party)
                                                  / ANSWER_FILE).exists() for t in tasks)

    def _reset_partial(self, jid: str, spec: PsiJob, tasks: list[TaskRow]) -> None:
        """Forget what a crash left half-written: the buyer's stages not yet whole, and every stage and
        answer record of holders whose task is to be resent."""
        if not self.spool.has(jid, Stage.A):
            self.spool.reset(jid, Stage.A)
        for task in tasks:
            slot = self._slot(jid, spec, task.party)
            if not self.spool.has(slot, SECOND_ROUND[spec.mode]):
                self.spool.reset(slot, SECOND_ROUND[spec.mode])
            if task.state != TaskState.CONTRIBUTED:
                for stage in HOLDER_STAGES[spec.mode]:
                    self.spool.reset(slot, stage)
                (self.spool.root / slot / ANSWER_FILE).unlink(missing_ok=True)

    async def _stage_problem(self, slot: str, spec: PsiJob, stage: Stage) -> str:
        """Why a buyer's whole stage is refused ("" if it is not): the checks its upload makes."""
        got, expected = self._items(slot, stage), self._limit(slot, spec, stage)
        if got != expected:
            return f"stage {stage} holds {got} items; {expected} were expected"
        return await asyncio.to_thread(self._repeat, slot, spec, stage)

    # ----------------------------------------------------------- kept state
    def _save_answer(self, slot: str, minimum: int, epoch: str) -> None:
        """What the holder's last message said that the match needs (its minimum intersection, the OPRF
        table epoch it used), kept beside its stages for whichever replica or restarted gateway matches;
        written whole (a temporary file, then os.replace), so a reader sees the old file or the new."""
        folder = self.spool.root / slot
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{ANSWER_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps({"minimum": minimum, "epoch": epoch}))
        os.replace(tmp, folder / ANSWER_FILE)

    def _answer(self, slot: str) -> tuple[int, str]:
        """(minimum intersection, table epoch) of the holder's answer in ``slot``. PsiError if none is kept:
        the match never runs without the holder's minimum."""
        try:
            kept = json.loads((self.spool.root / slot / ANSWER_FILE).read_text())
            return max(1, int(kept["minimum"])), str(kept["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            raise psi.PsiError("the holder's answer is not on record at the gateway; submit the job again") from None

    def _table_path(self, key: _TableKey) -> Path:
        holder = hashlib.sha256("\0".join(key[:3]).encode()).hexdigest()[:32]
        return self.spool.root.parent / TABLES_DIR / holder / f"{key[3].encode().hex()[:200]}.T"

    def _cached_epochs(self, key: tuple[str, str, str]) -> tuple[str, ...]:
        """Epochs of the holder's tables on disk, which any replica can match against."""
        folder = self._table_path((*key, "")).parent
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return ()
        epochs = []
        for name in names:
            if name.endswith(".T"):
                try:
                    epochs.append(bytes.fromhex(name[:-2]).decode())
                except ValueError:
                    continue
        return tuple(epochs)

    def _keep_table(self, key: _TableKey, slot: str) -> None:
        """Keep the table the holder sent in ``slot`` as its epoch's, dropping its older epochs."""
        path = self._table_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
        try:
            os.link(self.spool.path(slot, Stage.T), tmp)  # the job's own copy goes with the job; this stays
        except OSError:
            with open(tmp, "wb") as f:
                for _, data, _ in self.spool.chunks(slot, Stage.T, item_bytes(Stage.T)):
                    f.write(data)
        os.replace(tmp, path)
        for other in path.parent.iterdir():
            if other != path and other.suffix == ".T":
                other.unlink(missing_ok=True)
        self._tables = {k: v for k, v in self._tables.items() if k[:3] != key[:3]}  # one epoch each

    def _table(self, key: _TableKey) -> oprf.SortedTags | None:
        table = self._tables.get(key)
        if table is None:
            try:
                data = self._table_path(key).read_bytes()
            except FileNotFoundError:
                return None
            self._tables = {k: v for k, v in self._tables.items() if k[:3] != key[:3]}
            table = self._tables[key] = oprf.SortedTags(data)
        return table

    def forget(self, job_id: str) -> None:
        slots = [job_id] + [f"{job_id}.{i}" for i in range(psi_multi.MAX_HOLDERS)]
        for slot in slots:
            self.spool.drop(slot)


__all__ = ["KINDS", "PsiJobs"]
