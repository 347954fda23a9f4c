"""The link's node with exchange A played in this process (the Upstream seam), B's tasks fed by hand.

What it answers B for each outcome at A (a contribution with a receipt that B's CA verifies and
the combined noise, A's refusal, A's failure), that a task B cancels cancels A's job, and its
configuration's refusals of the wrong certificates.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from buyers.connection import CatalogItem
from datawharf.messages import CancelTask, TaskOffer
from datawharf.model import AggregateJob, ColumnKind, ColumnSpec, PrivacyTerms
from datawharf.pki import Authority, Credentials, Role, digest
from datawharf.serde import aggregate_to_proto, to_party_to_proto
from datawharf.signing import new_body, sign_job, verify_receipt
from datawharf.v1 import common_pb2, party_pb2
from links.config import ConfigError, load_link_config
from links.node import LinkNode
from links.upstream import RemoteAnswer, RemoteCancelled, RemoteFailed, RemoteRefused
from protocols.aggregate import Buyer, Contribution, Holder, combine
from protocols.figures import Layout, Statistic
from protocols.schemes import Backend

LINK = "harbour-a"


class FakeA:
    """Exchange A in this process: three holders behind, each answer decided by ``outcome``."""

    label = "exchange A"

    def __init__(self, outcome: Callable[[AggregateJob], RemoteAnswer]) -> None:
        self.outcome = outcome
        self.cancelled: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def catalog(self) -> list[CatalogItem]:
        cols = (ColumnSpec("cost", ColumnKind.INT, aggregate=True),)
        return [CatalogItem("visits", ("a0", "a1", "a2"), ("a0", "a1", "a2"), cols, 300,
                            dict.fromkeys(("a0", "a1", "a2"), PrivacyTerms(dp=False)))]

    def run(self, request_id: str, spec: AggregateJob, *, min_parties: int, timeout_s: int, signed_at: float,
            on_job: Callable[[str], None]) -> RemoteAnswer:
        assert request_id.startswith("link-") and timeout_s >= 5 and 0 < time.time() - signed_at < 60
        on_job("a-job-1")
        return self.outcome(spec)

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        self.release.set()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("link-world")
    b_ca, a_ca = Authority.init(root / "b-ca"), Authority.init(root / "a-ca")
    b_ca.issue(LINK, Role.PARTY).save(root / "party")
    a_ca.issue("link-b", Role.BUYER).save(root / "buyer")
    b_ca.issue("acme", Role.BUYER).save(root / "acme")
    b_ca.issue("gw", Role.GATEWAY).save(root / "wrong-role")
    config = root / "link.toml"
    config.write_text(f"""name = "{LINK}"
