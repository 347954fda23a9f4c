"""The market over real processes: listing review, metering, statements, bundles, and the attacks on them.

One exchange with listing review on (two hospitals, an operator, an
authority, a buyer), every channel mutual TLS, every step through the
`wharf` command or a raw gRPC call as an attacker would make it.
"""

from __future__ import annotations

import collections
import json
from dataclasses import replace
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from datawharf.market import DECISION_DOMAIN, LISTING_DOMAIN, sign_decision, sign_listing
from datawharf.pki import Authority, Role, TrustStore, digest, load_certificate, verify_signature
from datawharf.serde import aggregate_to_proto
from datawharf.tls import channel
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc, market_pb2, market_pb2_grpc
from gateway.market.bundles import make_bundle
from buyers.client import JobFailed
from tests.exchange import Exchange

FEE = Decimal("2.5")


def wharf(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wharf", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def ok(*args: str | Path) -> Any:
    """Run `wharf ... --json` and return its JSON; fail the test with stderr if it did not succeed."""
    out = wharf(*args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class MarketExchange(Exchange):
    def start_gateway(self, *extra: str, listen: str = "127.0.0.1:0", timeout_s: float = 30) -> str:
        return super().start_gateway("--fee-percent", str(FEE), *extra, listen=listen, timeout_s=timeout_s)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # riverside does not release variances: a job it refuses shows what a refusal costs.
    ex = MarketExchange(tmp_path_factory.mktemp("market"), parties=("st-mary", "riverside"), rows=300, review=True,
                        statistics={"riverside": ["sum", "count", "mean", "histogram"]})
    try:
        yield ex.start()
    finally:
        ex.stop()


def ops(ex: Exchange, name: str = "ops", role: Role = Role.OPERATOR) -> Path:
    return ex.identity(name, role)


def cfg(ex: Exchange, party: str) -> Path:
    return ex.root / f"{party}.toml"


def stub(ex: Exchange, name: str, role: Role) -> market_pb2_grpc.MarketServiceStub:
    return market_pb2_grpc.MarketServiceStub(ex.channel(name, role))


def submit(ex: Exchange, party: str, *extra: str, price: str = "20.00", dataset: str = "visits") -> Any:
    return ok("listing", "submit", "--config", cfg(ex, party), "--dataset", dataset, "--title", f"{party} {dataset}",
              "--description", "outpatient visits", "--classification", "sensitive", "--personal-data", "yes",
              "--price-per-job", price, "--currency", "CNY", *extra)


def decide(ex: Exchange, action: str, listing_id: str, text: str, who: Path | None = None) -> Any:
    flag = "--note" if action == "approve" else "--reason"
    return ok("listing", action, listing_id, flag, text, "-g", ex.address, "-i", who or ops(ex))


def catalog_holders(ex: Exchange) -> dict[str, list[str]]:
    with ex.client() as c:
        return {i.dataset: list(i.holders) for i in c.catalog()}


def raw_job(ex: Exchange, spec: Any, request_id: str, parties: tuple[str, ...] = ()) -> grpc.RpcError:
    req = ex.signed(buyer_pb2.SubmitJobRequest(request_id=request_id, aggregate=aggregate_to_proto(spec),
                                               parties=list(parties), min_parties=1))
    with pytest.raises(grpc.RpcError) as err:
        buyer_pb2_grpc.BuyerServiceStub(ex.channel()).SubmitJob(req, timeout=20)
    return err.value


def month() -> str:
    return time.strftime("%Y-%m", time.gmtime())


def test_review_metering_and_statements(exchange: Exchange) -> None:
    ex = exchange
    assert catalog_holders(ex) == {}, "nothing is in the catalog before an operator approves it"

    first = submit(ex, "st-mary")
    assert first["state"] == "PENDING" and first["version"] == 1 and "patient_id" in first["columns"]
    assert catalog_holders(ex) == {}

    rejected = decide(ex, "reject", first["listing_id"], "describe the visit period in the description")
    assert rejected["state"] == "REJECTED"
    status = ok("listing", "status", "--config", cfg(ex, "st-mary"))["listings"]
    assert [(x["state"], x["decisions"][-1]["text"]) for x in status] == \
        [("REJECTED", "describe the visit period in the description")]
    assert status[0]["decisions"][0]["ledger_seq"] > 0

    second = submit(ex, "st-mary")
    assert (second["version"], second["state"]) == (2, "PENDING")
    assert decide(ex, "approve", second["listing_id"], "complete")["state"] == "APPROVED"
    river = submit(ex, "riverside", price="12.50")
    ex.wait_online(["st-mary"])
    assert catalog_holders(ex) == {"visits": ["st-mary"]}

    with ex.client() as acme:
        source = acme.submit("visits", "cost", "sum", request_id="spec-source", timeout_s=60)
        acme.result(source)  # st-mary alone: charged its price, and the fee on it
    spec = source.spec
    # A job naming a holder whose listing is still pending is refused, naming the state.
    err = raw_job(ex, spec, "to-riverside", ("riverside",))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"riverside's listing {river['listing_id']} of 'visits' is PENDING" in err.details()

    assert decide(ex, "approve", river["listing_id"], "ok")["state"] == "APPROVED"
    ex.wait_online(["st-mary", "riverside"])
    with ex.client() as acme:
        both = [acme.submit("visits", "cost", "sum", min_parties=2, timeout_s=60) for _ in range(2)]
        for job in both:
            acme.result(job)
        # riverside refuses variances and the job needs both: it fails, and costs nothing.
        refused = acme.submit("visits", "cost", "variance", min_parties=2, timeout_s=60)
        with pytest.raises(JobFailed):
            acme.result(refused)

    price = {"st-mary": Decimal("20.00"), "riverside": Decimal("12.50")}
    jobs = {"st-mary": {source.job_id, *(j.job_id for j in both)}, "riverside": {j.job_id for j in both}}
    # 2.5 % of 32.50 is 0.8125: 0.81 (half-even); of 20.00, 0.50.
    fees = sorted([Decimal("0.50"), Decimal("0.81"), Decimal("0.81")])
    for holder in price:
        st = ok("billing", "statement", "--config", cfg(ex, holder), "--month", month())
        assert sorted((x["job_id"], Decimal(x["amount"])) for x in st["lines"]) == \
            sorted((j, price[holder]) for j in jobs[holder])
        assert st["fees"] == [] and Decimal(st["totals"]["CNY"]) == len(jobs[holder]) * price[holder]
    buyer = ok("billing", "statement", "--buyer", "acme-insurance", "--month", month(), "-g", ex.address, "-i",
               ex.identity("acme-insurance", Role.BUYER))
    assert refused.job_id not in {x["job_id"] for x in buyer["lines"] + buyer["fees"]}, "a refused job costs nothing"
    assert sorted(Decimal(x["amount"]) for x in buyer["fees"]) == fees
    lines = [*buyer["lines"], *buyer["fees"]]
    assert Decimal(buyer["totals"]["CNY"]) == sum(Decimal(x["amount"]) for x in lines) == \
        3 * price["st-mary"] + 2 * price["riverside"] + sum(fees)

    # Each job's lines are one job_charged entry of the ledger, and name its seq.
    exported = ex.root / "ledger.jsonl"
    assert wharf("audit", "export", "--out", exported, "--data-dir", ex.gateway_dir).returncode == 0
    entries = [json.loads(line) for line in exported.read_text().splitlines()]
    charged = {e["fields"]["job_id"]: e for e in entries if e["kind"] == "job_charged"}
    assert set(charged) == jobs["st-mary"]
    for x in lines:
        entry = charged[x["job_id"]]
        assert entry["seq"] == x["ledger_seq"]
        assert {"holder": x["holder"], "kind": x["kind"], "amount": x["amount"], "currency": "CNY"}.items() <= \
            next(e for e in entry["fields"]["lines"] if e["holder"] == x["holder"]).items()
    verify = wharf("audit", "verify", exported, "--ca", ex.root / "ca" / "ca.pem")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Every submission and decision in the ledger carries its author's signature over the digest it
    # names: anyone with the CA checks them from the ledger alone.
    trust = TrustStore(ex.ca.ca_pem)
    checked = collections.Counter()
    for e in entries:
        f = e["fields"]
        if e["kind"] == "listing_submitted":
            cert, domain, data, sig = f["holder_certificate"], LISTING_DOMAIN, f["listing_digest"], \
                f["holder_signature"]
        elif e["kind"] in ("listing_approved", "listing_rejected", "listing_delisted"):
            cert, domain, data, sig = f["reviewer_certificate"], DECISION_DOMAIN, f["decision_digest"], \
                f["reviewer_signature"]
        else:
            continue
        trust.verify(cert.encode())
        verify_signature(load_certificate(cert.encode()), domain, bytes.fromhex(data), bytes.fromhex(sig),
                         what=e["kind"])
        checked[e["kind"]] += 1
    assert checked["listing_submitted"] >= 3 and checked["listing_rejected"] == 1 and checked["listing_approved"] >= 2

    # The CSV adds up, and the operator reads the same statement offline from the data directory.
    csv = wharf("billing", "statement", "--buyer", "acme-insurance", "--month", month(), "--csv", "-g", ex.address,
                "-i", ops(ex))
    rows = [r.split(",") for r in csv.stdout.splitlines()[1:]]
    assert sum(Decimal(r[6]) for r in rows if r[0] != "TOTAL") == Decimal(rows[-1][6]) == \
        Decimal(buyer["totals"]["CNY"])
    offline = ok("billing", "statement", "--buyer", "acme-insurance", "--month", month(), "--data-dir",
                 ex.gateway_dir)
    assert offline == buyer

    # Delisted: out of the catalog, and a job naming it is refused with the state and reason.
    assert decide(ex, "delist", second["listing_id"], "consent records under audit")["state"] == "DELISTED"
    assert catalog_holders(ex) == {"visits": ["riverside"]}
    err = raw_job(ex, spec, "to-st-mary", ("st-mary",))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is DELISTED (delist: consent records under audit)" in err.details()
    status = ok("listing", "status", "--config", cfg(ex, "st-mary"))["listings"]
    assert [x["state"] for x in status] == ["REJECTED", "DELISTED"]
    text = wharf("listing", "status", "--config", cfg(ex, "st-mary")).stdout
    assert f"{second['listing_id']}  st-mary/visits v2  DELISTED" in text
    assert "delist by operator ops" in text and ": consent records under audit (ledger #" in text
    text = wharf("billing", "statement", "--config", cfg(ex, "riverside"), "--month", month()).stdout
    assert f"statement of holder riverside, {month()}" in text and "total 25.00 CNY" in text

    # An unknown party, or a month without jobs, has an empty statement.
    for who, when in (("nobody", month()), ("st-mary", "1999-01")):
        empty = ok("billing", "statement", "--party", who, "--month", when, "-g", ex.address, "-i", ops(ex))
        assert empty["lines"] == [] and empty["totals"] == {}


def test_public_data_needs_an_authoritys_second_approval(exchange: Exchange) -> None:
    ex = exchange
    listed = ok("listing", "submit", "--config", cfg(ex, "riverside"), "--dataset", "ward_load", "--title",
                "Ward load", "--classification", "public", "--personal-data", "no", "--price-per-job", "0",
                "--currency", "JPY")
    assert decide(ex, "approve", listed["listing_id"], "fine")["state"] == "AWAITING_AUTHORITY"
    assert "ward_load" not in catalog_holders(ex)
    again = wharf("listing", "approve", listed["listing_id"], "-g", ex.address, "-i", ops(ex))
    assert again.returncode == 1 and "awaits an authority's approval" in again.stderr
    approved = decide(ex, "approve", listed["listing_id"], "public release authorised",
                      ops(ex, "regulator", Role.AUTHORITY))
    assert approved["state"] == "APPROVED"
    assert [d["role"] for d in approved["decisions"]] == ["operator", "authority"]


def test_callers_without_the_role_are_refused(exchange: Exchange) -> None:
    ex = exchange
    anything = market_pb2.Signed(body=b"x", signature=b"y", certificate=b"z")
    calls = {
        "DecideListing": anything,
        "ImportBundle": market_pb2.ImportBundleRequest(bundle=b"{}", ca=b""),
    }
    for name, role in (("acme-insurance", Role.BUYER), ("st-mary", Role.PARTY)):
        s = stub(ex, name, role)
        for method, request in calls.items():
            with pytest.raises(grpc.RpcError) as err:
                getattr(s, method)(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, (name, method)
    s = stub(ex, "acme-insurance", Role.BUYER)
    for request in (market_pb2.ListListingsRequest(), market_pb2.ListListingsRequest(state="PENDING")):
        with pytest.raises(grpc.RpcError) as err:
            s.ListListings(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        stub(ex, "acme-insurance", Role.BUYER).SubmitListing(anything, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Statements: a buyer and a holder read only their own.
    for name, role, request in (
            ("mallory", Role.BUYER, market_pb2.StatementRequest(buyer="acme-insurance")),
            ("acme-insurance", Role.BUYER, market_pb2.StatementRequest(party="st-mary")),
            ("riverside", Role.PARTY, market_pb2.StatementRequest(party="st-mary")),
            ("riverside", Role.PARTY, market_pb2.StatementRequest(buyer="acme-insurance"))):
        with pytest.raises(grpc.RpcError) as err:
            list(stub(ex, name, role).GetStatement(request, timeout=10))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, (name, request)
    # A holder's listings are its own: riverside sees none of st-mary's.
    mine = stub(ex, "riverside", Role.PARTY).ListListings(market_pb2.ListListingsRequest(), timeout=10)
    assert {x.holder for x in mine.listings} <= {"riverside"}


def _pending(ex: Exchange, party: str = "riverside") -> market_pb2.MarketListing:
    body = _body(ex, party)
    creds = ex.creds(party, Role.PARTY)
    return stub(ex, party, Role.PARTY).SubmitListing(sign_listing(creds, body), timeout=10)


def _body(ex: Exchange, party: str, **terms: Any) -> market_pb2.ListingBody:
    from datawharf.serde import listing_to_proto
    from tests.exchange import VISITS

    fields: dict[str, Any] = dict(holder=party, dataset=listing_to_proto(VISITS), title="t", classification="internal",
                                  price_per_job="1.00", currency="CNY", pricing="per-holder", signed_at=time.time())
    fields.update(terms)
    return market_pb2.ListingBody(**fields)


def test_forged_decisions_are_refused(exchange: Exchange) -> None:
    ex = exchange
    target = _pending(ex)
    operator = ex.creds("ops", Role.OPERATOR)
    body = market_pb2.DecisionBody(listing_id=target.listing_id, listing_digest=digest(target.submission.body),
                                   action="approve", text="", reviewer="ops", signed_at=time.time())
    signed = sign_decision(operator, body)
    # Edited after signing (a note changed): the signature no longer holds.
    tampered = market_pb2.Signed()
    tampered.CopyFrom(signed)
    tampered.body = market_pb2.DecisionBody(listing_id=target.listing_id, listing_digest=body.listing_digest,
                                            action="approve", text="edited", reviewer="ops",
                                            signed_at=body.signed_at).SerializeToString()
    with pytest.raises(grpc.RpcError) as err:
        stub(ex, "ops", Role.OPERATOR).DecideListing(tampered, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "does not match" in err.value.details()
    # ops's genuine decision relayed by another operator: only the signer may send it.
    with pytest.raises(grpc.RpcError) as err:
        stub(ex, "ops2", Role.OPERATOR).DecideListing(signed, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "signed by ops but sent by ops2" in \
        err.value.details()
    # A holder's key cannot sign a decision, even about its own listing (sent over an operator's channel).
    holder = ex.creds("riverside", Role.PARTY)
    own = sign_decision(holder, market_pb2.DecisionBody(listing_id=target.listing_id,
                                                        listing_digest=body.listing_digest, action="approve",
                                                        reviewer="riverside", signed_at=time.time()))
    with pytest.raises(grpc.RpcError) as err:
        stub(ex, "ops", Role.OPERATOR).DecideListing(own, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A decision about another text of the listing is refused.
    stale = sign_decision(operator, market_pb2.DecisionBody(listing_id=target.listing_id, listing_digest=b"\0" * 32,
                                                            action="approve", reviewer="ops"))
    with pytest.raises(grpc.RpcError) as err:
        stub(ex, "ops", Role.OPERATOR).DecideListing(stale, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    after = stub(ex, "ops", Role.OPERATOR).ListListings(market_pb2.ListListingsRequest(), timeout=10)
    assert next(x for x in after.listings if x.listing_id == target.listing_id).state == "PENDING"


def test_a_holder_cannot_list_for_another(exchange: Exchange) -> None:
    ex = exchange
    riverside = ex.creds("riverside", Role.PARTY)
    # riverside names st-mary as the holder and signs with its own key.
    with pytest.raises(grpc.RpcError) as err:
        stub(ex, "riverside", Role.PARTY).SubmitListing(sign_listing(riverside, _body(ex, "st-mary")), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "a holder lists only its own" in \
        err.value.details()
    # riverside relays a listing st-mary signed.
    st_mary = sign_listing(ex.creds("st-mary", Role.PARTY), _body(ex, "st-mary"))
    with pytest.raises(grpc.RpcError) as err:
        stub(ex, "riverside", Role.PARTY).SubmitListing(st_mary, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "signed by st-mary but sent by riverside" in \
        err.value.details()


@pytest.mark.parametrize("price, currency, says", [
    ("1e9999", "CNY", "not a plain decimal"), ("-5", "CNY", "not a plain decimal"),
    ("NaN", "CNY", "not a plain decimal"), ("Infinity", "CNY", "not a plain decimal"),
    ("1" * 40, "CNY", "not a plain decimal"), ("1000000000000", "CNY", "not below"),
    ("20.001", "CNY", "more decimals than CNY has (2)"), ("20.5", "JPY", "more decimals than JPY has (0)"),
    ("20.00", "XYZ", "currency 'XYZ' is not one"), ("20,00", "CNY", "not a plain decimal"),
])
def test_prices_and_currencies_that_do_not_parse_are_refused(exchange: Exchange, price: str, currency: str,
                                                             says: str) -> None:
    ex = exchange
    creds = ex.creds("riverside", Role.PARTY)
    with pytest.raises(grpc.RpcError) as err:
        stub(ex, "riverside", Role.PARTY).SubmitListing(
            sign_listing(creds, _body(ex, "riverside", price_per_job=price, currency=currency)), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and says in err.value.details()


def test_the_command_refuses_a_bad_price_before_sending(exchange: Exchange) -> None:
    out = wharf("listing", "submit", "--config", cfg(exchange, "riverside"), "--dataset", "visits", "--title", "t",
                "--price-per-job", "1e9999", "--currency", "CNY")
    assert out.returncode == 1 and "--price-per-job" in out.stderr and "not a plain decimal" in out.stderr


def test_bundles_between_exchanges(exchange: Exchange, tmp_path: Path) -> None:
    ex = exchange
    # At A: one listing approved and one pending, of datasets no node lists (the catalog is left alone).
    from datawharf.serde import listing_to_proto
    from tests.exchange import VISITS

    riverside, operator = ex.creds("riverside", Role.PARTY), ex.creds("ops", Role.OPERATOR)
    for name in ("archive", "archive-draft"):
        body = _body(ex, "riverside", dataset=listing_to_proto(replace(VISITS, name=name)))
        made = stub(ex, "riverside", Role.PARTY).SubmitListing(sign_listing(riverside, body), timeout=10)
        if name == "archive":
            decision = market_pb2.DecisionBody(listing_id=made.listing_id, listing_digest=digest(made.submission.body),
                                               action="approve", reviewer="ops", signed_at=time.time())
            stub(ex, "ops", Role.OPERATOR).DecideListing(sign_decision(operator, decision), timeout=10)
    # Exchange B: its own CA, gateway and operator, no holders needed to recognise A's listings.
    b = Exchange(tmp_path / "b", parties=(), review=True)
    try:
        b.start()
        bundle = tmp_path / "bundle.json"
        out = wharf("listing", "export", "--signed", "--out", bundle, "-g", ex.address, "-i", ops(ex))
        assert out.returncode == 0, out.stderr
        exported = json.loads(bundle.read_text())
        a_ca = ex.root / "ca" / "ca.pem"

        # One byte changed anywhere in the payload: the whole bundle is rejected.
        bad = dict(exported, payload=exported["payload"][:-8] + ("A" * 8 if not exported["payload"].endswith(
            "A" * 8) else "B" * 8))
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        refused = wharf("listing", "import", tmp_path / "bad.json", "--from-ca", a_ca, "-g", b.address, "-i",
                        ops(b))
        assert refused.returncode == 1 and "error:" in refused.stderr
        # Signed by A but presented as from an unknown CA (B's own, or a third): rejected whole.
        third = Authority.init(tmp_path / "third-ca")
        for ca in (third.dir / "ca.pem",):
            refused = wharf("listing", "import", bundle, "--from-ca", ca, "-g", b.address, "-i", ops(b))
            assert refused.returncode == 1 and "the CA given with --from-ca" in refused.stderr
        # A bundle signed by A's operator with a listing A never approved: rejected whole.
        with channel(ex.address, ex.creds("ops", Role.OPERATOR)) as ch:
            every = market_pb2_grpc.MarketServiceStub(ch).ListListings(market_pb2.ListListingsRequest(), timeout=10)
        approved = [x for x in every.listings if x.state == "APPROVED"]
        unreviewed = next(x for x in every.listings if x.dataset == "archive-draft" and x.state == "PENDING")
        (tmp_path / "mixed.json").write_bytes(make_bundle(ex.creds("ops", Role.OPERATOR), [*approved, unreviewed]))
        refused = wharf("listing", "import", tmp_path / "mixed.json", "--from-ca", a_ca, "-g", b.address, "-i",
                        ops(b))
        assert refused.returncode == 1 and "is not approved by its home exchange" in refused.stderr
        assert ok("listing", "list", "--foreign", "-g", b.address, "-i", ops(b))["listings"] == []

        imported = ok("listing", "import", bundle, "--from-ca", a_ca, "-g", b.address, "-i", ops(b))
        assert imported["home_exchange"].startswith("DataWharf exchange CA [")
        assert {(x["holder"], x["dataset"]) for x in imported["listings"]} == \
            {(x.holder, x.dataset) for x in approved} and approved
        # B's buyers see them, marked with their home exchange.
        foreign = ok("listing", "list", "--foreign", "-g", b.address, "-i", b.identity("acme-insurance", Role.BUYER))
        assert {x["home_exchange"] for x in foreign["listings"]} == {imported["home_exchange"]}
        # B has no holder or link for them: the listing says it cannot run here.
        assert {(x["runnable_here"], x["availability"].split(":")[0]) for x in foreign["listings"]} == \
            {(False, "not runnable here")}
        text = wharf("listing", "list", "--foreign", "-g", b.address, "-i", b.identity("acme-insurance", Role.BUYER))
        assert "not runnable here: no holder or link" in text.stdout and imported["home_exchange"] in text.stdout
        # And `wharf catalog` lists them after B's own datasets.
        cat = wharf("catalog", "-g", b.address, "-i", b.identity("acme-insurance", Role.BUYER))
        assert "from other exchanges" in cat.stdout and f"of {imported['home_exchange']}" in cat.stdout
        assert "not reachable from here" in cat.stdout
    finally:
        b.stop()


def test_the_listing_can_sit_in_the_holders_toml_and_flags_win(exchange: Exchange, tmp_path: Path) -> None:
    ex = exchange
    # The TOML's last [[datasets]] is ward_load: its [datasets.listing] table follows it.
    toml = tmp_path / "riverside.toml"
    toml.write_text(cfg(ex, "riverside").read_text() + '''
[datasets.listing]
title = "Ward load by hour"
description = "Patients and energy per ward and hour"
classification = "internal"
personal_data = false
price_per_job = "3.50"
currency = "EUR"
pricing = "shared"
weight = "2"
''')
    listed = ok("listing", "submit", "--config", toml, "--dataset", "ward_load", "--title", "Ward load (2026)")
    assert (listed["title"], listed["price_per_job"], listed["currency"], listed["pricing"], listed["weight"],
            listed["personal_data"], listed["classification"]) == \
        ("Ward load (2026)", "3.50", "EUR", "shared", "2", False, "internal")
    assert listed["description"] == "Patients and energy per ward and hour" and "hourly_kwh" in listed["columns"]
    # A price the TOML gets wrong is refused before anything is sent.
    toml.write_text(toml.read_text().replace('price_per_job = "3.50"', 'price_per_job = "3.505"'))
    out = wharf("listing", "submit", "--config", toml, "--dataset", "ward_load")
    assert out.returncode == 1 and "more decimals than EUR has (2)" in out.stderr


def test_an_insecure_gateway_must_turn_review_off(tmp_path: Path) -> None:
    out = wharf("gateway", "serve", "--insecure", "--listen", "127.0.0.1:0", "--data-dir", tmp_path)
    assert out.returncode == 1 and "--listing-review off" in out.stderr
    bad_fee = wharf("gateway", "serve", "--insecure", "--listing-review", "off", "--fee-percent", "NaN",
                    "--listen", "127.0.0.1:0", "--data-dir", tmp_path)
    assert bad_fee.returncode == 2 and "--fee-percent" in bad_fee.stderr


def test_a_shared_price_is_split_by_weight_and_adds_up(exchange: Exchange) -> None:
    ex = exchange
    listed = {}
    for party, price, weight in (("st-mary", "9.00", "1"), ("riverside", "3.50", "2")):
        listed[party] = ok("listing", "submit", "--config", cfg(ex, party), "--dataset", "ward_load", "--title",
                           "Ward load", "--classification", "internal", "--personal-data", "no", "--price-per-job",
                           price, "--currency", "EUR", "--pricing", "shared", "--weight", weight)["listing_id"]
        assert decide(ex, "approve", listed[party], "ok")["state"] == "APPROVED"
    ex.wait_online(["st-mary", "riverside"], dataset="ward_load")
    with ex.client() as c:
        job = c.submit("ward_load", "hourly_patients", "sum", min_parties=2, timeout_s=60)
        c.result(job)
    st = ok("billing", "statement", "--buyer", "acme-insurance", "--month", month(), "-g", ex.address, "-i", ops(ex))
    mine = {x["holder"]: x for x in [*st["lines"], *st["fees"]] if x["job_id"] == job.job_id}
    # One job price, the higher of the two (9.00), split 1 : 2; the 2.5 % fee is 0.225, half-even 0.22.
    assert {h: (x["amount"], x["currency"]) for h, x in mine.items()} == \
        {"st-mary": ("3.00", "EUR"), "riverside": ("6.00", "EUR"), "": ("0.22", "EUR")}
    assert len({x["ledger_seq"] for x in mine.values()}) == 1


def test_listings_come_in_pages(exchange: Exchange) -> None:
    ex = exchange
    for party in ("st-mary", "riverside"):
        _pending(ex, party)
    operator = stub(ex, "ops", Role.OPERATOR)
    every = operator.ListListings(market_pb2.ListListingsRequest(limit=500), timeout=10)
    assert every.total == len(every.listings) >= 2
    pages = [operator.ListListings(market_pb2.ListListingsRequest(limit=1, offset=i), timeout=10)
             for i in range(every.total + 1)]
    assert [x.listing_id for p in pages for x in p.listings] == [x.listing_id for x in every.listings]
    assert {p.total for p in pages} == {every.total} and not pages[-1].listings
    one = operator.ListListings(market_pb2.ListListingsRequest(listing_id=every.listings[-1].listing_id), timeout=10)
    assert [x.listing_id for x in one.listings] == [every.listings[-1].listing_id] and one.total == 1
    # A holder pages through its own only.
    own = stub(ex, "riverside", Role.PARTY).ListListings(market_pb2.ListListingsRequest(limit=1), timeout=10)
    assert own.total == sum(x.holder == "riverside" for x in every.listings) and own.listings[0].holder == "riverside"
    out = wharf("listing", "list", "--limit", "1", "-g", ex.address, "-i", ops(ex))
    assert out.returncode == 0 and f"{every.total - 1} more: --offset 1" in out.stdout
