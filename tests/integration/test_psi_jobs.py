"""PSI, cardinality-only, join-and-sum and unbalanced jobs through real processes."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import grpc
import pytest

from datawharf.errors import InvalidArgument, JobFailed
from datawharf.model import PsiJob, PsiMode
from datawharf.serde import psi_to_proto
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc, common_pb2, party_pb2
from tests.exchange import Exchange, FakeParty, StartExchange
from tests.leaks import WireRecord, find_values, read_wire_log, wire_traffic
from wharf.local import wait_for


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("psi", parties=("st-mary", "riverside"), rows=400, wire_log=True)


def wire(exchange: Exchange) -> list[WireRecord]:
    assert exchange.wire_log is not None
    return read_wire_log(exchange.wire_log)


def holder_rounds(records: list[WireRecord], job_id: str) -> tuple[list[party_pb2.Task], list[party_pb2.PsiUpload]]:
    """The tasks the gateway sent for ``job_id`` and the holder's PSI uploads for them."""
    tasks = [r.msg.task for r in records if r.type == "datawharf.v1.GatewayMessage"  # type: ignore[attr-defined]
             and r.msg.WhichOneof("body") == "task" and r.msg.task.job_id == job_id]  # type: ignore[attr-defined]
    ids = {t.task_id for t in tasks}
    uploads = [r.msg.psi for r in records if r.type == "datawharf.v1.PartyMessage"  # type: ignore[attr-defined]
               and r.msg.WhichOneof("body") == "psi" and r.msg.psi.task_id in ids]  # type: ignore[attr-defined]
    return tasks, uploads


def holder_rows(ex: Exchange) -> list[dict[str, str]]:
    return ex.rows_of(["st-mary"])


def buyer_list(ex: Exchange, seed: int = 1) -> tuple[list[str], set[str]]:
    rows = holder_rows(ex)
    rng = random.Random(seed)
    picked = rng.sample([r["patient_id"] for r in rows], 120)
    messy = [f"  {p.lower()} " if i % 3 == 0 else p for i, p in enumerate(picked)]
    others = [f"ZZ-{i:06d}" for i in range(200)]
    ids = messy + others + messy[:5]  # five duplicates
    rng.shuffle(ids)
    return ids, set(picked)


def test_intersection_matches_plain_set_intersection(exchange: Exchange) -> None:
    ids, truth = buyer_list(exchange)
    with exchange.client() as c:
        ans = c.psi("visits", "patient_id", ids, party="st-mary", parallel=False)
    assert ans.size == len(truth) and ans.holder == "st-mary"
    assert {m.strip().upper() for m in ans.matched} == truth
    assert len(ans.matched) == 125  # every input row of a matching ID, duplicates included


def test_an_id_file_streams_to_the_same_answer(exchange: Exchange, tmp_path: Path) -> None:
    """IDs from a file go through the buyer's streamed path (buyers.psi_files): the same rows match."""
    ids, truth = buyer_list(exchange, seed=3)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    with exchange.client() as c:
        listed = c.psi("visits", "patient_id", ids, party="st-mary", parallel=False)
        streamed = c.psi("visits", "patient_id", path, party="st-mary", parallel=False)
    assert streamed.size == listed.size == len(truth) and streamed.matched == ()
    assert streamed.matched_rows is not None
    assert tuple(ids[i] for i in streamed.matched_rows.tolist()) == listed.matched


def test_cardinality_only(exchange: Exchange) -> None:
    ids, truth = buyer_list(exchange, seed=2)
    with exchange.client() as c:
        ans = c.psi("visits", "patient_id", ids, party="st-mary", cardinality_only=True, parallel=False)
    assert ans.size == len(truth) and ans.matched == ()


