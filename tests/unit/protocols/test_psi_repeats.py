"""Duplicate-free PSI: a point, tag or second encoding sent twice is refused, never counted twice."""

from __future__ import annotations

import pytest

from protocols import oprf, psi, psi_sum
from protocols.psi_stages import canonical_u, first_repeat

P = psi.FIELD_P


def torsion_twin(point: bytes) -> bytes:
    """The u-coordinate of P + (0, 0): 1/u. A different point that clamped scalars send to the same place."""
    u = int.from_bytes(point, "little") & ((1 << 255) - 1)
    return pow(u, P - 2, P).to_bytes(32, "little")


def high_bit_twin(point: bytes) -> bytes:
    return point[:31] + bytes([point[31] | 0x80])


def test_first_repeat_finds_the_later_copy() -> None:
    items = [bytes([i]) * 16 for i in range(6)]
    assert psi.first_repeat(items) is None and first_repeat(b"".join(items), 16) is None
    twice = items[:4] + [items[1]] + items[4:] + [items[1]]
    assert psi.first_repeat(twice) == 4 and first_repeat(b"".join(twice), 16) == 4
    assert first_repeat(b"", 32) is None and first_repeat(b"\x00" * 32, 32) is None
    with pytest.raises(ValueError, match="whole number"):
        first_repeat(b"\x00" * 33, 32)


def test_trailing_zero_bytes_are_compared_too() -> None:
    # numpy byte strings drop trailing NULs when read back; equality must still be over all 16 bytes.
    a, b = b"x" + b"\x00" * 15, b"x" + b"\x00" * 14 + b"\x01"
    assert first_repeat(a + b, 16) is None and first_repeat(a + b + a, 16) == 2


def test_canonical_u_merges_both_encodings_and_u_plus_p() -> None:
    (point,) = psi.Key().hash_and_blind([b"alice"])
    assert canonical_u(high_bit_twin(point)) == canonical_u(point) == psi.canonical_u(high_bit_twin(point))
    small = (5).to_bytes(32, "little")
    plus_p = (5 + P).to_bytes(32, "little")
    assert canonical_u(plus_p) == small == psi.canonical_u(plus_p)
    assert first_repeat(canonical_u(point + high_bit_twin(point) + plus_p), 32) == 1


def test_every_encoding_of_a_point_blinds_to_one_value() -> None:
    """Why the holder checks after blinding: three byte strings, one blinded value."""
    (point,) = psi.Key().hash_and_blind([b"alice"])
    key = psi.Key()
    outs = key.blind([point, high_bit_twin(point), torsion_twin(point)])
    assert len({point, high_bit_twin(point), torsion_twin(point)}) == 3 and len(set(outs)) == 1


@pytest.mark.parametrize("twin", [lambda p: p, high_bit_twin, torsion_twin], ids=["same", "high-bit", "torsion"])
def test_holder_refuses_a_point_sent_twice(twin) -> None:  # type: ignore[no-untyped-def]
    buyer = psi.Buyer([f"id-{i}" for i in range(20)])
    a = buyer.blinded()
    attack = a + [twin(a[3])]
    with pytest.raises(psi.RepeatedPoint, match="position 20"):
        psi.Holder(["id-3"]).answer(attack, cardinality_only=False)
    with pytest.raises(psi.RepeatedPoint, match="position 20"):
        psi.Holder(["id-3"]).answer(attack, cardinality_only=True)
    with pytest.raises(psi.RepeatedPoint):
        psi_sum.Holder([("id-3", [1])]).answer(attack, psi_sum.BoxKey().public, b"job", minimum=1)


def test_ten_copies_of_a_member_no_longer_pass_a_minimum_of_ten() -> None:
    """The probe: before, a member came back size 10 and a non-member 'below the minimum'."""
    holder = psi.Holder([f"h-{i}" for i in range(50)])
    for target in ("h-7", "not-there"):
        b = psi.Buyer([target])
        a = b.blinded() * 10
        with pytest.raises(psi.RepeatedPoint):
            holder.answer(a, cardinality_only=True)


