"""Exact fixed-point encoding of column values as signed integers.

Holders must all encode a column with the same number of decimal places, so
the places travel with the job spec; the buyer divides by 10**places at the
very end, working in exact fractions until then.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

# Doubles hold integers exactly up to 2**53; beyond this the rounding below
# would no longer recover the intended decimal.
MAX_ABS_SCALED = 2**53


class EncodingError(ValueError):
    """A value cannot be encoded exactly at the requested places."""


def scale_column(values: npt.ArrayLike, places: int) -> npt.NDArray[np.int64]:
    """Turn decimal values into integers counted in units of 10**-places.

    Values are rounded half-to-even at the last place; a value whose scaled
    magnitude exceeds 2**53 is refused instead of silently losing digits.
    """
    if places < 0 or places > 12:
        raise EncodingError(f"decimal places must be between 0 and 12, got {places}")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size and not np.all(np.isfinite(arr)):
        raise EncodingError("column holds NaN or infinite values; clean them before listing it")
    scaled = np.rint(arr * (10.0**places))
    if arr.size and float(np.max(np.abs(scaled))) >= MAX_ABS_SCALED:
        raise EncodingError(
            f"a value is too large to encode exactly with {places} decimal places"
        )
    return scaled.astype(np.int64)


def unscale(value: int | Fraction, places: int) -> Fraction:
    """The exact value of an integer counted in units of 10**-places."""
    return Fraction(value) / (10**places)
