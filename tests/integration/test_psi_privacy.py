"""Output privacy of PSI over real processes: each attack from the probe, now learning nothing.

- Membership by repeats: one ID's point sent ten times (or under two encodings,
  or, unbalanced, under ten blindings) passed ``min_intersection = 10`` for a
  member and not for a non-member. Now both are refused alike.
- Enumeration: per-buyer quotas of jobs and IDs, kept across a restart.
- Differencing of PSI-sum totals: noise under the holder's DP policy.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Iterator, Sequence

import pytest

from buyers.client import Client
from buyers.psi import _await_stage, _download, _upload
from datawharf.errors import JobFailed, PermissionDenied, WharfError
from datawharf.model import PsiJob, PsiMode
from datawharf.serde import psi_to_proto
from datawharf.signing import items_digest
from protocols import oprf, psi, psi_sum
from protocols.psi_stages import MAX_W, Stage
from tests.exchange import Exchange, StartExchange
from wharf.demo import generate_visits, party_config, read_rows

QUOTA_JOBS = 3
DP = "budget = 1.0\nmax_per_job = 0.05\ndefault_per_job = 0.05"
COST_PEAK = 5000  # max(|lower|, |upper|) of cost's bounds in wharf.demo


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    ex = start_exchange("psi-privacy", parties=("st-mary",), rows=400)
    src = ex.root / "quota-hosp.csv"
    generate_visits(src, "QH", 200, seed=77)
    ex.sources["quota-hosp"] = src
    ex.start_party("quota-hosp", quota_toml(ex, src))
    dp_src = ex.root / "dp-hosp.csv"
    generate_visits(dp_src, "DP", 200, seed=78)
    ex.sources["dp-hosp"] = dp_src
    ex.start_party("dp-hosp", party_config("dp-hosp", ex.address, dp_src, statistics=["sum"], dp=DP))
    ex.wait_online(("quota-hosp", "dp-hosp"))
    return ex


def quota_toml(ex: Exchange, src) -> str:  # type: ignore[no-untyped-def]
    toml = party_config("quota-hosp", ex.address, src, statistics=["sum"])
    return toml.replace("min_intersection = 10\n",
                        f"min_intersection = 10\npsi_jobs_per_period = {QUOTA_JOBS}\npsi_ids_per_period = 400\n")


def members(ex: Exchange, party: str = "st-mary") -> list[str]:
    return [r["patient_id"] for r in read_rows(ex.sources[party])]


# ------------------------------------------------------------------ the attacker
SecondRound = Callable[[Client, str], list[bytes]]


def attack(c: Client, mode: PsiMode, a: list[bytes], second: SecondRound | None, *, party: str = "st-mary",
           cardinality_only: bool = False, box: bytes = b"", values: tuple[str, ...] = ()) -> str:
    """Run a job whose sets the caller crafted; the outcome as the buyer sees it, job ids blanked."""
    spec = PsiJob("visits", "patient_id", mode, cardinality_only, values, box, len(a))
    job, _ = c.submit_job(uuid.uuid4().hex, parties=[party], min_parties=1, timeout_s=60, psi=psi_to_proto(spec),
                          set_digest=items_digest(a))
    jid = job.job_id
    try:
        _upload(c, jid, Stage.A, a, None)
        _await_stage(c, jid, 90)
        assert second is not None
        _upload(c, jid, Stage.Q if mode is PsiMode.UNBALANCED else Stage.Z, second(c, jid), None)
        view = c.wait(jid, timeout_s=90)
        outcome = f"{view.state}: {view.reason}" if view.state != "DONE" else f"DONE size={c.fetch_result(jid).psi.size}"
    except JobFailed as exc:
        outcome = f"FAILED: {exc.view.reason}"
    except WharfError as exc:
        outcome = f"{type(exc).__name__}: {exc.message}"
    return re.sub(re.escape(jid), "<job>", outcome)


def dh_second_round(role: psi.Buyer) -> SecondRound:
    def run(c: Client, jid: str) -> list[bytes]:
        return role.reblind(_download(c, jid, Stage.W, MAX_W))
    return run


def torsion_twin(point: bytes) -> bytes:
    """P + (0, 0) has u-coordinate 1/u: other bytes, the same point once a clamped scalar multiplies it."""
    p = psi.FIELD_P
    u = int.from_bytes(point, "little") & ((1 << 255) - 1)
    return pow(u, p - 2, p).to_bytes(32, "little")


# ------------------------------------------------------------- 1. membership
@pytest.mark.parametrize("mode, cardinality_only", [(PsiMode.INTERSECTION, False), (PsiMode.INTERSECTION, True),
                                                    (PsiMode.SUM, False)])
def test_ten_copies_of_one_point_learn_nothing(exchange: Exchange, mode: PsiMode, cardinality_only: bool) -> None:
    """The probe's attack: A = ten copies of a·H(target). It used to come back size=10 for a member."""
    member, outsider = members(exchange)[7], "ZZ-not-a-patient"
    outcomes = []
    with exchange.client() as c:
        for target in (member, outsider):
            role = psi_sum.Buyer([target]) if mode is PsiMode.SUM else psi.Buyer([target])
            box = role.box.public if isinstance(role, psi_sum.Buyer) else b""
            a = role.blinded() * 10 + role.commitment()
            outcomes.append(attack(c, mode, a, dh_second_round(role), cardinality_only=cardinality_only, box=box,
                                   values=("cost",) if box else ()))
    assert outcomes[0] == outcomes[1], outcomes
    assert outcomes[0].startswith("InvalidArgument") and "stage A" in outcomes[0] and "repeats" in outcomes[0]


