"""The party node: dials out to the gateway, holds one stream, answers tasks.

No port is opened at the holder. The node reconnects with capped,
jittered exponential backoff whenever the gateway goes away.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import shutil
import tempfile
import sqlite3
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Awaitable, Iterable, Iterator

import grpc

import datawharf
from datawharf.chunking import Assembler, ChunkError, Piece, item_chunk_bytes, split, split_items
from datawharf.errors import WharfError
from datawharf.messages import CancelTask, HolderUpload, Notice, SetForHolder, StagePiece, TaskOffer
from datawharf.model import AggregateJob, PsiJob
from datawharf.identity import caller_metadata
from datawharf.pki import digest
from datawharf.serde import holder_upload_to_proto, listing_to_proto, to_party_from_proto
from datawharf.grants import statistic_of
from datawharf.signing import sign_receipt, stages_digest
from datawharf.tls import aio_channel
from datawharf.v1 import common_pb2, party_pb2, party_pb2_grpc
from parties.budget import BudgetBook
from parties.compute import open_executor
from parties.config import PartyConfig
from parties.grants import GrantBook
from parties.psi_runner import PsiRunner
from parties.receipts import ReceiptBook
from parties.runner import Runner
from parties.verify import Checked, JobVerifier, Refused
from protocols import psi
from protocols.psi_stages import Stage, item_bytes

log = logging.getLogger("datawharf.party")


def _backend_failures(parts: Iterable[list[bytes]]) -> Iterator[list[bytes]]:
    """The executor's results; its own failures (a lost Dask worker or scheduler, a broken pool)
    become a PsiError, so the task fails with a reason instead of going unanswered. The detail,
    which names this holder's machines, stays in its log."""
    try:
        yield from parts
    except psi.PsiError:
        raise
    except Exception as exc:
        log.error("compute backend failed: %s: %s", type(exc).__name__, exc)
        raise psi.PsiError("this holder's compute backend failed; try again") from None


def _stage_pieces(data: bytes | Path, item: int) -> Iterator[tuple[int, bytes, bool]]:
    """(seq, piece, last) of a stage held as bytes or in a file, whole items each."""
    if isinstance(data, bytes):
        pieces = split_items(data, item)
        for seq, piece in enumerate(pieces):
            yield seq, piece, seq == len(pieces) - 1
        return
    size = data.stat().st_size
    step = item_chunk_bytes(item)
    with open(data, "rb") as f:
        seq, sent = 0, 0
        while True:
            piece = f.read(step)
            sent += len(piece)
            yield seq, piece, sent >= size
            seq += 1
            if sent >= size:
                return


