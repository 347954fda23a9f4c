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
which of the holder's IDs matched). The rounds, stages and checks are
those of ``protocols.psi``: A ends with the buyer's commitment, W hides the
holder's canaries, and the buyer checks the holder's signed receipt before
it re-blinds W.

A misbehaving buyer cannot add rows it does not hold: it would need b·a·H(y)
for IDs it lacks, which only the holder can make, and the gateway refuses a
Z with repeated values, so a buyer cannot copy a matching value to inflate
J. It can spoil entries of Z to drop rows, but it cannot tell which
positions of W match (D never reaches it), so it cannot aim at one ID; the
holder's minimum intersection size bounds what small totals reveal.

Differencing and differential privacy. Exact totals let a buyer sum a list
of IDs, add one phone number, sum again, and read that person's value off
the difference; the exact |J| tells it whether the person is there at all.
Under the holder's DP policy (the unit of privacy is one ID of the join
key, with all its rows summed and then clipped to the column's bounds):

- Sums: the holder adds a padding row whose values are discrete Gaussian
  noise, masked like any row, and the gateway always counts it, so the
  buyer's total is Σ_J v + η and it cannot subtract η: it never sees an
  unmasked row, and the row's mask alone tells it nothing about η.
- The size: the holder pads W with rows of value 0 and tells the gateway
  (stage N, which the buyer never reads) to count t = T + η_c of them, T a
  fixed shift of ten standard deviations so that t is not negative but with
  probability below 10^-23 (then clamped: the only δ here). The released
  size is |J| + η_c, the positions the buyer unmasks include those t rows,
  and the minimum is applied to the noisy size.
- The set size: the number of padding rows is itself shifted noise, so
  |W| = |Y| + padding shows |Y| only up to noise.
- ρ is split evenly over the released parts (size, set size, each column)
  by OpenDP's accounting (``protocols.dp``); each ID moves the size and the
  set size by 1 and each clipped sum by at most max(|lower|, |upper|).

What the guarantee covers. Against the buyer alone: every figure it sees
(size, |W|, each total) is ρ-zCDP for the holder's IDs when each ID counts
at most once. Repeats are refused (``protocols.psi``), and a buyer that
re-blinds parts of W under other scalars than the one it committed to, to
make one ID count k times, is caught by the holder's canaries unless none
of them falls in what it rewrote (below e^(−256·(k−1)·s) for a success
chance s); were it to slip through, the loss for that ID would be k²·ρ.
Against the buyer with the gateway: none, as above they unmask every row;
the gateway alone sees J, |J|, η_c and the canaries, never a value.
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
    counted: tuple[int, ...] = ()     # padding rows of W the gateway counts with the matches
    canaries: tuple[psi.Canary, ...] = ()  # the gateway's checks on Z (see protocols.psi)


