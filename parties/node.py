"""The party node: dials out to the gateway, holds one stream, answers tasks.

No port is opened at the holder. The node reconnects with capped,
jittered exponential backoff whenever the gateway goes away.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import grpc

import datawharf
from datawharf.chunking import split
from datawharf.config import PartyConfig
from datawharf.grpc_options import client_options
from datawharf.identity import caller_metadata
from datawharf.serde import aggregate_from_proto, listing_to_proto
from datawharf.v1 import common_pb2, party_pb2, party_pb2_grpc
from parties.runner import Answer, Runner

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

    async def run(self, stop: asyncio.Event) -> None:
        listings = self.runner.listings()  # fail fast on a broken data file
        backoff = self.initial_backoff_s
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._session(listings, stop)
            except grpc.aio.AioRpcError as exc:
                log.warning("gateway %s: %s: %s", self.config.gateway, exc.code().name, exc.details())
            except Exception:
                log.exception("party stream failed")
            finally:
                self.connected.clear()
            if stop.is_set():
                break
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
                    elif kind == "task":
                        t = asyncio.create_task(self._answer(send, message.task))
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
