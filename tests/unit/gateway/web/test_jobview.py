"""The job page's JSON: timings, bytes, history and stages of real jobs, and never their secrets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from datawharf.chunking import split_items
from datawharf.messages import HolderUpload, SetForHolder, StagePiece
from datawharf.model import ColumnKind, ColumnSpec, Listing, PsiJob
from datawharf.serde import contribution_to_proto
from datawharf.states import JobState
from datawharf.v1 import common_pb2
from gateway.dispatch import InMemoryDispatcher
from gateway.jobs import Orchestrator
from gateway.spool import Spool
from gateway.store import SqliteStore
from gateway.web.app import create_app
from gateway.web.jobview import job_detail, valid_job_id
from protocols import psi
from protocols.aggregate import Holder
from protocols.figures import Layout, Statistic, local_figures
from protocols.psi_stages import PsiMode, Stage, item_bytes
from protocols.schemes.paillier import generate_keypair
from tests.jobs import make_job

VISITS = Listing("visits", (ColumnSpec("age", ColumnKind.INT, aggregate=True),), 100)
SUBSCRIBERS = Listing("subscribers", (ColumnSpec("phone", ColumnKind.STRING, join_key=True),
                                      ColumnSpec("spend", ColumnKind.INT, psi_value=True)), 100)
HOLDER_IDS = [f"+44-{i:06d}" for i in range(60)]
BUYER_IDS = [f"+44-{i:06d}" for i in range(40, 90)]


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair(2048)  # Blum primes, so the spec carries a modulus proof


class World:
    def __init__(self, root: Path, listing: Listing, parties: tuple[str, ...]) -> None:
        self.now = 1_000_000.0
        self.dispatcher = InMemoryDispatcher()
        self.store = SqliteStore(root / "g.db")
        self.orch = Orchestrator(self.store, self.dispatcher, clock=lambda: self.now, spool=Spool(root / "spool"))
        for p in parties:
            self.dispatcher.connect(p)
            self.orch.party_connected(p, [listing])

    def detail(self, job_id: str) -> dict[str, Any]:
        detail = job_detail(self.store, job_id, self.now)
        assert detail is not None
        return detail


def encodings(secret: bytes) -> list[str]:
    """How bytes would look in JSON text: hex either case, base64 either alphabet, padded or not."""
    out = [secret.hex(), secret.hex().upper()]
    for b64 in (base64.b64encode(secret), base64.urlsafe_b64encode(secret)):
        out += [b64.decode(), b64.decode().rstrip("=")]
    return out


def assert_no_secret(body: str, secrets: dict[str, bytes]) -> None:
    for name, secret in secrets.items():
        assert len(secret) >= 16, name  # shorter byte strings could match by chance
        for piece in (secret, secret[:24], secret[-24:]):
            for text in encodings(piece):
                assert text not in body, f"{name} appears in the job's JSON"
    # Whatever the encoding, a copied key or ciphertext would be a long unbroken run.
    runs = re.findall(r"[A-Za-z0-9+/_=-]{40,}", body)
    assert runs == [], runs


def by_party(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["party"]: t for t in detail["tasks"]}


def test_aggregate_job_timings_bytes_history_no_secrets(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        w = World(tmp_path, VISITS, ("a", "b", "c"))
        buyer, spec = make_job("sum", "age", places=0, keypair=keypair)
        # Random stand-ins for the buyer's SignedJob and the holders' receipts: without a trust
        # store the gateway keeps and relays them unchecked, which is all this needs.
        signed = common_pb2.SignedJob(body=os.urandom(120), signature=os.urandom(64)).SerializeToString()
        view = await w.orch.submit("buyer", "r1", spec, parties=[], min_parties=1, timeout_s=60, signed=signed)
        job_id = view.job_id
        running = w.detail(job_id)
        assert running["job"]["state"] == JobState.DISPATCHED and not running["job"]["final"]
        assert all(t["dispatched_at"] == 1_000_000.0 and t["answer_s"] is None for t in running["tasks"])

        payloads, receipts = {}, {}
        for party, values, at in (("a", [1, 2], 1_000_002.5), ("b", [10], 1_000_003.0)):
            w.now = at
            figures, _ = local_figures(Layout(Statistic.SUM), np.array(values, dtype=np.int64))
            payloads[party] = contribution_to_proto(Holder(buyer.request).contribute(figures)).SerializeToString()
            receipts[party] = common_pb2.ContributionReceipt(
                party=party, content_digest=os.urandom(32), signature=os.urandom(64)).SerializeToString()
            task = w.dispatcher.tasks_for(party)[-1]
            await w.orch.contribution(party, task.task_id, payloads[party], receipt=receipts[party])
        w.now = 1_000_004.0
        await w.orch.refusal("c", w.dispatcher.tasks_for("c")[-1].task_id, "policy: too few rows match")
        # A late repeat names only its task; the page still lists it under the job.
        await w.orch.contribution("a", w.dispatcher.tasks_for("a")[-1].task_id, payloads["a"])

        detail = w.detail(job_id)
        job = detail["job"]
        assert job["state"] == JobState.DONE and job["final"] and job["finished_at"] > 0
        assert (job["type"], job["backend"], job["buyer"], job["dataset"]) == (
            "aggregate", spec.encryption.backend.value, "buyer", "visits")
        assert job["created_at"] == 1_000_000.0 and job["deadline"] == 1_000_060.0
        tasks = by_party(detail)
        assert tasks["a"]["state"] == "CONTRIBUTED" and tasks["a"]["answer_s"] == 2.5
        assert tasks["a"]["bytes"] == len(payloads["a"]) and tasks["b"]["bytes"] == len(payloads["b"])
        assert tasks["b"]["answer_s"] == 3.0 and tasks["b"]["answered_at"] == 1_000_003.0
        assert tasks["c"]["state"] == "REFUSED" and tasks["c"]["answer_s"] == 4.0 and tasks["c"]["bytes"] == 0
        assert tasks["c"]["reason"] == "policy: too few rows match"
        events = [(e["event"], e["party"]) for e in detail["history"]]
        assert events == [("job_submitted", ""), ("task_offered", "a"), ("task_offered", "b"), ("task_offered", "c"),
                          ("contribution", "a"), ("contribution", "b"),
                          ("refused", "c"), ("job_done", ""), ("destroyed", ""), ("rejected_message", "a")]
        assert detail["stages"] == []

        stored = common_pb2.AggregateSpec.FromString(w.store.job(job_id).spec)  # type: ignore[union-attr]
        enc = stored.encryption
        assert enc.paillier_n and enc.paillier_modulus_proof  # the check below would be empty otherwise
        secrets = {"paillier_n": enc.paillier_n, "modulus proof": enc.paillier_modulus_proof,
                   "spec": stored.SerializeToString(), "signed job": signed,
                   **{f"receipt {p}": r for p, r in receipts.items()}}
        for party, payload in payloads.items():
            for i, ct in enumerate(common_pb2.EncryptedFigures.FromString(payload).ciphertexts):
                secrets[f"ciphertext {party}[{i}]"] = ct
        body = json.dumps(detail)
        assert_no_secret(body, secrets)
        assert str(int.from_bytes(enc.paillier_n, "big")) not in body

    asyncio.run(go())


async def upload(w: World, job_id: str, stage: Stage, items: list[bytes], per_chunk: int) -> None:
    async def pieces() -> AsyncIterator[StagePiece]:
        chunks = [b"".join(items[i:i + per_chunk]) for i in range(0, len(items), per_chunk)]
        for seq, data in enumerate(chunks):
            yield StagePiece(stage, seq, data, seq == len(chunks) - 1)

    await w.orch.upload_set("buyer", job_id, pieces())


def test_psi_job_stages_timings_and_bytes(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path, SUBSCRIBERS, ("h",))
        buyer, holder = psi.Buyer(BUYER_IDS), psi.Holder(HOLDER_IDS)
        spec = PsiJob("subscribers", "phone", PsiMode.INTERSECTION, buyer_set_size=len(buyer.unique))
        job_id = (await w.orch.submit("buyer", "r1", spec, parties=[], timeout_s=60)).job_id
        assert w.detail(job_id)["stages"] == []

        w.now += 1
        await upload(w, job_id, Stage.A, buyer.blinded(), per_chunk=10)
        (task,) = w.dispatcher.tasks_for("h")
        data = b"".join(m.piece.data for m in w.dispatcher.to("h") if isinstance(m, SetForHolder))
        d, wpts = holder.answer([data[i:i + 32] for i in range(0, len(data), 32)], cardinality_only=False)
        w.now += 2.25
        sent = 0
        for stage, items in ((Stage.D, d), (Stage.W, wpts)):
            for seq, chunk in enumerate(split_items(b"".join(items), item_bytes(stage))):
                sent += len(chunk)
                await w.orch.holder_upload("h", HolderUpload(task.task_id, StagePiece(stage, seq, chunk, True)))
        running = w.detail(job_id)
        assert {s["stage"] for s in running["stages"]} == {"A", "D", "W"}  # known before the job ends
        await w.orch.holder_upload("h", HolderUpload(task.task_id, done=True, min_intersection=1))
        w.now += 1
        z = buyer.reblind([b"".join(p.data for p in w.orch.download_set("buyer", job_id, "W"))[i:i + 32]
                           for i in range(0, len(wpts) * 32, 32)])
        await upload(w, job_id, Stage.Z, z, per_chunk=len(z))

        detail = w.detail(job_id)
        assert detail["job"]["state"] == JobState.DONE and detail["job"]["type"] == "psi"
        assert not (tmp_path / "spool" / job_id).exists()  # the counts outlived the spool
        (t,) = detail["tasks"]
        assert t["state"] == "CONTRIBUTED" and t["answer_s"] == 2.25 and t["bytes"] == sent == 32 * (50 + 60)
        stages = {s["stage"]: s for s in detail["stages"]}
        assert [s["stage"] for s in detail["stages"]] == ["A", "D", "W", "Z"]
        assert (stages["A"]["sender"], stages["A"]["items"], stages["A"]["chunks"], stages["A"]["bytes"]) == (
            "buyer", 50, 5, 50 * 32)
        assert (stages["D"]["sender"], stages["D"]["items"]) == ("h", 50)
        assert (stages["W"]["items"], stages["Z"]["items"], stages["Z"]["chunks"]) == (60, 60, 1)
        kinds = [e["event"] for e in detail["history"]]
        assert kinds[0] == "job_submitted" and kinds[-2:] == ["job_done", "destroyed"] and "contribution" in kinds
        assert_no_secret(json.dumps(detail), {"point A0": buyer.blinded()[0], "point W0": wpts[0]})

    asyncio.run(go())


def test_psi_sum_box_key_stays_out(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path, SUBSCRIBERS, ("h",))
        box_key = os.urandom(32)
        spec = PsiJob("subscribers", "phone", PsiMode.SUM, value_columns=("spend",), buyer_box_key=box_key,
                      buyer_set_size=10)
        job_id = (await w.orch.submit("buyer", "r1", spec, parties=[], timeout_s=60)).job_id
        detail = w.detail(job_id)
        assert detail["job"]["type"] == "psi-sum" and detail["job"]["state"] == JobState.AWAITING_BUYER
        stored = common_pb2.PsiSpec.FromString(w.store.job(job_id).spec)  # type: ignore[union-attr]
        assert stored.buyer_box_key == box_key
        assert_no_secret(json.dumps(detail), {"buyer_box_key": box_key})

    asyncio.run(go())


def test_job_ids_have_one_shape() -> None:
    assert valid_job_id("job-0123456789abcdef")
    for bad in ("", "job-", "job-0123456789ABCDEF", "job-0123456789abcdef0", "../job-0123456789abcdef",
                "job-0123456789abcde%", "task-0123456789abcdef"):
        assert not valid_job_id(bad), bad


def test_api_answers_404_for_an_unknown_job_and_400_for_a_malformed_id(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path, SUBSCRIBERS, ("h",))
        spec = PsiJob("subscribers", "phone", PsiMode.INTERSECTION, buyer_set_size=10)
        job_id = (await w.orch.submit("buyer", "r1", spec, parties=[], timeout_s=60)).job_id
        app = create_app(w.orch, cast(Any, None), cast(Any, None), results_dir=None)
        async with TestClient(TestServer(app)) as client:
            ok = await client.get(f"/api/jobs/{job_id}")
            assert ok.status == 200 and (await ok.json())["job"]["job_id"] == job_id
            missing = await client.get("/api/jobs/job-0123456789abcdef")
            assert missing.status == 404
            assert (await missing.json()) == {"error": "no job job-0123456789abcdef at this gateway"}
            bad = await client.get("/api/jobs/job-nothex")
            assert bad.status == 400 and "not a job id" in (await bad.json())["error"]
            page = await client.get(f"/jobs/{job_id}")
            assert page.status == 200 and "job.js" in await page.text()

    asyncio.run(go())


def test_api_needs_the_operator_token(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path, SUBSCRIBERS, ("h",))
        app = create_app(w.orch, cast(Any, None), cast(Any, None), results_dir=None, token="t" * 32)
        async with TestClient(TestServer(app)) as client:
            denied = await client.get("/api/jobs/job-0123456789abcdef")
            assert denied.status == 401
            allowed = await client.get("/api/jobs/job-0123456789abcdef",
                                       headers={"Authorization": "Bearer " + "t" * 32})
            assert allowed.status == 404

    asyncio.run(go())
