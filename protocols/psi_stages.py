"""The sets a PSI job moves, named once: who writes each, who may read it, its item size and limit.

    stage  written by  read by          item bytes       what it holds
    A      buyer       holder           32 (point)       the buyer's blinded IDs a·H(x), then (balanced modes) its
                                                         commitment a·G, a·G′ (counted in buyer_set_size)
    D      holder      gateway          32               the buyer's points re-blinded, b·a·H(x), in the buyer's order
    W      holder      buyer            32               the holder's blinded IDs b·H(y), shuffled
    Z      buyer       gateway          32               W re-blinded by the buyer, a·b·H(y)
    M      holder      gateway          16 per column    per-row masked values, row-major (psi-sum)
    S      holder      buyer            1 (opaque)       the mask seed sealed to the buyer's box key (psi-sum)
    E      holder      buyer            32 (point)       the buyer's OPRF points evaluated under the epoch key
    Q      buyer       gateway          16 (tag)         the buyer's OPRF tags (unbalanced)
    T      holder      gateway          16 (tag)         the holder's OPRF table for its epoch (unbalanced)
    N      holder      gateway          1 (opaque)       the holder's noise on the count, padding rows to count (DP)
                                                         and its canaries: where Z must hold what (GatewayNotes)
    P      holder      buyer            1 (opaque)       the holder's noise declaration: ρ, σ per figure (DP)
    R      holder      buyer            1 (opaque)       the holder's signed receipt over its stages, which the
                                                         gateway relays from the answer's last message

A job's rounds: the buyer uploads A (or, unbalanced, also A: its blinded
points); the holder answers with its stages for the mode; the buyer reads
its stages and uploads its second round (Z, or Q). Pure data, no I/O.
"""

from __future__ import annotations

import enum
import json
import math
import secrets
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from protocols.oprf import TAG_BYTES
from protocols.psi import CANARIES, COMMITMENT_POINTS, Canary, first_repeat_packed
from protocols.psi_sum import MASK_BYTES

POINT_BYTES = 32
MAX_SET = 1 << 24  # IDs per side in one job (the gateway matches in buckets on disk)
MAX_A = MAX_SET + COMMITMENT_POINTS  # points in the buyer's stage A: its IDs, then its commitment
MAX_TABLE = 1 << 24  # entries of a holder's OPRF table
MAX_SEALED_BYTES = 1 << 16
MAX_PADDING = 1 << 16  # dummy rows a holder may add to W to hide its set's size
MAX_NOISE_BYTES = 1 << 20
MAX_W = MAX_SET + MAX_PADDING + CANARIES  # the holder's set with its padding and canaries
SALT_BYTES = 32


class PsiMode(enum.StrEnum):
    INTERSECTION = "intersection"
    SUM = "sum"
    UNBALANCED = "unbalanced"


class Role(enum.StrEnum):
    BUYER = "buyer"
    HOLDER = "holder"
    GATEWAY = "gateway"


class Stage(enum.StrEnum):
    A = "A"
    D = "D"
    W = "W"
    Z = "Z"
    M = "M"
    S = "S"
    E = "E"
    Q = "Q"
    T = "T"
    N = "N"
    P = "P"
    R = "R"


@dataclass(frozen=True)
class StageSpec:
    stage: Stage
    item_bytes: int
    writer: Role
    reader: Role