@pytest.mark.parametrize("mode", [PsiMode.INTERSECTION, PsiMode.SUM])
def test_a_second_encoding_of_a_point_is_refused_by_the_holder(exchange: Exchange, mode: PsiMode) -> None:
    """P and P + (0,0) differ as bytes, so the gateway passes them; the holder's blinding merges them."""
    member, outsider = members(exchange)[11], "ZZ-nobody"
    outcomes = []
    with exchange.client() as c:
        for target in (member, outsider):
            role = psi_sum.Buyer([target] + [f"ZZ-pad-{i}" for i in range(8)]) if mode is PsiMode.SUM \
                else psi.Buyer([target] + [f"ZZ-pad-{i}" for i in range(8)])
            a = role.blinded()
            twin = torsion_twin(a[0])
            box = role.box.public if isinstance(role, psi_sum.Buyer) else b""
            outcomes.append(attack(c, mode, a + [twin] + role.commitment(), dh_second_round(role), box=box,
                                   values=("cost",) if box else ()))
    assert outcomes[0] == outcomes[1], outcomes
    assert outcomes[0].startswith("FAILED") and "st-mary" in outcomes[0] and "repeats a point" in outcomes[0]


@pytest.mark.parametrize("mode", [PsiMode.INTERSECTION, PsiMode.SUM])
def test_ten_scalars_over_a_tenth_of_w_are_caught_by_the_canaries(exchange: Exchange, mode: PsiMode) -> None:
    """A = the target under ten scalars (ten distinct points, so no repeat), Z = a tenth of W
    re-blinded under each: a member whose row is in that tenth would match ten times. The
    holder's canaries in W, checked by the gateway, catch the other nine tenths of Z."""
    member, outsider = members(exchange)[13], "ZZ-not-a-patient"
    outcomes = []
    with exchange.client() as c:
        for target in (member, outsider):
            keys = [psi.Key() for _ in range(10)]
            a = [k.hash_and_blind([psi.normalise(target)])[0] for k in keys]
            committed = psi.Buyer([target], key=keys[0])
            box = psi_sum.BoxKey().public if mode is PsiMode.SUM else b""

            def second(c: Client, jid: str, keys: list[psi.Key] = keys) -> list[bytes]:
                w = _download(c, jid, Stage.W, MAX_W)
                tenth = len(w) // 10
                z = keys[0].blind(w[:tenth])  # honest where it can be
                for k in keys[1:]:
                    z += k.blind(w[:tenth])  # the same tenth under each other scalar
                return z + keys[0].blind(w[10 * tenth:])

            outcomes.append(attack(c, mode, a + committed.commitment(), second, cardinality_only=not box, box=box,
                                   values=("cost",) if box else ()))
    assert outcomes[0] == outcomes[1], outcomes
    assert outcomes[0].startswith("FAILED") and "not the holder's set re-blinded with the scalar" in outcomes[0]


