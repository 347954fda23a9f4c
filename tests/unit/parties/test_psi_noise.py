"""The holder's PSI noise under its DP policy: the plan, the charge, and the differencing attack in-process.

The probe: a list of 30 IDs summed to 2731.77; adding one phone number gave
2780.98, so that person spends 49.21. Under DP the difference of the two
totals is that value plus the difference of two independent noises, whose
spread is hundreds of times the value.
"""

from __future__ import annotations

import math
import statistics
from decimal import Decimal
from pathlib import Path

import pytest

from datawharf.model import PsiJob, PsiMode
from parties.budget import BudgetBook
from parties.config import load_party_config
from parties.psi_runner import SHIFT_SD, PsiRunner, plan_noise
from parties.sources import CachedSource
from protocols import dp, oprf, psi, psi_sum
from protocols.psi_stages import GatewayNotes, NoiseDeclaration, Stage, split_items, unpack_masked

TARGET = "+44 7700 900123"
COSTS = {f"P{i}": Decimal(100 + 7 * i) + Decimal("0.25") for i in range(40)} | {TARGET: Decimal("49.21")}
CSV = "patient_id,cost\n" + "".join(f"{k},{v}\n" for k, v in COSTS.items())
CONFIG = """
name = "h"
gateway = "127.0.0.1:1"
[[datasets]]
name = "visits"
source = "v.csv"
columns = [
  { name = "patient_id", type = "string", join_key = true },
  { name = "cost", type = "decimal", decimals = 2, psi_value = true, bounds = [-500, 5000] },
]
[datasets.policy]
allowed_buyers = ["acme"]
allowed_psi = ["intersection", "cardinality", "sum", "unbalanced"]
min_intersection = 10
psi_jobs_per_period = 1000
[datasets.policy.dp]
budget = BUDGET
max_per_job = 0.05
default_per_job = 0.05
"""
LIST = [f"P{i}" for i in range(30)]


def make(tmp_path: Path, budget: float = 10.0) -> PsiRunner:
    (tmp_path / "v.csv").write_text(CSV)
    (tmp_path / "p.toml").write_text(CONFIG.replace("BUDGET", str(budget)))
    cfg = load_party_config(tmp_path / "p.toml")
    assert cfg.state_dir is not None
    return PsiRunner(cfg, {d.name: CachedSource(d) for d in cfg.datasets}, cfg.state_dir,
                     budget=BudgetBook(cfg.state_dir))


def sum_job(r: PsiRunner, ids: list[str], job_id: str) -> tuple[int, int, NoiseDeclaration, int]:
    """The whole psi-sum job in-process: holder (runner), gateway, buyer. (size, total in cents, declaration, |W|)."""
    b = psi_sum.Buyer(ids)
    a = b.blinded() + b.commitment()
    job = PsiJob("visits", "patient_id", PsiMode.SUM, False, ("cost",), b.box.public, len(a))
    ans = r.run("acme", job, a, job_id=job_id, cached_tables=[])
    assert ans.refusal is None and ans.failure is None, (ans.refusal, ans.failure)
    w = split_items(ans.stages[Stage.W], Stage.W)
    z = b.reblind(w)
    noise = GatewayNotes.unpack(ans.stages[Stage.N])
    res = psi_sum.gateway_sum(split_items(ans.stages[Stage.D], Stage.D), z,
                              unpack_masked(ans.stages[Stage.M], 1), minimum=ans.min_intersection,
                              offset=noise.offset, counted=noise.include, canaries=noise.canaries)
    (total,) = b.totals(res, ans.stages[Stage.S], job_id.encode(), len(z))
    return res.size, total, NoiseDeclaration.unpack(ans.stages[Stage.P]), len(w)


def test_plan_splits_rho_over_size_set_size_and_each_column(tmp_path: Path) -> None:
    r = make(tmp_path)
    ds = r.config.datasets[0]
    plan = plan_noise(ds, PsiJob("visits", "patient_id", PsiMode.SUM, False, ("cost",)), 0.05)
    assert plan is not None and plan.rho == 0.05
    assert plan.size_sd == plan.set_size_sd == pytest.approx(dp.scale_for(0.05 / 3, 1.0))
    assert plan.sum_sd == (pytest.approx(dp.scale_for(0.05 / 3, 500_000.0)),)  # 5000.00 in cents
    card = plan_noise(ds, PsiJob("visits", "patient_id", PsiMode.INTERSECTION, True), 0.05)
    assert card is not None and card.size_sd == pytest.approx(dp.scale_for(0.025, 1.0)) and card.sum_sd == ()
    exact = plan_noise(ds, PsiJob("visits", "patient_id", PsiMode.INTERSECTION, False), 0.05)
    assert exact is not None and exact.size_sd == 0 and exact.set_size_sd == pytest.approx(dp.scale_for(0.05, 1.0))
    assert plan_noise(ds, PsiJob("visits", "patient_id", PsiMode.UNBALANCED, False), 0.05) is None


