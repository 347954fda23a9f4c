"""Sets of fixed-size items matched in buckets on disk: memory bounded by a bucket, not by the set.

The gateway's sets are blinded points or tags, uniformly random bytes, so
their leading byte spreads them evenly. A stage file is read in chunks and
each item goes, with its position, to the bucket file its leading bits
name (``partition``); a value and every copy of it land in one bucket, so
the repeat check (``first_repeat``) and the match (``positions_in``) run
one bucket at a time in numpy (``protocols.psi``'s packed helpers) and
their answers are the same as over the whole set.

A sender can skew its own set (stage A and Z are the buyer's choice): a
bucket past ``SPLIT * BUCKET_ITEMS`` items is split again on the next byte, so
skew costs time, not memory, until items share all but their last byte, and
that many distinct items fit a bucket anyway.

    set file ─► read CHUNK_ITEMS at a time ─► (canonical_u for stage A) ─► bucket files of (value, position)
    bucket i of D, bucket i of Z ─► first_repeat / positions_in in numpy ─► global positions
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import numpy.typing as npt

from protocols.psi import first_repeat_packed, positions_in as _positions_in

BUCKET_ITEMS = 1 << 18  # items a bucket is sized for: 10 MiB of 32-byte items with their positions
CHUNK_ITEMS = 1 << 16  # items read from a set file at a time
MAX_WAYS = 256  # buckets per split: one byte of the items
SPLIT = 4  # a bucket past SPLIT * BUCKET_ITEMS (a skewed set's) is split again on the next byte

Transform = Callable[[bytes], bytes]


def read_chunks(path: Path, item: int, chunk_items: int = CHUNK_ITEMS) -> Iterator[bytes]:
    """A set file's bytes, ``chunk_items`` whole items at a time."""
    with open(path, "rb") as f:
        while True:
            data = f.read(item * chunk_items)
            if not data:
                return
            if len(data) % item:
                raise ValueError(f"{path.name} is not a whole number of {item}-byte items")
            yield data


def _records(item: int) -> np.dtype:
    return np.dtype([("v", f"V{item}"), ("p", "<u8")])


def _ways(n: int) -> int:
    ways = 1
    while ways < MAX_WAYS and ways * BUCKET_ITEMS < n:
        ways *= 2
    return ways


class Buckets:
    """One set spread over bucket files under ``folder``: ``(values, positions)`` per bucket, in order."""

    def __init__(self, folder: Path, item: int, ways: int, byte: int) -> None:
        self.folder, self.item, self.ways, self.byte = folder, item, ways, byte
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, i: int) -> Path:
        return self.folder / f"{i:03d}"

    def fill(self, chunks: Iterator[tuple[bytes, npt.NDArray[np.uint64]]]) -> None:
        dtype = _records(self.item)
        shift = 8 - (self.ways.bit_length() - 1)
        files = [open(self.path(i), "wb") for i in range(self.ways)]
        try:
            for data, pos in chunks:
                n = len(data) // self.item
                rec = np.empty(n, dtype=dtype)
                rec["v"] = np.frombuffer(data, dtype=f"V{self.item}")
                rec["p"] = pos
                if self.ways == 1:
                    files[0].write(rec.tobytes())
                    continue
                lead = np.frombuffer(data, dtype=np.uint8)[self.byte::self.item] >> shift
                order = np.argsort(lead, kind="stable")  # stable: each bucket keeps the set's order
                cuts = np.searchsorted(lead[order], np.arange(self.ways + 1))
                rec = rec[order]
                for i in range(self.ways):
                    if cuts[i + 1] > cuts[i]:
                        files[i].write(rec[cuts[i]:cuts[i + 1]].tobytes())
        finally:
            for f in files:
                f.close()

    def each(self) -> Iterator[tuple[bytes, npt.NDArray[np.uint64]]]:
        """Each bucket's (packed values, positions), splitting a bucket that a skewed set overfilled."""
        dtype = _records(self.item)
        for i in range(self.ways):
            path = self.path(i)
            n = path.stat().st_size // dtype.itemsize
            if n > SPLIT * BUCKET_ITEMS and self.byte + 1 < self.item:
                sub = Buckets(self.folder / f"{i:03d}.d", self.item, _ways(n), self.byte + 1)
                sub.fill(_record_chunks(path, dtype))
                path.unlink()
                yield from sub.each()
                continue
            rec = np.fromfile(path, dtype=dtype)
            path.unlink()
            yield rec["v"].tobytes(), rec["p"].copy()


def _record_chunks(path: Path, dtype: np.dtype) -> Iterator[tuple[bytes, npt.NDArray[np.uint64]]]:
    with open(path, "rb") as f:
        while True:
            rec = np.fromfile(f, dtype=dtype, count=CHUNK_ITEMS)
            if not rec.size:
                return
            yield rec["v"].tobytes(), rec["p"].copy()


def _positioned(chunks: Iterator[bytes], item: int, transform: Transform | None
                ) -> Iterator[tuple[bytes, npt.NDArray[np.uint64]]]:
    at = 0
    for data in chunks:
        n = len(data) // item
        yield (transform(data) if transform else data), np.arange(at, at + n, dtype=np.uint64)
        at += n


def partition(chunks: Iterator[bytes], item: int, folder: Path, *, items: int, ways: int | None = None,
              transform: Transform | None = None) -> Buckets:
    """Spread a set (as chunks of packed items, ``items`` in all) over bucket files by leading bits."""
    b = Buckets(folder, item, ways or _ways(items), 0)
    b.fill(_positioned(chunks, item, transform))
    return b