[party_at]
gateway = "127.0.0.1:1"
identity = "party"
[buyer_at]
exchange = "exchange A"
gateway = "127.0.0.1:2"
identity = "buyer"
""")
    buyer = Buyer(Layout(Statistic.SUM, 1, 1), 0, Backend.PAILLIER_PACKED, max_contributors=3)
    return {"root": root, "config": config, "acme": Credentials.load(root / "acme"), "buyer": buyer}


def _node(world: dict[str, object], upstream: FakeA) -> LinkNode:
    node = LinkNode(load_link_config(world["config"]), upstream=upstream)  # type: ignore[arg-type]
    node.listings()
    return node


_n = iter(range(10**6))


def _task(world: dict[str, object]) -> TaskOffer:
    buyer: Buyer = world["buyer"]  # type: ignore[assignment]
    acme: Credentials = world["acme"]  # type: ignore[assignment]
    spec = AggregateJob("visits", "cost", Statistic.SUM, (), 0, buyer.request.params)
    n = next(_n)
    signed = sign_job(acme, new_body(acme, f"nonce-{n}", parties=[], min_parties=1,
                                     aggregate=aggregate_to_proto(spec)))
    return TaskOffer(f"task-{n}", f"job-{n}", "acme", 1, time.time() + 60, spec,
                     signed=signed.SerializeToString())


async def _drive(node: LinkNode, task: TaskOffer, *, cancel: bool = False) -> list[party_pb2.PartyMessage]:
    sent: list[party_pb2.PartyMessage] = []

    async def send(m: party_pb2.PartyMessage) -> None:
        sent.append(m)

    job = await node._handle(send, to_party_to_proto(task))
    if job is not None:
        running = asyncio.create_task(job)
        if cancel:
            await asyncio.to_thread(node.upstream.started.wait, 10)  # type: ignore[attr-defined]
            await node._handle(send, to_party_to_proto(CancelTask(task.task_id, "the buyer cancelled")))
        await asyncio.wait_for(running, 30)
    return sent


def _answer_of_three(world: dict[str, object], values: list[int]) -> Callable[[AggregateJob], RemoteAnswer]:
    buyer: Buyer = world["buyer"]  # type: ignore[assignment]

    def outcome(spec: AggregateJob) -> RemoteAnswer:
        parts = {f"a{i}": Holder(spec.request).contribute([v]) for i, v in enumerate(values)}
        total = combine(spec.request, parts)
        receipts = tuple(common_pb2.ContributionReceipt(
            party=p, noise=common_pb2.NoiseDeclaration(rho=0.1, part_sd=[2.0], remaining=0.9, renews_at=5.0))
            for p in parts)
        return RemoteAnswer("a-job-1", total.ciphertexts, tuple(parts), (), receipts)

    assert buyer is not None
    return outcome


def test_a_relayed_answer_is_one_contribution_with_a_receipt_b_can_verify(world: dict[str, object]) -> None:
    node = _node(world, FakeA(_answer_of_three(world, [5, 7, -2])))
    task = _task(world)
    sent = asyncio.run(_drive(node, task))
    chunks = [m.contribution for m in sent if m.WhichOneof("body") == "contribution"]
    assert chunks and all(c.task_id == task.task_id for c in chunks)
    payload = b"".join(c.chunk.data for c in chunks)
    receipt = common_pb2.ContributionReceipt.FromString(chunks[-1].receipt)
    b_trust = Credentials.load(world["root"] / "party").trust(None)  # type: ignore[operator]
    signed = common_pb2.SignedJob.FromString(task.signed)
    assert verify_receipt(receipt, b_trust, digest(signed.body)).name == LINK
    assert receipt.content_digest == digest(payload)
    assert list(receipt.noise.part_sd) == [pytest.approx(2.0 * 3 ** 0.5)] and receipt.noise.rho == 0.1
    buyer: Buyer = world["buyer"]  # type: ignore[assignment]
    figures = common_pb2.EncryptedFigures.FromString(payload)
    from protocols.aggregate import AggregateResult

    result = combine(buyer.request, {LINK: Contribution(tuple(figures.ciphertexts))})
    assert isinstance(result, AggregateResult)
    assert buyer.finish(result).groups[0].values == (10,)


@pytest.mark.parametrize("error, kind, code", [
    (RemoteRefused("exchange A: every holder refused"), "refusal", "remote_refused"),
    (RemoteFailed("exchange A (127.0.0.1:2) cannot be reached: connection refused"), "failure", ""),
])
def test_a_outcome_reaches_b_with_its_reason(world: dict[str, object], error: Exception, kind: str,
                                             code: str) -> None:
    def outcome(spec: AggregateJob) -> RemoteAnswer:
        raise error

    sent = asyncio.run(_drive(_node(world, FakeA(outcome)), _task(world)))
    (m,) = sent
    assert m.WhichOneof("body") == kind
    answer = getattr(m, kind)
    assert answer.reason == str(error) and (kind != "refusal" or answer.code == code)


def test_cancelling_at_b_cancels_the_job_at_a(world: dict[str, object]) -> None:
    upstream: FakeA

    def outcome(spec: AggregateJob) -> RemoteAnswer:
        upstream.started.set()
        assert upstream.release.wait(10), "the link never cancelled A's job"
        raise RemoteCancelled("exchange A: job a-job-1 was cancelled")

    upstream = FakeA(outcome)
    sent = asyncio.run(_drive(_node(world, upstream), _task(world), cancel=True))
    assert upstream.cancelled == ["a-job-1"]
    assert sent == []  # B's task is over: nothing more to say about it


def test_a_dataset_a_no_longer_lists_is_refused(world: dict[str, object]) -> None:
    node = _node(world, FakeA(_answer_of_three(world, [1, 1, 1])))
    node._behind.clear()
    (m,) = asyncio.run(_drive(node, _task(world)))
    assert m.refusal.reason == "exchange A no longer lists 'visits'"


def test_the_config_wants_a_party_certificate_of_b_named_as_the_link(world: dict[str, object]) -> None:
    root: Path = world["root"]  # type: ignore[assignment]
    text = (root / "link.toml").read_text()
    wrong = root / "wrong.toml"
    wrong.write_text(text.replace('identity = "party"', 'identity = "wrong-role"'))
    with pytest.raises(ConfigError, match="a gateway certificate; at exchange B the link is a party"):
        load_link_config(wrong).party_credentials()
    wrong.write_text(text.replace(f'name = "{LINK}"', 'name = "someone-else"'))
    with pytest.raises(ConfigError, match="names 'harbour-a' but this link is 'someone-else'"):
        load_link_config(wrong).party_credentials()
    wrong.write_text(text.replace('identity = "buyer"', 'identity = "party"'))
    with pytest.raises(ConfigError, match="at exchange A the link is a buyer"):
        load_link_config(wrong).buyer_credentials()
    wrong.write_text(text + "colour = 1\n")
    with pytest.raises(ConfigError, match="colour: unknown key"):
        load_link_config(wrong)


def test_a_buyer_the_link_does_not_serve_is_refused_before_a_is_asked(world: dict[str, object]) -> None:
    root: Path = world["root"]  # type: ignore[assignment]
    narrow = root / "narrow.toml"
    narrow.write_text((root / "link.toml").read_text().replace(
        f'name = "{LINK}"\n', f'name = "{LINK}"\nallowed_buyers = ["someone-else"]\nstate_dir = "narrow-state"\n'))

    def outcome(spec: AggregateJob) -> RemoteAnswer:
        raise AssertionError("A was asked for a buyer the link does not serve")

    node = LinkNode(load_link_config(narrow), upstream=FakeA(outcome))  # type: ignore[arg-type]
    node.listings()
    (m,) = asyncio.run(_drive(node, _task(world)))
    assert m.refusal.code == "buyer_not_granted" and "'acme' is not granted access to harbour-a" in m.refusal.reason


def test_with_grants_required_a_buyer_without_one_is_refused(world: dict[str, object]) -> None:
    root: Path = world["root"]  # type: ignore[assignment]
    strict = root / "strict.toml"
    strict.write_text((root / "link.toml").read_text().replace(
        f'name = "{LINK}"\n', f'name = "{LINK}"\ngrants = "required"\nstate_dir = "strict-state"\n'))
    node = LinkNode(load_link_config(strict), upstream=FakeA(_answer_of_three(world, [1, 2, 3])))  # type: ignore[arg-type]
    node.listings()
    (m,) = asyncio.run(_drive(node, _task(world)))
    assert m.refusal.code == "grant_missing" and "needs a grant" in m.refusal.reason


def test_a_change_in_a_catalog_makes_the_link_register_anew(world: dict[str, object]) -> None:
    """The refresher re-reads A's catalog; once what the link would list differs from what it
    registered (a fourth holder at A here), it asks the session to register again."""
    root: Path = world["root"]  # type: ignore[assignment]
    quick = root / "quick.toml"
    quick.write_text((root / "link.toml").read_text().replace(
        f'name = "{LINK}"\n', f'name = "{LINK}"\nrefresh_seconds = 1\nstate_dir = "quick-state"\n'))
    upstream = FakeA(_answer_of_three(world, [1, 1, 1]))
    node = LinkNode(load_link_config(quick), upstream=upstream)  # type: ignore[arg-type]
    registered = node.listings()
    assert [x.holders for x in registered] == [3]
    grown = upstream.catalog()[0]
    upstream.catalog = lambda: [CatalogItem(grown.dataset, (*grown.holders, "a3"), grown.holders_online,  # type: ignore[method-assign]
                                            grown.columns, grown.approx_rows, grown.terms)]

    async def refresh() -> bool:
        again = asyncio.Event()
        task = asyncio.create_task(node._refresh(registered, again))
        try:
            await asyncio.wait_for(again.wait(), 30)
        finally:
            task.cancel()
        return again.is_set()

    assert asyncio.run(refresh())
    assert node._behind == {"visits": 4}


def test_an_unexpected_error_fails_the_task_at_once(world: dict[str, object]) -> None:
    def outcome(spec: AggregateJob) -> RemoteAnswer:
        raise RuntimeError("disk full")

    (m,) = asyncio.run(_drive(_node(world, FakeA(outcome)), _task(world)))
    assert m.failure.reason == f"the link {LINK} failed: disk full"
