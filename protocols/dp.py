"""Differential privacy for released figures: clipping, discrete Gaussian noise, zCDP accounting.

Every figure a holder releases is a sum over its rows (see ``protocols.figures``).
Under differential privacy the holder clips each value to the bounds it
declared for the column, adds discrete Gaussian noise to each figure before
encrypting it, and charges the job's privacy loss ρ (zero-concentrated DP)
to the buyer's budget for the dataset. Noise and accounting come from
OpenDP: ``make_gaussian`` over integers is its discrete Gaussian sampler, and
its privacy map is the authority on what a noise scale costs.

Neighbouring datasets differ by one row (added or removed). One row moves
each figure part of the one group it falls in by at most

    count            1
    sum              max(|lower|, |upper|)     per element, L2 over D elements
    sum of squares   max(lower², upper²)       per element, L2 over D elements

(groups and bins are disjoint, so a row touches one group: parallel
composition). A job with P figure parts spends ρ/P on each part, so the
whole release is ρ-zCDP per holder.

Guarantee, per holder and its rows:

- Against the buyer alone: the released total is ρ-zCDP for each holder's
  rows. With ``noise = "full"`` each holder adds all the noise its own rows
  need, so this holds whoever else contributes. With ``noise = "split"``
  each holder adds 1/m of that variance, m being its own ``split_among``,
  and refuses a job that requires fewer than m holders (distinct
  organisations, enforced by the gateway and checked by the buyer on signed
  receipts); the total carries the declared noise when those m holders
  declare the same bounds and spend, the exchange convention for a split
  dataset, and none of them is the buyer's own.
- Against the buyer together with the gateway: the gateway holds each
  holder's ciphertext and the buyer the key, so together they see each
  holder's noisy figures alone. ``full``: still ρ-zCDP. ``split``: a holder's
  own share carries 1/m of the variance, so the guarantee weakens to m·ρ.
- The minimum-rows rule: under differential privacy it is judged on noisy
  row counts per group, paid for by an equal share of the job's ρ, so a
  refusal or a suppressed group is covered by ρ too. Whether the buyer's
  budget is spent is the buyer's own business, not the rows'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Sequence

import numpy as np
import numpy.typing as npt
import opendp.prelude as dp

from protocols.figures import Figure, Layout, Statistic

dp.enable_features("contrib")

# OpenDP's discrete Gaussian over i64: noise beyond ±2^62 would not fit, so
# scales are capped well inside (40 σ is a tail of about 10^-348).
MAX_SCALE = float(2**62) / 40
# Figures are sampled in batches: OpenDP copies the vector both ways.
_BATCH = 1 << 16


class PrivacyError(ValueError):
    """A privacy parameter is out of range, or the noise it needs cannot be drawn."""


@dataclass(frozen=True)
class Bounds:
    """The declared range of a column's values, in the column's own units."""

    lower: Decimal
    upper: Decimal

    def __post_init__(self) -> None:
        if not self.lower <= self.upper:
            raise PrivacyError(f"bounds [{self.lower}, {self.upper}]: the lower bound is above the upper")

    def scaled(self, places: int) -> tuple[int, int]:
        """The bounds in fixed-point units of 10^-places, widened outward to integers."""
        unit = Decimal(10) ** places
        return (int((self.lower * unit).to_integral_value(rounding="ROUND_FLOOR")),
                int((self.upper * unit).to_integral_value(rounding="ROUND_CEILING")))


def clip(scaled: npt.NDArray[np.int64], bounds: Bounds, places: int) -> npt.NDArray[np.int64]:
    """Each value moved into the declared range, so one row moves a sum by at most the bound."""
    lo, hi = bounds.scaled(places)
    return np.clip(scaled, lo, hi)


def sensitivity(figure: Figure, bounds: Bounds | None, places: int, dimension: int) -> float:
    """L2 distance one row can move this figure part (of its one group), in fixed-point units."""
    if figure is Figure.COUNT:
        return 1.0
    if bounds is None:
        raise PrivacyError("a sum under differential privacy needs the column's declared bounds")
    lo, hi = bounds.scaled(places)
    peak = max(abs(lo), abs(hi))
    if figure is Figure.SUM_OF_SQUARES:
        peak = peak * peak
    return math.sqrt(dimension) * float(peak)


def _measurement(scale: float) -> dp.Measurement:
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=scale)


def _rho_of(scale: float, d_in: float) -> float:
    """OpenDP's map: the ρ a discrete Gaussian of this scale spends at L2 sensitivity d_in."""
    meas = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float),
                              scale=scale)
    return float(meas.map(d_in))


def scale_for(rho: float, d_in: float) -> float:
    """The smallest noise scale OpenDP accounts as at most ρ at this sensitivity."""
    if not rho > 0:
        raise PrivacyError(f"a privacy spend must be positive, got ρ = {rho}")
    scale = d_in / math.sqrt(2.0 * rho)
    # The closed form can land a rounding step short; OpenDP's map decides.
    while _rho_of(scale, d_in) > rho:
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
    if scale > MAX_SCALE:
        raise PrivacyError(f"ρ = {rho} at these bounds needs noise of scale {scale:.3g}, too wide to draw; "
                           "narrow the column's bounds or spend more per job")
    return scale


