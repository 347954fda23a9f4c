"""Aggregation of one column across many holders under the buyer's key.

Roles (message in, message out, no I/O):

- ``Buyer`` makes the key material for the chosen backend, publishes an
  ``AggregateRequest`` (layout, places, public parameters) and decrypts the
  ``AggregateResult`` into per-group values.
- ``Holder`` encrypts its figures (see ``protocols.figures``), computed in
  plaintext over its own filtered rows, under the buyer's public parameters.
- ``combine`` is the gateway's role: it checks every contribution against
  the job's parameters, adds them homomorphically and re-randomises the
  total with a fresh encryption of zero.

Threat model (semi-honest roles):

- The gateway sees ciphertexts under keys it does not hold and learns only
  which holders answered, the layout's size and which groups each holder
  suppressed under its policy. It never hands one holder's ciphertext to the
  buyer: even a one-holder total is re-randomised.
- The buyer learns the totals over all contributing holders, nothing per
  holder. What a total over few rows reveals is for the holders' policies
  to limit before encrypting: column roles (``datawharf.roles``), minimum
  rows per figure, minimum holders, and differential privacy — clipped
  values and discrete Gaussian noise added to each figure, charged to the
  buyer's budget (``protocols.dp`` states the guarantee against the buyer
  alone and against the buyer with the gateway).
- Holders learn nothing of each other. Weak or malformed parameters from a
  buyer (short Paillier moduli, contexts off the parameter table, contexts
  carrying a secret key) are refused before anything is encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from protocols.figures import GroupValue, Layout, Statistic, finish
from protocols.schemes import Backend, InvalidCiphertext, OutOfRange, PublicParams, SchemeError
from protocols.schemes.paillier import PaillierEncryptor, PaillierScheme
from protocols.schemes.tenseal_he import TensealEncryptor, TensealScheme, ckks_error_bound

Encryptor = PaillierEncryptor | TensealEncryptor

SMALL_LAYOUT = 64  # figures; at most this many always go to packed Paillier under `auto`


@dataclass(frozen=True)
class AggregateRequest:
    layout: Layout
    places: int
    params: PublicParams


@dataclass(frozen=True)
class Contribution:
    ciphertexts: tuple[bytes, ...]
    suppressed: tuple[int, ...] = ()  # groups zeroed under the holder's policy


@dataclass(frozen=True)
class AggregateResult:
    ciphertexts: tuple[bytes, ...]
    contributors: int
    suppressed: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    groups: list[GroupValue]
    backend: Backend
    exact: bool
    max_abs_error: float  # 0 for exact backends; a bound on each figure's error for CKKS
    suppressed: dict[str, tuple[int, ...]]


def choose_backend(statistic: Statistic, layout: Layout, *, real_valued: bool) -> Backend:
    """``auto``: exact integers in few values → packed Paillier; exact integer
    vectors → BFV; real-valued vectors → CKKS. Variances stay on packed
    Paillier: sums of squares outgrow the BFV and CKKS ranges."""
    if layout.length <= SMALL_LAYOUT or statistic is Statistic.VARIANCE:
        return Backend.PAILLIER_PACKED
    if real_valued and statistic in (Statistic.SUM, Statistic.MEAN):
        return Backend.CKKS
    return Backend.BFV


def default_slot_bits(statistic: Statistic) -> int:
    return 128 if statistic is Statistic.VARIANCE else 64


def weights(layout: Layout, places: int) -> list[int]:
    """The fixed-point unit of each figure: 10^p for sums, 10^2p for squares, 1 for counts."""
    from protocols.figures import Figure

    unit = {Figure.SUM: 10**places, Figure.SUM_OF_SQUARES: 10 ** (2 * places), Figure.COUNT: 1}
    out = [1] * layout.length
    for g in range(layout.groups):
        for f in layout.parts:
            s = layout.slice(g, f)
            out[s] = [unit[f]] * (s.stop - s.start)
    return out


def encryptor(params: PublicParams, weights: Sequence[int] = ()) -> Encryptor:
    if params.backend in (Backend.PAILLIER, Backend.PAILLIER_PACKED):
        return PaillierEncryptor(params)
    return TensealEncryptor(params, weights)


class Buyer:
    """Holds the secret key material; only ``request`` ever leaves this object."""

    def __init__(
        self,
        layout: Layout,
        places: int,
        backend: Backend,
        max_contributors: int,
        *,
        key_bits: int = 2048,
        slot_bits: int | None = None,
        keypair: object = None,
    ) -> None:
        self.layout = layout
        self.places = places
        self.backend = backend
        if backend in (Backend.PAILLIER, Backend.PAILLIER_PACKED):
            self._scheme: PaillierScheme | TensealScheme = PaillierScheme(
                backend, layout.length, max_contributors, key_bits=key_bits,
                slot_bits=slot_bits or default_slot_bits(layout.statistic), keypair=keypair,  # type: ignore[arg-type]
            )
        else:
            self._scheme = TensealScheme(backend, layout.length, max_contributors, weights=weights(layout, places))
        self.request = AggregateRequest(layout, places, self._scheme.public)

    @classmethod
    def restore(cls, request: AggregateRequest, p: int, q: int) -> "Buyer":
        """The buyer of a stored Paillier job, from its request (public parameters) and its key's primes.

        Raises ``OutOfRange`` for another backend and ``WeakKey`` when the primes do not fit the request."""
        backend = request.params.backend
        if backend not in (Backend.PAILLIER, Backend.PAILLIER_PACKED):
            raise OutOfRange(f"only Paillier jobs can be restored from stored primes, not {backend.value}")
        buyer = cls.__new__(cls)
        buyer.layout, buyer.places, buyer.backend = request.layout, request.places, backend
        buyer._scheme = PaillierScheme.restore(request.params, p, q)
        buyer.request = request
        return buyer

    @property
    def paillier_primes(self) -> tuple[int, int]:
        """The secret primes of a Paillier job's key (for a keystore). Raises ``OutOfRange`` for other backends."""
        if not isinstance(self._scheme, PaillierScheme):
            raise OutOfRange(f"a {self.backend.value} job has no Paillier primes")
        return self._scheme.primes

    def finish(self, result: AggregateResult) -> Outcome:
        totals = self._scheme.decrypt(result.ciphertexts, result.contributors)
        exact = self.backend.exact
        bound = 0.0 if exact else ckks_error_bound(self.request.params, result.contributors)
        return Outcome(finish(self.layout, totals, self.places), self.backend, exact, bound, dict(result.suppressed))


