"""links.relay: listings, refusals, the relayed ciphertexts and the combined noise, without sockets."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from datawharf import serde
from datawharf.model import AggregateJob, ColumnKind, ColumnSpec, Listing, PrivacyTerms
from datawharf.v1 import common_pb2
from links import relay
from protocols.aggregate import AggregateResult, Buyer, Holder, combine
from protocols.figures import Layout, Statistic
from protocols.schemes import Backend, PublicParams


def _job(backend: Backend, max_contributors: int, length: int = 1) -> AggregateJob:
    params = PublicParams(backend=backend, length=length, max_contributors=max_contributors)
    return AggregateJob("visits", "cost", Statistic.SUM, (), 2, params, dimension=length)


def test_combined_terms_are_the_strictest_of_each() -> None:
    loose = PrivacyTerms(True, 2.0, 30, 0.5, 0.05, "full", True)
    tight = PrivacyTerms(True, 1.0, 60, 0.25, 0.1, "split", False)
    assert relay.combined_terms([loose, tight]) == PrivacyTerms(True, 1.0, 60, 0.25, 0.1, "full", False)
    assert relay.combined_terms([PrivacyTerms(dp=False)] * 2).dp is False
    assert relay.combined_terms([PrivacyTerms(dp=False), tight]).budget == 1.0  # one private holder: private


def test_a_listing_counts_the_holders_behind_it_and_round_trips() -> None:
    cols = (ColumnSpec("cost", ColumnKind.DECIMAL, 2, aggregate=True, bounds=(Decimal(0), Decimal(10))),)
    listing = relay.listing_for("visits", cols, 2461, {"a": PrivacyTerms(dp=False), "b": PrivacyTerms(dp=False)},
                                3, "exchange A")
    assert listing.holders == 3 and listing.approx_rows == 2500 and listing.columns == cols
    joinable = relay.listing_for("v", (ColumnSpec("id", ColumnKind.STRING, join_key=True),
                                       ColumnSpec("x", ColumnKind.INT, psi_value=True, aggregate=True)), 10, {}, 2, "A")
    assert [(c.join_key, c.psi_value, c.identifier, c.aggregate) for c in joinable.columns] == [
        (False, False, True, False), (False, False, False, True)]  # no PSI through a link
    assert "exchange A" in listing.description
    wire = serde.listing_to_proto(listing)
    assert wire.holders == 3 and serde.listing_from_proto(wire) == listing
    # An ordinary holder's listing keeps its old bytes: holders = 1 travels as the default 0.
    one = Listing("visits", cols, 10)
    assert serde.listing_to_proto(one).holders == 0 and serde.listing_from_proto(serde.listing_to_proto(one)) == one


def test_headroom_for_every_holder_behind_the_link_and_beside_it() -> None:
    assert relay.refusal(_job(Backend.PAILLIER_PACKED, 3), behind=3, asked=[], me="link") is None
    reason, code = relay.refusal(_job(Backend.PAILLIER_PACKED, 2), behind=3, asked=[], me="link") or ("", "")
    assert code == "bad_spec" and "headroom for 2 contributor(s)" in reason and "3 holder(s)" in reason
    # Two other holders asked beside the link need room too.
    reason, _ = relay.refusal(_job(Backend.BFV, 4), behind=3, asked=["link", "x", "y"], me="link") or ("", "")
    assert "beside 2 other(s) asked, 5 in all" in reason
    assert relay.refusal(_job(Backend.BFV, 5), behind=3, asked=["link", "x", "y"], me="link") is None


def test_ckks_is_refused_only_when_several_holders_are_behind() -> None:
    reason, _ = relay.refusal(_job(Backend.CKKS, 5), behind=3, asked=[], me="link") or ("", "")
    assert "error bound" in reason
    assert relay.refusal(_job(Backend.CKKS, 5), behind=1, asked=[], me="link") is None


def _noise(rho: float, sds: list[float], remaining: float, renews: float) -> common_pb2.NoiseDeclaration:
    return common_pb2.NoiseDeclaration(rho=rho, part_sd=sds, remaining=remaining, renews_at=renews)


def _receipt(party: str, noise: common_pb2.NoiseDeclaration | None) -> common_pb2.ContributionReceipt:
    r = common_pb2.ContributionReceipt(party=party)
    if noise is not None:
        r.noise.CopyFrom(noise)
    return r


def test_combined_noise_sums_variances_and_keeps_the_tightest_budget() -> None:
    receipts = [_receipt("a", _noise(0.1, [3.0, 1.0], 0.9, 100.0)), _receipt("b", _noise(0.2, [4.0, 1.0], 0.5, 200.0)),
                _receipt("c", common_pb2.NoiseDeclaration(exact=True)),
                _receipt("gone", _noise(5.0, [99.0, 99.0], 0.0, 1.0))]  # not a contributor: ignored
    n = relay.combined_noise(receipts, ["a", "b", "c"], 2)
    assert n is not None and not n.exact
    assert list(n.part_sd) == [5.0, pytest.approx(math.sqrt(2))]
    assert (n.rho, n.remaining, n.renews_at) == (pytest.approx(0.2), 0.5, 200.0)


def test_combined_noise_is_exact_only_if_every_holder_was() -> None:
    exact = [_receipt(p, common_pb2.NoiseDeclaration(exact=True)) for p in "ab"]
    n = relay.combined_noise(exact, ["a", "b"], 1)
    assert n is not None and n.exact and not n.part_sd
    assert relay.combined_noise([_receipt("a", None)], ["a"], 1) is None
    with pytest.raises(ValueError, match="2 figure parts; the job has 3"):
        relay.combined_noise([_receipt("a", _noise(0.1, [1.0, 1.0], 0.5, 1.0))], ["a"], 3)


@pytest.mark.parametrize("backend", [Backend.PAILLIER_PACKED, Backend.PAILLIER, Backend.BFV])
def test_a_relayed_total_decrypts_beside_a_direct_holder(backend: Backend) -> None:
    """Three holders behind the link and one beside it: the buyer, counting two contributors, reads
    the sum over all four; the link's ciphertexts are not A's."""
    layout = Layout(Statistic.SUM, 3, 1)
    buyer = Buyer(layout, 0, backend, max_contributors=4)
    spec = AggregateJob("visits", "v", Statistic.SUM, (), 0, buyer.request.params, dimension=3)
    remote = {f"a{i}": Holder(buyer.request).contribute([10 * i + 1, -i, 7]) for i in range(3)}
    total_a = combine(buyer.request, remote)
    mine = relay.relayed(spec, total_a.ciphertexts, total_a.contributors)
    assert not set(mine) & set(total_a.ciphertexts)
    from protocols.aggregate import Contribution

    beside = {"link": Contribution(tuple(mine)), "b0": Holder(buyer.request).contribute([100, 100, 100])}
    result = combine(buyer.request, beside)
    assert isinstance(result, AggregateResult) and result.contributors == 2
    (group,) = buyer.finish(result).groups
    assert list(group.values) == [1 + 11 + 21 + 100, 0 - 1 - 2 + 100, 21 + 100]