@dataclass(frozen=True)
class NoisePlan:
    """The noise one holder adds to one job's figures."""

    rho: float                         # what the job costs this holder's budget
    scale: dict[Figure, float]         # σ the total carries on each figure part (fixed-point units)
    share: dict[Figure, float]         # σ this holder adds (scale / √m under split noise)
    threshold_sd: float = 0.0          # σ of the noisy row counts its minimum-rows rule is judged on

    def scales(self, layout: Layout) -> list[float]:
        """This holder's σ at every figure of the layout."""
        out = [0.0] * layout.length
        for g in range(layout.groups):
            for f in layout.parts:
                s = layout.slice(g, f)
                out[s] = [self.share[f]] * (s.stop - s.start)
        return out


def plan(layout: Layout, places: int, bounds: Bounds | None, rho: float, *, shares: int = 1,
         threshold: bool = False) -> NoisePlan:
    """Split ρ evenly across the layout's figure parts and size each part's noise.

    ``shares`` is how many holders' noise the total is guaranteed to carry
    (1 for ``full`` noise, the holder's ``split_among`` for ``split``). With
    ``threshold`` one more equal part pays for noisy row counts per group
    (sensitivity 1; groups are disjoint), on which a minimum-rows rule is
    judged, so that a refusal or a suppressed group is itself private."""
    if shares < 1:
        raise PrivacyError("noise must be split among at least one holder")
    per_part = rho / (len(layout.parts) + (1 if threshold else 0))
    scale = {f: scale_for(per_part, sensitivity(f, bounds, places, layout.width(f))) for f in layout.parts}
    share = {f: s / math.sqrt(shares) for f, s in scale.items()}
    return NoisePlan(rho, scale, share, scale_for(per_part, 1.0) if threshold else 0.0)


def noise(scales: Sequence[float]) -> list[int]:
    """Discrete Gaussian noise, one draw per figure at its σ (0 means none), from OpenDP's sampler."""
    out = [0] * len(scales)
    by_scale: dict[float, list[int]] = {}
    for i, s in enumerate(scales):
        if s < 0 or not math.isfinite(s) or s > MAX_SCALE:
            raise PrivacyError(f"noise scale {s} is out of range")
        if s > 0:
            by_scale.setdefault(s, []).append(i)
    for s, where in by_scale.items():
        meas = _measurement(s)
        for start in range(0, len(where), _BATCH):
            idx = where[start:start + _BATCH]
            for i, v in zip(idx, meas([0] * len(idx))):
                out[i] = int(v)
    return out


def add_noise(figures: Sequence[int], scales: Sequence[float]) -> list[int]:
    if len(figures) != len(scales):
        raise PrivacyError(f"{len(scales)} noise scales for {len(figures)} figures")
    return [int(f) + n for f, n in zip(figures, noise(scales))]


def epsilon(rho: float, delta: float = 1e-6) -> float:
    """The (ε, δ) reading of ρ-zCDP, by OpenDP's conversion (for people who think in ε)."""
    if rho <= 0:
        return 0.0
    meas = dp.c.make_zCDP_to_approxDP(dp.m.make_gaussian(
        dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=1.0 / math.sqrt(2.0 * rho)))
    return float(meas.map(1.0).epsilon(delta))


Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """A released statistic's noise: its standard deviation and a 95 % interval around the value."""

    sd: float
    low: float
    high: float


def total_scale(shares: Sequence[float]) -> float:
    """σ of a total whose holders each added independent noise of these σ."""
    return math.sqrt(sum(s * s for s in shares))


def interval(statistic: Statistic, value: Fraction | float, count: float | None, *, sum_sd: float,
             sumsq_sd: float = 0.0, count_sd: float = 0.0, mean: float | None = None) -> Interval | None:
    """95 % interval for one released element, from the σ of its figures (in value units).

    Sums and counts carry Gaussian noise directly; means and variances are
    ratios of noisy figures, so theirs is the delta-method approximation, good
    when the count is large against its noise. ``mean`` is needed for a variance."""
    v = float(value)
    if not math.isfinite(v):
        return None
    if statistic is Statistic.SUM:
        sd = sum_sd
    elif statistic in (Statistic.COUNT, Statistic.HISTOGRAM):
        sd = count_sd
    elif count is None or count <= 1:
        return None
    elif statistic is Statistic.MEAN:
        sd = math.sqrt(sum_sd ** 2 + (v * count_sd) ** 2) / count
    else:
        # s² = (Σx² − (Σx)²/n)/(n−1): partial derivatives 1, −2·mean and mean² − s², over n−1.
        m = 0.0 if mean is None else mean
        sd = math.sqrt(sumsq_sd ** 2 + (2 * m * sum_sd) ** 2 + ((m * m - v) * count_sd) ** 2) / (count - 1)
    return Interval(sd, v - Z95 * sd, v + Z95 * sd)


__all__ = ["Bounds", "Interval", "NoisePlan", "PrivacyError", "add_noise", "clip", "epsilon", "interval",
           "noise", "plan", "scale_for", "sensitivity", "total_scale"]
