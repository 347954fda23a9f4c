"""The holder's PSI runner: quotas per buyer and period, exact_intersection, repeated points."""

from __future__ import annotations

from pathlib import Path

import pytest

from datawharf.model import PsiJob, PsiMode
from parties.budget import BudgetBook
from parties.config import load_party_config
from parties.psi_runner import PsiRunner
from parties.sources import CachedSource
from protocols import oprf, psi

CSV = "patient_id,cost\n" + "".join(f"P{i},{i}.50\n" for i in range(30))
CONFIG = """
name = "h"
gateway = "127.0.0.1:1"
[[datasets]]
name = "visits"
source = "v.csv"
columns = [
  {{ name = "patient_id", type = "string", join_key = true }},
  {{ name = "cost", type = "decimal", decimals = 2, psi_value = true, bounds = [0, 100] }},
]
[datasets.policy]
allowed_buyers = ["acme"]
allowed_psi = ["intersection", "cardinality", "sum", "unbalanced"]
min_intersection = 2
psi_jobs_per_period = 2
psi_ids_per_period = 10
psi_period_days = 1
oprf_epoch_hours = 6
{extra}
[datasets.policy.dp]
enabled = false
"""


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def make(tmp_path: Path, clock: Clock, extra: str = "") -> PsiRunner:
    (tmp_path / "v.csv").write_text(CSV)
    (tmp_path / "p.toml").write_text(CONFIG.format(extra=extra))
    cfg = load_party_config(tmp_path / "p.toml")
    assert cfg.state_dir is not None
    return PsiRunner(cfg, {d.name: CachedSource(d) for d in cfg.datasets}, cfg.state_dir,
                     budget=BudgetBook(cfg.state_dir, clock=clock))


def ask(r: PsiRunner, ids: list[str], mode: PsiMode = PsiMode.INTERSECTION, cardinality_only: bool = True,
        buyer: str = "acme", points: list[bytes] | None = None):  # type: ignore[no-untyped-def]
    if mode is PsiMode.UNBALANCED:
        a = points if points is not None else oprf.Buyer(ids).blinded()
    else:  # balanced modes: A ends with the buyer's commitment to its scalar
        b = psi.Buyer(ids)
        a = (points if points is not None else b.blinded()) + b.commitment()
    job = PsiJob("visits", "patient_id", mode, cardinality_only, (), b"", len(a))
    return r.run(buyer, job, a, job_id=f"job-{len(r.budget.charges())}", cached_tables=[])


DAY = 86400.0
T0 = 20_000 * DAY + 3600  # an hour into a day, and into a 6-hour epoch


def test_jobs_quota_spent_then_renewed_after_the_period(tmp_path: Path) -> None:
    clock = Clock(T0)
    r = make(tmp_path, clock)
    for _ in range(2):
        assert ask(r, ["P1", "P2"]).refusal is None
    refused = ask(r, ["P1", "P2"])
    assert refused.code == "psi_quota" and refused.stages == {}
    assert refused.refusal == ("the buyer's PSI quota for 'visits' (2 jobs per day) is spent until "
                               "2024-10-05 00:00:00 UTC")
    assert ask(r, ["P1"], buyer="other").code == "buyer_not_granted"
    clock.at = T0 + DAY - 3601  # the last second of the same day
    assert ask(r, ["P1", "P2"]).code == "psi_quota"
    clock.at = T0 + DAY - 3600  # the next day
    assert ask(r, ["P1", "P2"]).refusal is None


def test_ids_quota_counts_ids_and_costs_no_job_when_refused(tmp_path: Path) -> None:
    r = make(tmp_path, Clock(T0))
    assert ask(r, [f"P{i}" for i in range(8)]).refusal is None
    refused = ask(r, ["P1", "P2", "P3"])
    assert refused.code == "psi_quota" and "3 IDs exceed what remains" in (refused.refusal or "")
    assert "2 of 10 per day" in (refused.refusal or "")
    assert ask(r, ["P1", "P2"]).refusal is None  # the refused job cost no job: this is the second
    assert ask(r, ["P1"]).code == "psi_quota"


