"""Two gateway replicas on one PostgreSQL database, in one event loop with in-memory streams: work for a
party reaches the replica holding its stream through LISTEN/NOTIFY, the owner sums, and a replica that
stops has its jobs taken over without any contribution counted twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from datawharf.serde import contribution_to_proto, result_from_proto
from datawharf.v1 import buyer_pb2
from gateway.dispatch import InMemoryDispatcher
from gateway.jobs import Orchestrator
from gateway.replicas import ReplicaDispatcher, Replicas
from gateway.store import open_store
from gateway.store.postgres import PostgresStore
from protocols.aggregate import Holder
from protocols.figures import Layout, Statistic, local_figures
from protocols.schemes.paillier import generate_keypair
from tests.jobs import make_job
from tests.postgres import Cluster
from tests.unit.gateway.test_orchestrator import LISTING


class Replica:
    def __init__(self, name: str, url: str, root: Path, parties: tuple[str, ...], lease_s: float) -> None:
        self.store = open_store(url, root / name, blob_dir=root / "blobs")
        assert isinstance(self.store, PostgresStore)
        self.streams = InMemoryDispatcher()
        self.replicas = Replicas(self.store, name, lease_s=lease_s)
        self.orch = Orchestrator(self.store, ReplicaDispatcher(self.streams, self.replicas))  # type: ignore[arg-type]
        self.orch.join(self.replicas)
        self.replicas.start(asyncio.get_running_loop())
        for p in parties:
            self.streams.connect(p)
            self.orch.party_connected(p, [LISTING])

    def stop(self) -> None:
        if not self.store._db._conn.closed:
            self.replicas.stop()
            self.store.close()


async def until(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair(2048)


def test_work_crosses_replicas_and_a_stopped_replicas_jobs_are_taken_over(
        postgres: Cluster, tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    buyer, spec = make_job("sum", "age", places=0, keypair=keypair)

    def payload(values: list[int]) -> bytes:
        figures, _ = local_figures(Layout(Statistic.SUM), np.array(values, dtype=np.int64))
        return contribution_to_proto(Holder(buyer.request).contribute(figures)).SerializeToString()

    async def go() -> None:
        url = postgres.database()
        one = Replica("one", url, tmp_path, ("a",), lease_s=1.0)
        two = Replica("two", url, tmp_path, ("b", "c"), lease_s=1.0)
        try:
            for r in (one, two):
                await r.orch.recover()
            await until(lambda: set(one.orch.catalog()["visits"].holders_online) == {"a", "b", "c"},
                        "replica one to see b and c online at replica two")
            view = await one.orch.submit("buyer", "r1", spec, parties=[], min_parties=3, timeout_s=60)
            assert {t.party for t in view.tasks} == {"a", "b", "c"}
            assert one.store.job(view.job_id).owner == "one"  # type: ignore[union-attr]
            # b's and c's offers are built and sent by replica two, which holds their streams.
            await until(lambda: len(two.streams.tasks_for("b")) == 1 and len(two.streams.tasks_for("c")) == 1,
                        "replica two to offer b and c their tasks")
            assert one.streams.tasks_for("a") and not one.streams.tasks_for("b")
            watcher = two.orch.book.changed(view.job_id)  # a buyer watching at replica two
            await one.orch.contribution("a", one.streams.tasks_for("a")[0].task_id, payload([1, 2]))
            task_b = two.streams.tasks_for("b")[0].task_id
            await two.orch.contribution("b", task_b, payload([10]))
            # The same answer again, at the other replica: counted once.
            await one.orch.contribution("b", task_b, payload([10]))
            await until(lambda: any("already CONTRIBUTED" in n.message for n in two.streams.notices_for("b")),
                        "the notice to b to be relayed to the replica holding its stream")
            await until(watcher.is_set, "the watcher at replica two to hear of the change at replica one")

            # Replica one stops mid-job without a word; two takes its job over once the lease lapses.
            one.stop()
            await asyncio.sleep(1.2)
            await two.orch.check_deadlines()
            await until(lambda: two.store.job(view.job_id).owner == "two", "replica two to claim the job")  # type: ignore[union-attr]
            await two.orch.contribution("c", two.streams.tasks_for("c")[0].task_id, payload([100, -3]))
            await until(lambda: two.store.job(view.job_id).state == "DONE", "the job to finish")  # type: ignore[union-attr]
            result = buyer_pb2.JobResult.FromString(two.orch.result(view.job_id, "buyer"))
            assert int(buyer.finish(result_from_proto(result)).groups[0].values[0]) == 110
            assert [e["kind"] for e in two.store.events("job_done")] == ["job_done"]
            assert two.store.contributions(view.job_id) == []
        finally:
            for r in (one, two):
                r.stop()

    asyncio.run(go())
