"""One state machine per job, driven by buyers' calls and parties' messages.

    PENDING → DISPATCHED → COLLECTING → AGGREGATING → DONE
          ↘            ↘             ↘             ↘ FAILED | CANCELLED

A job completes as soon as every task has an answer (contributed, refused,
failed, lost) and at least ``min_parties`` contributed; it fails as soon as
that threshold can no longer be met, or at its deadline. A task whose holder
disconnected is LOST but resent if the holder returns before the deadline.
Everything is in the store first, so a restarted gateway resumes each job
without losing or double-counting a contribution.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import AsyncIterator, Callable

from datawharf.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from datawharf.filters import Op
from datawharf.model import AggregateJob, ColumnKind, JobView, Listing, TaskView
from datawharf.model import PsiJob
from datawharf.serde import (
    aggregate_from_proto,
    aggregate_to_proto,
    contribution_from_proto,
    listing_from_proto,
    psi_from_proto,
    result_to_proto,
)
from datawharf.v1 import buyer_pb2, common_pb2, party_pb2
from gateway.catalog import CatalogEntry, merge
from gateway.dispatch import Dispatcher
from gateway.psi_jobs import PsiJobs
from gateway.spool import Spool
from gateway.store import JobRow, SqliteStore
from gateway.store.sqlite import ACTIVE_JOB_STATES
from protocols import aggregate as agg
from protocols.figures import Statistic
from protocols.schemes import SchemeError

log = logging.getLogger("datawharf.gateway")


class JobObserver:
    """What the orchestrator reports as it goes; the metrics module listens.
    The base class ignores everything, so tests need not care."""

    def job_submitted(self, kind: str, backend: str) -> None: ...

    def job_finished(self, kind: str, backend: str, state: str, seconds: float) -> None: ...

    def contribution(self, party: str, latency_s: float) -> None: ...

    def refusal(self, code: str) -> None: ...

    def invalid_contribution(self) -> None: ...

    def parties_online(self, count: int) -> None: ...

DEFAULT_TIMEOUT_S = 120
MAX_TIMEOUT_S = 24 * 3600
_ANSWERED = ("CONTRIBUTED", "REFUSED", "FAILED", "LOST", "EXPIRED", "CANCELLED")
_OPEN = ("PENDING", "DISPATCHED", "LOST")


class Orchestrator:
    def __init__(
        self,
        store: SqliteStore,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], float] = time.time,
        observer: JobObserver | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.observer = observer or JobObserver()
        self._dispatched_at: dict[str, float] = {}
        self.psi = PsiJobs(self, spool or Spool(Path(tempfile.mkdtemp(prefix="wharf-spool-"))))
        self._changed: dict[str, asyncio.Event] = {}
        self._finishing: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._encryptors: dict[str, agg.Encryptor] = {}
        self._listings: dict[str, list[Listing]] = {}
        for row in store.parties():
            reg = party_pb2.Register.FromString(row["listings"])
            self._listings[row["name"]] = [listing_from_proto(d) for d in reg.datasets]

    # ----------------------------------------------------------------- catalog
    def datasets_by_party(self) -> dict[str, list[str]]:
        """Dataset names each known party last listed."""
        return {party: [x.name for x in listings] for party, listings in self._listings.items()}

    def catalog(self) -> dict[str, CatalogEntry]:
        online = {p for p in self._listings if self.dispatcher.is_online(p)}
        return merge(self._listings, online)

    # ------------------------------------------------------------------ buyers
    async def submit(
        self,
        buyer: str,
        request_id: str,
        spec: AggregateJob,
        *,
        parties: list[str],
        min_parties: int,
        timeout_s: int,
    ) -> JobView:
        if not request_id or len(request_id) > 128:
            raise InvalidArgument("request_id must be 1-128 characters (any unique string you choose)")
        spec_bytes = aggregate_to_proto(spec).SerializeToString(deterministic=True)
        existing = self.store.find_job_by_request(buyer, request_id)
        if existing is not None:
            if existing.spec != spec_bytes:
                raise InvalidArgument(
                    f"request_id {request_id!r} was already used for a different job ({existing.job_id}); "
                    "choose a new request id"
                )
            return self.view(existing.job_id, buyer)
        targets = self._plan(spec, parties)
        min_parties = min_parties or 1
        if min_parties > len(targets):
            raise FailedPrecondition(
                f"--min-parties {min_parties} cannot be met: only {len(targets)} holder(s) would be asked "
                f"({', '.join(targets)})"
            )
        if timeout_s < 0 or timeout_s > MAX_TIMEOUT_S:
            raise InvalidArgument(f"timeout must be between 1 and {MAX_TIMEOUT_S} seconds")
        now = self.clock()
        job = JobRow(
            job_id=f"job-{uuid.uuid4().hex[:16]}",
            buyer=buyer,
            request_id=request_id,
            kind="aggregate",
            backend=spec.encryption.backend.value,
            spec=spec_bytes,
            state="PENDING",
            reason="",
            min_parties=min_parties,
            created_at=now,
            deadline=now + (timeout_s or DEFAULT_TIMEOUT_S),
            finished_at=0.0,
        )
        self.store.insert_job(job, [(f"task-{uuid.uuid4().hex[:16]}", p) for p in targets])
        self.store.record("job_submitted", job_id=job.job_id, detail=f"buyer={buyer} parties={targets}")
        log.info("job %s submitted by %s: %s over %s", job.job_id, buyer, spec.statistic.value, targets)
        self.observer.job_submitted(job.kind, job.backend)
        for task in self.store.tasks(job.job_id):
            self._dispatch(job, task.task_id, task.party)
        return self.view(job.job_id, buyer)

    def _plan(self, spec: AggregateJob, parties: list[str]) -> list[str]:
        """Check the spec against the catalog; return the holders to ask."""
        try:
            agg.encryptor(spec.encryption)
        except SchemeError as exc:
            raise InvalidArgument(f"encryption parameters refused: {exc}") from None
        entry = self.catalog().get(spec.dataset)
        if entry is None:
            raise NotFound(
                f"dataset {spec.dataset!r} is not listed by any holder; `wharf catalog` shows what is"
            )
        if parties:
            unknown = [p for p in parties if p not in entry.holders]
            if unknown:
                raise NotFound(
                    f"{', '.join(map(repr, unknown))} do(es) not hold dataset {spec.dataset!r}; "
                    f"its holders are {', '.join(entry.holders)}"
                )
            targets = sorted(set(parties))
        else:
            targets = list(entry.holders_online)
            if not targets:
                raise FailedPrecondition(
                    f"no holder of dataset {spec.dataset!r} is online "
                    f"(holders: {', '.join(entry.holders)}); retry later or name them with --party to wait"
                )
        if spec.encryption.max_contributors < len(targets):
            raise FailedPrecondition(
                f"the job's encoding leaves headroom for {spec.encryption.max_contributors} holder(s) "
                f"but {len(targets)} would be asked; resubmit with a larger max_contributors"
            )
        for party in targets:
            listing = entry.listings[party]
            col = listing.column(spec.column)
            if col is None:
                raise NotFound(
                    f"column {spec.column!r} is not in dataset {spec.dataset!r} at {party} "
                    f"(columns: {', '.join(c.name for c in listing.columns)})"
                )
            if not col.kind.numeric and spec.statistic is not Statistic.COUNT:
                raise InvalidArgument(
                    f"column {spec.column!r} holds text; {spec.statistic.value} needs a numeric column"
                )
            if col.kind.numeric and spec.statistic is not Statistic.COUNT and col.dimension != spec.dimension:
                raise InvalidArgument(
                    f"column {spec.column!r} has {col.dimension} value(s) per row at {party}; the job says {spec.dimension}"
                )
            if spec.statistic is Statistic.HISTOGRAM and col.kind is ColumnKind.VECTOR:
                raise InvalidArgument(f"a histogram needs a scalar column; {spec.column!r} is a vector")
            if spec.group_by is not None:
                gcol = listing.column(spec.group_by.column)
                if gcol is None:
                    raise NotFound(f"group-by column {spec.group_by.column!r} is not in dataset {spec.dataset!r} at {party}")
                if gcol.categories != spec.group_by.categories:
                    raise InvalidArgument(
                        f"group-by column {spec.group_by.column!r} at {party} declares categories "
                        f"{list(gcol.categories) or 'none'}; the job uses {list(spec.group_by.categories)}"
                    )
            if col.decimals > spec.places:
                raise InvalidArgument(
                    f"column {spec.column!r} has {col.decimals} decimal places at {party}; "
                    f"the job asks for {spec.places}"
                )
            for cond in spec.where:
                fcol = listing.column(cond.column)
                if fcol is None:
                    raise NotFound(
                        f"filter column {cond.column!r} is not in dataset {spec.dataset!r} at {party}"
                    )
                if fcol.kind is ColumnKind.VECTOR:
                    raise InvalidArgument(f"filter: {cond.column!r} is a vector column; filter on scalar columns")
                if fcol.kind is ColumnKind.STRING and not isinstance(cond.literal, str):
                    raise InvalidArgument(f"filter: {cond.column!r} holds text; compare it with a quoted string")
                if fcol.kind.numeric and isinstance(cond.literal, str):
                    raise InvalidArgument(f"filter: {cond.column!r} is numeric; compare it with a number")
                if fcol.kind is ColumnKind.STRING and cond.op not in (Op.EQ, Op.NE):
                    raise InvalidArgument(f"filter: text column {cond.column!r} supports only == and !=")
        return targets

    def _owned(self, job_id: str, buyer: str) -> JobRow:
        job = self.store.job(job_id)
        # The same answer for "no such job" and "not yours": job ids are not
        # an oracle for other buyers' activity.
        if job is None or job.buyer != buyer:
            raise NotFound(f"no job {job_id!r} submitted by {buyer!r}")
        return job

    async def submit_psi(self, buyer: str, request_id: str, spec: PsiJob, *, parties: list[str],
                         timeout_s: int) -> JobView:
        if not request_id or len(request_id) > 128:
            raise InvalidArgument("request_id must be 1-128 characters (any unique string you choose)")
        if timeout_s < 0 or timeout_s > MAX_TIMEOUT_S:
            raise InvalidArgument(f"timeout must be between 1 and {MAX_TIMEOUT_S} seconds")
        job_id = await self.psi.submit(buyer, request_id, spec, parties=parties, timeout_s=timeout_s)
        return self.view(job_id, buyer)

    def view(self, job_id: str, buyer: str | None = None) -> JobView:
        job = self.store.job(job_id) if buyer is None else self._owned(job_id, buyer)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        spec: object
        if job.kind.startswith("psi"):
            spec = psi_from_proto(common_pb2.PsiSpec.FromString(job.spec))
        else:
            spec = aggregate_from_proto(common_pb2.AggregateSpec.FromString(job.spec), need_keys=False)
        return JobView(
            job_id=job.job_id,
            request_id=job.request_id,
            buyer=job.buyer,
            state=job.state,
            reason=job.reason,
            spec=spec,
            min_parties=job.min_parties,
            created_at=job.created_at,
            deadline=job.deadline,
            finished_at=job.finished_at,
            tasks=[TaskView(t.party, t.state, t.reason) for t in self.store.tasks(job_id)],
            next_stage=self.psi.next_stage(job_id) if job.state == "AWAITING_BUYER" else "",
        )

    async def watch(self, job_id: str, buyer: str, *, idle_s: float = 15.0) -> AsyncIterator[JobView]:
        """The job now and after every change, until it is final."""
        self._owned(job_id, buyer)
        while True:
            event = self._changed.setdefault(job_id, asyncio.Event())
            view = self.view(job_id, buyer)
            yield view
            if view.final:
                return
            try:
                await asyncio.wait_for(event.wait(), timeout=idle_s)
            except asyncio.TimeoutError:
                pass  # resend the same state: a liveness signal for the watcher

    async def cancel(self, job_id: str, buyer: str) -> JobView:
        job = self._owned(job_id, buyer)
        if job.state not in ACTIVE_JOB_STATES:
            raise FailedPrecondition(f"job {job_id} is already {job.state}; only running jobs can be cancelled")
        self._cancel_open(job_id, "job cancelled by the buyer")
        self.store.set_job_state(job_id, "CANCELLED", "cancelled by the buyer", finished=True)
        self.store.record("job_cancelled", job_id=job_id)
        self.psi.forget(job_id)
        self.observer.job_finished(job.kind, job.backend, "CANCELLED", self.clock() - job.created_at)
        self._notify(job_id)
        return self.view(job_id, buyer)

    def _cancel_open(self, job_id: str, reason: str) -> None:
        for task in self.store.tasks(job_id):
            self._dispatched_at.pop(task.task_id, None)
            if task.state in _OPEN:
                self.store.set_task_state(task.task_id, "CANCELLED", reason)
                self.dispatcher.send(
                    task.party,
                    party_pb2.GatewayMessage(cancel=party_pb2.CancelTask(task_id=task.task_id, reason=reason)),
                )

    def result(self, job_id: str, buyer: str) -> bytes:
        job = self._owned(job_id, buyer)
        if job.state != "DONE":
            detail = f": {job.reason}" if job.reason else ""
            raise FailedPrecondition(
                f"job {job_id} is {job.state}{detail}; a result exists only once it is DONE"
            )
        payload = self.store.result(job_id)
        if payload is None:  # pragma: no cover - DONE is written with its result
            raise FailedPrecondition(f"job {job_id} has no stored result")
        return payload

    # ----------------------------------------------------------------- parties
    def party_connected(self, party: str, register: party_pb2.Register) -> None:
        listings = [listing_from_proto(d) for d in register.datasets]
        self._listings[party] = listings
        self.store.upsert_party(party, register.SerializeToString(deterministic=True))
        self.store.record("party_connected", party=party, detail=f"{len(listings)} dataset(s)")
        self.observer.parties_online(sum(self.dispatcher.is_online(p) for p in self._listings))
        for task in self.store.open_tasks_for_party(party):
            job = self.store.job(task.job_id)
            if job is not None:
                self._dispatch(job, task.task_id, party)

    def party_heartbeat(self, party: str) -> None:
        self.store.touch_party(party)

    def party_disconnected(self, party: str) -> None:
        self.store.record("party_disconnected", party=party)
        self.observer.parties_online(sum(self.dispatcher.is_online(p) for p in self._listings))
        touched: set[str] = set()
        for task in self.store.open_tasks_for_party(party):
            self._dispatched_at.pop(task.task_id, None)
            if task.state == "DISPATCHED":
                self.store.set_task_state(
                    task.task_id, "LOST", "holder disconnected before answering; resent if it returns"
                )
                touched.add(task.job_id)
        for job_id in touched:
            self._evaluate(job_id)

    def _dispatch(self, job: JobRow, task_id: str, party: str) -> None:
        if job.kind.startswith("psi"):
            self.psi.dispatch(job, task_id, party)
            return
        task = party_pb2.Task(
            task_id=task_id,
            job_id=job.job_id,
            buyer=job.buyer,
            min_parties=job.min_parties,
            deadline=job.deadline,
            aggregate=common_pb2.AggregateSpec.FromString(job.spec),
        )
        if self.dispatcher.send(party, party_pb2.GatewayMessage(task=task)):
            self._dispatched_at[task_id] = time.monotonic()
            self.store.set_task_state(task_id, "DISPATCHED")
            if job.state == "PENDING":
                self.store.set_job_state(job.job_id, "DISPATCHED")
            self._notify(job.job_id)

    def _task_for(self, party: str, task_id: str) -> tuple[JobRow, str] | None:
        """The open task ``task_id`` of ``party``, or None (and a notice) if it is not one."""
        task = self.store.task(task_id)
        problem = None
        if task is None or task.party != party:
            problem = f"unknown task {task_id!r}"
        elif task.state not in _OPEN:
            problem = f"task {task_id} is already {task.state}; the answer was ignored"
        job = self.store.job(task.job_id) if task else None
        if problem is None and (job is None or job.state not in ACTIVE_JOB_STATES):
            problem = f"job of task {task_id} is {job.state if job else 'gone'}; the answer was ignored"
        if problem is not None or job is None:
            self.store.record("rejected_message", task_id=task_id, party=party, detail=problem or "")
            log.warning("from %s: %s", party, problem)
            self.dispatcher.send(
                party, party_pb2.GatewayMessage(notice=party_pb2.Notice(task_id=task_id, message=problem or ""))
            )
            return None
        return job, task_id

    async def contribution(self, party: str, task_id: str, payload: bytes) -> None:
        found = self._task_for(party, task_id)
        if found is None:
            return
        job, _ = found
        try:
            spec = aggregate_from_proto(common_pb2.AggregateSpec.FromString(job.spec))
            enc = self._encryptors.get(job.job_id)
            if enc is None:
                enc = self._encryptors[job.job_id] = agg.encryptor(spec.encryption)
            contribution = contribution_from_proto(common_pb2.EncryptedFigures.FromString(payload))
            await asyncio.to_thread(agg.check_contribution, spec.request, contribution, enc)
        except Exception as exc:  # any malformed payload is the holder's fault, not the job's
            reason = f"invalid contribution: {exc}"
            self.store.set_task_state(task_id, "FAILED", reason)
            self.store.record("invalid_contribution", job_id=job.job_id, task_id=task_id, party=party, detail=reason)
            self.observer.invalid_contribution()
            self.dispatcher.send(
                party, party_pb2.GatewayMessage(notice=party_pb2.Notice(task_id=task_id, message=reason))
            )
            log.warning("job %s: %s from %s", job.job_id, reason, party)
        else:
            if self.store.add_contribution(task_id, job.job_id, party, payload):
                self.store.record("contribution", job_id=job.job_id, task_id=task_id, party=party,
                                  detail=f"bytes={len(payload)}")
                sent = self._dispatched_at.pop(task_id, None)
                if sent is not None:
                    self.observer.contribution(party, time.monotonic() - sent)
                if job.state in ("PENDING", "DISPATCHED"):
                    self.store.set_job_state(job.job_id, "COLLECTING")
        self._notify(job.job_id)
        await self._evaluate_async(job.job_id)

    async def refusal(
        self, party: str, task_id: str, reason: str, *, failed: bool = False, code: str = ""
    ) -> None:
        found = self._task_for(party, task_id)
        if found is None:
            return
        job, _ = found
        state = "FAILED" if failed else "REFUSED"
        self._dispatched_at.pop(task_id, None)
        if not failed:
            self.observer.refusal(code or "unspecified")
        self.store.set_task_state(task_id, state, reason[:500])
        self.store.record(state.lower(), job_id=job.job_id, task_id=task_id, party=party, detail=reason[:500])
        self._notify(job.job_id)
        await self._evaluate_async(job.job_id)

    # ------------------------------------------------------------- completion
    def _evaluate(self, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._evaluate_async(job_id))
        self._background.add(task)  # the loop keeps only weak references
        task.add_done_callback(self._background.discard)

    async def _evaluate_async(self, job_id: str, *, at_deadline: bool = False) -> None:
        job = self.store.job(job_id)
        if job is None or job.state not in ACTIVE_JOB_STATES or job_id in self._finishing:
            return
        tasks = self.store.tasks(job_id)
        if job.kind.startswith("psi"):
            self._evaluate_psi(job, tasks, at_deadline)
            return
        contributed = [t for t in tasks if t.state == "CONTRIBUTED"]
        still_open = [t for t in tasks if t.state in _OPEN]
        waiting = [t for t in still_open if t.state != "LOST"]
        if len(contributed) >= job.min_parties and (not waiting or at_deadline):
            if at_deadline:
                for t in still_open:
                    self._dispatched_at.pop(t.task_id, None)
                    self.store.set_task_state(t.task_id, "EXPIRED", "no answer before the job's deadline")
            await self._aggregate(job)
        elif len(contributed) + len(still_open) < job.min_parties or at_deadline:
            if at_deadline:
                for t in still_open:
                    self.store.set_task_state(t.task_id, "EXPIRED", "no answer before the job's deadline")
            self._fail(job, self._shortfall(job, at_deadline))

    def _evaluate_psi(self, job: JobRow, tasks: list, at_deadline: bool) -> None:  # type: ignore[type-arg]
        (task,) = tasks
        if task.state in ("REFUSED", "FAILED"):
            self._fail(job, f"{task.party} {task.state.lower()}: {task.reason}")
        elif at_deadline:
            if task.state in _OPEN:
                self.store.set_task_state(task.task_id, "EXPIRED", "no answer before the job's deadline")
            waiting = "the buyer's upload" if job.state == "AWAITING_BUYER" else f"{task.party}'s answer"
            self._fail(job, f"deadline passed waiting for {waiting}")

    def _shortfall(self, job: JobRow, at_deadline: bool) -> str:
        tasks = self.store.tasks(job.job_id)
        n = sum(t.state == "CONTRIBUTED" for t in tasks)
        words = {"DISPATCHED": "had not answered yet", "PENDING": "was offline", "LOST": "disconnected"}
        why = "; ".join(
            f"{t.party} {words.get(t.state, t.state.lower())}" + (f": {t.reason}" if t.reason else "")
            for t in tasks
            if t.state != "CONTRIBUTED"
        )
        head = "deadline passed with" if at_deadline else "cannot succeed:"
        return f"{head} {n} of {len(tasks)} holder(s) contributed, {job.min_parties} required — {why}"

    def _fail(self, job: JobRow, reason: str) -> None:
        self._encryptors.pop(job.job_id, None)
        if job.kind.startswith("psi"):
            self.psi.forget(job.job_id)
        self._cancel_open(job.job_id, "the job failed before this holder answered")
        self.store.set_job_state(job.job_id, "FAILED", reason, finished=True)
        self.store.record("job_failed", job_id=job.job_id, detail=reason)
        self.observer.job_finished(job.kind, job.backend, "FAILED", self.clock() - job.created_at)
        log.info("job %s failed: %s", job.job_id, reason)
        self._notify(job.job_id)

    async def _aggregate(self, job: JobRow) -> None:
        self._finishing.add(job.job_id)
        try:
            self.store.set_job_state(job.job_id, "AGGREGATING")
            self._notify(job.job_id)
            spec = aggregate_from_proto(common_pb2.AggregateSpec.FromString(job.spec))
            stored = self.store.contributions(job.job_id)
            contributions = {
                party: contribution_from_proto(common_pb2.EncryptedFigures.FromString(p)) for party, p in stored
            }
            total = await asyncio.to_thread(agg.combine, spec.request, contributions)
            result = result_to_proto(job.job_id, total, [party for party, _ in stored])
            self.store.finish_job(job.job_id, result.SerializeToString())
            self.store.record("job_done", job_id=job.job_id, detail=f"{len(stored)} contribution(s)")
            self.observer.job_finished(job.kind, job.backend, "DONE", self.clock() - job.created_at)
            log.info("job %s done with %d contribution(s)", job.job_id, len(stored))
        except Exception as exc:
            log.exception("job %s: aggregation failed", job.job_id)
            self._fail(job, f"aggregation failed at the gateway: {exc}")
        finally:
            self._finishing.discard(job.job_id)
            self._encryptors.pop(job.job_id, None)
            self._notify(job.job_id)

    async def check_deadlines(self) -> None:
        now = self.clock()
        for job in self.store.jobs(ACTIVE_JOB_STATES):
            if job.deadline <= now:
                await self._evaluate_async(job.job_id, at_deadline=True)

    async def run_deadlines(self, stop: asyncio.Event, *, every_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                await self.check_deadlines()
            except Exception:  # keep the loop alive; the next tick retries
                log.exception("deadline check failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except asyncio.TimeoutError:
                pass

    async def recover(self) -> None:
        """After a restart: in-flight tasks are resent, half-finished jobs finish."""
        resent = self.store.reset_dispatched()
        if resent:
            log.info("restart: %d task(s) will be resent when their holders reconnect", resent)
        for job in self.store.jobs(ACTIVE_JOB_STATES):
            if job.kind.startswith("psi"):
                self._fail(job, "the gateway restarted during this PSI job; submit it again")
        for job in self.store.jobs(("AGGREGATING",)):
            await self._aggregate(job)
        for job in self.store.jobs(ACTIVE_JOB_STATES):
            await self._evaluate_async(job.job_id)

    def _notify(self, job_id: str) -> None:
        event = self._changed.pop(job_id, None)
        if event is not None:
            event.set()
