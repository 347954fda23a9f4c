"""Unbalanced PSI: a holder's set under an oblivious PRF, evaluated once per epoch.

Group: the prime-order subgroup of Ed25519 through libsodium (PyNaCl), where
scalars can be inverted, which X25519's clamped scalars do not allow.

- Per key epoch the holder draws k and computes its table
  T = {F(k, y)}, F(k, y) = BLAKE2b(y ‖ k·H(y)) truncated to 16 bytes, once;
  the node caches it (the table is pseudorandom without k).
- A query: the buyer sends R = r·H(x) for fresh r; the holder returns k·R; the
  buyer computes r⁻¹·(k·R) = k·H(x) and F(k, x); the gateway, holding T,
  answers which of the buyer's tags are in it (if at least the minimum).
  The buyer's work and the holder's per query are proportional to |X|.

Reuse across buyers: every buyer in an epoch is answered under the same k.
A buyer who kept earlier tags could recognise, in a later query of the same
epoch, IDs it already asked about; it still learns F(k, x) only for IDs it
submits, each costing a query the holder sees and can limit. Rotating the
epoch (a new k and table) ends that linkability; the gateway, which holds T,
learns each query's intersection size, like the balanced protocol.

Repeats: every valid point of the prime-order group has one encoding (libsodium
refuses non-canonical ones and any low-order component), so the holder
refuses a query whose points repeat, before or after its key. That alone
would not do: a buyer can blind one ID under ten different r and get ten
distinct points, all giving the same tag. So the gateway refuses repeated
tags (stage Q) and the match counts distinct tags; the holder's minimum is
then a number of distinct IDs. Still possible: a buyer may put into Q tags it
derived in an earlier query of the same epoch (the gateway cannot tell a tag
from this query's evaluations from another), so once it knows the tags of
``minimum`` members it can pad later queries with them. That is the same as
sending those IDs again, which it may; the holder's quotas (jobs and IDs per
epoch) bound how much any of this yields, and a new epoch makes old tags
useless.

Noise: with cardinality only, a holder under differential privacy sends the
gateway an offset for the size (stage N), as in ``protocols.psi``. The table
T shows the gateway |Y|; the buyer sees only evaluations of its own points.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Protocol, Sequence

import numpy as np
from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumError

from protocols import psi

DOMAIN = b"datawharf/oprf/ed25519/v1"
TAG_BYTES = 16
POINT_BYTES = 32


def hash_to_point(identifier: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=32, person=b"wharf-oprf-h2p")
    h.update(DOMAIN + identifier)
    # from_uniform (Elligator 2) lands in the prime-order subgroup.
    return sodium.crypto_core_ed25519_from_uniform(h.digest())


def _tag(identifier: bytes, point: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=TAG_BYTES, person=b"wharf-oprf-tag")
    h.update(len(identifier).to_bytes(4, "big") + identifier + point)
    return h.digest()


def random_scalar() -> bytes:
    import os

    while True:
        s = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        if any(s):
            return s


def _mul(scalar: bytes, point: bytes, i: int) -> bytes:
    if len(point) != POINT_BYTES or not sodium.crypto_core_ed25519_is_valid_point(point):
        raise psi.InvalidPoint(f"value {i} is not a valid point of the prime-order group")
    try:
        return sodium.crypto_scalarmult_ed25519_noclamp(scalar, point)
    except SodiumError:
        raise psi.InvalidPoint(f"value {i} gives the identity") from None


class HolderKey:
    """One epoch's key; the table is derived from it and the holder's IDs."""

    def __init__(self, scalar: bytes | None = None) -> None:
        self._k = scalar or random_scalar()

    def raw(self) -> bytes:
        return self._k

    def table(self, ids: Iterable[str]) -> set[bytes]:
        out = set()
        for ident in {psi.normalise(i) for i in ids}:
            out.add(_tag(ident, sodium.crypto_scalarmult_ed25519_noclamp(self._k, hash_to_point(ident))))
        return out

    def evaluate(self, blinded: Sequence[bytes]) -> list[bytes]:
        """k·R for the buyer's points; RepeatedPoint if two points are one."""
        psi.require_distinct(blinded, "the buyer's set (stage A)")
        return [_mul(self._k, p, i) for i, p in enumerate(blinded)]


class Buyer:
    def __init__(self, ids: Iterable[str]) -> None:
        self.unique, self.rows = psi.dedupe(ids)
        self._r = random_scalar()

    def blinded(self) -> list[bytes]:
        return [sodium.crypto_scalarmult_ed25519_noclamp(self._r, hash_to_point(i)) for i in self.unique]

    def tags(self, evaluated: Sequence[bytes]) -> list[bytes]:
        if len(evaluated) != len(self.unique):
            raise psi.PsiError(f"{len(evaluated)} evaluations for {len(self.unique)} IDs sent")
        inv = sodium.crypto_core_ed25519_scalar_invert(self._r)
        return [_tag(ident, _mul(inv, e, i)) for i, (ident, e) in enumerate(zip(self.unique, evaluated))]

    def matched(self, positions: Iterable[int]) -> list[bytes]:
        return [self.unique[p] for p in positions]


class Table(Protocol):
    def __contains__(self, tag: object) -> bool: ...


class SortedTags:
    """A published table as one sorted array of 16-byte strings: 16 bytes an entry.

    A Python set of 16M tags costs the gateway over a gigabyte; this costs
    256 MiB and answers by binary search."""

    def __init__(self, packed: bytes) -> None:
        if len(packed) % TAG_BYTES:
            raise psi.PsiError(f"a table is whole {TAG_BYTES}-byte tags; got {len(packed)} bytes")
        self._tags = np.sort(np.frombuffer(packed, dtype=f"S{TAG_BYTES}"))

    def __len__(self) -> int:
        return int(self._tags.size)

    def members(self, tags: psi.Points) -> list[bool]:
        """For each tag (a list, or packed 16-byte tags), whether the table holds it."""
        data = psi.packed(tags)
        n = len(data) // TAG_BYTES
        if not n or not self._tags.size:
            return [False] * n
        q = np.frombuffer(data, dtype=f"S{TAG_BYTES}")
        at = np.minimum(np.searchsorted(self._tags, q), self._tags.size - 1)
        return (self._tags[at] == q).tolist()  # type: ignore[no-any-return]

    def __contains__(self, tag: object) -> bool:
        return isinstance(tag, bytes) and len(tag) == TAG_BYTES and self.members([tag])[0]


def lookup(table: Table, tags: psi.Points, *, minimum: int, cardinality_only: bool,
           offset: int = 0) -> psi.Match:
    """The gateway's role, holding the epoch's published table; ``tags`` as a list or packed.

    Tags must be distinct (RepeatedPoint otherwise): ten copies of one tag
    would otherwise count one ID ten times against the holder's minimum."""
    data = psi.packed(tags)
    psi.require_distinct_packed(data, "the buyer's tags (stage Q)", TAG_BYTES)
    if isinstance(table, SortedTags):
        positions = tuple(i for i, hit in enumerate(table.members(data)) if hit)
    else:
        positions = tuple(i for i in range(len(data) // TAG_BYTES)
                          if data[i * TAG_BYTES:(i + 1) * TAG_BYTES] in table)
    if offset and not cardinality_only:
        raise psi.PsiError("noise on the size of an intersection whose positions are released hides nothing")
    return psi.Match(() if cardinality_only else positions, psi.released_size(len(positions), offset, minimum))
