"""The market's arithmetic and rules without processes: prices, splits, fees, statements, bundles, review."""

from __future__ import annotations

import dataclasses
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from datawharf.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from datawharf.market import (
    Terms, check_terms, fee, parse_price, parse_weight, sign_decision, sign_listing, split,
)
from datawharf.pki import Authority, Credentials, Identity, Role, SignatureError, digest
from datawharf.serde import listing_to_proto
from datawharf.v1 import market_pb2
from gateway.market import Market
from gateway.market.bundles import make_bundle, open_bundle
from gateway.market.metering import price_job
from gateway.market.statements import build, month_range, to_csv
from gateway.store import open_store
from tests.exchange import VISITS

D = Decimal


@pytest.mark.parametrize("text, currency, value", [
    ("20.00", "CNY", D("20.00")), ("20", "CNY", D("20.00")), ("0", "JPY", D("0")), ("1.234", "KWD", D("1.234")),
    (" 7.5 ", "EUR", D("7.50")),
])
def test_prices_parse_exactly(text: str, currency: str, value: Decimal) -> None:
    assert parse_price(text, currency) == value and str(parse_price(text, currency)) == str(value)


@pytest.mark.parametrize("text, currency", [
    ("1e9999", "CNY"), ("-5", "CNY"), ("NaN", "CNY"), ("sNaN", "CNY"), ("inf", "CNY"), ("1" * 40, "CNY"),
    ("0x10", "CNY"), ("1_000", "CNY"), ("２０", "CNY"), ("", "CNY"), ("20.001", "CNY"), ("1.5", "JPY"),
    ("20.00", "XYZ"), ("20.00", "cny"), ("1000000000000", "CNY"),
])
def test_prices_that_do_not_parse_are_refused(text: str, currency: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_price(text, currency)


@pytest.mark.parametrize("text", ["0", "-1", "1e3", "NaN", "x"])
def test_weights_must_be_positive_decimals(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_weight(text)


def test_a_split_adds_up_and_goes_by_largest_remainder() -> None:
    assert split(D("10.00"), {"a": D(1), "b": D(1), "c": D(1)}, "CNY") == \
        {"a": D("3.34"), "b": D("3.33"), "c": D("3.33")}
    # Remainders decide, not names: c's exact share 5.7142... keeps its extra cent before a's 1.4285...
    shares = split(D("10.00"), {"a": D(1), "b": D(2), "c": D(4)}, "CNY")
    assert shares == {"a": D("1.43"), "b": D("2.86"), "c": D("5.71")} and sum(shares.values()) == D("10.00")
    for total in ("0.01", "0.02", "99.99", "1000000.01"):
        for weights in ({"x": D(1)}, {"x": D(1), "y": D(3)}, {"x": D("0.5"), "y": D("0.25"), "z": D(7)}):
            got = split(D(total), weights, "CNY")
            assert sum(got.values()) == D(total) and all(v >= 0 for v in got.values())
    assert split(D("7"), {"a": D(1), "b": D(1)}, "JPY") == {"a": D(4), "b": D(3)}


def test_the_fee_rounds_half_to_even() -> None:
    assert fee(D("32.50"), D("2.5"), "CNY") == D("0.81")  # 0.8125
    assert fee(D("1.00"), D("2.5"), "CNY") == D("0.02")   # 0.025 -> even
    assert fee(D("3.00"), D("2.5"), "CNY") == D("0.08")   # 0.075 -> even


def terms(price: str, pricing: str = "per-holder", weight: str = "1", currency: str = "CNY") -> Terms:
    return Terms("t", "internal", False, D(price), currency, pricing, D(weight))


def test_pricing_per_holder_shared_and_fee() -> None:
    lines = price_job({"a": ("l-a", terms("20.00")), "b": ("l-b", terms("12.50")), "c": None}, D(0))
    assert [(x.holder, x.amount) for x in lines] == [("a", D("20.00")), ("b", D("12.50"))]
    # Shared: the highest shared price, split by weight; row counts play no part.
    lines = price_job({"a": ("l-a", terms("9.00", "shared", "1")), "b": ("l-b", terms("10.00", "shared", "2")),
                       "c": ("l-c", terms("5.00"))}, D(10))
    assert [(x.holder, x.kind, x.amount) for x in lines] == [
        ("a", "holder", D("3.33")), ("b", "holder", D("6.67")), ("c", "holder", D("5.00")), ("", "fee", D("1.50"))]
    assert price_job({"a": None}, D(10)) == []


def _row(**kw: Any) -> dict[str, Any]:
    base = {"job_id": "j1", "at": 1_795_000_000.0, "dataset": "visits", "buyer": "acme", "holder": "a",
            "kind": "holder", "amount": "20.00", "currency": "CNY", "ledger_seq": 7}
    return {**base, **kw}


def test_statements_add_up_and_keep_fees_apart() -> None:
    rows = [_row(), _row(holder="b", amount="12.50"), _row(holder="", kind="fee", amount="0.81"),
            _row(job_id="j2", amount="0.10", currency="USD")]
    buyer = build(rows, buyer="acme")  # type: ignore[arg-type]
    assert [x.amount for x in buyer.fees] == ["0.81"] and len(buyer.lines) == 3
    assert {t.currency: t.amount for t in buyer.totals} == {"CNY": "33.31", "USD": "0.10"}
    holder = build([r for r in rows if r["holder"] == "a"], party="a")  # type: ignore[arg-type]
    assert {t.currency: t.amount for t in holder.totals} == {"CNY": "20.00", "USD": "0.10"}
    csv = to_csv(buyer).splitlines()
    assert csv[0].startswith("job_id,date") and csv[-2:] == ["TOTAL,,,,,total,33.31,CNY,", "TOTAL,,,,,total,0.10,USD,"]
    assert build([], party="nobody").totals == []


def test_months() -> None:
    start, end = month_range("2026-12")
    assert end - start == 31 * 86400 and time.gmtime(start)[:3] == (2026, 12, 1)
    assert month_range("") == (0.0, float("inf"))
    for bad in ("2026-13", "2026-1", "26-12", "2026-12-01", "1969-12"):
        with pytest.raises(InvalidArgument):
            month_range(bad)


# ------------------------------------------------------------------ review and bundles, in process
@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.init(tmp_path_factory.mktemp("ca"))


def ident(creds: Credentials) -> Identity:
    return creds.identity


def body(holder: str, **kw: Any) -> market_pb2.ListingBody:
    fields: dict[str, Any] = dict(holder=holder, dataset=listing_to_proto(VISITS), title="Visits",
                                  classification="internal", price_per_job="20.00", currency="CNY",
                                  pricing="per-holder", signed_at=time.time())
    return market_pb2.ListingBody(**{**fields, **kw})


def decision(creds: Credentials, row: Any, action: str, text: str = "") -> market_pb2.Signed:
    sub = market_pb2.Signed.FromString(row["submission"])
    return sign_decision(creds, market_pb2.DecisionBody(listing_id=row["listing_id"], listing_digest=digest(sub.body),
                                                        action=action, text=text, reviewer=creds.identity.name,
                                                        signed_at=time.time()))


def test_review_states_and_the_catalog_filter(ca: Authority, tmp_path: Path, store_spec: str) -> None:
    store = open_store(store_spec, tmp_path)
    market = Market(store, ca.issue("gw", Role.GATEWAY).trust())
    holder, op, auth = ca.issue("h1", Role.PARTY), ca.issue("op", Role.OPERATOR), ca.issue("au", Role.AUTHORITY)
    review = market.review
    row = review.submit(ident(holder), sign_listing(holder, body("h1", classification="public")))
    assert row["state"] == "PENDING" and not review.admits("h1", "visits")
    with pytest.raises(FailedPrecondition, match="an authority approves public data after the operator"):
        review.decide(ident(auth), decision(auth, row, "approve"))
    with pytest.raises(InvalidArgument, match="needs a reason"):
        review.decide(ident(op), decision(op, row, "reject"))
    assert review.decide(ident(op), decision(op, row, "approve"))["state"] == "AWAITING_AUTHORITY"
    assert not review.admits("h1", "visits")
    with pytest.raises(FailedPrecondition, match="only a listing that is APPROVED can be delisted"):
        review.decide(ident(op), decision(op, row, "delist", "x"))
    assert review.decide(ident(auth), decision(auth, row, "approve"))["state"] == "APPROVED"
    assert review.admits("h1", "visits") and review.approved("h1", "visits")[1].price == D("20.00")  # type: ignore[index]
    # What was approved is this schema with these roles: a node listing other columns is not admitted.
    assert review.admits("h1", "visits", VISITS)
    loose = dataclasses.replace(VISITS, columns=tuple(dataclasses.replace(c, aggregate=True) for c in VISITS.columns))
    assert not review.admits("h1", "visits", loose)
    with pytest.raises(FailedPrecondition, match="other columns or roles than its approved listing"):
        review.check_job("visits", [], {"h1": loose})
    review.check_job("visits", [], {"h1": VISITS})
    # A new version waits for review while the approved one stays on sale; approving it supersedes the old.
    v2 = review.submit(ident(holder), sign_listing(holder, body("h1", price_per_job="25.00")))
    assert review.admits("h1", "visits")
    with pytest.raises(PermissionDenied, match="an authority reviews public data only"):
        review.decide(ident(auth), decision(auth, v2, "reject", "no"))
    review.decide(ident(op), decision(op, v2, "approve"))
    assert store.listing(row["listing_id"])["state"] == "SUPERSEDED"
    assert review.approved("h1", "visits")[1].price == D("25.00")  # type: ignore[index]
    review.decide(ident(op), decision(op, v2, "delist", "audit"))
    assert not review.admits("h1", "visits")
    with pytest.raises(FailedPrecondition, match="is DELISTED \\(delist: audit\\)"):
        review.check_job("visits", [], {"h1": VISITS})
    # A holder's key cannot decide; nor can anyone send another's signature.
    with pytest.raises(PermissionDenied):
        review.decide(ident(holder), decision(holder, v2, "approve"))
    other = ca.issue("op2", Role.OPERATOR)
    with pytest.raises(PermissionDenied, match="signed by op but sent by op2"):
        review.decide(ident(other), decision(op, v2, "approve"))
    store.close()


def test_bundles_verify_whole_or_not_at_all(ca: Authority, tmp_path: Path, store_spec: str) -> None:
    store = open_store(store_spec, tmp_path)
    market = Market(store, ca.issue("gw", Role.GATEWAY).trust())
    holder, op = ca.issue("h2", Role.PARTY), ca.issue("op", Role.OPERATOR)
    row = market.review.submit(ident(holder), sign_listing(holder, body("h2")))
    market.review.decide(ident(op), decision(op, row, "approve"))
    from gateway.market.servicer import listing_to_proto

    good = make_bundle(op, [listing_to_proto(store, r) for r in store.listings(state="APPROVED")])
    home, listings = open_bundle(good, ca.ca_pem)
    assert [(x.holder, x.dataset) for x in listings] == [("h2", "visits")]
    outer = json.loads(good)
    flipped = dict(outer, signature=outer["signature"][:-4] + ("AAAA" if outer["signature"][-4:] != "AAAA" else "BBBB"))
    with pytest.raises((SignatureError, InvalidArgument)):
        open_bundle(json.dumps(flipped).encode(), ca.ca_pem)
    other = Authority.init(tmp_path / "other")
    with pytest.raises(SignatureError, match="--from-ca"):
        open_bundle(good, other.ca_pem)
    # A bundle signed by a holder (not an operator) is refused.
    with pytest.raises(PermissionDenied, match="needs a operator certificate"):
        open_bundle(make_bundle(holder, []), ca.ca_pem)
    with pytest.raises(InvalidArgument):
        open_bundle(b"not json", ca.ca_pem)
    store.close()


def test_terms_name_the_field_at_fault() -> None:
    with pytest.raises(InvalidArgument) as err:
        check_terms(body("h", classification="secret"))
    assert err.value.argument == "classification"
    with pytest.raises(InvalidArgument) as err:
        check_terms(body("h", title=" "))
    assert err.value.argument == "title"


def test_a_holder_gets_a_bounded_number_of_submissions(ca: Authority, tmp_path: Path, store_spec: str) -> None:
    from datawharf.errors import ResourceExhausted
    from gateway.market.review import MAX_SUBMISSIONS_PER_HOUR

    now = [1_795_000_000.0]
    store = open_store(store_spec, tmp_path)
    market = Market(store, ca.issue("gw", Role.GATEWAY).trust(), clock=lambda: now[0])
    holder = ca.issue("h3", Role.PARTY)
    for _ in range(MAX_SUBMISSIONS_PER_HOUR):
        market.review.submit(ident(holder), sign_listing(holder, body("h3")))
    with pytest.raises(ResourceExhausted, match="in the last hour"):
        market.review.submit(ident(holder), sign_listing(holder, body("h3")))
    now[0] += 3601
    assert market.review.submit(ident(holder), sign_listing(holder, body("h3")))["version"] == \
        MAX_SUBMISSIONS_PER_HOUR + 1
    # Superseded, not piled up: one version of the dataset is pending.
    assert len(store.listings(holder="h3", state="PENDING")) == 1
    store.close()


def test_a_statement_travels_in_parts_and_joins_whole() -> None:
    from gateway.market.statements import join, parts

    rows = [_row(job_id=f"j{i}") for i in range(5)] + [_row(job_id="j0", holder="", kind="fee", amount="0.50")]
    whole = build(rows, buyer="acme")  # type: ignore[arg-type]
    pieces = list(parts(whole, size=2))
    assert [len(p.lines) + len(p.fees) for p in pieces] == [2, 2, 2]
    assert [len(p.totals) for p in pieces] == [0, 0, 1]
    assert join(pieces) == whole
    empty = list(parts(build([], party="nobody")))
    assert len(empty) == 1 and join(empty).party == "nobody" and not empty[0].totals
