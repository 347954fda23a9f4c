"""The attacks on identity that a probe once showed working, over real TLS.

Each test is one attack against real processes (a gateway and two holders,
every channel mutual TLS): a buyer claiming another's name in a header, a
process taking over a holder's name, a sybil holder, a revoked certificate,
a certificate of a foreign CA or of the wrong role. Each now fails to do
harm and is refused with a status that says what to fix.
"""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from buyers.client import Client, JobFailed
from datawharf.errors import FailedPrecondition, NotFound, PermissionDenied, Unauthenticated
from datawharf.identity import caller_metadata
from datawharf.pki import Authority, Credentials, Role
from datawharf.serde import aggregate_from_proto, aggregate_to_proto
from datawharf.tls import channel
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc, common_pb2, party_pb2
from protocols.aggregate import Holder
from tests.exchange import VISITS, Exchange, FakeParty, StartExchange
from wharf.demo import truth
from wharf.local import wait_for

REAL = ("st-mary", "riverside")


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    # riverside does not release variances: a job it refuses shows what the others alone may do.
    return start_exchange("trust", parties=REAL, rows=300, http=True,
                          statistics={"riverside": ["sum", "count", "mean", "histogram"]})


def metric(ex: Exchange, name: str, **labels: str) -> float:
    body = urllib.request.urlopen(f"http://{ex.http_address}/metrics", timeout=5).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{{{re.escape(want)}}} (\S+)$", body, re.M)
    return float(m.group(1)) if m else 0.0


