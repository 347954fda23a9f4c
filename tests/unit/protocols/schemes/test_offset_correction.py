"""offset_correction: a relayed total of k holders reads as one contribution to the buyer.

A link to another exchange sends the packed total of k holders as its single contribution; the
buyer subtracts one offset per contributor, so the link adds the encryption of −(k−1) offsets per
used slot first. Known answers for the constant, then the round trip through real encryption.
"""

from __future__ import annotations

import pytest
from phe import paillier

from protocols.schemes import Backend, OutOfRange
from protocols.schemes.paillier import (
    PaillierEncryptor,
    PaillierScheme,
    generate_keypair,
    offset_correction,
    slot_width,
    slots_per_plaintext,
)

SLOT_BITS = 16
MAX_CONTRIBUTORS = 6  # 4 holders behind the link, 2 holders of the buyer's own exchange


@pytest.fixture(scope="module")
def keypair() -> tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey]:
    return generate_keypair(2048)


def _scheme(keypair: tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey], length: int) -> PaillierScheme:
    return PaillierScheme(Backend.PAILLIER_PACKED, length, MAX_CONTRIBUTORS, slot_bits=SLOT_BITS, keypair=keypair)


def test_the_constant_is_minus_surplus_offsets_in_each_used_slot(keypair) -> None:  # type: ignore[no-untyped-def]
    params = _scheme(keypair, 3).public
    n, w = params.paillier_n, slot_width(SLOT_BITS, MAX_CONTRIBUTORS)
    (plain,) = offset_correction(params, 2)
    offset = 1 << (SLOT_BITS - 1)
    assert plain == n - (2 * offset + (2 * offset << w) + (2 * offset << 2 * w))
    assert offset_correction(params, 0) == [0]


def test_a_partly_used_last_plaintext_is_corrected_only_in_its_used_slots(keypair) -> None:  # type: ignore[no-untyped-def]
    probe = _scheme(keypair, 1).public
    k = slots_per_plaintext(probe.paillier_n, SLOT_BITS, MAX_CONTRIBUTORS)
    params = _scheme(keypair, k + 2).public
    first, last = offset_correction(params, 1)
    n, w, offset = params.paillier_n, slot_width(SLOT_BITS, MAX_CONTRIBUTORS), 1 << (SLOT_BITS - 1)
    assert n - first == sum(offset << (j * w) for j in range(k))
    assert n - last == offset + (offset << w)


@pytest.mark.parametrize("length", [3, 200])
def test_a_corrected_relay_decrypts_to_the_sum_over_every_holder(keypair, length: int) -> None:  # type: ignore[no-untyped-def]
    scheme = _scheme(keypair, length)
    enc = PaillierEncryptor(scheme.public)
    remote = [[(h + 1) * (i - 40) for i in range(length)] for h in range(4)]  # the link's exchange
    local = [[7 * i - 100 for i in range(length)] for _ in range(2)]          # the buyer's own holders
    relayed_total = enc.combine([enc.encrypt(f) for f in remote])
    relayed = enc.combine([relayed_total, enc.raw_encrypt(offset_correction(scheme.public, len(remote) - 1))])
    total = enc.combine([relayed, *(enc.encrypt(f) for f in local)])
    # The buyer counts the link once: three contributors, not six.
    assert scheme.decrypt(total, 3) == [sum(col) for col in zip(*remote, *local)]


def test_without_the_correction_the_buyer_refuses_the_total(keypair) -> None:  # type: ignore[no-untyped-def]
    # Three holders' offsets in a slot the buyer reads as one contributor's: above what one can sum to.
    scheme = _scheme(keypair, 2)
    enc = PaillierEncryptor(scheme.public)
    relayed = enc.combine([enc.encrypt([5, -5]) for _ in range(3)])
    with pytest.raises(OutOfRange, match="slot 0"):
        scheme.decrypt(relayed, 1)
    fixed = enc.combine([relayed, enc.raw_encrypt(offset_correction(scheme.public, 2))])
    assert scheme.decrypt(fixed, 1) == [15, -15]


def test_other_backends_and_negative_surplus_are_refused(keypair) -> None:  # type: ignore[no-untyped-def]
    params = _scheme(keypair, 2).public
    with pytest.raises(OutOfRange, match="0 or more"):
        offset_correction(params, -1)
    plain = PaillierScheme(Backend.PAILLIER, 2, 2, keypair=keypair).public
    with pytest.raises(OutOfRange, match="only in packed Paillier"):
        offset_correction(plain, 1)
