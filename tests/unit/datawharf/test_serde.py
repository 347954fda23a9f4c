from decimal import Decimal

import pytest

from datawharf.errors import InvalidArgument, ResourceExhausted
from datawharf.filters import Condition, Op
from datawharf.model import AggregateJob, ColumnKind, ColumnSpec, JobView, Listing, TaskView, round_rows
from datawharf import serde
from datawharf.v1 import common_pb2
from protocols.paillier_aggregate import Statistic

N = 2**2047 + 12345


def job() -> AggregateJob:
    return AggregateJob(
        "visits", "cost", Statistic.VARIANCE,
        (Condition("age", Op.GE, Decimal("65")), Condition("dept", Op.EQ, "x")), 2, N,
    )


def test_aggregate_spec_round_trip() -> None:
    msg = serde.aggregate_to_proto(job())
    again = common_pb2.AggregateSpec.FromString(msg.SerializeToString())
    assert serde.aggregate_from_proto(again) == job()


def test_listing_round_trip() -> None:
    listing = Listing("v", (ColumnSpec("a", ColumnKind.INT), ColumnSpec("c", ColumnKind.DECIMAL, 2)), 1200, "d")
    assert serde.listing_from_proto(serde.listing_to_proto(listing)) == listing


def test_job_view_round_trip() -> None:
    view = JobView("job-1", "r", "b", "FAILED", "why", job(), 2, 1.0, 2.0, 3.0, [TaskView("p", "REFUSED", "no")])
    assert serde.job_from_proto(serde.job_to_proto(view)) == view


def test_figures_round_trip() -> None:
    cts = (1, N * N - 1, 12345)
    assert serde.figures_from_proto(serde.figures_to_proto(cts, N), N) == cts


@pytest.mark.parametrize(
    "mutate, err, match",
    [
        (lambda m: m.ClearField("dataset"), InvalidArgument, "no dataset"),
        (lambda m: m.ClearField("column"), InvalidArgument, "no column"),
        (lambda m: setattr(m, "statistic", 0), InvalidArgument, "no statistic"),
        (lambda m: m.public_key.ClearField("n"), InvalidArgument, "no Paillier public key"),
        (lambda m: setattr(m.public_key, "n", b"\x01" * 2000), ResourceExhausted, "larger than"),
        (lambda m: setattr(m.where[0], "op", 0), InvalidArgument, "comparison"),
        (lambda m: setattr(m.where[0], "number", "abc"), InvalidArgument, "not a number"),
        (lambda m: setattr(m.where[0], "number", "NaN"), InvalidArgument, "finite"),
        (lambda m: m.where[0].ClearField("number"), InvalidArgument, "no value"),
        (lambda m: setattr(m, "decimals", 40), InvalidArgument, "at most 12"),
    ],
)
def test_malformed_specs_are_refused(mutate, err, match) -> None:  # type: ignore[no-untyped-def]
    msg = serde.aggregate_to_proto(job())
    mutate(msg)
    with pytest.raises(err, match=match):
        serde.aggregate_from_proto(msg)


def test_round_rows_hides_exact_counts() -> None:
    assert [round_rows(x) for x in (7, 57, 123, 3456, 99_999)] == [7, 50, 120, 3500, 100_000]
