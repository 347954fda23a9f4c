"""The buyer's keystore: round trip, wrong passphrase, tampering, file modes, no secret in clear."""

from __future__ import annotations

import stat

import pytest

from buyers.client import SubmittedJob
from buyers.keystore import Keystore, KeystoreError
from datawharf.model import AggregateJob
from protocols.aggregate import Buyer
from protocols.figures import Layout, Statistic
from protocols.schemes import Backend

JOB = "job-0123abcd"


@pytest.fixture(scope="module")
def job() -> SubmittedJob:
    buyer = Buyer(Layout(Statistic.MEAN, 1, 1), 2, Backend.PAILLIER_PACKED, 3)
    spec = AggregateJob("visits", "cost", Statistic.MEAN, (), 2, buyer.request.params)
    return SubmittedJob(JOB, "req-1", buyer, spec, None, b"\x01" * 32, 2)  # type: ignore[arg-type]


def test_a_stored_job_comes_back_whole(tmp_path, job: SubmittedJob) -> None:  # type: ignore[no-untyped-def]
    store = Keystore(tmp_path / "ks", "correct horse")
    store.save(job, "127.0.0.1:50051", where="age >= 65")
    back = Keystore(tmp_path / "ks", "correct horse").load(JOB)
    assert (back.gateway, back.where) == ("127.0.0.1:50051", "age >= 65")
    assert (back.job.job_id, back.job.request_id, back.job.body_digest, back.job.min_parties) == \
        (JOB, "req-1", b"\x01" * 32, 2)
    assert back.job.spec == job.spec and back.job.buyer.request == job.buyer.request
    assert back.job.buyer.paillier_primes == job.buyer.paillier_primes
    assert store.job_ids() == [JOB]


def test_modes_are_0700_and_0600(tmp_path, job: SubmittedJob) -> None:  # type: ignore[no-untyped-def]
    path = Keystore(tmp_path / "a" / "ks", "pw").save(job, "g:1")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_primes_are_never_in_the_file_in_clear(tmp_path, job: SubmittedJob) -> None:  # type: ignore[no-untyped-def]
    path = Keystore(tmp_path, "pw").save(job, "g:1")
    blob = path.read_bytes()
    for secret in job.buyer.paillier_primes:
        assert str(secret).encode() not in blob
        assert format(secret, "x").encode() not in blob
        assert secret.to_bytes((secret.bit_length() + 7) // 8, "big") not in blob
        # any 16-byte window of the big-endian bytes
        raw = secret.to_bytes((secret.bit_length() + 7) // 8, "big")
        assert not any(raw[i:i + 16] in blob for i in range(0, len(raw) - 16, 8))


def test_a_wrong_passphrase_names_the_file(tmp_path, job: SubmittedJob) -> None:  # type: ignore[no-untyped-def]
    path = Keystore(tmp_path, "right").save(job, "g:1")
    with pytest.raises(KeystoreError, match=f"{path}: does not open: wrong passphrase"):
        Keystore(tmp_path, "wrong").load(JOB)


@pytest.mark.parametrize("where", [10, 30, -1])  # salt, nonce, tag
def test_a_tampered_file_names_the_file(tmp_path, job: SubmittedJob, where: int) -> None:  # type: ignore[no-untyped-def]
    path = Keystore(tmp_path, "pw").save(job, "g:1")
    blob = bytearray(path.read_bytes())
    blob[where] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(KeystoreError, match=f"{path}: does not open"):
        Keystore(tmp_path, "pw").load(JOB)


def test_a_file_renamed_to_another_job_does_not_open(tmp_path, job: SubmittedJob) -> None:  # type: ignore[no-untyped-def]
    store = Keystore(tmp_path, "pw")
    store.save(job, "g:1").rename(store.path("job-other"))
    with pytest.raises(KeystoreError, match="does not open"):
        store.load("job-other")


def test_truncated_missing_and_bad_ids(tmp_path, job: SubmittedJob) -> None:  # type: ignore[no-untyped-def]
    store = Keystore(tmp_path, "pw")
    with pytest.raises(KeystoreError, match="no stored key for job"):
        store.load(JOB)
    store.save(job, "g:1").write_bytes(b"WHARF")
    with pytest.raises(KeystoreError, match="not a wharf keystore file"):
        store.load(JOB)
    with pytest.raises(KeystoreError, match="is not a job id"):
        store.load("../etc/passwd")
    with pytest.raises(KeystoreError, match="passphrase is empty"):
        Keystore(tmp_path, "")


def test_forget_removes_the_file(tmp_path, job: SubmittedJob) -> None:  # type: ignore[no-untyped-def]
    store = Keystore(tmp_path, "pw")
    path = store.save(job, "g:1")
    store.forget(JOB)
    assert not path.exists() and store.job_ids() == []
    with pytest.raises(KeystoreError, match="no stored key"):
        store.forget(JOB)


def test_a_tenseal_job_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    buyer = Buyer(Layout(Statistic.SUM, 1, 1), 0, Backend.BFV, 2)
    spec = AggregateJob("visits", "cost", Statistic.SUM, (), 0, buyer.request.params)
    with pytest.raises(KeystoreError, match="only Paillier jobs can be kept"):
        Keystore(tmp_path, "pw").save(SubmittedJob("j", "r", buyer, spec, None), "g:1")  # type: ignore[arg-type]


def test_without_a_passphrase_jobs_are_listed_and_forgotten_but_not_read(tmp_path, job: SubmittedJob) -> None:  # type: ignore[no-untyped-def]
    Keystore(tmp_path, "pw").save(job, "g:1")
    bare = Keystore(tmp_path, None)
    assert bare.job_ids() == [JOB]
    with pytest.raises(KeystoreError, match="without a passphrase"):
        bare.load(JOB)
    bare.forget(JOB)
    assert bare.job_ids() == []
