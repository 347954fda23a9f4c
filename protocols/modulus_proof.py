"""Non-interactive proof that a Paillier modulus is a Paillier–Blum modulus.

What it proves: N = p·q for two distinct primes p ≡ q ≡ 3 (mod 4), and
gcd(N, φ(N)) = 1. That rules out the moduli a dishonest or careless buyer
could hand holders to make their encryptions readable by others or
non-hiding: a prime, a prime power, a product of three or more primes, or a
modulus sharing a factor with its totient.

What it does not prove: that p and q are large, or of similar size. A
2048-bit N = 3 · P with P a prime ≡ 3 (mod 4) is a Paillier–Blum modulus,
its proof verifies, and anyone can factor it. Pair the proof with
``protocols.schemes.paillier.check_modulus`` (bit length, no small factors,
not prime, not a perfect power), as ``verify_public_key`` does. Nor does it
bind the key to a buyer; that is for whatever authenticates the job.

Protocol: Π^mod of Canetti, Gennaro, Goldfeder, Makriyannis and Peled,
"UC Non-Interactive, Proactive, Threshold ECDSA with Identifiable Aborts",
CCS 2020, IACR eprint 2021/060, section 6.3 (figure 16), made
non-interactive by Fiat–Shamir. The prover publishes w with Jacobi symbol
(w|N) = −1; challenges y_1..y_m ∈ Z*_N are SHAKE-256 outputs over a domain
tag, N, w and the caller's context; for each i the prover answers
z_i = y_i^(N⁻¹ mod φ(N)) and (a_i, b_i, x_i) with
x_i⁴ = (−1)^a_i · w^b_i · y_i mod N. The verifier checks z_i^N = y_i and the
fourth roots. With m = 80 challenges a modulus that is not Paillier–Blum
passes with probability at most 2^-80.

Encoding (all big-endian, every integer in exactly k = ⌈bits(N)/8⌉ bytes):
w ‖ z_1..z_m ‖ x_1..x_m ‖ a ‖ b, where a and b are the m bits a_i, b_i
packed into ⌈m/8⌉ bytes each, bit i of the integer being challenge i. The
length is thus fixed by N, and a proof of any other length is refused
before any arithmetic: it comes from the network.
"""

from __future__ import annotations

import hashlib
import secrets

import gmpy2  # type: ignore[import-untyped]

from protocols.schemes import WeakKey

CHALLENGES = 80
_TAG = b"datawharf/paillier-blum-modulus/v1"
# Extra bytes per challenge so that reducing mod N leaves a bias below 2^-128.
_SLACK = 16
# An honest modulus rejects a challenge with probability about 2^-1000; a
# modulus full of small factors could reject many, so bound the work.
_MAX_DRAWS = 64 * CHALLENGES


class InvalidModulusProof(WeakKey):
    """The proof does not show the modulus is a Paillier–Blum modulus."""


def proof_length(n: int) -> int:
    """Bytes of a proof for modulus ``n``."""
    k = _width(n)
    return k * (1 + 2 * CHALLENGES) + 2 * _bit_bytes()


