"""What one holder contributes to an aggregate: a vector of integer figures.

Every statistic is a sum across holders of per-holder figures:

    sum        Σx                      (one per vector element)
    count      n
    mean       Σx, n
    variance   Σx, Σx², n
    histogram  n per bin

Grouping (``--group-by`` over declared categories, or histogram bins)
repeats those figures once per group. A vector column of dimension D makes
Σx and Σx² D wide. The layout fixes where each figure sits, so holders and
buyer agree without sending any labels.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt


class Statistic(str, enum.Enum):
    SUM = "sum"
    COUNT = "count"
    MEAN = "mean"
    VARIANCE = "variance"
    HISTOGRAM = "histogram"


class Figure(str, enum.Enum):
    SUM = "sum"
    SUM_OF_SQUARES = "sum_of_squares"
    COUNT = "count"


FIGURES: dict[Statistic, tuple[Figure, ...]] = {
    Statistic.SUM: (Figure.SUM,),
    Statistic.COUNT: (Figure.COUNT,),
    Statistic.MEAN: (Figure.SUM, Figure.COUNT),
    Statistic.VARIANCE: (Figure.SUM, Figure.SUM_OF_SQUARES, Figure.COUNT),
    Statistic.HISTOGRAM: (Figure.COUNT,),
}

MAX_FIGURES = 1 << 22  # about 4 million figures in one job


class EmptyAggregate(ValueError):
    """The statistic is undefined over the rows that matched."""


@dataclass(frozen=True)
class Layout:
    statistic: Statistic
    dimension: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        if self.dimension < 1 or self.groups < 1:
            raise ValueError("dimension and groups must be at least 1")
        if self.length > MAX_FIGURES:
            raise ValueError(f"{self.length} figures is more than the limit of {MAX_FIGURES}")

    @property
    def parts(self) -> tuple[Figure, ...]:
        return FIGURES[self.statistic]

    def width(self, figure: Figure) -> int:
        return 1 if figure is Figure.COUNT else self.dimension

    @property
    def group_width(self) -> int:
        return sum(self.width(f) for f in self.parts)

    @property
    def length(self) -> int:
        return self.groups * self.group_width

    def slice(self, group: int, figure: Figure) -> slice:
        start = group * self.group_width
        for f in self.parts:
            if f is figure:
                return slice(start, start + self.width(f))
            start += self.width(f)
        raise KeyError(figure)


def _exact_sum(block: npt.NDArray[np.int64], squares: bool) -> list[int]:
    """Column sums as exact Python integers, using int64 only where it cannot overflow."""
    if block.size == 0:
        return [0] * block.shape[1]
    peak = int(np.max(np.abs(block)))
    rows = block.shape[0]
    bound = (peak * peak if squares else peak) * rows
    if bound < 2**62:
        data = block * block if squares else block
        return [int(v) for v in data.sum(axis=0).tolist()]
    obj = block.astype(object)
    data = obj * obj if squares else obj
    return [int(v) for v in data.sum(axis=0).tolist()]


def local_figures(
    layout: Layout,
    scaled: npt.NDArray[np.int64],
    group_index: npt.NDArray[np.int64] | None = None,
) -> tuple[list[int], list[int]]:
    """A holder's figures and its row count per group.

    ``scaled`` is rows × dimension (fixed-point integers); ``group_index``
    gives each row's group, or -1 for rows in no group.
    """
    if scaled.ndim == 1:
        scaled = scaled.reshape(-1, 1)
    if scaled.shape[1] != layout.dimension:
        raise ValueError(f"values have dimension {scaled.shape[1]}, the job expects {layout.dimension}")
    if group_index is None:
        group_index = np.zeros(scaled.shape[0], dtype=np.int64)
    out = [0] * layout.length
    rows_per_group = []
    for g in range(layout.groups):
        block = scaled[group_index == g]
        rows_per_group.append(int(block.shape[0]))
        for f in layout.parts:
            s = layout.slice(g, f)
            if f is Figure.COUNT:
                out[s] = [block.shape[0]]
            else:
                out[s] = _exact_sum(block, squares=f is Figure.SUM_OF_SQUARES)
    return out, rows_per_group


@dataclass(frozen=True)
class GroupValue:
    """One group's statistic: a value per vector element, and its row count."""

    values: tuple[Fraction | float, ...]
    rows: int | None


def finish(layout: Layout, totals: list[int] | list[float], places: int) -> list[GroupValue]:
    """Turn decrypted totals into each group's statistic.

    Exact integer totals give Fractions; approximate (CKKS) totals give
    floats, with counts rounded to the integers they must be.
    """
    if len(totals) != layout.length:
        raise ValueError(f"{len(totals)} totals for a layout of {layout.length}")
    exact = all(isinstance(t, int) for t in totals)
    unit = 10**places
    out = []
    for g in range(layout.groups):
        count: int | None = None
        if Figure.COUNT in layout.parts:
            count = int(round(totals[layout.slice(g, Figure.COUNT)][0]))
        stat = layout.statistic
        if stat in (Statistic.COUNT, Statistic.HISTOGRAM):
            out.append(GroupValue((Fraction(count or 0) if exact else float(count or 0),), count))
            continue
        sums = totals[layout.slice(g, Figure.SUM)]
        if stat is Statistic.SUM:
            vals = tuple(Fraction(int(s), unit) if exact else float(s) / unit for s in sums)
            out.append(GroupValue(vals, None))
            continue
        assert count is not None
        if stat is Statistic.MEAN:
            if count <= 0:
                out.append(GroupValue(tuple(float("nan") for _ in sums), count))
                continue
            vals = tuple(Fraction(int(s), unit * count) if exact else float(s) / unit / count for s in sums)
            out.append(GroupValue(vals, count))
            continue
        squares = totals[layout.slice(g, Figure.SUM_OF_SQUARES)]
        if count <= 1:
            out.append(GroupValue(tuple(float("nan") for _ in sums), count))
            continue
        vals_v: list[Fraction | float] = []
        for s, ss in zip(sums, squares):
            if exact:
                v = (Fraction(int(ss)) - Fraction(int(s) * int(s), count)) / (count - 1) / (unit * unit)
            else:
                v = (float(ss) - float(s) * float(s) / count) / (count - 1) / (unit * unit)
            vals_v.append(v)
        out.append(GroupValue(tuple(vals_v), count))
    return out
