"""Two exchanges on loopback, each with its own CA, joined by a link.

Exchange A has the three hospitals (200 visits each); exchange B has no
holder of its own. The link (`wharf link serve`, a real process) holds a
party certificate of B's CA and a buyer certificate of A's CA. A buyer at B
runs jobs against the link and gets A's answers: exact sums, means and
counts (packed Paillier, where the link takes A's surplus offsets off under
encryption), a BFV vector sum, and under differential privacy the combined
noise the link declares. Both gateways record their wire; nothing the link
sends or receives carries a row value, a per-holder figure or the buyer's
secret key. A rogue B gateway in this process shows the link refusing jobs
B's buyer did not sign, and each ledger shows its side of the relay.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from buyers.client import JobFailed
from datawharf.errors import FailedPrecondition
from datawharf.pki import Credentials, Role
from datawharf.serde import aggregate_to_proto
from datawharf.signing import new_body, sign_job
from datawharf.states import JobState, TaskState
from datawharf.tls import server_credentials
from datawharf.v1 import common_pb2, party_pb2, party_pb2_grpc
from tests.exchange import VISITS, Exchange, FakeParty
from tests.leaks import (
    WireRecord,
    find_any,
    find_figures,
    find_values,
    read_wire_log,
    wire_traffic,
)
from wharf.cli import app
from wharf.demo import (
    HOSPITALS,
    generate_visits,
    party_config,
    read_rows,
    truth,
    truth_groups,
)
from wharf.local import wait_for

ROWS = 200
LINK = "harbour-a"     # the link's party name at B
LINK_BUYER = "link-b"  # the link's buyer name at A
BUYER = "acme-insurance"
FALSE_ALARM = 1e-6
A_PRICE = "10.00"  # each of A's hospitals, per job, paid by the link at A
B_PRICE = "45.00"  # the link's price per job at B, paid by B's buyers


DP_BOUNDS = (Decimal(-200), Decimal(20000))


class HomeExchange(Exchange):
    """Exchange A: the hospitals also list their visits as visits_private, under differential privacy."""

    def config(self, name: str) -> str:
        return party_config(name, self.address, self.sources[name], ward_source=self.wards[name],
                            statistics=["sum", "count", "mean", "variance"], buyers=(BUYER, LINK_BUYER)) + f"""
[[datasets]]
name = "visits_private"
source = "{self.sources[name]}"
columns = [
  {{ name = "patient_id", type = "string", join_key = true }},
  {{ name = "cost", type = "decimal", decimals = 2, aggregate = true, bounds = [{DP_BOUNDS[0]}, {DP_BOUNDS[1]}] }},
]
[datasets.policy]
allowed_buyers = ["{BUYER}", "{LINK_BUYER}"]
[datasets.policy.dp]
budget = 1.0
max_per_job = 0.25
"""


def wharf(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output) if "--json" in args else result.output


def approve(ex: Exchange, listing_id: str) -> None:
    wharf("listing", "approve", listing_id, "-g", ex.address, "-i", str(ex.identity("ops", Role.OPERATOR)), "--json")


@pytest.fixture(scope="module")
def a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeExchange]:
    """A reviews nothing (its default) but meters: each hospital's visits are priced 10.00 per job."""
    ex = HomeExchange(tmp_path_factory.mktemp("exchange-a"), rows=ROWS, wire_log=True)
    try:
        ex.start()
        for h in HOSPITALS:
            out = wharf("listing", "submit", "--config", str(ex.root / f"{h}.toml"), "--dataset", "visits",
                        "--title", f"{h} visits", "--price-per-job", A_PRICE, "--currency", "CNY", "--json")
            approve(ex, out["listing_id"])
        yield ex
    finally:
        ex.stop()


@pytest.fixture(scope="module")
def b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """B reviews every listing: the link's are in its catalog only once B's operator approves them."""
    ex = Exchange(tmp_path_factory.mktemp("exchange-b"), parties=(), wire_log=True, review=True)
    try:
        ex.start_gateway()
        yield ex
    finally:
        ex.stop()