def prove(p: int, q: int, context: bytes = b"") -> bytes:
    """Prove that p·q is a Paillier–Blum modulus; ``context`` binds the proof to a use."""
    p, q = gmpy2.mpz(p), gmpy2.mpz(q)
    for name, r in (("p", p), ("q", q)):
        if r < 3 or not gmpy2.is_prime(r, 25):
            raise WeakKey(f"{name} is not prime, so p·q is not a Paillier modulus; generate a fresh key")
        if r % 4 != 3:
            raise WeakKey(
                f"{name} ≡ 1 (mod 4), so p·q is not a Paillier–Blum modulus and cannot be proven one; "
                "generate the key with protocols.schemes.paillier.generate_keypair"
            )
    if p == q:
        raise WeakKey("p = q: the modulus is a square, which anyone can factor; generate a fresh key")
    n = p * q
    phi = (p - 1) * (q - 1)
    if gmpy2.gcd(n, phi) != 1:
        raise WeakKey("gcd(N, φ(N)) ≠ 1, so N is not a Paillier modulus; generate a fresh key")
    k = _width(n)

    w = gmpy2.mpz(secrets.randbelow(int(n) - 2) + 2)
    while gmpy2.jacobi(w, n) != -1:
        w = gmpy2.mpz(secrets.randbelow(int(n) - 2) + 2)

    # Exponents reduced per prime, results joined by CRT: four half-size
    # exponentiations instead of two full-size ones per challenge.
    n_inv_p = gmpy2.invert(n, p - 1)
    n_inv_q = gmpy2.invert(n, q - 1)
    # For r a square mod a prime ≡ 3 (mod 4), r^((p+1)/4) is its square root
    # that is itself a square, so applying the map twice gives a fourth root.
    quart_p = pow((p + 1) // 4, 2, p - 1)
    quart_q = pow((q + 1) // 4, 2, q - 1)
    p_inv_q = gmpy2.invert(p, q)

    def crt(rp: gmpy2.mpz, rq: gmpy2.mpz) -> gmpy2.mpz:
        return rp + p * ((rq - rp) * p_inv_q % q)

    zs, xs = [], []
    a_bits = b_bits = 0
    for i, y in enumerate(_challenges(n, w, context)):
        zs.append(crt(gmpy2.powmod(y, n_inv_p, p), gmpy2.powmod(y, n_inv_q, q)))
        for a, b in ((0, 0), (1, 0), (0, 1), (1, 1)):
            t = (-y if a else y) * (w if b else 1) % n
            if gmpy2.legendre(t, p) == 1 and gmpy2.legendre(t, q) == 1:
                break
        else:  # pragma: no cover - (w|N) = −1 and p ≡ q ≡ 3 (mod 4) make one of the four a square
            raise AssertionError("no quadratic residue among ±y, ±wy")
        xs.append(crt(gmpy2.powmod(t, quart_p, p), gmpy2.powmod(t, quart_q, q)))
        a_bits |= a << i
        b_bits |= b << i

    out = bytearray(_int_bytes(w, k))
    for v in zs + xs:
        out += _int_bytes(v, k)
    out += a_bits.to_bytes(_bit_bytes(), "big") + b_bits.to_bytes(_bit_bytes(), "big")
    return bytes(out)


def verify(n: int, proof: bytes, context: bytes = b"") -> None:
    """Raise ``InvalidModulusProof`` unless ``proof`` shows ``n`` is a Paillier–Blum modulus.

    ``n`` should already have passed ``check_modulus``: the work here grows
    with its size.
    """
    if n < 15:
        raise InvalidModulusProof(f"N = {n} is too small to be a product of two odd primes")
    expected = proof_length(n)
    if len(proof) != expected:
        raise InvalidModulusProof(
            f"the modulus proof is {len(proof)} bytes; a {n.bit_length()}-bit modulus needs exactly {expected}"
        )
    if n % 2 == 0:
        raise InvalidModulusProof("N is even, so it is not a Paillier–Blum modulus")
    nz = gmpy2.mpz(n)
    k = _width(n)
    ints = [gmpy2.mpz(int.from_bytes(proof[j : j + k], "big")) for j in range(0, k * (1 + 2 * CHALLENGES), k)]
    w, zs, xs = ints[0], ints[1 : 1 + CHALLENGES], ints[1 + CHALLENGES :]
    bits = proof[k * (1 + 2 * CHALLENGES) :]
    a_bits = int.from_bytes(bits[: _bit_bytes()], "big")
    b_bits = int.from_bytes(bits[_bit_bytes() :], "big")
    if a_bits >> CHALLENGES or b_bits >> CHALLENGES:
        raise InvalidModulusProof("the modulus proof sets padding bits that must be zero")
    if not 0 < w < nz:
        raise InvalidModulusProof("the proof's w is not in (0, N)")
    # Non-canonical encodings (v ≥ N) would let anyone alter a valid proof.
    for name, vs in (("z", zs), ("x", xs)):
        for i, v in enumerate(vs):
            if not 0 < v < nz:
                raise InvalidModulusProof(f"the proof's {name}_{i} is not in (0, N)")
    if gmpy2.jacobi(w, nz) != -1:
        raise InvalidModulusProof("the proof's w does not have Jacobi symbol −1 modulo N")
    if gmpy2.is_prime(nz, 25):
        raise InvalidModulusProof("N is prime, so it is not a Paillier–Blum modulus")
    ys = _challenges(nz, w, context)
    # Fourth powers are cheap and catch most forgeries; the N-th powers are
    # the bulk of the work, so they come last.
    for i, (x, y) in enumerate(zip(xs, ys)):
        t = (-y if a_bits >> i & 1 else y) * (w if b_bits >> i & 1 else 1) % nz
        if gmpy2.powmod(x, 4, nz) != t:
            raise InvalidModulusProof(
                f"answer {i} is not a fourth root of its challenge: N is not a Paillier–Blum modulus, "
                "the proof was made for another modulus or context, or it was altered"
            )
    for i, (z, y) in enumerate(zip(zs, ys)):
        if gmpy2.powmod(z, nz, nz) != y:
            raise InvalidModulusProof(
                f"answer {i} is not an N-th root of its challenge: gcd(N, φ(N)) ≠ 1, "
                "or the proof was altered"
            )


def _challenges(n: gmpy2.mpz, w: gmpy2.mpz, context: bytes) -> list[gmpy2.mpz]:
    k = _width(n)
    h = hashlib.shake_256()
    for part in (_TAG, CHALLENGES.to_bytes(2, "big"), k.to_bytes(4, "big"), _int_bytes(n, k), _int_bytes(w, k)):
        h.update(part)
    h.update(len(context).to_bytes(8, "big"))
    h.update(context)
    out: list[gmpy2.mpz] = []
    for counter in range(_MAX_DRAWS):
        d = h.copy()
        d.update(counter.to_bytes(4, "big"))
        y = gmpy2.mpz(int.from_bytes(d.digest(k + _SLACK), "big")) % n
        if gmpy2.gcd(y, n) == 1:
            out.append(y)
            if len(out) == CHALLENGES:
                return out
    raise InvalidModulusProof("too many challenges share a factor with N; N has small factors")


def _width(n: int) -> int:
    return (int(n).bit_length() + 7) // 8


def _bit_bytes() -> int:
    return (CHALLENGES + 7) // 8


def _int_bytes(v: gmpy2.mpz, k: int) -> bytes:
    return int(v).to_bytes(k, "big")