class Holder:
    def __init__(self, request: AggregateRequest) -> None:
        if request.params.length != request.layout.length:
            raise InvalidCiphertext("the request's parameters and layout disagree on its length")
        self.request = request
        self._enc = encryptor(request.params, weights(request.layout, request.places))

    def contribute(self, figures: Sequence[int], suppressed: Sequence[int] = ()) -> Contribution:
        return Contribution(tuple(self._enc.encrypt(list(figures))), tuple(suppressed))


def check_contribution(request: AggregateRequest, contribution: Contribution, enc: Encryptor | None = None) -> None:
    """Raise SchemeError unless the contribution is well formed for this job."""
    if any(not 0 <= g < request.layout.groups for g in contribution.suppressed):
        raise InvalidCiphertext("a suppressed group index is outside the job's groups")
    (enc or encryptor(request.params)).check(contribution.ciphertexts)


def combine(
    request: AggregateRequest,
    contributions: dict[str, Contribution],
    *,
    rerandomise: bool = True,
) -> AggregateResult:
    """The gateway's role: encrypted totals over every holder's contribution."""
    if not contributions:
        raise SchemeError("nothing to combine: no contributions")
    enc = encryptor(request.params)
    for c in contributions.values():
        if any(not 0 <= g < request.layout.groups for g in c.suppressed):
            raise InvalidCiphertext("a suppressed group index is outside the job's groups")
    # The encryptor parses and checks every ciphertext as it adds it.
    totals = enc.combine([c.ciphertexts for c in contributions.values()], rerandomise=rerandomise)
    suppressed = {p: c.suppressed for p, c in contributions.items() if c.suppressed}
    return AggregateResult(tuple(totals), len(contributions), suppressed)
