"""The market's kernel: prices as exact decimals, listing states, signed listings and decisions.

What a holder submits, what a reviewer decides and what an exchange exports
are signed here the way jobs are (``datawharf.signing``): ECDSA over the
SHA-256 of the exact bytes, each under its own domain so that a listing
signature is never accepted as a decision and neither as a job.

Money is ``decimal.Decimal`` from the first character: a price is parsed
from text, never through a float, must sit at its currency's minor unit,
and is stored and sent as text.

    WharfError
    ├── InvalidArgument   a price, currency, classification or pricing rule that does not parse
    └── SignatureError    a listing, decision or bundle whose signature does not hold
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TypeVar
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from google.protobuf.message import DecodeError

from datawharf.errors import InvalidArgument
from datawharf.pki import Credentials, Identity, Role, SignatureError, TrustStore, digest, load_certificate, sign, \
    verify_signature
from datawharf.v1 import market_pb2

LISTING_DOMAIN = b"datawharf.v1.ListingBody"
DECISION_DOMAIN = b"datawharf.v1.DecisionBody"
BUNDLE_DOMAIN = b"datawharf.v1.ListingBundle"
MAX_SIGNED_BYTES = 256 << 10  # a listing's schema with its descriptions; far below any message limit

# ISO 4217 codes this exchange settles in, with their minor unit (digits after the point).
CURRENCIES: dict[str, int] = {
    "CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "SGD": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2,
    "SEK": 2, "NOK": 2, "DKK": 2, "INR": 2, "BRL": 2, "ZAR": 2, "MXN": 2, "TWD": 2, "MOP": 2, "AED": 2,
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}
MAX_PRICE = Decimal(10) ** 12  # per job; anything near it is a typo
_PRICE = re.compile(r"([0-9]{1,13})(?:\.([0-9]{1,3}))?")  # ASCII digits only: \d also takes "２０"
_WEIGHT = re.compile(r"([0-9]{1,6})(?:\.([0-9]{1,6}))?")


class ListingState(enum.StrEnum):
    PENDING = "PENDING"                        # submitted, not yet reviewed
    AWAITING_AUTHORITY = "AWAITING_AUTHORITY"  # public data: the operator approved, an authority must too
    APPROVED = "APPROVED"                      # in the catalog: tasks may reach it and jobs are charged
    REJECTED = "REJECTED"                      # the holder may resubmit (a new version)
    DELISTED = "DELISTED"                      # taken off the catalog after approval
    SUPERSEDED = "SUPERSEDED"                  # a newer version replaced it


class Action(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    DELIST = "delist"


class Classification(enum.StrEnum):
    INTERNAL = "internal"
    SENSITIVE = "sensitive"
    PUBLIC = "public"  # needs an authority's second approval


class Pricing(enum.StrEnum):
    PER_HOLDER = "per-holder"  # each contributing holder is paid its own price
    SHARED = "shared"          # one job price, split among contributing holders by weight


def minor_unit(currency: str) -> int:
    if currency not in CURRENCIES:
        raise InvalidArgument(f"currency {currency!r} is not one this exchange settles in; use an ISO 4217 code "
                              f"such as {', '.join(sorted(CURRENCIES)[:6])}, ...", argument="currency")
    return CURRENCIES[currency]


def quantum(currency: str) -> Decimal:
    """The currency's smallest amount, e.g. 0.01 for CNY."""
    return Decimal(1).scaleb(-minor_unit(currency))


def parse_price(text: str, currency: str) -> Decimal:
    """A price per job: plain digits with at most the currency's minor unit of decimals, below
    ``MAX_PRICE``. Exponents, signs, NaN, infinities and 40-digit numbers are refused, never rounded."""
    places = minor_unit(currency)
    m = _PRICE.fullmatch(text.strip() if isinstance(text, str) else "")
    if m is None:
        raise InvalidArgument(f"price {text!r} is not a plain decimal amount such as 20.00 (digits, an optional "
                              "point and decimals; no sign, exponent or separators)", argument="price_per_job")
    if m.group(2) and len(m.group(2)) > places:
        raise InvalidArgument(f"price {text!r} has more decimals than {currency} has ({places})",
                              argument="price_per_job")
    value = Decimal(m.group(0))
    if value >= MAX_PRICE:
        raise InvalidArgument(f"price {text!r} is not below {MAX_PRICE:,} {currency} per job",
                              argument="price_per_job")
    return value.quantize(quantum(currency))


def parse_weight(text: str) -> Decimal:
    """A holder's weight in a shared price: a positive decimal (1 by default)."""
    m = _WEIGHT.fullmatch((text or "1").strip())
    if m is None or Decimal(m.group(0)) <= 0:
        raise InvalidArgument(f"weight {text!r} is not a positive decimal such as 1 or 2.5", argument="weight")
    return Decimal(m.group(0))


def parse_enum(kind: type[enum.StrEnum], text: str, argument: str) -> str:
    try:
        return str(kind(text))
    except ValueError:
        raise InvalidArgument(f"{argument} {text!r} is not one of {', '.join(m.value for m in kind)}",
                              argument=argument) from None