def link_toml(name: str, b_gateway: str, b: Exchange, a: Exchange, state: Path) -> str:
    assert a.ca is not None and b.ca is not None
    return f"""name = "{name}"
refresh_seconds = 5
state_dir = "{state}"

[party_at]
gateway = "{b_gateway}"
identity = "{b.identity(name, Role.PARTY)}"
crl = "{b.ca.crl_path}"

[buyer_at]
exchange = "exchange A"
gateway = "{a.address}"
identity = "{a.identity(LINK_BUYER, Role.BUYER)}"
crl = "{a.ca.crl_path}"
datasets = ["visits", "visits_private", "ward_load"]
"""


@pytest.fixture(scope="module")
def link(a: HomeExchange, b: Exchange) -> Path:
    path = b.root / "link.toml"
    path.write_text(link_toml(LINK, b.address, b, a, b.root / "link-state"))
    b.procs.start("link", "link", "serve", "--config", str(path), "--log-level", "debug")
    for dataset in ("visits", "visits_private", "ward_load"):
        out = wharf("link", "submit", "--config", str(path), "--dataset", dataset, "--title", f"A's {dataset}",
                    "--price-per-job", B_PRICE, "--json")
        assert out["state"] == "PENDING" and out["holder"] == LINK
        approve(b, out["listing_id"])
        b.wait_online([LINK], dataset=dataset)
    return path


def _rows(a: Exchange, dataset: str = "visits") -> list[dict[str, str]]:
    rows = a.rows_of(HOSPITALS, dataset)
    assert len(rows) == (3 * ROWS if dataset == "visits" else 3 * 80)
    return rows


def test_b_lists_a_datasets_with_the_holders_behind_the_link(link: Path, b: Exchange) -> None:
    with b.client() as c:
        item = c.item("visits")
    assert item.holders == (LINK,) and item.behind == {LINK: 3} and item.contributors() == 3
    roles = {col.name: col.roles for col in item.columns}
    assert roles["cost"] == "filter < <= > >=, aggregate" and roles["patient_id"] == "identifier"  # no PSI here
    assert item.terms[LINK].dp is False  # A's hospitals opted out on visits
    assert item.approx_rows == 3 * ROWS


@pytest.mark.parametrize("stat", ["sum", "mean", "count"])
def test_a_buyer_at_b_gets_the_exact_answer_over_a_holders(link: Path, a: Exchange, b: Exchange, stat: str) -> None:
    with b.client() as c:
        job = c.submit("visits", "cost", stat)
        assert job.buyer.request.params.max_contributors == 3 and job.spec.encryption.backend.value == "paillier-packed"
        answer = c.result(job, timeout_s=120)
    assert answer.contributors == (LINK,)
    assert answer.exact == truth(_rows(a), "cost", stat, "")
    assert answer.noise is not None and not answer.noise.private  # the link declared A's exact answer


def test_a_filtered_grouped_mean_over_the_link(link: Path, a: Exchange, b: Exchange) -> None:
    with b.client() as c:
        answer = c.result(c.submit("visits", "cost", "mean", where="age >= 40", group_by="department"))
    departments = [g.label for g in answer.groups]
    want = truth_groups(_rows(a), "cost", "mean", "age >= 40", "department", tuple(departments))
    assert [list(g.values) for g in answer.groups] == want


def test_a_bfv_vector_sum_over_the_link(link: Path, a: Exchange, b: Exchange) -> None:
    with b.client() as c:
        answer = c.result(c.submit("ward_load", "hourly_patients", "sum", backend="bfv"))
    assert answer.backend == "bfv" and answer.contributors == (LINK,)
    (want,) = truth_groups(_rows(a, "ward_load"), "hourly_patients", "sum")
    assert list(answer.groups[0].values) == want and len(want) == 24


