"""Per-buyer quotas and the spool's disk quota: each refusal says why and when to retry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, Iterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from datawharf.errors import NotFound
from datawharf.messages import StagePiece
from datawharf.states import JobState
from gateway.quotas import RETRY_AFTER_KEY, QuotaExceeded, Quotas, QuotaSettings, refusal_counter
from gateway.spool import Spool, SpoolError, SpoolFull
from protocols.psi_stages import Stage, item_bytes
from protocols.schemes.paillier import generate_keypair
from tests.unit.gateway.test_orchestrator import World
from tests.unit.gateway.test_psi_jobs import World as PsiWorld


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def quotas(**kw: int) -> tuple[Quotas, Clock, list[str]]:
    clock, refused = Clock(), []
    return Quotas(QuotaSettings(**kw), clock=clock, on_refusal=refused.append), clock, refused


def test_open_jobs_are_capped_per_buyer_and_freed_when_they_end() -> None:
    q, _, refused = quotas(max_open_jobs=2, jobs_per_minute=0)
    for i in range(2):
        q.admit_job("acme")
        q.submitted("acme")
        q.opened("acme", f"j{i}")
    with pytest.raises(QuotaExceeded, match="acme already has 2 jobs running") as err:
        q.admit_job("acme")
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.value.reason == "open_jobs"
    assert "retry in" in err.value.message and dict(err.value.trailing_metadata())[RETRY_AFTER_KEY].isdigit()
    q.admit_job("other")  # another buyer is not held back
    q.ended("acme", "j0")
    q.admit_job("acme")
    assert refused == ["open_jobs"]


def test_jobs_per_minute_is_a_sliding_window_with_an_exact_retry_hint() -> None:
    q, clock, refused = quotas(max_open_jobs=0, jobs_per_minute=3)
    for dt in (0, 10, 20):
        clock.now = 100.0 + dt
        q.admit_job("acme")
        q.submitted("acme")
    clock.now = 145.0
    with pytest.raises(QuotaExceeded, match="3 jobs in the last minute, .*; retry in 15 s") as err:
        q.admit_job("acme")
    assert err.value.retry_after_s == 15 and err.value.reason == "job_rate"
    clock.now = 160.0  # the first submission left the window
    q.admit_job("acme")
    assert refused == ["job_rate"]


def test_upload_bytes_in_flight_are_capped_per_buyer() -> None:
    q, _, refused = quotas(max_upload_bytes=1000)
    q.upload("acme", 600)
    with pytest.raises(QuotaExceeded, match="more than 1000 bytes"):
        q.upload("acme", 401)
    q.upload("other", 1000)
    q.upload_over("acme", 600)
    q.upload("acme", 1000)
    assert refused == ["upload_bytes"]


def test_calls_per_caller() -> None:
    q, _, refused = quotas(max_calls_per_caller=2)
    releases = [q.admit_call("acme"), q.admit_call("acme")]
    with pytest.raises(QuotaExceeded, match="2 calls running at once"):
        q.admit_call("acme")
    releases.pop()()
    q.admit_call("acme")
    assert refused == ["calls_in_flight"]


def test_zero_means_no_limit_and_negative_is_refused() -> None:
    q, _, _ = quotas(max_open_jobs=0, jobs_per_minute=0, max_upload_bytes=0, max_calls_per_caller=0)
    for i in range(500):
        q.admit_job("acme")
        q.submitted("acme")
        q.opened("acme", str(i))
        q.upload("acme", 1 << 30)
        q.admit_call("acme")
    with pytest.raises(ValueError, match="jobs_per_minute must be 0"):
        QuotaSettings(jobs_per_minute=-1)


def test_refusals_are_counted_under_fixed_reasons() -> None:
    registry = CollectorRegistry()
    inc = refusal_counter(registry)
    inc("job_rate")
    inc("anything a caller could make up")
    assert registry.get_sample_value("wharf_quota_refusals_total", {"reason": "job_rate"}) == 1
    assert registry.get_sample_value("wharf_quota_refusals_total", {"reason": "open_jobs"}) == 0
    assert registry.get_sample_value("wharf_quota_refusals_total", {"reason": "other"}) == 1


# ------------------------------------------------------------------ the orchestrator
@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair(2048)


def test_refused_and_invalid_submissions_do_not_count_in_the_minute(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "s.db", keypair)
        w.orch.quotas = Quotas(QuotaSettings(max_open_jobs=0, jobs_per_minute=2))
        for i in range(5):
            with pytest.raises(NotFound):
                await w.submit(f"bad-{i}", dataset="no-such-dataset")
        await w.submit("r1")
        await w.submit("r1")  # a resubmission: not a second job
        await w.submit("r2")
        with pytest.raises(QuotaExceeded, match="submitted 2 jobs in the last minute"):
            await w.submit("r3")

    asyncio.run(go())


def test_submissions_past_the_quota_are_refused_resubmissions_are_not(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "s.db", keypair)
        refused: list[str] = []
        w.orch.quotas = Quotas(QuotaSettings(max_open_jobs=1, jobs_per_minute=0), on_refusal=refused.append)
        first = await w.submit("r1")
        with pytest.raises(QuotaExceeded, match="1 jobs running"):
            await w.submit("r2")
        assert (await w.submit("r1")).job_id == first.job_id  # idempotent: not a new job
        await w.orch.cancel(first.job_id, "buyer")
        second = await w.submit("r2")
        assert not second.final and refused == ["open_jobs"]

    asyncio.run(go())


def test_open_jobs_are_counted_again_after_a_restart(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path / "s.db", keypair)
        await w.submit("r1")
        w2 = World(tmp_path / "s.db", keypair)
        w2.orch.quotas = Quotas(QuotaSettings(max_open_jobs=1, jobs_per_minute=0))
        await w2.orch.recover()
        with pytest.raises(QuotaExceeded, match="1 jobs running"):
            await w2.submit("r2")

    asyncio.run(go())


# ------------------------------------------------------------------------ the spool
def test_the_spool_refuses_past_its_limit_and_forgets_the_stage(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=100)
    assert sp.append("j1", "A", 0, b"a" * 64, True, item=32, max_items=10)
    assert not sp.append("j2", "A", 0, b"b" * 32, False, item=32, max_items=10)
    with pytest.raises(SpoolFull, match=r"spool is full \(96 of 100 bytes in use, 32 more needed\).*stage A of job j2") as err:
        sp.append("j2", "A", 1, b"c" * 32, True, item=32, max_items=10)
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not isinstance(err.value, SpoolError)  # a full spool is no fault of the sender's
    # The half-written stage is gone, so it holds no room and a retry starts at chunk 0.
    assert sp.used == 64 and not (tmp_path / "j2" / "A.part").exists()
    sp.drop("j1")
    assert sp.used == 0
    assert sp.append("j2", "A", 0, b"d" * 96, True, item=32, max_items=10)
    assert sp.used == 96


def test_the_spool_counts_what_an_earlier_run_left(tmp_path: Path) -> None:
    Spool(tmp_path).append("j1", "A", 0, b"a" * 96, True, item=32, max_items=10)
    sp = Spool(tmp_path, max_bytes=100)
    assert sp.used == 96
    with pytest.raises(SpoolFull):
        sp.append("j2", "A", 0, b"b" * 32, True, item=32, max_items=10)
    sp.reset("j1", "A")
    assert sp.used == 0


# ------------------------------------------------------- uploads refused for room, then retried
def _pieces(items: list[bytes], per: int) -> Iterator[StagePiece]:
    data = b"".join(items)
    step = per * item_bytes(Stage.A)
    count = -(-len(data) // step)
    for seq in range(count):
        yield StagePiece(Stage.A, seq, data[seq * step:(seq + 1) * step], seq == count - 1)


async def _upload(world: PsiWorld, job_id: str, items: list[bytes]) -> None:
    async def pieces() -> AsyncIterator[StagePiece]:
        for p in _pieces(items, per=10):
            yield p

    await world.orch.upload_set("buyer", job_id, pieces())


def test_an_upload_past_the_buyers_bytes_is_refused_and_can_be_sent_again(tmp_path: Path) -> None:
    async def go() -> None:
        w = PsiWorld(tmp_path)
        refused: list[str] = []
        w.orch.quotas = Quotas(QuotaSettings(max_upload_bytes=1000), on_refusal=refused.append)
        job_id = await w.submit()
        a = w.buyer.blinded()  # 50 points in pieces of 10: the fourth would pass 1000 bytes
        with pytest.raises(QuotaExceeded, match="unfinished uploads would hold more than 1000 bytes"):
            await _upload(w, job_id, a)
        assert w.orch.view(job_id).state == JobState.AWAITING_BUYER and refused == ["upload_bytes"]
        assert w.orch.quotas._uploading == {}  # the refused upload's bytes no longer count
        w.orch.quotas = Quotas(QuotaSettings(max_upload_bytes=1 << 20))
        await _upload(w, job_id, a)  # again from chunk 0: the half-sent stage was forgotten
        assert w.relayed_set() == a

    asyncio.run(go())


def test_an_upload_into_a_full_spool_is_refused_and_the_job_waits(tmp_path: Path) -> None:
    async def go() -> None:
        w = PsiWorld(tmp_path)
        w.orch.psi.spool.max_bytes = 1000
        refused: list[str] = []
        w.orch.quotas = Quotas(on_refusal=refused.append)
        job_id = await w.submit()
        a = w.buyer.blinded()
        with pytest.raises(SpoolFull) as err:
            await _upload(w, job_id, a)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and refused == ["spool_full"]
        assert w.orch.view(job_id).state == JobState.AWAITING_BUYER and w.orch.psi.spool.used == 0
        w.orch.psi.spool.max_bytes = 1 << 20
        await _upload(w, job_id, a)
        assert w.relayed_set() == a

    asyncio.run(go())


def test_buyers_quiet_for_a_minute_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.quotas._MAX_TRACKED", 10)
    q, clock, _ = quotas(jobs_per_minute=5)
    for i in range(11):
        q.submitted(f"buyer-{i}")
    clock.now += 61
    q.admit_job("late")
    q.submitted("late")
    assert list(q._submitted) == ["late"]
