"""Private set intersection by commutative Diffie–Hellman blinding over Curve25519.

Each identifier is normalised, hashed with domain separation to an X25519
u-coordinate, and blinded with a per-job secret scalar. X25519 is
commutative on u-coordinates: X25519(a, X25519(b, u)) = X25519(b, X25519(a, u)).

Rounds (the gateway relays every message and does the final matching):

1. Buyer → holder: A = [a·H(x)] for its deduplicated IDs, in a secret random
   order, then its commitment C = (a·G, a·G′) (below).
2. Holder → gateway only: D = [b·α for α in A less C] (in A's order, or
   shuffled for cardinality-only) and its notes (stage N: canaries, noise).
   Holder → buyer: W = [b·H(y)] for its IDs, shuffled, with canaries hidden
   in it, and a signed receipt over all it sent, which the buyer checks
   before it multiplies anything it received.
3. Buyer → gateway: Z = [a·w for w in W].
4. Gateway: Z passes the canaries; the positions i with D[i] ∈ Z, released
   only if there are at least the holder's minimum; for cardinality-only,
   just their number.

What each role learns (semi-honest): the buyer, the positions of its own
matching IDs (or only how many); the holder, |X|; the gateway, |X|, |Y| and
the intersection size, and positions in orders it cannot relate to IDs.

No membership oracle from repeats: a buyer that sent one ID's point ten
times would see it count ten times against the holder's minimum. So every
set is duplicate-free where it is checked: the holder refuses a set whose
points repeat *after* its blinding (``reblind``), which also catches a
second encoding of one point (the ignored top bit of a u-coordinate, u + p,
or P plus a low-order point, which clamped scalars erase); the gateway
refuses repeats in A (compared as canonical u-coordinates), D, W and Z; and
the match counts distinct values.

One scalar, checked by canaries. Distinct values alone would not stop a
buyer from blinding one ID under ten scalars a₁..a₁₀ in A and re-blinding a
tenth of W under each: if the ID's row falls in that tenth it matches ten
times. So A ends with the buyer's commitment to its scalar, C = (a·G, a·G′)
(G the curve's base point, G′ a point of the twist, since W's points fall
on either), inside the set its signed job names. The holder hides
``CANARIES`` points r·G or r·G′ at random places in W, indistinguishable from
its blinded IDs, and tells the gateway alone (stage N) where they are and
that Z must hold r·C there. Every Z position rewritten under another
scalar is a canary with probability k/|W|; to make one ID count c times
with probability s a buyer must rewrite about (c−1)·s·|W| positions, so it
goes unnoticed with probability below e^(−k·(c−1)·s), and the job fails
naming what was wrong when it is noticed. The best trade for the buyer,
s = 1/(k·(c−1)), wins about 1/(k·(c−1)·e) of its jobs: 0.016 % of jobs to
count one ID ten times with k = 256, each job charged to its quota.
Revealing a·G to the holder and gateway is one more DH value of the
buyer's scalar, like the points of A.

Under the holder's differential-privacy policy (see ``protocols.psi_sum``
for the shared mechanics): the holder pads W with a noisy number of dummy
IDs, so |W| shows its set size only up to noise, and for cardinality-only
jobs sends the gateway alone (stage N) a discrete Gaussian offset that the
gateway adds to the number of matches before applying the minimum. Against
the buyer alone the size and |W| are then ρ-zCDP for the holder's IDs (for
a buyer that re-blinds with one scalar); against the buyer with the gateway,
which knows the exact size and the offset, the size is not protected. An
intersection whose positions are released is exact by nature: the holder's
policy (``exact_intersection = false``) decides whether to answer it at all.

Clamped X25519 scalars are multiples of the cofactor, so low-order inputs
collapse to the all-zero output, which libsodium refuses; hashing
retries with a counter until it lands on a usable point, and a received
point that fails is rejected as malformed. If the gateway colluded with the
buyer, the buyer would learn no more than plain DH-PSI reveals; if it
colluded with the holder, they would learn the intersection.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sized, Sequence, TypeVar

import numpy as np
import numpy.typing as npt
from nacl.bindings import crypto_scalarmult
from nacl.exceptions import RuntimeError as SodiumError

DOMAIN = b"datawharf/psi/x25519/v1"
MAX_ID_BYTES = 1024
POINT_BYTES = 32

T = TypeVar("T")
Mapper = Callable[[Callable[[list[bytes]], list[bytes]], list[list[bytes]]], Iterable[list[bytes]]]


class PsiError(ValueError):
    """Base of this module's errors."""


