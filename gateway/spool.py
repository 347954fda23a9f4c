"""Set stages of PSI jobs on disk: one append-only file per (job, stage).

Sets of a million 32-byte points do not belong in memory or in SQLite rows;
they are streamed to a file as chunks arrive and streamed out again in
bounded chunks. Files are removed when the job ends.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Iterator

from datawharf.chunking import Assembler, ChunkError, Piece, TooLarge, item_chunk_bytes


class SpoolError(ValueError):
    """A stage arrived out of order, twice, or over its limit."""


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._open: dict[tuple[str, str], Assembler] = {}

    def _path(self, job_id: str, stage: str) -> Path:
        if not stage.isalpha() or len(stage) > 2 or "/" in job_id or not job_id:
            raise SpoolError(f"bad stage {stage!r} or job {job_id!r}")
        return self.root / job_id / stage

    def has(self, job_id: str, stage: str) -> bool:
        return self._path(job_id, stage).exists()

    def append(self, job_id: str, stage: str, seq: int, data: bytes, last: bool, *, item: int, max_items: int) -> bool:
        """Add a chunk; True once the stage is complete. Partial stages live in ``<stage>.part``.

        Order, whole items and the item limit are checked by the shared
        reassembler before a byte is written."""
        final = self._path(job_id, stage)
        if final.exists():
            raise SpoolError(f"stage {stage} of job {job_id} was already received")
        part = final.with_suffix(".part")
        key = (job_id, stage)
        assembler = self._open.get(key)
        if assembler is None:
            part.unlink(missing_ok=True)  # a stage (re)starts from chunk 0
            assembler = self._open[key] = Assembler(max_items * item, item=item, keep=False)
        try:
            complete = assembler.add(Piece(seq, data, last)) is not None
        except ChunkError as exc:
            self.reset(job_id, stage)  # a stage that went wrong can only start again from chunk 0
            if isinstance(exc, TooLarge):
                raise SpoolError(f"stage {stage} exceeds the limit of {max_items} items") from None
            raise SpoolError(f"stage {stage}: {exc}") from None
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "ab") as f:
            f.write(data)
        if complete:
            part.rename(final)
            self._open.pop(key, None)
        return complete

    def read(self, job_id: str, stage: str) -> bytes:
        return self._path(job_id, stage).read_bytes()

    def items(self, job_id: str, stage: str, item: int) -> list[bytes]:
        data = self.read(job_id, stage)
        return [data[i : i + item] for i in range(0, len(data), item)]

    def chunks(self, job_id: str, stage: str, item: int = 1) -> Iterator[tuple[int, bytes, bool]]:
        """(seq, data, last) pieces of at most CHUNK_BYTES, whole items each."""
        path = self._path(job_id, stage)
        size = path.stat().st_size
        step = item_chunk_bytes(item)
        with open(path, "rb") as f:
            seq = 0
            sent = 0
            while True:
                data = f.read(step)
                sent += len(data)
                yield seq, data, sent >= size
                seq += 1
                if sent >= size:
                    return

    def digest(self, job_id: str, stage: str) -> bytes:
        """SHA-256 of a complete stage, read in chunks."""
        h = hashlib.sha256()
        with open(self._path(job_id, stage), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.digest()

    def size(self, job_id: str, stage: str) -> int:
        return self._path(job_id, stage).stat().st_size

    def reset(self, job_id: str, stage: str) -> None:
        """Forget a stage, complete or partial, so it can be sent again from chunk 0."""
        path = self._path(job_id, stage)
        path.unlink(missing_ok=True)
        path.with_suffix(".part").unlink(missing_ok=True)
        self._open.pop((job_id, stage), None)

    def drop(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)
        for key in [k for k in self._open if k[0] == job_id]:
            self._open.pop(key, None)
