"""The ledger's entries and how anyone checks them: pure, no store, no network.

An entry is a JSON object ``{seq, at, kind, fields, prev}``; its hash is the
SHA-256 of its canonical JSON (sorted keys, no spaces), ``prev`` is the hash
of the entry before (64 zeros for the first), and ``sig`` is the gateway's
Ed25519 signature over the hash. Entries carry names, decisions and digests,
never data or ciphertexts.

The first entry (``genesis``) names the ledger's Ed25519 public key. When the
gateway holds a certificate of the exchange CA, the genesis also carries
that certificate and its ECDSA signature over the Ed25519 key, so the
ledger's key is vouched for by the CA; ``verify`` checks that binding with
the CA certificate. Entries that quote a buyer's job signature or a holder's
receipt are checked against the certificates they carry.

    LedgerError            the export is unreadable or breaks the chain: names the entry
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from datawharf.errors import WharfError
from datawharf.pki import Role, TrustStore, load_certificate, sign, verify_signature
from datawharf.signing import JOB_DOMAIN, RECEIPT_DOMAIN, receipt_message

# The signed bodies' domains, written out here: the ledger is read without the market or grant code.
LISTING_DOMAIN = b"datawharf.v1.ListingBody"
DECISION_DOMAIN = b"datawharf.v1.DecisionBody"
GRANT_DOMAIN = b"datawharf.v1.Grant"

ZERO = "0" * 64
BINDING_DOMAIN = b"datawharf.v1.LedgerKey"

__all__ = ["Entry", "LedgerError", "Report", "bind_key", "check_entries", "check_witness", "entry_hash", "make_entry", "parse_lines",
           "verify"]


class LedgerError(WharfError):
    """The ledger does not verify; ``seq`` names the first entry at fault (-1 if none can be named)."""

    def __init__(self, message: str, seq: int = -1) -> None:
        super().__init__(message)
        self.seq = seq


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float
    kind: str
    fields: dict[str, Any]
    prev: str
    hash: str
    sig: str

    def line(self) -> str:
        return json.dumps({"seq": self.seq, "at": self.at, "kind": self.kind, "fields": self.fields,
                           "prev": self.prev, "hash": self.hash, "sig": self.sig}, sort_keys=True,
                          separators=(",", ":"))


def _canonical(seq: int, at: float, kind: str, fields: dict[str, Any], prev: str) -> bytes:
    return json.dumps({"seq": seq, "at": at, "kind": kind, "fields": fields, "prev": prev}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(seq: int, at: float, kind: str, fields: dict[str, Any], prev: str) -> str:
    return hashlib.sha256(_canonical(seq, at, kind, fields, prev)).hexdigest()


def make_entry(key: Ed25519PrivateKey, seq: int, at: float, kind: str, fields: dict[str, Any], prev: str) -> Entry:
    h = entry_hash(seq, at, kind, fields, prev)
    return Entry(seq, at, kind, fields, prev, h, key.sign(bytes.fromhex(h)).hex())


def bind_key(public: Ed25519PublicKey, cert_pem: bytes, cert_key: Any) -> dict[str, str]:
    """Genesis fields vouching for the ledger key with the gateway's certificate key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"ledger_key": raw.hex(), "gateway_certificate": cert_pem.decode(),
            "binding": sign(cert_key, BINDING_DOMAIN, raw).hex()}


