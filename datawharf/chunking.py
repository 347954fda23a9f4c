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
    """The one reassembler: pieces in order, whole items, under a byte cap.

    ``add`` returns the payload on the last piece (None before). With
    ``keep=False`` it only checks and counts, for callers that write each
    piece elsewhere as it arrives (the gateway's spool), and returns b"" at
    the end. Every check happens before a byte is kept, so a bad sender
    cannot make the receiver buffer more than ``max_bytes``.
    """

    def __init__(self, max_bytes: int, *, item: int = 1, keep: bool = True) -> None:
        if item <= 0:
            raise ValueError("item size must be positive")
        self.max_bytes = max_bytes
        self.item = item
        self.keep = keep
        self._parts: list[bytes] = []
        self._next = 0
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """Bytes accepted so far."""
        return self._size

    @property
    def expected_seq(self) -> int:
        return self._next

    def add(self, piece: Piece) -> bytes | None:
        if self._done:
            raise ChunkError("a piece arrived after the last one")
        if piece.seq != self._next:
            raise ChunkError(f"piece {piece.seq} arrived where piece {self._next} was expected")
        if len(piece.data) % self.item:
            raise ChunkError(f"piece {piece.seq} is not a whole number of {self.item}-byte items")
        if self._size + len(piece.data) > self.max_bytes:
            raise TooLarge(f"payload exceeds the limit of {self.max_bytes} bytes")
        self._size += len(piece.data)
        self._next += 1
        if self.keep:
            self._parts.append(piece.data)
        if piece.last:
            self._done = True
            return b"".join(self._parts) if self.keep else b""
        return None
