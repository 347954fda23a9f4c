"""Set stages of PSI jobs on disk: one append-only file per (job, stage).

Sets of a million 32-byte points do not belong in memory or in SQLite rows;
they are streamed to a file as chunks arrive and streamed out again in
bounded chunks. Files are removed when the job ends.

The spool holds at most ``max_bytes`` on disk, complete and partial stages
together (what an earlier run left included): past it ``append`` raises
``SpoolFull`` (RESOURCE_EXHAUSTED) and forgets the stage it was writing, so
that jobs cannot fill the gateway's disk.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from datawharf.chunking import Assembler, ChunkError, Piece, TooLarge, item_chunk_bytes
from datawharf.errors import ResourceExhausted

DEFAULT_MAX_BYTES = 4 << 30
SCRATCH_PREFIX = ".scratch-"  # the gateway's bucket files while it matches (datawharf.buckets)
SCRATCH_STALE_S = 3600  # a scratch folder untouched this long is a dead match's (a live one writes buckets often)


class SpoolError(ValueError):
    """A stage arrived out of order, twice, or over its limit."""


class SpoolFull(ResourceExhausted):
    """The spool reached its byte limit. Not a SpoolError: nothing the sender did was malformed,
    so the job need not fail for it."""


class Spool:
    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"the spool's limit must be positive, got {max_bytes} bytes")
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._open: dict[tuple[str, str], Assembler] = {}
        # A match an earlier run did not finish; not one that another replica on a shared spool runs now.
        for old in self.root.glob(SCRATCH_PREFIX + "*"):
            try:
                stale = time.time() - old.stat().st_mtime > SCRATCH_STALE_S
            except FileNotFoundError:
                continue
            if stale:
                shutil.rmtree(old, ignore_errors=True)
        self._used = sum(p.stat().st_size for p in self.root.rglob("*")
                         if p.is_file() and not p.relative_to(self.root).parts[0].startswith(SCRATCH_PREFIX))

    @property
    def used(self) -> int:
        """Bytes the spool holds on disk now."""
        return self._used

    def _unlink(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        self._used -= size

    def _path(self, job_id: str, stage: str) -> Path:
        if not stage.isalpha() or len(stage) > 2 or "/" in job_id or not job_id:
            raise SpoolError(f"bad stage {stage!r} or job {job_id!r}")
        return self.root / job_id / stage

    def path(self, job_id: str, stage: str) -> Path:
        """A complete stage's file, for reading in chunks."""
        return self._path(job_id, stage)

    def scratch(self) -> "tempfile.TemporaryDirectory[str]":
        """A folder for a match's bucket files, removed when done (and at the next start if not).

        Not counted against ``max_bytes``: it lives only while a match runs, at about the size of the
        two stages it partitions."""
        return tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=self.root)

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
            self._unlink(part)  # a stage (re)starts from chunk 0
            assembler = self._open[key] = Assembler(max_items * item, item=item, keep=False)
        try:
            complete = assembler.add(Piece(seq, data, last)) is not None
        except ChunkError as exc:
            self.reset(job_id, stage)  # a stage that went wrong can only start again from chunk 0
            if isinstance(exc, TooLarge):
                raise SpoolError(f"stage {stage} exceeds the limit of {max_items} items") from None
            raise SpoolError(f"stage {stage}: {exc}") from None
        if self._used + len(data) > self.max_bytes:
            full = SpoolFull(
                f"the gateway's PSI spool is full ({self._used} of {self.max_bytes} bytes in use, {len(data)} "
                f"more needed), so stage {stage} of job {job_id} was not kept; retry once running jobs have "
                "finished, or ask the operator to raise --spool-max-bytes")
            self.reset(job_id, stage)
            raise full
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "ab") as f:
            f.write(data)
        self._used += len(data)
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
        self._unlink(path)
        self._unlink(path.with_suffix(".part"))
        self._open.pop((job_id, stage), None)

    def drop(self, job_id: str) -> None:
        folder = self.root / job_id
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file():
                    self._unlink(path)
        shutil.rmtree(folder, ignore_errors=True)
        for key in [k for k in self._open if k[0] == job_id]:
            self._open.pop(key, None)