def test_under_differential_privacy_the_link_declares_the_combined_noise(link: Path, a: Exchange,
                                                                         b: Exchange) -> None:
    with b.client() as c:
        item = c.item("visits_private")
        answer = c.result(c.submit("visits_private", "cost", "sum", rho=0.1), timeout_s=120)
    assert item.terms[LINK].dp is True and item.terms[LINK].max_per_job == 0.25
    # Each hospital adds σ = bound / sqrt(2 · ρ/2) to its sum (half of ρ pays for the noisy row count its
    # minimum is judged on); the link's total carries three of them.
    bound = float(max(abs(x) for x in DP_BOUNDS))
    sd = bound / math.sqrt(0.1) * math.sqrt(3)
    assert answer.noise is not None and answer.noise.sd["sum"] == pytest.approx(sd, rel=1e-9)
    assert answer.noise.spent == {LINK: pytest.approx(0.1)}
    assert answer.noise.remaining == {LINK: pytest.approx(0.9)}  # every hospital charged the link 0.1 of 1.0
    clipped = float(sum(min(max(Decimal(r["cost"]), DP_BOUNDS[0]), DP_BOUNDS[1]) for r in _rows(a)))
    (interval,) = answer.groups[0].intervals
    assert interval is not None and interval.low < answer.value < interval.high
    assert abs(answer.value - clipped) < 6 * sd  # fails by chance with probability 2e-9
    assert answer.value != float(truth(_rows(a), "cost", "sum", ""))


def test_a_refusal_at_a_reaches_b_named(link: Path, b: Exchange) -> None:
    with b.client() as c:
        job = c.submit("visits", "cost", "sum", where="cost > 4999")  # no hospital has ten such rows
        with pytest.raises(JobFailed) as failed:
            c.result(job)
    (task,) = failed.value.view.tasks
    assert task.party == LINK and task.state is TaskState.REFUSED
    assert task.reason.startswith("exchange A: ") and "fewer rows than the holder's minimum" in task.reason


def test_b_gateway_refuses_a_job_too_narrow_for_the_holders_behind_the_link(link: Path, b: Exchange) -> None:
    # A client that counts the link as one holder (the catalog's holder counts ignored): B's gateway
    # refuses it; the link refuses the same (the rogue gateway below shows it) if a gateway did not.
    with b.client() as c:
        item = c.item("visits")
        c.item = lambda dataset: type(item)(item.dataset, item.holders, item.holders_online,  # type: ignore[method-assign]
                                             item.columns, item.approx_rows, item.terms, {})
        with pytest.raises(FailedPrecondition, match="headroom for 1 holder.*3 would contribute"):
            c.submit("visits", "cost", "sum")


def test_each_ledger_shows_its_side_of_the_relay(link: Path, a: Exchange, b: Exchange) -> None:
    def entries(ex: Exchange) -> list[dict[str, Any]]:
        import sqlite3

        db = sqlite3.connect(f"file:{ex.gateway_dir / 'gateway.sqlite3'}?mode=ro", uri=True)
        try:
            return [json.loads(row[0]) for row in db.execute("SELECT entry FROM ledger ORDER BY seq")]
        finally:
            db.close()

    at_a = [e for e in entries(a) if e["kind"] == "job_submitted"
            and str(e["fields"].get("detail", "")).startswith(f"buyer={LINK_BUYER} ")]
    at_b = [e for e in entries(b) if e["kind"] == "contribution" and e["fields"].get("party") == LINK]
    b_jobs = [e for e in entries(b) if e["kind"] == "job_submitted"]
    # Every job B's gateway took reached A as one of the link's; the six answered came back as contributions.
    assert len(at_a) == 7 and len(at_b) == 6 and len(b_jobs) == 7
    # The link's own record pairs each of B's jobs with the job at A that answered it.
    lines = CliRunner().invoke(app, ["link", "receipts", "--config", str(link), "--json"]).output.splitlines()
    relayed = [json.loads(x) for x in lines if json.loads(x)["kind"] == "contributed"]
    assert len(relayed) == 6 and all(set(r["remote_contributors"]) == set(HOSPITALS) for r in relayed)
    assert {r["remote_job"] for r in relayed} <= {e["fields"]["job_id"] for e in at_a}
    assert {r["job_id"] for r in relayed} == {e["fields"]["job_id"] for e in at_b}
    text = wharf("link", "receipts", "--config", str(link))
    assert f"relayed job {relayed[0]['remote_job']} (" in text


