"""The buyer's PSI set on disk: its IDs read in batches, its secret order and per-position data in files.

For an ID file of millions of lines (``Client.psi(..., ids=Path(...))``),
nothing per ID stays in memory:

    ID file ─► normalise, hash_to_u (counter 0) ─► HR: (hash, row) per line
    HR ─► distinct hashes (buckets on disk) ─► shuffled by the OS's CSPRNG ─► S: the hash sent at each position
    matched positions ─► their hashes from S ─► joined with HR in buckets ─► the matching rows, ascending

The hash of an ID stands for it: two lines that normalise alike are one
ID, as ``protocols.psi.dedupe`` makes them, and every line that carried a
matched ID is reported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

from datawharf import buckets
from protocols import psi

POINT = psi.POINT_BYTES
BATCH = 1 << 16
_HR = np.dtype([("v", f"V{POINT}"), ("p", "<u8")])


def id_batches(path: Path, batch: int = BATCH) -> Iterator[list[str]]:
    """The IDs of a file in batches: a Parquet file's first column, else one ID per line (UTF-8)."""
    if path.suffix.lower() == ".parquet":
        for rb in pq.ParquetFile(path).iter_batches(batch_size=batch, columns=[0]):
            yield [str(v) for v in rb.column(0).to_pylist()]
        return
    with open(path, encoding="utf-8", newline="") as f:
        out: list[str] = []
        for line in f:
            out.append(line.rstrip("\r\n"))
            if len(out) == batch:
                yield out
                out = []
        if out:
            yield out


class BuyerSet:
    """A buyer's distinct IDs on disk under ``folder``, in a secret random order (file S)."""

    def __init__(self, source: Path, folder: Path) -> None:
        self.folder = folder
        self.hr = folder / "HR"
        rows = 0
        with open(self.hr, "wb") as f:
            for batch in id_batches(source):
                rec = np.empty(len(batch), dtype=_HR)
                rec["v"] = np.frombuffer(b"".join(psi.hash_to_u(psi.normalise(x)) for x in batch), dtype=f"V{POINT}")
                rec["p"] = np.arange(rows, rows + len(batch), dtype=np.uint64)
                f.write(rec.tobytes())
                rows += len(batch)
        self.rows = rows
        distinct = folder / "U"
        self.size = buckets.unique(self._hashes(), POINT, distinct, folder, items=rows)
        self.sent = folder / "S"
        buckets.shuffle(buckets.read_chunks(distinct, POINT), POINT, self.sent, folder, items=self.size)
        distinct.unlink()

    def _hashes(self) -> Iterator[bytes]:
        with open(self.hr, "rb") as f:
            while True:
                rec = np.fromfile(f, dtype=_HR, count=buckets.CHUNK_ITEMS)
                if not rec.size:
                    return
                yield rec["v"].tobytes()

    def _records(self) -> Iterator[tuple[bytes, npt.NDArray[np.uint64]]]:
        with open(self.hr, "rb") as f:
            while True:
                rec = np.fromfile(f, dtype=_HR, count=buckets.CHUNK_ITEMS)
                if not rec.size:
                    return
                yield rec["v"].tobytes(), rec["p"].copy()

    def chunks(self, size: int = 4096) -> Iterator[list[bytes]]:
        """The hashes in the order sent, as lists of ``size``."""
        for data in buckets.read_chunks(self.sent, POINT):
            for i in range(0, len(data), size * POINT):
                part = data[i:i + size * POINT]
                yield [part[j:j + POINT] for j in range(0, len(part), POINT)]

    def matched_rows(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The rows of the ID file whose ID was sent at one of ``positions``, ascending."""
        if positions.size and (positions.min() < 0 or positions.max() >= self.size):
            raise psi.PsiError(f"a matched position is outside the {self.size} IDs sent")
        with tempfile.TemporaryDirectory(dir=self.folder) as tmp:
            picked = Path(tmp) / "M"
            with open(self.sent, "rb") as src, open(picked, "wb") as out:
                for start in range(0, positions.size, buckets.CHUNK_ITEMS):
                    part = np.sort(positions[start:start + buckets.CHUNK_ITEMS])
                    for p in part.tolist():
                        src.seek(p * POINT)
                        out.write(src.read(POINT))
            ways = buckets._ways(self.rows)
            hay = buckets.partition(buckets.read_chunks(picked, POINT), POINT, Path(tmp) / "h", items=self.rows,
                                    ways=ways)
            need = buckets.Buckets(Path(tmp) / "n", POINT, ways, 0)
            need.fill(self._records())
            hits: list[npt.NDArray[np.int64]] = []
            for (nv, nrows), (hv, _) in buckets._paired(need, hay):
                if nv and hv:
                    hits.append(nrows[_member(nv, hv)].astype(np.int64))
        out_rows = np.concatenate(hits) if hits else np.empty(0, dtype=np.int64)
        out_rows.sort()
        return out_rows


def _member(needles: bytes, haystack: bytes) -> npt.NDArray[np.int64]:
    """Indexes of ``needles``' items that ``haystack`` holds (needles may repeat: lines of one ID)."""
    need = np.frombuffer(needles, dtype=f"V{POINT}")
    hay = np.unique(np.frombuffer(haystack, dtype=f"V{POINT}"))
    return np.nonzero(np.isin(need, hay))[0]


def scratch(root: Path | None = None) -> "tempfile.TemporaryDirectory[str]":
    return tempfile.TemporaryDirectory(prefix="wharf-psi-", dir=root)


__all__ = ["BuyerSet", "id_batches", "scratch"]
