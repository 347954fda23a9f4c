"""Grants at the holder: the signed terms, the node's check, persistence across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from datawharf.errors import InvalidArgument
from datawharf.grants import GrantTerms, check_request, sign_terms, statistic_of, verify_terms
from datawharf.pki import Authority, Role, SignatureError
from parties.budget import BudgetBook
from parties.grants import GrantBook

NOW = 1_800_000_000.0
YEAR = 365 * 86400.0


def terms(**kw) -> GrantTerms:  # type: ignore[no-untyped-def]
    base = dict(id="g-1", buyer="acme", party="st-mary", dataset="visits", purpose="pricing 2027",
                statistics=("sum", "mean"), until=NOW + YEAR, max_jobs=2, budget=0.0)
    base.update(kw)
    return GrantTerms(**base)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


def test_terms_are_canonical_signed_by_the_addressed_holder_only(tmp_path: Path) -> None:
    ca = Authority.init(tmp_path / "ca")
    mary = ca.issue("st-mary", Role.PARTY)
    other = ca.issue("riverside", Role.PARTY)
    t = terms()
    assert GrantTerms.parse(t.canonical()) == t
    with pytest.raises(InvalidArgument, match="canonical"):
        GrantTerms.parse(t.canonical().replace(b'"id"', b' "id"'))
    sig = sign_terms(mary, t)
    verify_terms(mary.cert_pem, t, sig)
    with pytest.raises(SignatureError):
        verify_terms(mary.cert_pem, terms(max_jobs=3), sig)  # widened terms: the signature does not hold
    with pytest.raises(InvalidArgument, match="addressed to 'st-mary'"):
        sign_terms(other, t)


@pytest.mark.parametrize("field, value, words", [
    ("purpose", " ", "purpose"), ("purpose", "x" * 501, "purpose"), ("statistics", ["sum", "median"], "median"),
    ("until", NOW - 1, "future"), ("until", NOW + 6 * YEAR, "five years"), ("max_jobs", 0, "max_jobs"),
    ("budget", float("nan"), "budget"), ("dataset", "../etc", "dataset"),
])
def test_bad_requests_name_the_field(field: str, value: object, words: str) -> None:
    args: dict[str, object] = dict(dataset="visits", purpose="p", statistics=["sum"], until=NOW + 10, max_jobs=1,
                                   budget=0.0)
    args[field] = value
    with pytest.raises(InvalidArgument, match=words):
        check_request(**args, now=NOW)  # type: ignore[arg-type]


def test_the_node_check_names_each_rule_and_counts_jobs_across_restarts(tmp_path: Path) -> None:
    clock = Clock()
    book, budget = GrantBook(tmp_path, clock=clock), BudgetBook(tmp_path, clock=clock)
    missing = book.check("acme", "visits", "sum", 0.0, "j0", budget)
    assert not missing.allowed and missing.code == "grant_missing" and "wharf grant request" in missing.reason
    book.approve(terms(), b"sig")
    assert book.check("acme", "visits", "sum", 0.0, "j1", budget).allowed
    assert "allows sum, mean, not count" in book.check("acme", "visits", "count", 0.0, "j2", budget).reason
    # A restarted node keeps the count: one job left, then none.
    book, budget = GrantBook(tmp_path, clock=clock), BudgetBook(tmp_path, clock=clock)
    assert book.check("acme", "visits", "mean", 0.0, "j3", budget).allowed
    assert "used all 2 of its jobs" in book.check("acme", "visits", "sum", 0.0, "j4", budget).reason
    assert not book.check("other", "visits", "sum", 0.0, "j5", budget).allowed  # another buyer holds nothing


def test_expiry_revocation_and_a_budget_of_its_own(tmp_path: Path) -> None:
    clock = Clock()
    book, budget = GrantBook(tmp_path, clock=clock), BudgetBook(tmp_path, clock=clock)
    book.approve(terms(id="g-2", max_jobs=10, budget=0.3), b"sig")
    assert book.check("acme", "visits", "sum", 0.2, "a", budget).allowed
    assert "less than rho=0.2 of its budget 0.3" in book.check("acme", "visits", "sum", 0.2, "b", budget).reason
    assert book.check("acme", "visits", "sum", 0.1, "c", budget).allowed
    assert book.revoke("g-2", "done") and book.state("g-2") == "REVOKED"
    assert "grant g-2 is revoked" in book.check("acme", "visits", "sum", 0.0, "d", budget).reason
    book.approve(terms(id="g-3"), b"sig")
    clock.t = NOW + YEAR
    assert "expired" in book.check("acme", "visits", "sum", 0.0, "e", budget).reason
    assert not book.revoke("g-unknown")


def test_the_statistic_a_task_asks_for() -> None:
    assert statistic_of("aggregate", "mean") == "mean"
    assert statistic_of("psi") == "psi" and statistic_of("psi", cardinality_only=True) == "psi-cardinality"
    assert statistic_of("psi-sum") == "psi-sum"


def test_the_ledger_domains_are_the_signers_domains() -> None:
    import datawharf.grants as grants
    import datawharf.ledger as ledger
    import datawharf.market as market

    assert (ledger.LISTING_DOMAIN, ledger.DECISION_DOMAIN, ledger.GRANT_DOMAIN) == (
        market.LISTING_DOMAIN, market.DECISION_DOMAIN, grants.GRANT_DOMAIN)


def test_a_gateway_cannot_record_a_grant_the_holder_did_not_sign(tmp_path: Path) -> None:
    """Even with the ledger's own key, widened terms under the holder's real signature fail the audit."""
    from datawharf.ledger import LedgerError, parse_lines, verify
    from gateway.ledger import Ledger

    ca = Authority.init(tmp_path / "ca")
    gateway = ca.issue("gw", Role.GATEWAY, hosts=("127.0.0.1",))
    mary = ca.issue("st-mary", Role.PARTY)
    lines: list[str] = []
    ledger = Ledger.open(tmp_path, lines, gateway, lambda seq, line: lines.append(line))
    t = terms()
    signature = sign_terms(mary, t)

    def approved(recorded: GrantTerms) -> None:
        ledger.append("grant_approved", {"party": "st-mary", "grant": t.id, "terms": recorded.canonical().decode(),
                                         "grant_signature": signature.hex(),
                                         "holder_certificate": mary.cert_pem.decode()},
                      lambda seq, line: lines.append(line))

    approved(t)
    report = verify(list(parse_lines(lines)), trust=mary.trust())
    assert report.signatures == 1
    approved(terms(max_jobs=10**6))
    with pytest.raises(LedgerError, match="entry 2"):
        verify(list(parse_lines(lines)), trust=mary.trust())


def test_a_holder_signs_only_the_terms_of_the_grant_it_was_asked_about(tmp_path: Path) -> None:
    """The gateway hands the holder a grant's terms; mismatched or unreasonable terms are not signed."""
    from buyers.grants import GrantClient
    from datawharf.v1 import grants_pb2

    ca = Authority.init(tmp_path / "ca")
    mary = ca.issue("st-mary", Role.PARTY)
    client = GrantClient("127.0.0.1:1", mary)
    sent: list[object] = []
    client.call = lambda method, request, timeout=None: sent.append(request) or grants_pb2.Grant()  # type: ignore
    real = terms()
    swapped = grants_pb2.Grant(id="g-other", buyer="acme", terms=real.canonical())
    with pytest.raises(InvalidArgument, match="carries the terms of 'g-1'"):
        client.approve(swapped)
    wide = terms(statistics=("sum", "median"))
    with pytest.raises(InvalidArgument, match="median"):
        client.approve(grants_pb2.Grant(id="g-1", buyer="acme", terms=wide.canonical()))
    with pytest.raises(InvalidArgument, match="listed for 'mallory'"):
        client.approve(grants_pb2.Grant(id="g-1", buyer="mallory", terms=real.canonical()))
    assert sent == []  # nothing was signed and sent
    book = GrantBook(tmp_path)
    book.approve(terms(), b"sig")
    book.revoke("g-1")
    with pytest.raises(InvalidArgument, match="revoked here"):
        book.approve(terms(), b"sig")
    client.close()