STAGES: dict[Stage, StageSpec] = {
    s.stage: s
    for s in (
        StageSpec(Stage.A, POINT_BYTES, Role.BUYER, Role.HOLDER),
        StageSpec(Stage.D, POINT_BYTES, Role.HOLDER, Role.GATEWAY),
        StageSpec(Stage.W, POINT_BYTES, Role.HOLDER, Role.BUYER),
        StageSpec(Stage.Z, POINT_BYTES, Role.BUYER, Role.GATEWAY),
        StageSpec(Stage.M, MASK_BYTES, Role.HOLDER, Role.GATEWAY),
        StageSpec(Stage.S, 1, Role.HOLDER, Role.BUYER),
        StageSpec(Stage.E, POINT_BYTES, Role.HOLDER, Role.BUYER),
        StageSpec(Stage.Q, TAG_BYTES, Role.BUYER, Role.GATEWAY),
        StageSpec(Stage.T, TAG_BYTES, Role.HOLDER, Role.GATEWAY),
        StageSpec(Stage.N, 1, Role.HOLDER, Role.GATEWAY),
        StageSpec(Stage.P, 1, Role.HOLDER, Role.BUYER),
        StageSpec(Stage.R, 1, Role.HOLDER, Role.BUYER),
    )
}

# What the holder sends back for each mode (T only when the gateway lacks the epoch's table;
# N and P from holders that declare their noise, which this project's holders always do).
HOLDER_STAGES: dict[PsiMode, tuple[Stage, ...]] = {
    PsiMode.INTERSECTION: (Stage.D, Stage.W, Stage.N, Stage.P),
    PsiMode.SUM: (Stage.D, Stage.W, Stage.M, Stage.S, Stage.N, Stage.P),
    PsiMode.UNBALANCED: (Stage.E, Stage.T, Stage.N, Stage.P),
}
OPTIONAL_STAGES = frozenset({Stage.T, Stage.N, Stage.P})
# The buyer's second upload, once the holder has answered.
SECOND_ROUND: dict[PsiMode, Stage] = {
    PsiMode.INTERSECTION: Stage.Z,
    PsiMode.SUM: Stage.Z,
    PsiMode.UNBALANCED: Stage.Q,
}
BUYER_READS = frozenset(s for s, spec in STAGES.items() if spec.reader is Role.BUYER)


# In a multi-holder job the buyer names the holder of each stage it reads or writes: "W@st-mary".
HOLDER_SEP = "@"


def for_holder(stage: Stage | str, party: str) -> str:
    """The wire name of ``party``'s ``stage`` in a multi-holder job."""
    return f"{stage}{HOLDER_SEP}{party}"


def parse_stage(text: str) -> tuple[str, str]:
    """(stage, holder) from a wire name; the holder is "" when none is named."""
    stage, _, party = text.partition(HOLDER_SEP)
    return stage, party


def item_bytes(stage: Stage | str) -> int:
    return STAGES[Stage(stage)].item_bytes


def max_items(stage: Stage, *, buyer_set_size: int, value_columns: int, holder_rows: int) -> int:
    """The most items ``stage`` may hold in a job with these sizes.

    ``holder_rows`` is the number of W items received (it bounds Z); the
    buyer's own stages are bounded by the size it announced in the spec.
    """
    if stage in (Stage.A, Stage.D, Stage.E, Stage.Q):
        return buyer_set_size
    if stage is Stage.Z:
        return holder_rows
    if stage is Stage.W:
        return MAX_W
    if stage is Stage.M:
        return MAX_W * max(1, value_columns)
    if stage is Stage.S:
        return MAX_SEALED_BYTES
    if stage in (Stage.N, Stage.P, Stage.R):
        return MAX_NOISE_BYTES
    return MAX_TABLE  # T


def split_items(data: bytes, stage: Stage | str) -> list[bytes]:
    """A stage's bytes as its items; raises ValueError if they are not whole items."""
    size = item_bytes(stage)
    if len(data) % size:
        raise ValueError(f"stage {stage} holds {len(data)} bytes, not a whole number of {size}-byte items")
    return [data[i : i + size] for i in range(0, len(data), size)]


# Stages that must not repeat an item, and the name the gateway gives each in a refusal.
DISTINCT: dict[Stage, str] = {
    Stage.A: "the buyer's blinded set (stage A)",
    Stage.D: "the holder's re-blinded set (stage D)",
    Stage.W: "the holder's blinded set (stage W)",
    Stage.Z: "the buyer's re-blinded set (stage Z)",
    Stage.E: "the holder's evaluations (stage E)",
    Stage.Q: "the buyer's tags (stage Q)",
    Stage.T: "the holder's table (stage T)",
}


