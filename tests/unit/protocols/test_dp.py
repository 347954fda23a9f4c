"""Noise, clipping and accounting for released figures (protocols.dp), against OpenDP's own maps."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import numpy as np
import pytest

from protocols import dp
from protocols.figures import Figure, Layout, Statistic

BOUNDS = dp.Bounds(Decimal("-500"), Decimal("5000"))


def test_each_part_gets_its_share_of_rho_and_the_whole_job_spends_rho() -> None:
    layout = Layout(Statistic.VARIANCE, dimension=3, groups=4)
    plan = dp.plan(layout, 2, BOUNDS, 0.3)
    # Every part spends rho/3 at its own sensitivity; OpenDP's map agrees.
    spent = sum(dp._rho_of(plan.scale[f], dp.sensitivity(f, BOUNDS, 2, layout.width(f))) for f in layout.parts)
    assert spent <= 0.3 and spent == pytest.approx(0.3, rel=1e-9)
    # A row moves a sum by at most the larger bound (500000 hundredths), across 3 elements in L2.
    assert dp.sensitivity(Figure.SUM, BOUNDS, 2, 3) == pytest.approx(math.sqrt(3) * 500_000)
    assert dp.sensitivity(Figure.SUM_OF_SQUARES, BOUNDS, 2, 1) == pytest.approx(500_000.0 ** 2)
    assert dp.sensitivity(Figure.COUNT, None, 2, 1) == 1.0
    # Groups are disjoint: a finer grouping costs nothing more.
    assert dp.plan(Layout(Statistic.SUM, 1, 1), 2, BOUNDS, 0.3).scale == dp.plan(
        Layout(Statistic.SUM, 1, 50), 2, BOUNDS, 0.3).scale


def test_split_noise_divides_the_variance_among_the_minimum_holders() -> None:
    full = dp.plan(Layout(Statistic.SUM), 2, BOUNDS, 0.1)
    split = dp.plan(Layout(Statistic.SUM), 2, BOUNDS, 0.1, shares=4)
    assert split.share[Figure.SUM] ** 2 * 4 == pytest.approx(full.share[Figure.SUM] ** 2)


def test_noise_has_the_declared_spread_and_no_bias() -> None:
    # 20000 draws: the sample sd is within 3 % of sigma with probability 1 - 1e-9 or so (chi, 20k dof).
    sigma = 37.5
    draws = dp.noise([sigma] * 20_000)
    assert all(isinstance(x, int) for x in draws)
    assert statistics.pstdev(draws) == pytest.approx(sigma, rel=0.03)
    assert abs(statistics.fmean(draws)) < 6 * sigma / math.sqrt(20_000)
    assert dp.noise([0.0, 0.0]) == [0, 0]


def test_clipping_bounds_what_one_row_can_add() -> None:
    scaled = np.array([[-10**9], [0], [10**12]], dtype=np.int64)
    assert dp.clip(scaled, BOUNDS, 2).ravel().tolist() == [-50_000, 0, 500_000]


def test_bad_parameters_are_refused_with_the_reason() -> None:
    with pytest.raises(dp.PrivacyError, match="positive"):
        dp.plan(Layout(Statistic.SUM), 2, BOUNDS, 0.0)
    with pytest.raises(dp.PrivacyError, match="bounds"):
        dp.plan(Layout(Statistic.SUM), 2, None, 0.1)
    with pytest.raises(dp.PrivacyError, match="too wide"):
        dp.plan(Layout(Statistic.VARIANCE), 12, dp.Bounds(Decimal(0), Decimal(10) ** 14), 1e-6)
    with pytest.raises(dp.PrivacyError, match="lower bound is above"):
        dp.Bounds(Decimal(2), Decimal(1))
    with pytest.raises(dp.PrivacyError):
        dp.noise([float("nan")])


def test_epsilon_reading_and_intervals() -> None:
    # OpenDP's conversion: rho = 0.5 is about epsilon 4.2 at delta 1e-6 (rho + 2 sqrt(rho ln(1/delta)) bounds it).
    eps = dp.epsilon(0.5, 1e-6)
    assert 3.0 < eps < 0.5 + 2 * math.sqrt(0.5 * math.log(1e6))
    iv = dp.interval(Statistic.SUM, 100.0, None, sum_sd=10.0)
    assert iv is not None and iv.low == pytest.approx(100 - 19.6, abs=0.01) and iv.high == pytest.approx(119.6, abs=0.01)
    mean = dp.interval(Statistic.MEAN, 50.0, 1000, sum_sd=100.0, count_sd=2.0)
    assert mean is not None and mean.sd == pytest.approx(math.sqrt(100.0 ** 2 + 100.0 ** 2) / 1000)
    assert dp.interval(Statistic.MEAN, float("nan"), 0, sum_sd=1.0) is None
