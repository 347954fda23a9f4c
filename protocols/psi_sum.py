"""Private join-and-sum: the buyer learns |X ∩ Y| and Σ v over it, nothing per row.

Built on ``protocols.psi`` (same blinding and rounds) plus additive masks:

- The holder shuffles its rows, sends W = [b·H(y_j)] towards the buyer and,
  to the gateway only, D = b·A (the buyer's blinded IDs, shuffled) and the
  masked values c[j][k] = v[j][k] + m[j][k] mod 2^128, one per value column.
  The masks come from a ChaCha20 stream keyed by a fresh 32-byte seed that
  is sealed to the buyer's box key (X25519 + HKDF + ChaCha20-Poly1305), so
  the gateway relays it without reading it.
- The buyer returns Z = a·W to the gateway. The gateway takes J = {j : Z[j] ∈ D},
  refuses if |J| is below the holder's minimum or Z repeats a value, and sends
  the buyer J, |J| and S[k] = Σ_J c[j][k]. The buyer unseals the seed and
  subtracts Σ_J m[j][k].

Per row this costs the PSI's two scalar multiplications plus a few additions,
not a Paillier encryption.

Who learns what, and the trust it rests on: the buyer sees only masks and
the totals, never a masked value, so no single row; the gateway sees masked
values (uniform without the seed), |J| and positions in the holder's secret
order; the holder learns |X|. The gateway must not collude with the buyer
(together they unmask every row) nor with the holder (together they learn
which of the holder's IDs matched).

A misbehaving buyer cannot add rows it does not hold: it would need b·a·H(y)
for IDs it lacks, which only the holder can make, and the gateway refuses a
Z with repeated values, so a buyer cannot copy a matching value to inflate
J. It can spoil entries of Z to drop rows, but it cannot tell which
positions of W match (D never reaches it), so it cannot aim at one ID; the
holder's minimum intersection size bounds what small totals reveal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocols import psi

MODULUS = 1 << 128
MASK_BYTES = 16
_INFO = b"datawharf/psi-sum/seed/v1"


class SealError(psi.PsiError):
    """The sealed seed does not open: wrong key, wrong job, or tampered with."""


def _masks(seed: bytes, rows: int, columns: int) -> list[list[int]]:
    """m[j][k] for every row and column, from one ChaCha20 keystream."""
    cipher = Cipher(algorithms.ChaCha20(seed, b"\x00" * 16), mode=None).encryptor()
    stream = cipher.update(b"\x00" * (rows * columns * MASK_BYTES))
    out = []
    for j in range(rows):
        base = j * columns * MASK_BYTES
        out.append([int.from_bytes(stream[base + k * MASK_BYTES: base + (k + 1) * MASK_BYTES], "little")
                    for k in range(columns)])
    return out


class BoxKey:
    """The buyer's key for receiving the sealed seed; only its public half travels."""

    def __init__(self) -> None:
        self._key = X25519PrivateKey.generate()

    @property
    def public(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        if len(sealed) < 32 + 12 + 16:
            raise SealError("the sealed seed is too short")
        eph, nonce, body = sealed[:32], sealed[32:44], sealed[44:]
        try:
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(eph))
            key = HKDF(hashes.SHA256(), 32, salt=eph + self.public, info=_INFO).derive(shared)
            return ChaCha20Poly1305(key).decrypt(nonce, body, context)
        except (InvalidTag, ValueError):
            raise SealError("the sealed seed does not open for this buyer and job") from None


def seal(seed: bytes, buyer_public: bytes, context: bytes) -> bytes:
    if len(buyer_public) != 32:
        raise SealError("the buyer's box key must be 32 bytes")
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(buyer_public))
    except ValueError:
        raise SealError("the buyer's box key is a low-order point") from None
    key = HKDF(hashes.SHA256(), 32, salt=eph_pub + buyer_public, info=_INFO).derive(shared)
    nonce = os.urandom(12)
    return eph_pub + nonce + ChaCha20Poly1305(key).encrypt(nonce, seed, context)


@dataclass(frozen=True)
class HolderAnswer:
    for_gateway_d: list[bytes]        # b·A, shuffled
    for_gateway_masked: list[list[int]]  # c[j][k], in W's order
    for_buyer_w: list[bytes]          # b·H(y_j), shuffled
    for_buyer_sealed_seed: bytes
    minimum: int


class Holder:
    def __init__(self, rows: Iterable[tuple[str, Sequence[int]]], *, key: psi.Key | None = None) -> None:
        """``rows``: (id, fixed-point integer values per column). Repeated IDs are summed."""
        merged: dict[bytes, list[int]] = {}
        self.columns = -1
        for ident, values in rows:
            if self.columns < 0:
                self.columns = len(values)
            elif len(values) != self.columns:
                raise psi.PsiError("every row needs the same number of values")
            acc = merged.setdefault(psi.normalise(ident), [0] * len(values))
            for k, v in enumerate(values):
                acc[k] += int(v)
        self.columns = max(self.columns, 0)
        self.rows = merged
        self.key = key or psi.Key()

    def answer(self, buyer_points: Sequence[bytes], buyer_box: bytes, context: bytes, *, minimum: int,
               mapper: psi.Mapper = psi._serial_map) -> HolderAnswer:
        d = psi.shuffled(psi.reblind(self.key, buyer_points, mapper))
        order = psi.shuffled(list(self.rows))
        w = [p for part in mapper(self.key.hash_and_blind, psi.chunked(order)) for p in part]
        seed = os.urandom(32)
        masks = _masks(seed, len(order), self.columns)
        masked = [[(v + m) % MODULUS for v, m in zip(self.rows[ident], mj)] for ident, mj in zip(order, masks)]
        return HolderAnswer(d, masked, w, seal(seed, buyer_box, context), minimum)


@dataclass(frozen=True)
class SumResult:
    positions: tuple[int, ...]
    size: int
    masked_sums: tuple[int, ...]


def gateway_sum(d: Sequence[bytes], z: Sequence[bytes], masked: Sequence[Sequence[int]], *, minimum: int) -> SumResult:
    """The gateway's role: J from D and Z, and the masked sums over J."""
    if len(z) != len(masked):
        raise psi.InvalidPoint(f"the buyer re-blinded {len(z)} values for {len(masked)} holder rows")
    psi.require_distinct(d, "the holder's re-blinded set (stage D)")
    psi.require_distinct(z, "the buyer's re-blinded set (stage Z)")
    d_set = set(d)
    positions = tuple(j for j, v in enumerate(z) if v in d_set)
    if len(positions) < minimum:
        raise psi.BelowMinimum(f"the intersection is below the holder's minimum of {minimum}; nothing is released")
    columns = len(masked[0]) if masked else 0
    sums = tuple(sum(masked[j][k] for j in positions) % MODULUS for k in range(columns))
    return SumResult(positions, len(positions), sums)


class Buyer(psi.Buyer):
    def __init__(self, ids: Iterable[str], *, key: psi.Key | None = None) -> None:
        super().__init__(ids, key=key)
        self.box = BoxKey()

    def totals(self, result: SumResult, sealed_seed: bytes, context: bytes, rows: int) -> tuple[int, ...]:
        """Signed sums per value column, exact."""
        seed = self.box.open(sealed_seed, context)
        columns = len(result.masked_sums)
        masks = _masks(seed, rows, columns)
        out = []
        for k, s in enumerate(result.masked_sums):
            t = (s - sum(masks[j][k] for j in result.positions)) % MODULUS
            out.append(t - MODULUS if t >= MODULUS // 2 else t)
        return tuple(out)