def first_repeat(data: bytes, item: int) -> int | None:
    """The position of the first item of packed ``data`` equal to an earlier one, or None
    (``protocols.psi.first_repeat_packed``: numpy, no Python object per item)."""
    return first_repeat_packed(data, item)


def canonical_u(data: bytes) -> bytes:
    """Packed X25519 u-coordinates in their one encoding (top bit cleared, reduced mod p)."""
    if len(data) % POINT_BYTES:
        raise ValueError(f"{len(data)} bytes are not whole {POINT_BYTES}-byte points")
    arr = np.frombuffer(data, dtype=np.uint8).reshape(-1, POINT_BYTES).copy()
    arr[:, 31] &= 0x7F
    # Only u in [p, 2^255) needs reducing: 7f ff .. ff, low byte at least 0xed.
    high = np.nonzero((arr[:, 31] == 0x7F) & (arr[:, 1:31] == 0xFF).all(axis=1) & (arr[:, 0] >= 0xED))[0]
    for i in high.tolist():
        u = int.from_bytes(arr[i].tobytes(), "little") - ((1 << 255) - 19)
        arr[i] = np.frombuffer(u.to_bytes(POINT_BYTES, "little"), dtype=np.uint8)
    return arr.tobytes()


@dataclass(frozen=True)
class GatewayNotes:
    """Stage N, for the gateway alone: the holder's noise on the count, rows to count, canaries.

    ``offset`` is added to the number of matches (the holder's noise on the
    intersection size); ``include`` are positions of W (psi-sum: padding rows
    whose masked values carry the sums' noise, or zeros) that the gateway
    joins to the matched positions, so the buyer unmasks them with the rest;
    ``canaries`` are the positions of W where Z must hold the given values
    (``protocols.psi``: the check that the buyer re-blinded with one scalar).

    The buyer can see this stage's size (the job's ledger lists every stage's)
    and its digest (in the holder's receipt), so both must say nothing: the
    rows to count travel as a bitmap over all ``rows`` of W, whose size the
    buyer knows anyway, and a secret salt keeps a small offset from being
    found by trying every value against the digest."""

    offset: int = 0
    include: tuple[int, ...] = ()
    canaries: tuple[Canary, ...] = ()
    rows: int = 0  # the rows of W the bitmap covers (psi-sum), else 0
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(SALT_BYTES))

    def pack(self) -> bytes:
        if len(self.salt) != SALT_BYTES:
            raise ValueError(f"stage N's salt is {SALT_BYTES} bytes")
        if any(not 0 <= i < self.rows for i in self.include) or len(set(self.include)) != len(self.include):
            raise ValueError("stage N counts a row twice or outside W")
        bits = np.zeros(self.rows, dtype=np.uint8)
        bits[list(self.include)] = 1
        return b"".join([
            self.salt, self.offset.to_bytes(8, "little", signed=True), self.rows.to_bytes(4, "little"),
            np.packbits(bits, bitorder="little").tobytes(),
            *(c.position.to_bytes(4, "little") + c.expected for c in self.canaries)])

    @classmethod
    def unpack(cls, data: bytes) -> "GatewayNotes":
        head = SALT_BYTES + 12
        if len(data) < head:
            raise ValueError(f"stage N is at least {head} bytes, not {len(data)}")
        salt = data[:SALT_BYTES]
        offset = int.from_bytes(data[SALT_BYTES:SALT_BYTES + 8], "little", signed=True)
        rows = int.from_bytes(data[SALT_BYTES + 8:head], "little")
        end = head + (rows + 7) // 8
        rest = len(data) - end
        if rest < 0 or rest % (4 + POINT_BYTES):
            raise ValueError(f"stage N does not hold a bitmap of {rows} rows and whole canaries ({len(data)} bytes)")
        bits = np.unpackbits(np.frombuffer(data[head:end], dtype=np.uint8), count=rows, bitorder="little")
        include = tuple(int(i) for i in np.nonzero(bits)[0])
        step = 4 + POINT_BYTES
        canaries = tuple(Canary(int.from_bytes(data[i:i + 4], "little"), data[i + 4:i + step])
                         for i in range(end, len(data), step))
        return cls(offset, include, canaries, rows, salt)


