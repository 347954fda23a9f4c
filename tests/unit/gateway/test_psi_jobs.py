"""PSI jobs through the in-memory seam: the protocol roles play buyer and holder, no sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from datawharf.chunking import split_items
from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from datawharf.messages import HolderUpload, SetForHolder, StagePiece
from datawharf.model import ColumnKind, ColumnSpec, Listing, PsiJob
from datawharf.states import JobState, TaskState
from datawharf.v1 import buyer_pb2
from gateway.dispatch import InMemoryDispatcher
from gateway.jobs import Orchestrator
from gateway.spool import Spool
from gateway.store import SqliteStore
from protocols import psi
from protocols.psi_stages import PsiMode, Stage, item_bytes

LISTING = Listing("subscribers", (ColumnSpec("phone", ColumnKind.STRING, join_key=True),), 100)
HOLDER_IDS = [f"+44-{i:06d}" for i in range(60)]
BUYER_IDS = [f"+44-{i:06d}" for i in range(40, 90)]  # 20 shared


class World:
    def __init__(self, root: Path) -> None:
        self.now = 5_000.0
        self.dispatcher = InMemoryDispatcher()
        self.store = SqliteStore(root / "g.db")
        self.orch = Orchestrator(self.store, self.dispatcher, clock=lambda: self.now, spool=Spool(root / "spool"))
        self.dispatcher.connect("h")
        self.orch.party_connected("h", [LISTING])
        self.buyer = psi.Buyer(BUYER_IDS)
        self.holder = psi.Holder(HOLDER_IDS)

    async def submit(self, **kw: object) -> str:
        spec = PsiJob("subscribers", "phone", PsiMode.INTERSECTION,
                      buyer_set_size=len(self.buyer.unique), **kw)  # type: ignore[arg-type]
        view = await self.orch.submit("buyer", "r1", spec, parties=[], timeout_s=60)
        assert view.state == JobState.AWAITING_BUYER and view.next_stage == "A"
        return view.job_id

    async def upload(self, job_id: str, stage: Stage, items: list[bytes], buyer: str = "buyer") -> None:
        async def pieces() -> AsyncIterator[StagePiece]:
            chunks = split_items(b"".join(items), item_bytes(stage))
            for seq, data in enumerate(chunks):
                yield StagePiece(stage, seq, data, seq == len(chunks) - 1)

        await self.orch.upload_set(buyer, job_id, pieces())

    def relayed_set(self) -> list[bytes]:
        data = b"".join(m.piece.data for m in self.dispatcher.to("h") if isinstance(m, SetForHolder))
        return [data[i:i + 32] for i in range(0, len(data), 32)]

    async def holder_answers(self, d: list[bytes], w: list[bytes], *, minimum: int = 1) -> None:
        (task,) = self.dispatcher.tasks_for("h")
        for stage, items in ((Stage.D, d), (Stage.W, w)):
            await self.orch.holder_upload("h", HolderUpload(task.task_id, StagePiece(stage, 0, b"".join(items),
                                                                                          True)))
        await self.orch.holder_upload("h", HolderUpload(task.task_id, done=True, min_intersection=minimum))

    def download(self, job_id: str, stage: str) -> list[bytes]:
        data = b"".join(p.data for p in self.orch.download_set("buyer", job_id, stage))
        return [data[i:i + 32] for i in range(0, len(data), 32)]


def test_whole_intersection_job_in_process(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.submit()
        assert w.dispatcher.tasks_for("h") == []  # nothing for the holder before the buyer's set
        a = w.buyer.blinded()
        await w.upload(job_id, Stage.A, a)
        (task,) = w.dispatcher.tasks_for("h")
        assert task.job_id == job_id and isinstance(task.spec, PsiJob)
        assert w.relayed_set() == a  # relayed as sent, in the buyer's secret order
        d, wpts = w.holder.answer(w.relayed_set(), cardinality_only=False)
        await w.holder_answers(d, wpts, minimum=5)
        view = w.orch.view(job_id, "buyer")
        assert view.state == JobState.AWAITING_BUYER and view.next_stage == "Z"
        z = w.buyer.reblind(w.download(job_id, "W"))
        await w.upload(job_id, Stage.Z, z)
        assert w.orch.view(job_id).state == JobState.DONE
        result = buyer_pb2.JobResult.FromString(w.orch.result(job_id, "buyer"))
        matched = {m.decode() for m in w.buyer.matched(result.psi.positions)}
        assert result.psi.size == 20 and matched == set(HOLDER_IDS) & set(BUYER_IDS)
        assert not (tmp_path / "spool" / job_id).exists()  # sets are gone with the job

    asyncio.run(go())


def test_buyer_reads_only_its_stages_and_only_its_jobs(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.submit()
        await w.upload(job_id, Stage.A, w.buyer.blinded())
        d, wpts = w.holder.answer(w.relayed_set(), cardinality_only=False)
        await w.holder_answers(d, wpts)
        with pytest.raises(PermissionDenied, match="not the buyer's to read"):
            w.orch.download_set("buyer", job_id, "D")
        with pytest.raises(NotFound):
            w.orch.download_set("mallory", job_id, "W")
        with pytest.raises(FailedPrecondition, match="no stage S"):
            w.orch.download_set("buyer", job_id, "S")

    asyncio.run(go())


def test_oversize_upload_fails_the_job(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.submit()
        with pytest.raises(InvalidArgument, match="limit of 50 items"):
            await w.upload(job_id, Stage.A, w.buyer.blinded() + [bytes(32)])
        assert w.orch.view(job_id).state == JobState.FAILED

    asyncio.run(go())


def test_holder_answer_of_the_wrong_size_fails_the_job_and_tells_the_holder(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.submit()
        await w.upload(job_id, Stage.A, w.buyer.blinded())
        d, wpts = w.holder.answer(w.relayed_set(), cardinality_only=False)
        await w.holder_answers(d[:-1], wpts)
        view = w.orch.view(job_id)
        assert view.state == JobState.FAILED and "re-blinded a different number" in view.reason
        assert view.tasks[0].state == TaskState.FAILED
        assert any("invalid PSI answer" in n.message for n in w.dispatcher.notices_for("h"))

    asyncio.run(go())


def test_ciphertexts_for_a_psi_task_are_refused(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.submit()
        await w.upload(job_id, Stage.A, w.buyer.blinded())
        (task,) = w.dispatcher.tasks_for("h")
        await w.orch.contribution("h", task.task_id, b"\x0a\x01x")
        assert w.orch.view(job_id).tasks[0].state == TaskState.FAILED
        assert w.orch.view(job_id).state == JobState.FAILED

    asyncio.run(go())


def test_holder_that_vanishes_fails_the_job_at_its_deadline(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.submit()
        await w.upload(job_id, Stage.A, w.buyer.blinded())
        w.dispatcher.disconnect("h")
        w.orch.party_disconnected("h")
        await asyncio.sleep(0)
        assert w.orch.view(job_id).tasks[0].state == TaskState.LOST
        await w.orch.check_deadlines()
        assert w.orch.view(job_id).state == JobState.DISPATCHED  # the holder may still return
        w.now += 61
        await w.orch.check_deadlines()
        view = w.orch.view(job_id)
        assert view.state == JobState.FAILED and view.reason == "deadline passed waiting for h's answer"
        assert view.tasks[0].state == TaskState.EXPIRED

    asyncio.run(go())


def test_a_returning_holder_is_sent_the_set_again(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.submit()
        await w.upload(job_id, Stage.A, w.buyer.blinded())
        first = w.relayed_set()
        w.dispatcher.disconnect("h")
        w.orch.party_disconnected("h")
        w.dispatcher.sent.clear()
        w.dispatcher.connect("h")
        w.orch.party_connected("h", [LISTING])
        assert len(w.dispatcher.tasks_for("h")) == 1 and w.relayed_set() == first
        assert w.orch.view(job_id).tasks[0].state == TaskState.DISPATCHED

    asyncio.run(go())
