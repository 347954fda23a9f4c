"""PSI under differential privacy, in one process: where the holder's noise goes and what the gateway does with it."""

from __future__ import annotations

import pytest

from protocols import psi, psi_sum
from protocols.psi_stages import GatewayNotes, NoiseDeclaration


def run_sum(holder_rows, buyer_ids, *, padding=0, noise=None, count=0, offset=0, minimum=1, bounds=None):  # type: ignore[no-untyped-def]
    b = psi_sum.Buyer(buyer_ids)
    h = psi_sum.Holder(holder_rows, bounds=bounds)
    ans = h.answer(b.blinded(), b.box.public, b"job", minimum=minimum, padding=padding, noise=noise, count=count)
    z = b.reblind(ans.for_buyer_w)
    r = psi_sum.gateway_sum(ans.for_gateway_d, z, ans.for_gateway_masked, minimum=minimum, offset=offset,
                            counted=ans.counted)
    return ans, r, b.totals(r, ans.for_buyer_sealed_seed, b"job", len(z))


ROWS = [(f"id-{i}", [100 * i, i]) for i in range(40)]
BUYER = [f"id-{i}" for i in range(0, 60, 2)]  # 20 of the holder's 40
TRUTH = (sum(100 * i for i in range(0, 40, 2)), sum(range(0, 40, 2)))


def test_noise_row_lands_in_the_buyers_total_and_padding_adds_nothing() -> None:
    ans, r, totals = run_sum(ROWS, BUYER, padding=30, noise=[-12345, 7], count=9, offset=9 - 5)
    assert totals == (TRUTH[0] - 12345, TRUTH[1] + 7)
    assert len(ans.for_buyer_w) == 40 + 30 + 1 and len(ans.counted) == 10
    assert r.size == 20 + 4 and set(ans.counted) <= set(r.positions) and len(r.positions) == 20 + 10


def test_without_noise_the_answer_is_exact() -> None:
    ans, r, totals = run_sum(ROWS, BUYER)
    assert totals == TRUTH and r.size == 20 and ans.counted == () and len(ans.for_buyer_w) == 40


def test_each_ids_sums_are_clipped_after_merging_its_rows() -> None:
    rows = [("a", [70]), ("a", [70]), ("b", [-300]), ("c", [5])]
    h = psi_sum.Holder(rows, bounds=[(-100, 100)])
    assert h.rows == {b"a": [100], b"b": [-100], b"c": [5]}
    with pytest.raises(psi.PsiError, match="2 bounds for 1"):
        psi_sum.Holder(rows, bounds=[(0, 1), (0, 1)])


def test_the_minimum_applies_to_the_noisy_size() -> None:
    with pytest.raises(psi.BelowMinimum):
        run_sum(ROWS, BUYER, padding=10, count=0, offset=-2, minimum=19)
    _, r, _ = run_sum(ROWS, BUYER[:3], padding=10, count=10, offset=7, minimum=10)
    assert r.size == 10  # 3 matches + 7 of noise: released, and the exact 3 is not


def test_holder_refuses_impossible_padding() -> None:
    b = psi_sum.Buyer(["x"])
    with pytest.raises(psi.PsiError, match="cannot count 3 of 2"):
        psi_sum.Holder(ROWS).answer(b.blinded(), b.box.public, b"j", minimum=1, padding=2, count=3)
    with pytest.raises(psi.PsiError, match="1 noise values for 2"):
        psi_sum.Holder(ROWS).answer(b.blinded(), b.box.public, b"j", minimum=1, noise=[1])


def test_gateway_refuses_counted_rows_that_repeat_lie_outside_or_matched() -> None:
    b = psi_sum.Buyer(BUYER)
    ans = psi_sum.Holder(ROWS).answer(b.blinded(), b.box.public, b"j", minimum=1)
    z = b.reblind(ans.for_buyer_w)
    d, m = ans.for_gateway_d, ans.for_gateway_masked
    with pytest.raises(psi.PsiError, match="repeat or lie outside"):
        psi_sum.gateway_sum(d, z, m, minimum=1, counted=[1, 1])
    with pytest.raises(psi.PsiError, match="repeat or lie outside"):
        psi_sum.gateway_sum(d, z, m, minimum=1, counted=[len(z)])
    matched = psi_sum.gateway_sum(d, z, m, minimum=1).positions
    with pytest.raises(psi.PsiError, match="matched the buyer's set"):
        psi_sum.gateway_sum(d, z, m, minimum=1, counted=[matched[0]])


