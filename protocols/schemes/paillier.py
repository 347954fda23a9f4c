"""Paillier, one figure per ciphertext (naive) or many per plaintext (packed).

Packing: a plaintext holds k slots of w bits, w = value_bits + headroom,
headroom = bits(max_contributors). Each holder adds 2^(value_bits-1) to every
figure so that slots hold non-negative numbers below 2^value_bits; the sum of
up to max_contributors such numbers stays below 2^w, so no carry ever
crosses into the next slot. The buyer subtracts contributors × offset.

Randomiser (packed only): Damgård–Jurik–Nielsen. Each holder draws its own
x, sets h = −x² mod n and h_s = h^n mod n², and encrypts m as
(1 + n)^m · h_s^α mod n² with α uniform below 2^⌈bits(n)/2⌉. This rests on
DCR plus the assumption, standard for DJN, that h_s^α with α of half the
modulus length is indistinguishable from a random n-th residue. The holder
(not the buyer) makes h_s, so a buyer cannot hand out a degenerate one. When
a contribution needs many ciphertexts, powers of h_s are tabulated once
(fixed-base comb, 8-bit windows, ~16 MiB for a 2048-bit key), which makes
each encryption a few dozen multiplications instead of an exponentiation.

Keys: the buyer's modulus is n = p·q with p ≡ q ≡ 3 (mod 4), so that it can
carry a proof (``protocols.modulus_proof``) that it is a Paillier–Blum
modulus. A holder runs ``verify_public_key`` (the cheap ``check_modulus``,
then the proof) before encrypting anything under it; ``PaillierEncryptor``
runs only ``check_modulus``, because the gateway builds one per job too.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Sequence

import gmpy2
from phe import paillier

from protocols import modulus_proof
from protocols.schemes import Backend, InvalidCiphertext, OutOfRange, PublicParams, WeakKey

MIN_KEY_BITS = 2048
# A holder's comb table grows with the square of the modulus size (16 MiB at
# 2048 bits, 64 MiB at 4096) and each exponentiation with its cube; without a
# ceiling a buyer could make every holder spend memory and time at will.
MAX_KEY_BITS = 4096
DEFAULT_KEY_BITS = 2048
_WINDOW = 8
_TABLE_THRESHOLD = 64  # ciphertexts per contribution above which the comb table pays off
_SMALL_PRIMES = gmpy2.primorial(2**16 - 1)  # product of every prime below 2^16, one gcd tests them all
_VERIFIED_MAX = 64  # buyer keys a holder remembers as proven
_verified: OrderedDict[tuple[int, bytes], None] = OrderedDict()
_verified_lock = threading.Lock()
_FRESH = "; the buyer must generate a fresh key"


def check_modulus(n: int) -> None:
    """Cheap refusals of a buyer's modulus that no honest key generation produces."""
    bits = n.bit_length()
    if bits < MIN_KEY_BITS:
        raise WeakKey(
            f"the buyer's Paillier modulus has {bits} bits; at least {MIN_KEY_BITS} are required{_FRESH}"
        )
    if bits > MAX_KEY_BITS:
        raise WeakKey(
            f"the buyer's Paillier modulus has {bits} bits; holders accept at most {MAX_KEY_BITS}"
            f"{_FRESH} of at most that size"
        )
    if n % 2 == 0:
        raise WeakKey(f"the buyer's Paillier modulus is even, so it is not a product of two large primes{_FRESH}")
    if gmpy2.gcd(n, _SMALL_PRIMES) != 1:
        raise WeakKey(f"the buyer's Paillier modulus has a prime factor below 2^16: anyone can factor it{_FRESH}")
    if gmpy2.is_power(n):
        raise WeakKey(
            f"the buyer's Paillier modulus is a perfect power: it is not a product of two distinct primes{_FRESH}"
        )
    if gmpy2.is_prime(n, 25):
        raise WeakKey(f"the buyer's Paillier modulus is prime: anyone can decrypt under it{_FRESH}")


