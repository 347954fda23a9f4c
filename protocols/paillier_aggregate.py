"""Aggregation of one column across many holders under the buyer's Paillier key.

Roles (message in, message out, no I/O):

- ``Buyer`` makes a key pair, publishes ``AggregateRequest`` (public key,
  statistic, places) and decrypts the ``AggregateResult`` into an ``Outcome``.
- ``Holder`` computes its local figures over its filtered rows in plaintext,
  encodes them as integers and encrypts each under the buyer's key.
- ``combine`` (the gateway's role) checks every contribution and multiplies
  ciphertexts, which adds the plaintexts, then re-randomises the total.

Figures per statistic, in order: sum → (Σx); count → (n); mean → (Σx, n);
variance → (Σx, Σx², n). The buyer finishes mean and variance (sample
variance, ddof=1) from the decrypted sums.

Threat model (semi-honest roles):

- The gateway sees ciphertexts under a key it does not hold and learns only
  how many holders answered. It never hands a single holder's ciphertext to
  the buyer: the total is a product of contributions times a fresh
  encryption of zero, so even a one-holder total is unlinkable to what the
  holder sent.
- The buyer learns the approved figures summed over holders, nothing per
  holder. What a sum over few rows reveals is the holders' policy to limit
  (minimum rows, minimum holders), enforced before anything is encrypted.
- A holder learns nothing of other holders. A malicious buyer choosing a weak
  key is refused by ``check_public_key``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
import numpy.typing as npt
from phe import paillier

from protocols.fixed_point import unscale

MIN_KEY_BITS = 2048
DEFAULT_KEY_BITS = 2048


class Statistic(str, enum.Enum):
    SUM = "sum"
    COUNT = "count"
    MEAN = "mean"
    VARIANCE = "variance"


class Figure(str, enum.Enum):
    SUM = "sum"
    SUM_OF_SQUARES = "sum_of_squares"
    COUNT = "count"


FIGURES: dict[Statistic, tuple[Figure, ...]] = {
    Statistic.SUM: (Figure.SUM,),
    Statistic.COUNT: (Figure.COUNT,),
    Statistic.MEAN: (Figure.SUM, Figure.COUNT),
    Statistic.VARIANCE: (Figure.SUM, Figure.SUM_OF_SQUARES, Figure.COUNT),
}


class ProtocolError(ValueError):
    """Base of this module's errors."""


class InvalidContribution(ProtocolError):
    """A contribution is not a well-formed encryption under the job's key."""


class WeakKey(ProtocolError):
    """The buyer's public key is too small or malformed."""


class DecodingError(ProtocolError):
    """A decrypted total is out of range: the inputs overflowed the plaintext space."""


class EmptyAggregate(ProtocolError):
    """The statistic is undefined over the rows that matched (e.g. a mean of no rows)."""


@dataclass(frozen=True)
class AggregateRequest:
    statistic: Statistic
    places: int
    public_n: int


@dataclass(frozen=True)
class Contribution:
    ciphertexts: tuple[int, ...]


@dataclass(frozen=True)
class AggregateResult:
    ciphertexts: tuple[int, ...]


@dataclass(frozen=True)
class Outcome:
    statistic: Statistic
    value: Fraction
    rows: int | None  # known to the buyer when the statistic needed a count


def ciphertext_bytes(public_n: int) -> int:
    """Width of one serialised ciphertext: the byte length of n²."""
    return ((public_n * public_n).bit_length() + 7) // 8


def check_public_key(public_n: int) -> None:
    """Refuse a modulus too small for 128-bit security or obviously not RSA-like."""
    if public_n.bit_length() < MIN_KEY_BITS:
        raise WeakKey(
            f"Paillier modulus has {public_n.bit_length()} bits; at least {MIN_KEY_BITS} are required"
        )
    if public_n % 2 == 0:
        raise WeakKey("Paillier modulus is even, so it is not a product of two large primes")


def _max_int(public_n: int) -> int:
    # As phe does: a third of the space for positives, a third for negatives,
    # the middle third detects overflow.
    return public_n // 3 - 1


