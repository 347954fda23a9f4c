"""Attacks on a real gateway that must do no harm: answers to tasks never given, job floods,
call floods, ping floods, a full spool, and a holder that packs its figures to corrupt the total.

One gateway with small limits and holders driven by hand (FakeParty); each test plays the
attacker and checks the refusal (code, message, retry hint, metrics) and that the gateway is
unharmed (its memory, other callers, the job).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from buyers.client import Client
from datawharf.errors import ResourceExhausted, WharfError
from datawharf.grpc_options import client_options
from datawharf.model import PsiJob, PsiMode
from datawharf.serde import aggregate_from_proto, contribution_to_proto, psi_to_proto
from datawharf.tls import channel_credentials
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc, common_pb2, party_pb2, party_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from protocols.aggregate import Contribution
from protocols.schemes.paillier import PaillierEncryptor
from datawharf.pki import Role
from tests.exchange import VISITS, Exchange, FakeParty

MAX_OPEN_JOBS = 2
JOBS_PER_MINUTE = 4
MAX_CALLS = 6
MAX_RPCS = 24
SPOOL_BYTES = 64 << 10


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    ex = Exchange(tmp_path_factory.mktemp("abuse"), parties=(), http=True)
    try:
        ex.start_gateway("--max-open-jobs", str(MAX_OPEN_JOBS), "--jobs-per-minute", str(JOBS_PER_MINUTE),
                         "--max-calls-per-caller", str(MAX_CALLS), "--max-concurrent-rpcs", str(MAX_RPCS),
                         "--spool-max-bytes", str(SPOOL_BYTES))
        yield ex
    finally:
        ex.stop()


_holders = itertools.count()


@pytest.fixture()
def holder(exchange: Exchange) -> Iterator[FakeParty]:
    """A hand-driven holder of its own per test, so that no test reads another's tasks."""
    fake = exchange.fake_party(f"holder-{next(_holders)}", VISITS)
    exchange.wait_online((fake.name,))
    try:
        yield fake
    finally:
        fake.close()


def gateway_rss_kib(exchange: Exchange) -> int:
    pid = json.loads((exchange.gateway_dir / "gateway.json").read_text())["pid"]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS for the gateway")


def metric(exchange: Exchange, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://{exchange.http_address}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def raw_submit(exchange: Exchange, stub: buyer_pb2_grpc.BuyerServiceStub, buyer: str, request_id: str,
               **spec: object) -> buyer_pb2.Job:
    request = buyer_pb2.SubmitJobRequest(request_id=request_id, timeout_seconds=600, **spec)  # type: ignore[arg-type]
    return stub.SubmitJob(exchange.signed(request, name=buyer), timeout=10)


# ------------------------------------------------------------------ item 1: the first chunk
def test_answers_to_invented_tasks_are_refused_at_the_first_chunk_and_hold_no_memory(
        exchange: Exchange, holder: FakeParty) -> None:
    before = gateway_rss_kib(exchange)
    # 32 answers of 4 MiB each, never finished, under task ids the gateway never gave: 128 MiB
    # that a gateway reassembling before it checks the task holds (its RSS grew 154 MiB).
    mib = b"\x5a" * (1 << 20)
    for i in range(32):
        for seq in range(4):
            holder.send_chunk(f"task-invented-{i:02d}", mib, seq, last=False, sign=False)
    holder.send_chunk("task-sync", b"x", sign=False)  # answered in order: the last notice
    for i in range(32):
        notice = holder.next("notice").notice
        assert notice.task_id == f"task-invented-{i:02d}" and "unknown task" in notice.message
    assert holder.next("notice").notice.task_id == "task-sync"
    grown_mib = (gateway_rss_kib(exchange) - before) / 1024
    print(f"gateway RSS grew by {grown_mib:.1f} MiB over 128 MiB of half-sent answers to invented tasks")
    assert grown_mib < 64


def test_another_holders_task_and_an_answered_task_are_refused(exchange: Exchange, holder: FakeParty) -> None:
    other = exchange.fake_party("eavesdropper", VISITS)
    try:
        exchange.wait_online((other.name,))
        with exchange.client("first-chunk-buyer") as c:
            job = c.submit("visits", "age", "sum", parties=[holder.name], timeout_s=120)
            task = holder.next("task").task
            other.send_chunk(task.task_id, b"\x01" * 1024, 0, last=False, sign=False)
            assert f"unknown task {task.task_id!r}" in other.next("notice").notice.message
            holder.send(party_pb2.PartyMessage(refusal=party_pb2.TaskRefusal(
                task_id=task.task_id, reason="not today", code="min_rows")))
            holder.send_chunk(task.task_id, b"\x01" * 1024, 0, last=False, sign=False)
            notice = holder.next("notice").notice
            assert notice.task_id == task.task_id and "already REFUSED" in notice.message
            assert c.status(job.job_id).state == "FAILED"
    finally:
        other.close()