def verify_public_key(params: PublicParams) -> None:
    """A holder's check of the buyer's key: ``check_modulus`` and the modulus proof.

    Other backends carry no Paillier modulus and pass unchecked here.
    Raises ``WeakKey`` (``modulus_proof.InvalidModulusProof`` when the proof
    is wrong).
    """
    if params.backend not in (Backend.PAILLIER, Backend.PAILLIER_PACKED):
        return
    n = params.paillier_n
    check_modulus(n)
    if not params.modulus_proof:
        raise WeakKey(
            "the buyer's Paillier key carries no modulus proof, so nothing shows it is a product of two primes; "
            "the buyer must upgrade its client"
        )
    key = (n, hashlib.sha256(params.modulus_proof).digest())
    with _verified_lock:
        if key in _verified:
            _verified.move_to_end(key)
            return
    # Outside the lock: verification takes a fraction of a second and other keys need not wait.
    modulus_proof.verify(n, params.modulus_proof)
    with _verified_lock:
        _verified[key] = None
        while len(_verified) > _VERIFIED_MAX:
            _verified.popitem(last=False)


_PROOFS: "OrderedDict[int, bytes]" = OrderedDict()
_PROOFS_MAX = 64
_proofs_lock = threading.Lock()


def _proof(p: int, q: int) -> bytes:
    """The modulus proof of p·q, made once per key in this process: a key used for several jobs then
    carries the same proof each time, which holders have already checked (``verify_public_key``)."""
    n = p * q
    with _proofs_lock:
        if n in _PROOFS:
            _PROOFS.move_to_end(n)
            return _PROOFS[n]
    proof = modulus_proof.prove(p, q)
    with _proofs_lock:
        _PROOFS[n] = proof
        while len(_PROOFS) > _PROOFS_MAX:
            _PROOFS.popitem(last=False)
    return proof


