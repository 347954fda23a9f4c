"""Aggregation over a real gateway and three real party processes."""

from __future__ import annotations

from fractions import Fraction

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wharf.demo import HOSPITALS, truth
from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound
from datawharf.serde import aggregate_to_proto
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc
from buyers.client import JobFailed
from tests.exchange import Exchange
from tests.jobs import make_job


@pytest.mark.parametrize(
    "stat, column, where",
    [
        ("sum", "cost", ""),
        ("count", "patient_id", ""),
        ("mean", "cost", "age >= 65"),
        ("variance", "age", "department == 'oncology'"),
        ("mean", "age", "cost < 0"),
        ("sum", "cost", "department != 'cardiology' and age <= 40 and cost >= 12.5"),
    ],
)
def test_statistics_match_plaintext(exchange: Exchange, stat: str, column: str, where: str) -> None:
    with exchange.client() as c:
        answer = c.result(c.submit("visits", column, stat, where=where, timeout_s=60), timeout_s=90)
    expected_holders = [h for h in HOSPITALS if not (stat == "variance" and h == "northgate")]
    assert sorted(answer.contributors) == sorted(expected_holders)
    assert answer.exact == truth(exchange.rows_of(answer.contributors), column, stat, where)
    if stat == "variance":
        (refused,) = [t for t in answer.view.tasks if t.state == "REFUSED"]
        assert refused.party == "northgate" and "'variance' is not allowed" in refused.reason


def test_catalog_lists_schema_and_rounded_rows(exchange: Exchange) -> None:
    with exchange.client() as c:
        items = {i.dataset: i for i in c.catalog()}
    item = items["visits"]
    assert set(items) == {"visits", "ward_load"} and set(item.holders_online) == set(HOSPITALS)
    assert {col.name: (col.kind.value, col.decimals) for col in item.columns} == {
        "patient_id": ("string", 0), "age": ("int", 0), "cost": ("decimal", 2), "department": ("string", 0)}
    assert item.approx_rows == 3 * 800
    assert len(next(c for c in item.columns if c.name == "department").categories) == 5
    hourly = next(c for c in items["ward_load"].columns if c.name == "hourly_kwh")
    assert (hourly.kind.value, hourly.dimension, hourly.decimals) == ("vector", 24, 2)


def test_buyer_without_grant_sees_every_refusal(exchange: Exchange) -> None:
    with exchange.client("mallory") as c:
        job = c.submit("visits", "cost", "sum", timeout_s=30)
        with pytest.raises(JobFailed) as err:
            c.result(job, timeout_s=60)
    view = err.value.view
    assert view.state == "FAILED"
    assert {t.party: t.state for t in view.tasks} == {h: "REFUSED" for h in HOSPITALS}
    assert all("'mallory' is not granted" in t.reason for t in view.tasks)
    assert "0 of 3 holder(s) contributed" in view.reason


def test_too_few_rows_is_refused_with_threshold_not_count(exchange: Exchange) -> None:
    with exchange.client() as c:
        job = c.submit("visits", "cost", "sum", where="age < 1 and department == 'oncology'", min_parties=1)
        with pytest.raises(JobFailed) as err:
            c.result(job, timeout_s=60)
    assert all("fewer rows than the holder's minimum (min_rows)" in t.reason for t in err.value.view.tasks)


def test_min_parties_fails_when_refusals_leave_too_few(exchange: Exchange) -> None:
    with exchange.client() as c:
        job = c.submit("visits", "cost", "variance", min_parties=3)
        # Holders answer in any order: the refusal may land before or after another's contribution.
        with pytest.raises(JobFailed, match="cannot succeed: [012] of 3 holder.* 3 required") as err:
            c.result(job, timeout_s=60)
    # Failing early cancels what the other holders were still computing.
    assert {t.party: t.state for t in err.value.view.tasks}["northgate"] == "REFUSED"
    assert {t.state for t in err.value.view.tasks} <= {"REFUSED", "CANCELLED", "CONTRIBUTED"}


