"""The job state machine through the dispatcher seam: no sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from protocols.schemes.paillier import generate_keypair

from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound
from dataclasses import replace

from datawharf.filters import Condition, Op
from datawharf.model import ColumnKind, ColumnSpec, Listing
from datawharf.serde import contribution_to_proto, result_from_proto
from datawharf.v1 import buyer_pb2, common_pb2
from gateway.dispatch import InMemoryDispatcher
from gateway.jobs import Orchestrator
from gateway.store import open_store
from protocols.aggregate import Holder
from protocols.figures import Layout, Statistic, local_figures
from tests.jobs import make_job

LISTING = Listing("visits", (ColumnSpec("age", ColumnKind.INT, aggregate=True, filter_ops=(Op.LT, Op.GE)),
                             ColumnSpec("dept", ColumnKind.STRING, filter_ops=(Op.EQ,))), 100)


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair(2048)  # Blum primes, so the buyer can prove its modulus


STORE = {"spec": "sqlite"}


@pytest.fixture(autouse=True)
def each_store(store_spec: str) -> Iterator[None]:
    """Every test here runs on SQLite and again on PostgreSQL (a new database each); modules that
    borrow World get SQLite."""
    STORE["spec"] = store_spec
    yield
    STORE["spec"] = "sqlite"


class World:
    def __init__(self, path: Path, keypair, parties=("a", "b", "c")) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.dispatcher = InMemoryDispatcher()
        self.store = open_store(STORE["spec"], path.parent)
        self.now = 1_000_000.0
        self.orch = Orchestrator(self.store, self.dispatcher, clock=lambda: self.now)
        self.buyer, self.job = make_job("sum", "age", places=0, keypair=keypair)
        for p in parties:
            self.connect(p)

    def connect(self, party: str) -> None:
        self.dispatcher.connect(party)
        self.orch.party_connected(party, [LISTING])

    def disconnect(self, party: str) -> None:
        self.dispatcher.disconnect(party)
        self.orch.party_disconnected(party)

    def spec(self, **kw):  # type: ignore[no-untyped-def]
        return replace(self.job, **kw)

    async def submit(self, rid: str = "r1", **kw):  # type: ignore[no-untyped-def]
        min_parties = kw.pop("min_parties", 1)
        timeout_s = kw.pop("timeout_s", 60)
        parties = kw.pop("parties", [])
        return await self.orch.submit("buyer", rid, self.spec(**kw), parties=parties,
                                      min_parties=min_parties, timeout_s=timeout_s)

    def payload(self, values: list[int]) -> bytes:
        figures, _ = local_figures(Layout(Statistic.SUM), np.array(values, dtype=np.int64))
        return contribution_to_proto(Holder(self.buyer.request).contribute(figures)).SerializeToString()

    async def contribute(self, party: str, values: list[int]) -> None:
        task = self.dispatcher.tasks_for(party)[-1]
        await self.orch.contribution(party, task.task_id, self.payload(values))

    def decrypt(self, job_id: str) -> int:
        result = buyer_pb2.JobResult.FromString(self.orch.result(job_id, "buyer"))
        return int(self.buyer.finish(result_from_proto(result)).groups[0].values[0])

    def states(self, job_id: str) -> dict[str, str]:
        return {t.party: t.state for t in self.orch.view(job_id).tasks}


def test_all_contribute_job_done(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair)
        view = await w.submit()
        assert view.state == "DISPATCHED" and len(view.tasks) == 3
        with pytest.raises(FailedPrecondition, match="DISPATCHED"):
            w.orch.result(view.job_id, "buyer")
        await w.contribute("a", [1, 2])
        assert w.orch.view(view.job_id).state == "COLLECTING"
        await w.contribute("b", [10])
        await w.contribute("c", [100, -3])
        done = w.orch.view(view.job_id)
        assert done.state == "DONE" and done.finished_at > 0
        assert w.decrypt(view.job_id) == 110
        assert w.store.contributions(view.job_id) == []  # per-holder ciphertexts dropped once done

    asyncio.run(go())


def test_repeated_contribution_is_ignored_not_double_counted(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair, parties=("a", "b"))
        view = await w.submit()
        await w.contribute("a", [5])
        await w.contribute("a", [5])
        notices = [m.message for m in w.dispatcher.notices_for("a")]
        assert any("already CONTRIBUTED" in n for n in notices)
        await w.contribute("b", [1])
        assert w.decrypt(view.job_id) == 6

    asyncio.run(go())


def test_invalid_ciphertext_fails_only_that_task(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair, parties=("a", "b"))
        view = await w.submit()
        task = w.dispatcher.tasks_for("a")[-1]
        n = w.buyer.request.params.paillier_n
        width = ((n * n).bit_length() + 7) // 8
        bad = common_pb2.EncryptedFigures(ciphertexts=[n.to_bytes(width, "big")]).SerializeToString()
        await w.orch.contribution("a", task.task_id, bad)
        await w.orch.contribution("a", "task-unknown", bad)
        await w.orch.contribution("b", task.task_id, bad)  # not b's task
        await w.contribute("b", [7])
        final = w.orch.view(view.job_id)
        assert final.state == "DONE"
        assert w.states(view.job_id) == {"a": "FAILED", "b": "CONTRIBUTED"}
        assert "not invertible" in final.tasks[0].reason
        assert w.decrypt(view.job_id) == 7
        kinds = [e["kind"] for e in w.store.events()]
        assert kinds.count("invalid_contribution") == 1 and kinds.count("rejected_message") == 2
        await w.orch.contribution("a", task.task_id, b"\xff\xff not a protobuf")  # too late: ignored

    asyncio.run(go())


def test_refusals_below_threshold_fail_at_once_with_reasons(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair)
        view = await w.submit(min_parties=2)
        await w.orch.refusal("a", w.dispatcher.tasks_for("a")[-1].task_id, "buyer not granted")
        assert w.orch.view(view.job_id).state == "DISPATCHED"
        await w.orch.refusal("b", w.dispatcher.tasks_for("b")[-1].task_id, "too few rows")
        failed = w.orch.view(view.job_id)
        assert failed.state == "FAILED"
        assert "a refused: buyer not granted" in failed.reason and "b refused: too few rows" in failed.reason
        with pytest.raises(FailedPrecondition, match="FAILED"):
            w.orch.result(view.job_id, "buyer")

    asyncio.run(go())


def test_disconnect_completes_if_threshold_holds(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair)
        view = await w.submit(min_parties=2)
        await w.contribute("a", [1])
        w.disconnect("c")
        assert w.states(view.job_id)["c"] == "LOST"
        await w.contribute("b", [2])
        assert w.orch.view(view.job_id).state == "DONE"
        assert w.decrypt(view.job_id) == 3

    asyncio.run(go())


def test_lost_task_is_resent_on_reconnect_and_deadline_fails(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair, parties=("a", "b"))
        view = await w.submit(min_parties=2, timeout_s=1)
        await w.contribute("a", [1])
        w.disconnect("b")
        assert w.orch.view(view.job_id).state == "COLLECTING"  # b may come back
        w.connect("b")
        assert len(w.dispatcher.tasks_for("b")) == 2 and w.states(view.job_id)["b"] == "DISPATCHED"
        w.disconnect("b")
        w.now += 0.99
        await w.orch.check_deadlines()
        assert w.orch.view(view.job_id).state == "COLLECTING"  # not yet: the deadline is 1 s after submission
        w.now += 0.02
        await w.orch.check_deadlines()
        failed = w.orch.view(view.job_id)
        assert failed.state == "FAILED"
        assert "deadline passed with 1 of 2" in failed.reason and "b expired" in failed.reason

    asyncio.run(go())


def test_submission_is_idempotent(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair)
        a = await w.submit("same")
        b = await w.submit("same")
        assert a.job_id == b.job_id and len(w.dispatcher.tasks_for("a")) == 1
        with pytest.raises(InvalidArgument, match="already used for a different job"):
            await w.submit("same", column="cost")

    asyncio.run(go())


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(dataset="nope"), NotFound, "'nope' is not listed"),
        (dict(column="weight"), NotFound, "column 'weight' is not in dataset 'visits'"),
        (dict(column="dept"), InvalidArgument, "holds text"),
        (dict(where=(Condition("zip", Op.EQ, "1"),)), NotFound, "filter column 'zip'"),
        (dict(where=(Condition("dept", Op.LT, "x"),)), InvalidArgument, "only == and !="),
        (dict(parties=["zed"]), NotFound, "'zed' do"),
        (dict(min_parties=4), FailedPrecondition, "only 3 organisation"),
        (dict(encryption="weak"), InvalidArgument, "at least 2048"),
        (dict(encryption="narrow"), FailedPrecondition, "headroom for 2 holder"),
        (dict(timeout_s=10**9), InvalidArgument, "timeout"),
    ],
)
def test_bad_specs(tmp_path: Path, keypair, kw, err, match) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair)
        if kw.get("encryption") == "weak":
            kw["encryption"] = replace(w.job.encryption, paillier_n=2**1024 + 1)
        elif kw.get("encryption") == "narrow":
            kw["encryption"] = replace(w.job.encryption, max_contributors=2)
        with pytest.raises(err, match=match):
            await w.submit(**kw)

    asyncio.run(go())


def test_other_buyers_cannot_see_or_cancel(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair)
        view = await w.submit()
        for call in (lambda: w.orch.view(view.job_id, "mallory"), lambda: w.orch.result(view.job_id, "mallory")):
            with pytest.raises(NotFound, match="mallory"):
                call()
        with pytest.raises(NotFound):
            await w.orch.cancel(view.job_id, "mallory")
        cancelled = await w.orch.cancel(view.job_id, "buyer")
        assert cancelled.state == "CANCELLED" and set(w.states(view.job_id).values()) == {"CANCELLED"}
        with pytest.raises(FailedPrecondition, match="already CANCELLED"):
            await w.orch.cancel(view.job_id, "buyer")

    asyncio.run(go())


def test_restart_resumes_without_losing_or_double_counting(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair)
        view = await w.submit(min_parties=3)
        await w.contribute("a", [1])
        await w.contribute("b", [20])
        w.store.close()
        # A new gateway process on the same store; nobody has reconnected yet.
        w2 = World(tmp_path / "g.db", keypair, parties=())
        w2.buyer = w.buyer
        await w2.orch.recover()
        assert w2.states(view.job_id) == {"a": "CONTRIBUTED", "b": "CONTRIBUTED", "c": "PENDING"}
        w2.connect("b")  # b's task is done: nothing is resent to it
        assert w2.dispatcher.tasks_for("b") == []
        w2.connect("c")
        await w2.contribute("c", [300])
        assert w2.orch.view(view.job_id).state == "DONE"
        assert w2.decrypt(view.job_id) == 321

    asyncio.run(go())


def test_watch_yields_changes_until_final(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair, parties=("a",))
        view = await w.submit()
        seen: list[str] = []

        async def watcher() -> None:
            async for v in w.orch.watch(view.job_id, "buyer"):
                seen.append(v.state)

        t = asyncio.create_task(watcher())
        await asyncio.sleep(0.05)
        await w.contribute("a", [4])
        await asyncio.wait_for(t, 5)
        assert seen[0] == "DISPATCHED" and seen[-1] == "DONE"

    asyncio.run(go())


def test_a_revoked_holder_is_delisted_once_and_its_tasks_fail(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair, parties=("a", "b"))
        w.orch.party_connected("b", [LISTING], organisation="b-org", serial=0xB0B)
        view = await w.submit(min_parties=2)
        w.orch.revoked(lambda serial: serial == 0xB0B)
        await asyncio.sleep(0)  # the re-evaluation scheduled for b's job
        assert w.orch.catalog()["visits"].holders == ("a",)
        assert w.states(view.job_id)["b"] == "FAILED"
        assert w.orch.view(view.job_id).state == "FAILED"
        assert "revoked" in {t.party: t.reason for t in w.orch.view(view.job_id).tasks}["b"]
        events = len(list(w.store.events("party_revoked")))
        w.dispatcher.disconnect("b")
        w.orch.revoked(lambda serial: serial == 0xB0B)  # a later CRL change: nothing new to do
        assert len(list(w.store.events("party_revoked"))) == events == 1

    asyncio.run(go())


def test_min_parties_counts_organisations_and_holders_minimums(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair, parties=())
        for p in ("a", "a2"):
            w.dispatcher.connect(p)
            w.orch.party_connected(p, [LISTING], organisation="org-a")
        with pytest.raises(FailedPrecondition, match="only 1 organisation"):
            await w.submit(min_parties=2)
        w.dispatcher.connect("strict")
        w.orch.party_connected("strict", [replace(LISTING, min_parties=3)], organisation="org-s")
        with pytest.raises(FailedPrecondition, match="strict require"):
            await w.submit("r2", parties=["a", "strict"])

    asyncio.run(go())


def test_a_holder_whose_certificate_expires_is_disconnected(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    w = World(tmp_path / "g.db", keypair, parties=("a",))
    w.dispatcher.connect("b")
    w.orch.party_connected("b", [LISTING], not_after=w.now + 60)
    assert w.orch.book.disconnect_expired(w.now) == []
    assert w.orch.book.disconnect_expired(w.now + 61) == ["b"]
    assert not w.dispatcher.is_online("b") and w.dispatcher.is_online("a")


def test_results_are_destroyed_after_their_lifetime(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "g.db", keypair, parties=("a",))
        w.orch.result_ttl_s = 3600.0
        view = await w.submit()
        await w.contribute("a", [7])
        assert w.decrypt(view.job_id) == 7
        # Made long before the (test) clock's now minus the lifetime.
        w.store._db.execute("UPDATE results SET created_at = 0 WHERE job_id = ?", (view.job_id,))
        assert w.orch.expire_results() == 1
        with pytest.raises(FailedPrecondition, match="destroyed"):
            w.orch.result(view.job_id, "buyer")
        kinds = [(r["kind"], r["detail"]) for r in w.store.events("destroyed")]
        assert ("destroyed", "result, past its lifetime of 3600 s") in kinds

    asyncio.run(go())
