"""PSI, cardinality-only, join-and-sum and unbalanced jobs through real processes."""

from __future__ import annotations

import base64
import json
import random
from decimal import Decimal
from fractions import Fraction
from typing import Iterator

import grpc
import pytest

from datawharf.errors import InvalidArgument, JobFailed, NotFound, PermissionDenied
from datawharf.identity import caller_metadata
from datawharf.model import PsiJob, PsiMode
from datawharf.serde import psi_to_proto
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc, common_pb2
from tests.exchange import Exchange, FakeParty
from tests.leaks import find_any


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    ex = Exchange(tmp_path_factory.mktemp("psi"), parties=("st-mary", "riverside"), rows=400, wire_log=True)
    try:
        yield ex.start()
    finally:
        ex.stop()


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
    log = (exchange.logs / "st-mary.log").read_text()
    assert log.count("psi-unbalanced on visits") == 2


def test_errors(exchange: Exchange) -> None:
    with exchange.client() as c:
        with pytest.raises(InvalidArgument, match="several holders .*name one with --party"):
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
    channel = grpc.insecure_channel(exchange.address)
    stub = buyer_pb2_grpc.BuyerServiceStub(channel)
    md = caller_metadata("acme-insurance")
    big = PsiJob("visits", "patient_id", PsiMode.INTERSECTION, buyer_set_size=(1 << 22) + 1)
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitJob(buyer_pb2.SubmitJobRequest(request_id="big", psi=psi_to_proto(big), parties=["st-mary"]),
                       metadata=md, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "4194304" in err.value.details()
    job = stub.SubmitJob(buyer_pb2.SubmitJobRequest(
        request_id="odd", psi=psi_to_proto(PsiJob("visits", "patient_id", PsiMode.INTERSECTION, buyer_set_size=2)),
        parties=["st-mary"]), metadata=md, timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.DownloadSet(buyer_pb2.DownloadSetRequest(job_id=job.job_id, stage="D"), metadata=md, timeout=10))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    out_of_order = [buyer_pb2.SetUpload(job_id=job.job_id, chunk=common_pb2.SetChunk(stage="A", seq=1, data=b"\x09" * 64,
                                                                                     last=True))]
    with pytest.raises(grpc.RpcError) as err:
        stub.UploadSet(iter(out_of_order), metadata=md, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "chunk 1" in err.value.details()
    with exchange.client() as c:
        assert c.status(job.job_id).state == "FAILED"
    channel.close()


def test_holder_that_vanishes_fails_the_job_at_its_deadline(exchange: Exchange) -> None:
    fake = FakeParty(exchange.address, "mallet")
    try:
        exchange.wait_online(("mallet",))
        with exchange.client() as c:
            with pytest.raises(JobFailed, match="deadline passed"):
                import threading

                threading.Timer(1.0, fake.close).start()
                c.psi("visits", "patient_id", ["a", "b", "c"], party="mallet", timeout_s=3, parallel=False)
    finally:
        fake.close()


def test_nothing_raw_crosses_the_wire_and_buyer_reads_only_its_stages(exchange: Exchange) -> None:
    ids, _ = buyer_list(exchange, seed=5)
    with exchange.client() as c:
        c.psi("visits", "patient_id", ids, party="st-mary", parallel=False)
        c.psi("visits", "patient_id", ids, party="st-mary", mode="sum", value_columns=["cost"])
        c.psi("visits", "patient_id", ids, party="st-mary", mode="unbalanced")
    records = [json.loads(line) for line in exchange.wire_log.read_text().splitlines()]  # type: ignore[union-attr]
    blob = b"\x00".join(base64.b64decode(r["bytes"]) for r in records)
    rows = exchange.rows_of(["st-mary", "riverside"])
    raw_ids = {r["patient_id"] for r in rows} | {i.strip() for i in ids} | {i.strip().lower() for i in ids}
    assert not find_any(blob, [x.encode() for x in raw_ids])
    costs = {r["cost"] for r in rows if len(r["cost"]) >= 6}
    assert not find_any(blob, [c.encode() for c in costs])
    downloads = [buyer_pb2.DownloadSetRequest.FromString(base64.b64decode(r["bytes"])).stage
                 for r in records if r["method"].endswith("/DownloadSet") and r["direction"] == "in"]
    assert {"W", "S", "E"} <= set(downloads)  # and a refused attempt at D, from test_limits
    sent_to_buyer = {common_pb2.SetChunk.FromString(base64.b64decode(r["bytes"])).stage
                     for r in records if r["method"].endswith("/DownloadSet") and r["direction"] == "out"}
    assert sent_to_buyer <= {"W", "S", "E"}
