from fractions import Fraction

import numpy as np
import pytest

from protocols.fixed_point import EncodingError, scale_column, unscale


def test_decimals_become_exact_integers() -> None:
    out = scale_column([0.1, 0.2, -3.25, 1234567.89, 0.005], 2)
    assert out.tolist() == [10, 20, -325, 123456789, 0]  # half to even at the last place
    assert out.dtype == np.int64


def test_unscale_is_exact() -> None:
    assert unscale(-325, 2) == Fraction(-13, 4)


def test_empty_column() -> None:
    assert scale_column([], 2).tolist() == []


@pytest.mark.parametrize("values, match", [([float("nan")], "NaN"), ([float("inf")], "NaN"), ([1e16], "too large")])
def test_unencodable_values_are_refused(values, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EncodingError, match=match):
        scale_column(values, 2)


def test_places_are_bounded() -> None:
    with pytest.raises(EncodingError, match="between 0 and 12"):
        scale_column([1.0], 13)