def test_a_stream_answering_many_tasks_it_was_not_given_is_closed(exchange: Exchange) -> None:
    prober = exchange.fake_party("prober", VISITS)
    try:
        for i in range(200):  # bounded; the gateway gives up after 64
            prober.send_chunk(f"task-probe-{i}", b"x", sign=False)
        prober._reader.join(timeout=60)  # the reader ends with the stream
        assert not prober._reader.is_alive(), "the gateway kept the stream open"
        assert prober._call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "tasks it was not given" in prober._call.details()
    finally:
        prober.close()


# ------------------------------------------------------------- item 2: per-buyer quotas
def test_a_buyer_past_its_quotas_is_refused_with_a_retry_hint(exchange: Exchange, holder: FakeParty) -> None:
    buyer = "flooding-buyer"
    with exchange.client(buyer) as c:
        first = c.submit("visits", "age", "sum", parties=[holder.name], timeout_s=600)
    spec = FakeParty.body(holder.next("task").task).aggregate
    ch = exchange.channel(buyer)
    stub = buyer_pb2_grpc.BuyerServiceStub(ch)
    refused_open = metric(exchange, "wharf_quota_refusals_total", reason="open_jobs")
    try:
        second = raw_submit(exchange, stub, buyer, "two", aggregate=spec, parties=[holder.name])
        with pytest.raises(grpc.RpcError) as err:
            raw_submit(exchange, stub, buyer, "three", aggregate=spec, parties=[holder.name])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"already has {MAX_OPEN_JOBS} jobs running" in err.value.details()
        hint = dict(err.value.trailing_metadata())["retry-after-s"]
        assert int(hint) >= 1 and f"retry in {hint} s" in err.value.details()
        # Resubmitting a job under its request id is not a new job.
        assert raw_submit(exchange, stub, buyer, "two", aggregate=spec, parties=[holder.name]).job_id == second.job_id
        # A finished job makes room; the minute's window still counts it.
        stub.CancelJob(buyer_pb2.GetJobRequest(job_id=first.job_id), timeout=10)
        third = raw_submit(exchange, stub, buyer, "three", aggregate=spec, parties=[holder.name])
        stub.CancelJob(buyer_pb2.GetJobRequest(job_id=second.job_id), timeout=10)
        raw_submit(exchange, stub, buyer, "four", aggregate=spec, parties=[holder.name])
        stub.CancelJob(buyer_pb2.GetJobRequest(job_id=third.job_id), timeout=10)
        with pytest.raises(grpc.RpcError) as err:
            raw_submit(exchange, stub, buyer, "five", aggregate=spec, parties=[holder.name])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"submitted {JOBS_PER_MINUTE} jobs in the last minute" in err.value.details()
        assert 1 <= int(dict(err.value.trailing_metadata())["retry-after-s"]) <= 60
        # Another buyer is not held back by this one.
        with exchange.client("patient-buyer") as other:
            other.cancel(other.submit("visits", "age", "sum", parties=[holder.name], timeout_s=60).job_id)
        # The client library raises the matching error, its message carrying the hint.
        with Client(exchange.address, exchange.identity(buyer)) as c2, pytest.raises(ResourceExhausted,
                                                                                      match="retry in"):
            c2.submit("visits", "age", "sum", parties=[holder.name], timeout_s=60)
    finally:
        ch.close()
    assert metric(exchange, "wharf_quota_refusals_total", reason="open_jobs") == refused_open + 1
    assert metric(exchange, "wharf_quota_refusals_total", reason="job_rate") >= 2
    assert metric(exchange, "grpc_server_handled_total", grpc_method="SubmitJob", grpc_code="RESOURCE_EXHAUSTED") >= 3


# --------------------------------------------------------------- item 3: the server's limits
def test_calls_per_caller_and_in_all_are_capped(exchange: Exchange, holder: FakeParty) -> None:
    buyer = "watching-buyer"
    with exchange.client(buyer) as c:
        job = c.submit("visits", "age", "sum", parties=[holder.name], timeout_s=600)
    ch = exchange.channel(buyer)
    stub = buyer_pb2_grpc.BuyerServiceStub(ch)
    watches = []
    try:
        for _ in range(MAX_CALLS):
            w = stub.WatchJob(buyer_pb2.GetJobRequest(job_id=job.job_id), timeout=60)
            next(w)  # running: the first view came back
            watches.append(w)
        with pytest.raises(grpc.RpcError) as err:
            next(stub.WatchJob(buyer_pb2.GetJobRequest(job_id=job.job_id), timeout=10))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"{buyer} has {MAX_CALLS} calls running at once" in err.value.details()
        # Other callers are served meanwhile.
        with exchange.client("bystander") as other:
            assert other.catalog()
        # The whole server: long health watches (outside the per-caller limit) until gRPC refuses.
        health = health_pb2_grpc.HealthStub(ch)
        refused = None
        for opened in range(2 * MAX_RPCS):
            hw = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
            try:
                next(hw)
            except grpc.RpcError as exc:
                refused = exc
                break
            watches.append(hw)
        assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert opened < MAX_RPCS
    finally:
        for w in watches:
            w.cancel()
        ch.close()
    with exchange.client(buyer) as c:
        c.cancel(job.job_id)


