"""Histograms, group-by and vector columns on every backend, through real processes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wharf.demo import DEPARTMENTS, HOSPITALS, truth_groups
from datawharf.errors import InvalidArgument
from tests.exchange import Exchange


@pytest.mark.parametrize(
    "backend, column",
    [("paillier", "hourly_patients"), ("paillier-packed", "hourly_kwh"), ("bfv", "hourly_patients"),
     ("ckks", "hourly_kwh")],
)
def test_vector_sums_on_every_backend(exchange: Exchange, backend: str, column: str) -> None:
    with exchange.client() as c:
        job = c.submit("ward_load", column, "sum", backend=backend, where="day < 10")
        answer = c.result(job, timeout_s=120)
    assert answer.backend == backend and len(answer.groups[0].values) == 24
    (want,) = truth_groups(exchange.rows_of(HOSPITALS, "ward_load"), column, "sum", "day < 10")
    if answer.exact_backend:
        assert list(answer.groups[0].values) == want
    else:
        assert answer.max_abs_error > 0
        assert max(abs(float(a) - float(b)) for a, b in zip(answer.groups[0].values, want)) <= answer.max_abs_error


def test_vector_mean_by_ward_with_ckks(exchange: Exchange) -> None:
    with exchange.client() as c:
        answer = c.result(c.submit("ward_load", "hourly_kwh", "mean", group_by="ward", backend="ckks"))
    wards = tuple(g.label for g in answer.groups)
    want = truth_groups(exchange.rows_of(HOSPITALS, "ward_load"), "hourly_kwh", "mean", "", "ward", wards)
    for g, w in zip(answer.groups, want):
        assert g.rows == 60  # 20 days × 3 holders: counts are rounded to the integers they are
        assert max(abs(float(a) - float(b)) for a, b in zip(g.values, w)) <= answer.max_abs_error


def test_histogram_matches_plaintext(exchange: Exchange) -> None:
    edges = "0,18,35,50,65,80,120"
    with exchange.client() as c:
        answer = c.result(c.submit("visits", "age", "histogram", bins=edges))
    assert answer.backend == "paillier-packed" and [g.label for g in answer.groups][0] == "[0, 18)"
    assert "northgate" not in answer.contributors  # its policy does not release histograms
    want = truth_groups(exchange.rows_of(answer.contributors), "age", "histogram",
                        bins=tuple(Decimal(e) for e in edges.split(",")))
    assert [list(g.values) for g in answer.groups] == want


def test_histogram_on_bfv(exchange: Exchange) -> None:
    edges = ",".join(str(a) for a in range(0, 101, 5))
    with exchange.client() as c:
        answer = c.result(c.submit("visits", "cost", "histogram", bins=edges, backend="bfv"))
    want = truth_groups(exchange.rows_of(answer.contributors), "cost", "histogram",
                        bins=tuple(Decimal(e) for e in edges.split(",")))
    shown = [list(g.values) if not g.suppressed_by else None for g in answer.groups]
    assert all(s is None or s == w for s, w in zip(shown, want))


def test_group_by_sums_and_suppressed_groups(exchange: Exchange) -> None:
    with exchange.client() as c:
        answer = c.result(c.submit("visits", "cost", "sum", where="age < 9", group_by="department"))
    assert [g.label for g in answer.groups] == list(DEPARTMENTS)
    rows = exchange.rows_of(answer.contributors)
    suppressed = {g.label: g.suppressed_by for g in answer.groups if g.suppressed_by}
    assert suppressed, "with few young patients some holder must withhold a department"
    for g in answer.groups:
        if g.suppressed_by:
            kept = [h for h in answer.contributors if h not in g.suppressed_by]
            rows_g = exchange.rows_of(kept)
        else:
            rows_g = rows
        (want,) = truth_groups(rows_g, "cost", "sum", f"age < 9 and department == '{g.label}'")
        assert list(g.values) == want


def test_bad_requests_for_vectors(exchange: Exchange) -> None:
    with exchange.client() as c:
        with pytest.raises(InvalidArgument, match="a histogram needs bins, e.g. bins="):
            c.submit("visits", "age", "histogram")
        with pytest.raises(InvalidArgument, match="no categories"):
            c.submit("visits", "cost", "sum", group_by="patient_id")
        with pytest.raises(InvalidArgument, match="unknown backend 'rsa'"):
            c.submit("visits", "cost", "sum", backend="rsa")
        with pytest.raises(InvalidArgument, match="strictly increasing"):
            c.submit("visits", "age", "histogram", bins="10,5")
        with pytest.raises(InvalidArgument, match="vector column"):
            c.submit("ward_load", "day", "sum", where="hourly_kwh > 3")


def test_out_of_range_values_fail_with_a_hint(exchange: Exchange) -> None:
    from buyers.client import JobFailed

    with exchange.client() as c:
        job = c.submit("visits", "cost", "variance", backend="bfv")
        with pytest.raises(JobFailed) as err:
            c.result(job)
    reasons = [t.reason for t in err.value.view.tasks]
    assert any("beyond the BFV range" in r and "paillier-packed" in r for r in reasons)