def generate_keypair(
    key_bits: int = DEFAULT_KEY_BITS,
) -> tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey]:
    """A phe key pair whose modulus is a Paillier–Blum modulus, so that it can be proven one."""
    if not MIN_KEY_BITS <= key_bits <= MAX_KEY_BITS:
        raise WeakKey(f"key_bits must be between {MIN_KEY_BITS} and {MAX_KEY_BITS}, got {key_bits}")
    while True:
        p = _blum_prime((key_bits + 1) // 2)
        q = _blum_prime(key_bits // 2)
        if p != q and (p * q).bit_length() == key_bits:
            public = paillier.PaillierPublicKey(int(p * q))
            return public, paillier.PaillierPrivateKey(public, int(p), int(q))


def _blum_prime(bits: int) -> gmpy2.mpz:
    while True:
        # Top two bits set: primes of b1 and b2 bits then multiply to exactly b1 + b2 bits.
        start = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        p = gmpy2.next_prime(start)
        while p % 4 != 3:
            p = gmpy2.next_prime(p)
        if p.bit_length() == bits:
            return p


def slot_width(value_bits: int, max_contributors: int) -> int:
    return value_bits + max(1, max_contributors).bit_length()


def slots_per_plaintext(n: int, value_bits: int, max_contributors: int) -> int:
    # Keep the packed plaintext below n / 3 ≈ 2^(bits(n) - 2) as phe's encoding does.
    return max(1, (n.bit_length() - 2) // slot_width(value_bits, max_contributors))


def ciphertext_count(params: PublicParams) -> int:
    if params.backend is Backend.PAILLIER:
        return params.length
    k = slots_per_plaintext(params.paillier_n, params.slot_bits, params.max_contributors)
    return -(-params.length // k)


def width_bytes(n: int) -> int:
    return ((n * n).bit_length() + 7) // 8


class DjnRandomiser:
    """Fresh n-th residues h_s^α mod n², optionally from a fixed-base table."""

    def __init__(self, n: int, *, table: bool) -> None:
        self.n = gmpy2.mpz(n)
        self.nsq = self.n * self.n
        self.exp_bits = (n.bit_length() + 1) // 2
        x = gmpy2.mpz(secrets.randbelow(n - 2) + 2)
        while gmpy2.gcd(x, self.n) != 1:  # pragma: no cover - only if x hits a factor of n
            x = gmpy2.mpz(secrets.randbelow(n - 2) + 2)
        h = (-x * x) % self.n
        self.hs = gmpy2.powmod(h, self.n, self.nsq)
        self._table: list[list[gmpy2.mpz]] | None = self._build() if table else None

    def _build(self) -> list[list[gmpy2.mpz]]:
        rows = []
        base = self.hs
        for _ in range(-(-self.exp_bits // _WINDOW)):
            row = [gmpy2.mpz(1)]
            for _ in range((1 << _WINDOW) - 1):
                row.append(row[-1] * base % self.nsq)
            rows.append(row)
            base = row[-1] * base % self.nsq
        return rows

    def next(self) -> gmpy2.mpz:
        alpha = secrets.randbits(self.exp_bits)
        if self._table is None:
            return gmpy2.powmod(self.hs, alpha, self.nsq)
        acc = gmpy2.mpz(1)
        mask = (1 << _WINDOW) - 1
        for row in self._table:
            d = alpha & mask
            if d:
                acc = acc * row[d] % self.nsq
            alpha >>= _WINDOW
        return acc


class PaillierEncryptor:
    """The holder's and the gateway's side: public key only."""

    def __init__(self, params: PublicParams) -> None:
        check_modulus(params.paillier_n)
        self.params = params
        self.n = params.paillier_n
        self.nsq = self.n * self.n
        self.width = width_bytes(self.n)
        self.packed = params.backend is Backend.PAILLIER_PACKED
        self._phe = paillier.PaillierPublicKey(self.n)
        if self.packed:
            self.k = slots_per_plaintext(self.n, params.slot_bits, params.max_contributors)
            self.w = slot_width(params.slot_bits, params.max_contributors)
            self.offset = 1 << (params.slot_bits - 1)
        self._max_int = self.n // 3 - 1

    def plaintexts(self, figures: Sequence[int]) -> list[int]:
        if len(figures) != self.params.length:
            raise OutOfRange(f"{len(figures)} figures for a job expecting {self.params.length}")
        if not self.packed:
            for v in figures:
                if abs(v) > self._max_int // max(1, self.params.max_contributors):
                    raise OutOfRange("a figure is too large for the buyer's Paillier key")
            return [v % self.n for v in figures]
        limit = self.offset
        out = []
        for start in range(0, len(figures), self.k):
            acc = 0
            for i, v in enumerate(figures[start : start + self.k]):
                if not -limit <= v < limit:
                    raise OutOfRange(
                        f"figure {start + i} does not fit a {self.params.slot_bits}-bit packed slot; "
                        "use the paillier backend or wider slot_bits"
                    )
                acc |= (v + limit) << (i * self.w)
            out.append(acc)
        return out

    def encrypt(self, figures: Sequence[int]) -> list[bytes]:
        return self.raw_encrypt(self.plaintexts(figures))

    def raw_encrypt(self, plains: Sequence[int]) -> list[bytes]:
        """Encrypt plaintexts as given, packed or not, with no range check: ``encrypt`` is the safe
        call. Tests use this to play a holder that packs slots wrongly."""
        if not self.packed:
            # The naive baseline: phe's own encryption, one full exponentiation per figure.
            return [int(self._phe.raw_encrypt(m)).to_bytes(self.width, "big") for m in plains]
        rnd = DjnRandomiser(self.n, table=len(plains) >= _TABLE_THRESHOLD)
        n = gmpy2.mpz(self.n)
        out = []
        for m in plains:
            c = (1 + n * m) % self.nsq * rnd.next() % self.nsq
            out.append(int(c).to_bytes(self.width, "big"))
        return out

    def parse(self, ciphertexts: Sequence[bytes]) -> list[gmpy2.mpz]:
        expected = ciphertext_count(self.params)
        if len(ciphertexts) != expected:
            raise InvalidCiphertext(f"expected {expected} ciphertexts, got {len(ciphertexts)}")
        out = []
        n = gmpy2.mpz(self.n)
        for i, raw in enumerate(ciphertexts):
            if len(raw) != self.width:
                raise InvalidCiphertext(f"ciphertext {i} is {len(raw)} bytes; this job's key needs {self.width}")
            c = gmpy2.mpz(int.from_bytes(raw, "big"))
            if not 0 < c < self.nsq:
                raise InvalidCiphertext(f"ciphertext {i} is outside (0, n²) for this job's key")
            if gmpy2.gcd(c, n) != 1:
                raise InvalidCiphertext(f"ciphertext {i} is not invertible modulo n² for this job's key")
            out.append(c)
        return out

    def check(self, ciphertexts: Sequence[bytes]) -> None:
        self.parse(ciphertexts)

    def combine(self, contributions: Sequence[Sequence[bytes]], *, rerandomise: bool = True) -> list[bytes]:
        totals: list[gmpy2.mpz] | None = None
        for contribution in contributions:
            cs = self.parse(contribution)
            totals = cs if totals is None else [a * b % self.nsq for a, b in zip(totals, cs)]
        if totals is None:
            raise InvalidCiphertext("nothing to combine: no contributions")
        if rerandomise:
            rnd = DjnRandomiser(self.n, table=len(totals) >= _TABLE_THRESHOLD)
            totals = [t * rnd.next() % self.nsq for t in totals]
        return [int(t).to_bytes(self.width, "big") for t in totals]


class PaillierScheme:
    """The buyer's side: the key pair stays here."""

    def __init__(
        self,
        backend: Backend,
        length: int,
        max_contributors: int,
        *,
        key_bits: int = DEFAULT_KEY_BITS,
        slot_bits: int = 64,
        keypair: tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey] | None = None,
    ) -> None:
        if not MIN_KEY_BITS <= key_bits <= MAX_KEY_BITS:
            raise WeakKey(f"key_bits must be between {MIN_KEY_BITS} and {MAX_KEY_BITS}, got {key_bits}")
        if backend is Backend.PAILLIER_PACKED and not 2 <= slot_bits <= 512:
            raise OutOfRange(f"slot_bits must be between 2 and 512, got {slot_bits}")
        self._public, self._private = keypair or generate_keypair(key_bits)
        if self._private.p % 4 != 3 or self._private.q % 4 != 3:
            raise WeakKey(
                "the supplied key pair's primes are not both ≡ 3 (mod 4), so holders cannot be shown its "
                "modulus is a Paillier–Blum modulus and will refuse it; make it with "
                "protocols.schemes.paillier.generate_keypair"
            )
        self._params = PublicParams(
            backend=backend,
            length=length,
            max_contributors=max_contributors,
            paillier_n=self._public.n,
            slot_bits=slot_bits if backend is Backend.PAILLIER_PACKED else 0,
        )
        self._enc = PaillierEncryptor(self._params)
        self._proof_lock = threading.Lock()

    @classmethod
    def restore(cls, params: PublicParams, p: int, q: int) -> "PaillierScheme":
        """The scheme of a stored job: its public parameters (modulus proof included) and the primes of its key.

        Raises ``WeakKey`` when ``p·q`` is not the parameters' modulus."""
        if p * q != params.paillier_n:
            raise WeakKey("the stored primes do not multiply to the job's Paillier modulus")
        public = paillier.PaillierPublicKey(p * q)
        scheme = cls(params.backend, params.length, params.max_contributors, key_bits=params.paillier_n.bit_length(),
                     slot_bits=params.slot_bits or 64, keypair=(public, paillier.PaillierPrivateKey(public, p, q)))
        scheme._params = params  # keeps the proof made at submission: holders checked that one
        return scheme

    @property
    def primes(self) -> tuple[int, int]:
        """The secret key: the two primes of the modulus. Only a keystore should ask for them."""
        return int(self._private.p), int(self._private.q)

    @property
    def public(self) -> PublicParams:
        """The parameters holders need, with the modulus proof (made on first use: it takes a moment)."""
        with self._proof_lock:
            if not self._params.modulus_proof:
                self._params = replace(self._params, modulus_proof=_proof(int(self._private.p), int(self._private.q)))
            return self._params

    def decrypt(self, ciphertexts: Sequence[bytes], contributors: int) -> list[int]:
        cs = self._enc.parse(ciphertexts)
        n = self._public.n
        plains = [self._private.raw_decrypt(int(c)) for c in cs]
        if not self._enc.packed:
            limit = n // 3 - 1
            out = []
            for x in plains:
                if x <= limit:
                    out.append(x)
                elif x >= n - limit:
                    out.append(x - n)
                else:
                    raise OutOfRange("a decrypted total overflowed the plaintext space")
            return out
        return unpack(plains, length=self._params.length, slots=self._enc.k, slot_bits=self._params.slot_bits,
                      max_contributors=self._params.max_contributors, contributors=contributors)


def unpack(plains: Sequence[int], *, length: int, slots: int, slot_bits: int, max_contributors: int,
           contributors: int) -> list[int]:
    """The signed totals of packed plaintexts, each slot checked before it counts.

    Honest holders put v + 2^(slot_bits-1) < 2^slot_bits in each slot, so the sum of
    ``contributors`` of them is at most contributors × (2^slot_bits − 1) and never reaches the
    next slot; the bits above the last used slot stay zero. A holder that packed a larger number
    (or a gateway that added something of its own) breaks one of these, and the total it would
    give is wrong: raise OutOfRange naming the slot rather than return it.
    """
    if not 1 <= contributors <= max(1, max_contributors):
        raise OutOfRange(f"the result claims {contributors} contributor(s); this job's encoding allows 1 to "
                         f"{max(1, max_contributors)}, so its totals cannot be read")
    w = slot_width(slot_bits, max_contributors)
    mask = (1 << w) - 1
    bound = contributors * ((1 << slot_bits) - 1)
    offset = contributors << (slot_bits - 1)
    out: list[int] = []
    for i, x in enumerate(plains):
        used = min(slots, length - len(out))
        if used <= 0 or x >> (used * w):
            raise OutOfRange(
                f"packed plaintext {i} has bits set above its {max(used, 0)} slot(s) (bit {x.bit_length() - 1}): "
                "a holder encrypted a number wider than its slots, or carried out of the last one; "
                "the totals are corrupt and were not used")
        for j in range(used):
            slot = (x >> (j * w)) & mask
            if slot > bound:
                figure = len(out)
                came = f" or carried into it from figure {figure - 1}" if j else ""
                raise OutOfRange(
                    f"packed slot {j} of plaintext {i} (figure {figure}) holds {slot}, above {bound}, the most "
                    f"{contributors} holder(s) of {slot_bits}-bit figures can sum to: a holder's figure overflowed "
                    f"its slot{came}; the totals are corrupt and were not used")
            out.append(slot - offset)
    if len(out) != length:
        raise OutOfRange(f"the result's plaintexts hold {len(out)} figure(s); the job has {length}")
    return out


def offset_correction(params: PublicParams, surplus: int) -> list[int]:
    """Packed plaintexts that take ``surplus`` offsets off every used slot of a total they are added to.

    A total of k holders' packed contributions carries k offsets (2^(slot_bits-1) each) per slot; a
    party that relays such a total as its one contribution (a link to another exchange) adds the
    encryption of these with ``surplus`` = k − 1, so the buyer, who subtracts one offset per
    contributor, reads the right sums. Each plaintext is −surplus · Σ_j 2^(slot_bits-1) · 2^(j·w)
    over its used slots, mod n: it needs the public key only. The slots of the corrected total stay
    non-negative as long as the k holders' sum of each figure fits one holder's signed slot range.
    """
    if params.backend is not Backend.PAILLIER_PACKED:
        raise OutOfRange(f"offsets exist only in packed Paillier, not in {params.backend.value}")
    if surplus < 0:
        raise OutOfRange(f"a surplus of {surplus} offsets: it must be 0 or more")
    n = params.paillier_n
    k = slots_per_plaintext(n, params.slot_bits, params.max_contributors)
    w = slot_width(params.slot_bits, params.max_contributors)
    each = surplus << (params.slot_bits - 1)
    out = []
    for start in range(0, params.length, k):
        used = min(k, params.length - start)
        constant = sum(each << (j * w) for j in range(used))
        out.append(-constant % n)
    return out


def rough_slot_bits(max_abs_figure: int) -> int:
    """Bits a packed slot needs for signed figures up to ``max_abs_figure``."""
    return max(2, math.ceil(math.log2(max_abs_figure + 1)) + 1)
