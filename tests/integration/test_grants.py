"""Data-use grants over a real gateway and real holders whose visits need a grant.

request → one holder rejects, two approve (signed) → jobs under the grant → a statistic outside
it, the job count used up, a revocation: each refused naming its rule; every step in the ledger.
"""

from __future__ import annotations

import json
import time

import grpc
import pytest
from typer.testing import CliRunner

from buyers.client import JobFailed
from buyers.grants import GrantClient
from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, WharfError
from datawharf.grants import GrantTerms, sign_terms, verify_terms
from datawharf.ledger import parse_lines
from datawharf.pki import Credentials, Role
from datawharf.v1 import grants_pb2
from tests.exchange import Exchange, StartExchange
from wharf.cli import app
from wharf.demo import HOSPITALS

YEAR = 365 * 86400


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("grants", rows=200, grants=True, buyers=("*",))


def holder(exchange: Exchange, name: str, *args: str) -> str:
    out = CliRunner().invoke(app, [*args, "--config", str(exchange.root / f"{name}.toml")])
    assert out.exit_code == 0, out.output
    return out.output


def buyer(exchange: Exchange, name: str = "acme-insurance") -> GrantClient:
    return GrantClient(exchange.address, exchange.identity(name))


def test_the_grant_lifecycle_each_refusal_naming_its_rule(exchange: Exchange) -> None:
    with exchange.client() as c:
        with pytest.raises(JobFailed) as none:
            c.result(c.submit("visits", "cost", "sum"), timeout_s=60)
    assert all(t.state == "REFUSED" and "holds none from this holder" in t.reason for t in none.value.view.tasks)

    with buyer(exchange) as b:
        made = b.request("visits", "pricing 2027", ["sum"], time.time() + YEAR, 2)
    assert sorted(g.party for g in made) == sorted(HOSPITALS) and {g.state for g in made} == {1}
    ids = {g.party: g.id for g in made}
    pending = json.loads(holder(exchange, "st-mary", "grant", "list", "--state", "pending", "--json"))["grants"]
    assert [g["id"] for g in pending] == [ids["st-mary"]] and pending[0]["purpose"] == "pricing 2027"
    assert "approved" in holder(exchange, "st-mary", "grant", "approve", ids["st-mary"])
    assert "approved" in holder(exchange, "northgate", "grant", "approve", ids["northgate"])
    assert "not for this purpose" in holder(exchange, "riverside", "grant", "reject", ids["riverside"],
                                            "--reason", "not for this purpose")

    with exchange.client() as c:
        first = c.result(c.submit("visits", "cost", "sum"), timeout_s=60)
        assert sorted(first.contributors) == ["northgate", "st-mary"]
        (rejected,) = [t for t in first.view.tasks if t.party == "riverside"]
        assert rejected.state == "REFUSED" and "grant" in rejected.reason and "rejected" in rejected.reason
        with pytest.raises(JobFailed) as outside:
            c.result(c.submit("visits", "cost", "mean", min_parties=2), timeout_s=60)
        assert any("allows sum, not mean" in t.reason for t in outside.value.view.tasks)
        c.result(c.submit("visits", "cost", "sum", parties=["st-mary"]), timeout_s=60)  # st-mary's second job
        with pytest.raises(JobFailed) as used:
            c.result(c.submit("visits", "cost", "sum", parties=["st-mary"]), timeout_s=60)
        assert "used all 2 of its jobs" in used.value.view.tasks[0].reason
        holder(exchange, "northgate", "grant", "revoke", ids["northgate"], "--reason", "contract ended")
        with pytest.raises(JobFailed) as revoked:
            c.result(c.submit("visits", "cost", "sum", parties=["northgate"]), timeout_s=60)
        assert f"grant {ids['northgate']} is revoked" in revoked.value.view.tasks[0].reason

    with buyer(exchange) as b:
        states = {g.party: (g.state, g.reason) for g in b.list()}
    assert states["riverside"] == (grants_pb2.GRANT_STATE_REJECTED, "not for this purpose")
    assert states["northgate"] == (grants_pb2.GRANT_STATE_REVOKED, "contract ended")
    # The holder keeps the purpose with each job it served under the grant.
    used_lines = [json.loads(line) for line in (exchange.root / ".wharf-state-st-mary" / "receipts.jsonl")
                  .read_text().splitlines() if '"grant_used"' in line]
    assert len(used_lines) == 2 and {u["purpose"] for u in used_lines} == {"pricing 2027"}
    # And the ledger has every step, the approval with the holder's signature over the terms.
    out = CliRunner().invoke(app, ["audit", "export", "--data-dir", str(exchange.gateway_dir),
                                   "--out", str(exchange.root / "ledger.jsonl")])
    assert out.exit_code == 0, out.output
    entries = list(parse_lines((exchange.root / "ledger.jsonl").read_text().splitlines()))
    kinds = [e.kind for e in entries if e.kind.startswith("grant_")]
    assert kinds.count("grant_requested") == 3 and kinds.count("grant_approved") == 2
    assert "grant_rejected" in kinds and "grant_revoked" in kinds
    assert exchange.ca is not None
    verified = CliRunner().invoke(app, ["audit", "verify", str(exchange.root / "ledger.jsonl"),
                                        "--ca", str(exchange.ca.dir / "ca.pem")])
    assert verified.exit_code == 0 and "ledger verifies" in verified.output, verified.output
    # A grant whose recorded terms were widened after the fact no longer verifies.
    lines = (exchange.root / "ledger.jsonl").read_text().splitlines()
    forged = [line.replace('\\"max_jobs\\":2', '\\"max_jobs\\":200') if '"grant_approved"' in line else line
              for line in lines]
    assert forged != lines
    (exchange.root / "forged.jsonl").write_text("\n".join(forged) + "\n")
    tampered = CliRunner().invoke(app, ["audit", "verify", str(exchange.root / "forged.jsonl"),
                                        "--ca", str(exchange.ca.dir / "ca.pem")])
    assert tampered.exit_code != 0
    approved = next(e for e in entries if e.kind == "grant_approved" and e.fields["party"] == "st-mary")
    verify_terms(str(approved.fields["holder_certificate"]).encode(),
                 GrantTerms.parse(str(approved.fields["terms"]).encode()),
                 bytes.fromhex(str(approved.fields["grant_signature"])))


