from decimal import Decimal

import pytest

from datawharf.errors import InvalidArgument, ResourceExhausted
from datawharf.filters import Condition, Op
from datawharf.model import AggregateJob, ColumnKind, ColumnSpec, GroupBy, JobView, Listing, TaskView, round_rows
from datawharf import serde
from datawharf.v1 import common_pb2
from protocols.figures import Statistic
from protocols.schemes import Backend, PublicParams

N = 2**2047 + 12345
PARAMS = PublicParams(Backend.PAILLIER_PACKED, 6, 3, paillier_n=N, slot_bits=64)


def job() -> AggregateJob:
    return AggregateJob(
        "visits", "cost", Statistic.VARIANCE,
        (Condition("age", Op.GE, Decimal("65")), Condition("dept", Op.EQ, "x")), 2, PARAMS,
        group_by=GroupBy("dept", ("a", "b")),
    )


def test_aggregate_spec_round_trip() -> None:
    msg = serde.aggregate_to_proto(job())
    again = common_pb2.AggregateSpec.FromString(msg.SerializeToString())
    assert serde.aggregate_from_proto(again) == job()


def test_histogram_and_vector_specs_round_trip() -> None:
    hist = AggregateJob("v", "age", Statistic.HISTOGRAM, (), 0, PublicParams(Backend.BFV, 3, 2, public_context=b"x"),
                        bin_edges=(Decimal(0), Decimal("17.5"), Decimal(65), Decimal(120)))
    assert serde.aggregate_from_proto(serde.aggregate_to_proto(hist)) == hist
    vec = AggregateJob("v", "daily", Statistic.SUM, (), 1, PublicParams(Backend.CKKS, 24, 2, public_context=b"x"), dimension=24)
    assert serde.aggregate_from_proto(serde.aggregate_to_proto(vec)) == vec


def test_job_view_carries_no_key_material() -> None:
    view = JobView("job-1", "r", "b", "DONE", "", job(), 2, 1.0, 2.0, 3.0, [])
    msg = serde.job_to_proto(view)
    assert not msg.aggregate.encryption.paillier_n and msg.aggregate.encryption.slot_bits == 64


def test_listing_round_trip() -> None:
    listing = Listing("v", (ColumnSpec("a", ColumnKind.INT), ColumnSpec("c", ColumnKind.DECIMAL, 2),
                            ColumnSpec("d", ColumnKind.STRING, categories=("x", "y")),
                            ColumnSpec("e", ColumnKind.VECTOR, 1, 24)), 1200, "d")
    assert serde.listing_from_proto(serde.listing_to_proto(listing)) == listing


def test_job_view_round_trip() -> None:
    view = JobView("job-1", "r", "b", "FAILED", "why", job(), 2, 1.0, 2.0, 3.0, [TaskView("p", "REFUSED", "no")])
    back = serde.job_from_proto(serde.job_to_proto(view))
    assert back.tasks == view.tasks and back.spec.encryption.paillier_n == 0


@pytest.mark.parametrize(
    "mutate, err, match",
    [
        (lambda m: m.ClearField("dataset"), InvalidArgument, "no dataset"),
        (lambda m: m.ClearField("column"), InvalidArgument, "no column"),
        (lambda m: setattr(m, "statistic", 0), InvalidArgument, "no statistic"),
        (lambda m: m.encryption.ClearField("paillier_n"), InvalidArgument, "no Paillier public key"),
        (lambda m: setattr(m.encryption, "paillier_n", b"\x01" * 2000), ResourceExhausted, "larger than"),
        (lambda m: setattr(m.encryption, "backend", 0), InvalidArgument, "no encryption backend"),
        (lambda m: setattr(m.encryption, "length", 5), InvalidArgument, "for 5 figures"),
        (lambda m: setattr(m.encryption, "public_context", b"x" * (2 << 20)), ResourceExhausted, "context larger"),
        (lambda m: m.bin_edges.extend(["1", "2"]), InvalidArgument, "only apply to the histogram statistic"),
        (lambda m: m.group_by.ClearField("categories"), InvalidArgument, "no categories"),
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


def test_histogram_edges_are_bounded_like_filter_literals() -> None:
    from datawharf.errors import InvalidArgument as Invalid
    from datawharf.serde import aggregate_from_proto, aggregate_to_proto
    from tests.jobs import make_job

    _, job = make_job("histogram", "age", bins=("0", "18", "65"))
    msg = aggregate_to_proto(job)
    del msg.bin_edges[:]
    msg.bin_edges.extend(["1e999990", "1e999991"])
    with pytest.raises(Invalid, match="limited to 30 digits"):
        aggregate_from_proto(msg)
