"""Bounded chunks for payloads that may outgrow one gRPC message.

Every large payload (ciphertext lists, results) is cut into pieces of at
most CHUNK_BYTES; the receiver reassembles them with a hard size limit and
refuses pieces out of order, so a bad sender cannot make it buffer forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

CHUNK_BYTES = 1 << 20  # well under gRPC's 4 MiB default message limit


@dataclass(frozen=True)
class Piece:
    seq: int
    data: bytes
    last: bool


def item_chunk_bytes(item: int) -> int:
    """The largest piece under CHUNK_BYTES that holds whole items of ``item`` bytes."""
    return max(item, CHUNK_BYTES // item * item)


def split_items(data: bytes, item: int) -> list[bytes]:
    """``data`` (whole items) in pieces of whole items; at least one piece, maybe empty."""
    step = item_chunk_bytes(item)
    return [data[i : i + step] for i in range(0, len(data), step)] or [b""]


class ChunkError(ValueError):
    """Pieces arrived out of order, repeated, or over the size limit."""


class TooLarge(ChunkError):
    pass


def split(payload: bytes, size: int = CHUNK_BYTES) -> Iterator[Piece]:
    if size <= 0:
        raise ValueError("chunk size must be positive")
    count = max(1, -(-len(payload) // size))
    for i in range(count):
        yield Piece(i, payload[i * size : (i + 1) * size], i == count - 1)


class Assembler:
    """Collects pieces in order; ``add`` returns the payload on the last one."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._parts: list[bytes] = []
        self._size = 0
        self._done = False

    def add(self, piece: Piece) -> bytes | None:
        if self._done:
            raise ChunkError("a piece arrived after the last one")
        if piece.seq != len(self._parts):
            raise ChunkError(f"piece {piece.seq} arrived where piece {len(self._parts)} was expected")
        self._size += len(piece.data)
        if self._size > self.max_bytes:
            raise TooLarge(f"payload exceeds the limit of {self.max_bytes} bytes")
        self._parts.append(piece.data)
        if piece.last:
            self._done = True
            return b"".join(self._parts)
        return None