@dataclass(frozen=True)
class NoiseDeclaration:
    """Stage P, signed with the holder's other stages: what noise the released figures carry.

    Standard deviations are in the figures' own units (IDs for the size,
    the column's units for a sum); ``exact`` means the holder added none."""

    exact: bool = True
    rho: float = 0.0
    size_sd: float = 0.0
    set_size_sd: float = 0.0
    sum_sd: tuple[tuple[str, float], ...] = ()
    remaining: float = 0.0
    renews_at: float = 0.0

    def pack(self) -> bytes:
        return json.dumps({"exact": self.exact, "rho": self.rho, "size_sd": self.size_sd,
                           "set_size_sd": self.set_size_sd, "sum_sd": dict(self.sum_sd),
                           "remaining": self.remaining, "renews_at": self.renews_at}, sort_keys=True).encode()

    @classmethod
    def unpack(cls, data: bytes) -> "NoiseDeclaration":
        try:
            d = json.loads(data)
            out = cls(bool(d["exact"]), float(d["rho"]), float(d["size_sd"]), float(d["set_size_sd"]),
                      tuple((str(k), float(v)) for k, v in dict(d["sum_sd"]).items()), float(d["remaining"]),
                      float(d["renews_at"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"stage P is not a noise declaration: {exc}") from None
        if any(not (math.isfinite(v) and v >= 0) for v in (out.rho, out.size_sd, out.set_size_sd,
                                                            *(sd for _, sd in out.sum_sd))):
            raise ValueError("stage P declares a negative or non-finite figure")
        return out


def pack_masked(rows: Sequence[Sequence[int]]) -> bytes:
    """Masked values (each < 2^(8·MASK_BYTES)), row-major, little-endian: stage M."""
    return b"".join(v.to_bytes(MASK_BYTES, "little") for row in rows for v in row)


def unpack_masked(data: bytes, columns: int) -> list[list[int]]:
    """Stage M back into rows of ``columns`` values."""
    values = [int.from_bytes(x, "little") for x in split_items(data, Stage.M)]
    if columns <= 0 or len(values) % columns:
        raise ValueError(f"{len(values)} masked values do not fill rows of {columns} column(s)")
    return [values[j : j + columns] for j in range(0, len(values), columns)]


def pack_sums(sums: Sequence[int]) -> list[bytes]:
    """Masked per-column sums as the gateway releases them."""
    return [s.to_bytes(MASK_BYTES, "little") for s in sums]


def unpack_sums(raw: Sequence[bytes]) -> list[int]:
    if any(len(x) != MASK_BYTES for x in raw):
        raise ValueError(f"a masked sum is {MASK_BYTES} bytes")
    return [int.from_bytes(x, "little") for x in raw]


__all__ = ["MAX_A", "HOLDER_SEP", "for_holder", "parse_stage", "BUYER_READS", "GatewayNotes", "DISTINCT", "HOLDER_STAGES", "MAX_NOISE_BYTES", "MAX_PADDING", "MAX_W",
           "NoiseDeclaration", "OPTIONAL_STAGES", "canonical_u", "first_repeat", "MAX_SET", "MAX_TABLE", "POINT_BYTES", "PsiMode", "Role", "SECOND_ROUND",
           "STAGES", "Stage", "StageSpec", "item_bytes", "max_items", "pack_masked", "pack_sums", "split_items",
           "unpack_masked", "unpack_sums"]