def split(total: Decimal, weights: dict[str, Decimal], currency: str) -> dict[str, Decimal]:
    """``total`` split by ``weights`` at the currency's minor unit, adding up exactly.

    Largest remainder: each share is first rounded down; the minor units left over go one each to
    the shares with the largest remainders, ties to the name that sorts first. Deterministic, and no
    share moves by more than one minor unit from its exact value."""
    q = quantum(currency)
    whole = sum(weights.values(), Decimal(0))
    if whole <= 0:
        raise InvalidArgument("a shared price needs at least one holder with a positive weight")
    exact = {k: total * w / whole for k, w in weights.items()}
    shares = {k: v.quantize(q, rounding=ROUND_DOWN) for k, v in exact.items()}
    left = int((total - sum(shares.values(), Decimal(0))) / q)
    for k in sorted(exact, key=lambda k: (-(exact[k] - shares[k]), k))[:left]:
        shares[k] += q
    return shares


def fee(amount: Decimal, percent: Decimal, currency: str) -> Decimal:
    """The operator's fee on ``amount``, rounded half-to-even (banker's) to the minor unit."""
    return (amount * percent / 100).quantize(quantum(currency), rounding=ROUND_HALF_EVEN)


# ------------------------------------------------------------------ listings
@dataclass(frozen=True)
class Terms:
    """A listing's commercial terms, parsed and checked."""

    title: str
    classification: str
    personal_data: bool
    price: Decimal
    currency: str
    pricing: str
    weight: Decimal


def check_terms(body: market_pb2.ListingBody) -> Terms:
    """The body's terms, or InvalidArgument naming the field at fault."""
    if not body.title.strip() or len(body.title) > 200:
        raise InvalidArgument("a listing needs a title of 1-200 characters", argument="title")
    if len(body.description) > 4000:
        raise InvalidArgument("a listing's description is limited to 4000 characters", argument="description")
    currency = body.currency.strip().upper()
    return Terms(
        title=body.title.strip(),
        classification=parse_enum(Classification, body.classification, "classification"),
        personal_data=body.personal_data,
        price=parse_price(body.price_per_job, currency),
        currency=currency,
        pricing=parse_enum(Pricing, body.pricing or Pricing.PER_HOLDER, "pricing"),
        weight=parse_weight(body.weight),
    )


def sign_listing(creds: Credentials, body: market_pb2.ListingBody) -> market_pb2.Signed:
    return _sign(creds, LISTING_DOMAIN, body.SerializeToString(deterministic=True))


def sign_decision(creds: Credentials, body: market_pb2.DecisionBody) -> market_pb2.Signed:
    return _sign(creds, DECISION_DOMAIN, body.SerializeToString(deterministic=True))


def _sign(creds: Credentials, domain: bytes, raw: bytes) -> market_pb2.Signed:
    return market_pb2.Signed(body=raw, signature=sign(creds.key, domain, digest(raw)), certificate=creds.cert_pem)


def open_listing(signed: market_pb2.Signed, trust: TrustStore, *, at: float | None = None
                 ) -> tuple[Identity, market_pb2.ListingBody]:
    """The holder who signed, and what it listed; SignatureError if either does not hold."""
    who = _open(signed, trust, LISTING_DOMAIN, (Role.PARTY,), "the listing", at=at)
    body = _parse(market_pb2.ListingBody, signed.body, "listing")
    if body.holder != who.name:
        raise SignatureError(f"the listing names holder {body.holder!r} but is signed by {who.name}; "
                             "a holder lists only its own datasets")
    return who, body


def open_decision(signed: market_pb2.Signed, trust: TrustStore, *, at: float | None = None
                  ) -> tuple[Identity, market_pb2.DecisionBody]:
    who = _open(signed, trust, DECISION_DOMAIN, (Role.OPERATOR, Role.AUTHORITY), "the decision", at=at)
    body = _parse(market_pb2.DecisionBody, signed.body, "decision")
    if body.reviewer != who.name:
        raise SignatureError(f"the decision names reviewer {body.reviewer!r} but is signed by {who.name}")
    return who, body


def _open(signed: market_pb2.Signed, trust: TrustStore, domain: bytes, roles: tuple[Role, ...], what: str,
          *, at: float | None) -> Identity:
    if len(signed.body) > MAX_SIGNED_BYTES:
        raise InvalidArgument(f"{what} is {len(signed.body)} bytes, more than the {MAX_SIGNED_BYTES} allowed")
    cert = load_certificate(signed.certificate)
    who = trust.verify(cert, roles=roles, at=at, what=f"the signer of {what}")
    verify_signature(cert, domain, digest(signed.body), signed.signature, what=what)
    return who


M = TypeVar("M", market_pb2.ListingBody, market_pb2.DecisionBody)


def _parse(kind: type[M], raw: bytes, what: str) -> M:
    try:
        return kind.FromString(raw)
    except DecodeError:
        raise InvalidArgument(f"the signed {what} does not parse") from None


__all__ = [
    "Action", "BUNDLE_DOMAIN", "CURRENCIES", "Classification", "DECISION_DOMAIN", "LISTING_DOMAIN", "ListingState",
    "Pricing", "Terms", "check_terms", "fee", "minor_unit", "open_decision", "open_listing", "parse_price",
    "parse_weight", "quantum", "sign_decision", "sign_listing", "split",
]