def test_a_header_cannot_make_a_buyer_someone_else(exchange: Exchange) -> None:
    with exchange.client("acme-insurance") as acme:
        job = acme.submit("visits", "cost", "sum", timeout_s=60)
        acme.wait(job)
    # mallory holds a buyer certificate of its own and claims acme's name in the old header.
    ch = exchange.channel("mallory")
    stub = buyer_pb2_grpc.BuyerServiceStub(ch)
    claim = caller_metadata("acme-insurance")
    for call in (stub.GetJob, stub.CancelJob):
        with pytest.raises(grpc.RpcError) as err:
            call(buyer_pb2.GetJobRequest(job_id=job.job_id), metadata=claim, timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "'mallory'" in err.value.details()
    ch.close()
    with exchange.client("acme-insurance") as acme:
        assert acme.status(job.job_id).state == "DONE"


def test_a_job_signed_by_another_buyer_is_refused(exchange: Exchange) -> None:
    # mallory forwards a job acme signed (say, captured earlier): the gateway serves only the signer.
    with exchange.client("acme-insurance") as acme:
        spec = acme.submit("visits", "cost", "count", request_id="original").spec
    signed = exchange.signed(buyer_pb2.SubmitJobRequest(request_id="stolen", aggregate=aggregate_to_proto(spec)),
                             "acme-insurance")
    ch = exchange.channel("mallory")
    with pytest.raises(grpc.RpcError) as err:
        buyer_pb2_grpc.BuyerServiceStub(ch).SubmitJob(signed, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "signed by acme-insurance but sent by mallory" in err.value.details()
    # A body edited after signing does not verify.
    body = buyer_pb2.SubmitJobRequest()
    body.CopyFrom(signed)
    body.signed.body = body.signed.body.replace(b"visits", b"visitz")
    with pytest.raises(grpc.RpcError) as err:
        buyer_pb2_grpc.BuyerServiceStub(exchange.channel("acme-insurance")).SubmitJob(body, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "does not match" in err.value.details()
    # And an unsigned job is not accepted at all.
    with pytest.raises(grpc.RpcError) as err:
        buyer_pb2_grpc.BuyerServiceStub(exchange.channel("acme-insurance")).SubmitJob(
            buyer_pb2.SubmitJobRequest(request_id="plain", aggregate=aggregate_to_proto(spec)), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "signed by their buyer" in err.value.details()
    ch.close()
    assert metric(exchange, "wharf_auth_refusals_total", reason="bad_signature") >= 3


def test_no_certificate_or_a_foreign_one_cannot_connect(exchange: Exchange, tmp_path: Path) -> None:
    with grpc.insecure_channel(exchange.address) as plain:  # plaintext to a TLS port
        with pytest.raises(grpc.RpcError) as err:
            buyer_pb2_grpc.BuyerServiceStub(plain).ListCatalog(buyer_pb2.ListCatalogRequest(),
                                                              metadata=caller_metadata("acme-insurance"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    foreign = Authority.init(tmp_path / "other-ca").issue("acme-insurance", Role.BUYER)
    # The impostor trusts the real gateway's CA but holds a certificate of its own CA.
    forged = Credentials(exchange.ca.ca_pem, foreign.cert_pem, foreign.key_pem)  # type: ignore[union-attr]
    with Client(exchange.address, forged) as c, pytest.raises(Exception) as err2:
        c.catalog()
    assert "TLS handshake failed" in str(err2.value)


def test_roles_are_enforced(exchange: Exchange) -> None:
    before = metric(exchange, "wharf_auth_refusals_total", reason="wrong_role")
    # A holder's certificate cannot submit or read jobs...
    party = Credentials.load(exchange.identity("st-mary", Role.PARTY))
    with Client(exchange.address, party) as c, pytest.raises(PermissionDenied, match="party certificate"):
        c.catalog()
    # ...and a buyer's certificate cannot register a dataset.
    ch = exchange.channel("acme-insurance")
    stub = party_pb2_grpc_stub(ch)
    call = stub.Connect(iter([party_pb2.PartyMessage(register=party_pb2.Register())]), timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        list(call)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "buyer certificate" in err.value.details()
    ch.close()
    assert metric(exchange, "wharf_auth_refusals_total", reason="wrong_role") >= before + 2


def party_pb2_grpc_stub(ch: grpc.Channel):  # type: ignore[no-untyped-def]
    from datawharf.v1 import party_pb2_grpc

    return party_pb2_grpc.PartyServiceStub(ch)


def test_a_live_holder_name_cannot_be_taken(exchange: Exchange) -> None:
    # A process with st-mary's own certificate (a stolen copy, or a second node) is refused while
    # st-mary is connected, instead of taking its tasks.
    creds = Credentials.load(exchange.identity("st-mary", Role.PARTY))
    ch = channel(exchange.address, creds)
    call = party_pb2_grpc_stub(ch).Connect(iter([party_pb2.PartyMessage(register=party_pb2.Register())]),
                                           timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        list(call)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and "already open" in err.value.details()
    ch.close()
    # Another holder's certificate registers under its own name, whatever it calls itself.
    fake = FakeParty(exchange.address, "st-mary", VISITS,
                     creds=Credentials.load(exchange.identity("mallet", Role.PARTY)))
    try:
        assert fake.name == "mallet"  # the certificate's name; the one it claimed is ignored
    finally:
        fake.close()
    with exchange.client() as c:
        answer = c.result(c.submit("visits", "cost", "sum", parties=list(REAL), min_parties=2))
    assert answer.exact == truth(exchange.rows_of(REAL), "cost", "sum", "")


def test_a_sybil_of_one_organisation_does_not_count_twice(exchange: Exchange) -> None:
    # "st-mary-annex" is certified, but as part of st-mary's organisation.
    sybil = exchange.fake_party("st-mary-annex", VISITS, organisation="st-mary")
    try:
        exchange.wait_online(("st-mary-annex",))
        with exchange.client() as c:
            with pytest.raises(FailedPrecondition, match="only 1 organisation"):
                c.submit("visits", "cost", "sum", parties=["st-mary", "st-mary-annex"], min_parties=2)
            # Asked beside a real second organisation that refuses, the sybil's valid encryption of
            # zero still leaves st-mary alone: the job fails instead of releasing st-mary's total.
            job = c.submit("visits", "cost", "variance", parties=["st-mary", "st-mary-annex", "riverside"],
                           min_parties=2, timeout_s=20)
            task = sybil.next("task").task
            spec = aggregate_from_proto(sybil.body(task).aggregate)
            zero = Holder(spec.request).contribute([0] * spec.layout.length)
            sybil.send_chunk(task.task_id, common_pb2.EncryptedFigures(ciphertexts=zero.ciphertexts).SerializeToString())
            # Whether the sybil's answer or riverside's refusal lands first, one organisation cannot
            # make the job's two: it fails, and no total of st-mary's alone is released.
            with pytest.raises(JobFailed, match=r"2 (organisations )?required"):
                c.result(job, timeout_s=60)
    finally:
        sybil.close()


def test_a_holders_own_min_parties_is_enforced_by_the_gateway(exchange: Exchange) -> None:
    strict = exchange.fake_party("strict", dataclasses.replace(VISITS, min_parties=3))
    try:
        exchange.wait_online(("strict",))
        with exchange.client() as c, pytest.raises(FailedPrecondition, match="strict require"):
            c.submit("visits", "cost", "sum", parties=["strict", "st-mary"], min_parties=1)
    finally:
        strict.close()


def test_a_revoked_holder_leaves_the_catalog_and_a_revoked_buyer_is_refused(exchange: Exchange) -> None:
    gone = exchange.fake_party("leaver", VISITS)
    exchange.wait_online(("leaver",))
    with exchange.client("soon-revoked") as doomed:
        doomed.catalog()
        exchange.revoke("leaver")
        exchange.revoke("soon-revoked")
        with exchange.client() as c:
            wait_for("the revoked holder to leave the catalog",
                     lambda: "leaver" not in next(i for i in c.catalog() if i.dataset == "visits").holders, 10,
                     exchange.alive)
        deadline = time.monotonic() + 10
        while True:
            try:
                doomed.catalog()
            except Unauthenticated as exc:
                assert "revoked" in exc.message
                break
            assert time.monotonic() < deadline, "a revoked buyer was still served"
            time.sleep(0.2)
    assert metric(exchange, "wharf_auth_refusals_total", reason="revoked") >= 1
    with pytest.raises(grpc.RpcError) as err:
        list(party_pb2_grpc_stub(channel(exchange.address, gone.creds)).Connect(
            iter([party_pb2.PartyMessage(register=party_pb2.Register())]), timeout=10))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in err.value.details()
    gone.close()
    with exchange.client() as c:  # everyone else is unharmed
        assert c.result(c.submit("visits", "cost", "count", parties=list(REAL))).exact == \
            len(exchange.rows_of(REAL))


def test_unknown_job_ids_reveal_nothing(exchange: Exchange) -> None:
    with exchange.client("mallory") as m, pytest.raises(NotFound):
        m.status("job-0000000000000000")
