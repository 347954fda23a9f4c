"""The aggregation roles whole, in one process, every hop through the wire format."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from datawharf.serde import contribution_from_proto, contribution_to_proto, result_from_proto, result_to_proto
from datawharf.v1 import buyer_pb2, common_pb2
from protocols.aggregate import Buyer, Holder, choose_backend, combine
from protocols.figures import Layout, Statistic, local_figures
from protocols.schemes import Backend


def hop_contribution(c):  # type: ignore[no-untyped-def]
    return contribution_from_proto(common_pb2.EncryptedFigures.FromString(contribution_to_proto(c).SerializeToString()))


def hop_result(r):  # type: ignore[no-untyped-def]
    msg = buyer_pb2.JobResult.FromString(result_to_proto("j", r, [f"p{i}" for i in range(r.contributors)]).SerializeToString())
    return result_from_proto(msg)


def run(backend: Backend, stat: Statistic, holders: list[np.ndarray], groups=None, n_groups=1, places=2):  # type: ignore[no-untyped-def]
    dim = holders[0].shape[1] if holders[0].ndim == 2 else 1
    layout = Layout(stat, dim, n_groups)
    buyer = Buyer(layout, places, backend, len(holders))
    contributions = {}
    for i, values in enumerate(holders):
        figures, _ = local_figures(layout, values, None if groups is None else groups[i])
        contributions[f"p{i}"] = hop_contribution(Holder(buyer.request).contribute(figures))
    return buyer.finish(hop_result(combine(buyer.request, contributions)))


BACKENDS = [Backend.PAILLIER, Backend.PAILLIER_PACKED, Backend.BFV, Backend.CKKS]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stat", [Statistic.SUM, Statistic.COUNT, Statistic.MEAN, Statistic.VARIANCE])
def test_every_statistic_and_backend(backend: Backend, stat: Statistic) -> None:
    holders = [np.array([1250, -325, 10000, 1], dtype=np.int64), np.array([777, 888], dtype=np.int64),
               np.array([-5000, 4999, 0], dtype=np.int64)]
    out = run(backend, stat, holders)
    xs = [Fraction(int(v), 100) for h in holders for v in h]
    mean = sum(xs, Fraction(0)) / len(xs)
    want = {
        Statistic.SUM: sum(xs, Fraction(0)),
        Statistic.COUNT: Fraction(len(xs)),
        Statistic.MEAN: mean,
        Statistic.VARIANCE: sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (len(xs) - 1),
    }[stat]
    (g,) = out.groups
    if out.exact:
        assert g.values[0] == want
    else:
        assert abs(g.values[0] - float(want)) <= out.max_abs_error * max(1.0, abs(float(want)) / 1000)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grouped_vectors_and_one_holder(backend: Backend) -> None:
    v = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.int64)
    out = run(backend, Statistic.SUM, [v], groups=[np.array([0, 1, 1])], n_groups=3, places=0)
    vals = [[float(x) for x in g.values] for g in out.groups]
    assert np.allclose(vals, [[1, 2, 3], [11, 13, 15], [0, 0, 0]], atol=1e-3)


def test_many_holders_near_slot_limits() -> None:
    top = 2**63 - 1
    holders = [np.array([[top, -top]], dtype=np.int64) for _ in range(12)]  # one row, a 2-vector
    out = run(Backend.PAILLIER_PACKED, Statistic.SUM, holders, places=0)
    assert out.groups[0].values == (Fraction(12 * top), Fraction(-12 * top))


def test_auto_backend_choice() -> None:
    assert choose_backend(Statistic.SUM, Layout(Statistic.SUM), real_valued=True) is Backend.PAILLIER_PACKED
    assert choose_backend(Statistic.SUM, Layout(Statistic.SUM, 1000), real_valued=True) is Backend.CKKS
    assert choose_backend(Statistic.SUM, Layout(Statistic.SUM, 1000), real_valued=False) is Backend.BFV
    assert choose_backend(Statistic.HISTOGRAM, Layout(Statistic.HISTOGRAM, 1, 100), real_valued=True) is Backend.BFV
    assert choose_backend(Statistic.VARIANCE, Layout(Statistic.VARIANCE, 1000), real_valued=True) is Backend.PAILLIER_PACKED


def test_suppressed_groups_travel_with_the_result() -> None:
    layout = Layout(Statistic.COUNT, 1, 2)
    buyer = Buyer(layout, 0, Backend.PAILLIER_PACKED, 2)
    a = Holder(buyer.request).contribute([0, 5], suppressed=[0])
    b = Holder(buyer.request).contribute([3, 4])
    out = buyer.finish(hop_result(combine(buyer.request, {"a": hop_contribution(a), "b": hop_contribution(b)})))
    assert out.suppressed == {"a": (0,)}
    assert [g.values[0] for g in out.groups] == [3, 9]


@pytest.mark.parametrize("backend", [Backend.PAILLIER, Backend.PAILLIER_PACKED])
def test_a_buyer_restored_from_its_request_and_primes_decrypts_its_job(backend: Backend) -> None:
    layout = Layout(Statistic.MEAN, 1, 1)
    original = Buyer(layout, 2, backend, 2)
    request = original.request  # made (with its modulus proof) before the original is dropped
    p, q = original.paillier_primes
    restored = Buyer.restore(request, p, q)
    assert restored.request == request
    contributions = {}
    for i, values in enumerate([np.array([150, 250], dtype=np.int64), np.array([-50], dtype=np.int64)]):
        figures, _ = local_figures(layout, values, None)
        contributions[f"p{i}"] = hop_contribution(Holder(request).contribute(figures))
    out = restored.finish(hop_result(combine(request, contributions)))
    assert out.groups[0].values == (Fraction(350, 3) / 100,) and out.groups[0].rows == 3


def test_a_buyer_is_not_restored_from_wrong_primes_or_for_tenseal() -> None:
    from protocols.schemes import OutOfRange, WeakKey

    buyer = Buyer(Layout(Statistic.SUM, 1, 1), 0, Backend.PAILLIER, 2)
    p, q = buyer.paillier_primes
    with pytest.raises(WeakKey, match="do not multiply"):
        Buyer.restore(buyer.request, p, q + 4)
    bfv = Buyer(Layout(Statistic.SUM, 1, 1), 0, Backend.BFV, 2)
    with pytest.raises(OutOfRange, match="only Paillier"):
        Buyer.restore(bfv.request, p, q)
    with pytest.raises(OutOfRange, match="no Paillier primes"):
        bfv.paillier_primes