def test_unbalanced_ten_copies_or_ten_blindings_learn_nothing(exchange: Exchange) -> None:
    member, outsider = members(exchange)[3], "ZZ-not-a-patient"
    copies, blindings = [], []
    with exchange.client() as c:
        for target in (member, outsider):
            role = oprf.Buyer([target])
            copies.append(attack(c, PsiMode.UNBALANCED, role.blinded() * 10, None, cardinality_only=True))
            # Ten fresh blindings: ten distinct points the holder evaluates, ten equal tags.
            roles = [oprf.Buyer([target]) for _ in range(10)]
            a = [r.blinded()[0] for r in roles]

            def tags(c: Client, jid: str, roles: Sequence[oprf.Buyer] = roles) -> list[bytes]:
                e = _download(c, jid, Stage.E, len(roles))
                return [t for r, ev in zip(roles, e) for t in r.tags([ev])]

            blindings.append(attack(c, PsiMode.UNBALANCED, a, tags, cardinality_only=True))
    assert copies[0] == copies[1] and blindings[0] == blindings[1], (copies, blindings)
    assert copies[0].startswith("InvalidArgument") and "stage A" in copies[0]
    assert blindings[0].startswith("InvalidArgument") and "stage Q" in blindings[0] and "repeats" in blindings[0]


def test_an_honest_job_still_answers(exchange: Exchange) -> None:
    ids = members(exchange)[:40] + [f"ZZ-{i}" for i in range(40)]
    with exchange.client() as c:
        ans = c.psi("visits", "patient_id", ids, party="st-mary", cardinality_only=True, parallel=False)
    assert ans.size == len(set(members(exchange)[:40]))


# ---------------------------------------------------------------- 2. quotas
def test_id_quota_refuses_a_job_too_large_for_what_remains(exchange: Exchange) -> None:
    """quota-hosp allows 400 IDs a day: 401 at once are refused, and the refusal costs no job."""
    with exchange.client() as c:
        with pytest.raises(JobFailed, match=r"401 IDs exceed what remains of the buyer's PSI ID quota"):
            c.psi("visits", "patient_id", [f"x-{i}" for i in range(401)], party="quota-hosp", cardinality_only=True,
                  parallel=False)
        assert c.psi("visits", "patient_id", members(exchange, "quota-hosp")[:20], party="quota-hosp",
                     cardinality_only=True, parallel=False).size == 20


def test_quota_spent_is_refused_and_survives_a_restart(exchange: Exchange) -> None:
    ids = members(exchange, "quota-hosp")[:30]
    with exchange.client() as c:
        for _ in range(QUOTA_JOBS - 1):  # one was spent by the test above
            assert c.psi("visits", "patient_id", ids, party="quota-hosp", cardinality_only=True,
                         parallel=False).size == 30
        with pytest.raises(JobFailed, match=r"PSI quota for 'visits' \(3 jobs per day\) is spent until \d{4}-"):
            c.psi("visits", "patient_id", ids, party="quota-hosp", cardinality_only=True, parallel=False)
    exchange.stop_party("quota-hosp")
    exchange.start_party("quota-hosp", quota_toml(exchange, exchange.sources["quota-hosp"]))
    exchange.wait_online(("quota-hosp",))
    with exchange.client() as c:
        with pytest.raises(JobFailed, match="PSI quota for 'visits'"):
            c.psi("visits", "patient_id", ids, party="quota-hosp", mode="sum", value_columns=["cost"])
        with pytest.raises(JobFailed, match="PSI quota for 'visits'"):
            c.psi("visits", "patient_id", ids, party="quota-hosp", mode="unbalanced", cardinality_only=True)




# --------------------------------------------------------- 3. differencing
def per_id_cost(ex: Exchange, party: str) -> dict[str, Fraction]:
    """Each patient's cost summed over its visits, then clipped to the declared bounds, as the holder does."""
    out: dict[str, Fraction] = {}
    for r in read_rows(ex.sources[party]):
        out[r["patient_id"]] = out.get(r["patient_id"], Fraction(0)) + Fraction(Decimal(r["cost"]))
    return {k: min(max(v, Fraction(-500)), Fraction(COST_PEAK)) for k, v in out.items()}