def test_join_and_sum_matches_the_plaintext_join(exchange: Exchange) -> None:
    ids, truth = buyer_list(exchange, seed=3)
    with exchange.client() as c:
        ans = c.psi("visits", "patient_id", ids, party="st-mary", mode="sum", value_columns=["cost", "age"])
    rows = [r for r in holder_rows(exchange) if r["patient_id"] in truth]
    assert ans.size == len(truth) and ans.matched == ()
    assert ans.totals == {"cost": sum((Fraction(Decimal(r["cost"])) for r in rows), Fraction(0)),
                          "age": Fraction(sum(int(r["age"]) for r in rows))}


def test_unbalanced_twice_uses_the_published_table(exchange: Exchange) -> None:
    ids, truth = buyer_list(exchange, seed=4)
    with exchange.client() as c:
        first = c.psi("visits", "patient_id", ids, party="st-mary", mode="unbalanced")
        second = c.psi("visits", "patient_id", ids, party="st-mary", mode="unbalanced")
    assert first.size == second.size == len(truth)
    assert {m.strip().upper() for m in second.matched} == truth
    # What crossed the wire for these two jobs alone, whatever ran before them.
    records = wire(exchange)
    rounds = [holder_rounds(records, job.job_id) for job in (first, second)]
    (done1,), (done2,) = ([u for u in uploads if u.done] for _, uploads in rounds)
    stages = [{u.chunk.stage for u in uploads if u.HasField("chunk")} for _, uploads in rounds]
    offered = [[list(t.cached_tables) for t in tasks] for tasks, _ in rounds]
    epoch = done1.table_epoch
    assert epoch and "E" in stages[0]
    # The first job published its epoch's table, unless an earlier job had already.
    assert "T" in stages[0] or all(epoch in o for o in offered[0]), offered[0]
    # The second was offered that table and answered under the same epoch
    # without sending it again. (The holder starts a new epoch every
    # oprf_epoch_hours, 24 by default: two jobs a second apart straddle that
    # boundary about once in 10^5 runs.)
    assert offered[1] and all(epoch in o for o in offered[1]), f"epoch {epoch}, offered {offered[1]}"
    assert done2.table_epoch == epoch and stages[1] == {"E", "N", "P"}  # no T: the table was not resent


def test_errors(exchange: Exchange) -> None:
    with exchange.client() as c:
        with pytest.raises(InvalidArgument, match="several holders .*name one as party"):
            c.psi("visits", "patient_id", ["a"])
        with pytest.raises(InvalidArgument, match="not a join key"):
            c.psi("visits", "department", ["a"], party="st-mary")
        with pytest.raises(InvalidArgument, match="not a value column"):
            c.psi("visits", "patient_id", ["a"], party="st-mary", mode="sum", value_columns=["department"])
        with pytest.raises(InvalidArgument, match="empty"):
            c.psi("visits", "patient_id", [], party="st-mary")
        with pytest.raises(InvalidArgument, match="limit is 1024"):
            c.psi("visits", "patient_id", ["x" * 2000], party="st-mary")
        with pytest.raises(JobFailed, match="below the holder's minimum of 10"):
            c.psi("visits", "patient_id", [r["patient_id"] for r in holder_rows(exchange)[:3]], party="st-mary",
                  parallel=False)
    with exchange.client("mallory") as m:
        with pytest.raises(JobFailed, match="not granted"):
            m.psi("visits", "patient_id", ["a", "b"], party="st-mary", parallel=False)