def test_idempotent_submission_over_the_wire(exchange: Exchange) -> None:
    with exchange.client() as c:
        a = c.submit("visits", "cost", "sum", request_id="fixed-id-1")
        c.result(a)
        # The same request again: the same job (same key, so same spec).
        stub = buyer_pb2_grpc.BuyerServiceStub(c._channel)
        again = stub.SubmitJob(exchange.signed(
            buyer_pb2.SubmitJobRequest(request_id="fixed-id-1", aggregate=aggregate_to_proto(a.spec))))
        assert again.job_id == a.job_id and again.state == buyer_pb2.JOB_STATE_DONE


def _raw(exchange: Exchange, caller: str | None = "acme-insurance"):  # type: ignore[no-untyped-def]
    channel = exchange.channel(caller)
    return channel, buyer_pb2_grpc.BuyerServiceStub(channel), ()


def _spec():  # type: ignore[no-untyped-def]
    return aggregate_to_proto(make_job("sum", "cost")[1])


@pytest.mark.parametrize(
    "mutate, code, text",
    [
        (lambda s: setattr(s, "dataset", "nope"), grpc.StatusCode.NOT_FOUND, "'nope' is not listed"),
        (lambda s: setattr(s, "column", "weight"), grpc.StatusCode.NOT_FOUND, "column 'weight'"),
        (lambda s: s.where.add(column="age", op=0, number="3"), grpc.StatusCode.INVALID_ARGUMENT, "comparison"),
        (lambda s: s.where.add(column="age", op=1, text="old"), grpc.StatusCode.INVALID_ARGUMENT, "numeric"),
        (lambda s: setattr(s.encryption, "paillier_n", b"\x03" * 64), grpc.StatusCode.INVALID_ARGUMENT, "at least 2048"),
        (lambda s: setattr(s.encryption, "paillier_n", b"\x03" * 4096), grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than"),
        (lambda s: setattr(s.encryption, "max_contributors", 2), grpc.StatusCode.FAILED_PRECONDITION, "headroom"),
        (lambda s: setattr(s, "dimension", 3), grpc.StatusCode.INVALID_ARGUMENT, "for 1 figures"),
    ],
)
def test_bad_specs_get_status_codes(exchange: Exchange, mutate, code, text) -> None:  # type: ignore[no-untyped-def]
    channel, stub, md = _raw(exchange)
    spec = _spec()
    mutate(spec)
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitJob(exchange.signed(buyer_pb2.SubmitJobRequest(request_id="x", aggregate=spec)), metadata=md,
                       timeout=10)
    assert err.value.code() == code and text in err.value.details()
    channel.close()


def test_client_side_errors(exchange: Exchange) -> None:
    with exchange.client() as c:
        with pytest.raises(InvalidArgument, match="^where: .*character 6"):
            c.submit("visits", "cost", "sum", where="age >> 3")
        with pytest.raises(NotFound, match="dataset 'nope'"):
            c.submit("nope", "cost", "sum")
        with pytest.raises(InvalidArgument, match="unknown statistic 'median'"):
            c.submit("visits", "cost", "median")


def test_callers_and_ownership(exchange: Exchange) -> None:
    channel, stub, _ = _raw(exchange, None)  # TLS, but no client certificate: the handshake fails
    with pytest.raises(grpc.RpcError) as err:
        stub.ListCatalog(buyer_pb2.ListCatalogRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()
    with exchange.client() as c:
        job = c.submit("visits", "cost", "sum")
        c.wait(job)
    with exchange.client("mallory") as m:
        with pytest.raises(NotFound, match="no job"):
            m.status(job.job_id)
        with pytest.raises(NotFound):
            m.fetch_result(job.job_id)
        with pytest.raises(NotFound):
            m.status("job-does-not-exist")


def test_cancel_finished_job_is_refused(exchange: Exchange) -> None:
    with exchange.client() as c:
        job = c.submit("visits", "cost", "count")
        c.wait(job)
        with pytest.raises(FailedPrecondition, match="already DONE"):
            c.cancel(job)


def test_health_serving(exchange: Exchange) -> None:
    with exchange.channel() as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "datawharf.v1.BuyerService", "datawharf.v1.PartyService"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_mean_value_is_float_of_exact(exchange: Exchange) -> None:
    with exchange.client() as c:
        a = c.result(c.submit("visits", "cost", "mean"))
    assert a.value == float(a.exact) and isinstance(a.exact, Fraction)