def parse_lines(lines: Iterable[str]) -> Iterator[Entry]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            yield Entry(int(d["seq"]), float(d["at"]), str(d["kind"]), dict(d["fields"]), str(d["prev"]),
                        str(d["hash"]), str(d["sig"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"line {n} is not a ledger entry ({exc})") from None


@dataclass
class Report:
    entries: int = 0
    head: str = ZERO
    jobs: set[str] = field(default_factory=set)
    bound: bool = False  # the ledger key is vouched for by a gateway certificate of the CA
    signatures: int = 0  # buyers' and holders' signatures checked inside entries


def verify(entries: Iterable[Entry], *, trust: TrustStore | None = None) -> Report:
    """Check the chain, every gateway signature, and (with ``trust``) the key binding and every buyer
    and holder signature inside the entries. Raises LedgerError naming the first entry at fault."""
    report = Report()
    key: Ed25519PublicKey | None = None
    prev = ZERO
    for e in entries:
        expected_seq = report.entries
        if e.seq != expected_seq:
            raise LedgerError(f"entry {e.seq} is where entry {expected_seq} should be: an entry was removed, "
                              "added or moved", e.seq)
        if e.prev != prev:
            raise LedgerError(f"entry {e.seq} does not follow entry {e.seq - 1}: the chain is broken there", e.seq)
        if entry_hash(e.seq, e.at, e.kind, e.fields, e.prev) != e.hash:
            raise LedgerError(f"entry {e.seq} was altered: its content does not match its hash", e.seq)
        if e.seq == 0:
            if e.kind != "genesis":
                raise LedgerError("entry 0 is not the ledger's genesis", 0)
            try:
                key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(e.fields["ledger_key"]))
            except (KeyError, ValueError) as exc:
                raise LedgerError(f"the genesis names no usable ledger key ({exc})", 0) from None
            if trust is not None and e.fields.get("gateway_certificate"):
                _check_binding(e, trust)
                report.bound = True
        assert key is not None
        try:
            key.verify(bytes.fromhex(e.sig), bytes.fromhex(e.hash))
        except (InvalidSignature, ValueError):
            raise LedgerError(f"entry {e.seq}: the gateway's signature does not match", e.seq) from None
        if trust is not None:
            report.signatures += _check_inner(e, trust)
        if e.fields.get("job_id"):
            report.jobs.add(str(e.fields["job_id"]))
        prev = e.hash
        report.entries += 1
    if report.entries == 0:
        raise LedgerError("the ledger is empty")
    report.head = prev
    return report


def check_entries(genesis: Entry, entries: Iterable[Entry]) -> int:
    """Each entry's hash and gateway signature, under the key ``genesis`` names (a buyer's check of
    the entries about its job, without the rest of the chain). Raises LedgerError naming the entry."""
    if genesis.seq != 0 or genesis.kind != "genesis":
        raise LedgerError("the first entry is not the ledger's genesis", genesis.seq)
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(genesis.fields["ledger_key"]))
    n = 0
    for e in [genesis, *entries]:
        if entry_hash(e.seq, e.at, e.kind, e.fields, e.prev) != e.hash:
            raise LedgerError(f"entry {e.seq} was altered: its content does not match its hash", e.seq)
        try:
            key.verify(bytes.fromhex(e.sig), bytes.fromhex(e.hash))
        except (InvalidSignature, ValueError):
            raise LedgerError(f"entry {e.seq}: the gateway's signature does not match", e.seq) from None
        n += 1
    return n


def check_witness(entries: list[Entry], receipts: Iterable[dict[str, Any]], *, holder: str = "") -> int:
    """A holder's receipts against the ledger: every head it was shown is in the chain as stated,
    and each of its contributions and refusals is recorded. Returns how many receipts were checked;
    raises LedgerError naming the receipt the ledger does not agree with."""
    by_task: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        if e.fields.get("task_id"):
            by_task.setdefault((str(e.fields["task_id"]), e.kind), []).append(e)
    checked = 0
    for n, r in enumerate(receipts, 1):
        kind, task = str(r.get("kind", "")), str(r.get("task_id", ""))
        where = f"{holder + ' ' if holder else ''}receipt {n} ({kind} of {task or 'no task'})"
        head = r.get("head")
        if head:
            seq = int(head["seq"])
            seen = entries[seq] if 0 <= seq < len(entries) else None
            if seen is None or seen.hash != head["hash"] or seen.sig != head["signature"]:
                raise LedgerError(f"{where}: the gateway stated ledger head {seq} {str(head['hash'])[:16]}…, "
                                  "which the ledger does not hold: history was rewritten or cut", seq)
        if kind == "contributed":
            found = by_task.get((task, "contribution"), [])
            digest = r.get("content_digest")
            if not found or (digest and all(e.fields.get("content_digest", digest) != digest for e in found)):
                raise LedgerError(f"{where}: the ledger has no matching contribution")
        if kind in ("refused", "failed") and not by_task.get((task, kind)):
            raise LedgerError(f"{where}: the ledger does not record it")
        checked += 1
    return checked


