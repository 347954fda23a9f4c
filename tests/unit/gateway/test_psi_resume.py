"""A PSI job's state outlives the process that ran it: a gateway built afresh on the same store and spool
(a restart, or another replica) reads where the job stands and carries it on, through the in-memory seam."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import AsyncIterator

from datawharf.chunking import split_items
from datawharf.messages import HolderUpload, SetForHolder, StagePiece
from datawharf.model import ColumnKind, ColumnSpec, Listing, PsiJob
from datawharf.states import JobState, TaskState
from datawharf.v1 import buyer_pb2
from gateway.dispatch import InMemoryDispatcher
from gateway.jobs import Orchestrator
from gateway.jobs.psi import ANSWER_FILE
from gateway.spool import Spool
from gateway.store import SqliteStore
from protocols import psi
from protocols.psi_stages import PsiMode, Stage, item_bytes

LISTING = Listing("subscribers", (ColumnSpec("phone", ColumnKind.STRING, join_key=True),), 100)
HOLDER_IDS = [f"+44-{i:06d}" for i in range(60)]
BUYER_IDS = [f"+44-{i:06d}" for i in range(40, 90)]  # 20 shared


class Gateway:
    """One gateway process: its own orchestrator, dispatcher and spool object over a shared store and spool
    folder. ``recover`` before the holder connects, as the app does at start."""

    def __init__(self, root: Path, store: SqliteStore) -> None:
        self.dispatcher = InMemoryDispatcher()
        self.orch = Orchestrator(store, self.dispatcher, clock=lambda: 5_000.0, spool=Spool(root / "spool"))

    def connect(self) -> None:
        self.dispatcher.connect("h")
        self.orch.party_connected("h", [LISTING])

    async def upload(self, job_id: str, stage: Stage, items: list[bytes]) -> None:
        async def pieces() -> AsyncIterator[StagePiece]:
            chunks = split_items(b"".join(items), item_bytes(stage))
            for seq, data in enumerate(chunks):
                yield StagePiece(stage, seq, data, seq == len(chunks) - 1)

        await self.orch.upload_set("buyer", job_id, pieces())

    def relayed(self) -> list[bytes]:
        data = b"".join(m.piece.data for m in self.dispatcher.to("h") if isinstance(m, SetForHolder))
        return [data[i:i + 32] for i in range(0, len(data), 32)]

    async def holder_answers(self, holder: psi.Holder, *, minimum: int = 1) -> None:
        (task,) = self.dispatcher.tasks_for("h")
        d, w = holder.answer(self.relayed(), cardinality_only=False)
        for stage, items in ((Stage.D, d), (Stage.W, w)):
            await self.orch.holder_upload("h", HolderUpload(task.task_id, StagePiece(stage, 0, b"".join(items),
                                                                                          True)))
        await self.orch.holder_upload("h", HolderUpload(task.task_id, done=True, min_intersection=minimum))

    def download(self, job_id: str, stage: str) -> list[bytes]:
        data = b"".join(p.data for p in self.orch.download_set("buyer", job_id, stage))
        return [data[i:i + 32] for i in range(0, len(data), 32)]


async def submit(gw: Gateway, buyer: psi.Buyer) -> str:
    spec = PsiJob("subscribers", "phone", PsiMode.INTERSECTION, buyer_set_size=len(buyer.unique))
    return (await gw.orch.submit("buyer", "r1", spec, parties=["h"], timeout_s=60)).job_id


def matched(gw: Gateway, job_id: str, buyer: psi.Buyer) -> set[str]:
    result = buyer_pb2.JobResult.FromString(gw.orch.result(job_id, "buyer"))
    return {m.decode() for m in buyer.matched(result.psi.positions)}


def test_a_restarted_gateway_resumes_a_job_waiting_for_the_buyers_second_round(tmp_path: Path) -> None:
    async def go() -> None:
        store = SqliteStore(tmp_path / "g.db")
        buyer, holder = psi.Buyer(BUYER_IDS), psi.Holder(HOLDER_IDS)
        first = Gateway(tmp_path, store)
        first.connect()
        job_id = await submit(first, buyer)
        await first.upload(job_id, Stage.A, buyer.blinded())
        await first.holder_answers(holder, minimum=5)
        kept = json.loads((tmp_path / "spool" / job_id / ANSWER_FILE).read_text())
        assert kept == {"minimum": 5, "epoch": ""}

        second = Gateway(tmp_path, store)  # the first is gone: nothing of it is read but the store and spool
        await second.orch.recover()
        view = second.orch.view(job_id, "buyer")
        assert view.state == JobState.AWAITING_BUYER and view.next_stage == "Z"
        await second.upload(job_id, Stage.Z, buyer.reblind(second.download(job_id, "W")))
        assert second.orch.view(job_id).state == JobState.DONE
        assert matched(second, job_id, buyer) == set(HOLDER_IDS) & set(BUYER_IDS)

    asyncio.run(go())


def test_the_holders_minimum_is_read_from_its_record_and_never_assumed(tmp_path: Path) -> None:
    async def go() -> None:
        store = SqliteStore(tmp_path / "g.db")
        buyer, holder = psi.Buyer(BUYER_IDS), psi.Holder(HOLDER_IDS)
        gw = Gateway(tmp_path, store)
        gw.connect()
        above = await submit(gw, buyer)
        await gw.upload(above, Stage.A, buyer.blinded())
        await gw.holder_answers(holder, minimum=21)  # one more than the intersection
        await Gateway(tmp_path, store).upload(above, Stage.Z, buyer.reblind(gw.download(above, "W")))
        view = gw.orch.view(above)
        assert view.state == JobState.FAILED and "minimum of 21" in view.reason

        gone = (await gw.orch.submit("buyer", "r2", PsiJob("subscribers", "phone", PsiMode.INTERSECTION,
                                                             buyer_set_size=len(buyer.unique)),
                                     parties=["h"], timeout_s=60)).job_id
        gw.dispatcher.sent.clear()
        await gw.upload(gone, Stage.A, buyer.blinded())
        await gw.holder_answers(holder)
        (tmp_path / "spool" / gone / ANSWER_FILE).unlink()
        await gw.upload(gone, Stage.Z, buyer.reblind(gw.download(gone, "W")))
        view = gw.orch.view(gone)
        assert view.state == JobState.FAILED and "not on record" in view.reason

    asyncio.run(go())


def test_a_set_whole_at_the_crash_is_relayed_and_a_half_received_one_is_forgotten(tmp_path: Path) -> None:
    async def go() -> None:
        store = SqliteStore(tmp_path / "g.db")
        buyer = psi.Buyer(BUYER_IDS)
        first = Gateway(tmp_path, store)
        first.connect()
        whole = await submit(first, buyer)
        half = (await first.orch.submit("buyer", "r2", PsiJob("subscribers", "phone", PsiMode.INTERSECTION,
                                                                buyer_set_size=len(buyer.unique)),
                                        parties=["h"], timeout_s=60)).job_id
        a = b"".join(buyer.blinded())
        # The crash: one set arrived whole but was not yet relayed, the other only half.
        assert first.orch.psi.spool.append(whole, Stage.A, 0, a, True, item=32, max_items=len(BUYER_IDS))
        assert not first.orch.psi.spool.append(half, Stage.A, 0, a[:32 * 10], False, item=32,
                                               max_items=len(BUYER_IDS))
        assert (tmp_path / "spool" / half / "A.part").exists()

        second = Gateway(tmp_path, store)
        await second.orch.recover()
        assert second.orch.view(whole).state == JobState.DISPATCHED
        assert not (tmp_path / "spool" / half / "A.part").exists()
        view = second.orch.view(half, "buyer")
        assert view.state == JobState.AWAITING_BUYER and view.next_stage == "A"
        assert second.dispatcher.sent == []
        second.connect()  # the holder comes back: the relayed job is offered, with the set as sent
        (task,) = second.dispatcher.tasks_for("h")
        assert task.job_id == whole and second.relayed() == buyer.blinded()
        await second.upload(half, Stage.A, buyer.blinded())  # the half one is sent again, from chunk 0
        assert second.orch.view(half).state == JobState.DISPATCHED

    asyncio.run(go())


def test_a_holder_answer_stored_by_one_gateway_is_seen_by_another(tmp_path: Path) -> None:
    """Two gateways at once on one store and spool, as replicas are: the holder answers at one, the buyer's
    second round and the match happen at the other."""
    async def go() -> None:
        store = SqliteStore(tmp_path / "g.db")
        buyer, holder = psi.Buyer(BUYER_IDS), psi.Holder(HOLDER_IDS)
        streams, rounds = Gateway(tmp_path, store), Gateway(tmp_path, store)
        streams.connect()
        rounds.orch.book.learn_party("h", [LISTING], organisation="", serial="")  # as replicas learn it
        job_id = await submit(rounds, buyer)
        await rounds.upload(job_id, Stage.A, buyer.blinded())
        assert rounds.dispatcher.sent == []  # the holder's stream is at the other gateway, which offers the task
        streams.orch.dispatch_open("h", only_new=True)
        await streams.holder_answers(holder)
        view = rounds.orch.view(job_id, "buyer")
        assert view.state == JobState.AWAITING_BUYER and view.next_stage == "Z"
        assert [t.state for t in view.tasks] == [TaskState.CONTRIBUTED]
        await rounds.upload(job_id, Stage.Z, buyer.reblind(rounds.download(job_id, "W")))
        assert rounds.orch.view(job_id).state == JobState.DONE
        assert matched(rounds, job_id, buyer) == set(HOLDER_IDS) & set(BUYER_IDS)

    asyncio.run(go())


def test_an_upload_that_broke_off_is_started_again_from_chunk_0(tmp_path: Path) -> None:
    async def go() -> None:
        store = SqliteStore(tmp_path / "g.db")
        buyer = psi.Buyer(BUYER_IDS)
        gw = Gateway(tmp_path, store)
        gw.connect()
        job_id = await submit(gw, buyer)
        a = buyer.blinded()

        async def broken() -> AsyncIterator[StagePiece]:
            yield StagePiece(Stage.A, 0, b"".join(a[:10]), False)
            raise ConnectionResetError("the buyer's connection broke")

        try:
            await gw.orch.upload_set("buyer", job_id, broken())
        except ConnectionResetError:
            pass
        assert gw.orch.view(job_id, "buyer").next_stage == "A"
        await gw.upload(job_id, Stage.A, a)  # the same stream would fail the job were the first half kept
        assert gw.orch.view(job_id).state == JobState.DISPATCHED and gw.relayed() == a

    asyncio.run(go())


def test_oprf_tables_are_kept_on_disk_for_any_gateway_one_epoch_each(tmp_path: Path) -> None:
    first = Gateway(tmp_path, SqliteStore(tmp_path / "g.db")).orch.psi
    tags = bytes(range(16)) * 3 + bytes(16)
    for slot, epoch in (("job-1", "e1"), ("job-2", "e2")):
        first.spool.append(slot, Stage.T, 0, tags, True, item=16, max_items=10)
        first._keep_table(("h", "subscribers", "phone", epoch), slot)
    second = Gateway(tmp_path, SqliteStore(tmp_path / "g.db")).orch.psi  # another process, or after a restart
    assert second._cached_epochs(("h", "subscribers", "phone")) == ("e2",)  # the newer epoch replaced the older
    assert second._cached_epochs(("h", "subscribers", "email")) == ()
    table = second._table(("h", "subscribers", "phone", "e2"))
    assert table is not None and len(table) == 4
    assert second._table(("h", "subscribers", "phone", "e1")) is None


def test_a_multi_holder_job_resumes_keeping_the_answers_in_and_resending_the_rest(tmp_path: Path) -> None:
    from tests.unit.gateway import test_psi_multi_jobs as multi

    async def go() -> None:
        w = multi.World(tmp_path)
        job_id = await w.submit()
        await w.upload(job_id, "A", w.buyer.blinded() + w.buyer.commitment())
        await w.answer("h1")
        (task,) = w.dispatcher.tasks_for("h2")  # h2 is half-way through its D when the gateway dies
        await w.orch.holder_upload("h2", HolderUpload(task.task_id, StagePiece(Stage.D, 0, bytes(32 * 4), False)))
        assert any((tmp_path / "spool").glob(f"{job_id}.1/D*"))

        after = object.__new__(multi.World)  # the restarted gateway: the same store and spool folder
        after.root, after.buyer, after.holders = tmp_path, w.buyer, w.holders
        after.dispatcher = InMemoryDispatcher()
        after.orch = Orchestrator(SqliteStore(tmp_path / "g.db"), after.dispatcher, clock=lambda: 5_000.0,
                                  spool=Spool(tmp_path / "spool"))
        await after.orch.recover()
        assert not any((tmp_path / "spool").glob(f"{job_id}.1/D*"))  # h2's half stage is forgotten
        for h in multi.HOLDERS:
            after.dispatcher.connect(h)
            after.orch.party_connected(h, [multi.LISTING])
        assert after.dispatcher.tasks_for("h1") == []  # h1's answer stands
        for h in ("h2", "h3"):
            await after.answer(h)
        for h in multi.HOLDERS:
            await after.upload(job_id, f"Z@{h}", w.buyer.reblind(after.download(job_id, f"W@{h}")))
        assert after.orch.view(job_id).state == JobState.DONE
        result = buyer_pb2.JobResult.FromString(after.orch.result(job_id, "buyer"))
        at = {i: sum(i in multi.SETS[h] for h in multi.HOLDERS) for i in range(20, 100)}
        truth = {f"+44-{i:06d}" for i, n in at.items() if n >= 2}
        assert {m.decode() for m in w.buyer.matched(result.psi.positions)} == truth

    asyncio.run(go())
