"""Signed jobs and signed receipts: what the gateway relays but cannot forge.

The buyer signs a ``JobBody`` (its nonce, name, the holders asked,
min_parties and the whole spec with every public key or box key in it).
The gateway passes the exact bytes to each holder, who verifies the
signature and the buyer's certificate and computes on the body's spec,
never on the gateway's copy: a gateway that swaps a key is refused.

Each holder signs a receipt over (SHA-256 of the job body, its name, the
digest of what it sent). The buyer checks every receipt against the
holder's certificate, so a gateway cannot drop a holder and name it as a
contributor, nor count one organisation twice.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from google.protobuf.message import DecodeError

from datawharf.errors import InvalidArgument, ResourceExhausted
from datawharf.pki import (
    Credentials,
    Identity,
    Role,
    SignatureError,
    TrustStore,
    digest,
    load_certificate,
    sign,
    verify_signature,
)
from datawharf.v1 import common_pb2

JOB_DOMAIN = b"datawharf.v1.JobBody"
RECEIPT_DOMAIN = b"datawharf.v1.Contribution"
# The body travels to each holder in one message beside a CRL of at most MAX_RELAYED_CRL_BYTES;
# together they must stay under datawharf.grpc_options.MAX_MESSAGE_BYTES (~2 MiB). A TenSEAL
# public context is ~300 KiB and a Paillier-Blum proof ~80 KiB.
MAX_BODY_BYTES = 1536 << 10
MAX_RELAYED_CRL_BYTES = 256 << 10

__all__ = [
    "JOB_DOMAIN", "RECEIPT_DOMAIN", "OpenedJob", "check_receipts", "open_job", "sign_job", "sign_receipt",
    "check_stages", "items_digest", "stage_digests", "stages_digest", "verify_receipt",
]


@dataclass(frozen=True)
class OpenedJob:
    """A verified signed job: who signed it, and what they asked."""

    buyer: Identity
    body: common_pb2.JobBody
    body_digest: bytes  # SHA-256 of the signed body bytes: receipts refer to the job by it


def sign_job(creds: Credentials, body: common_pb2.JobBody) -> common_pb2.SignedJob:
    raw = body.SerializeToString(deterministic=True)
    # Over the body's digest, so the ledger can carry the signature with the digest alone and anyone
    # can check it without the body (which holds public keys hundreds of KiB long).
    return common_pb2.SignedJob(body=raw, signature=sign(creds.key, JOB_DOMAIN, digest(raw)),
                                certificate=creds.cert_pem)


def new_body(creds: Credentials, nonce: str, *, parties: Iterable[str], min_parties: int,
             aggregate: common_pb2.AggregateSpec | None = None,
             psi: common_pb2.PsiSpec | None = None, set_digest: bytes = b"") -> common_pb2.JobBody:
    body = common_pb2.JobBody(nonce=nonce, buyer=creds.identity.name, parties=list(parties),
                              min_parties=min_parties, signed_at=time.time(), buyer_set_digest=set_digest)
    if aggregate is not None:
        body.aggregate.CopyFrom(aggregate)
    if psi is not None:
        body.psi.CopyFrom(psi)
    return body


def open_job(signed: common_pb2.SignedJob | bytes, trust: TrustStore) -> OpenedJob:
    """Verify the buyer's certificate and signature; the body as signed. Raises on any mismatch."""
    if not isinstance(signed, bytes):
        return _open(signed, trust)
    if len(signed) > MAX_BODY_BYTES + (32 << 10):
        raise ResourceExhausted(f"signed job of {len(signed)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        message = common_pb2.SignedJob.FromString(signed)
    except DecodeError:
        raise InvalidArgument("the signed job is not a readable SignedJob") from None
    return _open(message, trust)


def _open(signed: common_pb2.SignedJob, trust: TrustStore) -> OpenedJob:
    if not signed.body or not signed.signature or not signed.certificate:
        raise SignatureError("the job is not signed by its buyer (body, signature or certificate missing)")
    if len(signed.body) > MAX_BODY_BYTES:
        raise ResourceExhausted(f"the signed job is {len(signed.body)} bytes; at most {MAX_BODY_BYTES} are "
                                "allowed (a smaller filter, or a smaller key)")
    cert = load_certificate(signed.certificate)
    buyer = trust.verify(cert, roles=(Role.BUYER,), what="the buyer's certificate")
    verify_signature(cert, JOB_DOMAIN, digest(signed.body), signed.signature, what=f"job signed by {buyer.name}")
    try:
        body = common_pb2.JobBody.FromString(signed.body)
    except DecodeError:
        raise InvalidArgument(f"the job {buyer.name} signed is not a readable JobBody") from None
    if body.buyer != buyer.name:
        raise SignatureError(f"the job names buyer {body.buyer!r} but is signed by {buyer.name!r}")
    if body.WhichOneof("spec") is None:
        raise InvalidArgument("the signed job carries no spec")
    return OpenedJob(buyer, body, digest(signed.body))


def noise_digest(noise: common_pb2.NoiseDeclaration) -> bytes:
    return hashlib.sha256(noise.SerializeToString(deterministic=True)).digest()


def receipt_message(body_digest: bytes, party: str, content_digest: bytes, noise: bytes = b"") -> bytes:
    """What a holder's receipt signs; ``noise`` is the ``noise_digest`` of its noise declaration, if any."""
    msg = body_digest + party.encode() + b"\0" + content_digest
    if noise:
        # The holder's statement of the noise it added travels under the same signature.
        msg += b"\0noise" + noise
    return msg


def _receipt_message(body_digest: bytes, party: str, content_digest: bytes,
                     noise: common_pb2.NoiseDeclaration | None = None) -> bytes:
    return receipt_message(body_digest, party, content_digest, noise_digest(noise) if noise is not None else b"")


def items_digest(items: Iterable[bytes]) -> bytes:
    """SHA-256 of a set's items concatenated in order: what a signed PSI job says the buyer's
    stage A is, and what the holder finds it to be once reassembled."""
    h = hashlib.sha256()
    for item in items:
        h.update(item)
    return h.digest()


def stage_digests(stages: Mapping[Any, bytes]) -> dict[str, bytes]:
    """Each stage's SHA-256 (of its items concatenated), keyed by the stage's letter."""
    return {str(stage): digest(data) for stage, data in stages.items()}


def stages_digest(digests: Mapping[str, bytes]) -> bytes:
    """The content digest of a holder's PSI answer: each stage's letter, a 0x00 and its digest, in order."""
    h = hashlib.sha256()
    for stage, d in digests.items():
        h.update(str(stage).encode() + b"\0" + d)
    return h.digest()


def sign_receipt(creds: Credentials, body_digest: bytes, content_digest: bytes, *,
                 stages: Mapping[str, bytes] | None = None,
                 noise: common_pb2.NoiseDeclaration | None = None) -> common_pb2.ContributionReceipt:
    """The holder's signature over what it sent (``content_digest``) for the job whose body hashes to
    ``body_digest``. For PSI pass ``stages`` (stage -> digest) and their ``stages_digest`` as the content;
    ``noise`` states the differential-privacy noise the holder added."""
    party = creds.identity.name
    receipt = common_pb2.ContributionReceipt(
        party=party, certificate=creds.cert_pem, content_digest=content_digest,
        stages=[common_pb2.StageDigest(stage=s, digest=d) for s, d in (stages or {}).items()],
        signature=sign(creds.key, RECEIPT_DOMAIN, _receipt_message(body_digest, party, content_digest, noise)))
    if noise is not None:
        receipt.noise.CopyFrom(noise)
    return receipt


def check_stages(receipt: common_pb2.ContributionReceipt, seen: Mapping[str, bytes]) -> None:
    """Every stage in ``seen`` (stage -> digest of what was received) is one the receipt's holder
    signed for; raises SignatureError naming the first that is not."""
    signed = {s.stage: s.digest for s in receipt.stages}
    for stage, d in seen.items():
        if signed.get(str(stage)) != d:
            raise SignatureError(f"stage {stage} as relayed is not what {receipt.party} signed for: "
                                 "the gateway altered or replaced it")


def verify_receipt(receipt: common_pb2.ContributionReceipt, trust: TrustStore, body_digest: bytes, *,
                   at: float | None = None) -> Identity:
    """The holder who signed ``receipt`` for this job; raises if it is not a party's valid signature."""
    cert = load_certificate(receipt.certificate)
    holder = trust.verify(cert, roles=(Role.PARTY,), at=at, what=f"the certificate of contributor {receipt.party}")
    if holder.name != receipt.party:
        raise SignatureError(f"a receipt names {receipt.party!r} but carries the certificate of {holder.name!r}")
    if len(receipt.content_digest) != 32:
        raise SignatureError(f"the receipt of {receipt.party} carries no content digest")
    if receipt.stages and stages_digest({s.stage: s.digest for s in receipt.stages}) != receipt.content_digest:
        raise SignatureError(f"the receipt of {receipt.party} lists stage digests its signed digest does not cover")
    noise = receipt.noise if receipt.HasField("noise") else None
    verify_signature(cert, RECEIPT_DOMAIN, _receipt_message(body_digest, holder.name, receipt.content_digest, noise),
                     receipt.signature, what=f"receipt of {receipt.party}")
    return holder


def check_receipts(receipts: Iterable[bytes | common_pb2.ContributionReceipt], trust: TrustStore,
                   body_digest: bytes, *, contributors: Iterable[str], min_parties: int,
                   at: float | None = None) -> list[Identity]:
    """The buyer's check of a result: every named contributor signed a receipt for this very job,
    and they are at least ``min_parties`` distinct organisations. Raises SignatureError naming
    the holder otherwise."""
    holders: dict[str, Identity] = {}
    for raw in receipts:
        r = common_pb2.ContributionReceipt.FromString(raw) if isinstance(raw, bytes) else raw
        ident = verify_receipt(r, trust, body_digest, at=at)
        holders[ident.name] = ident
    named = list(contributors)
    twice = sorted({p for p in named if named.count(p) > 1})
    if twice:
        raise SignatureError(f"the gateway names {', '.join(twice)} as contributor more than once")
    missing = [p for p in named if p not in holders]
    if missing:
        raise SignatureError(
            f"the gateway names {', '.join(missing)} as contributor(s) without their signed receipt: "
            "the result cannot be trusted")
    orgs = {holders[p].organisation for p in named}
    if len(orgs) < max(1, min_parties):
        raise SignatureError(
            f"the contributors belong to {len(orgs)} organisation(s) ({', '.join(sorted(orgs))}); "
            f"the job required {min_parties}")
    return [holders[p] for p in named]