def first_repeat(chunks: Iterator[bytes], item: int, scratch: Path, *, items: int,
                 transform: Transform | None = None) -> int | None:
    """The position of the first item equal to an earlier one (after ``transform``), or None: as
    ``protocols.psi.first_repeat_packed`` over the whole set, one bucket in memory at a time."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        first: int | None = None
        for values, pos in partition(chunks, item, Path(tmp), items=items, transform=transform).each():
            i = first_repeat_packed(values, item)
            if i is not None and (first is None or int(pos[i]) < first):
                first = int(pos[i])
        return first


def positions_in(needles: Iterator[bytes], haystack: Iterator[bytes], item: int, scratch: Path, *,
                 items: int) -> npt.NDArray[np.int64]:
    """The positions of the needles' items that the haystack also holds, ascending (``items``: the larger
    set's size, which sizes the buckets); both sets must be duplicate-free."""
    ways = _ways(items)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        need = partition(needles, item, Path(tmp) / "n", items=items, ways=ways)
        hay = partition(haystack, item, Path(tmp) / "h", items=items, ways=ways)
        hits: list[npt.NDArray[np.int64]] = []
        # Buckets of one index hold the same leading bits; skew splits them alike, bucket by bucket.
        for (nv, npos), (hv, _) in _paired(need, hay):
            if nv and hv:
                local = np.asarray(_positions_in(nv, hv, item), dtype=np.int64)
                hits.append(npos[local].astype(np.int64))
        out = np.concatenate(hits) if hits else np.empty(0, dtype=np.int64)
        out.sort()
        return out


def _paired(a: Buckets, b: Buckets) -> Iterator[tuple[tuple[bytes, npt.NDArray[np.uint64]],
                                                      tuple[bytes, npt.NDArray[np.uint64]]]]:
    """Bucket i of ``a`` beside bucket i of ``b``; if either overflows, both are split on the next byte."""
    dtype = _records(a.item)
    for i in range(a.ways):
        pa, pb = a.path(i), b.path(i)
        na, nb = pa.stat().st_size // dtype.itemsize, pb.stat().st_size // dtype.itemsize
        if max(na, nb) > SPLIT * BUCKET_ITEMS and a.byte + 1 < a.item:
            ways = _ways(max(na, nb))
            sa = Buckets(a.folder / f"{i:03d}.d", a.item, ways, a.byte + 1)
            sb = Buckets(b.folder / f"{i:03d}.d", b.item, ways, b.byte + 1)
            sa.fill(_record_chunks(pa, dtype))
            sb.fill(_record_chunks(pb, dtype))
            pa.unlink()
            pb.unlink()
            yield from _paired(sa, sb)
            continue
        ra, rb = np.fromfile(pa, dtype=dtype), np.fromfile(pb, dtype=dtype)
        pa.unlink()
        pb.unlink()
        yield (ra["v"].tobytes(), ra["p"].copy()), (rb["v"].tobytes(), rb["p"].copy())


def items_at(path: Path, positions: list[int], item: int) -> list[bytes]:
    """The items at ``positions`` of a set file (b"" past its end), read one by one."""
    size = os.path.getsize(path)
    out = []
    with open(path, "rb") as f:
        for p in positions:
            if 0 <= p and (p + 1) * item <= size:
                f.seek(p * item)
                out.append(f.read(item))
            else:
                out.append(b"")
    return out


def unique(chunks: Iterator[bytes], item: int, dst: Path, scratch: Path, *, items: int) -> int:
    """The distinct items of a set written to ``dst`` (in no particular order); how many there are."""
    written = 0
    with tempfile.TemporaryDirectory(dir=scratch) as tmp, open(dst, "wb") as out:
        for values, _ in partition(chunks, item, Path(tmp), items=items).each():
            if values:
                distinct = np.unique(np.frombuffer(values, dtype=f"V{item}"))
                out.write(distinct.tobytes())
                written += int(distinct.size)
    return written


def _random_u64(n: int) -> npt.NDArray[np.uint64]:
    return np.frombuffer(os.urandom(8 * n), dtype=np.uint64)


def shuffle(chunks: Iterator[bytes], item: int, dst: Path, scratch: Path, *, items: int) -> None:
    """A set written to ``dst`` in a uniformly random order from the OS's CSPRNG, one pile in memory at a
    time: each item goes to a pile drawn at random, each pile is put in random order (by random 64-bit
    keys), and the piles follow one another. The order must leak nothing, so no seeded generator."""
    piles = max(1, min(MAX_WAYS, -(-items // BUCKET_ITEMS)))
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        paths = [Path(tmp) / f"{i:03d}" for i in range(piles)]
        files = [open(p, "wb") for p in paths]
        try:
            for data in chunks:
                n = len(data) // item
                if piles == 1:
                    files[0].write(data)
                    continue
                arr = np.frombuffer(data, dtype=f"V{item}")
                pile = (_random_u64(n) % piles).astype(np.int64)
                order = np.argsort(pile, kind="stable")
                cuts = np.searchsorted(pile[order], np.arange(piles + 1))
                arr = arr[order]
                for i in range(piles):
                    if cuts[i + 1] > cuts[i]:
                        files[i].write(arr[cuts[i]:cuts[i + 1]].tobytes())
        finally:
            for f in files:
                f.close()
        with open(dst, "wb") as out:
            for path in paths:
                arr = np.fromfile(path, dtype=f"V{item}")
                path.unlink()
                out.write(arr[np.argsort(_random_u64(arr.size))].tobytes())


__all__ = ["BUCKET_ITEMS", "Buckets", "first_repeat", "items_at", "partition", "positions_in", "read_chunks",
           "shuffle", "unique"]
