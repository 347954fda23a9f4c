"""A holder's noise in a multi-holder psi-sum: the rows the gateway counts carry noise apart from the size's."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from datawharf.model import PsiJob, PsiMode
from parties.psi_runner import SHIFT_SD, plan_noise
from protocols import dp, psi
from protocols.psi_stages import Stage, split_items
from tests.unit.parties.test_psi_noise import make


def test_multi_holder_sum_draws_counted_rows_apart_from_the_size(tmp_path: Path) -> None:
    r = make(tmp_path)
    ds = r.config.datasets[0]
    job = PsiJob("visits", "patient_id", PsiMode.SUM, False, ("cost",), holders=("h", "other"), at_least=2)
    plan = plan_noise(ds, job, 0.05)
    assert plan is not None
    one = dp.scale_for(0.05 / 4, 1.0)  # size, set size, the cost column and the counted rows
    # At t = 2 of 2 one ID here can move both holders' totals and counted rows: their noise is √2 larger.
    assert plan.size_sd == plan.set_size_sd == pytest.approx(one)
    assert plan.rows_sd == pytest.approx(math.sqrt(2) * one)
    assert plan.sum_sd == (pytest.approx(math.sqrt(2) * dp.scale_for(0.05 / 4, 500_000.0)),)
    any_one = plan_noise(ds, PsiJob("visits", "patient_id", PsiMode.SUM, False, ("cost",), holders=("h", "o"),
                                    at_least=1), 0.05)
    assert any_one is not None and any_one.rows_sd == pytest.approx(one)  # t = 1: its own total alone
    shift = math.ceil(SHIFT_SD * plan.rows_sd)
    tied = [(d.offset, d.count) for d in (plan.draw() for _ in range(40))]
    # With the single-holder tie offset would always be count - shift; drawn apart it is not.
    assert any(off != count - shift for off, count in tied)
    single = plan_noise(ds, PsiJob("visits", "patient_id", PsiMode.SUM, False, ("cost",)), 0.05)
    assert single is not None and single.rows_sd == 0


def test_multi_holder_answers_keep_the_buyers_order(tmp_path: Path) -> None:
    r = make(tmp_path)
    mine = [f"P{i}" for i in range(15)] + [f"Q{i}" for i in range(15)]
    b = psi.Buyer(mine)
    a = b.blinded() + b.commitment()
    job = PsiJob("visits", "patient_id", PsiMode.INTERSECTION, True, buyer_set_size=len(a), holders=("h", "x"))
    ans = r.run("acme", job, a, job_id="j1", cached_tables=[])
    assert ans.refusal is None and ans.failure is None, (ans.refusal, ans.failure)
    z = b"".join(b.reblind(split_items(ans.stages[Stage.W], Stage.W)))
    # Cardinality-only, yet D is in A's order (a one-holder answer shuffles it): its matches are the buyer's.
    hits = psi.positions_in(ans.stages[Stage.D], z)
    assert {m.decode() for m in b.matched(hits)} == {f"p{i}" for i in range(15)}
    other = PsiJob("visits", "patient_id", PsiMode.INTERSECTION, False, buyer_set_size=len(a), holders=("x", "y"))
    refused = r.run("acme", other, a, job_id="j2", cached_tables=[])
    assert refused.code == "not_asked" and "not this one (h)" in (refused.refusal or "")