def test_a_ping_flood_is_cut_off(exchange: Exchange) -> None:
    creds = exchange.creds("pinger", Role.PARTY)
    flood = [(k, v) for k, v in client_options() if not k.startswith(("grpc.keepalive", "grpc.http2"))] + [
        ("grpc.keepalive_time_ms", 10), ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0)]
    ch = grpc.secure_channel(exchange.address, channel_credentials(creds), options=flood)
    stub = party_pb2_grpc.PartyServiceStub(ch)
    hello = party_pb2.PartyMessage(register=party_pb2.Register())
    idle: list[party_pb2.PartyMessage] = []

    def messages() -> Iterator[party_pb2.PartyMessage]:
        yield hello
        while not idle:  # send nothing more: a quiet stream, pinged without data
            time.sleep(0.05)

    call = stub.Connect(messages(), timeout=30)
    try:
        assert next(call).WhichOneof("body") == "registered"
        with pytest.raises(grpc.RpcError) as err:
            for _ in call:
                pass
        # Ended by the server's ping policing, long before the call's own deadline.
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "ping" in (err.value.details() or "").lower()
    finally:
        idle.append(hello)
        call.cancel()
        ch.close()
    with exchange.client() as c:  # the gateway is unharmed
        c.catalog()


# ------------------------------------------------------------------ item 4: the spool's quota
def test_an_upload_past_the_spool_quota_is_refused_and_the_job_waits(exchange: Exchange, holder: FakeParty) -> None:
    buyer = "big-set-buyer"
    items = 4096  # 128 KiB of 32-byte points, twice the spool's limit
    ch = exchange.channel(buyer)
    stub = buyer_pb2_grpc.BuyerServiceStub(ch)
    try:
        job = raw_submit(exchange, stub, buyer, "big", parties=[holder.name],
                         psi=psi_to_proto(PsiJob("visits", "patient_id", PsiMode.INTERSECTION, buyer_set_size=items)))
        step = 1024 * 32
        chunks = [buyer_pb2.SetUpload(job_id=job.job_id, chunk=common_pb2.SetChunk(
            stage="A", seq=i, data=bytes([i + 1]) * step, last=i == 3)) for i in range(4)]
        with pytest.raises(grpc.RpcError) as err:
            stub.UploadSet(iter(chunks), timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"PSI spool is full" in err.value.details() and f"of {SPOOL_BYTES} bytes" in err.value.details()
        assert "retry" in err.value.details()
        # Nothing is left half-written, and the job still waits for its set.
        assert not list((exchange.gateway_dir / "spool").rglob("*.part"))
        state = stub.GetJob(buyer_pb2.GetJobRequest(job_id=job.job_id), timeout=10).state
        assert state == buyer_pb2.JOB_STATE_AWAITING_BUYER
        stub.CancelJob(buyer_pb2.GetJobRequest(job_id=job.job_id), timeout=10)
    finally:
        ch.close()
    assert metric(exchange, "wharf_quota_refusals_total", reason="spool_full") >= 1


# ---------------------------------------------------------------- item 5: checked totals
def test_a_holder_that_overflows_a_packed_slot_fails_the_buyers_decryption(
        exchange: Exchange, holder: FakeParty) -> None:
    with exchange.client("careful-buyer") as c:
        job = c.submit("visits", "age", "sum", parties=[holder.name], backend="paillier-packed", timeout_s=120)
        task = holder.next("task").task
        spec = aggregate_from_proto(FakeParty.body(task).aggregate)
        params = spec.request.params
        enc = PaillierEncryptor(params)
        # Slot 0 holds 2^slot_bits + 7: it fits the slot's bits but no honest figure is that large.
        plains = [0] * len(enc.plaintexts([0] * params.length))
        plains[0] = (1 << params.slot_bits) + 7
        payload = contribution_to_proto(Contribution(tuple(enc.raw_encrypt(plains)))).SerializeToString()
        holder.send_chunk(task.task_id, payload)
        with pytest.raises(WharfError, match=r"does not decrypt: packed slot 0 of plaintext 0 \(figure 0\) holds "
                                             r"\d+, above \d+.*overflowed its slot"):
            c.result(job, timeout_s=60)


def test_an_idle_connection_is_closed_and_the_client_comes_back(tmp_path_factory: pytest.TempPathFactory) -> None:
    ex = Exchange(tmp_path_factory.mktemp("idle"), parties=())
    try:
        ex.start_gateway("--idle-timeout", "1")
        states: list[grpc.ChannelConnectivity] = []
        went_idle = threading.Event()

        def seen(state: grpc.ChannelConnectivity) -> None:
            states.append(state)
            if grpc.ChannelConnectivity.READY in states and state == grpc.ChannelConnectivity.IDLE:
                went_idle.set()

        with ex.client() as c:
            c._channel.subscribe(seen)
            c.catalog()  # the connection is up, then carries no call
            assert went_idle.wait(timeout=30), f"the gateway kept an idle connection open: {states}"
            assert c.catalog() == []  # the next call reconnects by itself
            c._channel.unsubscribe(seen)
    finally:
        ex.stop()