def test_each_exchange_meters_its_side_of_the_relay(link: Path, a: Exchange, b: Exchange) -> None:
    """B charges its buyer the link's price for each job the link answered; A charges the link its
    hospitals' prices for each of those jobs on priced data (visits: four so far)."""
    at_b = wharf("billing", "statement", "--party", LINK, "-g", b.address,
                 "-i", str(b.identity("ops", Role.OPERATOR)), "--json")
    at_a = wharf("billing", "statement", "--buyer", LINK_BUYER, "-g", a.address,
                 "-i", str(a.identity("ops", Role.OPERATOR)), "--json")
    b_jobs = {x["job_id"] for x in at_b["lines"]}
    assert len(b_jobs) == 6 and all(x["amount"] == B_PRICE and x["buyer"] == BUYER for x in at_b["lines"])
    assert at_b["totals"] == {"CNY": "270.00"}
    visits = [x for x in at_a["lines"] if x["dataset"] == "visits"]
    assert {x["holder"] for x in visits} == set(HOSPITALS) and len({x["job_id"] for x in visits}) == 4
    assert at_a["totals"] == {"CNY": "120.00"}


def test_a_holder_of_b_beside_the_link(link: Path, a: Exchange, b: Exchange) -> None:
    """B's own clinic and the link in one job: the buyer leaves headroom for four holders and counts
    two contributors; the link's corrected total and the clinic's add up to the truth over both."""
    src = b.root / "b-clinic.csv"
    generate_visits(src, "BC", 150, seed=7)
    config = b.start_party("b-clinic", party_config("b-clinic", b.address, src, statistics=["sum", "mean", "count"]))
    try:
        out = wharf("listing", "submit", "--config", str(config), "--dataset", "visits", "--title", "clinic",
                    "--price-per-job", "1.00", "--json")
        approve(b, out["listing_id"])
        b.wait_online(["b-clinic", LINK])
        rows = _rows(a) + read_rows(src)
        with b.client() as c:
            for stat in ("sum", "mean"):
                job = c.submit("visits", "cost", stat, parties=[LINK, "b-clinic"])
                assert job.buyer.request.params.max_contributors == 4
                answer = c.result(job)
                assert sorted(answer.contributors) == ["b-clinic", LINK]
                assert answer.exact == truth(rows, "cost", stat, "")
    finally:
        b.stop_party("b-clinic")


class RogueB(party_pb2_grpc.PartyServiceServicer):
    """A gateway of B's that relays jobs B's buyer did not sign, and records what the link answers."""

    def __init__(self, tasks: list[party_pb2.Task]) -> None:
        self.tasks = tasks
        self.answers: list[party_pb2.PartyMessage] = []
        self.done = threading.Event()

    def Connect(self, request_iterator: Iterator[party_pb2.PartyMessage], context: Any
                ) -> Iterator[party_pb2.GatewayMessage]:
        first = next(request_iterator)
        assert first.WhichOneof("body") == "register"
        yield party_pb2.GatewayMessage(registered=party_pb2.Registered(party=LINK, heartbeat_seconds=30))
        for t in self.tasks:
            yield party_pb2.GatewayMessage(task=t)

        def read() -> None:
            for m in request_iterator:
                if m.WhichOneof("body") in ("refusal", "failure", "contribution"):
                    self.answers.append(m)
                    if len(self.answers) == len(self.tasks):
                        self.done.set()

        threading.Thread(target=read, daemon=True).start()
        self.done.wait(120)