def test_differencing_spread_dwarfs_the_persons_value(tmp_path: Path) -> None:
    """Drawn 300 times with the job's plan: the attack's difference is 4921 cents plus η₁ − η₂.

    Its sample standard deviation falls below half of √2·σ only if a χ² with
    299 degrees of freedom falls below a quarter of its mean: by the Chernoff
    bound (x·e^(1−x))^(k/2) at x = 1/4, under 10^-40. √2·σ is fixed by the
    plan and checked to be over 100 times the value, so the test fails only
    if the noise is missing or too small."""
    r = make(tmp_path)
    plan = plan_noise(r.config.datasets[0], PsiJob("visits", "patient_id", PsiMode.SUM, False, ("cost",)), 0.05)
    assert plan is not None
    value = 4921
    diffs, size_diffs = [], []
    for _ in range(300):
        with_target, without = plan.draw(), plan.draw()
        assert with_target.sums is not None and without.sums is not None
        diffs.append(value + with_target.sums[0] - without.sums[0])
        size_diffs.append(1 + with_target.offset - without.offset)
    sd = math.sqrt(2) * plan.sum_sd[0]
    assert sd > 100 * value
    assert statistics.stdev(diffs) > sd / 2
    assert statistics.stdev(size_diffs) > math.sqrt(2) * plan.size_sd / 2 > 3  # membership hidden too


def test_whole_jobs_carry_the_declared_noise_and_charge_rho(tmp_path: Path) -> None:
    r = make(tmp_path)
    truth = sum(int(COSTS[i] * 100) for i in LIST)
    outs = [sum_job(r, LIST, "j1"), sum_job(r, LIST + [TARGET], "j2")]
    for (size, total, decl, w), n in zip(outs, (30, 31)):
        assert not decl.exact and decl.rho == 0.05
        assert dict(decl.sum_sd)["cost"] == pytest.approx(dp.scale_for(0.05 / 3, 500_000.0) / 100)
        assert total != truth + (4921 if n == 31 else 0)  # exact with probability under 10^-6
        assert abs(total - truth - (4921 if n == 31 else 0)) < 40 * dict(decl.sum_sd)["cost"] * 100
        shift = math.ceil(SHIFT_SD * decl.size_sd)
        fixed = 41 + 2 * shift + 1 + psi.CANARIES  # own IDs, size padding, the noise row, canaries
        assert fixed <= w <= fixed + 2 * math.ceil(SHIFT_SD * decl.set_size_sd)
    assert outs[1][2].remaining == pytest.approx(10 - 0.1)
    rho = [c for c in r.budget.charges() if c[2] == "rho"]
    assert [(c[3], c[4]) for c in rho] == [("j1", 0.05), ("j2", 0.05)]


def test_spent_privacy_budget_is_refused_before_any_quota_is_charged(tmp_path: Path) -> None:
    r = make(tmp_path, budget=0.1)
    sum_job(r, LIST, "j1")
    sum_job(r, LIST, "j2")
    b = psi.Buyer(LIST)
    ans = r.run("acme", PsiJob("visits", "patient_id", PsiMode.INTERSECTION, True, (), b"", 32),
                b.blinded() + b.commitment(), job_id="j3", cached_tables=[])
    assert ans.code == "dp_budget" and "privacy budget for 'visits'" in (ans.refusal or "")
    assert "needs rho = 0.05" in (ans.refusal or "") and not ans.stages
    assert [c[3] for c in r.budget.charges()].count("j3") == 0


def test_exact_unbalanced_answers_declare_no_noise_and_cost_no_rho(tmp_path: Path) -> None:
    r = make(tmp_path)
    b = oprf.Buyer(LIST)
    ans = r.run("acme", PsiJob("visits", "patient_id", PsiMode.UNBALANCED, False, (), b"", 30), b.blinded(),
                job_id="u", cached_tables=[])
    notes = GatewayNotes.unpack(ans.stages[Stage.N])
    assert NoiseDeclaration.unpack(ans.stages[Stage.P]).exact and (notes.offset, notes.include) == (0, ())
    assert all(c[2] != "rho" for c in r.budget.charges())


def test_the_buyers_own_spend_is_used_and_capped_by_max_per_job(tmp_path: Path) -> None:
    r = make(tmp_path)
    b = psi.Buyer(LIST)
    a = b.blinded() + b.commitment()
    job = PsiJob("visits", "patient_id", PsiMode.INTERSECTION, True, (), b"", len(a), rho=0.02)
    ans = r.run("acme", job, a, job_id="own", cached_tables=[])
    decl = NoiseDeclaration.unpack(ans.stages[Stage.P])
    assert decl.rho == 0.02 and decl.size_sd == pytest.approx(dp.scale_for(0.01, 1.0))
    assert [(c[3], c[4]) for c in r.budget.charges() if c[2] == "rho"] == [("own", 0.02)]
    over = PsiJob("visits", "patient_id", PsiMode.INTERSECTION, True, (), b"", len(a), rho=0.06)
    refused = r.run("acme", over, a, job_id="over", cached_tables=[])
    assert refused.code == "dp_per_job" and "at most 0.05 per job" in (refused.refusal or "")