def test_who_may_decide_and_forged_approvals(exchange: Exchange) -> None:
    with buyer(exchange, "mallory") as m:
        (g,) = m.request("visits", "probe", ["count"], time.time() + 3600, 1, parties=["st-mary"])
        # A buyer cannot decide its own request.
        with pytest.raises(WharfError) as denied:
            m.reject(g.id, "x")
        assert denied.value.code is grpc.StatusCode.PERMISSION_DENIED
    riverside = Credentials.load(exchange.identity("riverside", Role.PARTY))
    with GrantClient(exchange.address, riverside) as r:
        with pytest.raises(NotFound):  # another holder's grant reads as no grant at all
            r.reject(g.id, "not mine")
        # A signature over widened terms, or by the wrong holder, does not approve anything.
        wide = GrantTerms.parse(g.terms)
        forged = sign_terms(riverside, GrantTerms(wide.id, wide.buyer, "riverside", wide.dataset, wide.purpose,
                                                  wide.statistics, wide.until, 10**6, wide.budget))
    mary = Credentials.load(exchange.identity("st-mary", Role.PARTY))
    with GrantClient(exchange.address, mary) as s:
        with pytest.raises(WharfError) as bad:
            s.call(s.grants_stub.DecideGrant, grants_pb2.GrantDecision(
                id=g.id, action=grants_pb2.GrantDecision.ACTION_APPROVE, signature=forged))
        assert bad.value.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        assert s.find(g.id).state == grants_pb2.GRANT_STATE_PENDING
        with pytest.raises(FailedPrecondition, match="only an approved grant can be revoked"):
            s.revoke(g.id, "x")


def test_bad_requests_and_a_request_flood(exchange: Exchange) -> None:
    with buyer(exchange, "flooder") as f:
        with pytest.raises(InvalidArgument, match="median"):
            f.request("visits", "p", ["median"], time.time() + 3600, 1)
        with pytest.raises(InvalidArgument, match="future"):
            f.request("visits", "p", ["sum"], time.time() - 1, 1)
        with pytest.raises(NotFound, match="no holder lists"):
            f.request("nothing", "p", ["sum"], time.time() + 3600, 1)
        for _ in range(85):  # 85 x 3 holders = 255 pending
            f.request("visits", "p", ["sum"], time.time() + 3600, 1)
        with pytest.raises(ResourceExhausted, match="at most 256"):
            f.request("visits", "p", ["sum"], time.time() + 3600, 1)