def _check_binding(e: Entry, trust: TrustStore) -> None:
    try:
        cert = load_certificate(str(e.fields["gateway_certificate"]).encode())
        # Issued by the CA in the gateway role; its lifetime is judged at the time of the genesis.
        trust.verify(cert, roles=(Role.GATEWAY,), at=e.at, what="the ledger's gateway certificate")
        verify_signature(cert, BINDING_DOMAIN, bytes.fromhex(e.fields["ledger_key"]),
                         bytes.fromhex(e.fields["binding"]), what="the ledger key's binding")
    except (WharfError, KeyError, ValueError) as exc:
        raise LedgerError(f"entry 0: the ledger key is not vouched for by a gateway certificate of this CA "
                          f"({getattr(exc, 'message', exc)})", 0) from None


def _check_inner(e: Entry, trust: TrustStore) -> int:
    """Buyers' job signatures and holders' receipts quoted in ``e``; how many were checked."""
    f = e.fields
    checked = 0
    try:
        if "buyer_signature" in f:
            cert = load_certificate(str(f["buyer_certificate"]).encode())
            who = trust.verify(cert, roles=(Role.BUYER,), at=e.at, what="the buyer's certificate")
            if who.name != f.get("buyer"):
                raise LedgerError(f"entry {e.seq}: signed by {who.name}, recorded as {f.get('buyer')}", e.seq)
            verify_signature(cert, JOB_DOMAIN, bytes.fromhex(f["body_digest"]), bytes.fromhex(f["buyer_signature"]),
                             what="the buyer's job signature")
            checked += 1
        if "receipt_signature" in f:
            cert = load_certificate(str(f["holder_certificate"]).encode())
            who = trust.verify(cert, roles=(Role.PARTY,), at=e.at, what="the holder's certificate")
            if who.name != f.get("party"):
                raise LedgerError(f"entry {e.seq}: receipt of {who.name}, recorded as {f.get('party')}", e.seq)
            message = receipt_message(bytes.fromhex(f["body_digest"]), who.name, bytes.fromhex(f["content_digest"]),
                                      bytes.fromhex(str(f.get("noise_digest", ""))))
            verify_signature(cert, RECEIPT_DOMAIN, message, bytes.fromhex(f["receipt_signature"]),
                             what="the holder's receipt")
            checked += 1
        # The market's and the grants' signatures, quoted in full so the ledger alone can check them.
        for sig_key, cert_key, name_key, roles, domain, message in (
            ("holder_signature", "holder_certificate", "party", (Role.PARTY,), LISTING_DOMAIN,
             lambda: bytes.fromhex(f["listing_digest"])),
            ("reviewer_signature", "reviewer_certificate", "reviewer", (Role.OPERATOR, Role.AUTHORITY),
             DECISION_DOMAIN, lambda: bytes.fromhex(f["decision_digest"])),
            ("grant_signature", "holder_certificate", "party", (Role.PARTY,), GRANT_DOMAIN,
             lambda: str(f["terms"]).encode()),
        ):
            if sig_key not in f:
                continue
            cert = load_certificate(str(f[cert_key]).encode())
            who = trust.verify(cert, roles=roles, at=e.at, what=f"the certificate behind {sig_key}")
            if who.name != f.get(name_key):
                raise LedgerError(f"entry {e.seq}: {sig_key} by {who.name}, recorded as {f.get(name_key)}", e.seq)
            verify_signature(cert, domain, message(), bytes.fromhex(f[sig_key]), what=f"the {e.kind} signature")
            checked += 1
    except LedgerError:
        raise
    except (WharfError, KeyError, ValueError) as exc:
        raise LedgerError(f"entry {e.seq}: {getattr(exc, 'message', exc)}", e.seq) from None
    return checked
