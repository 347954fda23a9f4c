"""The party node: dials out to the gateway, holds one stream, answers tasks.

No port is opened at the holder. The node reconnects with capped,
jittered exponential backoff whenever the gateway goes away.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import grpc

import datawharf
from datawharf.chunking import split, split_items
from parties.config import PartyConfig
from datawharf.grpc_options import client_options
from datawharf.identity import caller_metadata
from datawharf.serde import PSI_ITEM_BYTES, aggregate_from_proto, listing_to_proto, psi_from_proto
from datawharf.v1 import common_pb2, party_pb2, party_pb2_grpc
from parties.psi_runner import PsiAnswer, PsiRunner
from parties.runner import Answer, Runner
from protocols import psi

log = logging.getLogger("datawharf.party")


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
        self.runner = Runner(config)
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self._workers = asyncio.Semaphore(workers)
        self._cancelled: set[str] = set()
        self.connected = asyncio.Event()
        self._psi_sets: dict[str, tuple[party_pb2.Task, list[bytes]]] = {}
        self._pool: ProcessPoolExecutor | None = None
        self.psi_runner = PsiRunner(config, self.runner.sources, config.state_dir or Path(".wharf-state"),
                                    mapper=self._mapper)

    def _mapper(self, fn, chunks):  # type: ignore[no-untyped-def]
        # Scalar multiplications on every core; spawned (not forked) workers,
        # since forking a process that runs gRPC threads is unsafe.
        if len(chunks) < 2:
            return map(fn, chunks)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 1,
                                             mp_context=multiprocessing.get_context("spawn"))
        return psi.PoolMapper(self._pool)(fn, chunks)

    async def run(self, stop: asyncio.Event) -> None:
        listings = self.runner.listings()  # fail fast on a broken data file
        backoff = self.initial_backoff_s
        try:
            await self._run(listings, stop, backoff)
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)

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
        async with grpc.aio.insecure_channel(self.config.gateway, options=client_options()) as channel:
            stub = party_pb2_grpc.PartyServiceStub(channel)
            call = stub.Connect(metadata=caller_metadata(self.config.name))
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
                    kind = message.WhichOneof("body")
                    if kind == "registered":
                        self.connected.set()
                        log.info(
                            "connected to %s as %s; listing %s",
                            self.config.gateway, message.registered.party,
                            ", ".join(x.name for x in listings),
                        )
                        hb = asyncio.create_task(self._heartbeats(send, message.registered.heartbeat_seconds))
                        background.add(hb)
                    elif kind == "task" and message.task.WhichOneof("spec") == "psi":
                        self._psi_sets[message.task.task_id] = (message.task, [])
                    elif kind == "task":
                        t = asyncio.create_task(self._answer(send, message.task))
                        background.add(t)
                        t.add_done_callback(background.discard)
                    elif kind == "psi":
                        ready = self._psi_piece(message.psi)
                        if ready is not None:
                            t = asyncio.create_task(self._answer_psi(send, *ready))
                            background.add(t)
                            t.add_done_callback(background.discard)
                    elif kind == "cancel":
                        self._cancelled.add(message.cancel.task_id)
                        log.info("task %s cancelled: %s", message.cancel.task_id, message.cancel.reason)
                    elif kind == "notice":
                        log.warning("gateway notice on %s: %s", message.notice.task_id, message.notice.message)
            finally:
                stopper.cancel()
                for t in background:
                    t.cancel()

    async def _heartbeats(self, send, every_s: int) -> None:  # type: ignore[no-untyped-def]
        while True:
            await asyncio.sleep(max(1, every_s))
            await send(party_pb2.PartyMessage(heartbeat=party_pb2.Heartbeat(sent_at=time.time())))

    async def _answer(self, send, task: party_pb2.Task) -> None:  # type: ignore[no-untyped-def]
        try:
            job = aggregate_from_proto(task.aggregate)
        except Exception as exc:
            answer = Answer(failure=f"cannot read the task: {exc}")
        else:
            async with self._workers:
                started = time.perf_counter()
                answer = await asyncio.to_thread(self.runner.run, task.buyer, job, task.min_parties)
                elapsed = time.perf_counter() - started
        if task.task_id in self._cancelled:
            return
        if answer.payload is not None:
            for piece in split(answer.payload):
                await send(
                    party_pb2.PartyMessage(
                        contribution=party_pb2.ContributionChunk(
                            task_id=task.task_id,
                            chunk=common_pb2.Chunk(seq=piece.seq, data=piece.data, last=piece.last),
                        )
                    )
                )
            log.info("task %s (%s %s of %s for %s): contributed in %.2f s",
                     task.task_id, job.statistic.value, job.column, job.dataset, task.buyer, elapsed)
        elif answer.refusal is not None:
            await send(party_pb2.PartyMessage(refusal=party_pb2.TaskRefusal(
                task_id=task.task_id, reason=answer.refusal, code=answer.code)))
            log.info("task %s refused: %s", task.task_id, answer.refusal)
        else:
            await send(
                party_pb2.PartyMessage(failure=party_pb2.TaskFailure(task_id=task.task_id, reason=answer.failure or "unknown"))
            )
            log.warning("task %s failed: %s", task.task_id, answer.failure)

    def _psi_piece(self, msg: party_pb2.PsiDownload) -> tuple[party_pb2.Task, list[bytes]] | None:
        entry = self._psi_sets.get(msg.task_id)
        if entry is None:
            log.warning("PSI data for unknown task %s ignored", msg.task_id)
            return None
        task, parts = entry
        point = PSI_ITEM_BYTES["A"]
        if msg.chunk.seq != len(parts) or len(msg.chunk.data) % point:
            log.warning("task %s: malformed PSI chunk %d; waiting for the task to be resent", msg.task_id, msg.chunk.seq)
            self._psi_sets.pop(msg.task_id, None)
            return None
        parts.append(msg.chunk.data)
        if not msg.chunk.last:
            return None
        self._psi_sets.pop(msg.task_id, None)
        data = b"".join(parts)
        return task, [data[i:i + point] for i in range(0, len(data), point)]

    async def _answer_psi(self, send, task: party_pb2.Task, points: list[bytes]) -> None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            spec = psi_from_proto(task.psi)
        except Exception as exc:
            answer = PsiAnswer(failure=f"cannot read the task: {exc}")
        else:
            async with self._workers:
                answer = await asyncio.to_thread(self.psi_runner.run, task.buyer, spec, points,
                                                 job_id=task.job_id, cached_tables=list(task.cached_tables))
        if task.task_id in self._cancelled:
            return
        if answer.refusal is not None:
            await send(party_pb2.PartyMessage(refusal=party_pb2.TaskRefusal(
                task_id=task.task_id, reason=answer.refusal, code=answer.code)))
            log.info("task %s refused: %s", task.task_id, answer.refusal)
            return
        if answer.failure is not None:
            await send(party_pb2.PartyMessage(failure=party_pb2.TaskFailure(task_id=task.task_id, reason=answer.failure)))
            log.warning("task %s failed: %s", task.task_id, answer.failure)
            return
        for stage, data in answer.stages.items():
            pieces = split_items(data, PSI_ITEM_BYTES[stage])
            for seq, piece in enumerate(pieces):
                await send(party_pb2.PartyMessage(psi=party_pb2.PsiUpload(
                    task_id=task.task_id,
                    chunk=common_pb2.SetChunk(stage=stage, seq=seq, data=piece, last=seq == len(pieces) - 1))))
        await send(party_pb2.PartyMessage(psi=party_pb2.PsiUpload(
            task_id=task.task_id, done=True, min_intersection=answer.min_intersection, table_epoch=answer.table_epoch)))
        log.info("task %s (%s on %s for %s): answered %d points in %.2f s",
                 task.task_id, spec.kind, spec.dataset, task.buyer, len(points), time.perf_counter() - started)
