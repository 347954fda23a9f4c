"""The holder's PSI answer (intersection mode) streamed through files: memory flat in the set's size.

``protocols.psi.Holder.answer`` does the same on lists; this reads the
buyer's stage A from a file and the holder's IDs in batches, and writes D
and W to files chunk by chunk, with the same checks and the same outputs
in distribution:

    A file ─► blind (the executor, a few chunks at a time) ─► D file ─► repeats? (buckets on disk)
                                                                    └─► cardinality-only: shuffled on disk
    IDs in batches ─► normalise, hash_to_u ─► distinct (buckets) + padding hashes ─► shuffled on disk
                   ─► blind ─► W file, the canaries spliced in at their places

The hash of an ID (``protocols.psi.hash_to_u``, counter 0) stands for it on
disk, so two IDs that normalise alike are one, as ``dedupe`` makes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from datawharf import buckets
from protocols import psi

POINT = psi.POINT_BYTES
CHUNK = 4096  # points per task handed to the executor (protocols.psi.chunked's size)
READ = 1 << 16  # points read from a file at a time


@dataclass(frozen=True)
class StreamedAnswer:
    d: Path
    w: Path
    canaries: tuple[psi.Canary, ...]
    points: int  # the buyer's points re-blinded (A less its commitment)
    rows: int  # items of W


def _point_chunks(path: Path, count: int) -> Iterator[list[bytes]]:
    """The first ``count`` points of a file as lists of CHUNK points."""
    left = count
    for data in buckets.read_chunks(path, POINT, READ):
        data = data[:left * POINT]
        left -= len(data) // POINT
        for i in range(0, len(data), CHUNK * POINT):
            part = data[i:i + CHUNK * POINT]
            yield [part[j:j + POINT] for j in range(0, len(part), POINT)]
        if left <= 0:
            return


def _hashes(batches: Iterable[list[str]]) -> Iterator[bytes]:
    for batch in batches:
        yield b"".join(psi.hash_to_u(psi.normalise(ident)) for ident in batch)


def _padding(n: int) -> Iterator[bytes]:
    for start in range(0, n, READ):
        yield b"".join(psi.hash_to_u(x) for x in psi.padding_ids(min(READ, n - start)))


def answer(key: psi.Key, a_path: Path, ids: Iterable[list[str]], folder: Path, *, mapper: psi.Mapper,
           cardinality_only: bool, keep_order: bool = False, padding: int = 0, canaries: bool = True,
           group: int = 8) -> StreamedAnswer:
    """Round 2 on files under ``folder``: D (A less the commitment, re-blinded) and W, and the canaries
    for the gateway. Raises as ``Holder.answer`` does: RepeatedPoint for a buyer's repeat, InvalidId,
    InvalidPoint."""
    total = os.path.getsize(a_path) // POINT
    commitment: list[bytes] = []
    sent = total
    if canaries:
        if total <= psi.COMMITMENT_POINTS:
            raise psi.PsiError(f"the buyer's set holds {total} points; it must end with its "
                               f"{psi.COMMITMENT_POINTS}-point commitment after at least one ID")
        sent = total - psi.COMMITMENT_POINTS
        commitment = buckets.items_at(a_path, [sent, sent + 1], POINT)
    # D: the buyer's points re-blinded, in its order, refused if two give one value (see psi.reblind).
    d_path = folder / "D"
    with open(d_path, "wb") as f:
        for part in psi.stream_map(mapper, key.blind, _point_chunks(a_path, sent), group=group):
            f.write(b"".join(part))
    at = buckets.first_repeat(buckets.read_chunks(d_path, POINT), POINT, folder, items=sent)
    if at is not None:
        raise psi.RepeatedPoint(f"the buyer's set repeats a point at position {at} (the same point as an earlier "
                                "one once blinded); each ID may be sent once")
    if cardinality_only and not keep_order:
        shuffled = folder / "D.shuffled"
        buckets.shuffle(buckets.read_chunks(d_path, POINT), POINT, shuffled, folder, items=sent)
        shuffled.replace(d_path)
    # W: the holder's distinct IDs and padding, hashed, shuffled, blinded, with the canaries spliced in.
    hashed = folder / "H"
    with open(hashed, "wb") as f:
        for data in _hashes(ids):
            f.write(data)
    distinct = folder / "U"
    rows = buckets.unique(buckets.read_chunks(hashed, POINT), POINT, distinct, folder,
                          items=os.path.getsize(hashed) // POINT)
    hashed.unlink()
    with open(distinct, "ab") as f:
        for data in _padding(padding):
            f.write(data)
    rows += padding
    order = folder / "O"
    buckets.shuffle(buckets.read_chunks(distinct, POINT), POINT, order, folder, items=rows)
    distinct.unlink()
    checks: list[psi.Canary] = []
    at_pos: list[int] = []
    points: list[bytes] = []
    if commitment:
        at_pos, points, checks = psi.hide_canaries(range(rows), commitment)
    w_path = folder / "W"
    k, written = 0, 0
    with open(w_path, "wb") as f:
        for part in psi.stream_map(mapper, key.blind_hashed, _point_chunks(order, rows), group=group):
            data = b"".join(part)
            m, pos = len(part), 0
            while pos < m:
                if k < len(at_pos) and at_pos[k] == written:
                    f.write(points[k])
                    k += 1
                    written += 1
                    continue
                take = m - pos if k >= len(at_pos) else min(m - pos, at_pos[k] - written)
                f.write(data[pos * POINT:(pos + take) * POINT])
                pos += take
                written += take
        for point in points[k:]:  # canaries after the last row
            f.write(point)
            written += 1
    order.unlink()
    return StreamedAnswer(d_path, w_path, tuple(checks), sent, written)


__all__ = ["StreamedAnswer", "answer"]
