"""Paillier naive and packed: correctness at the slot limits, bad input, parameters, key checks."""

from __future__ import annotations

import random
from dataclasses import replace

import gmpy2
import pytest
from phe import paillier

from protocols import modulus_proof
from protocols.modulus_proof import InvalidModulusProof
from protocols.schemes import Backend, InvalidCiphertext, OutOfRange, PublicParams, WeakKey
from protocols.schemes.paillier import (
    DjnRandomiser,
    PaillierEncryptor,
    PaillierScheme,
    _blum_prime,
    check_modulus,
    generate_keypair,
    slots_per_plaintext,
    verify_public_key,
)


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair(2048)


@pytest.fixture(scope="module")
def big_prime() -> int:
    return int(_blum_prime(2048))


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


def test_weak_keys(keypair) -> None:  # type: ignore[no-untyped-def]
    small, _ = paillier.generate_paillier_keypair(n_length=1024)
    s_params = PaillierScheme(Backend.PAILLIER, 1, 1, keypair=keypair).public

    with pytest.raises(WeakKey, match="at least 2048"):
        PaillierEncryptor(replace(s_params, paillier_n=small.n))
    with pytest.raises(WeakKey, match="even"):
        PaillierEncryptor(replace(s_params, paillier_n=2**2048))
    with pytest.raises(WeakKey):
        PaillierScheme(Backend.PAILLIER, 1, 1, key_bits=1024)
    with pytest.raises(WeakKey, match="between 2048 and 4096"):
        PaillierScheme(Backend.PAILLIER, 1, 1, key_bits=4608)


def test_generated_keys_are_blum(keypair) -> None:  # type: ignore[no-untyped-def]
    public, private = keypair
    assert public.n.bit_length() == 2048 and private.p * private.q == public.n
    assert private.p % 4 == 3 and private.q % 4 == 3 and private.p != private.q


def test_check_modulus_refuses_malformed_moduli(keypair, big_prime) -> None:  # type: ignore[no-untyped-def]
    p = keypair[1].p
    check_modulus(keypair[0].n)
    cases = [
        (big_prime, "is prime: anyone can decrypt"),
        (keypair[0].n + 1, "is even"),
        (int(_blum_prime(512)) * int(_blum_prime(512)), "has 1024 bits; at least 2048"),
        (int(_blum_prime(2304)) * int(_blum_prime(2304)), "has 4608 bits; holders accept at most 4096"),
        (65521 * big_prime, "prime factor below 2\\^16"),
        (3 * 5 * big_prime, "prime factor below 2\\^16"),
        (p * p, "perfect power"),
        (int(_blum_prime(683)) ** 3, "perfect power"),
    ]
    for n, match in cases:
        with pytest.raises(WeakKey, match=match):
            check_modulus(n)
    assert (65537 * big_prime).bit_length() > 2048
    check_modulus(65537 * big_prime)  # 65537 is above the cheap bound: refusing it is the proof's job


def test_public_params_carry_a_proof_the_holder_accepts(keypair) -> None:  # type: ignore[no-untyped-def]
    s = PaillierScheme(Backend.PAILLIER_PACKED, 3, 2, keypair=keypair)
    params = s.public
    assert params.modulus_proof and s.public is params  # made once
    assert "modulus_proof" not in repr(params)
    modulus_proof.verify(params.paillier_n, params.modulus_proof)
    verify_public_key(params)
    verify_public_key(PublicParams(Backend.BFV, 3, 2))  # no Paillier modulus to check


def test_verified_keys_are_remembered(keypair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    params = PaillierScheme(Backend.PAILLIER, 1, 1, keypair=keypair).public
    verify_public_key(params)

    def refuse(*_: object) -> None:
        raise AssertionError("verified twice")

    monkeypatch.setattr(modulus_proof, "verify", refuse)
    verify_public_key(params)
    with pytest.raises(AssertionError, match="verified twice"):
        verify_public_key(replace(params, modulus_proof=params.modulus_proof[:-1] + bytes([params.modulus_proof[-1] ^ 1])))


def test_holder_refuses_missing_or_foreign_proofs(keypair, big_prime) -> None:  # type: ignore[no-untyped-def]
    params = PaillierScheme(Backend.PAILLIER_PACKED, 3, 2, keypair=keypair).public
    with pytest.raises(WeakKey, match="carries no modulus proof"):
        verify_public_key(replace(params, modulus_proof=b""))
    other = PaillierScheme(Backend.PAILLIER_PACKED, 3, 2).public
    with pytest.raises(InvalidModulusProof):
        verify_public_key(replace(params, modulus_proof=other.modulus_proof))
    with pytest.raises(WeakKey, match="is prime"):
        verify_public_key(replace(params, paillier_n=big_prime))
    # The gateway's encryptor stays cheap: it checks the modulus, not the proof.
    PaillierEncryptor(replace(params, modulus_proof=b""))


def test_supplied_keypair_must_be_blum(big_prime) -> None:  # type: ignore[no-untyped-def]
    p = gmpy2.next_prime(big_prime >> 1024)
    while p % 4 != 1:
        p = gmpy2.next_prime(p)
    q = _blum_prime(1024)
    public = paillier.PaillierPublicKey(int(p * q))
    with pytest.raises(WeakKey, match="not both ≡ 3 \\(mod 4\\)"):
        PaillierScheme(Backend.PAILLIER, 1, 1, keypair=(public, paillier.PaillierPrivateKey(public, int(p), int(q))))
