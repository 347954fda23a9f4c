"""A gateway that lies, and the holders and buyer who catch it.

The gateway here is the real one, run in this test's process so that a test
can make it misbehave (monkeypatching its bookkeeping): swap the buyer's
Paillier key in the job it relays, relay a job it signed itself, strip the
buyer's signature, or name a holder as a contributor without that holder's
signed receipt. The holders are real ``wharf party serve`` processes and the
buyer the real client, over mutual TLS. Holders refuse to compute on a job
the buyer did not sign; the buyer refuses a result whose contributors did
not sign for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any, Iterator

import pytest

from buyers.client import JobFailed
from datawharf.errors import PermissionDenied
from datawharf.pki import Credentials, Role
from datawharf.signing import sign_job
from datawharf.v1 import common_pb2
from gateway.app import GatewaySettings, serve
from gateway.jobs.book import JobBook
from gateway.spool import Spool
from gateway.store import SqliteStore
from protocols.schemes.paillier import generate_keypair
from tests.exchange import Exchange
from wharf.demo import truth
from wharf.local import wait_for

REAL = ("st-mary", "riverside")


class RogueExchange(Exchange):
    """Holders as processes; the gateway in this process, where tests can corrupt it."""

    def start_gateway(self, *extra: str, listen: str = "127.0.0.1:0", timeout_s: float = 30) -> str:
        assert self.ca is not None
        settings = GatewaySettings(listen=listen, data_dir=self.gateway_dir, listing_review=False,
                                   identity=self.identity("gateway", Role.GATEWAY), crl=self.ca.crl_path)
        ready = self.gateway_dir / "gateway.json"
        ready.unlink(missing_ok=True)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve(settings, self._stop))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        wait_for("the in-process gateway", ready.exists, timeout_s, self.alive)
        self.address = json.loads(ready.read_text())["address"]
        return self.address

    def stop(self) -> None:
        super().stop()
        if getattr(self, "_thread", None) is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RogueExchange]:
    ex = RogueExchange(tmp_path_factory.mktemp("rogue"), parties=REAL, rows=200)
    try:
        yield ex.start()  # type: ignore[misc]
    finally:
        ex.stop()


def _swap_key(signed: bytes, n: int) -> bytes:
    """The buyer's signed job with its Paillier modulus replaced, signature kept."""
    s = common_pb2.SignedJob.FromString(signed)
    body = common_pb2.JobBody.FromString(s.body)
    body.aggregate.encryption.paillier_n = n.to_bytes((n.bit_length() + 7) // 8, "big")
    s.body = body.SerializeToString()
    return s.SerializeToString()


def _reasons(err: pytest.ExceptionInfo[JobFailed]) -> dict[str, str]:
    """Each holder's refusal (the job fails at the first; holders not yet heard from are left out)."""
    reasons = {t.party: t.reason for t in err.value.view.tasks if "before this holder answered" not in t.reason}
    assert reasons, err.value.view
    return reasons


@pytest.fixture(scope="module")
def gateway_key() -> int:
    return generate_keypair(2048)[0].n  # the operator's own modulus, whose secret it would hold


def test_a_swapped_buyer_key_is_refused_by_every_holder(exchange: RogueExchange, monkeypatch: pytest.MonkeyPatch,
                                                        gateway_key: int) -> None:
    honest = JobBook.offer
    n = gateway_key

    def offer(self: JobBook, job: Any, task_id: str, **kw: Any) -> Any:
        o = honest(self, job, task_id, **kw)
        return dataclasses.replace(o, signed=_swap_key(o.signed, n))

    monkeypatch.setattr(JobBook, "offer", offer)
    with exchange.client() as c, pytest.raises(JobFailed) as err:
        c.result(c.submit("visits", "cost", "sum", backend="paillier-packed", min_parties=2, timeout_s=30))
    for party, reason in _reasons(err).items():
        assert "signature does not hold" in reason and "does not match" in reason, (party, reason)


def test_a_job_the_gateway_signed_itself_is_refused(exchange: RogueExchange, monkeypatch: pytest.MonkeyPatch,
                                                     gateway_key: int) -> None:
    honest = JobBook.offer
    mine = Credentials.load(exchange.identity("gateway", Role.GATEWAY))

    def offer(self: JobBook, job: Any, task_id: str, **kw: Any) -> Any:
        o = honest(self, job, task_id, **kw)
        body = common_pb2.JobBody.FromString(common_pb2.SignedJob.FromString(o.signed).body)
        n = gateway_key
        body.aggregate.encryption.paillier_n = n.to_bytes((n.bit_length() + 7) // 8, "big")
        body.buyer = "gateway"
        return dataclasses.replace(o, signed=sign_job(mine, body).SerializeToString(), buyer="gateway")

    monkeypatch.setattr(JobBook, "offer", offer)
    with exchange.client() as c, pytest.raises(JobFailed) as err:
        c.result(c.submit("visits", "cost", "sum", backend="paillier-packed", timeout_s=30))
    for reason in _reasons(err).values():
        assert "gateway certificate" in reason and "buyer" in reason, reason


def test_an_unsigned_job_is_refused(exchange: RogueExchange, monkeypatch: pytest.MonkeyPatch) -> None:
    honest = JobBook.offer
    monkeypatch.setattr(JobBook, "offer", lambda self, job, task_id, **kw: dataclasses.replace(
        honest(self, job, task_id, **kw), signed=b""))
    with exchange.client() as c, pytest.raises(JobFailed) as err:
        c.result(c.submit("visits", "cost", "count", timeout_s=30))
    assert all("not signed by its buyer" in r for r in _reasons(err).values())


def test_the_gateways_copy_of_the_spec_is_ignored(exchange: RogueExchange, monkeypatch: pytest.MonkeyPatch,
                                                  gateway_key: int) -> None:
    # The gateway swaps the key only in its own copy of the spec: holders compute on the signed one,
    # so the buyer decrypts the right answer and the gateway's key opens nothing.
    honest = JobBook.offer

    def offer(self: JobBook, job: Any, task_id: str, **kw: Any) -> Any:
        o = honest(self, job, task_id, **kw)
        enc = dataclasses.replace(o.spec.encryption, paillier_n=gateway_key)
        return dataclasses.replace(o, spec=dataclasses.replace(o.spec, encryption=enc))

    monkeypatch.setattr(JobBook, "offer", offer)
    with exchange.client() as c:
        answer = c.result(c.submit("visits", "cost", "sum", backend="paillier-packed", min_parties=2, timeout_s=30))
    assert answer.exact == truth(exchange.rows_of(REAL), "cost", "sum", "")


def test_a_contributor_named_without_its_receipt_is_detected(exchange: RogueExchange,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway drops riverside's receipt (as it would if it had dropped riverside and forged its name).
    honest = SqliteStore.receipts
    monkeypatch.setattr(SqliteStore, "receipts", lambda self, job_id: [
        r for r in honest(self, job_id) if common_pb2.ContributionReceipt.FromString(r).party != "riverside"])
    with exchange.client() as c:
        job = c.submit("visits", "cost", "sum", min_parties=2, timeout_s=30)
        with pytest.raises(PermissionDenied, match="names riverside as contributor.*without their signed receipt"):
            c.result(job)


def test_a_receipt_for_another_job_is_detected(exchange: RogueExchange, monkeypatch: pytest.MonkeyPatch) -> None:
    # Receipts replayed from an earlier job do not vouch for this one.
    kept: dict[str, list[bytes]] = {}
    honest = SqliteStore.receipts

    def receipts(self: SqliteStore, job_id: str) -> list[bytes]:
        got = honest(self, job_id)
        return kept.setdefault("first", got)

    monkeypatch.setattr(SqliteStore, "receipts", receipts)
    with exchange.client() as c:
        c.result(c.submit("visits", "cost", "count", min_parties=2, timeout_s=30))  # primes "first"
        with pytest.raises(PermissionDenied, match="does not match"):
            c.result(c.submit("visits", "age", "count", min_parties=2, timeout_s=30))


def test_a_swapped_buyer_set_is_refused(exchange: RogueExchange, monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway relays its own guesses in place of the buyer's blinded points (to test which the
    # holder has): the set's digest is in the signed job, so the holder refuses.
    honest = Spool.chunks

    def chunks(self: Spool, job_id: str, stage: str, item: int = 1) -> Any:
        for seq, data, last in honest(self, job_id, stage, item):
            yield seq, (bytes(32) + data[32:] if stage == "A" and seq == 0 else data), last

    monkeypatch.setattr(Spool, "chunks", chunks)
    ids = [r["patient_id"] for r in exchange.rows_of(["st-mary"])][:20]
    with exchange.client() as c, pytest.raises(JobFailed) as err:
        c.psi("visits", "patient_id", ids, party="st-mary", timeout_s=20, parallel=False)
    assert "not the one the buyer signed" in _reasons(err)["st-mary"]


def test_a_prime_modulus_is_refused_by_the_gateway_and_by_every_holder(exchange: RogueExchange,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A buyer (say, colluding with whoever watches the wire) signs a job whose "Paillier modulus" is a
    # prime, under which anyone can decrypt. The gateway refuses it; a gateway that does not check
    # (patched here) still gets nothing, because every holder refuses it too.
    import gmpy2
    import grpc

    from datawharf.serde import aggregate_to_proto
    from datawharf.v1 import buyer_pb2, buyer_pb2_grpc

    prime = int(gmpy2.next_prime(gmpy2.mpz(1) << 2047 | 977))
    with exchange.client() as c:
        honest = c.submit("visits", "cost", "sum", backend="paillier-packed", request_id="honest")
    spec = aggregate_to_proto(honest.spec)
    spec.encryption.paillier_n = prime.to_bytes(256, "big")
    stub = buyer_pb2_grpc.BuyerServiceStub(exchange.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitJob(exchange.signed(buyer_pb2.SubmitJobRequest(request_id="prime-1", aggregate=spec)), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "prime" in err.value.details()

    import gateway.jobs.aggregate as gateway_aggregate

    monkeypatch.setattr(gateway_aggregate.agg, "encryptor", lambda params: None)
    job = stub.SubmitJob(exchange.signed(buyer_pb2.SubmitJobRequest(request_id="prime-2", aggregate=spec,
                                                                    timeout_seconds=20)), timeout=10)
    with exchange.client() as c:
        view = c.wait(job.job_id, timeout_s=60)
    reasons = {t.party: t.reason for t in view.tasks if "before this holder answered" not in t.reason}
    assert view.state == "FAILED" and reasons
    assert all("Paillier key is refused" in r and "prime" in r for r in reasons.values()), reasons


def test_a_holder_stage_altered_on_its_way_to_the_buyer_is_detected(exchange: RogueExchange,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway reorders the holder's answer W before the buyer downloads it (any change would
    # do): the holder's receipt lists W's digest, so the buyer refuses the result.
    from gateway.jobs.psi import PsiJobs
    from datawharf.messages import StagePiece

    honest = PsiJobs.download

    def download(self: PsiJobs, buyer: str, job_id: str, stage: str) -> list[StagePiece]:
        pieces = list(honest(self, buyer, job_id, stage))  # the honest one streams from the spool
        if stage == "W" and len(pieces[0].data) >= 64:
            d = pieces[0].data
            pieces[0] = dataclasses.replace(pieces[0], data=d[32:64] + d[:32] + d[64:])
        return pieces

    monkeypatch.setattr(PsiJobs, "download", download)
    ids = [r["patient_id"] for r in exchange.rows_of(["st-mary"])][:20]
    with exchange.client() as c, pytest.raises(PermissionDenied, match="stage W as relayed is not what st-mary"):
        c.psi("visits", "patient_id", ids, party="st-mary", timeout_s=20, parallel=False)