def test_the_link_refuses_jobs_b_buyer_did_not_sign(link: Path, a: HomeExchange, b: Exchange,
                                                     tmp_path: Path) -> None:
    with b.client() as c:
        honest = c.submit("visits", "cost", "sum")  # its public parameters are reused below
        c.result(honest)
    spec = aggregate_to_proto(honest.spec)
    narrow = common_pb2.AggregateSpec()
    narrow.CopyFrom(spec)
    narrow.encryption.max_contributors = 1
    b_buyer = Credentials.load(b.identity(BUYER))
    a_buyer = Credentials.load(a.identity(BUYER))  # certified by A's CA, not B's

    def task(n: int, signed: common_pb2.SignedJob | None, buyer: str = BUYER) -> party_pb2.Task:
        t = party_pb2.Task(task_id=f"rogue-{n}", job_id=f"rogue-job-{n}", buyer=buyer, min_parties=1,
                           deadline=time.time() + 60)
        if signed is None:
            t.aggregate.CopyFrom(spec)
        else:
            t.signed.CopyFrom(signed)
        return t

    forged = sign_job(b_buyer, new_body(b_buyer, "forged", parties=[LINK], min_parties=1, aggregate=spec))
    tampered = common_pb2.SignedJob()
    tampered.CopyFrom(forged)
    body = common_pb2.JobBody.FromString(tampered.body)
    body.aggregate.rho = 5.0
    tampered.body = body.SerializeToString()
    rogue = RogueB([
        task(0, None),
        task(1, sign_job(a_buyer, new_body(a_buyer, "foreign", parties=[LINK], min_parties=1, aggregate=spec))),
        task(2, tampered),
        task(3, sign_job(b_buyer, new_body(b_buyer, "elsewhere", parties=["st-mary"], min_parties=1,
                                           aggregate=spec))),
        task(4, sign_job(b_buyer, new_body(b_buyer, "narrow", parties=[LINK], min_parties=1, aggregate=narrow))),
    ])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    party_pb2_grpc.add_PartyServiceServicer_to_server(rogue, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(Credentials.load(b.identity("gateway",
                                                                                               Role.GATEWAY))))
    server.start()
    a_jobs_before = _jobs_of(a, LINK_BUYER)
    path = tmp_path / "rogue-link.toml"
    path.write_text(link_toml(LINK, f"127.0.0.1:{port}", b, a, tmp_path / "state"))
    proc = b.procs.start("rogue-link", "link", "serve", "--config", str(path))
    try:
        wait_for("the link's answers", rogue.done.is_set, 120, lambda: None if proc.poll() is None else
                 pytest.fail("the link exited"))
    finally:
        b.procs.stop(["rogue-link"])
        server.stop(0)
    refusals = {m.refusal.task_id: m.refusal for m in rogue.answers if m.WhichOneof("body") == "refusal"}
    assert {t: r.code for t, r in refusals.items()} == {
        "rogue-0": "unsigned_job", "rogue-1": "bad_signature", "rogue-2": "bad_signature", "rogue-3": "not_asked",
        "rogue-4": "bad_spec"}
    assert "headroom for 1 contributor(s)" in refusals["rogue-4"].reason
    assert _jobs_of(a, LINK_BUYER) == a_jobs_before  # nothing reached A