class Holder:
    def __init__(self, rows: Iterable[tuple[str, Sequence[int]]], *, key: psi.Key | None = None,
                 bounds: Sequence[tuple[int, int]] | None = None) -> None:
        """``rows``: (id, fixed-point integer values per column). Repeated IDs are summed, and
        each ID's sums clipped to ``bounds`` (one (lower, upper) per column) when given:
        under differential privacy one ID is what a neighbouring dataset adds or removes."""
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
        if bounds is not None:
            if merged and len(bounds) != self.columns:
                raise psi.PsiError(f"{len(bounds)} bounds for {self.columns} value columns")
            for acc in merged.values():
                for k, (lo, hi) in enumerate(bounds):
                    acc[k] = min(max(acc[k], lo), hi)
        self.rows = merged
        self.key = key or psi.Key()

    def answer(self, buyer_points: Sequence[bytes], buyer_box: bytes, context: bytes, *, minimum: int,
               mapper: psi.Mapper = psi._serial_map, padding: int = 0, noise: Sequence[int] | None = None,
               count: int = 0, commitment: Sequence[bytes] = (), keep_order: bool = False) -> HolderAnswer:
        """Round 2 with optional padding (see the module docstring).

        ``padding``: rows of value 0 added to the holder's own; ``count``: how
        many of them the gateway counts as matches; ``noise``: values (one per
        column) of one more padding row that the gateway always counts;
        ``commitment``: the buyer's, to hide canary rows (value 0) in W; ``keep_order``: D in the
        buyer's order, not shuffled, as a multi-holder job needs (``protocols.psi_multi``)."""
        if not 0 <= count <= padding:
            raise psi.PsiError(f"cannot count {count} of {padding} padding rows")
        if noise is not None and len(noise) != self.columns:
            raise psi.PsiError(f"{len(noise)} noise values for {self.columns} value columns")
        d = psi.reblind(self.key, buyer_points, mapper)
        if not keep_order:
            d = psi.shuffled(d)
        pads = psi.padding_ids(padding + (noise is not None))
        values = dict(self.rows)
        counted = set(pads[:count])
        for ident in pads:
            values[ident] = [0] * self.columns
        if noise is not None:
            values[pads[-1]] = [int(n) for n in noise]
            counted.add(pads[-1])
        order = psi.shuffled(list(values))
        w = [p for part in mapper(self.key.hash_and_blind, psi.chunked(order)) for p in part]
        rows = [values[ident] for ident in order]
        included = [j for j, ident in enumerate(order) if ident in counted]
        canaries: list[psi.Canary] = []
        if commitment:
            at, points, canaries = psi.hide_canaries(w, commitment)
            w = psi.splice(w, at, points)
            rows = psi.splice(rows, at, [[0] * self.columns] * len(at))
            shift = 0
            moved = []
            for j in included:  # a row's position once the canaries before it are in place
                while shift < len(at) and at[shift] <= j + shift:
                    shift += 1
                moved.append(j + shift)
            included = moved
        seed = os.urandom(32)
        masks = _masks(seed, len(rows), self.columns)
        masked = [[(v + m) % MODULUS for v, m in zip(row, mj)] for row, mj in zip(rows, masks)]
        return HolderAnswer(d, masked, w, seal(seed, buyer_box, context), minimum, tuple(included),
                            tuple(canaries))


@dataclass(frozen=True)
class SumResult:
    positions: tuple[int, ...]
    size: int
    masked_sums: tuple[int, ...]


class PackedMasked:
    """Stage M as received: row-major little-endian masked values, read only where summed."""

    def __init__(self, data: bytes, columns: int) -> None:
        if columns <= 0 or len(data) % (columns * MASK_BYTES):
            raise psi.PsiError(f"{len(data)} bytes of masked values do not fill rows of {columns} column(s)")
        self.data, self.columns = data, columns

    def __len__(self) -> int:
        return len(self.data) // (self.columns * MASK_BYTES)

    def value(self, row: int, column: int) -> int:
        at = (row * self.columns + column) * MASK_BYTES
        return int.from_bytes(self.data[at:at + MASK_BYTES], "little")


def gateway_sum(d: psi.Points, z: psi.Points, masked: Sequence[Sequence[int]] | PackedMasked, *, minimum: int,
                offset: int = 0, counted: Sequence[int] = (), canaries: Sequence[psi.Canary] = ()) -> SumResult:
    """The gateway's role: J from D and Z (points or packed), and the masked sums over J.

    ``masked`` is per-row lists, or stage M packed (read only at J's rows, so a
    large answer is not turned into a Python int per value). ``offset`` (the
    holder's noise on the size) and ``counted`` (padding rows it asks to be
    summed with the matches) come from its stage N."""
    dp_, zp = psi.packed(d), psi.packed(z)
    rows = len(zp) // psi.POINT_BYTES
    if rows != len(masked):
        raise psi.InvalidPoint(f"the buyer re-blinded {rows} values for {len(masked)} holder rows")
    psi.require_distinct_packed(dp_, "the holder's re-blinded set (stage D)")
    psi.require_distinct_packed(zp, "the buyer's re-blinded set (stage Z)")
    psi.check_canaries(zp, canaries)
    matched = tuple(psi.positions_in(zp, dp_))
    extra = set(counted)
    if len(extra) != len(counted) or any(not 0 <= j < rows for j in extra):
        raise psi.PsiError("the holder's counted padding rows repeat or lie outside W")
    if extra.intersection(matched):
        raise psi.PsiError("a padding row the holder counts matched the buyer's set; honest padding never does")
    size = psi.released_size(len(matched), offset, minimum)
    positions = tuple(sorted(extra.union(matched)))
    if isinstance(masked, PackedMasked):
        sums = tuple(sum(masked.value(j, k) for j in positions) % MODULUS for k in range(masked.columns))
    else:
        columns = len(masked[0]) if masked else 0
        sums = tuple(sum(masked[j][k] for j in positions) % MODULUS for k in range(columns))
    return SumResult(positions, size, sums)


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