class Buyer:
    """Holds the key pair; only ``request`` ever leaves this object."""

    def __init__(
        self,
        statistic: Statistic,
        places: int,
        *,
        key_bits: int = DEFAULT_KEY_BITS,
        keypair: tuple[paillier.PaillierPublicKey, paillier.PaillierPrivateKey] | None = None,
    ) -> None:
        if key_bits < MIN_KEY_BITS:
            raise WeakKey(f"key_bits must be at least {MIN_KEY_BITS}, got {key_bits}")
        self.statistic = Statistic(statistic)
        self.places = places
        self._public, self._private = keypair or paillier.generate_paillier_keypair(
            n_length=key_bits
        )

    @property
    def request(self) -> AggregateRequest:
        return AggregateRequest(self.statistic, self.places, self._public.n)

    def decrypt(self, result: AggregateResult) -> dict[Figure, int]:
        figures = FIGURES[self.statistic]
        if len(result.ciphertexts) != len(figures):
            raise InvalidContribution(
                f"result holds {len(result.ciphertexts)} ciphertexts, {self.statistic.value} needs {len(figures)}"
            )
        check_ciphertexts(self.request, result.ciphertexts)
        n = self._public.n
        limit = _max_int(n)
        out: dict[Figure, int] = {}
        for fig, c in zip(figures, result.ciphertexts):
            x = self._private.raw_decrypt(c)
            if x <= limit:
                out[fig] = x
            elif x >= n - limit:
                out[fig] = x - n
            else:
                raise DecodingError(f"decrypted {fig.value} overflowed the plaintext space")
        return out

    def finish(self, result: AggregateResult) -> Outcome:
        f = self.decrypt(result)
        p = self.places
        count = f.get(Figure.COUNT)
        if self.statistic is Statistic.SUM:
            return Outcome(self.statistic, unscale(f[Figure.SUM], p), None)
        if self.statistic is Statistic.COUNT:
            return Outcome(self.statistic, Fraction(f[Figure.COUNT]), count)
        assert count is not None
        if self.statistic is Statistic.MEAN:
            if count <= 0:
                raise EmptyAggregate("no rows matched, so the mean is undefined")
            return Outcome(self.statistic, unscale(Fraction(f[Figure.SUM], count), p), count)
        if count <= 1:
            raise EmptyAggregate(f"{count} row(s) matched; a sample variance needs at least 2")
        s, ss = f[Figure.SUM], f[Figure.SUM_OF_SQUARES]
        var_scaled = (Fraction(ss) - Fraction(s * s, count)) / (count - 1)
        return Outcome(self.statistic, var_scaled / (10 ** (2 * p)), count)


def local_figures(statistic: Statistic, scaled: npt.NDArray[np.int64]) -> tuple[int, ...]:
    """The plaintext figures one holder contributes, as exact Python integers."""
    values = [int(v) for v in scaled.tolist()]
    table = {
        Figure.SUM: lambda: sum(values),
        Figure.SUM_OF_SQUARES: lambda: sum(v * v for v in values),
        Figure.COUNT: lambda: len(values),
    }
    return tuple(table[f]() for f in FIGURES[Statistic(statistic)])


class Holder:
    """Encrypts one holder's figures under the buyer's key."""

    def __init__(self, request: AggregateRequest) -> None:
        check_public_key(request.public_n)
        self.request = request
        self._public = paillier.PaillierPublicKey(request.public_n)

    def contribute(self, scaled: npt.NDArray[np.int64]) -> Contribution:
        figures = local_figures(self.request.statistic, scaled)
        limit = _max_int(self.request.public_n)
        for v in figures:
            if abs(v) > limit:
                raise DecodingError("a local figure is too large for the buyer's key")
        n = self.request.public_n
        return Contribution(tuple(self._public.raw_encrypt(v % n) for v in figures))


def check_ciphertexts(request: AggregateRequest, ciphertexts: Sequence[int]) -> None:
    """Raise InvalidContribution unless every value is a unit modulo n²."""
    n = request.public_n
    nsq = n * n
    for i, c in enumerate(ciphertexts):
        if not isinstance(c, int) or not 0 < c < nsq:
            raise InvalidContribution(f"ciphertext {i} is outside (0, n²) for this job's key")
        if math.gcd(c, n) != 1:
            raise InvalidContribution(f"ciphertext {i} is not invertible modulo n² for this job's key")


def check_contribution(request: AggregateRequest, contribution: Contribution) -> None:
    expected = len(FIGURES[request.statistic])
    if len(contribution.ciphertexts) != expected:
        raise InvalidContribution(
            f"expected {expected} ciphertexts for {request.statistic.value}, got {len(contribution.ciphertexts)}"
        )
    check_ciphertexts(request, contribution.ciphertexts)


def raw_combine(request: AggregateRequest, contributions: Sequence[Contribution]) -> AggregateResult:
    """Multiply ciphertexts position by position, without re-randomising."""
    nsq = request.public_n * request.public_n
    width = len(FIGURES[request.statistic])
    totals = [1] * width
    for contribution in contributions:
        check_contribution(request, contribution)
        for i, c in enumerate(contribution.ciphertexts):
            totals[i] = totals[i] * c % nsq
    return AggregateResult(tuple(totals))


def combine(
    request: AggregateRequest,
    contributions: Sequence[Contribution],
    *,
    rerandomise: bool = True,
) -> AggregateResult:
    """The gateway's role: the encrypted totals over every contribution.

    With ``rerandomise`` (the default) each total is multiplied by a fresh
    encryption of zero, so the buyer cannot match a total to what any holder
    sent, at the price of one encryption per figure. Turn it off only where
    the result stays inside the gateway.
    """
    if not contributions:
        raise ProtocolError("nothing to combine: no contributions")
    result = raw_combine(request, contributions)
    if not rerandomise:
        return result
    public = paillier.PaillierPublicKey(request.public_n)
    nsq = request.public_n * request.public_n
    return AggregateResult(tuple(c * public.raw_encrypt(0) % nsq for c in result.ciphertexts))


def to_bytes(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big")


def from_bytes(data: bytes) -> int:
    return int.from_bytes(data, "big")