def test_quota_survives_a_new_book_over_the_same_state(tmp_path: Path) -> None:
    clock = Clock(T0)
    r = make(tmp_path, clock)
    ask(r, ["P1", "P2"])
    ask(r, ["P1", "P2"])
    r.budget.close()
    again = make(tmp_path, clock)
    b = psi.Buyer(["P1"])
    assert again.run("acme", PsiJob("visits", "patient_id", PsiMode.INTERSECTION, True, (), b"", 3),
                     b.blinded() + b.commitment(), job_id="j", cached_tables=[]).code == "psi_quota"


def test_unbalanced_quota_renews_with_the_key_epoch(tmp_path: Path) -> None:
    clock = Clock(T0)
    r = make(tmp_path, clock)
    for _ in range(2):
        ans = ask(r, ["P1", "P2"], mode=PsiMode.UNBALANCED)
        assert ans.refusal is None and ans.failure is None
    epoch = ans.table_epoch
    assert ask(r, ["P1"], mode=PsiMode.UNBALANCED).refusal == (
        "the buyer's PSI quota for 'visits' (2 jobs per 6 hours) is spent until 2024-10-04 06:00:00 UTC")
    clock.at = T0 + 5 * 3600  # the next epoch: a new key and table, and a fresh quota
    ans = ask(r, ["P1"], mode=PsiMode.UNBALANCED)
    assert ans.refusal is None and ans.table_epoch != epoch


def test_exact_intersection_false_answers_sizes_and_sums_only(tmp_path: Path) -> None:
    r = make(tmp_path, Clock(T0), extra="exact_intersection = false")
    refused = ask(r, ["P1", "P2"], cardinality_only=False)
    assert refused.code == "exact_intersection" and "cardinality_only" in (refused.refusal or "")
    assert ask(r, ["P1", "P2"], mode=PsiMode.UNBALANCED, cardinality_only=False).code == "exact_intersection"
    assert ask(r, ["P1", "P2"]).refusal is None
    assert [c[2] for c in r.budget.charges()] == ["psi_ids", "psi_jobs"]  # refusals cost nothing


@pytest.mark.parametrize("mode", [PsiMode.INTERSECTION, PsiMode.UNBALANCED])
def test_repeated_points_are_refused_with_their_reason(tmp_path: Path, mode: PsiMode) -> None:
    r = make(tmp_path, Clock(T0))
    a = oprf.Buyer(["P1"]).blinded() if mode is PsiMode.UNBALANCED else psi.Buyer(["P1"]).blinded()
    ans = ask(r, ["P1"], mode=mode, points=a * 3)
    assert ans.code == "psi_repeated_point" and "repeats" in (ans.refusal or "") and not ans.stages


def test_a_set_without_room_for_the_commitment_fails(tmp_path: Path) -> None:
    r = make(tmp_path, Clock(T0))
    (point,) = psi.Buyer(["P1"]).blinded()
    ans = r.run("acme", PsiJob("visits", "patient_id", PsiMode.INTERSECTION, True, (), b"", 1), [point],
                job_id="j", cached_tables=[])
    assert ans.failure is not None and "must end with its 2-point commitment" in ans.failure
    assert r.budget.charges() == []


def test_max_buyer_set_counts_ids_not_the_commitment(tmp_path: Path) -> None:
    r = make(tmp_path, Clock(T0), extra="max_buyer_set = 3")
    assert ask(r, ["P1", "P2", "P3"]).refusal is None  # three IDs and the two points of the commitment
    refused = ask(r, ["P1", "P2", "P3", "P4"])
    assert refused.code == "max_buyer_set" and "set of 4 IDs" in (refused.refusal or "")
