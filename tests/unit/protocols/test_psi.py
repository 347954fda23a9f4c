"""DH-PSI whole, in one process, against plain set intersection."""

from __future__ import annotations

import random

import pytest

from protocols import psi


def run(buyer_ids, holder_ids, *, cardinality_only=False, minimum=0):  # type: ignore[no-untyped-def]
    b = psi.Buyer(buyer_ids)
    h = psi.Holder(holder_ids)
    a = b.blinded()
    d, w = h.answer(a, cardinality_only=cardinality_only)
    z = b.reblind(w)
    m = psi.match(d, z, minimum=minimum, cardinality_only=cardinality_only)
    return m, b


def ids(n: int, prefix: str = "id") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


@pytest.mark.parametrize("nb, nh, overlap", [(200, 300, 100), (50, 50, 50), (40, 30, 0), (1, 500, 1)])
def test_matches_plain_intersection(nb: int, nh: int, overlap: int) -> None:
    common = ids(overlap, "both")
    buyer = common + ids(nb - overlap, "b")
    holder = common + ids(nh - overlap, "h")
    random.shuffle(buyer)
    m, b = run(buyer, holder)
    got = {x.decode() for x in b.matched(m.positions)}
    assert got == set(buyer) & set(holder) and m.size == overlap


def test_cardinality_only_hides_positions() -> None:
    buyer, holder = ids(100), ids(60)
    m, b = run(buyer, holder, cardinality_only=True)
    assert m.size == 60 and m.positions == ()


def test_cardinality_only_shuffles_what_the_gateway_matches() -> None:
    b = psi.Buyer(ids(64))
    h = psi.Holder(ids(64))
    a = b.blinded()
    d_plain, _ = psi.Holder(ids(64), key=h.key).answer(a, cardinality_only=False)
    d_shuf, _ = h.answer(a, cardinality_only=True)
    assert sorted(d_plain) == sorted(d_shuf) and d_plain != d_shuf


def test_normalisation_duplicates_and_unicode() -> None:
    buyer = [" Alice@Example.COM", "alice@example.com", "Ｂｏｂ", "cafe\u0301", "zoë"]
    holder = ["alice@example.com ", "bob", "café", "ZOË", "mallory"]
    m, b = run(buyer, holder)
    assert sorted(x.decode() for x in b.matched(m.positions)) == ["alice@example.com", "bob", "café", "zoë"]
    assert b.rows["alice@example.com".encode()] == [0, 1]


def test_empty_sets_and_bad_ids() -> None:
    m, _ = run([], ids(10))
    assert m.size == 0
    m, _ = run(ids(10), [])
    assert m.size == 0
    with pytest.raises(psi.InvalidId, match="empty"):
        psi.Buyer(["ok", "   "])
    with pytest.raises(psi.InvalidId, match="limit is 1024"):
        psi.Holder(["x" * 1025])


def test_minimum_intersection() -> None:
    with pytest.raises(psi.BelowMinimum, match="minimum of 5"):
        run(ids(10), ids(3), minimum=5)
    m, _ = run(ids(10), ids(5), minimum=5)
    assert m.size == 5


def test_bad_points_are_rejected() -> None:
    key = psi.Key()
    with pytest.raises(psi.InvalidPoint, match="value 1 is 31 bytes"):
        key.blind([bytes(32 * [9]), b"x" * 31])
    with pytest.raises(psi.InvalidPoint, match="low-order"):
        key.blind([bytes(32)])  # u = 0 has order 1... or 2: the output is all zero
    with pytest.raises(psi.InvalidPoint, match="repeats"):
        psi.match([b"a" * 32], [b"b" * 32, b"b" * 32], minimum=0, cardinality_only=False)


def test_same_function_as_cryptography_x25519() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    key = psi.Key()
    u = psi.hash_to_u(b"cross-check")
    theirs = X25519PrivateKey.from_private_bytes(key.raw()).exchange(X25519PublicKey.from_public_bytes(u))
    assert key.blind([u]) == [theirs]
    # RFC 7748 section 5.2, first test vector
    k = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    assert psi.Key(k).blind([u])[0].hex() == "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"


def test_commutativity_known_answer() -> None:
    a, b = psi.Key(), psi.Key()
    u = psi.hash_to_u(b"known")
    assert a.blind(b.blind([u])) == b.blind(a.blind([u]))
    assert psi.Key.from_raw(a.raw()).blind([u]) == a.blind([u])