class _IncomingSet:
    """A PSI task's stage A as it arrives: order, whole points and the announced size checked by an
    Assembler that keeps nothing; the bytes go to a file in a folder of their own, hashed on the way."""

    def __init__(self, checked: Checked, root: Path) -> None:
        assert isinstance(checked.task.spec, PsiJob)
        self.checked = checked
        root.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="task-", dir=root))
        self.path = self.folder / "A"
        self._file = open(self.path, "wb")
        self._hash = hashlib.sha256()
        limit = checked.task.spec.buyer_set_size * item_bytes(Stage.A)
        self._assembler = Assembler(limit, item=item_bytes(Stage.A), keep=False)

    def add(self, piece: Piece) -> bool:
        """True once the last piece is in."""
        done = self._assembler.add(piece) is not None
        self._file.write(piece.data)
        self._hash.update(piece.data)
        if done:
            self._file.close()
        return done

    def digest(self) -> bytes:
        return self._hash.digest()

    def discard(self) -> None:
        self._file.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class PartyNode:
    def __init__(
        self,
        config: PartyConfig,
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 15.0,
        workers: int = 2,
    ) -> None:
        self.config = config
        self.creds = config.credentials()
        trust = self.creds.trust(config.crl) if self.creds is not None else None
        self.verifier = JobVerifier(config.name, self.creds, trust)
        self.budget = BudgetBook(config.state_dir or Path(".wharf-state"))
        self.grants = GrantBook(config.state_dir or Path(".wharf-state"))
        self.runner = Runner(config, budget=self.budget)
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self._workers = asyncio.Semaphore(workers)
        self._cancelled: set[str] = set()
        self.connected = asyncio.Event()
        # A PSI task's stage A as it arrives: checked, hashed and written to a file, never whole in memory.
        self._psi_sets: dict[str, _IncomingSet] = {}
        # Heavy work's executor (config.compute), opened by run(): a process pool or a Dask cluster.
        self._pool: Executor | None = None
        self.receipts = ReceiptBook(config.state_dir or Path(".wharf-state"))
        self._job_of: dict[str, str] = {}
        self.psi_runner = PsiRunner(config, self.runner.sources, config.state_dir or Path(".wharf-state"),
                                    mapper=self._mapper, budget=self.budget,
                                    on_destroyed=lambda **fields: self.receipts.add("destroyed", **fields))

    def _mapper(self, fn, chunks):  # type: ignore[no-untyped-def]
        # Scalar multiplications on every core, or on the Dask cluster; one chunk is not worth the trip.
        if len(chunks) < 2 or self._pool is None:
            return map(fn, chunks)
        return _backend_failures(psi.PoolMapper(self._pool)(fn, chunks))

    async def run(self, stop: asyncio.Event) -> None:
        listings = self.runner.listings()  # fail fast on a broken data file
        shutil.rmtree(self._work_root(), ignore_errors=True)  # PSI sets an earlier run left half-answered
        backoff = self.initial_backoff_s
        # Fail fast on an unreachable Dask scheduler too; connecting blocks, so off the event loop.
        self._pool, close = await asyncio.to_thread(open_executor, self.config.compute)
        try:
            await self._run(listings, stop, backoff)
        finally:
            self._pool = None
            await asyncio.to_thread(close)

    async def _run(self, listings: list, stop: asyncio.Event, backoff: float) -> None:  # type: ignore[type-arg]
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._session(listings, stop)
            except grpc.aio.AioRpcError as exc:
                log.warning("gateway %s: %s: %s", self.config.gateway, exc.code().name, exc.details())
            except Exception:
                if stop.is_set():  # the stream broke because we are shutting down
                    log.debug("party stream closed during shutdown", exc_info=True)
                else:
                    log.exception("party stream failed")
            finally:
                self.connected.clear()
            if stop.is_set():
                break
            for incoming_set in self._psi_sets.values():
                incoming_set.discard()
            self._psi_sets.clear()
            if time.monotonic() - started > 30:
                backoff = self.initial_backoff_s  # the last session was healthy
            delay = backoff * (0.5 + random.random())
            log.info("reconnecting to %s in %.1f s", self.config.gateway, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _session(self, listings: list, stop: asyncio.Event) -> None:
        if self.verifier.trust is not None:
            self.verifier.trust.refresh()
        async with aio_channel(self.config.gateway, self.creds, insecure=self.config.insecure) as channel:
            stub = party_pb2_grpc.PartyServiceStub(channel)
            call = stub.Connect(metadata=caller_metadata(self.config.name) if self.creds is None else ())
            write_lock = asyncio.Lock()

            async def send(message: party_pb2.PartyMessage) -> None:
                async with write_lock:
                    await call.write(message)

            await send(
                party_pb2.PartyMessage(
                    register=party_pb2.Register(
                        datasets=[listing_to_proto(x) for x in listings],
                        software_version=datawharf.__version__,
                    )
                )
            )
            background: set[asyncio.Task[None]] = set()
            stopper = asyncio.create_task(stop.wait())
            try:
                while True:
                    reader = asyncio.create_task(call.read())
                    done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if stopper in done:
                        reader.cancel()
                        call.cancel()
                        return
                    message = reader.result()
                    if message is grpc.aio.EOF:
                        log.warning("gateway closed the stream")
                        return
                    if message.WhichOneof("body") == "registered":
                        self.connected.set()
                        log.info(
                            "connected to %s as %s; listing %s",
                            self.config.gateway, message.registered.party,
                            ", ".join(x.name for x in listings),
                        )
                        hb = asyncio.create_task(self._heartbeats(send, message.registered.heartbeat_seconds))
                        background.add(hb)
                        continue
                    try:
                        incoming = to_party_from_proto(message)
                    except Exception as exc:  # a spec this node cannot read fails its task, nothing else
                        reason = exc.message if isinstance(exc, WharfError) else str(exc)
                        if message.WhichOneof("body") == "task":
                            await self._decline(send, message.task.task_id, None,
                                                f"cannot read the task: {reason}", "")
                        else:
                            log.warning("unreadable message from the gateway ignored: %s", reason)
                        continue
                    job: Awaitable[None] | None = None
                    checked: Checked | None = None
                    if isinstance(incoming, TaskOffer):
                        self._witness(incoming)
                        try:
                            # A modulus proof takes up to a few hundred ms: off the event loop, so
                            # heartbeats go on; messages are still taken in order.
                            checked = await asyncio.to_thread(self.verifier.check, incoming)
                        except Refused as exc:
                            await self._decline(send, incoming.task_id, exc.reason, None, exc.code)
                        if checked is not None:
                            refusal = await asyncio.to_thread(self._grant_refusal, checked)
                            if refusal is not None:
                                await self._decline(send, incoming.task_id, refusal[0], None, refusal[1])
                                checked = None
                    if checked is not None and isinstance(checked.task.spec, PsiJob):
                        old = self._psi_sets.pop(checked.task.task_id, None)
                        if old is not None:
                            old.discard()
                        self._psi_sets[checked.task.task_id] = _IncomingSet(checked, self._work_root())
                    elif checked is not None:
                        job = self._answer(send, checked)
                    elif isinstance(incoming, SetForHolder):
                        try:
                            ready = self._psi_piece(incoming)
                        except Refused as exc:
                            await self._decline(send, incoming.task_id, exc.reason, None, exc.code)
                            ready = None
                        if ready is not None:
                            job = self._answer_psi(send, *ready)
                    elif isinstance(incoming, CancelTask):
                        self._cancelled.add(incoming.task_id)
                        log.info("task %s cancelled: %s", incoming.task_id, incoming.reason)
                    elif isinstance(incoming, Notice):
                        log.warning("gateway notice on %s: %s", incoming.task_id, incoming.message)
                    if job is not None:
                        t = asyncio.create_task(job)
                        background.add(t)
                        t.add_done_callback(background.discard)
            finally:
                stopper.cancel()
                for t in background:
                    t.cancel()

    async def _heartbeats(self, send, every_s: int) -> None:  # type: ignore[no-untyped-def]
        while True:
            await asyncio.sleep(max(1, every_s))
            await send(party_pb2.PartyMessage(heartbeat=party_pb2.Heartbeat(sent_at=time.time())))

    def _receipt(self, checked: Checked, content_digest: bytes, stages: dict[str, bytes] | None = None,
                 noise: common_pb2.NoiseDeclaration | None = None) -> bytes:
        if self.creds is None or not checked.body_digest:
            # Unsigned (an --insecure exchange checks no receipts), but the buyer still learns the noise.
            if noise is None:
                return b""
            return common_pb2.ContributionReceipt(party=self.config.name, noise=noise).SerializeToString()
        return sign_receipt(self.creds, checked.body_digest, content_digest, stages=stages,
                            noise=noise).SerializeToString()

    async def _answer(self, send, checked: Checked) -> None:  # type: ignore[no-untyped-def]
        task = checked.task
        job = task.spec
        assert isinstance(job, AggregateJob)
        async with self._workers:
            started = time.perf_counter()
            answer = await asyncio.to_thread(self.runner.run, task.buyer, job, task.min_parties,
                                           task.job_id)
            elapsed = time.perf_counter() - started
        if task.task_id in self._cancelled:
            return
        if answer.payload is not None:
            receipt = self._receipt(checked, digest(answer.payload), noise=answer.noise)
            self.receipts.add("contributed", job_id=task.job_id, task_id=task.task_id,
                              content_digest=digest(answer.payload).hex())
            for piece in split(answer.payload):
                await send(
                    party_pb2.PartyMessage(
                        contribution=party_pb2.ContributionChunk(
                            task_id=task.task_id,
                            chunk=common_pb2.Chunk(seq=piece.seq, data=piece.data, last=piece.last),
                            receipt=receipt if piece.last else b"",
                        )
                    )
                )
            log.info("task %s (%s %s of %s for %s): contributed in %.2f s",
                     task.task_id, job.statistic.value, job.column, job.dataset, task.buyer, elapsed)
        else:
            await self._decline(send, task.task_id, answer.refusal, answer.failure, answer.code)

    def _grant_refusal(self, checked: Checked) -> tuple[str, str] | None:
        """(reason, code) when the dataset needs a grant and none of this buyer's allows the task;
        else None, with a job (and its privacy spend) charged to the grant that allows it."""
        task, spec = checked.task, checked.task.spec
        dataset = next((d for d in self.config.datasets if d.name == spec.dataset), None)
        if dataset is None or dataset.policy.grants != "required":
            return None
        if isinstance(spec, AggregateJob):
            statistic, rho = statistic_of("aggregate", spec.statistic.value), spec.rho
        else:
            statistic, rho = statistic_of(spec.kind, cardinality_only=spec.cardinality_only), spec.rho
        dp = dataset.policy.dp
        rho = (rho or dp.default_per_job) if dp.enabled else 0.0
        try:
            check = self.grants.check(task.buyer, dataset.name, statistic, rho, task.job_id, self.budget)
        except sqlite3.Error as exc:  # the holder's own state: fail this task, keep the stream
            log.error("grant check for task %s failed: %s", task.task_id, exc)
            return f"this holder could not read its grants ({type(exc).__name__}); try again", "grant"
        if not check.allowed:
            return check.reason, check.code
        assert check.grant is not None
        # The purpose travels with every job run under the grant, in the holder's own record.
        self.receipts.add("grant_used", job_id=task.job_id, task_id=task.task_id, grant=check.grant.id,
                          purpose=check.grant.purpose, buyer=task.buyer, dataset=dataset.name, statistic=statistic)
        return None

    def _witness(self, task: TaskOffer) -> None:
        """Keep the task and the ledger head the gateway stated for it, before anything else."""
        self._job_of[task.task_id] = task.job_id
        spec = task.spec
        what = spec.statistic.value if isinstance(spec, AggregateJob) else spec.kind
        head = {"seq": task.head[0], "hash": task.head[1], "signature": task.head[2]} if task.head else None
        self.receipts.add("task", job_id=task.job_id, task_id=task.task_id, buyer=task.buyer,
                          dataset=spec.dataset, what=what, head=head)

    async def _decline(self, send, task_id: str, refusal: str | None, failure: str | None,  # type: ignore[no-untyped-def]
                       code: str) -> None:
        self.receipts.add("refused" if refusal is not None else "failed", job_id=self._job_of.get(task_id, ""),
                          task_id=task_id, reason=refusal if refusal is not None else failure or "unknown")
        if refusal is not None:
            await send(party_pb2.PartyMessage(refusal=party_pb2.TaskRefusal(task_id=task_id, reason=refusal,
                                                                            code=code)))
            log.info("task %s refused: %s", task_id, refusal)
        else:
            await send(party_pb2.PartyMessage(failure=party_pb2.TaskFailure(task_id=task_id,
                                                                            reason=failure or "unknown")))
            log.warning("task %s failed: %s", task_id, failure)

    def _work_root(self) -> Path:
        return (self.config.state_dir or Path(".wharf-state")) / "psi-work" / self.config.name

    def _psi_piece(self, msg: SetForHolder) -> tuple[Checked, Path] | None:
        """The buyer's set once whole, as its file (None before); Refused if it is not the set the buyer
        signed (its digest is taken as the pieces arrive)."""
        entry = self._psi_sets.get(msg.task_id)
        if entry is None:
            log.warning("PSI data for unknown task %s ignored", msg.task_id)
            return None
        try:
            if msg.piece.stage != Stage.A:
                raise ChunkError(f"stage {msg.piece.stage!r} is not the buyer's set")
            done = entry.add(Piece(msg.piece.seq, msg.piece.data, msg.piece.last))
        except ChunkError as exc:
            log.warning("task %s: malformed PSI data (%s); waiting for the task to be resent", msg.task_id, exc)
            self._psi_sets.pop(msg.task_id, None)
            entry.discard()
            return None
        if not done:
            return None
        self._psi_sets.pop(msg.task_id, None)
        try:
            entry.checked.check_set_digest(entry.digest())
        except Refused:
            entry.discard()
            raise
        return entry.checked, entry.path

    async def _answer_psi(self, send, checked: Checked, a_path: Path) -> None:  # type: ignore[no-untyped-def]
        try:
            await self._answer_psi_files(send, checked, a_path)
        finally:
            shutil.rmtree(a_path.parent, ignore_errors=True)  # A, and the D and W answered from it

    async def _answer_psi_files(self, send, checked: Checked, a_path: Path) -> None:  # type: ignore[no-untyped-def]
        task = checked.task
        points = a_path.stat().st_size // item_bytes(Stage.A)
        started = time.perf_counter()
        spec = task.spec
        assert isinstance(spec, PsiJob)
        async with self._workers:
            answer = await asyncio.to_thread(self.psi_runner.run, task.buyer, spec, a_path,
                                             job_id=task.job_id, cached_tables=list(task.cached_tables))
        if task.task_id in self._cancelled:
            return
        if answer.refusal is not None or answer.failure is not None:
            await self._decline(send, task.task_id, answer.refusal, answer.failure, answer.code)
            return
        digests: dict[str, bytes] = {}
        for stage, data in answer.stages.items():
            # A stage in a file goes up chunk by chunk, hashed on the way (the receipt signs its digest).
            h = hashlib.sha256()
            for seq, piece, last in _stage_pieces(data, item_bytes(stage)):
                h.update(piece)
                upload = HolderUpload(task.task_id, StagePiece(stage, seq, piece, last))
                await send(party_pb2.PartyMessage(psi=holder_upload_to_proto(upload)))
            digests[str(stage)] = h.digest()
        self.receipts.add("contributed", job_id=task.job_id, task_id=task.task_id,
                          content_digest=stages_digest(digests).hex())
        receipt = self._receipt(checked, stages_digest(digests), digests)
        done = HolderUpload(task.task_id, done=True, min_intersection=answer.min_intersection,
                            table_epoch=answer.table_epoch, receipt=receipt)
        await send(party_pb2.PartyMessage(psi=holder_upload_to_proto(done)))
        log.info("task %s (%s on %s for %s): answered %d points in %.2f s",
                 task.task_id, spec.kind, spec.dataset, task.buyer, points, time.perf_counter() - started)
