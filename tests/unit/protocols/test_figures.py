from fractions import Fraction

import numpy as np
import pytest

from protocols.figures import Figure, Layout, Statistic, finish, local_figures


def test_layout_positions() -> None:
    lay = Layout(Statistic.VARIANCE, dimension=3, groups=2)
    assert lay.group_width == 7 and lay.length == 14
    assert lay.slice(1, Figure.SUM_OF_SQUARES) == slice(10, 13)
    assert lay.slice(1, Figure.COUNT) == slice(13, 14)


def test_layout_limits() -> None:
    with pytest.raises(ValueError, match="limit"):
        Layout(Statistic.SUM, dimension=1 << 22, groups=2)
    with pytest.raises(ValueError):
        Layout(Statistic.SUM, dimension=0)


def test_local_figures_grouped_vectors() -> None:
    lay = Layout(Statistic.MEAN, dimension=2, groups=2)
    values = np.array([[1, 2], [3, 4], [10, 20], [7, 7]], dtype=np.int64)
    groups = np.array([0, 0, 1, -1])
    figures, rows = local_figures(lay, values, groups)
    assert figures == [4, 6, 2, 10, 20, 1] and rows == [2, 1]


def test_sums_of_squares_do_not_overflow_int64() -> None:
    big = np.full((4, 1), 2**40, dtype=np.int64)
    figures, _ = local_figures(Layout(Statistic.VARIANCE), big)
    assert figures == [4 * 2**40, 4 * 2**80, 4]


def test_finish_exact_and_approximate() -> None:
    lay = Layout(Statistic.VARIANCE)
    (g,) = finish(lay, [600, 140_000, 3], places=1)  # values 10.0, 20.0, 30.0 in tenths
    assert g.values == (Fraction(100),) and g.rows == 3
    (m,) = finish(Layout(Statistic.MEAN), [600.0, 2.9999999], places=1)
    assert m.rows == 3 and abs(m.values[0] - 20.0) < 1e-9


def test_empty_groups_give_nan_not_errors() -> None:
    out = finish(Layout(Statistic.MEAN, groups=2), [5, 1, 0, 0], places=0)
    assert out[0].values == (Fraction(5),)
    assert out[1].rows == 0 and out[1].values[0] != out[1].values[0]  # NaN


def test_histogram_counts() -> None:
    out = finish(Layout(Statistic.HISTOGRAM, groups=3), [4, 0, 9], places=2)
    assert [g.values[0] for g in out] == [4, 0, 9]
