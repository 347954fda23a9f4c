"""Finding leaks in recorded wire traffic, without crying wolf or passing by luck.

A leak takes a definite encoding on the wire: the decimal text of a number
in a text field, a varint or fixed-width integer field, or bytes hidden in a
bytes field. Searching the raw bytes of every message for a short decimal
string finds it by chance in ciphertexts (a 3-byte pattern occurs about
``len / 2**24`` times in random bytes: about once per 16 MiB), so here every
recorded message is decoded with its own type and each part is checked the
way a leak there would look:

- framing (tags, lengths): carries no data;
- integer and floating-point fields: compared exactly with the figure;
- text (string fields, and bytes fields that decode as printable UTF-8):
  split into numeric tokens compared exactly, and searched for non-numeric
  values (IDs, names);
- opaque bytes (ciphertexts, keys, curve points): searched for a raw
  encoding only when the chance that uniformly random bytes of that length
  contain it is negligible (``chance_of_match``); shorter encodings are
  skipped, and say so, rather than searched with a verdict left to luck.

Chunked payloads (a holder's EncryptedFigures, the buyer's JobResult) are
reassembled and decoded in place of their chunks, so their fields get the
same exact checks. A decoded message must carry no field unknown to the
schema, or the partition above would not cover every byte.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from datawharf.v1 import buyer_pb2, common_pb2, grants_pb2, market_pb2, party_pb2

# --------------------------------------------------------------------- fast multi-pattern search


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
    """The patterns (each at least 1 byte) that occur in ``blob``.

    One ``in`` per pattern is quadratic over thousands of patterns and
    megabytes of traffic; here every window of the blob is packed into a
    uint64 once, so each pattern length costs one vectorised membership
    test, and candidates are confirmed with ``in``.
    """
    by_len: dict[int, list[bytes]] = defaultdict(list)
    for p in set(patterns):
        if p:
            by_len[min(len(p), 8)].append(p)
    found: set[bytes] = set()
    if not blob:
        return found
    for k, group in by_len.items():
        windows = _windows(blob, k)
        keys = np.array([_key(p) for p in group], dtype=np.uint64)
        at = np.minimum(np.searchsorted(windows, keys), len(windows) - 1)
        hits = windows[at] == keys
        found.update(p for p, hit in zip(group, hits) if hit and p in blob)
    return found


# --------------------------------------------------------------------- chance and encodings


def significant_bytes(pattern: bytes) -> int:
    """The bytes of ``pattern`` left once zero and sign padding (0x00, 0xff) is
    taken off both ends. Opaque fields are not all random: serialized keys
    and contexts carry headers full of small integers and zero runs, so 823
    as a little-endian int64 (two significant bytes, six zero bytes) is about
    as likely there as its two significant bytes alone. Only these bytes are
    given the odds of random bytes."""
    return len(pattern.strip(b"\x00\xff"))


def chance_of_match(haystack: int, pattern: int) -> float:
    """Bound on the probability that ``haystack`` uniformly random bytes contain
    a given ``pattern``-byte string: one chance of 256**-pattern at each of the
    ``haystack - pattern + 1`` offsets (union bound)."""
    if pattern <= 0:
        return 1.0
    return max(0, haystack - pattern + 1) * 256.0**-pattern


def decimal_texts(value: int, places: int = 0) -> set[str]:
    """How a person or a format string would write ``value`` (a fixed-point
    integer with ``places`` decimals): plain and with thousands separators,
    and for places > 0 also the integer itself (the scaled figure). Signs are
    dropped: a magnitude on the wire is the leak."""
    n = abs(value)
    out = {str(n), f"{n:,}"}
    if places:
        d = Decimal(n).scaleb(-places)
        out |= {f"{d:.{places}f}", f"{d:,.{places}f}"}
    return out


def fixed_width(value: int) -> dict[str, bytes]:
    """``value`` as 4- and 8-byte two's complement, little- and big-endian,
    for every width it fits in (signed or unsigned)."""
    out = {}
    for width, name in ((4, "32"), (8, "64")):
        bits = 8 * width
        if -(1 << (bits - 1)) <= value < (1 << bits):
            u = value % (1 << bits)
            out[f"int{name} little-endian"] = u.to_bytes(width, "little")
            out[f"int{name} big-endian"] = u.to_bytes(width, "big")
    return out


def float64(value: float) -> dict[str, bytes]:
    return {"float64 little-endian": struct.pack("<d", value), "float64 big-endian": struct.pack(">d", value)}


# A number as it stands in text: digits with optional "." or "," groups, not
# glued to letters or digits (so "800" is not found in "job-a800f" or "1800"
# or "0.800"). Hex IDs never yield a token unless all their characters are digits.
_NUMBER = re.compile(r"(?<![0-9A-Za-z_.])\d+(?:[.,]\d+)*(?![0-9A-Za-z_])")


def numbers_in(text: str) -> set[str]:
    return set(_NUMBER.findall(text))


def as_text(data: bytes) -> str | None:
    """``data`` as text if it is printable UTF-8 (ciphertexts, keys and points are not)."""
    if not data:
        return None
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return s if all(c.isprintable() or c in "\t\n\r" for c in s) else None


# --------------------------------------------------------------------- walking decoded messages

_INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_ENUM,
}
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}


def _repeated(fd: FieldDescriptor) -> bool:
    # protobuf 7 drops FieldDescriptor.label; older releases lack is_repeated
    flag = getattr(fd, "is_repeated", None)
    return bool(flag) if flag is not None else fd.label == FieldDescriptor.LABEL_REPEATED


def leaves(message: Message, path: str = "") -> Iterator[tuple[str, FieldDescriptor, object]]:
    """Every set scalar in ``message``, recursively: (path, field, value).

    Paths name the message type and field names, e.g.
    ``datawharf.v1.Job.tasks.reason``. Unset proto3 scalars (zero, empty) are
    not on the wire and are not yielded.
    """
    path = path or message.DESCRIPTOR.full_name
    for fd, value in message.ListFields():
        here = f"{path}.{fd.name}"
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            key_fd = fd.message_type.fields_by_name["key"]
            for k, v in value.items():
                yield f"{here}[key]", key_fd, k
                if value_fd.message_type is not None:
                    yield from leaves(v, f"{here}[{k!r}]")
                else:
                    yield f"{here}[{k!r}]", value_fd, v
            continue
        for v in (value if _repeated(fd) else [value]):
            if fd.type == FieldDescriptor.TYPE_MESSAGE or fd.type == FieldDescriptor.TYPE_GROUP:
                yield from leaves(v, here)
            else:
                yield here, fd, v


def unknown_fields(message: Message, path: str = "") -> list[str]:
    """Paths of (sub)messages holding fields the schema does not know."""
    path = path or message.DESCRIPTOR.full_name
    out = [path] if len(UnknownFieldSet(message)) else []
    for fd, value in message.ListFields():
        if fd.type != FieldDescriptor.TYPE_MESSAGE or fd.message_type.GetOptions().map_entry:
            continue
        for v in (value if _repeated(fd) else [value]):
            out += unknown_fields(v, f"{path}.{fd.name}")
    return out


@dataclass
class Traffic:
    """Every field value of some decoded messages, sorted by how a leak would show in it."""

    integers: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    floats: dict[float, set[str]] = field(default_factory=lambda: defaultdict(set))
    numbers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # numeric tokens of text
    text: list[tuple[str, str]] = field(default_factory=list)
    opaque: bytes = b""
    unknown: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, messages: Iterable[Message]) -> "Traffic":
        t = cls()
        opaque: list[bytes] = []
        for m in messages:
            t.unknown += unknown_fields(m)
            for path, fd, v in leaves(m):
                if fd.type in _INTEGER_TYPES:
                    t.integers[int(v)].add(path)  # type: ignore[call-overload]
                elif fd.type in _FLOAT_TYPES:
                    t.floats[float(v)].add(path)  # type: ignore[arg-type]
                elif fd.type == FieldDescriptor.TYPE_STRING:
                    t._add_text(path, v)  # type: ignore[arg-type]
                elif fd.type == FieldDescriptor.TYPE_BYTES:
                    s = as_text(v)  # type: ignore[arg-type]
                    if s is None:
                        opaque.append(v)  # type: ignore[arg-type]
                    else:
                        t._add_text(path, s)
        # A match spanning two joined fields is as much a chance as any other,
        # and chance_of_match counts every offset of the joined length.
        t.opaque = b"\x00".join(opaque)
        return t

    def _add_text(self, path: str, s: str) -> None:
        self.text.append((path, s))
        for n in numbers_in(s):
            self.numbers[n].add(path)

    def chance(self, pattern: bytes) -> float:
        """Bound on a chance match of ``pattern`` in the opaque bytes."""
        return chance_of_match(len(self.opaque), significant_bytes(pattern))


@dataclass
class Report:
    found: list[str] = field(default_factory=list)    # "what (value) as how, in where", for people
    skipped: list[str] = field(default_factory=list)  # raw encodings too short to search honestly
    bound: float = 0.0  # summed chance that the raw searches made would match random bytes


def _raw_search(traffic: Traffic, wanted: list[tuple[str, bytes]], budget: float, report: Report) -> None:
    """Search the opaque bytes for (description, pattern) pairs, the least likely
    to match by chance first, for as long as the summed chance stays within
    ``budget``; the rest are reported as skipped. Patterns equally likely to
    match are taken or skipped together, so the rule is "every encoding with
    at least so many significant bytes"."""
    by_chance: dict[float, list[tuple[str, bytes]]] = defaultdict(list)
    for what, pattern in wanted:
        by_chance[traffic.chance(pattern)].append((what, pattern))
    searched: list[tuple[str, bytes]] = []
    for c in sorted(by_chance):
        group = by_chance[c]
        if report.bound + c * len(group) > budget:
            for later in sorted(x for x in by_chance if x >= c):
                report.skipped += [f"{what} ({significant_bytes(p)} significant bytes: chance match {later:.1e})"
                                   for what, p in by_chance[later]]
            break
        searched += group
        report.bound += c * len(group)
    hits = find_any(traffic.opaque, [p for _, p in searched])
    report.found += [f"{what}, in opaque bytes" for what, p in searched if p in hits]


