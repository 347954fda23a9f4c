"""The gateway's job logic as the servicers see it: one entry point, routed by kind.

Each job row names its kind; ``KINDS`` maps every kind to the object that
runs it (aggregation or PSI), so nothing here branches on kind names. The
shared bookkeeping is ``JobBook``; the network is the ``Dispatcher`` seam.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable

from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound
from datawharf.messages import CancelTask, HolderUpload, Notice, StagePiece
from datawharf.model import AggregateJob, JobView, Listing, PsiJob, TaskView
from datawharf.states import ACTIVE_JOB_STATES, JobState, TaskState
from datawharf.pki import TrustStore
from datawharf.v1 import common_pb2
from gateway.catalog import CatalogEntry
from gateway.dispatch import Dispatcher
from gateway.jobs import aggregate, psi
from gateway.jobs.book import JobBook, JobKind, Spec
from gateway.jobs.observer import JobObserver
from gateway.market import Market
from gateway.quotas import QuotaExceeded, Quotas, QuotaSettings
from gateway.spool import Spool, SpoolFull
from datawharf.serde import listings_from_bytes
from gateway.store import JobRow, SqliteStore

if TYPE_CHECKING:
    from gateway.replicas import Replicas

log = logging.getLogger("datawharf.gateway")

# A replica re-evaluates the jobs it owns this often, in case a notification was lost on the way.
SWEEP_EVERY_S = 2.0


class Orchestrator:
    def __init__(
        self,
        store: SqliteStore,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], float] = time.time,
        observer: JobObserver | None = None,
        spool: Spool | None = None,
        trust: TrustStore | None = None,
        result_ttl_s: float | None = None,
        quotas: Quotas | None = None,
        market: Market | None = None,
    ) -> None:
        self.result_ttl_s = result_ttl_s
        # Without quotas from the app (tests, benchmarks) nothing is limited per buyer.
        self.quotas = quotas or Quotas(QuotaSettings(max_open_jobs=0, jobs_per_minute=0, max_upload_bytes=0,
                                                     max_calls_per_caller=0))
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.book = JobBook(store, dispatcher, clock=clock, observer=observer or JobObserver(), trust=trust)
        self.aggregate = aggregate.AggregateJobs(self.book)
        self.psi = psi.PsiJobs(self.book, spool or Spool(Path(tempfile.mkdtemp(prefix="wharf-spool-"))))
        self.kinds: dict[str, JobKind] = {aggregate.KIND: self.aggregate, **{k: self.psi for k in psi.KINDS}}
        for name, kind in self.kinds.items():
            self.book.decoders[name] = kind.decode
            self.book.cleanups[name] = kind.forget
        self.book.on_ended.append(lambda job: self.quotas.ended(job.buyer, job.job_id))
        self._background: set[asyncio.Task[None]] = set()
        self.replicas: Replicas | None = None
        self._learned: dict[str, bytes] = {}  # listings of parties held by other replicas, as last read
        self._swept = 0.0  # when this replica last re-evaluated every job it owns
        self.market = market
        if market is not None:
            # Only approved listings are in the catalog; a DONE job is charged; a delisted dataset
            # gets no more tasks.
            self.book.admit = lambda party, listing: market.review.admits(party, listing.name, listing)
            self.book.on_ended.append(lambda job: market.meter.job_ended(job, self.book.spec(job).dataset))
            market.review.on_withdrawn.append(self.withdraw)

    # ---------------------------------------------------------------- replicas
    def join(self, replicas: "Replicas") -> None:
        """Run as one of several replicas on a shared store: own the jobs opened here, hand others'
        to their owners, reach parties whose streams other replicas hold."""
        self.replicas = replicas
        self.book.owner = replicas.name
        self.book.lease_s = replicas.lease_s
        self.book.on_notify = lambda job_id: replicas.say("job", job=job_id)
        replicas.handlers.update(
            job=lambda m: self.book.wake(str(m.get("job", ""))),
            eval=lambda m: self._evaluate_soon(str(m.get("job", ""))),
            work=lambda m: self.dispatch_open(str(m.get("party", "")), only_new=True),
            say=self._relayed,
            parties=lambda m: self._refresh_parties(),
        )

    def _relayed(self, m: dict[str, Any]) -> None:
        party, task_id, text = str(m.get("party", "")), str(m.get("task", "")), str(m.get("text", ""))
        if m.get("what") == "notice":
            self.dispatcher.send(party, Notice(task_id, text))
        elif m.get("what") == "cancel":
            self.dispatcher.send(party, CancelTask(task_id, text))

    def _refresh_parties(self) -> None:
        """Who is online at the other replicas, and what they list, into this replica's catalog."""
        assert self.replicas is not None
        self.replicas.refresh()
        for row in self.store.parties():
            name = row["name"]
            if name in self.replicas.remote and self._learned.get(name) != bytes(row["listings"]):
                self._learned[name] = bytes(row["listings"])
                self.book.learn_party(name, listings_from_bytes(row["listings"]), organisation=row["organisation"],
                                      serial=row["serial"])
        self.book.parties_changed()

    async def _heartbeat(self) -> None:
        """Renew this replica's leases, take over lapsed jobs, and re-evaluate the jobs it owns (a lost
        notification costs latency, not an answer)."""
        assert self.replicas is not None
        for job_id in self.replicas.heartbeat():
            job = self.store.job(job_id)
            if job is not None:
                self.quotas.opened(job.buyer, job.job_id)
                await self.kinds[job.kind].recover(job)
        self._refresh_parties()
        now = time.monotonic()
        if now - self._swept < SWEEP_EVERY_S:
            return
        self._swept = now
        for job in self.store.jobs(ACTIVE_JOB_STATES):
            if job.owner == self.replicas.name:
                await self.evaluate(job.job_id)

    # ----------------------------------------------------------------- catalog
    def datasets_by_party(self) -> dict[str, list[str]]:
        return self.book.datasets_by_party()

    def catalog(self) -> dict[str, CatalogEntry]:
        return self.book.catalog()

    # ------------------------------------------------------------------ buyers
    async def submit(self, buyer: str, request_id: str, spec: Spec, *, parties: list[str],
                     min_parties: int = 1, timeout_s: int = 0, signed: bytes = b"") -> JobView:
        """Open a job for ``spec`` (an aggregation or a PSI job); idempotent per ``request_id``.
        ``signed`` is the buyer's SignedJob, relayed to holders as it came. A new job counts against
        the buyer's quotas (QuotaExceeded past them); a resubmission does not."""
        new = self.store.find_job_by_request(buyer, request_id) is None
        if new and self.market is not None:
            self.market.review.check_job(spec.dataset, parties, self.book.registered(spec.dataset))
        if new:
            self.quotas.admit_job(buyer)
        if isinstance(spec, AggregateJob):
            job = await self.aggregate.submit(buyer, request_id, spec, parties=parties, min_parties=min_parties,
                                              timeout_s=timeout_s, signed=signed)
        elif isinstance(spec, PsiJob):
            job = await self.psi.submit(buyer, request_id, spec, parties=parties, timeout_s=timeout_s,
                                        signed=signed)
        else:
            raise InvalidArgument("the request carries no job spec: send an aggregate or a psi spec")
        view = self.view(job.job_id, buyer)
        if new:
            self.quotas.submitted(buyer)
        if not view.final:
            self.quotas.opened(buyer, job.job_id)
        return view

    def view(self, job_id: str, buyer: str | None = None) -> JobView:
        job = self.store.job(job_id) if buyer is None else self.book.owned(job_id, buyer)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        state = JobState(job.state)
        return JobView(
            job_id=job.job_id,
            request_id=job.request_id,
            buyer=job.buyer,
            state=state,
            reason=job.reason,
            spec=self.book.spec(job),
            min_parties=job.min_parties,
            created_at=job.created_at,
            deadline=job.deadline,
            finished_at=job.finished_at,
            tasks=[TaskView(t.party, TaskState(t.state), t.reason) for t in self.store.tasks(job_id)],
            next_stage=self.kinds[job.kind].next_stage(job_id) if state == JobState.AWAITING_BUYER else "",
        )

    async def watch(self, job_id: str, buyer: str, *, idle_s: float = 15.0) -> AsyncIterator[JobView]:
        """The job now and after every change, until it is final."""
        self.book.owned(job_id, buyer)
        while True:
            event = self.book.changed(job_id)
            view = self.view(job_id, buyer)
            yield view
            if view.final:
                return
            try:
                await asyncio.wait_for(event.wait(), timeout=idle_s)
            except asyncio.TimeoutError:
                pass  # resend the same state: a liveness signal for the watcher

    async def cancel(self, job_id: str, buyer: str) -> JobView:
        job = self.book.owned(job_id, buyer)
        if job.state not in ACTIVE_JOB_STATES:
            raise FailedPrecondition(f"job {job_id} is already {job.state}; only running jobs can be cancelled")
        self.book.cancel(job, "cancelled by the buyer")
        return self.view(job_id, buyer)

    def result(self, job_id: str, buyer: str) -> bytes:
        job = self.book.owned(job_id, buyer)
        if job.state != JobState.DONE:
            detail = f": {job.reason}" if job.reason else ""
            raise FailedPrecondition(f"job {job_id} is {job.state}{detail}; a result exists only once it is DONE")
        payload = self.store.result(job_id)
        if payload is None:
            raise FailedPrecondition(f"job {job_id}'s result was destroyed (purged by its buyer or past its "
                                     "lifetime); the ledger holds its destruction receipt")
        return payload

    def purge(self, job_id: str, buyer: str) -> dict[str, object]:
        """Destroy a finished job's result now; its destruction receipt."""
        job = self.book.owned(job_id, buyer)
        if job.state in ACTIVE_JOB_STATES:
            raise FailedPrecondition(f"job {job_id} is still {job.state}; cancel it first, then purge it")
        if not self.store.drop_result(job_id):
            raise FailedPrecondition(f"job {job_id} keeps no result to purge (it is {job.state}, or was purged)")
        return self.book.destroyed_result(job, "purged by its buyer")

    def job_ledger(self, job_id: str, buyer: str) -> list[str]:
        """The genesis and every ledger entry about one of ``buyer``'s jobs."""
        self.book.owned(job_id, buyer)
        return self.store.job_ledger_lines(job_id)

    def expire_results(self) -> int:
        """Destroy every result older than its lifetime; how many."""
        if self.result_ttl_s is None:
            return 0
        expired = self.store.results_before(self.clock() - self.result_ttl_s)
        for job_id in expired:
            job = self.store.job(job_id)
            if job is not None and self.store.drop_result(job_id):
                self.book.destroyed_result(job, f"past its lifetime of {self.result_ttl_s:.0f} s")
        return len(expired)

    async def upload_set(self, buyer: str, job_id: str, pieces: AsyncIterator[StagePiece]) -> JobView:
        held = 0

        async def counted() -> AsyncIterator[StagePiece]:
            nonlocal held
            async for piece in pieces:
                self.quotas.upload(buyer, len(piece.data))
                held += len(piece.data)
                yield piece

        try:
            await self.psi.upload(buyer, job_id, counted())
            await self.evaluate(job_id)  # a last stage received at another replica than the owner: ask it to match
        except (QuotaExceeded, SpoolFull) as exc:
            # Refused for room, not for what was sent: the job waits, and a retry starts from chunk 0.
            if isinstance(exc, SpoolFull):
                self.quotas.on_refusal("spool_full")
            stage = self.psi.next_stage(job_id)
            if stage:
                self.psi.spool.reset(job_id, stage)
            raise
        finally:
            self.quotas.upload_over(buyer, held)
        return self.view(job_id, buyer)

    def download_set(self, buyer: str, job_id: str, stage: str) -> Iterable[StagePiece]:
        return self.psi.download(buyer, job_id, stage)

    # ----------------------------------------------------------------- parties
    def party_connected(self, party: str, listings: list[Listing], *, organisation: str = "",
                        serial: int = 0, not_after: float = float("inf")) -> None:
        self.book.list_party(party, listings, organisation=organisation, serial=serial, not_after=not_after)
        if self.replicas is not None:
            self.store.set_party_replica(party, self.replicas.name)
            self.replicas.say("parties")
        self.dispatch_open(party)

    def dispatch_open(self, party: str, *, only_new: bool = False) -> None:
        """Offer ``party`` its open tasks (a new stream gets all of them again; ``only_new``: only those
        not yet sent), if its stream is held here."""
        if not getattr(self.dispatcher, "holds", self.dispatcher.is_online)(party):
            return
        for task in self.store.open_tasks_for_party(party):
            if only_new and task.state == TaskState.DISPATCHED:
                continue
            job = self.store.job(task.job_id)
            if job is not None:
                self.kinds[job.kind].dispatch(job, task.task_id, party)

    def revoked(self, is_revoked: Callable[[int], bool]) -> None:
        """The CRL changed: holders whose certificate it revokes leave the catalog and are disconnected;
        their open tasks fail (their stream's end does the rest)."""
        touched: set[str] = set()
        for party in self.book.delist_revoked(is_revoked):
            for task in self.store.open_tasks_for_party(party):
                self.book.forget_sent(task.task_id)
                self.store.set_task_state(task.task_id, TaskState.FAILED, "the holder's certificate was revoked")
                touched.add(task.job_id)
        for job_id in touched:
            self._evaluate_soon(job_id)

    def withdraw(self, party: str, dataset: str, reason: str) -> None:
        """``party``'s ``dataset`` left the catalog (delisted): its open tasks on it end, and their jobs
        go on without it or fail, as their minimum says."""
        touched: set[str] = set()
        for task in self.store.open_tasks_for_party(party):
            job = self.store.job(task.job_id)
            if job is None or self.book.spec(job).dataset != dataset:
                continue
            self.book.forget_sent(task.task_id)
            self.store.set_task_state(task.task_id, TaskState.CANCELLED, reason[:500])
            self.dispatcher.send(party, CancelTask(task.task_id, reason[:500]))
            touched.add(task.job_id)
        for job_id in touched:
            self._evaluate_soon(job_id)

    def expects_answer(self, party: str, task_id: str) -> bool:
        """Whether ``task_id`` is an open task of ``party``'s; if not, the refusal is recorded and the
        party told why (a notice), and nothing it sends for the task should be kept."""
        return self.book.task_for(party, task_id) is not None

    def party_heartbeat(self, party: str) -> None:
        self.store.touch_party(party)

    def party_disconnected(self, party: str) -> None:
        self.store.record("party_disconnected", party=party)
        if self.replicas is not None:
            self.store.set_party_replica(party, "", only_if=self.replicas.name)
            self.replicas.say("parties")
        self.book.parties_changed()
        touched: set[str] = set()
        for task in self.store.open_tasks_for_party(party):
            self.book.forget_sent(task.task_id)
            if task.state == TaskState.DISPATCHED:
                self.store.set_task_state(
                    task.task_id, TaskState.LOST, "holder disconnected before answering; resent if it returns")
                touched.add(task.job_id)
        for job_id in touched:
            self._evaluate_soon(job_id)

    async def contribution(self, party: str, task_id: str, payload: bytes, *, receipt: bytes = b"") -> None:
        job = self.book.task_for(party, task_id)
        if job is None:
            return
        problem = self.book.check_receipt(job, party, receipt, payload)
        if problem is not None:
            self.book.invalid(job, task_id, party, f"invalid contribution: {problem}")
        elif job.kind != aggregate.KIND:
            self.book.invalid(job, task_id, party, f"invalid contribution: a {job.kind} task is answered "
                                                   "with PSI stages, not ciphertexts")
        else:
            if receipt:
                self.store.set_receipt(task_id, receipt)
            await self.aggregate.contribution(job, party, task_id, payload)
        await self.evaluate(job.job_id)

    async def holder_upload(self, party: str, msg: HolderUpload) -> None:
        job = self.book.task_for(party, msg.task_id)
        if job is None:
            return
        if job.kind not in psi.KINDS:
            self.book.invalid(job, msg.task_id, party, "invalid contribution: an aggregation task is answered "
                                                       "with ciphertexts, not PSI stages")
            await self.evaluate(job.job_id)
            return
        if msg.done:
            # The receipt must name, stage by stage, exactly what reached the spool; the buyer checks
            # the stages it downloads against the same receipt.
            problem = self.book.check_receipt(job, party, msg.receipt, None)
            if problem is None and msg.receipt:
                problem = self._check_stages(job, msg.receipt, party)
            if problem is not None:
                self.book.invalid(job, msg.task_id, party, f"invalid PSI answer: {problem}")
                self.book.fail(job, f"{party} sent an invalid PSI answer: {problem}")
                return
            if msg.receipt:
                self.store.set_receipt(msg.task_id, msg.receipt)
        try:
            await self.psi.holder_upload(job, party, msg.task_id, msg)
        except SpoolFull as exc:
            # The holder cannot resume a stage half-way, so the job ends with the reason.
            self.quotas.on_refusal("spool_full")
            self.book.invalid(job, msg.task_id, party, f"the gateway could not keep the PSI answer: {exc.message}")
            self.book.fail(job, f"the gateway could not keep {party}'s PSI answer: {exc.message}")

    def _check_stages(self, job: JobRow, receipt: bytes, party: str = "") -> str | None:
        listed = {s.stage: s.digest for s in common_pb2.ContributionReceipt.FromString(receipt).stages}
        try:
            spooled = self.psi.holder_digests(job, party)
        except OSError as exc:
            return f"its stages cannot be read back: {exc}"
        if listed != spooled:
            differ = sorted(s for s in set(listed) | set(spooled) if listed.get(s) != spooled.get(s))
            return f"the receipt does not match stage(s) {', '.join(differ)} as received"
        return None

    async def refusal(self, party: str, task_id: str, reason: str, *, failed: bool = False, code: str = "") -> None:
        job = self.book.task_for(party, task_id)
        if job is None:
            return
        state = TaskState.FAILED if failed else TaskState.REFUSED
        self.book.forget_sent(task_id)
        self.book.answered(task_id)
        if not failed:
            self.book.observer.refusal(code or "unspecified")
        self.store.set_task_state(task_id, state, reason[:500])
        self.store.record(state.lower(), job_id=job.job_id, task_id=task_id, party=party, detail=reason[:500])
        self.book.notify(job.job_id)
        await self.evaluate(job.job_id)

    # ------------------------------------------------------------- completion
    def _evaluate_soon(self, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self.evaluate(job_id))
        self._background.add(task)  # the loop keeps only weak references
        task.add_done_callback(self._background.discard)

    async def evaluate(self, job_id: str, *, at_deadline: bool = False) -> None:
        """Complete or fail the job if its tasks' answers decide it."""
        job = self.store.job(job_id)
        if job is None or job.state not in ACTIVE_JOB_STATES:
            return
        if self.replicas is not None and job.owner != self.replicas.name:
            if job.owner:  # an unowned job is claimed at some replica's next heartbeat
                self.replicas.say("eval", to=job.owner, job=job_id)
            return
        await self.kinds[job.kind].evaluate(job, self.store.tasks(job_id), at_deadline=at_deadline)

    async def check_deadlines(self) -> None:
        self.expire_results()
        if self.replicas is not None:
            await self._heartbeat()
        now = self.clock()
        for job in self.store.jobs(ACTIVE_JOB_STATES):
            if self.replicas is not None and job.owner != self.replicas.name:
                continue
            if job.deadline <= now:
                await self.evaluate(job.job_id, at_deadline=True)

    async def run_deadlines(self, stop: asyncio.Event, *, every_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                # While a shared store is away nothing is claimed or decided here (the store's
                # watchdog says when it is back); its absence was logged once, not every tick.
                if self.store.available:
                    await self.check_deadlines()
            except Exception:  # keep the loop alive; the next tick retries
                log.exception("deadline check failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except asyncio.TimeoutError:
                pass

    async def recover(self) -> None:
        """After a restart: in-flight tasks are resent, half-finished jobs finish."""
        if self.replicas is not None:
            # Other replicas' tasks are in flight on their streams: only this replica's jobs (and any
            # whose lease lapsed) are picked up; their holders get them again as they reconnect.
            self.replicas.heartbeat()
            mine = [j for j in self.store.jobs(ACTIVE_JOB_STATES) if j.owner == self.replicas.name]
            for job in mine:
                self.quotas.opened(job.buyer, job.job_id)
                await self.kinds[job.kind].recover(job)
            self._refresh_parties()
            for job in mine:
                await self.evaluate(job.job_id)
            return
        resent = self.store.reset_dispatched()
        if resent:
            log.info("restart: %d task(s) will be resent when their holders reconnect", resent)
        for job in self.store.jobs(ACTIVE_JOB_STATES):
            self.quotas.opened(job.buyer, job.job_id)
            await self.kinds[job.kind].recover(job)
        for job in self.store.jobs(ACTIVE_JOB_STATES):
            await self.evaluate(job.job_id)


__all__ = ["Orchestrator"]