def test_psi_sum_differencing_no_longer_reveals_the_added_persons_value(exchange: Exchange) -> None:
    """The probe: sum 30 IDs, add one, subtract. Now each total carries noise whose spread is
    several times the largest value any one person can have (the clipped bound), so the
    difference says nothing dependable about the person; tests/unit/parties/test_psi_noise.py
    draws the same noise 300 times to show the spread."""
    costs = per_id_cost(exchange, "dp-hosp")
    ids = sorted(costs)[:30]
    target = min(sorted(costs)[30:], key=lambda k: abs(costs[k]))
    with exchange.client() as c:
        before = c.psi("visits", "patient_id", ids, party="dp-hosp", mode="sum", value_columns=["cost"])
        after = c.psi("visits", "patient_id", ids + [target], party="dp-hosp", mode="sum", value_columns=["cost"])
    truth = sum(costs[i] for i in ids)
    for ans, exact in ((before, truth), (after, truth + costs[target])):
        assert ans.noise is not None and ans.noise.rho == 0.05
        sd = ans.noise.sum_sd["cost"]
        iv = ans.noise.intervals["cost"]
        assert iv.sd == sd and iv.high - iv.low == pytest.approx(2 * 1.959963984540054 * sd)
        assert ans.totals["cost"] != exact  # equal only with probability under 10^-6 at this σ
        assert ans.noise.size_sd > 0 and ans.noise.size_interval is not None and ans.noise.set_size_sd > 0
    spread = math.sqrt(2) * before.noise.sum_sd["cost"]  # type: ignore[union-attr]
    assert spread > 5 * COST_PEAK and spread > 100 * abs(costs[target])
    assert after.noise is not None and after.noise.remaining == pytest.approx(1.0 - 0.1)


def test_cardinality_under_dp_is_noisy_and_declared(exchange: Exchange) -> None:
    ids = members(exchange, "dp-hosp")[:40]
    with exchange.client() as c:
        ans = c.psi("visits", "patient_id", ids, party="dp-hosp", cardinality_only=True, parallel=False, rho=0.02)
    assert ans.matched == () and ans.noise is not None and ans.noise.sum_sd == {} and ans.noise.rho == 0.02
    assert ans.noise.size_interval is not None and ans.noise.size_sd > 1


# ------------------------------------------------- a gateway fishing for the buyer's IDs
@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    from tests.integration.test_malicious_gateway import RogueExchange

    ex = RogueExchange(tmp_path_factory.mktemp("psi-rogue"), parties=("st-mary",), rows=100)
    try:
        yield ex.start()
    finally:
        ex.stop()


def test_a_gateway_that_swaps_w_for_its_guesses_gets_nothing_reblinded(rogue: Exchange,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the buyer to re-blind W' = [H(guess)], Z would hold a·H(guess), which the gateway could
    compare with A = a·H(x) to test guesses about the buyer's list. The buyer checks the holder's
    signed receipt before re-blinding anything, so no Z is ever uploaded."""
    from gateway.jobs.psi import PsiJobs
    from datawharf.messages import StagePiece

    honest_download, honest_upload = PsiJobs.download, PsiJobs.upload
    guesses = [psi.hash_to_u(psi.normalise(g)) for g in ("ZZ-1", "ZZ-2", "alice")]
    uploads: list[str] = []

    def download(self: PsiJobs, buyer: str, job_id: str, stage: str) -> list[StagePiece]:
        pieces = honest_download(self, buyer, job_id, stage)
        if stage == "W":
            return [StagePiece("W", 0, b"".join(guesses), True)]
        return pieces

    async def upload(self: PsiJobs, buyer: str, job_id: str, pieces: Any) -> None:
        uploads.append(self.next_stage(job_id))
        await honest_upload(self, buyer, job_id, pieces)

    monkeypatch.setattr(PsiJobs, "download", download)
    monkeypatch.setattr(PsiJobs, "upload", upload)
    ids = [r["patient_id"] for r in read_rows(rogue.sources["st-mary"])][:20] + ["ZZ-1", "alice"]
    with rogue.client() as c, pytest.raises(PermissionDenied, match="stage W as relayed is not what st-mary"):
        c.psi("visits", "patient_id", ids, party="st-mary", timeout_s=20, parallel=False)
    assert uploads == ["A"]  # the buyer's blinded set, and no second round


def test_the_buyers_ledger_shows_no_size_that_would_undo_the_noise(exchange: Exchange) -> None:
    """The buyer reads its job's ledger, which lists every stage's size: stage N's (the holder's
    notes to the gateway, with the padding rows it counts) must follow from |W| alone, or the
    number of counted rows, and with it the exact intersection size, would show."""
    ids = members(exchange, "dp-hosp")[:35]
    with exchange.client() as c:
        ans = c.psi("visits", "patient_id", ids, party="dp-hosp", mode="sum", value_columns=["age"])
        entries = [json.loads(line) for line in c.job_ledger(ans.job_id)]
    stages = {}
    for e in entries:
        if e["kind"] == "stage_received":
            fields = dict(kv.split("=") for kv in e["fields"]["detail"].split())
            stages[fields["stage"]] = int(fields["bytes"])
    assert {"N", "W"} <= set(stages), stages
    rows = stages["W"] // 32
    assert stages["N"] == 32 + 12 + (rows + 7) // 8 + 36 * psi.CANARIES
