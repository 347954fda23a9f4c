"""Find which of many byte patterns occur anywhere in a large blob, fast.

The wire tests look for thousands of raw values in megabytes of recorded
traffic; one `in` per pattern is quadratic. Here every window of the blob is
packed into a little-endian uint64 once, so each pattern length costs one
vectorised membership test, and candidates are confirmed with `in`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np


def _windows(blob: bytes, length: int) -> np.ndarray:
    """Every window's first min(length, 8) bytes, as uint64 (little-endian)."""
    k = min(length, 8)
    padded = blob + b"\x00" * 8
    parts = []
    for offset in range(8):
        usable = (len(padded) - offset) // 8 * 8
        parts.append(np.frombuffer(padded[offset : offset + usable], dtype="<u8"))
    windows = np.concatenate(parts)
    if k < 8:
        windows = windows & np.uint64((1 << (8 * k)) - 1)
    return np.sort(windows)  # sorted for searchsorted (np.unique is far slower here)


def _key(pattern: bytes) -> int:
    head = pattern[:8]
    return int.from_bytes(head + b"\x00" * (8 - len(head)), "little")


def find_any(blob: bytes, patterns: Iterable[bytes]) -> set[bytes]:
    """The patterns (each at least 1 byte) that occur in ``blob``."""
    by_len: dict[int, list[bytes]] = defaultdict(list)
    for p in set(patterns):
        if p:
            by_len[min(len(p), 8)].append(p)
    found: set[bytes] = set()
    for k, group in by_len.items():
        windows = _windows(blob, k)
        keys = np.array([_key(p) for p in group], dtype=np.uint64)
        at = np.minimum(np.searchsorted(windows, keys), len(windows) - 1)
        hits = windows[at] == keys
        found.update(p for p, hit in zip(group, hits) if hit and p in blob)
    return found
