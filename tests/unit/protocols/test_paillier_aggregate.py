"""The Paillier aggregation protocol whole, in one process, every hop serialised."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from phe import paillier

from datawharf.serde import figures_from_proto, figures_to_proto
from datawharf.v1 import common_pb2
from protocols import paillier_aggregate as pa
from protocols.fixed_point import scale_column


@pytest.fixture(scope="module")
def keypair() -> tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey]:
    return paillier.generate_paillier_keypair(n_length=2048)


def wire(ciphertexts: tuple[int, ...], n: int) -> tuple[int, ...]:
    """Serialise and parse back, as every hop on the network does."""
    data = figures_to_proto(ciphertexts, n).SerializeToString()
    return figures_from_proto(common_pb2.EncryptedFigures.FromString(data), n)


def run(keypair, statistic: str, columns: list[list[str | float]], places: int = 2) -> pa.Outcome:  # type: ignore[no-untyped-def]
    buyer = pa.Buyer(pa.Statistic(statistic), places, keypair=keypair)
    request = buyer.request
    contributions = []
    for values in columns:
        holder = pa.Holder(request)
        c = holder.contribute(scale_column(np.array(values, dtype=float), places))
        contributions.append(pa.Contribution(wire(c.ciphertexts, request.public_n)))
    total = pa.combine(request, contributions)
    return buyer.finish(pa.AggregateResult(wire(total.ciphertexts, request.public_n)))


HOLDERS = [[12.5, -3.25, 100.0, 0.01], [7.77, 8.88], [-50.0, 49.99, 0.0]]


def exact(xs: list[float]) -> list[Fraction]:
    return [Fraction(str(x)) for x in xs]


@pytest.mark.parametrize("statistic", ["sum", "count", "mean", "variance"])
def test_every_statistic_matches_plaintext(keypair, statistic: str) -> None:
    xs = exact([x for h in HOLDERS for x in h])
    n = len(xs)
    mean = sum(xs, Fraction(0)) / n
    want = {
        "sum": sum(xs, Fraction(0)),
        "count": Fraction(n),
        "mean": mean,
        "variance": sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (n - 1),
    }[statistic]
    out = run(keypair, statistic, HOLDERS)
    assert out.value == want
    if statistic != "sum":
        assert out.rows == n


def test_negative_total(keypair) -> None:
    assert run(keypair, "sum", [[-1.5, -2.25], [-0.25]]).value == Fraction(-4)


def test_zero_rows_sum_is_zero_and_mean_is_undefined(keypair) -> None:
    assert run(keypair, "sum", [[], []]).value == 0
    assert run(keypair, "count", [[], []]).value == 0
    with pytest.raises(pa.EmptyAggregate, match="no rows"):
        run(keypair, "mean", [[], []])
    with pytest.raises(pa.EmptyAggregate, match="at least 2"):
        run(keypair, "variance", [[5.0], []])


def test_large_sums_stay_exact(keypair) -> None:
    big = [2**52 - 1] * 1000  # near the fixed-point limit, many rows
    out = run(keypair, "variance", [big, [-(2**52 - 1)] * 1000], places=0)
    xs = [Fraction(v) for v in big + [-(2**52 - 1)] * 1000]
    mean = sum(xs, Fraction(0)) / len(xs)
    assert out.value == sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (len(xs) - 1)


def test_single_holder_total_is_rerandomised(keypair) -> None:
    buyer = pa.Buyer(pa.Statistic.SUM, 0, keypair=keypair)
    c = pa.Holder(buyer.request).contribute(np.array([1, 2, 3], dtype=np.int64))
    total = pa.combine(buyer.request, [c])
    raw = pa.raw_combine(buyer.request, [c])
    assert raw.ciphertexts == c.ciphertexts
    assert total.ciphertexts != c.ciphertexts  # the buyer cannot link it to the holder's message
    assert buyer.finish(total).value == 6


def test_contributions_are_randomised(keypair) -> None:
    buyer = pa.Buyer(pa.Statistic.SUM, 0, keypair=keypair)
    holder = pa.Holder(buyer.request)
    a = holder.contribute(np.array([5], dtype=np.int64))
    b = holder.contribute(np.array([5], dtype=np.int64))
    assert a.ciphertexts != b.ciphertexts


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda n: (0,), "outside"),
        (lambda n: (n * n,), "outside"),
        (lambda n: (n,), "not invertible"),
        (lambda n: (1, 1), "expected 1 ciphertexts"),
        (lambda n: (), "expected 1 ciphertexts"),
    ],
)
def test_invalid_ciphertexts_are_rejected(keypair, bad, match: str) -> None:  # type: ignore[no-untyped-def]
    buyer = pa.Buyer(pa.Statistic.SUM, 0, keypair=keypair)
    with pytest.raises(pa.InvalidContribution, match=match):
        pa.combine(buyer.request, [pa.Contribution(bad(buyer.request.public_n))])


def test_ciphertext_of_wrong_width_is_rejected(keypair) -> None:
    n = keypair[0].n
    msg = common_pb2.EncryptedFigures(ciphertexts=[b"\x01" * 10])
    with pytest.raises(Exception, match="needs 512"):
        figures_from_proto(msg, n)


def test_weak_keys_are_refused() -> None:
    small, _ = paillier.generate_paillier_keypair(n_length=1024)
    with pytest.raises(pa.WeakKey, match="at least 2048"):
        pa.Holder(pa.AggregateRequest(pa.Statistic.SUM, 0, small.n))
    with pytest.raises(pa.WeakKey, match="even"):
        pa.check_public_key(2**2048)
    with pytest.raises(pa.WeakKey):
        pa.Buyer(pa.Statistic.SUM, 0, key_bits=1024)


def test_overflow_is_detected_not_wrapped(keypair) -> None:
    buyer = pa.Buyer(pa.Statistic.SUM, 0, keypair=keypair)
    n = buyer.request.public_n
    public = keypair[0]
    # n/2 sits in the middle band that no honest sum can reach.
    c = pa.Contribution((public.raw_encrypt(n // 2),))
    with pytest.raises(pa.DecodingError, match="overflowed"):
        buyer.finish(pa.combine(buyer.request, [c]))


def test_result_with_wrong_figure_count_is_rejected(keypair) -> None:
    buyer = pa.Buyer(pa.Statistic.MEAN, 0, keypair=keypair)
    with pytest.raises(pa.InvalidContribution, match="needs 2"):
        buyer.finish(pa.AggregateResult((5,)))


def test_nothing_to_combine() -> None:
    with pytest.raises(pa.ProtocolError, match="no contributions"):
        pa.combine(pa.AggregateRequest(pa.Statistic.SUM, 0, 2**2048 + 1), [])
