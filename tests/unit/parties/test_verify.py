"""What a holder checks before computing: the job is the buyer's, for it, once, under a sound key."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import gmpy2
import pytest

from datawharf.messages import TaskOffer
from datawharf.model import AggregateJob
from datawharf.pki import Authority, Role, TrustStore
from datawharf.serde import aggregate_to_proto
from datawharf.signing import new_body, sign_job
from parties.verify import JobVerifier, Refused
from protocols.aggregate import Buyer
from protocols.figures import Layout, Statistic
from protocols.schemes import Backend


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ca = Authority.init(tmp_path_factory.mktemp("ca") / "ca")
    buyer = ca.issue("acme", Role.BUYER)
    role = Buyer(Layout(Statistic.SUM, 1, 1), 2, Backend.PAILLIER_PACKED, 3)
    job = AggregateJob("visits", "cost", Statistic.SUM, (), 2, role.request.params, 1, None, ())
    return ca, buyer, job


def _task(world, job=None, *, parties=("st-mary",), job_id="job-1", nonce="r1", signer=None):  # type: ignore[no-untyped-def]
    ca, buyer, default = world
    job = job or default
    signer = signer or buyer
    body = new_body(signer, nonce, parties=parties, min_parties=2, aggregate=aggregate_to_proto(job))
    return TaskOffer("task-1", job_id, signer.identity.name, 1, 0.0, default,
                     signed=sign_job(signer, body).SerializeToString(), crl=ca.crl_path.read_bytes())


def verifier(world) -> JobVerifier:  # type: ignore[no-untyped-def]
    ca = world[0]
    return JobVerifier("st-mary", None, TrustStore(ca.ca_pem))


def test_a_signed_job_is_computed_as_signed(world) -> None:  # type: ignore[no-untyped-def]
    checked = verifier(world).check(_task(world))
    assert checked.task.min_parties == 2  # the buyer's, not the gateway's 1
    assert checked.task.spec.encryption.paillier_n == world[2].encryption.paillier_n
    assert len(checked.body_digest) == 32


def test_unsigned_not_asked_and_replayed_jobs_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    v = verifier(world)
    with pytest.raises(Refused, match="not signed") as err:
        v.check(dataclasses.replace(_task(world), signed=b""))
    assert err.value.code == "unsigned_job"
    with pytest.raises(Refused, match="not this holder"):
        v.check(_task(world, parties=("riverside",)))
    v.check(_task(world, nonce="once", job_id="job-a"))
    v.check(_task(world, nonce="once", job_id="job-a"))  # the same job resent after a reconnect
    with pytest.raises(Refused, match="already used for job job-a") as err:
        v.check(_task(world, nonce="once", job_id="job-b"))
    assert err.value.code == "replayed_job"
    with pytest.raises(Refused, match="signed by 'acme'"):
        v.check(dataclasses.replace(_task(world), buyer="someone"))
    later = JobVerifier("st-mary", None, TrustStore(world[0].ca_pem), clock=lambda: time.time() + 2 * 86400)
    with pytest.raises(Refused, match="good for 24 h") as err:
        later.check(_task(world, nonce="old"))
    assert err.value.code == "stale_job"


def test_a_prime_modulus_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    prime = int(gmpy2.next_prime(gmpy2.mpz(1) << 2047 | 12345))
    job = world[2]
    weak = dataclasses.replace(job, encryption=dataclasses.replace(job.encryption, paillier_n=prime))
    with pytest.raises(Refused, match="prime") as err:
        verifier(world).check(_task(world, weak))
    assert err.value.code == "weak_key"
    unproven = dataclasses.replace(job, encryption=dataclasses.replace(job.encryption, modulus_proof=b""))
    with pytest.raises(Refused, match="proof"):
        verifier(world).check(_task(world, unproven))


def test_a_revocation_relayed_by_the_gateway_is_honoured(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca = Authority.init(tmp_path / "ca2")
    buyer = ca.issue("acme", Role.BUYER)
    w = (ca, buyer, world[2])
    v = JobVerifier("st-mary", None, TrustStore(ca.ca_pem))
    v.check(_task(w, nonce="a", job_id="j1"))
    ca.revoke("acme")
    with pytest.raises(Refused, match="revoked"):
        v.check(_task(w, nonce="b", job_id="j2"))  # the task carries the new CRL


def test_the_relayed_set_must_be_the_signed_one(world) -> None:  # type: ignore[no-untyped-def]
    from datawharf.model import PsiJob, PsiMode
    from datawharf.serde import psi_to_proto
    from datawharf.signing import items_digest

    ca, buyer, _ = world
    points = [bytes([i]) * 32 for i in range(3)]
    spec = PsiJob("visits", "patient_id", PsiMode.INTERSECTION, buyer_set_size=3)

    def task(set_digest: bytes, nonce: str) -> TaskOffer:
        body = new_body(buyer, nonce, parties=["st-mary"], min_parties=1, psi=psi_to_proto(spec),
                        set_digest=set_digest)
        return TaskOffer("t", f"job-{nonce}", "acme", 1, 0.0, spec, signed=sign_job(buyer, body).SerializeToString())

    v = verifier(world)
    checked = v.check(task(items_digest(points), "s1"))
    checked.check_set(b"".join(points))
    with pytest.raises(Refused, match="not the one the buyer signed"):
        checked.check_set(b"".join(reversed(points)))
    with pytest.raises(Refused, match="does not fix its set"):
        v.check(task(b"", "s2")).check_set(b"".join(points))


def test_garbage_from_the_gateway_is_a_refusal_not_a_crash(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Refused) as err:
        verifier(world).check(dataclasses.replace(_task(world), signed=b"\x0a\x05garbage-not-protobuf"))
    assert err.value.code == "bad_signature"
