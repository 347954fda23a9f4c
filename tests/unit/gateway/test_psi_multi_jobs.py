"""Multi-holder PSI jobs through the in-memory seam: three holders, IDs at two of them, and what a buyer may not do."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from datawharf.chunking import split_items
from datawharf.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from datawharf.messages import HolderUpload, SetForHolder, StagePiece
from datawharf.model import ColumnKind, ColumnSpec, Listing, PsiJob
from datawharf.states import JobState
from datawharf.v1 import buyer_pb2
from gateway.dispatch import InMemoryDispatcher
from gateway.jobs import Orchestrator
from gateway.spool import Spool
from gateway.store import SqliteStore
from protocols import psi
from protocols.psi_stages import PsiMode, Stage, item_bytes

LISTING = Listing("subscribers", (ColumnSpec("phone", ColumnKind.STRING, join_key=True),), 100)
HOLDERS = ("h1", "h2", "h3")
SETS = {"h1": range(0, 60), "h2": range(30, 90), "h3": range(50, 120)}
BUYER_IDS = [f"+44-{i:06d}" for i in range(20, 100)]


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dispatcher = InMemoryDispatcher()
        self.orch = Orchestrator(SqliteStore(root / "g.db"), self.dispatcher, clock=lambda: 5_000.0,
                                 spool=Spool(root / "spool"))
        for h in HOLDERS:
            self.dispatcher.connect(h)
            self.orch.party_connected(h, [LISTING])
        self.buyer = psi.Buyer(BUYER_IDS)
        self.holders = {h: psi.Holder([f"+44-{i:06d}" for i in SETS[h]]) for h in HOLDERS}

    async def submit(self, at_least: int = 2) -> str:
        spec = PsiJob("subscribers", "phone", PsiMode.INTERSECTION, buyer_set_size=len(self.buyer.unique) + 2,
                      holders=HOLDERS, at_least=at_least)
        view = await self.orch.submit("buyer", "r1", spec, parties=list(HOLDERS), timeout_s=60)
        return view.job_id

    async def upload(self, job_id: str, stage: str, items: list[bytes]) -> None:
        async def pieces() -> AsyncIterator[StagePiece]:
            chunks = split_items(b"".join(items), item_bytes(stage.split("@")[0]))
            for seq, data in enumerate(chunks):
                yield StagePiece(stage, seq, data, seq == len(chunks) - 1)

        await self.orch.upload_set("buyer", job_id, pieces())

    async def answer(self, h: str) -> None:
        (task,) = self.dispatcher.tasks_for(h)
        data = b"".join(m.piece.data for m in self.dispatcher.to(h) if isinstance(m, SetForHolder))
        points, commitment = psi.split_commitment([data[i:i + 32] for i in range(0, len(data), 32)])
        holder = self.holders[h]
        d, w = holder.answer(points, cardinality_only=False, commitment=commitment, keep_order=True)
        from protocols.psi_stages import GatewayNotes

        for stage, raw in ((Stage.D, b"".join(d)), (Stage.W, b"".join(w)),
                           (Stage.N, GatewayNotes(0, (), tuple(holder.canaries)).pack())):
            await self.orch.holder_upload(h, HolderUpload(task.task_id, StagePiece(stage, 0, raw, True)))
        await self.orch.holder_upload(h, HolderUpload(task.task_id, done=True, min_intersection=1))

    def download(self, job_id: str, stage: str) -> list[bytes]:
        data = b"".join(p.data for p in self.orch.download_set("buyer", job_id, stage))
        return [data[i:i + 32] for i in range(0, len(data), 32)]

    async def ready(self) -> str:
        job_id = await self.submit()
        await self.upload(job_id, "A", self.buyer.blinded() + self.buyer.commitment())
        for h in HOLDERS:
            await self.answer(h)
        return job_id


def test_two_of_three_in_process(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.ready()
        view = w.orch.view(job_id, "buyer")
        assert view.state == JobState.AWAITING_BUYER and view.next_stage == "Z"
        for h in HOLDERS:
            await w.upload(job_id, f"Z@{h}", w.buyer.reblind(w.download(job_id, f"W@{h}")))
        assert w.orch.view(job_id).state == JobState.DONE
        result = buyer_pb2.JobResult.FromString(w.orch.result(job_id, "buyer"))
        at = {i: sum(i in SETS[h] for h in HOLDERS) for i in range(20, 100)}
        truth = {f"+44-{i:06d}" for i, n in at.items() if n >= 2}
        assert {m.decode() for m in w.buyer.matched(result.psi.positions)} == truth
        assert result.psi.size == len(truth) and list(result.contributors) == list(HOLDERS)
        assert not any(p.name.startswith(job_id) for p in (tmp_path / "spool").iterdir())  # every slot is gone

    asyncio.run(go())


def test_the_buyer_names_each_holder_and_only_once(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.ready()
        with pytest.raises(InvalidArgument, match="name the one whose stage"):
            w.orch.download_set("buyer", job_id, "W")
        with pytest.raises(PermissionDenied):
            w.orch.download_set("buyer", job_id, "D@h1")
        with pytest.raises(NotFound, match="not one of this job's holders"):
            w.orch.download_set("buyer", job_id, "W@h9")
        z1 = w.buyer.reblind(w.download(job_id, "W@h1"))
        with pytest.raises(InvalidArgument, match="expects stage Z@<holder>"):
            await w.upload(job_id, "Z", z1)
        await w.upload(job_id, "Z@h1", z1)
        assert w.orch.view(job_id).state == JobState.AWAITING_BUYER  # two holders' Z to come
        with pytest.raises(AlreadyExists, match="already received"):
            await w.upload(job_id, "Z@h1", z1)  # a second Z for one holder (a retry): refused, the first stands
        assert w.orch.view(job_id).state == JobState.AWAITING_BUYER

    asyncio.run(go())


def test_a_refusal_fails_the_job_naming_the_holder(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        job_id = await w.submit()
        await w.upload(job_id, "A", w.buyer.blinded() + w.buyer.commitment())
        await w.answer("h1")
        (task,) = w.dispatcher.tasks_for("h2")
        await w.orch.refusal("h2", task.task_id, "the buyer's PSI quota is spent")
        view = w.orch.view(job_id)
        assert view.state == JobState.FAILED and view.reason.startswith("h2 refused: the buyer's PSI quota")

    asyncio.run(go())


def test_submission_checks_the_holders(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path)
        spec = PsiJob("subscribers", "phone", PsiMode.INTERSECTION, buyer_set_size=10, holders=("h1", "h4"))
        with pytest.raises(NotFound, match="'h4' does not hold"):
            await w.orch.submit("buyer", "r2", spec, parties=["h1", "h4"], timeout_s=60)
        spec = PsiJob("subscribers", "phone", PsiMode.INTERSECTION, buyer_set_size=10, holders=("h1", "h2"))
        with pytest.raises(InvalidArgument, match="not its PSI holders"):
            await w.orch.submit("buyer", "r3", spec, parties=["h1", "h3"], timeout_s=60)

    asyncio.run(go())
