"""The market inside the job state machine, through the dispatcher seam: the catalog admits only
approved listings, a DONE job is charged from its contributors, a delisting ends open tasks."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from protocols.schemes.paillier import generate_keypair

from datawharf.errors import FailedPrecondition
from datawharf.market import sign_decision, sign_listing
from datawharf.messages import CancelTask
from datawharf.pki import Authority, Credentials, Role, digest
from datawharf.serde import listing_to_proto
from datawharf.states import JobState, TaskState
from datawharf.v1 import market_pb2
from gateway.dispatch import InMemoryDispatcher
from gateway.jobs import Orchestrator
from gateway.market import Market
from gateway.store import SqliteStore
from tests.unit.gateway.test_orchestrator import LISTING, World


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair(2048)


class MarketWorld(World):
    def __init__(self, path: Path, keypair: Any, ca: Authority) -> None:  # type: ignore[override]
        self.ca = ca
        self.op = ca.issue("op", Role.OPERATOR)
        self.holders = {p: ca.issue(p, Role.PARTY) for p in ("a", "b")}
        self.path = path
        self.dispatcher = InMemoryDispatcher()
        self.store = SqliteStore(path)
        self.now = 1_795_000_000.0
        self.market = Market(self.store, ca.issue("gw", Role.GATEWAY).trust(), fee_percent=Decimal(10),
                             clock=lambda: self.now)
        self.orch = Orchestrator(self.store, self.dispatcher, clock=lambda: self.now, market=self.market)
        from tests.jobs import make_job

        self.buyer, self.job = make_job("sum", "age", places=0, keypair=keypair)
        for p in self.holders:
            self.connect(p)

    def listed(self, party: str, price: str) -> str:
        creds: Credentials = self.holders[party]
        body = market_pb2.ListingBody(holder=party, dataset=listing_to_proto(LISTING), title="visits",
                                      classification="internal", price_per_job=price, currency="CNY",
                                      pricing="per-holder", signed_at=time.time())
        return self.market.review.submit(creds.identity, sign_listing(creds, body))["listing_id"]

    def decide(self, listing_id: str, action: str, text: str = "") -> None:
        row = self.store.listing(listing_id)
        assert row is not None
        sub = market_pb2.Signed.FromString(row["submission"])
        body = market_pb2.DecisionBody(listing_id=listing_id, listing_digest=digest(sub.body), action=action,
                                       text=text, reviewer="op", signed_at=time.time())
        self.market.review.decide(self.op.identity, sign_decision(self.op, body))


async def final(w: MarketWorld, job_id: str) -> Any:
    for _ in range(400):
        view = w.orch.view(job_id)
        if view.final:
            return view
        await asyncio.sleep(0.025)
    raise AssertionError(f"job {job_id} is still {w.orch.view(job_id).state}")


@pytest.fixture()
def world(tmp_path: Path, keypair: Any, tmp_path_factory: pytest.TempPathFactory) -> MarketWorld:
    return MarketWorld(tmp_path / "g.sqlite3", keypair, Authority.init(tmp_path_factory.mktemp("ca")))


def test_only_approved_listings_get_jobs_and_done_jobs_are_charged(world: MarketWorld) -> None:
    async def run() -> None:
        w = world
        assert w.orch.catalog() == {}
        a = w.listed("a", "20.00")
        with pytest.raises(FailedPrecondition, match=f"a's listing {a} of 'visits' is PENDING"):
            await w.submit("r0")
        w.decide(a, "approve")
        assert w.orch.catalog()["visits"].holders == ("a",)
        view = await w.submit("r1")
        assert [t.party for t in view.tasks] == ["a"], "b is not approved: it gets no task"
        await w.contribute("a", [1, 2, 3])
        assert w.orch.view(view.job_id).state == JobState.DONE and w.decrypt(view.job_id) == 6
        lines = [(r["holder"], r["kind"], r["amount"]) for r in w.store.charges(job_id=view.job_id)]
        assert lines == [("a", "holder", "20.00"), ("", "fee", "2.00")]
        assert w.store.charges(job_id=view.job_id)[0]["at"] == w.store.job(view.job_id).finished_at  # type: ignore[union-attr]

    asyncio.run(run())


def test_a_delisting_ends_open_tasks_and_the_job_costs_only_what_was_contributed(world: MarketWorld) -> None:
    async def run() -> None:
        w = world
        listings = {p: w.listed(p, price) for p, price in (("a", "20.00"), ("b", "5.00"))}
        for listing_id in listings.values():
            w.decide(listing_id, "approve")
        view = await w.submit("r1")
        assert sorted(t.party for t in view.tasks) == ["a", "b"]
        await w.contribute("a", [4])
        w.decide(listings["b"], "delist", "consent under audit")
        cancelled = [m for m in w.dispatcher.to("b") if isinstance(m, CancelTask)]
        assert cancelled and "consent under audit" in cancelled[-1].reason
        done = await final(w, view.job_id)  # evaluated soon after, on the loop, combined off it
        assert done.state == JobState.DONE and w.decrypt(view.job_id) == 4
        assert {t.party: t.state for t in done.tasks} == {"a": TaskState.CONTRIBUTED, "b": TaskState.CANCELLED}
        assert [(r["holder"], r["amount"]) for r in w.store.charges(job_id=view.job_id)] == [("a", "20.00"),
                                                                                             ("", "2.00")]
        with pytest.raises(FailedPrecondition, match="is DELISTED \\(delist: consent under audit\\)"):
            await w.submit("r2", parties=["b"])

    asyncio.run(run())


def test_failed_and_cancelled_jobs_cost_nothing(world: MarketWorld) -> None:
    async def run() -> None:
        w = world
        w.decide(w.listed("a", "20.00"), "approve")
        cancelled = await w.submit("r1")
        await w.orch.cancel(cancelled.job_id, "buyer")
        refused = await w.submit("r2")
        task = w.dispatcher.tasks_for("a")[-1]
        await w.orch.refusal("a", task.task_id, "not for this buyer")
        assert w.orch.view(refused.job_id).state == JobState.FAILED
        assert w.store.charges() == []

    asyncio.run(run())