def test_limits_and_forbidden_stages(exchange: Exchange) -> None:
    channel = exchange.channel()
    stub = buyer_pb2_grpc.BuyerServiceStub(channel)
    md = ()
    big = PsiJob("visits", "patient_id", PsiMode.INTERSECTION, buyer_set_size=(1 << 24) + 3)  # IDs + commitment
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitJob(exchange.signed(buyer_pb2.SubmitJobRequest(request_id="big", psi=psi_to_proto(big),
                                                                  parties=["st-mary"])), metadata=md, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "16777218 (16777216 IDs" in err.value.details()
    job = stub.SubmitJob(exchange.signed(buyer_pb2.SubmitJobRequest(
        request_id="odd", psi=psi_to_proto(PsiJob("visits", "patient_id", PsiMode.INTERSECTION, buyer_set_size=2)),
        parties=["st-mary"])), metadata=md, timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.DownloadSet(buyer_pb2.DownloadSetRequest(job_id=job.job_id, stage="D"), metadata=md, timeout=10))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    out_of_order = [buyer_pb2.SetUpload(job_id=job.job_id, chunk=common_pb2.SetChunk(stage="A", seq=1, data=b"\x09" * 64,
                                                                                     last=True))]
    with pytest.raises(grpc.RpcError) as err:
        stub.UploadSet(iter(out_of_order), metadata=md, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "piece 1 arrived where piece 0 was expected" in err.value.details()
    with exchange.client() as c:
        assert c.status(job.job_id).state == "FAILED"
    channel.close()


def test_holder_that_vanishes_fails_the_job_at_its_deadline(exchange: Exchange) -> None:
    fake = exchange.fake_party("mallet")
    try:
        exchange.wait_online(("mallet",))
        with exchange.client() as c, exchange.client() as watcher, ThreadPoolExecutor(1) as pool:
            running = pool.submit(c.psi, "visits", "patient_id", ["a", "b", "c"], party="mallet", timeout_s=4,
                                  parallel=False)
            task = fake.next("task").task  # the holder took the task...
            assert fake.body(task).WhichOneof("spec") == "psi"
            fake.close()  # ...and went away without a word
            # The gateway saw it go before the deadline: the task is LOST, not merely unanswered.
            wait_for("mallet's task to be LOST", lambda: {t.party: t.state for t in watcher.status(
                task.job_id).tasks} == {"mallet": "LOST"}, 3, exchange.alive)
            assert "mallet" not in next(i for i in watcher.catalog() if i.dataset == "visits").holders_online
            with pytest.raises(JobFailed) as err:
                running.result(timeout=60)
    finally:
        fake.close()
    view = err.value.view
    assert view.job_id == task.job_id and view.state == "FAILED"
    assert "mallet" in view.reason and "deadline" in view.reason, view.reason
    assert {t.party: t.state for t in view.tasks} == {"mallet": "EXPIRED"}
    assert view.finished_at >= view.deadline  # it waited for the holder to return


def test_nothing_raw_crosses_the_wire_and_buyer_reads_only_its_stages(exchange: Exchange) -> None:
    ids, _ = buyer_list(exchange, seed=5)
    with exchange.client() as c:
        c.psi("visits", "patient_id", ids, party="st-mary", parallel=False)
        c.psi("visits", "patient_id", ids, party="st-mary", mode="sum", value_columns=["cost"])
        c.psi("visits", "patient_id", ids, party="st-mary", mode="unbalanced")
    records = wire(exchange)
    traffic, _ = wire_traffic(records)
    assert traffic.unknown == []
    rows = exchange.rows_of(["st-mary", "riverside"])
    raw_ids = {r["patient_id"] for r in rows} | {i.strip() for i in ids} | {i.strip().lower() for i in ids}
    assert find_values(traffic, ["patient_id"]).found  # the search itself works: the key column's name travels
    # IDs and costs as text anywhere, as float64 and as text in the blinded
    # sets only where random points would not contain them by chance (tests/leaks.py).
    report = find_values(traffic, raw_ids | {r["cost"] for r in rows}, budget=1e-6)
    assert not report.found, f"raw values on the wire: {report.found[:5]}"
    assert report.bound <= 1e-6
    downloads = [r.msg.stage for r in records if r.method.endswith("/DownloadSet") and r.direction == "in"]  # type: ignore[attr-defined]
    assert {"W", "S", "E", "P", "R"} <= set(downloads)
    sent_to_buyer = {r.msg.stage for r in records if r.method.endswith("/DownloadSet") and r.direction == "out"}  # type: ignore[attr-defined]
    assert sent_to_buyer <= {"W", "S", "E", "P", "R"}
