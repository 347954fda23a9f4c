"""Multi-holder PSI: one buyer's set against k holders' sets in one job.

The buyer learns which of its IDs are at all k holders, or at least t of
them (t-of-k), or only how many, or (join-and-sum) how many and, per value
column, the sum over every holder that has each such ID. Built from the
two-party rounds of ``protocols.psi`` and ``protocols.psi_sum``, run once per
holder over the same stage A:

1. Buyer → every holder: A = [a·H(x)] and its commitment (one scalar a for
   the whole job, one set digest in the signed job, so every holder checks
   it blinds the same set).
2. Holder i → gateway only: D_i = b_i·A **in A's order** (a single-holder
   cardinality or sum answer shuffles D; here the order is what lets the
   gateway count per ID), its notes N_i (canaries, noise) and, for sums,
   its masked values M_i. Holder i → buyer: W_i = [b_i·H(y)] shuffled, with
   canaries, its sealed mask seed S_i, its noise declaration P_i and its
   signed receipt R_i, which the buyer checks before re-blinding W_i.
3. Buyer → gateway: Z_i = a·W_i for each holder.
4. Gateway (``match_many`` / ``sum_many``): for each holder, the positions p
   of A with D_i[p] ∈ Z_i (after its duplicate and canary checks); count[p]
   = the number of holders at which p matched; released: the positions with
   count ≥ t (intersection), or only their number (cardinality), or (sum)
   for each holder i the rows J_i of W_i that matched a position with count
   ≥ t plus the rows its notes ask to count, and Σ_{J_i} of its masked
   values. The buyer unmasks each holder's sums and adds them.

Every holder applies its own policy, grant, quotas and budget to the job
as it would to a job for it alone, and may refuse it: the job then fails
naming that holder (no holder is silently dropped, which would change what
"t of k" means). A holder's minimum intersection applies to the released
size: it is at least the largest minimum among the holders.

Who learns what (semi-honest, gateway not colluding):

- The buyer: the positions of its own IDs that meet the threshold (which
  IDs), or only their number, or (sum) that number, the totals, and per
  holder i the number of rows it unmasks, |J_i|: how many of the
  threshold IDs holder i has, plus that holder's counted padding (noisy
  under DP). It also sees each |W_i| (the holder's set size up to its
  padding noise). It does not learn at which holders an ID matched, except
  what t = k implies (all of them) and what |J_i| says in aggregate.
- Each holder: |X| (the buyer's set size), that the job names the other
  holders (they are in the signed job), nothing of the other holders' sets.
- The gateway: for every holder its intersection size |X ∩ Y_i| and, for
  every position of A (a secret random order it cannot relate to IDs) how
  many holders and which matched; |X|, each |W_i|; never an ID or a value
  (masked values only). This is the simple construction's cost: a
  gateway that colluded with the buyer would learn at which holders each
  of the buyer's IDs is, cardinality-only included (D_i is not shuffled);
  one that colluded with a holder would learn which of that holder's IDs
  matched, as in two-party PSI.

Differential privacy (the unit: one ID of one holder's join key). An ID
added to or removed from one holder's set moves the threshold count by at
most one, so that holder's own noise on the size (its stage N offset)
covers it; the gateway releases count + Σ offset_i, every holder's noise
added. In a join-and-sum the buyer also unmasks each holder's total and
sees each |J_i| apart. With t = 1 one holder's ID moves only its own
total and |J_i|; with t >= 2 it can bring an ID over the threshold and so
a row into every holder's J_j and a value into every holder's total, each
at most that holder's clip bound: √k times one holder's sensitivity in L2
over the k releases, so every holder scales the noise of its sums and of
its counted rows by √k (``parties.psi_runner.plan_noise``; exact when the
holders of one listing clip to the same bounds). The rows counted in J_i
are drawn from noise independent of offset_i (ρ is split one part more):
with the single-holder tie (offset = counted rows − shift) the buyer could
subtract Σ|J_i| from the size and cancel the noise.

Attacks this closes: a holder named twice (it would count twice towards t)
is refused when the job is read (``check_holders``), as are t < 1 on the
client and t > k anywhere (0 on the wire means k); repeats, foreign scalars
and forged re-blinding are caught per holder exactly as in ``protocols.psi``.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from protocols import psi, psi_sum

MAX_HOLDERS = 16  # holders in one multi-holder job


class HolderError(psi.PsiError):
    """The holders or the threshold of a multi-holder job are not usable; ``argument`` names the field."""

    def __init__(self, message: str, argument: str = "holders") -> None:
        super().__init__(message)
        self.argument = argument


def check_holders(holders: Sequence[str], at_least: int) -> int:
    """The threshold t for these holders (``at_least`` 0: all of them); HolderError if unusable."""
    k = len(holders)
    if k < 2:
        raise HolderError(f"a multi-holder PSI job names at least two holders, not {k}; for one, name it as party")
    if k > MAX_HOLDERS:
        raise HolderError(f"a multi-holder PSI job names at most {MAX_HOLDERS} holders, not {k}")
    if any(not h for h in holders):
        raise HolderError("a holder's name is empty")
    seen: set[str] = set()
    for h in holders:
        if h in seen:
            raise HolderError(f"holder {h!r} is named twice; each holder counts once towards the threshold")
        seen.add(h)
    if at_least < 0 or at_least > k:
        raise HolderError(f"at_least = {at_least} is not between 1 and the {k} holders named", argument="at_least")
    return at_least or k


@dataclass(frozen=True)
class HolderStages:
    """What the gateway holds from one holder: D (in A's order), Z, and its notes."""

    party: str
    d: psi.Points
    z: psi.Points
    minimum: int = 1
    offset: int = 0
    canaries: Sequence[psi.Canary] = ()
    masked: psi_sum.PackedMasked | Sequence[Sequence[int]] | None = None  # sum only
    counted: Sequence[int] = ()  # sum only: padding rows of W to count


@dataclass(frozen=True)
class MultiMatch:
    positions: tuple[int, ...]   # of A, meeting the threshold; empty when cardinality-only
    size: int                    # released: the count plus the holders' noise
    per_holder: tuple[int, ...]  # |X ∩ Y_i|: the gateway's to know, never released


def _checked(h: HolderStages) -> tuple[bytes, bytes]:
    dp_, zp = psi.packed(h.d), psi.packed(h.z)
    psi.require_distinct_packed(dp_, f"{h.party}'s re-blinded set (stage D)")
    psi.require_distinct_packed(zp, f"the buyer's re-blinded set for {h.party} (stage Z)")
    try:
        psi.check_canaries(zp, h.canaries)
    except psi.ForgedReblinding as exc:
        raise psi.ForgedReblinding(f"{exc} (for {h.party})") from None
    return dp_, zp


def _buyer_points(answers: Sequence[HolderStages]) -> int:
    if len(answers) < 2:
        raise HolderError(f"a multi-holder match needs at least two holders' answers, not {len(answers)}")
    sizes = {len(psi.packed(h.d)) for h in answers}
    if len(sizes) != 1:
        raise psi.PsiError("the holders re-blinded different numbers of the buyer's points")
    return sizes.pop() // psi.POINT_BYTES


def threshold(counts: np.ndarray, t: int) -> np.ndarray:
    """The positions (ascending) that matched at ``t`` holders or more."""
    if t < 1:
        raise HolderError(f"the threshold must be at least 1, not {t}", argument="at_least")
    return np.nonzero(counts >= t)[0]


def _minimum(answers: Sequence[HolderStages]) -> int:
    return max(max(1, h.minimum) for h in answers)


def match_many(answers: Sequence[HolderStages], *, at_least: int, cardinality_only: bool) -> MultiMatch:
    """The gateway's role in an intersection or cardinality job: which positions of A meet the threshold."""
    n = _buyer_points(answers)
    if at_least > len(answers):
        raise HolderError(f"at_least = {at_least} exceeds the {len(answers)} holders", argument="at_least")
    if not cardinality_only and any(h.offset for h in answers):
        raise psi.PsiError("noise on the size of an intersection whose positions are released hides nothing")
    counts = np.zeros(n, dtype=np.int64)
    per_holder = []
    for h in answers:
        dp_, zp = _checked(h)
        hits = psi.positions_in(dp_, zp)
        counts[hits] += 1
        per_holder.append(len(hits))
    met = threshold(counts, at_least)
    size = psi.released_size(len(met), sum(h.offset for h in answers), _minimum(answers))
    positions = () if cardinality_only else tuple(int(p) for p in met)
    return MultiMatch(positions, size, tuple(per_holder))


def pairs(z: bytes, d: bytes) -> tuple[np.ndarray, np.ndarray]:
    """For every value both packed sets hold: (its position in ``z``, its position in ``d``), by z."""
    zs = np.asarray(psi.positions_in(z, d), dtype=np.int64)
    ds = psi.positions_in(d, z)
    if len(zs) != len(ds):
        raise psi.RepeatedPoint("a set repeats a value")  # both are checked duplicate-free before
    size = psi.POINT_BYTES
    where = {d[p * size:(p + 1) * size]: p for p in ds}
    return zs, np.asarray([where[z[j * size:(j + 1) * size]] for j in zs.tolist()], dtype=np.int64)


@dataclass(frozen=True)
class MultiSum:
    size: int
    holders: tuple[psi_sum.SumResult, ...]  # per holder, in the answers' order: J_i and its masked sums
    per_holder: tuple[int, ...]             # |X ∩ Y_i|: the gateway's to know, never released


def sum_many(answers: Sequence[HolderStages], *, at_least: int) -> MultiSum:
    """The gateway's role in a join-and-sum job: per holder the rows J_i over IDs that meet the threshold
    (and the padding rows it counts) and the masked sums over them."""
    n = _buyer_points(answers)
    if at_least > len(answers):
        raise HolderError(f"at_least = {at_least} exceeds the {len(answers)} holders", argument="at_least")
    counts = np.zeros(n, dtype=np.int64)
    matched = []
    for h in answers:
        if h.masked is None:
            raise psi.PsiError(f"{h.party}'s answer lacks masked values")
        dp_, zp = _checked(h)
        rows = len(zp) // psi.POINT_BYTES
        if rows != len(h.masked):
            raise psi.InvalidPoint(f"the buyer re-blinded {rows} values for {len(h.masked)} rows of {h.party}")
        js, ps = pairs(zp, dp_)
        extra = set(h.counted)
        if len(extra) != len(h.counted) or any(not 0 <= j < rows for j in extra):
            raise psi.PsiError(f"{h.party}'s counted padding rows repeat or lie outside W")
        if extra.intersection(js.tolist()):
            raise psi.PsiError(f"a padding row {h.party} counts matched the buyer's set; honest padding never does")
        counts[ps] += 1
        matched.append((js, ps))
    met = threshold(counts, at_least)
    size = psi.released_size(len(met), sum(h.offset for h in answers), _minimum(answers))
    results = []
    for h, (js, ps) in zip(answers, matched):
        keep = js[counts[ps] >= at_least].tolist()
        positions = tuple(sorted(set(keep).union(h.counted)))
        masked = h.masked
        assert masked is not None
        if isinstance(masked, psi_sum.PackedMasked):
            columns = masked.columns
            sums = tuple(sum(masked.value(j, k) for j in positions) % psi_sum.MODULUS for k in range(columns))
        else:
            columns = len(masked[0]) if len(masked) else 0
            sums = tuple(sum(masked[j][k] for j in positions) % psi_sum.MODULUS for k in range(columns))
        results.append(psi_sum.SumResult(positions, size, sums))
    return MultiSum(size, tuple(results), tuple(len(js) for js, _ in matched))


def totals(buyer: psi_sum.Buyer, parts: Sequence[tuple[psi_sum.SumResult, bytes, int]], context: bytes
           ) -> tuple[int, ...]:
    """The buyer's role: each holder's sums unmasked with its sealed seed, added column by column.

    ``parts``: per holder (its result, its sealed seed, the rows of its W)."""
    out: list[int] | None = None
    for result, sealed, rows in parts:
        got = buyer.totals(result, sealed, context, rows)
        if out is None:
            out = list(got)
        elif len(got) != len(out):
            raise psi.PsiError("the holders' sums cover different numbers of value columns")
        else:
            out = [a + b for a, b in zip(out, got)]
    return tuple(out or ())


__all__ = ["HolderError", "HolderStages", "MAX_HOLDERS", "MultiMatch", "MultiSum", "check_holders", "match_many",
           "pairs", "sum_many", "threshold", "totals"]
