"""Paillier–Blum modulus proof: honest proofs verify, altered or forged ones do not."""

from __future__ import annotations

import secrets

import gmpy2
import pytest

from protocols import modulus_proof
from protocols.modulus_proof import CHALLENGES, InvalidModulusProof, proof_length, prove, verify
from protocols.schemes import WeakKey

# The proof does not care how large N is, so 1024-bit moduli keep these tests quick.
HALF = 512


def prime(bits: int, residue: int) -> int:
    """A prime of exactly ``bits`` bits that is ≡ residue (mod 4)."""
    while True:
        p = gmpy2.next_prime(secrets.randbits(bits) | (3 << (bits - 2)))
        while p % 4 != residue:
            p = gmpy2.next_prime(p)
        if p.bit_length() == bits:
            return int(p)


@pytest.fixture(scope="module")
def key() -> tuple[int, int, bytes]:
    p, q = prime(HALF, 3), prime(HALF, 3)
    return p, q, prove(p, q, b"job-7")


def crt(residues: list[int], primes: list[int]) -> int:
    n = 1
    for p in primes:
        n *= p
    return sum(r * (n // p) * pow(n // p, -1, p) for r, p in zip(residues, primes)) % n


def forge(primes: list[int], context: bytes = b"") -> bytes:
    """The best a prover knowing the factors can do for a modulus that is not Paillier–Blum."""
    n = 1
    for p in primes:
        n *= p
    k = (n.bit_length() + 7) // 8
    w = 2
    while gmpy2.jacobi(w, n) != -1:
        w += 1
    phi = 1
    for p in primes:
        phi *= p - 1
    n_inv = pow(n, -1, phi) if gmpy2.gcd(n, phi) == 1 else 1
    zs, xs, a_bits, b_bits = [], [], 0, 0
    for i, y in enumerate(modulus_proof._challenges(gmpy2.mpz(n), gmpy2.mpz(w), context)):
        y = int(y)
        zs.append(pow(y, n_inv, n))
        x, a, b = 1, 0, 0
        for a, b in ((0, 0), (1, 0), (0, 1), (1, 1)):
            t = (-y if a else y) * (w if b else 1) % n
            if all(gmpy2.legendre(t, p) == 1 for p in primes):
                roots = [pow(pow(t, (p + 1) // 4, p), (p + 1) // 4, p) for p in primes]
                x = crt(roots, primes)
                break
        xs.append(x)
        a_bits |= a << i
        b_bits |= b << i
    body = b"".join(v.to_bytes(k, "big") for v in [w, *zs, *xs])
    width = (CHALLENGES + 7) // 8
    return body + a_bits.to_bytes(width, "big") + b_bits.to_bytes(width, "big")


def test_honest_proof_verifies(key) -> None:  # type: ignore[no-untyped-def]
    p, q, proof = key
    verify(p * q, proof, b"job-7")
    assert len(proof) == proof_length(p * q) == 128 * (1 + 2 * CHALLENGES) + 20
    verify(p * q, prove(q, p))


def test_proof_for_another_modulus_fails(key) -> None:  # type: ignore[no-untyped-def]
    _, _, proof = key
    other = prime(HALF, 3) * prime(HALF, 3)
    with pytest.raises(InvalidModulusProof):
        verify(other, proof, b"job-7")


def test_wrong_context_fails(key) -> None:  # type: ignore[no-untyped-def]
    p, q, proof = key
    for context in (b"", b"job-8", b"job-7\x00"):
        with pytest.raises(InvalidModulusProof, match="another modulus or context"):
            verify(p * q, proof, context)


def test_a_flipped_byte_anywhere_fails(key) -> None:  # type: ignore[no-untyped-def]
    p, q, proof = key
    k = 128
    # w, the first and last z and x, both bit fields, and a spread of places in between
    spots = {0, k - 1, k, 2 * k - 1, (1 + CHALLENGES) * k, (1 + 2 * CHALLENGES) * k - 1}
    spots |= {len(proof) - 20, len(proof) - 11, len(proof) - 10, len(proof) - 1}
    spots |= set(range(0, len(proof), 1777))
    for at in sorted(spots):
        bad = bytearray(proof)
        bad[at] ^= 0x01 << (at % 8)
        with pytest.raises(InvalidModulusProof):
            verify(p * q, bytes(bad), b"job-7")


def test_values_at_or_above_n_are_refused() -> None:
    # 1020-bit N in 128-byte fields: room to write any value plus N, which
    # satisfies the same congruences and so must be refused on its own.
    p, q = prime(510, 3), prime(510, 3)
    n, k = p * q, 128
    proof = prove(p, q)
    verify(n, proof)
    for at, name in ((0, "w"), (1, "z_0"), (1 + CHALLENGES, "x_0"), (2 * CHALLENGES, "x_79")):
        v = int.from_bytes(proof[at * k : (at + 1) * k], "big")
        bad = proof[: at * k] + (v + n).to_bytes(k, "big") + proof[(at + 1) * k :]
        with pytest.raises(InvalidModulusProof, match=f"{name} is not in"):
            verify(n, bad)


def test_wrong_length_fails_before_any_arithmetic(key, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    p, q, proof = key

    def no_work(*_: object) -> None:
        raise AssertionError("a proof of the wrong length reached the arithmetic")

    monkeypatch.setattr(modulus_proof, "_challenges", no_work)
    for name in ("is_prime", "jacobi", "powmod"):
        monkeypatch.setattr(modulus_proof.gmpy2, name, no_work)
    for bad in (b"", proof[:-1], proof + b"\x00", proof * 2):
        with pytest.raises(InvalidModulusProof, match="needs exactly"):
            verify(p * q, bad, b"job-7")
    with pytest.raises(InvalidModulusProof, match="needs exactly"):
        verify(p * q * 3, proof, b"job-7")  # a longer modulus needs a longer proof


def test_p_congruent_1_mod_4_cannot_be_proven() -> None:
    with pytest.raises(WeakKey, match=r"≡ 1 \(mod 4\)"):
        prove(prime(HALF, 1), prime(HALF, 3))
    with pytest.raises(WeakKey, match="not prime"):
        prove(prime(HALF, 3) * 7, prime(HALF, 3))
    p = prime(HALF, 3)
    with pytest.raises(WeakKey, match="p = q"):
        prove(p, p)


def test_forged_proof_for_three_primes_fails() -> None:
    primes = [prime(384, 3) for _ in range(3)]
    n = primes[0] * primes[1] * primes[2]
    with pytest.raises(InvalidModulusProof, match="fourth root"):
        verify(n, forge(primes))


def test_forged_proof_for_a_prime_fails() -> None:
    n = prime(2 * HALF, 3)
    proof = forge([n])
    with pytest.raises(InvalidModulusProof, match="N is prime"):
        verify(n, proof)


def test_forged_proof_sharing_a_factor_with_the_totient_fails() -> None:
    # N = 3·p with p ≡ 1 (mod 3): a Blum integer, so every fourth root exists,
    # but 3 divides φ(N) and N, so most challenges have no N-th root.
    p = prime(2 * HALF, 3)
    while p % 3 != 1:
        p = prime(2 * HALF, 3)
    with pytest.raises(InvalidModulusProof, match="N-th root"):
        verify(3 * p, forge([3, p]))


def test_even_and_tiny_moduli_are_refused() -> None:
    with pytest.raises(InvalidModulusProof, match="too small"):
        verify(9, b"")
    n = 2 * prime(HALF, 3) * prime(HALF - 8, 3)
    with pytest.raises(InvalidModulusProof, match="even"):
        verify(n, bytes(proof_length(n)))