class InvalidId(PsiError):
    """An identifier is empty or too long after normalisation."""


class InvalidPoint(PsiError):
    """A received value is not a usable curve point (wrong size or low order)."""


class RepeatedPoint(InvalidPoint):
    """A set that must be duplicate-free repeats a value: the buyer sent one ID twice."""


# The field prime of Curve25519: u-coordinates are taken modulo it, top bit ignored (RFC 7748).
FIELD_P = (1 << 255) - 19
_A = 486662
# Canaries the holder hides in W: each rewritten position of Z is caught with probability k/|W|.
CANARIES = 256
# Points of A after the buyer's blinded IDs: its commitment (a·G, a·G′).
COMMITMENT_POINTS = 2


class ForgedReblinding(PsiError):
    """The buyer's Z is not W re-blinded under the scalar it committed to."""


def _on_twist(u: int) -> bool:
    f = (u * u * u + _A * u * u + u) % FIELD_P
    return f != 0 and pow(f, (FIELD_P - 1) // 2, FIELD_P) == FIELD_P - 1


def _twist_base() -> bytes:
    """The smallest u ≥ 2 on the twist whose multiples by a clamped scalar are not the identity."""
    u = 2
    while True:
        point = u.to_bytes(32, "little")
        if _on_twist(u):
            try:
                crypto_scalarmult(b"\x07" * 32, point)
                return point
            except SodiumError:
                pass
        u += 1


BASES = ((9).to_bytes(32, "little"), _twist_base())  # G on the curve, G′ on the twist


def first_repeat(items: Sequence[bytes]) -> int | None:
    """The position of the first item equal to an earlier one, or None when all differ."""
    seen: set[bytes] = set()
    for i, item in enumerate(items):
        if item in seen:
            return i
        seen.add(item)
    return None


def require_distinct(items: Sequence[bytes], what: str) -> None:
    """Raise RepeatedPoint naming ``what`` and the position if any item repeats an earlier one."""
    i = first_repeat(items)
    if i is not None:
        raise RepeatedPoint(f"{what} repeats a value at position {i}; each ID may appear once")


Points = Sequence[bytes] | bytes  # a set as its items, or packed: whole fixed-width items concatenated


def packed(points: Points) -> bytes:
    return points if isinstance(points, bytes) else b"".join(points)


def _prefixes(data: bytes, item: int) -> npt.NDArray[Any]:
    """Each item's first 8 bytes as an integer (items of 8, 16, 32 bytes), else the items themselves."""
    if item % 8:
        return np.frombuffer(data, dtype=f"S{item}")
    return np.frombuffer(data, dtype="<u8")[:: item // 8]


def first_repeat_packed(data: bytes, item: int) -> int | None:
    """The position of the first item of ``data`` equal to an earlier one, or None.

    Items are sorted by their first 8 bytes as integers in numpy (no Python
    object per item, under a second for millions); only items whose
    prefixes collide are compared whole. A sender can make prefixes collide on
    purpose, which costs it nothing but makes this as slow as a set."""
    if len(data) % item:
        raise ValueError(f"{len(data)} bytes are not a whole number of {item}-byte items")
    if len(data) < 2 * item:
        return None
    prefix = _prefixes(data, item)
    order = np.argsort(prefix, kind="stable")
    ranked = prefix[order]
    pairs = np.nonzero(ranked[1:] == ranked[:-1])[0]
    if not pairs.size:
        return None
    suspects = np.unique(np.concatenate([order[pairs], order[pairs + 1]]))
    seen: set[bytes] = set()
    for i in suspects.tolist():  # ascending: the first one seen before is the first repeat
        value = data[i * item:(i + 1) * item]
        if value in seen:
            return int(i)
        seen.add(value)
    return None


def positions_in(needles: bytes, haystack: bytes, item: int = POINT_BYTES) -> list[int]:
    """The positions of ``needles``' items that ``haystack`` also holds, ascending.

    The haystack is sorted by 8-byte prefix in numpy and searched; a hit on a
    prefix is confirmed on the whole item. Memory is the two packed sets and
    an index per item, where Python sets would take about 100 bytes an item."""
    if len(needles) % item or len(haystack) % item:
        raise ValueError(f"sets of whole {item}-byte items are needed")
    if not needles or not haystack:
        return []
    hay = _prefixes(haystack, item)
    order = np.argsort(hay, kind="stable")
    ranked = hay[order]
    need = _prefixes(needles, item)
    # Searched in sorted order: six times faster than random probes into a large array.
    need_order = np.argsort(need, kind="stable")
    left = np.empty(need.size, dtype=np.int64)
    right = np.empty(need.size, dtype=np.int64)
    left[need_order] = np.searchsorted(ranked, need[need_order], "left")
    right[need_order] = np.searchsorted(ranked, need[need_order], "right")
    width = right - left
    one = np.nonzero(width == 1)[0]
    hay_rows = np.frombuffer(haystack, dtype=np.uint8).reshape(-1, item)
    need_rows = np.frombuffer(needles, dtype=np.uint8).reshape(-1, item)
    hits = one[(hay_rows[order[left[one]]] == need_rows[one]).all(axis=1)].tolist()
    for i in np.nonzero(width > 1)[0].tolist():  # colliding prefixes: compare whole items
        value = needles[i * item:(i + 1) * item]
        if any(haystack[k * item:(k + 1) * item] == value for k in order[left[i]:right[i]].tolist()):
            hits.append(i)
    return sorted(int(i) for i in hits)


def canonical_u(point: bytes) -> bytes:
    """The one encoding of an X25519 u-coordinate: top bit cleared, reduced modulo p.

    X25519 reads 2^255 + u and u + p as u, so a set could otherwise carry one
    point twice under different bytes."""
    if len(point) != POINT_BYTES:
        raise InvalidPoint(f"a point is {POINT_BYTES} bytes, not {len(point)}")
    u = int.from_bytes(point, "little") & ((1 << 255) - 1)
    return (u % FIELD_P).to_bytes(POINT_BYTES, "little")


def normalise(identifier: str) -> bytes:
    """The canonical bytes of an ID: Unicode NFKC, surrounding space trimmed, case folded.

    Both sides apply exactly this, so ' Alice@Example.COM ' and 'alice@example.com'
    match, and so do the composed and decomposed forms of the same accented letter.
    """
    text = unicodedata.normalize("NFKC", identifier).strip().casefold()
    raw = text.encode("utf-8")
    if not raw:
        raise InvalidId("an ID is empty after trimming")
    if len(raw) > MAX_ID_BYTES:
        raise InvalidId(f"an ID is {len(raw)} bytes after normalisation; the limit is {MAX_ID_BYTES}")
    return raw


def hash_to_u(identifier: bytes, counter: int = 0, domain: bytes = DOMAIN) -> bytes:
    h = hashlib.blake2b(digest_size=32, person=b"wharf-psi-h2u")
    h.update(len(domain).to_bytes(2, "big") + domain)
    h.update(counter.to_bytes(4, "big") + identifier)
    return h.digest()


class Key:
    """A per-job secret X25519 scalar; never serialised by this module.

    The multiplication is RFC 7748 X25519 through libsodium (PyNaCl), which
    returns exactly what `cryptography`'s X25519 exchange does (a test checks
    it) at about three quarters of the cost per call here.
    """

    def __init__(self, scalar: bytes | None = None) -> None:
        if scalar is not None and len(scalar) != 32:
            raise PsiError("an X25519 scalar is 32 bytes")
        self._k = scalar or secrets.token_bytes(32)

    def raw(self) -> bytes:
        """The scalar, for handing to worker processes of the same role only."""
        return self._k

    @classmethod
    def from_raw(cls, raw: bytes) -> "Key":
        return cls(raw)

    def blind(self, points: Sequence[bytes]) -> list[bytes]:
        """k·P for received points; raises InvalidPoint naming the first bad one."""
        out = []
        k = self._k
        for i, p in enumerate(points):
            if len(p) != POINT_BYTES:
                raise InvalidPoint(f"value {i} is {len(p)} bytes; a point is {POINT_BYTES}")
            try:
                out.append(crypto_scalarmult(k, p))
            except SodiumError:
                raise InvalidPoint(f"value {i} is a low-order point") from None
        return out

    def hash_and_blind(self, ids: Sequence[bytes]) -> list[bytes]:
        """k·H(id) for normalised IDs, rehashing the (vanishingly rare) unusable ones."""
        out = []
        k = self._k
        for ident in ids:
            counter = 0
            while True:
                try:
                    out.append(crypto_scalarmult(k, hash_to_u(ident, counter)))
                    break
                except SodiumError:
                    counter += 1
        return out

    def blind_hashed(self, hashed: Sequence[bytes]) -> list[bytes]:
        """k·u for u = hash_to_u(id) already computed (counter 0), as ``hash_and_blind`` would give.

        The streamed paths keep 32-byte hashes, not IDs, on disk; a hash that lands on a low-order
        point (about 2^-250 per ID) would need the ID to retry, so it is refused instead."""
        out = []
        k = self._k
        for u in hashed:
            try:
                out.append(crypto_scalarmult(k, u))
            except SodiumError:
                raise InvalidId("an ID hashes to a low-order point; it cannot take part") from None
        return out


def stream_map(mapper: "Mapper", fn: Callable[[list[bytes]], list[bytes]], chunks: Iterable[list[bytes]], *,
               group: int = 8) -> Iterator[list[bytes]]:
    """``mapper`` over a stream of chunks, in order, ``group`` chunks per call and one call ahead: a pool
    (whose map submits at once) works on the next group while this one is consumed, and memory holds two
    groups, not the set."""
    it = iter(chunks)
    pending: Iterator[list[bytes]] | None = None
    while True:
        batch = list(itertools.islice(it, group))
        current = iter(mapper(fn, batch)) if batch else None
        if pending is not None:
            yield from pending
        if current is None:
            return
        pending = current


def reblind(key: Key, points: Sequence[bytes], mapper: "Mapper | None" = None) -> list[bytes]:
    """b·P for the buyer's points, refused if two of them give one value.

    Checked after the multiplication, not on the bytes received: clamped
    scalars map every encoding of a point (and P plus any low-order point)
    to the same output, so this is where repeats are certain to show."""
    run = mapper or _serial_map
    out = [p for part in run(key.blind, chunked(points)) for p in part]
    i = first_repeat(out)
    if i is not None:
        raise RepeatedPoint(f"the buyer's set repeats a point at position {i} (the same point as an earlier one "
                            "once blinded); each ID may be sent once")
    return out


def _serial_map(fn: Callable[[list[bytes]], list[bytes]], chunks: list[list[bytes]]) -> Iterable[list[bytes]]:
    return map(fn, chunks)


def chunked(items: Sequence[bytes], size: int = 4096) -> list[list[bytes]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def shuffled(items: Sequence[bytes]) -> list[bytes]:
    out = list(items)
    for i in range(len(out) - 1, 0, -1):  # Fisher–Yates with a CSPRNG: order must leak nothing
        j = secrets.randbelow(i + 1)
        out[i], out[j] = out[j], out[i]
    return out


def dedupe(ids: Iterable[str]) -> tuple[list[bytes], dict[bytes, list[int]]]:
    """Unique normalised IDs, and for each the input rows that carried it."""
    rows: dict[bytes, list[int]] = {}
    for i, ident in enumerate(ids):
        rows.setdefault(normalise(ident), []).append(i)
    return list(rows), rows


class Buyer:
    """The buyer's side: its IDs, its scalar, and the secret order it sent them in."""

    def __init__(self, ids: Iterable[str], *, key: Key | None = None) -> None:
        self.unique, self.rows = dedupe(ids)
        order = list(range(len(self.unique)))
        for i in range(len(order) - 1, 0, -1):
            j = secrets.randbelow(i + 1)
            order[i], order[j] = order[j], order[i]
        self._order = order  # position sent → index in self.unique
        self.key = key or Key()

    def blinded(self, mapper: Mapper = _serial_map) -> list[bytes]:
        """Round 1: A = [a·H(x)] in the secret order."""
        ids = [self.unique[i] for i in self._order]
        return [p for part in mapper(self.key.hash_and_blind, chunked(ids)) for p in part]

    def commitment(self) -> list[bytes]:
        """C = (a·G, a·G′): appended to A so the holder's canaries can check Z (see the module docstring)."""
        return self.key.blind(list(BASES))

    def reblind(self, holder_points: Sequence[bytes], mapper: Mapper = _serial_map) -> list[bytes]:
        """Round 3: Z = [a·w] for the holder's blinded IDs."""
        return [p for part in mapper(self.key.blind, chunked(holder_points)) for p in part]

    def matched(self, positions: Iterable[int]) -> list[bytes]:
        """The normalised IDs at the matched positions of A."""
        out = []
        for pos in positions:
            if not 0 <= pos < len(self._order):
                raise PsiError(f"matched position {pos} is outside the {len(self._order)} IDs sent")
            out.append(self.unique[self._order[pos]])
        return out


def padding_ids(n: int) -> list[bytes]:
    """``n`` dummy IDs for padding a holder's set: 32 random bytes each, which no buyer can hold."""
    return [b"\x00pad" + secrets.token_bytes(32) for _ in range(n)]


@dataclass(frozen=True)
class Canary:
    """A point the holder hid in W, and what Z must hold at its position."""

    position: int
    expected: bytes


def split_commitment(points: Sequence[bytes]) -> tuple[list[bytes], list[bytes]]:
    """A as received: (the buyer's blinded IDs, its commitment C)."""
    if len(points) <= COMMITMENT_POINTS:
        raise PsiError(f"the buyer's set holds {len(points)} points; it must end with its "
                       f"{COMMITMENT_POINTS}-point commitment after at least one ID")
    return list(points[:-COMMITMENT_POINTS]), list(points[-COMMITMENT_POINTS:])


def hide_canaries(w: Sized, commitment: Sequence[bytes], count: int = CANARIES
                  ) -> tuple[list[int], list[bytes], list[Canary]]:
    """Where ``count`` canaries go in W once they join it, their points, and the gateway's checks.

    The positions are uniform among the |W| + count of the result (sorted)."""
    if len(commitment) != COMMITMENT_POINTS:
        raise PsiError(f"the buyer's commitment is {COMMITMENT_POINTS} points, not {len(commitment)}")
    total = len(w) + count
    at = sorted(secrets.SystemRandom().sample(range(total), count))
    points, checks = [], []
    for pos in at:
        which = secrets.randbelow(2)  # curve or twist, as a hashed ID's point is about equally
        r = Key()
        (points_r,) = r.blind([BASES[which]])
        try:
            (expected,) = r.blind([commitment[which]])
        except InvalidPoint:
            raise InvalidPoint("the buyer's commitment is a low-order point") from None
        points.append(points_r)
        checks.append(Canary(pos, expected))
    return at, points, checks


def splice(items: Sequence[T], at: Sequence[int], extra: Sequence[T]) -> list[T]:
    """``items`` with ``extra[i]`` placed at final position ``at[i]`` (``at`` sorted)."""
    out: list[T] = []
    it = iter(items)
    for pos, item in zip(at, extra):
        while len(out) < pos:
            out.append(next(it))
        out.append(item)
    out.extend(it)
    return out


def check_canaries(z: Points, canaries: Sequence[Canary]) -> None:
    """The gateway's check that Z is W re-blinded under the committed scalar; ForgedReblinding if not."""
    zp = packed(z)
    n = len(zp) // POINT_BYTES
    # How many checks failed is not said: it would tell the buyer where the canaries are not.
    if any(not (0 <= c.position < n and zp[c.position * POINT_BYTES:(c.position + 1) * POINT_BYTES] == c.expected)
           for c in canaries):
        raise ForgedReblinding(
            "the buyer's re-blinded set (stage Z) is not the holder's set re-blinded with the scalar the buyer "
            "committed to; an unmodified client never does this")


class Holder:
    """The holder's side: its IDs and its scalar."""

    def __init__(self, ids: Iterable[str], *, key: Key | None = None) -> None:
        self.unique, _ = dedupe(ids)
        self.key = key or Key()

    def answer(self, buyer_points: Sequence[bytes], *, cardinality_only: bool,
               mapper: Mapper = _serial_map, padding: int = 0, commitment: Sequence[bytes] = (),
               keep_order: bool = False) -> tuple[list[bytes], list[bytes]]:
        """Round 2: (D for the gateway, W for the buyer); ``self.canaries`` for the gateway too.

        ``padding`` dummy IDs join the holder's own in W, so |W| tells the
        buyer |Y| + padding; a random ``padding`` hides the set's exact size.
        With the buyer's ``commitment``, CANARIES canaries are hidden in W.
        ``keep_order``: D stays in A's order even for cardinality-only, as a
        multi-holder job needs (``protocols.psi_multi``)."""
        d = reblind(self.key, buyer_points, mapper)
        if cardinality_only and not keep_order:
            d = shuffled(d)
        own = shuffled(self.unique + padding_ids(padding))
        w = [p for part in mapper(self.key.hash_and_blind, chunked(own)) for p in part]
        self.canaries: list[Canary] = []
        if commitment:
            at, points, self.canaries = hide_canaries(w, commitment)
            w = splice(w, at, points)
        return d, w


@dataclass(frozen=True)
class Match:
    positions: tuple[int, ...]  # empty when cardinality-only
    size: int


class BelowMinimum(PsiError):
    """The intersection is smaller than the holder's minimum; nothing is released."""


def released_size(matches: int, offset: int, minimum: int) -> int:
    """The size the gateway releases: the distinct matches plus the holder's noise, if at least the minimum.

    Under noise the minimum is applied to the noisy size, so whether anything
    is released is itself covered by the holder's privacy guarantee."""
    size = matches + offset
    if size < max(minimum, 0):
        raise BelowMinimum(f"the intersection is below the holder's minimum of {minimum}; nothing is released")
    return size


def require_distinct_packed(data: bytes, what: str, item: int = POINT_BYTES) -> None:
    if len(data) % item:
        raise InvalidPoint(f"{what} is not a whole number of {item}-byte values")
    i = first_repeat_packed(data, item)
    if i is not None:
        raise RepeatedPoint(f"{what} repeats a value at position {i}; each ID may appear once")


def match(d: Points, z: Points, *, minimum: int, cardinality_only: bool,
          offset: int = 0, canaries: Sequence[Canary] = ()) -> Match:
    """The gateway's role: which of the buyer's positions matched, if enough did.

    Both sets (as points or packed) must be duplicate-free, so ``size``
    counts distinct matches. ``offset`` is the holder's noise on the size
    (cardinality-only only: the positions of an exact intersection would give
    the true size away)."""
    dp_, zp = packed(d), packed(z)
    require_distinct_packed(dp_, "the holder's re-blinded set (stage D)")
    require_distinct_packed(zp, "the buyer's re-blinded set (stage Z)")
    if offset and not cardinality_only:
        raise PsiError("noise on the size of an intersection whose positions are released hides nothing")
    check_canaries(zp, canaries)
    positions = tuple(positions_in(dp_, zp))
    size = released_size(len(positions), offset, minimum)
    return Match(() if cardinality_only else positions, size)


def run_chunk(job: tuple[bytes, str, list[bytes]]) -> list[bytes]:
    """Worker-process entry: apply one Key operation to one chunk."""
    raw, op, chunk = job
    key = Key.from_raw(raw)
    if op not in ("blind", "hash_and_blind", "blind_hashed"):
        raise PsiError(f"unknown operation {op!r}")
    return getattr(key, op)(chunk)


class PoolMapper:
    """A Mapper over an executor's processes: the scalar goes to workers of
    the same role only, chunk by chunk, and results come back in order."""

    def __init__(self, executor: "object") -> None:
        self.executor = executor

    def __call__(self, fn: Callable[[list[bytes]], list[bytes]], chunks: list[list[bytes]]) -> Iterable[list[bytes]]:
        key: Key = fn.__self__  # type: ignore[attr-defined]
        raw = key.raw()
        return self.executor.map(run_chunk, [(raw, fn.__name__, c) for c in chunks])  # type: ignore[attr-defined]
