"""The holder's canaries: Z must be W re-blinded under the one scalar the buyer committed to."""

from __future__ import annotations

import pytest

from protocols import psi, psi_sum
from protocols.psi_stages import GatewayNotes


def ids(n: int, prefix: str = "id") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def test_honest_runs_pass_the_canaries() -> None:
    b = psi.Buyer(ids(30))
    h = psi.Holder(ids(50)[20:])
    d, w = h.answer(b.blinded(), cardinality_only=False, commitment=b.commitment())
    assert len(w) == 30 + psi.CANARIES and len(h.canaries) == psi.CANARIES
    assert sorted(c.position for c in h.canaries) == [c.position for c in h.canaries]
    m = psi.match(d, b.reblind(w), minimum=1, cardinality_only=False, canaries=h.canaries)
    assert {x.decode() for x in b.matched(m.positions)} == set(ids(30)[20:])


def test_canaries_use_the_curve_and_the_twist_like_hashed_ids() -> None:
    g, g_twist = psi.BASES
    assert int.from_bytes(g, "little") == 9
    u = int.from_bytes(g_twist, "little")
    assert psi._on_twist(u) and not psi._on_twist(9)
    b = psi.Buyer(["x"])
    _, points, _ = psi.hide_canaries([b"\x01" * 32] * 10, b.commitment(), count=200)
    assert len(set(points)) == 200  # fresh r per canary


def test_ten_scalars_over_a_tenth_of_w_are_caught() -> None:
    target = "id-3"
    keys = [psi.Key() for _ in range(10)]
    a = [k.hash_and_blind([psi.normalise(target)])[0] for k in keys]
    committed = psi.Buyer([target], key=keys[0])
    h = psi.Holder(ids(200))
    d, w = h.answer(a, cardinality_only=True, commitment=committed.commitment())
    tenth = len(w) // 10
    z = keys[0].blind(w[:tenth]) + [p for k in keys[1:] for p in k.blind(w[:tenth])] + keys[0].blind(w[10 * tenth:])
    assert len(z) == len(w) and len(set(z)) == len(z)
    with pytest.raises(psi.ForgedReblinding, match="scalar the buyer committed to"):
        psi.match(d, z, minimum=10, cardinality_only=True, canaries=h.canaries)
    # Without the canaries, the same sets would count the member ten times if its row is in the tenth.
    size = psi.match(d, z, minimum=0, cardinality_only=True).size
    assert size in (0, 1, 10)  # 10 if its row is in the tenth, 1 if in the untouched tail, else 0


def test_one_rewritten_canary_position_is_caught_and_a_commitment_must_be_usable() -> None:
    b = psi_sum.Buyer(ids(20))
    h = psi_sum.Holder([(i, [1]) for i in ids(40)])
    ans = h.answer(b.blinded(), b.box.public, b"j", minimum=1, commitment=b.commitment())
    z = b.reblind(ans.for_buyer_w)
    pos = ans.canaries[5].position
    z[pos] = psi.Key().blind([ans.for_buyer_w[pos]])[0]
    with pytest.raises(psi.ForgedReblinding):
        psi_sum.gateway_sum(ans.for_gateway_d, z, ans.for_gateway_masked, minimum=1, canaries=ans.canaries)
    with pytest.raises(psi.InvalidPoint, match="low-order"):
        psi.hide_canaries([], [b"\x00" * 32, b"\x00" * 32])
    with pytest.raises(psi.PsiError, match="2-point commitment"):
        psi.split_commitment(b.commitment())
    assert psi.split_commitment([b"a", b"b", b"c"]) == ([b"a"], [b"b", b"c"])


def test_splice_places_extras_at_their_final_positions() -> None:
    assert psi.splice([1, 2, 3], [0, 2, 5], [10, 20, 30]) == [10, 1, 20, 2, 3, 30]
    assert psi.splice([1, 2], [], []) == [1, 2] and psi.splice([], [0, 1], [7, 8]) == [7, 8]


def test_gateway_notes_carry_canaries() -> None:
    b = psi.Buyer(["x"])
    _, _, checks = psi.hide_canaries([b"\x01" * 32] * 5, b.commitment(), count=3)
    notes = GatewayNotes(-2, (1, 4), tuple(checks), rows=8)
    assert GatewayNotes.unpack(notes.pack()) == notes
    with pytest.raises(ValueError, match="whole canaries"):
        GatewayNotes.unpack(notes.pack()[:-1])