def _jobs_of(ex: Exchange, buyer: str) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{ex.gateway_dir / 'gateway.sqlite3'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM jobs WHERE buyer = ?", (buyer,)).fetchone()[0])
    finally:
        db.close()


def _wire_of(log: Path, caller: str, tmp: Path) -> list[WireRecord]:
    """The records of one caller's calls (the other roles' market calls are not the link's)."""
    mine = [line for line in log.read_text().splitlines() if json.loads(line)["caller"] == caller]
    path = tmp / f"{caller}.jsonl"
    path.write_text("\n".join(mine) + "\n")
    return read_wire_log(path)


def test_the_link_sees_no_plaintext_and_holds_no_secret(link: Path, a: Exchange, b: Exchange, tmp_path: Path) -> None:
    with b.client() as c:
        job = c.submit("visits", "cost", "sum")
        assert c.result(job).exact == truth(_rows(a), "cost", "sum", "")
    assert a.wire_log is not None and b.wire_log is not None
    link_a, link_b = _wire_of(a.wire_log, LINK_BUYER, tmp_path), _wire_of(b.wire_log, LINK, tmp_path)
    assert link_a and link_b
    blob = b"\x00".join(r.raw for r in [*link_a, *link_b])
    logs = (b.logs / "link.log").read_bytes()
    # The buyer's secret key is nowhere on either side of the link, nor in its log.
    private = job.buyer._scheme._private  # type: ignore[union-attr]
    for secret in (private.p, private.q):
        raw = secret.to_bytes((secret.bit_length() + 7) // 8, "big")
        assert raw not in blob and str(secret).encode() not in logs
    # Nor does its log (at debug level) name a patient or a hospital's total.
    assert not any(r["patient_id"].encode() in logs for r in _rows(a))
    assert not any(str(truth(a.rows_of([h]), "cost", "sum", "")).encode() in logs for h in HOSPITALS)
    # No raw value of A's rows, and no hospital's own figures, cross either of the link's wires.
    traffic, _ = wire_traffic([*link_a, *link_b])
    assert traffic.unknown == []
    cells = {r["patient_id"] for r in _rows(a)} | {r["cost"] for r in _rows(a)}
    report = find_values(traffic, cells, budget=FALSE_ALARM)
    assert not report.found, report.found[:5]
    figures = {}
    for h in HOSPITALS:
        total = truth(a.rows_of([h]), "cost", "sum", "")
        figures[f"{h}: sum of cost"] = (int(total * 100), 2)
    report = find_figures(traffic, figures, budget=FALSE_ALARM)
    assert not report.found and report.bound <= FALSE_ALARM, report.found
    # The totals the link relays to B are re-randomised: not the ciphertexts A's gateway sent it.
    from_a = [c for r in link_a if r.method.endswith("/FetchResult") for c in [r.raw]]
    assert from_a
    results = [p.message for p in wire_traffic(link_a)[1] if p.method.endswith("/FetchResult")]
    sent_by_a = [ct for res in results for ct in res.figures.ciphertexts]
    to_b = b"\x00".join(r.raw for r in link_b if r.direction == "in")
    assert sent_by_a and not find_any(to_b, sent_by_a)


def test_b_buyers_need_a_grant_the_link_signed_when_it_requires_one(link: Path, a: HomeExchange,
                                                                   b: Exchange) -> None:
    """A second link, with grants = "required": B's buyer asks it for a grant at B, the link's operator
    approves it (`wharf link grant approve`), one job runs under it, and the next is refused."""
    name = "harbour-a-granted"
    path = b.root / "link2.toml"
    path.write_text(link_toml(name, b.address, b, a, b.root / "link2-state").replace(
        "refresh_seconds = 5", 'refresh_seconds = 5\ngrants = "required"'))
    b.procs.start("link2", "link", "serve", "--config", str(path))
    try:
        out = wharf("link", "submit", "--config", str(path), "--dataset", "visits", "--title", "A's visits, granted",
                    "--price-per-job", B_PRICE, "--json")
        approve(b, out["listing_id"])
        b.wait_online([name])
        with b.client() as c:
            with pytest.raises(JobFailed) as refused:
                c.result(c.submit("visits", "cost", "sum", parties=[name]))
            (task,) = refused.value.view.tasks
            assert task.state is TaskState.REFUSED and "needs a grant" in task.reason
            (grant,) = wharf("grant", "request", "--dataset", "visits", "--purpose", "reinsurance 2027",
                             "--statistics", "sum", "--until", "2027-12-31", "--max-jobs", "1", "--party", name,
                             "-g", b.address, "-i", str(b.identity(BUYER)), "--json")["grants"]
            (approved,) = wharf("link", "grant", "approve", grant["id"], "--config", str(path), "--json")["grants"]
            assert approved["state"] == "approved"
            assert c.result(c.submit("visits", "cost", "sum", parties=[name])).exact == truth(_rows(a), "cost",
                                                                                              "sum", "")
            with pytest.raises(JobFailed) as spent:
                c.result(c.submit("visits", "cost", "sum", parties=[name]))
            assert "used all 1 of its jobs" in spent.value.view.tasks[0].reason
    finally:
        b.procs.stop(["link2"])


def test_cancelling_at_b_cancels_the_job_at_a(link: Path, a: HomeExchange, b: Exchange) -> None:
    """A fourth holder at A that takes its task and never answers keeps the link's job at A open;
    B's buyer cancels, and that holder is told its task at A is cancelled."""
    slow = a.fake_party("slow-clinic", VISITS)
    try:
        with b.client() as c:
            # (B's catalog still names the holders that left earlier tests; only the link is online.)
            wait_for("B's catalog to count four holders behind the link",
                     lambda: c.item("visits").behind.get(LINK) == 4, 60, b.alive)
            job = c.submit("visits", "cost", "sum")
            task = slow.next("task", timeout_s=60).task
            assert FakeParty.body(task).buyer == LINK_BUYER  # A's job is the link's
            c.cancel(job)
            assert slow.next("cancel", timeout_s=60).cancel.task_id == task.task_id
            assert c.wait(job).state is JobState.CANCELLED
        with a.client(LINK_BUYER) as c:  # the job at A is the link's: its A certificate may read it
            assert c.wait(task.job_id, timeout_s=60).state is JobState.CANCELLED
    finally:
        slow.close()


def test_a_link_restarted_mid_job_resumes_the_same_job_at_a(link: Path, a: HomeExchange, b: Exchange) -> None:
    """The link dies while A's job waits for a silent holder; restarted, it is sent B's task again and
    finds the same job at A (its request id is B's job and task), so A's holders are asked once. The
    silent holder leaves, A's job completes with the three hospitals, and B's buyer gets their sum."""
    slow = a.fake_party("slow-clinic-2", VISITS)
    try:
        with b.client() as c:
            wait_for("B's catalog to count five holders behind the link",
                     lambda: c.item("visits").behind.get(LINK) == 5, 60, b.alive)
            before = _jobs_of(a, LINK_BUYER)
            job = c.submit("visits", "cost", "sum")
            task = slow.next("task", timeout_s=60).task
            b.procs.kill("link")
            b.procs.start("link", "link", "serve", "--config", str(link), "--log-level", "debug")
            wait_for("the restarted link to be sent B's task again",
                     lambda: any(json.loads(x).get("kind") == "task" and json.loads(x).get("job_id") == job.job_id
                                 for x in (b.root / "link-state" / "receipts.jsonl").read_text().splitlines()[-50:])
                     and _tasks_of_job(b, job.job_id) >= 2, 60, b.alive)
            slow.close()  # A's job stops waiting for it and completes with the hospitals
            answer = c.result(job, timeout_s=120)
        assert answer.exact == truth(_rows(a), "cost", "sum", "")
        assert _jobs_of(a, LINK_BUYER) == before + 1  # one job at A for B's job, across the restart
        receipts = CliRunner().invoke(app, ["link", "receipts", "--config", str(link), "--json"]).output.splitlines()
        relayed = [json.loads(x) for x in receipts if json.loads(x)["kind"] == "contributed"]
        assert relayed[-1]["job_id"] == job.job_id and relayed[-1]["remote_job"] == task.job_id
    finally:
        slow.close()


def _tasks_of_job(b: Exchange, job_id: str) -> int:
    """How many times B's gateway offered the job's task: task_offered entries in its ledger."""
    import sqlite3

    db = sqlite3.connect(f"file:{b.gateway_dir / 'gateway.sqlite3'}?mode=ro", uri=True)
    try:
        rows = [json.loads(r[0]) for r in db.execute("SELECT entry FROM ledger ORDER BY seq")]
    finally:
        db.close()
    return sum(1 for e in rows if e["kind"] == "task_offered" and e["fields"].get("job_id") == job_id)


def test_a_unreachable_fails_b_job_naming_a(link: Path, a: HomeExchange, b: Exchange) -> None:
    a.stop_gateway()  # last in this module: A's holders are left dialling a gateway that is gone
    with b.client() as c, pytest.raises(JobFailed) as failed:
        c.result(c.submit("visits", "cost", "sum"), timeout_s=120)
    (task,) = failed.value.view.tasks
    assert task.state is TaskState.FAILED and task.reason.startswith(f"exchange A ({a.address}) cannot be reached")
    assert failed.value.view.state is JobState.FAILED