def test_cardinality_noise_and_padding_in_dh_psi() -> None:
    b = psi.Buyer([f"id-{i}" for i in range(30)])
    h = psi.Holder([f"id-{i}" for i in range(20)])
    d, w = h.answer(b.blinded(), cardinality_only=True, padding=25)
    assert len(w) == 45
    m = psi.match(d, b.reblind(w), minimum=10, cardinality_only=True, offset=-3)
    assert m.size == 17 and m.positions == ()
    with pytest.raises(psi.PsiError, match="hides nothing"):
        psi.match(d, b.reblind(w), minimum=1, cardinality_only=False, offset=1)
    assert psi.released_size(12, -5, 7) == 7
    with pytest.raises(psi.BelowMinimum):
        psi.released_size(2, -5, 0)  # a negative size is never released, whatever the minimum


def test_stage_n_and_p_round_trip_and_refuse_garbage() -> None:
    n = GatewayNotes(-7, (1, 3, 9), rows=20)
    assert GatewayNotes.unpack(n.pack()) == n
    empty = GatewayNotes.unpack(GatewayNotes().pack())
    assert (empty.offset, empty.include, empty.canaries) == (0, (), ())
    for bad in (b"", b"\x00" * 43, GatewayNotes(0, (), rows=20).pack()[:-1]):
        with pytest.raises(ValueError):
            GatewayNotes.unpack(bad)
    for wrong in (GatewayNotes(0, (1, 1), rows=5), GatewayNotes(0, (5,), rows=5)):
        with pytest.raises(ValueError, match="twice or outside"):
            wrong.pack()
    p = NoiseDeclaration(False, 0.05, 5.5, 5.5, (("cost", 27386.1),), 0.95, 1.7e9)
    assert NoiseDeclaration.unpack(p.pack()) == p and NoiseDeclaration.unpack(NoiseDeclaration().pack()).exact
    for bad in (b"{}", b"not json", NoiseDeclaration(False, 0.05, -1.0).pack()):
        with pytest.raises(ValueError, match="stage P"):
            NoiseDeclaration.unpack(bad)


def test_gateway_sums_packed_stage_m_like_rows() -> None:
    from protocols.psi_stages import pack_masked

    b = psi_sum.Buyer(BUYER)
    ans = psi_sum.Holder(ROWS).answer(b.blinded(), b.box.public, b"j", minimum=1, padding=5, noise=[3, -4], count=2)
    z = b.reblind(ans.for_buyer_w)
    rows = psi_sum.gateway_sum(ans.for_gateway_d, z, ans.for_gateway_masked, minimum=1, counted=ans.counted)
    packed = psi_sum.PackedMasked(pack_masked(ans.for_gateway_masked), 2)
    assert psi_sum.gateway_sum(b"".join(ans.for_gateway_d), b"".join(z), packed, minimum=1,
                               counted=ans.counted) == rows
    with pytest.raises(psi.PsiError, match="do not fill rows"):
        psi_sum.PackedMasked(b"\x00" * 48, 2)


def test_stage_n_is_salted_so_its_signed_digest_hides_the_noise() -> None:
    """The receipt lists stage N's digest and the buyer reads the receipt: an unsalted N of an
    unbalanced cardinality job (8 bytes of offset) would give the offset away to a search."""
    import hashlib

    a, b = GatewayNotes(3).pack(), GatewayNotes(3).pack()
    assert hashlib.sha256(a).digest() != hashlib.sha256(b).digest()
    assert GatewayNotes.unpack(a).offset == GatewayNotes.unpack(b).offset == 3


def test_stage_n_has_one_size_whatever_the_noise() -> None:
    """The job's ledger shows the buyer every stage's size: the rows counted must not change it."""
    sizes = {len(GatewayNotes(off, tuple(range(k)), rows=500).pack()) for off, k in ((0, 0), (-9, 3), (40, 121))}
    assert sizes == {32 + 12 + 63}
