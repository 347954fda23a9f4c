"""The link process: one of B's parties whose answers are jobs at exchange A.

It dials out to B's gateway like a party node (``parties.node``: Register
with listings, heartbeats, tasks in, contributions with signed receipts
out) and answers each aggregate task by running the very same job at A as
one of A's buyers (``links.upstream``). It re-reads A's catalog every
``refresh_seconds`` and registers again when what it can offer changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from pathlib import Path

import grpc

import datawharf
from datawharf.chunking import split
from datawharf.errors import WharfError
from datawharf.grants import statistic_of
from datawharf.messages import CancelTask, Notice, TaskOffer
from datawharf.model import AggregateJob, Listing
from datawharf.pki import digest
from datawharf.serde import contribution_to_proto, listing_to_proto, to_party_from_proto
from datawharf.signing import sign_receipt
from datawharf.tls import aio_channel
from datawharf.v1 import common_pb2, party_pb2, party_pb2_grpc
from links import relay
from links.config import LinkConfig
from links.upstream import (
    GrpcUpstream,
    RemoteCancelled,
    RemoteError,
    RemoteRefused,
    Upstream,
)
from parties.budget import BudgetBook
from parties.grants import GrantBook
from parties.receipts import ReceiptBook
from parties.verify import Checked, JobVerifier, Refused
from protocols.aggregate import Contribution
from protocols.schemes import SchemeError

log = logging.getLogger("datawharf.link")

__all__ = ["LinkNode", "request_id_for"]

# Seconds of a task's deadline at B kept back from A's job, to relay the answer before B gives up.
RELAY_MARGIN_S = 5
MIN_REMOTE_TIMEOUT_S = 5


def request_id_for(job_id: str, task_id: str) -> str:
    """A's request id for B's task: the same on every resend of the task, so A runs it once."""
    return "link-" + hashlib.sha256(f"{job_id}\0{task_id}".encode()).hexdigest()[:40]


class LinkNode:
    def __init__(self, config: LinkConfig, *, upstream: Upstream | None = None,
                 initial_backoff_s: float = 0.5, max_backoff_s: float = 15.0) -> None:
        self.config = config
        self.creds = config.party_credentials()
        self.trust = self.creds.trust(config.party_at.crl)
        # B's buyers are checked exactly as a holder of B checks them, against B's CA.
        self.verifier = JobVerifier(config.name, self.creds, self.trust)
        self.upstream: Upstream = upstream or GrpcUpstream(config.buyer_at, config.buyer_credentials())
        state = config.state_dir or Path(f".wharf-link-{config.name}")
        self.receipts = ReceiptBook(state)
        # B's grants to its buyers for what the link offers: the link's own signed copies.
        self.grants = GrantBook(state)
        self.budget = BudgetBook(state)
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.connected = asyncio.Event()
        self._behind: dict[str, int] = {}      # dataset -> holders at A its answers sum
        self._default_spend: dict[str, float] = {}  # dataset -> rho A's holders charge by default
        self._remote: dict[str, str] = {}      # B's task id -> A's job id
        self._cancelled: set[str] = set()
        self._running = 0

    # ------------------------------------------------------------- listings
    def listings(self) -> list[Listing]:
        """What the link offers at B now, from A's catalog; RemoteFailed when A cannot be asked."""
        wanted = self.config.buyer_at.datasets
        items = {i.dataset: i for i in self.upstream.catalog()}
        if wanted is not None:
            missing = [d for d in wanted if d not in items]
            if missing:
                log.warning("%s does not list %s (it lists %s)", self.upstream.label, ", ".join(missing),
                            ", ".join(sorted(items)) or "nothing")
        out = []
        behind = {}
        for name, item in sorted(items.items()):
            if wanted is not None and name not in wanted:
                continue
            behind[name] = item.contributors()
            out.append(relay.listing_for(name, item.columns, item.approx_rows, item.terms, behind[name],
                                         self.upstream.label))
        self._behind = behind
        self._default_spend = {x.name: x.privacy.default_per_job if x.privacy.dp else 0.0 for x in out}
        return out

    def _default_rho(self, dataset: str) -> float:
        """What A's holders charge a job that names no spend (from the terms the link lists at B)."""
        return self._default_spend.get(dataset, 0.0)

    async def _fresh_listings(self, stop: asyncio.Event) -> list[Listing]:
        """A's catalog as listings, retried until A answers (a link with nothing to offer is no use)."""
        backoff = self.initial_backoff_s
        while True:
            try:
                return await asyncio.to_thread(self.listings)
            except RemoteError as exc:
                log.warning("cannot read the catalog: %s; retrying", exc.reason)
            try:
                await asyncio.wait_for(stop.wait(), timeout=backoff * (0.5 + random.random()))
                return []
            except TimeoutError:
                backoff = min(backoff * 2, self.max_backoff_s)

    # ------------------------------------------------------------- sessions
    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.initial_backoff_s
        listings = await self._fresh_listings(stop)
        while not stop.is_set():
            started = time.monotonic()
            again = asyncio.Event()  # set when A's catalog changed: register anew at once
            refresher = asyncio.create_task(self._refresh(listings, again))
            try:
                await self._session(listings, stop, again)
            except grpc.aio.AioRpcError as exc:
                log.warning("gateway %s: %s: %s", self.config.party_at.gateway, exc.code().name, exc.details())
            except Exception:
                if not stop.is_set():
                    log.exception("link stream failed")
            finally:
                refresher.cancel()
                self.connected.clear()
            if stop.is_set():
                break
            if again.is_set():
                listings = await self._fresh_listings(stop)
                backoff = self.initial_backoff_s
                continue
            if time.monotonic() - started > 30:
                backoff = self.initial_backoff_s
            delay = backoff * (0.5 + random.random())
            log.info("reconnecting to %s in %.1f s", self.config.party_at.gateway, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff_s)
        close = getattr(self.upstream, "close", None)
        if close is not None:
            close()

    async def _refresh(self, registered: list[Listing], again: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_seconds)
            if self._running:
                # Re-registering would drop the tasks in flight; try at the next refresh.
                log.debug("catalog refresh deferred: %d task(s) in flight", self._running)
                continue
            try:
                now = await asyncio.to_thread(self.listings)
            except RemoteError as exc:
                log.warning("cannot refresh the catalog: %s; keeping the current listings", exc.reason)
                continue
            except Exception:  # the refresher must outlive a bad answer, or the listings go stale for good
                log.exception("cannot refresh the catalog; keeping the current listings")
                continue
            if now != registered:
                changed = sorted({x.name for x in now} ^ {x.name for x in registered}
                                 | {x.name for x in now for y in registered if x.name == y.name and x != y})
                log.info("%s's catalog changed (%s); registering anew", self.upstream.label, ", ".join(changed))
                again.set()
                return
            log.debug("catalog unchanged")

    async def _session(self, listings: list[Listing], stop: asyncio.Event, again: asyncio.Event) -> None:
        self.trust.refresh()
        async with aio_channel(self.config.party_at.gateway, self.creds) as channel:
            call = party_pb2_grpc.PartyServiceStub(channel).Connect()
            lock = asyncio.Lock()

            async def send(message: party_pb2.PartyMessage) -> None:
                async with lock:
                    await call.write(message)

            await send(party_pb2.PartyMessage(register=party_pb2.Register(
                datasets=[listing_to_proto(x) for x in listings], software_version=datawharf.__version__)))
            background: set[asyncio.Task[None]] = set()
            enders = {asyncio.create_task(stop.wait()), asyncio.create_task(again.wait())}
            try:
                while True:
                    reader = asyncio.create_task(call.read())
                    done, _ = await asyncio.wait({reader, *enders}, return_when=asyncio.FIRST_COMPLETED)
                    if reader not in done:
                        reader.cancel()
                        call.cancel()
                        return
                    message = reader.result()
                    if message is grpc.aio.EOF:
                        log.warning("gateway closed the stream")
                        return
                    if message.WhichOneof("body") == "registered":
                        self.connected.set()
                        log.info("connected to %s as %s; offering %s from %s", self.config.party_at.gateway,
                                 message.registered.party, ", ".join(x.name for x in listings) or "nothing",
                                 self.upstream.label)
                        hb = asyncio.create_task(self._heartbeats(send, message.registered.heartbeat_seconds))
                        background.add(hb)
                        continue
                    job = await self._handle(send, message)
                    if job is not None:
                        t = asyncio.create_task(job)
                        background.add(t)
                        t.add_done_callback(background.discard)
            finally:
                for t in [*enders, *background]:
                    t.cancel()

    async def _heartbeats(self, send, every_s: int) -> None:  # type: ignore[no-untyped-def]
        while True:
            await asyncio.sleep(max(1, every_s))
            await send(party_pb2.PartyMessage(heartbeat=party_pb2.Heartbeat(sent_at=time.time())))

    async def _handle(self, send, message: party_pb2.GatewayMessage):  # type: ignore[no-untyped-def]
        """The coroutine answering ``message``, if it needs one; refusals are sent here, in order."""
        try:
            incoming = to_party_from_proto(message)
        except Exception as exc:  # noqa: BLE001 - a task this link cannot read fails that task, not the stream
            reason = exc.message if isinstance(exc, WharfError) else str(exc)
            if message.WhichOneof("body") == "task":
                await self._decline(send, message.task.task_id, None, f"cannot read the task: {reason}", "")
            else:
                log.warning("unreadable message from the gateway ignored: %s", reason)
            return None
        if incoming is None:  # the stream's own bookkeeping
            return None
        if isinstance(incoming, CancelTask):
            self._cancel(incoming)
            return None
        if isinstance(incoming, Notice):
            log.warning("gateway notice on %s: %s", incoming.task_id, incoming.message)
            return None
        if not isinstance(incoming, TaskOffer):
            log.warning("PSI data for task %s ignored: this link relays aggregate jobs only", incoming.task_id)
            return None
        self.receipts.add("task", job_id=incoming.job_id, task_id=incoming.task_id, buyer=incoming.buyer,
                          dataset=incoming.spec.dataset)
        try:
            # A modulus proof takes a moment: off the event loop, so heartbeats go on.
            checked = await asyncio.to_thread(self.verifier.check, incoming)
        except Refused as exc:
            await self._decline(send, incoming.task_id, exc.reason, None, exc.code, incoming.job_id)
            return None
        spec = checked.task.spec
        if not isinstance(spec, AggregateJob):
            await self._decline(send, incoming.task_id, f"{self.config.name} relays aggregate jobs only; "
                                "a private set intersection runs against a holder directly",
                                None, "psi_not_allowed", incoming.job_id)
            return None
        behind = self._behind.get(spec.dataset)
        if behind is None:
            await self._decline(send, incoming.task_id, f"{self.upstream.label} no longer lists {spec.dataset!r}",
                                None, "bad_spec", incoming.job_id)
            return None
        why = relay.refusal(spec, behind=behind, asked=_asked(checked), me=self.config.name)
        if why is None:  # only a task the link can relay uses up a grant's job
            why = await asyncio.to_thread(self._policy_refusal, checked, spec)
        if why is not None:
            await self._decline(send, incoming.task_id, why[0], None, why[1], incoming.job_id)
            return None
        return self._answer(send, checked, spec)

    def _policy_refusal(self, checked: Checked, spec: AggregateJob) -> tuple[str, str] | None:
        """(reason, code) unless B's buyer may use the link for this task; a grant it needs is charged."""
        buyer, cfg = checked.task.buyer, self.config
        if "*" not in cfg.allowed_buyers and buyer not in cfg.allowed_buyers:
            return f"buyer {buyer!r} is not granted access to {cfg.name}", "buyer_not_granted"
        if cfg.grants != "required":
            return None
        statistic = statistic_of("aggregate", spec.statistic.value)
        # The spend A's holders will charge: the buyer's, or their default (the strictest terms listed at B).
        rho = spec.rho or self._default_rho(spec.dataset)
        check = self.grants.check(buyer, spec.dataset, statistic, rho, checked.task.job_id, self.budget)
        if not check.allowed:
            return check.reason, check.code
        assert check.grant is not None
        self.receipts.add("grant_used", job_id=checked.task.job_id, task_id=checked.task.task_id,
                          grant=check.grant.id, purpose=check.grant.purpose, buyer=buyer, dataset=spec.dataset,
                          statistic=statistic)
        return None

    def _cancel(self, msg: CancelTask) -> None:
        self._cancelled.add(msg.task_id)
        job = self._remote.get(msg.task_id)
        log.info("task %s cancelled: %s%s", msg.task_id, msg.reason,
                 f"; cancelling job {job} at {self.upstream.label}" if job else "")
        if job is not None:
            asyncio.get_running_loop().run_in_executor(None, self.upstream.cancel, job)

    async def _answer(self, send, checked: Checked, spec: AggregateJob) -> None:  # type: ignore[no-untyped-def]
        task = checked.task
        started = time.perf_counter()
        timeout = max(MIN_REMOTE_TIMEOUT_S, int(task.deadline - time.time()) - RELAY_MARGIN_S)
        self._running += 1
        try:
            def on_job(job_id: str) -> None:
                self._remote[task.task_id] = job_id
                if task.task_id in self._cancelled:  # B cancelled while A was taking the job
                    self.upstream.cancel(job_id)

            try:
                answer = await asyncio.to_thread(
                    self.upstream.run, request_id_for(task.job_id, task.task_id), spec,
                    min_parties=self.config.buyer_at.min_parties, timeout_s=timeout,
                    signed_at=_body(checked).signed_at, on_job=on_job)
                ciphertexts = await asyncio.to_thread(relay.relayed, spec, answer.ciphertexts,
                                                      len(answer.contributors))
                noise = relay.combined_noise(answer.receipts, answer.contributors, len(spec.layout.parts))
            except RemoteCancelled as exc:
                if task.task_id not in self._cancelled:
                    await self._decline(send, task.task_id, None, exc.reason, "", task.job_id)
                return
            except RemoteRefused as exc:
                await self._decline(send, task.task_id, exc.reason, None, "remote_refused", task.job_id)
                return
            except RemoteError as exc:
                await self._decline(send, task.task_id, None, exc.reason, "", task.job_id)
                return
            except (SchemeError, ValueError) as exc:
                await self._decline(send, task.task_id, None,
                                    f"{self.upstream.label}'s result does not fit the job: {exc}", "", task.job_id)
                return
            except Exception as exc:  # B's buyer hears of it now, not at the deadline
                log.exception("task %s: relaying to %s failed", task.task_id, self.upstream.label)
                await self._decline(send, task.task_id, None, f"the link {self.config.name} failed: {exc}", "",
                                    task.job_id)
                return
            if task.task_id in self._cancelled:
                return
            payload = contribution_to_proto(Contribution(tuple(ciphertexts), answer.suppressed)).SerializeToString()
            receipt = sign_receipt(self.creds, checked.body_digest, digest(payload), noise=noise)
            self.receipts.add("contributed", job_id=task.job_id, task_id=task.task_id,
                              remote_job=answer.job_id, remote_contributors=list(answer.contributors),
                              content_digest=digest(payload).hex())
            for piece in split(payload):
                await send(party_pb2.PartyMessage(contribution=party_pb2.ContributionChunk(
                    task_id=task.task_id, chunk=common_pb2.Chunk(seq=piece.seq, data=piece.data, last=piece.last),
                    receipt=receipt.SerializeToString() if piece.last else b"")))
            log.info("task %s (%s %s of %s for %s): relayed job %s at %s (%d holder(s)) in %.2f s",
                     task.task_id, spec.statistic.value, spec.column, spec.dataset, task.buyer, answer.job_id,
                     self.upstream.label, len(answer.contributors), time.perf_counter() - started)
        finally:
            self._running -= 1
            self._remote.pop(task.task_id, None)

    async def _decline(self, send, task_id: str, refusal: str | None, failure: str | None,  # type: ignore[no-untyped-def]
                       code: str, job_id: str = "") -> None:
        self.receipts.add("refused" if refusal is not None else "failed", job_id=job_id, task_id=task_id,
                          reason=refusal if refusal is not None else failure or "unknown")
        if refusal is not None:
            await send(party_pb2.PartyMessage(refusal=party_pb2.TaskRefusal(task_id=task_id, reason=refusal,
                                                                            code=code)))
            log.info("task %s refused: %s", task_id, refusal)
        else:
            await send(party_pb2.PartyMessage(failure=party_pb2.TaskFailure(task_id=task_id,
                                                                            reason=failure or "unknown")))
            log.warning("task %s failed: %s", task_id, failure)


def _body(checked: Checked) -> common_pb2.JobBody:
    """B's buyer's signed job body (verified by then)."""
    return common_pb2.JobBody.FromString(common_pb2.SignedJob.FromString(checked.task.signed).body)


def _asked(checked: Checked) -> list[str]:
    """The holders B's buyer named in its signed job (empty: every holder)."""
    return list(_body(checked).parties) if checked.task.signed else []