def find_figures(traffic: Traffic, figures: Mapping[str, tuple[int, int]], *, budget: float = 1e-6) -> Report:
    """Where any figure (name → (fixed-point integer, decimal places)) shows.

    Integer and float fields are compared exactly (a varint is found whatever
    its field); numeric tokens of text against every decimal text of the
    figure; the opaque bytes are searched for the decimal texts and the
    fixed-width encodings whose summed chance match stays within ``budget``.
    """
    report = Report()
    wanted: list[tuple[str, bytes]] = []
    for name, (value, places) in figures.items():
        label = f"{name} ({value})"
        for path in sorted(traffic.integers.get(value, ())):
            report.found.append(f"{label} as an integer field, in {path}")
        as_float = {float(value), float(Decimal(value).scaleb(-places))}
        for path in sorted({p for x in as_float for p in traffic.floats.get(x, ())}):
            report.found.append(f"{label} as a floating-point field, in {path}")
        for text in sorted(decimal_texts(value, places)):
            for path in sorted(traffic.numbers.get(text, ())):
                report.found.append(f"{label} as text {text!r}, in {path}")
            wanted.append((f"{label} as text {text!r}", text.encode()))
        wanted += [(f"{label} as {how}", b) for how, b in fixed_width(value).items()]
        wanted += [(f"{label} as {how} {x!r}", b) for x in sorted(as_float) for how, b in float64(x).items()]
    _raw_search(traffic, wanted, budget, report)
    return report


