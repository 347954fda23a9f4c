"""Checked totals: a holder that packs a slot wrongly makes the buyer's decryption fail, naming the slot."""

from __future__ import annotations

import pytest
from phe import paillier

from protocols.schemes import Backend, OutOfRange, SchemeError
from protocols.schemes.paillier import PaillierEncryptor, PaillierScheme, generate_keypair, slot_width, unpack

SLOT_BITS = 16
HOLDERS = 3


@pytest.fixture(scope="module")
def keypair() -> tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey]:
    return generate_keypair(2048)


@pytest.fixture(scope="module")
def scheme(keypair: tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey]) -> PaillierScheme:
    # Four figures fit one plaintext, so slot j is figure j.
    return PaillierScheme(Backend.PAILLIER_PACKED, 4, HOLDERS, slot_bits=SLOT_BITS, keypair=keypair)


def _pack(values: list[int], w: int) -> int:
    return sum(v << (i * w) for i, v in enumerate(values))


def _total(scheme: PaillierScheme, cheat: int, honest: list[list[int]]) -> list[bytes]:
    """Honest holders' contributions plus one made of the raw plaintext ``cheat``."""
    enc = PaillierEncryptor(scheme.public)
    return enc.combine([*(enc.encrypt(h) for h in honest), enc.raw_encrypt([cheat])])


def test_honest_holders_at_the_extremes_pass(scheme: PaillierScheme) -> None:
    lo, hi = -(2 ** (SLOT_BITS - 1)), 2 ** (SLOT_BITS - 1) - 1
    enc = PaillierEncryptor(scheme.public)
    total = enc.combine([enc.encrypt([lo, hi, lo, hi]) for _ in range(HOLDERS)])
    assert scheme.decrypt(total, HOLDERS) == [HOLDERS * lo, HOLDERS * hi] * 2


def test_a_figure_wider_than_its_slot_is_named(scheme: PaillierScheme) -> None:
    w = slot_width(SLOT_BITS, HOLDERS)
    offset = 1 << (SLOT_BITS - 1)
    # Slot 2 gets 3 × 2^SLOT_BITS: within the slot's w bits, but more than any honest holder's figure.
    cheat = _pack([offset + 5, offset, 3 << SLOT_BITS, offset], w)
    total = _total(scheme, cheat, [[1, 2, 3, 4]])
    with pytest.raises(OutOfRange, match=r"packed slot 2 of plaintext 0 \(figure 2\).*overflowed its slot"):
        scheme.decrypt(total, 2)


def test_a_carry_into_the_neighbouring_slot_is_named(scheme: PaillierScheme) -> None:
    w = slot_width(SLOT_BITS, HOLDERS)
    offset = 1 << (SLOT_BITS - 1)
    # Slot 0 holds 2^(w + SLOT_BITS + 1) + offset: the excess lands in slot 1, which no two
    # honest holders can fill that far.
    cheat = _pack([offset, offset, offset, offset], w) + ((1 << (SLOT_BITS + 1)) << w)
    total = _total(scheme, cheat, [[0, 0, 0, 0]])
    with pytest.raises(SchemeError, match=r"figure 1\).*carried into it from figure 0"):
        scheme.decrypt(total, 2)


def test_top_bits_above_the_last_slot_are_refused(scheme: PaillierScheme) -> None:
    w = slot_width(SLOT_BITS, HOLDERS)
    offset = 1 << (SLOT_BITS - 1)
    cheat = _pack([offset] * 4, w) | (1 << (4 * w + 3))
    total = _total(scheme, cheat, [[7, 7, 7, 7]])
    with pytest.raises(OutOfRange, match=rf"plaintext 0 has bits set above its 4 slot\(s\) \(bit {4 * w + 3}\)"):
        scheme.decrypt(total, 2)


def test_unused_slots_of_the_last_plaintext_must_be_empty(
        keypair: tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey]) -> None:
    s = PaillierScheme(Backend.PAILLIER_PACKED, 3, HOLDERS, slot_bits=SLOT_BITS, keypair=keypair)
    w = slot_width(SLOT_BITS, HOLDERS)
    offset = 1 << (SLOT_BITS - 1)
    # A fourth slot in a three-figure job: nothing should ever be there.
    cheat = _pack([offset, offset, offset, 1], w)
    with pytest.raises(OutOfRange, match=r"above its 3 slot\(s\)"):
        s.decrypt(_total(s, cheat, []), 1)


def test_a_contributor_count_beyond_the_encoding_is_refused(scheme: PaillierScheme) -> None:
    enc = PaillierEncryptor(scheme.public)
    total = enc.combine([enc.encrypt([0, 0, 0, 0])])
    with pytest.raises(OutOfRange, match="claims 4 contributor"):
        scheme.decrypt(total, HOLDERS + 1)
    with pytest.raises(OutOfRange, match="claims 0 contributor"):
        scheme.decrypt(total, 0)


@pytest.mark.parametrize("contributors", [1, 2, 3])
def test_unpack_bound_is_exact(contributors: int) -> None:
    """The largest honest slot passes; one more fails."""
    w = slot_width(SLOT_BITS, HOLDERS)
    top = contributors * ((1 << SLOT_BITS) - 1)
    kw = dict(length=2, slots=2, slot_bits=SLOT_BITS, max_contributors=HOLDERS, contributors=contributors)
    offset = contributors << (SLOT_BITS - 1)
    assert unpack([_pack([top, 0], w)], **kw) == [top - offset, -offset]
    with pytest.raises(OutOfRange, match=r"packed slot 1 of plaintext 0 \(figure 1\) holds"):
        unpack([_pack([0, top + 1], w)], **kw)
