"""Thin gRPC servicers: unpack, call the orchestrator, translate errors.

``translate_errors`` is the one place where domain errors become status
codes: the WharfError's message goes to the caller, anything unexpected is
logged in full and reported as INTERNAL without its detail.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import OrderedDict
from typing import Any, AsyncIterator, Callable

import grpc

from datawharf import signing
from datawharf.chunking import Assembler, ChunkError, Piece, split
from datawharf.messages import StagePiece
from datawharf.model import AggregateJob, PsiJob
from datawharf.errors import ARGUMENT_KEY, InvalidArgument, PermissionDenied, ResourceExhausted, WharfError
from datawharf.identity import Gate
from datawharf.pki import Role, SignatureError
from datawharf.serde import (
    aggregate_from_proto,
    column_to_proto,
    holder_upload_from_proto,
    job_to_proto,
    listing_from_proto,
    piece_from_proto,
    piece_to_proto,
    privacy_to_proto,
    psi_from_proto,
)
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc, common_pb2, party_pb2, party_pb2_grpc
from gateway.dispatch import PartySession, StreamDispatcher
from gateway.jobs import Orchestrator
from gateway.quotas import QuotaExceeded

log = logging.getLogger("datawharf.gateway")

MAX_CONTRIBUTION_BYTES = 16 << 20
# Contributions a stream may have half-sent at once; more is a misbehaving node.
MAX_PARTIAL_CONTRIBUTIONS = 32
# Bytes a stream may have in half-sent contributions: a node answers a few tasks at once
# (its worker pool), each at most MAX_CONTRIBUTION_BYTES.
MAX_STREAM_PENDING_BYTES = 64 << 20
# Answers to tasks a stream was not given (unknown, another holder's, already answered) before the
# gateway ends the stream: a node that keeps sending them is broken or probing.
MAX_REJECTED_ANSWERS = 64
HEARTBEAT_SECONDS = 10


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, WharfError):
        trailing: tuple[tuple[str, str], ...] = ((ARGUMENT_KEY, exc.argument),) if exc.argument else ()
        if isinstance(exc, QuotaExceeded):
            trailing += exc.trailing_metadata()
        await context.abort(exc.code, exc.message, trailing_metadata=trailing)
    log.exception("unexpected error in %s", getattr(context, "_method", "a call"), exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error at the gateway; its log has the detail")


def translate_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in fn(self, request, context):
                    yield item
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:
                await _abort(context, exc)

        return stream

    @functools.wraps(fn)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await _abort(context, exc)

    return unary


class BuyerServicer(buyer_pb2_grpc.BuyerServiceServicer):
    def __init__(self, orchestrator: Orchestrator, gate: Gate) -> None:
        self.orch = orchestrator
        self.gate = gate

    def _buyer(self, context: Any) -> str:
        return self.gate.caller(context, Role.BUYER).name

    @translate_errors
    async def ListCatalog(self, request: buyer_pb2.ListCatalogRequest, context: Any) -> buyer_pb2.ListCatalogResponse:
        self.gate.caller(context, Role.BUYER, Role.OPERATOR)
        return buyer_pb2.ListCatalogResponse(
            datasets=[
                buyer_pb2.CatalogEntry(
                    dataset=e.dataset,
                    holders=e.holders,
                    holders_online=e.holders_online,
                    columns=[column_to_proto(c) for c in e.columns],
                    approx_rows=e.approx_rows,
                    terms=[buyer_pb2.HolderTerms(holder=h, privacy=privacy_to_proto(l.privacy), holders=l.holders)
                           for h, l in sorted(e.listings.items())],
                )
                for e in self.orch.catalog().values()
            ]
        )

    @translate_errors
    async def SubmitJob(self, request: buyer_pb2.SubmitJobRequest, context: Any) -> buyer_pb2.Job:
        caller = self.gate.caller(context, Role.BUYER)
        signed = b""
        if self.gate.trust is not None:
            # The job is what the buyer signed; the request's loose fields are not consulted.
            try:
                if not request.HasField("signed"):
                    raise SignatureError("this gateway accepts only jobs signed by their buyer; "
                                         "submit with a current client and your certificate")
                opened = signing.open_job(request.signed, self.gate.trust)
                if opened.buyer.fingerprint != caller.fingerprint:
                    raise PermissionDenied(f"the job is signed by {opened.buyer.name} but sent by {caller.name}; "
                                           "a buyer submits only its own signed jobs")
            except WharfError:
                self.gate.on_refusal("bad_signature")
                raise
            body = opened.body
            request_id, parties, min_parties, holder = body.nonce, list(body.parties), body.min_parties, body
            signed = request.signed.SerializeToString()
        else:
            request_id, parties, min_parties = request.request_id, list(request.parties), request.min_parties
            holder = request  # type: ignore[assignment]
        kind = holder.WhichOneof("spec")
        if kind == "psi":
            spec: AggregateJob | PsiJob = psi_from_proto(holder.psi)
        elif kind == "aggregate":
            spec = aggregate_from_proto(holder.aggregate)
        else:
            raise InvalidArgument("the request carries no job spec: send an aggregate or a psi spec")
        view = await self.orch.submit(caller.name, request_id, spec, parties=parties, min_parties=min_parties,
                                      timeout_s=request.timeout_seconds, signed=signed)
        return job_to_proto(view)

    @translate_errors
    async def GetJob(self, request: buyer_pb2.GetJobRequest, context: Any) -> buyer_pb2.Job:
        return job_to_proto(self.orch.view(request.job_id, self._buyer(context)))

    @translate_errors
    async def WatchJob(self, request: buyer_pb2.GetJobRequest, context: Any) -> AsyncIterator[buyer_pb2.Job]:
        async for view in self.orch.watch(request.job_id, self._buyer(context)):
            yield job_to_proto(view)

    @translate_errors
    async def CancelJob(self, request: buyer_pb2.GetJobRequest, context: Any) -> buyer_pb2.Job:
        return job_to_proto(await self.orch.cancel(request.job_id, self._buyer(context)))

    @translate_errors
    async def FetchResult(self, request: buyer_pb2.GetJobRequest, context: Any) -> AsyncIterator[common_pb2.Chunk]:
        payload = self.orch.result(request.job_id, self._buyer(context))
        for piece in split(payload):
            yield common_pb2.Chunk(seq=piece.seq, data=piece.data, last=piece.last)


    @translate_errors
    async def PurgeJob(self, request: buyer_pb2.GetJobRequest, context: Any) -> buyer_pb2.DestructionReceipt:
        receipt = self.orch.purge(request.job_id, self._buyer(context))
        return buyer_pb2.DestructionReceipt(**receipt)  # type: ignore[arg-type]

    @translate_errors
    async def GetJobLedger(self, request: buyer_pb2.GetJobRequest, context: Any) -> buyer_pb2.JobLedger:
        return buyer_pb2.JobLedger(entries=self.orch.job_ledger(request.job_id, self._buyer(context)))

    @translate_errors  # a stream-unary behaviour is a coroutine too, so the unary wrapper fits
    async def UploadSet(self, request_iterator: AsyncIterator[buyer_pb2.SetUpload], context: Any) -> buyer_pb2.Job:
        buyer = self._buyer(context)
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.job_id:
            raise InvalidArgument("an upload must start with a chunk naming its job_id")

        async def pieces() -> AsyncIterator[StagePiece]:
            yield piece_from_proto(first.chunk)
            async for msg in request_iterator:
                yield piece_from_proto(msg.chunk)

        return job_to_proto(await self.orch.upload_set(buyer, first.job_id, pieces()))

    @translate_errors
    async def DownloadSet(self, request: buyer_pb2.DownloadSetRequest, context: Any
                          ) -> AsyncIterator[common_pb2.SetChunk]:
        for piece in self.orch.download_set(self._buyer(context), request.job_id, request.stage):
            yield piece_to_proto(piece)


class _Inbox:
    """One party stream's half-sent contributions, held under the stream's limits."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.pending: dict[str, Assembler] = {}
        # Answers refused at their first chunk: their later chunks are dropped without a word,
        # so one bad answer costs one notice, not one per chunk.
        self.dropped: OrderedDict[str, None] = OrderedDict()
        self.rejected = 0

    def held(self) -> int:
        return sum(a.size for a in self.pending.values())

    def drop(self, task_id: str) -> None:
        self.pending.pop(task_id, None)
        self.dropped[task_id] = None
        while len(self.dropped) > 4 * MAX_REJECTED_ANSWERS:
            self.dropped.popitem(last=False)


