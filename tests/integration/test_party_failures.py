"""Misbehaving and vanishing holders, against a real gateway.

Two real party processes plus a holder driven by hand (FakeParty) that lists
the same dataset and then sends garbage, disconnects mid-job, or answers for
tasks it was never given.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from wharf.demo import truth
from datawharf.errors import FailedPrecondition
from datawharf.serde import aggregate_from_proto
from datawharf.v1 import common_pb2, party_pb2
from buyers.client import JobFailed
from tests.exchange import Exchange, FakeParty, StartExchange

REAL = ("st-mary", "riverside")


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("failures", parties=REAL, rows=300)


@pytest.fixture()
def fake(exchange: Exchange) -> Iterator[FakeParty]:
    f = exchange.fake_party("mallet")
    exchange.wait_online(("mallet",))
    try:
        yield f
    finally:
        f.close()


def states(view) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {t.party: t.state for t in view.tasks}


def test_invalid_ciphertext_is_rejected_and_job_unharmed(exchange: Exchange, fake: FakeParty) -> None:
    with exchange.client() as c:
        job = c.submit("visits", "cost", "sum", min_parties=2)
        task = fake.next("task").task
        n = aggregate_from_proto(fake.body(task).aggregate).encryption.paillier_n
        width = ((n * n).bit_length() + 7) // 8
        fake.send_chunk(task.task_id, common_pb2.EncryptedFigures(
            ciphertexts=[(n * 7).to_bytes(width, "big")]).SerializeToString())
        notice = fake.next("notice").notice
        assert notice.task_id == task.task_id and "invalid contribution" in notice.message
        answer = c.result(job)
    assert states(answer.view) == {"mallet": "FAILED", "riverside": "CONTRIBUTED", "st-mary": "CONTRIBUTED"}
    assert answer.exact == truth(exchange.rows_of(REAL), "cost", "sum", "")


@pytest.mark.parametrize("backend", ["ckks", "bfv"])
def test_corrupt_he_vectors_are_rejected(exchange: Exchange, fake: FakeParty, backend: str) -> None:
    from protocols.aggregate import Holder

    with exchange.client() as c:
        job = c.submit("ward_load", "hourly_kwh" if backend == "ckks" else "hourly_patients", "sum", backend=backend)
        task = fake.next("task").task
        spec = aggregate_from_proto(fake.body(task).aggregate)
        good = Holder(spec.request).contribute([1] * spec.layout.length)
        flipped = bytearray(good.ciphertexts[0])
        flipped[len(flipped) // 2 :] = bytes(len(flipped) - len(flipped) // 2)  # zero the second half
        fake.send_chunk(task.task_id, common_pb2.EncryptedFigures(ciphertexts=[bytes(flipped)]).SerializeToString())
        answer = c.result(job)
    reason = {t.party: t.reason for t in answer.view.tasks}["mallet"]
    assert states(answer.view)["mallet"] == "FAILED" and "invalid contribution" in reason
    assert sorted(answer.contributors) == sorted(REAL)


def test_garbage_bytes_and_out_of_order_chunks(exchange: Exchange, fake: FakeParty) -> None:
    with exchange.client() as c:
        job = c.submit("visits", "cost", "count")
        task = fake.next("task").task
        fake.send_chunk(task.task_id, b"\x00\x01", seq=1, last=True)  # piece 1 before piece 0
        answer = c.result(job)
        reason = {t.party: t.reason for t in answer.view.tasks}["mallet"]
        assert "piece 1 arrived where piece 0 was expected" in reason
        job2 = c.submit("visits", "cost", "count")
        task2 = fake.next("task").task
        fake.send_chunk(task2.task_id, b"\xff\xfe this is not protobuf")
        answer2 = c.result(job2)
        assert states(answer2.view)["mallet"] == "FAILED"
        assert answer2.exact == len(exchange.rows_of(REAL))


def test_answer_for_unknown_task_gets_a_notice(exchange: Exchange, fake: FakeParty) -> None:
    fake.send_chunk("task-made-up", b"")
    assert "unknown task 'task-made-up'" in fake.next("notice").notice.message
    fake.send(party_pb2.PartyMessage(refusal=party_pb2.TaskRefusal(task_id="task-other", reason="x")))
    assert "unknown task" in fake.next("notice").notice.message


def test_result_before_done_is_failed_precondition(exchange: Exchange, fake: FakeParty) -> None:
    with exchange.client() as c:
        job = c.submit("visits", "cost", "sum", timeout_s=30)
        fake.next("task")
        with pytest.raises(FailedPrecondition, match="a result exists only once it is DONE"):
            c.fetch_result(job.job_id)
        cancelled = c.cancel(job)
        assert cancelled.state == "CANCELLED"
        assert fake.next("cancel").cancel.reason == "job cancelled by the buyer"


def test_disconnect_mid_job_completes_when_threshold_holds(exchange: Exchange, fake: FakeParty) -> None:
    with exchange.client() as c:
        job = c.submit("visits", "cost", "mean", min_parties=2, timeout_s=30)
        fake.next("task")
        fake.close()
        answer = c.result(job)
    assert states(answer.view)["mallet"] in ("LOST", "EXPIRED")
    assert answer.exact == truth(exchange.rows_of(REAL), "cost", "mean", "")


def test_disconnect_below_threshold_fails_at_deadline_with_reason(exchange: Exchange, fake: FakeParty) -> None:
    with exchange.client() as c:
        started = time.monotonic()
        job = c.submit("visits", "cost", "sum", min_parties=3, timeout_s=3)
        fake.next("task")
        fake.close()
        with pytest.raises(JobFailed) as err:
            c.result(job, timeout_s=30)
    view = err.value.view
    assert time.monotonic() - started >= 2.5  # it waited for the holder to return
    assert "deadline passed with 2 of 3 holder(s) contributed, 3 required" in view.reason
    assert "mallet expired" in view.reason
    assert states(view)["mallet"] == "EXPIRED"


def test_party_nodes_reconnect_after_gateway_restart(exchange: Exchange) -> None:
    with exchange.client() as c:
        before = c.result(c.submit("visits", "age", "sum"))
    port = exchange.address
    exchange.stop_gateway()
    exchange.start_gateway(listen=port)
    exchange.wait_online(REAL, timeout_s=60)
    with exchange.client() as c:
        after = c.result(c.submit("visits", "age", "sum"))
        assert after.exact == before.exact
        assert c.status(before.job_id).state == "DONE"  # jobs survive in the store