def test_gateway_match_refuses_repeats_in_d_or_z() -> None:
    pts = psi.Key().hash_and_blind([b"a", b"b", b"c"])
    with pytest.raises(psi.RepeatedPoint, match="stage D"):
        psi.match(pts + pts[:1], pts, minimum=1, cardinality_only=True)
    with pytest.raises(psi.RepeatedPoint, match="stage Z"):
        psi.match(pts, pts + pts[:1], minimum=1, cardinality_only=True)
    with pytest.raises(psi.RepeatedPoint, match="stage D"):
        psi_sum.gateway_sum(pts + pts[:1], pts + [b"\x09" * 32], [[1]] * 4, minimum=1)
    assert psi.match(pts, pts[:2], minimum=2, cardinality_only=True).size == 2


def test_unbalanced_holder_refuses_a_repeated_point() -> None:
    b = oprf.Buyer(["x", "y"])
    a = b.blinded()
    with pytest.raises(psi.RepeatedPoint, match="stage A"):
        oprf.HolderKey().evaluate(a + a[:1])


def test_unbalanced_tags_of_one_id_under_ten_blindings_are_refused() -> None:
    """Ten fresh blindings of one ID pass the holder (ten distinct points) but give ten equal tags."""
    key = oprf.HolderKey()
    table = oprf.SortedTags(b"".join(key.table([f"h-{i}" for i in range(40)])))
    for target in ("h-3", "nobody"):
        tags = []
        for _ in range(10):
            b = oprf.Buyer([target])
            tags += b.tags(key.evaluate(b.blinded()))
        assert len(set(tags)) == 1
        with pytest.raises(psi.RepeatedPoint, match="stage Q"):
            oprf.lookup(table, tags, minimum=10, cardinality_only=True)


def test_sorted_table_answers_like_a_set() -> None:
    key = oprf.HolderKey()
    tags = key.table([f"h-{i}" for i in range(300)])
    table = oprf.SortedTags(b"".join(tags))
    b = oprf.Buyer([f"h-{i}" for i in range(250, 350)])
    mine = b.tags(key.evaluate(b.blinded()))
    assert table.members(mine) == [t in tags for t in mine] and sum(table.members(mine)) == 50
    assert len(table) == 300 and mine[0] in table and b"\x00" * 16 not in table and b"short" not in table
    assert oprf.SortedTags(b"").members(mine[:2]) == [False, False]
    with pytest.raises(psi.PsiError, match="16-byte"):
        oprf.SortedTags(b"\x00" * 17)


def test_items_sharing_a_prefix_are_compared_whole() -> None:
    same = [b"P" * 8 + bytes([i]) * 24 for i in range(5)]
    assert first_repeat(b"".join(same), 32) is None
    assert first_repeat(b"".join(same + [b"Q" * 32, same[2]]), 32) == 6
    assert first_repeat(b"ab" + b"cd" + b"ab", 2) == 2  # widths that are not a multiple of 8


def test_positions_in_finds_whole_items_even_under_shared_prefixes() -> None:
    hay = [b"P" * 8 + bytes([i]) * 24 for i in range(6)] + [bytes([9]) * 32]
    needles = [hay[3], b"P" * 8 + b"\xff" * 24, bytes([9]) * 32, b"Q" * 32, hay[0]]
    assert psi.positions_in(b"".join(needles), b"".join(hay)) == [0, 2, 4]
    assert psi.positions_in(b"", b"".join(hay)) == [] and psi.positions_in(b"".join(hay), b"") == []
    unique = [bytes([i]) * 32 for i in range(50)]
    assert psi.positions_in(b"".join(unique[::2]), b"".join(unique[::3])) == [j for j in range(25) if (2 * j) % 3 == 0]
    with pytest.raises(ValueError, match="whole"):
        psi.positions_in(b"\x00" * 31, b"\x00" * 32)


def test_match_takes_packed_sets_like_lists() -> None:
    b = psi.Buyer([f"id-{i}" for i in range(30)])
    h = psi.Holder([f"id-{i}" for i in range(10, 50)])
    d, w = h.answer(b.blinded(), cardinality_only=False)
    z = b.reblind(w)
    listed = psi.match(d, z, minimum=1, cardinality_only=False)
    assert psi.match(b"".join(d), b"".join(z), minimum=1, cardinality_only=False) == listed and listed.size == 20
