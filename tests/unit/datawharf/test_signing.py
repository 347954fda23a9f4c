"""Signed jobs and receipts, opened and checked the way holders and buyers do."""

from __future__ import annotations

from pathlib import Path

import pytest

from datawharf.errors import InvalidArgument
from datawharf.pki import Authority, CertificateError, Role, RoleError, SignatureError, TrustStore, digest
from datawharf.signing import (
    check_receipts,
    check_stages,
    new_body,
    open_job,
    sign_job,
    sign_receipt,
    stage_digests,
    stages_digest,
    verify_receipt,
)
from datawharf.v1 import common_pb2


@pytest.fixture()
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    ca = Authority.init(tmp_path / "ca")
    return ca, TrustStore(ca.ca_pem, crl_path=ca.crl_path)


def _job(creds):  # type: ignore[no-untyped-def]
    return sign_job(creds, new_body(creds, "r1", parties=["a"], min_parties=1,
                                    psi=common_pb2.PsiSpec(dataset="visits", key_column="id")))


def test_open_job_checks_signer_role_and_body(world) -> None:  # type: ignore[no-untyped-def]
    ca, trust = world
    buyer = ca.issue("acme", Role.BUYER)
    signed = _job(buyer)
    opened = open_job(signed.SerializeToString(), trust)
    assert opened.buyer.name == "acme" and opened.body.psi.dataset == "visits"
    assert opened.body_digest == digest(signed.body)
    tampered = common_pb2.SignedJob()
    tampered.CopyFrom(signed)
    tampered.body = signed.body.replace(b"visits", b"visitz")
    with pytest.raises(SignatureError, match="does not match"):
        open_job(tampered, trust)
    with pytest.raises(RoleError, match="party certificate"):
        open_job(_job(ca.issue("st-mary", Role.PARTY)), trust)
    swapped = common_pb2.SignedJob(body=signed.body, signature=signed.signature,
                                   certificate=ca.issue("mallory", Role.BUYER).cert_pem)
    with pytest.raises(SignatureError):
        open_job(swapped, trust)
    with pytest.raises(SignatureError, match="not signed"):
        open_job(common_pb2.SignedJob(body=signed.body), trust)
    ca.revoke("acme")
    trust.refresh()
    with pytest.raises(CertificateError, match="revoked"):
        open_job(signed, trust)


def test_a_body_naming_another_buyer_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    ca, trust = world
    buyer = ca.issue("acme", Role.BUYER)
    body = new_body(buyer, "r", parties=[], min_parties=1, psi=common_pb2.PsiSpec(dataset="d"))
    body.buyer = "someone-else"
    with pytest.raises(SignatureError, match="names buyer 'someone-else'"):
        open_job(sign_job(buyer, body), trust)
    with pytest.raises(InvalidArgument, match="no spec"):
        open_job(sign_job(buyer, new_body(buyer, "r", parties=[], min_parties=1)), trust)


def test_receipts_prove_who_contributed_to_which_job(world) -> None:  # type: ignore[no-untyped-def]
    ca, trust = world
    job = digest(b"job body")
    a = ca.issue("st-mary", Role.PARTY, organisation="stm")
    b = ca.issue("st-mary-annex", Role.PARTY, organisation="stm")
    c = ca.issue("riverside", Role.PARTY)
    ra, rb, rc = (sign_receipt(x, job, digest(b"payload")) for x in (a, b, c))
    assert [h.name for h in check_receipts([ra, rc], trust, job, contributors=["st-mary", "riverside"],
                                           min_parties=2)] == ["st-mary", "riverside"]
    with pytest.raises(SignatureError, match="names riverside as contributor"):
        check_receipts([ra], trust, job, contributors=["st-mary", "riverside"], min_parties=1)
    with pytest.raises(SignatureError, match="more than once"):
        check_receipts([ra, rc], trust, job, contributors=["st-mary", "st-mary", "riverside"], min_parties=1)
    with pytest.raises(SignatureError, match="1 organisation"):
        check_receipts([ra, rb], trust, job, contributors=["st-mary", "st-mary-annex"], min_parties=2)
    with pytest.raises(SignatureError, match="does not match"):
        check_receipts([ra], trust, digest(b"another job"), contributors=["st-mary"], min_parties=1)
    forged = common_pb2.ContributionReceipt()
    forged.CopyFrom(rc)
    forged.party = "st-mary"  # riverside's receipt relabelled
    with pytest.raises(SignatureError, match="carries the certificate of 'riverside'"):
        check_receipts([forged], trust, job, contributors=["st-mary"], min_parties=1)


def test_psi_receipts_vouch_for_each_stage(world) -> None:  # type: ignore[no-untyped-def]
    ca, trust = world
    holder = ca.issue("st-mary", Role.PARTY)
    job = digest(b"job body")
    digests = stage_digests({"W": b"w" * 64, "S": b"s" * 80})
    r = sign_receipt(holder, job, stages_digest(digests), stages=digests)
    verify_receipt(r, trust, job)
    check_stages(r, {"W": digest(b"w" * 64)})
    with pytest.raises(SignatureError, match="stage W as relayed"):
        check_stages(r, {"W": digest(b"x" * 64)})
    r.stages[0].digest = digest(b"x" * 64)  # a gateway rewriting the listed digest breaks the signed one
    with pytest.raises(SignatureError, match="does not cover"):
        verify_receipt(r, trust, job)


def test_stages_digest_depends_on_order_and_names() -> None:
    a, b = digest(b"a"), digest(b"b")
    assert stages_digest({"W": a, "S": b}) != stages_digest({"S": b, "W": a})
    assert stages_digest({"W": a, "S": b}) != stages_digest({"W": b, "S": a})