class PartyServicer(party_pb2_grpc.PartyServiceServicer):
    def __init__(self, orchestrator: Orchestrator, dispatcher: StreamDispatcher, gate: Gate, *,
                 max_stream_bytes: int = MAX_STREAM_PENDING_BYTES) -> None:
        self.orch = orchestrator
        self.dispatcher = dispatcher
        self.gate = gate
        self.max_stream_bytes = max_stream_bytes

    @translate_errors
    async def Connect(
        self, request_iterator: AsyncIterator[party_pb2.PartyMessage], context: Any
    ) -> AsyncIterator[party_pb2.GatewayMessage]:
        who = self.gate.caller(context, Role.PARTY)
        party = who.name
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("body") != "register":
            raise InvalidArgument("a party stream must begin with a Register message")
        listings = [listing_from_proto(d) for d in first.register.datasets]
        session = self.dispatcher.attach(party)
        try:
            self.orch.party_connected(party, listings, organisation=who.organisation, serial=who.serial,
                                      not_after=who.not_after)
        except Exception:
            self.dispatcher.detach(session)
            raise
        log.info("party %s connected with %d dataset(s)", party, len(first.register.datasets))
        reader = asyncio.create_task(self._read(party, session, request_iterator))
        reader.add_done_callback(lambda _: session.close())
        try:
            yield party_pb2.GatewayMessage(
                registered=party_pb2.Registered(party=party, heartbeat_seconds=HEARTBEAT_SECONDS)
            )
            while True:
                message = await session.outbox.get()
                if message is None:
                    break
                yield message
            if session.error is not None:
                raise session.error
        finally:
            reader.cancel()
            if self.dispatcher.detach(session):
                self.orch.party_disconnected(party)
                log.info("party %s disconnected", party)

    async def _read(self, party: str, session: PartySession, messages: AsyncIterator[party_pb2.PartyMessage]
                    ) -> None:
        inbox = _Inbox(self.max_stream_bytes)
        try:
            async for msg in messages:
                kind = msg.WhichOneof("body")
                if kind == "heartbeat":
                    self.orch.party_heartbeat(party)
                elif kind == "contribution":
                    await self._piece(party, inbox, msg.contribution)
                elif kind == "refusal":
                    if self._expected(party, inbox, msg.refusal.task_id):
                        await self.orch.refusal(party, msg.refusal.task_id, msg.refusal.reason,
                                                code=msg.refusal.code)
                elif kind == "failure":
                    if self._expected(party, inbox, msg.failure.task_id):
                        await self.orch.refusal(party, msg.failure.task_id, msg.failure.reason, failed=True)
                elif kind == "psi":
                    if self._expected(party, inbox, msg.psi.task_id):
                        await self.orch.holder_upload(party, holder_upload_from_proto(msg.psi))
                else:
                    log.warning("party %s sent an unexpected %s message; ignored", party, kind)
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        except WharfError as exc:  # the stream broke a limit: Connect ends it with this status
            log.warning("party %s: %s", party, exc.message)
            session.error = exc
        except (grpc.aio.UsageError, asyncio.InvalidStateError, ConnectionError) as exc:
            log.warning("party %s stream closed: %s", party, exc)  # a stream torn down mid-read
        except Exception:
            log.exception("party %s stream failed", party)

    def _expected(self, party: str, inbox: _Inbox, task_id: str) -> bool:
        """Whether ``task_id`` is an open task of this party's. Each answer to one that is not costs
        the gateway a record and a notice, so a stream gets only so many before it is closed."""
        if self.orch.expects_answer(party, task_id):
            return True
        inbox.rejected += 1
        if inbox.rejected > MAX_REJECTED_ANSWERS:
            raise ResourceExhausted(
                f"{party} sent answers to {inbox.rejected} tasks it was not given or had already answered; "
                "the gateway closed the stream. Answer only the tasks offered on the current stream, once each")
        return False

    async def _fail_piece(self, party: str, inbox: _Inbox, task_id: str, reason: str, limit: str = "") -> None:
        inbox.drop(task_id)
        if limit:
            self.orch.quotas.on_refusal(limit)
        await self.orch.refusal(party, task_id, f"invalid contribution: {reason}", failed=True)

    async def _piece(self, party: str, inbox: _Inbox, msg: party_pb2.ContributionChunk) -> None:
        task_id = msg.task_id
        assembler = inbox.pending.get(task_id)
        if assembler is None:
            if task_id in inbox.dropped:
                return
            # Checked on the first chunk, before a byte is kept: an answer to a task this holder
            # was not given, or has answered, is refused at once (the holder gets a notice).
            if not self._expected(party, inbox, task_id):
                inbox.drop(task_id)
                return
            if len(inbox.pending) >= MAX_PARTIAL_CONTRIBUTIONS:
                await self._fail_piece(party, inbox, task_id, f"more than {MAX_PARTIAL_CONTRIBUTIONS} "
                                       "contributions half-sent at once", "contributions_half_sent")
                return
            assembler = inbox.pending[task_id] = Assembler(MAX_CONTRIBUTION_BYTES)
        if inbox.held() + len(msg.chunk.data) > inbox.max_bytes:
            await self._fail_piece(
                party, inbox, task_id, f"more than {inbox.max_bytes} bytes of contributions half-sent on one "
                "stream; send each contribution whole before the next", "contribution_bytes")
            return
        try:
            payload = assembler.add(Piece(msg.chunk.seq, msg.chunk.data, msg.chunk.last))
        except ChunkError as exc:
            await self._fail_piece(party, inbox, task_id, str(exc))
            return
        if payload is not None:
            inbox.pending.pop(task_id, None)
            await self.orch.contribution(party, task_id, payload, receipt=msg.receipt)
