"""Recognition between exchanges: approved listings as a bundle signed by an operator.

    {"format": "datawharf.listing-bundle/1",
     "payload": base64(JSON: exported_at, exporter, listings[...]),
     "chain": [the exporting operator's certificate, its CA's certificate],
     "signature": base64(ECDSA over SHA-256 of the payload, domain datawharf.v1.ListingBundle)}

Each listing carries the holder's signed submission and every reviewer's
signed decision. The importing operator names the other exchange's CA
(``--from-ca``); ``open_bundle`` checks the exporter's certificate and the
bundle's signature, then every holder's and reviewer's signature and that
each listing was approved as its home exchange requires (an operator's
approval, and an authority's for public data). One failure rejects the
whole bundle: nothing is imported from a bundle that does not hold.
Certificates inside are checked at the time they signed (a holder may have
renewed since); the other exchange's revocations are not known here.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from datawharf.errors import InvalidArgument
from datawharf.market import BUNDLE_DOMAIN, Action, Classification, check_terms, open_decision, open_listing
from datawharf.pki import CertificateError, Credentials, Role, SignatureError, TrustStore, digest, load_certificate, \
    sign, verify_signature
from datawharf.v1 import market_pb2

FORMAT = "datawharf.listing-bundle/1"
MAX_BUNDLE_BYTES = 16 << 20


@dataclass(frozen=True)
class ForeignListing:
    listing_id: str
    holder: str
    dataset: str
    entry: dict[str, Any]  # as in the bundle: submission and decisions, base64


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _signed_json(s: market_pb2.Signed) -> dict[str, str]:
    return {"body": _b64(s.body), "signature": _b64(s.signature), "certificate": s.certificate.decode()}


def signed_from(d: Any) -> market_pb2.Signed:
    try:
        return market_pb2.Signed(body=base64.b64decode(d["body"], validate=True),
                                 signature=base64.b64decode(d["signature"], validate=True),
                                 certificate=str(d["certificate"]).encode())
    except (KeyError, TypeError, binascii.Error):
        raise InvalidArgument("a listing in the bundle is malformed (body, signature, certificate)") from None


def exchange_name(trust: TrustStore) -> str:
    """How an exchange is named here: its CA's common name and the start of its certificate's
    fingerprint (two exchanges may well call their CAs alike)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    names = trust.ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(names[0].value) if names else trust.ca.subject.rfc4514_string()
    return f"{cn} [{trust.ca.fingerprint(hashes.SHA256()).hex()[:16]}]"


def make_bundle(creds: Credentials, listings: list[market_pb2.MarketListing], *, now: float | None = None) -> bytes:
    """The signed bundle of ``listings`` (approved ones, from this exchange), as JSON bytes."""
    payload = json.dumps({
        "exported_at": time.time() if now is None else now,
        "exporter": creds.identity.name,
        "listings": [{"listing_id": x.listing_id, "holder": x.holder, "dataset": x.dataset, "version": x.version,
                      "submission": _signed_json(x.submission),
                      "decisions": [_signed_json(d.signed) for d in x.decisions]} for x in listings],
    }, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps({"format": FORMAT, "payload": _b64(payload),
                       "chain": [creds.cert_pem.decode(), creds.ca_pem.decode()],
                       "signature": _b64(sign(creds.key, BUNDLE_DOMAIN, digest(payload)))}, indent=1).encode()


def open_bundle(raw: bytes, ca_pem: bytes) -> tuple[str, list[ForeignListing]]:
    """(the home exchange's name, its listings) if every signature in ``raw`` holds under ``ca_pem``;
    else CertificateError, SignatureError or InvalidArgument, and nothing is returned."""
    if len(raw) > MAX_BUNDLE_BYTES:
        raise InvalidArgument(f"the bundle is {len(raw)} bytes, more than the {MAX_BUNDLE_BYTES} allowed")
    try:
        outer = json.loads(raw)
        if outer.get("format") != FORMAT:
            raise InvalidArgument(f"not a listing bundle ({FORMAT}); make one with `wharf listing export --signed`")
        payload = base64.b64decode(outer["payload"], validate=True)
        signature = base64.b64decode(outer["signature"], validate=True)
        exporter_pem = str(outer["chain"][0]).encode()
        inner = json.loads(payload)
        entries = list(inner["listings"])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error):
        raise InvalidArgument("the bundle is not valid JSON of a listing bundle; nothing was imported") from None
    try:
        trust = TrustStore(ca_pem)
    except CertificateError:
        raise InvalidArgument("--from-ca is not a PEM CA certificate; pass the other exchange's ca.pem") from None
    home = exchange_name(trust)
    exporter = load_certificate(exporter_pem)
    named = outer["chain"][1] if len(outer["chain"]) > 1 else ""
    if isinstance(named, str) and named.strip() and named.strip().encode() != ca_pem.strip():
        # The chain's CA is the exporter's claim; only the CA the operator named is trusted. Saying
        # which CA the bundle names helps an operator who picked the wrong file.
        try:
            claimed = exchange_name(TrustStore(named.encode()))
        except (CertificateError, ValueError):
            claimed = "an unreadable certificate"
        raise SignatureError(f"the bundle names its CA as {claimed}, not the CA given with --from-ca ({home}); "
                             "nothing was imported")
    try:
        trust.verify(exporter, roles=(Role.OPERATOR,), what="the bundle's signer")
    except CertificateError as exc:
        raise SignatureError(f"the bundle is not signed under the CA given with --from-ca ({home}): "
                               f"{exc.message}; nothing was imported") from None
    verify_signature(exporter, BUNDLE_DOMAIN, digest(payload), signature, what="the bundle")
    try:
        return home, [_entry(e, trust) for e in entries]
    except DecodeError:
        raise InvalidArgument("a listing or decision in the bundle does not parse; nothing was imported") from None


def _entry(e: Any, trust: TrustStore) -> ForeignListing:
    if not isinstance(e, dict):
        raise InvalidArgument("a listing in the bundle is malformed")
    submission = signed_from(e.get("submission"))
    probe = market_pb2.ListingBody.FromString(submission.body) if submission.body else market_pb2.ListingBody()
    holder, body = open_listing(submission, trust, at=probe.signed_at or None)
    terms = check_terms(body)
    approvals: set[Role] = set()
    for d in e.get("decisions") or []:
        signed = signed_from(d)
        probe_d = market_pb2.DecisionBody.FromString(signed.body)
        reviewer, decision = open_decision(signed, trust, at=probe_d.signed_at or None)
        if decision.listing_id != e.get("listing_id") or decision.listing_digest != digest(submission.body):
            raise SignatureError(f"a decision in the bundle is about another listing than {e.get('listing_id')}")
        if decision.action == Action.APPROVE:
            approvals.add(reviewer.role)
        elif decision.action == Action.DELIST:
            approvals.clear()
    needed = {Role.OPERATOR} | ({Role.AUTHORITY} if terms.classification == Classification.PUBLIC else set())
    if not needed <= approvals:
        raise SignatureError(f"listing {e.get('listing_id')} of {holder.name} is not approved by its home "
                             f"exchange (needs {', '.join(sorted(r.value for r in needed))} approval)")
    return ForeignListing(str(e["listing_id"]), holder.name, body.dataset.name, e)


__all__ = ["FORMAT", "ForeignListing", "make_bundle", "open_bundle", "CertificateError"]
