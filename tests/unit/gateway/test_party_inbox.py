"""A party stream's contributions under its limits: task checked at the first chunk, bytes and
answers bounded, the stream ended with a status when a node keeps answering what it was not given."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import grpc

from datawharf.identity import Gate
from datawharf.v1 import common_pb2, party_pb2
from gateway.dispatch import PartySession, StreamDispatcher
from gateway.quotas import Quotas
from gateway.servicers import MAX_PARTIAL_CONTRIBUTIONS, MAX_REJECTED_ANSWERS, PartyServicer


class StubOrchestrator:
    """Knows which tasks are open; records what the servicer does with each answer."""

    def __init__(self, open_tasks: set[str]) -> None:
        self.open = open_tasks
        self.asked: list[str] = []
        self.failed: dict[str, str] = {}
        self.contributed: dict[str, bytes] = {}
        self.limits: list[str] = []
        self.quotas = Quotas(on_refusal=self.limits.append)

    def expects_answer(self, party: str, task_id: str) -> bool:
        self.asked.append(task_id)
        return task_id in self.open

    async def refusal(self, party: str, task_id: str, reason: str, *, failed: bool = False, code: str = "") -> None:
        self.failed[task_id] = reason

    async def contribution(self, party: str, task_id: str, payload: bytes, *, receipt: bytes = b"") -> None:
        self.contributed[task_id] = payload


def chunk(task_id: str, data: bytes, seq: int = 0, last: bool = True) -> party_pb2.PartyMessage:
    return party_pb2.PartyMessage(contribution=party_pb2.ContributionChunk(
        task_id=task_id, chunk=common_pb2.Chunk(seq=seq, data=data, last=last)))


def read(orch: StubOrchestrator, messages: list[party_pb2.PartyMessage], *, max_stream_bytes: int = 1 << 20
         ) -> PartySession:
    servicer = PartyServicer(orch, StreamDispatcher(), Gate(None), max_stream_bytes=max_stream_bytes)  # type: ignore[arg-type]
    session = PartySession("p")

    async def stream() -> AsyncIterator[party_pb2.PartyMessage]:
        for m in messages:
            yield m

    asyncio.run(servicer._read("p", session, stream()))
    return session


def test_an_answer_to_an_unknown_task_is_refused_at_its_first_chunk() -> None:
    orch = StubOrchestrator({"t1"})
    big = b"x" * 100_000
    msgs = [chunk("invented", big, 0, False)] + [chunk("invented", big, i, False) for i in range(1, 20)]
    session = read(orch, msgs + [chunk("t1", b"ok")])
    # Asked once, at the first chunk; the other 19 chunks were dropped without a question or a byte kept.
    assert orch.asked == ["invented", "t1"]
    assert orch.contributed == {"t1": b"ok"} and not orch.failed and session.error is None


def test_a_stream_that_keeps_answering_tasks_it_was_not_given_is_ended() -> None:
    orch = StubOrchestrator(set())
    session = read(orch, [chunk(f"invented-{i}", b"x") for i in range(MAX_REJECTED_ANSWERS + 10)])
    assert len(orch.asked) == MAX_REJECTED_ANSWERS + 1  # nothing read after the limit
    assert session.error is not None and session.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"answers to {MAX_REJECTED_ANSWERS + 1} tasks it was not given" in session.error.message


def test_bytes_half_sent_on_one_stream_are_bounded() -> None:
    orch = StubOrchestrator({"t1", "t2"})
    session = read(orch, [chunk("t1", b"a" * 600, 0, False), chunk("t2", b"b" * 600, 0, False),
                          chunk("t2", b"b", 1, True), chunk("t1", b"a", 1, True)], max_stream_bytes=1000)
    assert "more than 1000 bytes of contributions half-sent on one stream" in orch.failed["t2"]
    assert orch.contributed == {"t1": b"a" * 601}  # the other answer goes through
    assert orch.asked == ["t1", "t2"] and orch.limits == ["contribution_bytes"] and session.error is None


def test_contributions_half_sent_at_once_are_bounded() -> None:
    tasks = [f"t{i}" for i in range(MAX_PARTIAL_CONTRIBUTIONS + 1)]
    orch = StubOrchestrator(set(tasks))
    read(orch, [chunk(t, b"x", 0, False) for t in tasks])
    assert list(orch.failed) == [tasks[-1]]
    assert f"more than {MAX_PARTIAL_CONTRIBUTIONS} contributions half-sent" in orch.failed[tasks[-1]]
    assert orch.limits == ["contributions_half_sent"]


def test_chunks_out_of_order_fail_the_answer_once() -> None:
    orch = StubOrchestrator({"t1"})
    read(orch, [chunk("t1", b"a", 0, False), chunk("t1", b"a", 5, False), chunk("t1", b"a", 6, True)])
    assert "piece 5 arrived where piece 1 was expected" in orch.failed["t1"]
    assert orch.asked == ["t1"] and not orch.contributed


def test_refusals_and_psi_answers_for_tasks_not_given_count_too() -> None:
    orch = StubOrchestrator({"t1"})
    refusal = party_pb2.PartyMessage(refusal=party_pb2.TaskRefusal(task_id="invented", reason="no"))
    psi = party_pb2.PartyMessage(psi=party_pb2.PsiUpload(task_id="invented-psi"))
    failure = party_pb2.PartyMessage(failure=party_pb2.TaskFailure(task_id="t1", reason="broke"))
    session = read(orch, [failure] + [refusal, psi] * MAX_REJECTED_ANSWERS)
    assert orch.failed == {"t1": "broke"}  # the one for a task it was given went through
    assert len(orch.asked) == MAX_REJECTED_ANSWERS + 2
    assert session.error is not None and session.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