def find_values(traffic: Traffic, values: Iterable[str], *, budget: float = 1e-6) -> Report:
    """Where any raw cell value (its text as in the source) shows.

    Numeric values are compared with the numeric tokens of text, others
    searched in it; the opaque bytes are searched for the text and, for
    numbers, the float64 encodings, within ``budget`` as in find_figures.
    """
    report = Report()
    wanted: list[tuple[str, bytes]] = []
    words = []
    for v in sorted(set(values)):
        number = _NUMBER.fullmatch(v.lstrip("-"))
        if number:
            for path in sorted(traffic.numbers.get(v.lstrip("-"), ())):
                report.found.append(f"{v!r} as text, in {path}")
            for path in sorted(traffic.floats.get(float(v), ())):
                report.found.append(f"{v!r} as a floating-point field, in {path}")
            if "," not in v:
                wanted += [(f"{v!r} as {how}", b) for how, b in float64(float(v)).items()]
        else:
            words.append(v)
        wanted.append((f"{v!r} as text", v.encode()))
    corpus = "\n".join(s for _, s in traffic.text).encode()
    for w in sorted(find_any(corpus, [w.encode() for w in words])):
        paths = sorted({p for p, s in traffic.text if w.decode() in s})
        report.found.append(f"{w.decode()!r} as text, in {', '.join(paths)}")
    _raw_search(traffic, wanted, budget, report)
    return report


