"""PSI jobs at the gateway: relaying blinded sets and doing the final match.

    submit ─► AWAITING_BUYER(A) ─► DISPATCHED ─► COLLECTING ─► AWAITING_BUYER(Z|Q) ─► AGGREGATING ─► DONE
                                     (A relayed)   (holder's D, W, M, S | E, T)          (match)

Stages: the buyer uploads A (its blinded IDs) and later Z (re-blinded W) or,
unbalanced, Q (OPRF tags); the holder uploads D and M (for the gateway only),
W and S (for the buyer), or E (for the buyer) and T (its epoch's table, kept
here per holder, dataset, column and epoch). The buyer may download only W,
S and E. Sets live in the spool, never whole in a message. PSI jobs do not
survive a gateway restart: they fail with a reason and are resubmitted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, AsyncIterator

from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from datawharf.model import PsiJob, PsiMode
from datawharf.serde import MAX_PSI_SET, PSI_ITEM_BYTES, psi_to_proto
from datawharf.v1 import buyer_pb2, common_pb2, party_pb2
from gateway.spool import Spool, SpoolError
from gateway.store import JobRow
from protocols import oprf, psi, psi_sum

if TYPE_CHECKING:
    from gateway.orchestrator import Orchestrator

log = logging.getLogger("datawharf.gateway")

ITEM = PSI_ITEM_BYTES
BUYER_STAGES = ("A", "Z", "Q")
HOLDER_STAGES = {
    PsiMode.INTERSECTION: ("D", "W"),
    PsiMode.SUM: ("D", "W", "M", "S"),
    PsiMode.UNBALANCED: ("E", "T"),
}
BUYER_DOWNLOADS = {"W", "S", "E"}
MAX_TABLE = 1 << 24


class PsiJobs:
    def __init__(self, orch: "Orchestrator", spool: Spool) -> None:
        self.orch = orch
        self.spool = spool
        self._next: dict[str, str] = {}          # job → stage the buyer uploads next
        self._minimum: dict[str, int] = {}       # job → holder's minimum intersection
        self._epoch: dict[str, str] = {}         # job → OPRF table epoch the holder used
        self._tables: dict[tuple[str, str, str, str], set[bytes]] = {}

    # ------------------------------------------------------------------ buyer
    async def submit(self, buyer: str, request_id: str, spec: PsiJob, *, parties: list[str], timeout_s: int
                     ) -> str:
        store = self.orch.store
        spec_bytes = psi_to_proto(spec).SerializeToString(deterministic=True)
        existing = store.find_job_by_request(buyer, request_id)
        if existing is not None:
            if existing.spec != spec_bytes:
                raise InvalidArgument(f"request_id {request_id!r} was already used for a different job")
            return existing.job_id
        party = self._target(spec, parties)
        now = self.orch.clock()
        job = JobRow(
            job_id=f"job-{uuid.uuid4().hex[:16]}", buyer=buyer, request_id=request_id, kind=spec.kind,
            backend="ed25519-oprf" if spec.mode is PsiMode.UNBALANCED else "x25519",
            spec=spec_bytes, state="AWAITING_BUYER", reason="", min_parties=1, created_at=now,
            deadline=now + (timeout_s or 600), finished_at=0.0,
        )
        store.insert_job(job, [(f"task-{uuid.uuid4().hex[:16]}", party)])
        store.record("job_submitted", job_id=job.job_id, detail=f"buyer={buyer} {spec.kind} against {party}")
        self._next[job.job_id] = "A"
        self.orch.observer.job_submitted(job.kind, job.backend)
        return job.job_id

    def _target(self, spec: PsiJob, parties: list[str]) -> str:
        entry = self.orch.catalog().get(spec.dataset)
        if entry is None:
            raise NotFound(f"dataset {spec.dataset!r} is not listed by any holder; `wharf catalog` shows what is")
        if len(parties) > 1:
            raise InvalidArgument("a PSI job runs against one holder; name one --party")
        if parties:
            party = parties[0]
            if party not in entry.holders:
                raise NotFound(f"{party!r} does not hold dataset {spec.dataset!r}; its holders are {', '.join(entry.holders)}")
        elif len(entry.holders) == 1:
            party = entry.holders[0]
        else:
            raise InvalidArgument(
                f"dataset {spec.dataset!r} has several holders ({', '.join(entry.holders)}); name one with --party"
            )
        listing = entry.listings[party]
        key = listing.column(spec.key_column)
        if key is None or not key.join_key:
            keys = [c.name for c in listing.columns if c.join_key] or ["none"]
            raise NotFound(f"{spec.key_column!r} is not a join key of {spec.dataset!r} at {party} (join keys: {', '.join(keys)})")
        for name in spec.value_columns:
            col = listing.column(name)
            if col is None or not col.psi_value:
                vals = [c.name for c in listing.columns if c.psi_value] or ["none"]
                raise NotFound(f"{name!r} is not a value column of {spec.dataset!r} at {party} (value columns: {', '.join(vals)})")
        return party

    def next_stage(self, job_id: str) -> str:
        return self._next.get(job_id, "")

    async def upload(self, buyer: str, job_id: str, pieces: AsyncIterator[common_pb2.SetChunk]) -> None:
        job = self.orch._owned(job_id, buyer)
        spec = self.spec(job)
        if job.state != "AWAITING_BUYER":
            raise FailedPrecondition(f"job {job_id} is {job.state}; it is not waiting for an upload")
        stage = self._next.get(job_id)
        expected_items = spec.buyer_set_size if stage in ("A", "Q") else self._items(job_id, "W")
        done = False
        async for piece in pieces:
            if piece.stage != stage:
                raise InvalidArgument(f"job {job_id} expects stage {stage}, got {piece.stage!r}")
            try:
                done = self.spool.append(job_id, stage, piece.seq, piece.data, piece.last,
                                         item=ITEM[stage], max_items=expected_items)
            except SpoolError as exc:
                self.spool.drop(job_id)
                self.orch._fail(job, f"the buyer's upload was malformed: {exc}")
                raise InvalidArgument(str(exc)) from None
            if done:
                break
        if not done:
            self.spool.reset(job_id, stage)  # a retry starts again from chunk 0
            raise InvalidArgument(f"the upload of stage {stage} ended before its last chunk; upload it again")
        got = self.spool.size(job_id, stage) // ITEM[stage]
        if got != expected_items:
            self.spool.drop(job_id)
            self.orch._fail(job, f"stage {stage} holds {got} items; {expected_items} were expected")
            raise InvalidArgument(f"stage {stage} holds {got} items; {expected_items} were expected")
        if stage == "A":
            self._next[job_id] = ""
            self.orch.store.set_job_state(job_id, "DISPATCHED")
            (task,) = self.orch.store.tasks(job_id)
            self.dispatch(self.orch.store.job(job_id), task.task_id, task.party)  # type: ignore[arg-type]
        else:
            self._next[job_id] = ""
            self.orch.store.set_job_state(job_id, "AGGREGATING")
            self.orch._notify(job_id)
            await self._finish(job, spec)
        self.orch._notify(job_id)

    def download(self, buyer: str, job_id: str, stage: str) -> list[tuple[int, bytes, bool]]:
        job = self.orch._owned(job_id, buyer)
        if stage not in BUYER_DOWNLOADS:
            raise PermissionDenied(f"stage {stage!r} is not the buyer's to read; buyers read W, S and E")
        if not self.spool.has(job_id, stage):
            raise FailedPrecondition(f"job {job_id} has no stage {stage} yet (it is {job.state})")
        return list(self.spool.chunks(job_id, stage, ITEM[stage]))

    # ----------------------------------------------------------------- holder
    def dispatch(self, job: JobRow, task_id: str, party: str) -> None:
        if not self.spool.has(job.job_id, "A"):
            return  # the buyer has not uploaded its set yet
        spec = self.spec(job)
        cached = [k[3] for k in self._tables if k[:3] == (party, spec.dataset, spec.key_column)]
        task = party_pb2.Task(task_id=task_id, job_id=job.job_id, buyer=job.buyer, min_parties=1,
                              deadline=job.deadline, psi=psi_to_proto(spec), cached_tables=cached)
        if not self.orch.dispatcher.send(party, party_pb2.GatewayMessage(task=task)):
            return
        for stage in HOLDER_STAGES[spec.mode]:  # a resent task starts the holder's stages afresh
            self.spool.reset(job.job_id, stage)
        for seq, data, last in self.spool.chunks(job.job_id, "A", ITEM["A"]):
            self.orch.dispatcher.send(party, party_pb2.GatewayMessage(psi=party_pb2.PsiDownload(
                task_id=task_id, chunk=common_pb2.SetChunk(stage="A", seq=seq, data=data, last=last))))
        self.orch._dispatched_at[task_id] = time.monotonic()
        self.orch.store.set_task_state(task_id, "DISPATCHED")
        self.orch._notify(job.job_id)

    async def holder_upload(self, party: str, msg: party_pb2.PsiUpload) -> None:
        found = self.orch._task_for(party, msg.task_id)
        if found is None:
            return
        job, task_id = found
        spec = self.spec(job)
        stages = HOLDER_STAGES[spec.mode]
        try:
            if msg.HasField("chunk"):
                stage = msg.chunk.stage
                if stage not in stages:
                    raise SpoolError(f"stage {stage!r} is not part of a {spec.kind} answer")
                limit = MAX_TABLE if stage == "T" else (1 << 16 if stage == "S" else
                                                        MAX_PSI_SET * max(1, len(spec.value_columns)))
                self.spool.append(job.job_id, stage, msg.chunk.seq, msg.chunk.data, msg.chunk.last,
                                  item=ITEM[stage], max_items=limit)
                if job.state == "DISPATCHED":
                    self.orch.store.set_job_state(job.job_id, "COLLECTING")
                    self.orch._notify(job.job_id)
            if msg.done:
                self._check_answer(job, spec, msg)
        except (SpoolError, psi.PsiError) as exc:
            reason = f"invalid PSI answer: {exc}"
            self.orch.store.set_task_state(task_id, "FAILED", reason)
            self.orch.store.record("invalid_contribution", job_id=job.job_id, task_id=task_id, party=party, detail=reason)
            self.orch.observer.invalid_contribution()
            self.orch._fail(job, f"{party} sent an invalid PSI answer: {exc}")
            self.spool.drop(job.job_id)
            return
        if msg.done:
            self.orch.store.set_task_state(task_id, "CONTRIBUTED")
            self.orch.store.record("contribution", job_id=job.job_id, task_id=task_id, party=party)
            sent = self.orch._dispatched_at.pop(task_id, None)
            if sent is not None:
                self.orch.observer.contribution(party, time.monotonic() - sent)
            self._next[job.job_id] = "Q" if spec.mode is PsiMode.UNBALANCED else "Z"
            self.orch.store.set_job_state(job.job_id, "AWAITING_BUYER")
            self.orch._notify(job.job_id)

    def _check_answer(self, job: JobRow, spec: PsiJob, msg: party_pb2.PsiUpload) -> None:
        jid = job.job_id
        self._minimum[jid] = max(1, msg.min_intersection)
        if spec.mode is PsiMode.UNBALANCED:
            if self._items(jid, "E") != spec.buyer_set_size:
                raise psi.PsiError("the holder evaluated a different number of points than the buyer sent")
            key = (self.orch.store.tasks(jid)[0].party, spec.dataset, spec.key_column, msg.table_epoch)
            if self.spool.has(jid, "T"):
                self._tables = {k: v for k, v in self._tables.items() if k[:3] != key[:3]}  # one epoch each
                self._tables[key] = set(self.spool.items(jid, "T", ITEM["T"]))
            elif key not in self._tables:
                raise psi.PsiError(f"no table for epoch {msg.table_epoch!r} was sent or is cached")
            self._epoch[jid] = msg.table_epoch
            return
        for stage in HOLDER_STAGES[spec.mode]:
            if not self.spool.has(jid, stage):
                raise psi.PsiError(f"the answer lacks stage {stage}")
        if self._items(jid, "D") != spec.buyer_set_size:
            raise psi.PsiError("the holder re-blinded a different number of points than the buyer sent")
        if spec.mode is PsiMode.SUM and self._items(jid, "M") != self._items(jid, "W") * len(spec.value_columns):
            raise psi.PsiError("masked values do not match the holder's rows and value columns")

    # ------------------------------------------------------------------ match
    def _items(self, job_id: str, stage: str) -> int:
        return self.spool.size(job_id, stage) // ITEM[stage] if self.spool.has(job_id, stage) else 0

    async def _finish(self, job: JobRow, spec: PsiJob) -> None:
        jid = job.job_id
        minimum = self._minimum.get(jid, 1)
        try:
            result = await asyncio.to_thread(self._match, jid, spec, minimum)
        except psi.PsiError as exc:
            self.orch._fail(job, str(exc))
            self.spool.drop(jid)
            return
        (task,) = self.orch.store.tasks(jid)
        payload = buyer_pb2.JobResult(job_id=jid, contributors=[task.party], psi=result).SerializeToString()
        self.orch.store.finish_job(jid, payload)
        self.orch.store.record("job_done", job_id=jid, detail=f"intersection size {result.size}")
        self.orch.observer.job_finished(job.kind, job.backend, "DONE", self.orch.clock() - job.created_at)
        self.forget(jid)

    def _match(self, jid: str, spec: PsiJob, minimum: int) -> buyer_pb2.PsiResult:
        if spec.mode is PsiMode.UNBALANCED:
            (task,) = self.orch.store.tasks(jid)
            table = self._tables.get((task.party, spec.dataset, spec.key_column, self._epoch.get(jid, "")))
            if table is None:
                raise psi.PsiError("the holder's table for this epoch is no longer held; submit the job again")
            m = oprf.lookup(table, self.spool.items(jid, "Q", ITEM["Q"]), minimum=minimum,
                            cardinality_only=spec.cardinality_only)
            return buyer_pb2.PsiResult(size=m.size, positions=m.positions)
        d = self.spool.items(jid, "D", ITEM["D"])
        z = self.spool.items(jid, "Z", ITEM["Z"])
        if spec.mode is PsiMode.INTERSECTION:
            m = psi.match(d, z, minimum=minimum, cardinality_only=spec.cardinality_only)
            return buyer_pb2.PsiResult(size=m.size, positions=m.positions)
        cols = len(spec.value_columns)
        raw = self.spool.read(jid, "M")
        w = ITEM["M"]
        masked = [[int.from_bytes(raw[(j * cols + k) * w:(j * cols + k + 1) * w], "little") for k in range(cols)]
                  for j in range(len(z))]
        r = psi_sum.gateway_sum(d, z, masked, minimum=minimum)
        return buyer_pb2.PsiResult(size=r.size, positions=r.positions, holder_rows=len(z),
                                   masked_sums=[s.to_bytes(ITEM["M"], "little") for s in r.masked_sums])

    def forget(self, job_id: str) -> None:
        for d in (self._next, self._minimum, self._epoch):
            d.pop(job_id, None)
        self.spool.drop(job_id)

    @staticmethod
    def spec(job: JobRow) -> PsiJob:
        from datawharf.serde import psi_from_proto

        return psi_from_proto(common_pb2.PsiSpec.FromString(job.spec))

