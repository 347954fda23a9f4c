"""Paillier naive and packed: correctness at the slot limits, bad input, parameters."""

from __future__ import annotations

import random

import pytest
from phe import paillier

from protocols.schemes import Backend, InvalidCiphertext, OutOfRange, WeakKey
from protocols.schemes.paillier import (
    DjnRandomiser,
    PaillierEncryptor,
    PaillierScheme,
    slots_per_plaintext,
)


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return paillier.generate_paillier_keypair(n_length=2048)


def roundtrip(keypair, backend, holders, slot_bits=16, rerandomise=True):  # type: ignore[no-untyped-def]
    s = PaillierScheme(backend, len(holders[0]), len(holders), slot_bits=slot_bits, keypair=keypair)
    enc = PaillierEncryptor(s.public)
    total = enc.combine([enc.encrypt(h) for h in holders], rerandomise=rerandomise)
    return s.decrypt(total, len(holders))


@pytest.mark.parametrize("backend", [Backend.PAILLIER, Backend.PAILLIER_PACKED])
def test_sums_with_negatives(keypair, backend) -> None:  # type: ignore[no-untyped-def]
    holders = [[5, -3, 0, 100], [-7, 2, 0, -100], [1, 1, 0, 0]]
    assert roundtrip(keypair, backend, holders) == [-1, 0, 0, 0]


def test_packed_values_at_the_slot_limits(keypair) -> None:  # type: ignore[no-untyped-def]
    lo, hi = -(2**15), 2**15 - 1  # 16-bit slots
    holders = [[lo, hi] * 100 for _ in range(7)]
    assert roundtrip(keypair, Backend.PAILLIER_PACKED, holders) == [7 * lo, 7 * hi] * 100


def test_packed_refuses_values_beyond_the_slot(keypair) -> None:  # type: ignore[no-untyped-def]
    s = PaillierScheme(Backend.PAILLIER_PACKED, 2, 3, slot_bits=16, keypair=keypair)
    with pytest.raises(OutOfRange, match="16-bit packed slot"):
        PaillierEncryptor(s.public).encrypt([2**15, 0])


def test_packed_many_ciphertexts_use_the_table(keypair) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    holders = [[rng.randint(-(2**39), 2**39 - 1) for _ in range(3000)] for _ in range(3)]
    out = roundtrip(keypair, Backend.PAILLIER_PACKED, holders, slot_bits=40)
    assert out == [sum(col) for col in zip(*holders)]


def test_packing_density(keypair) -> None:  # type: ignore[no-untyped-def]
    n = keypair[0].n
    assert slots_per_plaintext(n, 40, 10) == 2046 // 44


def test_fixed_base_table_matches_powmod(keypair) -> None:  # type: ignore[no-untyped-def]
    import gmpy2

    r = DjnRandomiser(keypair[0].n, table=True)
    r.exp_bits = 64
    for alpha in (0, 1, 255, 256, 2**63 + 12345):
        acc = gmpy2.mpz(1)
        a = alpha
        for row in r._table:  # type: ignore[union-attr]
            if a & 255:
                acc = acc * row[a & 255] % r.nsq
            a >>= 8
        assert acc == gmpy2.powmod(r.hs, alpha, r.nsq)


def test_encryptions_are_randomised(keypair) -> None:  # type: ignore[no-untyped-def]
    s = PaillierScheme(Backend.PAILLIER_PACKED, 1, 1, keypair=keypair)
    enc = PaillierEncryptor(s.public)
    assert enc.encrypt([5]) != enc.encrypt([5])


def test_single_total_is_rerandomised(keypair) -> None:  # type: ignore[no-untyped-def]
    s = PaillierScheme(Backend.PAILLIER_PACKED, 3, 1, keypair=keypair)
    enc = PaillierEncryptor(s.public)
    c = enc.encrypt([1, 2, 3])
    assert enc.combine([c], rerandomise=False) == c
    total = enc.combine([c])
    assert total != c and s.decrypt(total, 1) == [1, 2, 3]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda n, w: [b"\x00" * w], "outside"),
        (lambda n, w: [(n * n).to_bytes(w + 1, "big")[1:] if (n * n).bit_length() <= 8 * w else b"\xff" * w], "outside"),
        (lambda n, w: [n.to_bytes(w, "big")], "not invertible"),
        (lambda n, w: [b"\x01" * (w - 1)], "bytes"),
        (lambda n, w: [], "expected 1"),
    ],
)
def test_invalid_ciphertexts(keypair, make, match) -> None:  # type: ignore[no-untyped-def]
    s = PaillierScheme(Backend.PAILLIER_PACKED, 3, 1, keypair=keypair)
    enc = PaillierEncryptor(s.public)
    with pytest.raises(InvalidCiphertext, match=match):
        enc.check(make(keypair[0].n, enc.width))


def test_overflow_in_naive_mode_is_detected(keypair) -> None:  # type: ignore[no-untyped-def]
    s = PaillierScheme(Backend.PAILLIER, 1, 1, keypair=keypair)
    n = keypair[0].n
    c = keypair[0].raw_encrypt(n // 2)
    with pytest.raises(OutOfRange, match="overflowed"):
        s.decrypt([c.to_bytes(PaillierEncryptor(s.public).width, "big")], 1)


def test_weak_keys() -> None:
    small, _ = paillier.generate_paillier_keypair(n_length=1024)
    s_params = PaillierScheme(Backend.PAILLIER, 1, 1).public
    from dataclasses import replace

    with pytest.raises(WeakKey, match="at least 2048"):
        PaillierEncryptor(replace(s_params, paillier_n=small.n))
    with pytest.raises(WeakKey, match="even"):
        PaillierEncryptor(replace(s_params, paillier_n=2**2048))
    with pytest.raises(WeakKey):
        PaillierScheme(Backend.PAILLIER, 1, 1, key_bits=1024)