# --------------------------------------------------------------------- the gateway's wire log

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for mod in (buyer_pb2, common_pb2, party_pb2, grants_pb2, market_pb2)
    for cls in vars(mod).values()
    if isinstance(cls, type) and issubclass(cls, Message)
}


@dataclass(frozen=True)
class WireRecord:
    """One message as ``wharf gateway serve --wire-log`` recorded it."""

    method: str
    caller: str
    direction: str  # "in" (to the gateway) or "out"
    type: str
    raw: bytes
    msg: Message


@dataclass(frozen=True)
class Payload:
    """A chunked payload, reassembled and decoded with the type its method carries."""

    method: str
    caller: str
    direction: str
    message: Message


def read_wire_log(path: Path) -> list[WireRecord]:
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        raw = base64.b64decode(r["bytes"])
        out.append(WireRecord(r["method"], r["caller"], r["direction"], r["type"], raw,
                              MESSAGE_TYPES[r["type"]].FromString(raw)))
    return out


def _chunk_of(r: WireRecord) -> tuple[tuple[str, ...], common_pb2.Chunk, type[Message]] | None:
    """The chunk a record carries with its stream key and payload type, if it carries one."""
    if r.method.endswith("/FetchResult") and r.direction == "out":
        return ("result", r.caller), r.msg, buyer_pb2.JobResult  # type: ignore[return-value]
    if (r.method.endswith("/Connect") and r.direction == "in"
            and r.msg.WhichOneof("body") == "contribution"):  # type: ignore[attr-defined]
        c = r.msg.contribution  # type: ignore[attr-defined]
        return ("contribution", r.caller, c.task_id), c.chunk, common_pb2.EncryptedFigures
    return None


def _nested(m: Message) -> list[Message]:
    """Messages carried as bytes inside ``m`` (a signed job's body, a holder's receipt), decoded;
    their bytes are cleared in ``m`` so each field is searched once, in its decoded form."""
    out: list[Message] = []
    for field, value in m.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        for sub in (value if field.is_repeated else [value]):
            if isinstance(sub, common_pb2.SignedJob) and sub.body:
                out.append(common_pb2.JobBody.FromString(sub.body))
                sub.body = b""
            out.extend(_nested(sub))
    if isinstance(m, (party_pb2.ContributionChunk, party_pb2.PsiUpload)) and m.receipt:
        out.append(common_pb2.ContributionReceipt.FromString(m.receipt))
        m.receipt = b""
    return out


def decoded(records: Iterable[WireRecord]) -> tuple[list[Message], list[Payload]]:
    """Every record's message and every chunked payload, decoded.

    A chunk whose payload reassembles and decodes has its bytes cleared in the
    returned copy (its content is in the payload's fields instead); a chunk
    that does not stays as it was, its bytes opaque.
    """
    messages: list[Message] = []
    payloads: list[Payload] = []
    pending: dict[tuple[str, ...], list[tuple[Message, common_pb2.Chunk]]] = {}
    for r in records:
        m = type(r.msg)()
        m.CopyFrom(r.msg)
        messages.append(m)
        messages.extend(_nested(m))
        found = _chunk_of(WireRecord(r.method, r.caller, r.direction, r.type, r.raw, m))
        if found is None:
            continue
        key, chunk, kind = found
        parts = pending.setdefault(key, [])
        if chunk.seq != len(parts):  # out of order: leave these bytes opaque
            pending.pop(key)
            continue
        parts.append((m, chunk))
        if not chunk.last:
            continue
        pending.pop(key)
        try:
            payload = kind.FromString(b"".join(c.data for _, c in parts))
        except DecodeError:
            continue
        payloads.append(Payload(r.method, r.caller, r.direction, payload))
        for _, c in parts:
            c.data = b""
    return messages, payloads


def wire_traffic(records: Iterable[WireRecord]) -> tuple[Traffic, list[Payload]]:
    messages, payloads = decoded(records)
    return Traffic.of([*messages, *(p.message for p in payloads)]), payloads
