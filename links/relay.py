"""What a link decides about one task from B, and what it makes of A's answer. Pure: no I/O.

- ``listing_for``: the listing the link offers at B for one of A's catalog
  entries (schema, column roles and privacy terms as A's holders state them,
  and how many holders its answers sum).
- ``refusal``: why a verified task from B cannot be relayed, or None.
- ``relayed``: A's combined ciphertexts turned into the link's one
  contribution at B: packed Paillier totals lose k − 1 holders' offsets
  (``protocols.schemes.paillier.offset_correction``), every total is
  re-randomised; nothing is decrypted, and nothing could be.
- ``combined_noise``: the one noise declaration the link signs for B, from
  the declarations A's holders signed for A.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from datawharf.model import AggregateJob, ColumnSpec, Listing, PrivacyTerms, round_rows
from datawharf.v1 import common_pb2
from protocols import aggregate as agg
from protocols.schemes import Backend
from protocols.schemes.paillier import offset_correction

__all__ = ["Relayed", "combined_noise", "combined_terms", "listing_for", "refusal", "relayed"]


@dataclass(frozen=True)
class Relayed:
    """A's answer to one relayed job, checked (receipts verified) and ready to contribute at B."""

    ciphertexts: tuple[bytes, ...]
    suppressed: tuple[int, ...]
    noise: common_pb2.NoiseDeclaration | None
    contributors: tuple[str, ...] = field(default=())  # A's holders, for the link's own record only


def combined_terms(terms: Iterable[PrivacyTerms]) -> PrivacyTerms:
    """The terms a buyer at B can count on for every holder behind the link: the strictest of each.

    Differential privacy is on if any holder applies it; the budget and per-job cap are the
    smallest, the default spend and the period the largest (what the first exhausted holder does)."""
    ts = list(terms)
    if not ts:
        return PrivacyTerms()
    private = [t for t in ts if t.dp]
    if not private:
        return PrivacyTerms(dp=False, list_suppressed=all(t.list_suppressed for t in ts))
    return PrivacyTerms(
        dp=True,
        budget=min(t.budget for t in private),
        period_days=max(t.period_days for t in private),
        max_per_job=min(t.max_per_job for t in private),
        default_per_job=max(t.default_per_job for t in private),
        noise="split" if all(t.noise == "split" for t in private) else "full",
        list_suppressed=all(t.list_suppressed for t in ts),
    )


def listing_for(dataset: str, columns: Sequence[ColumnSpec], approx_rows: int, terms: Mapping[str, PrivacyTerms],
                behind: int, exchange: str) -> Listing:
    """The link's listing at B of A's ``dataset``: A's merged columns (with the roles every A holder
    grants for aggregates; none for PSI), the rounded row count, the strictest privacy terms, and
    ``behind`` holders."""
    # A PSI runs against one holder, which the link is not: it offers no join, and a join key stays
    # what it is at A, a column no aggregate may filter, group or sum.
    cols = tuple(replace(c, join_key=False, psi_value=False, identifier=c.identifier or c.join_key) for c in columns)
    return Listing(dataset, cols, round_rows(approx_rows),
                   description=f"{dataset} at {exchange}, {behind} holder(s), through a link",
                   privacy=combined_terms(terms.values()), holders=max(1, behind))


def refusal(spec: AggregateJob, *, behind: int, asked: Sequence[str], me: str) -> tuple[str, str] | None:
    """(reason, code) if the link cannot relay ``spec`` to the ``behind`` holders at A, else None.

    ``asked`` is the holders the buyer named (empty: every holder), each other one counting at
    least one contributor beside the link's ``behind``."""
    if spec.encryption.backend is Backend.CKKS and behind > 1:
        # The buyer's CKKS error bound counts each contributor once; this answer carries the noise
        # of `behind` fresh encryptions, so the bound it would print is too small.
        why = (f"{me} relays {behind} holders' sum and a CKKS result's error bound counts it as one "
               "contributor, so it would be understated; use the bfv or paillier-packed backend")
        return why, "bad_spec"
    others = max(0, len(set(asked) - {me}))
    need = behind + others
    if spec.encryption.max_contributors < need:
        return (f"the job's encoding leaves headroom for {spec.encryption.max_contributors} contributor(s) but "
                f"{me} relays the sum of {behind} holder(s)" + (f" beside {others} other(s) asked" if others else "")
                + f", {need} in all; the buyer's client sizes this from the catalog's holder counts: "
                "resubmit with an up-to-date client", "bad_spec")
    return None


def relayed(spec: AggregateJob, totals: Sequence[bytes], contributors: int) -> list[bytes]:
    """A's totals over ``contributors`` holders as the link's one contribution to B's job.

    Packed Paillier: each holder put one offset in every slot and B's buyer will subtract one
    for the link, so k − 1 are taken off here, under encryption. Plain Paillier, BFV and CKKS
    carry no offset. Every total is re-randomised before it leaves, so B's side cannot match
    it with what A's gateway sent. Raises SchemeError if the totals do not fit the job."""
    enc = agg.encryptor(spec.encryption, agg.weights(spec.layout, spec.places))
    parts = [list(totals)]
    if spec.encryption.backend is Backend.PAILLIER_PACKED and contributors > 1:
        assert isinstance(enc, agg.PaillierEncryptor)
        parts.append(enc.raw_encrypt(offset_correction(spec.encryption, contributors - 1)))
    return enc.combine(parts, rerandomise=True)


def combined_noise(receipts: Iterable[common_pb2.ContributionReceipt], contributors: Iterable[str],
                   parts: int) -> common_pb2.NoiseDeclaration | None:
    """One declaration for the sum of A's contributions: σ per figure part is the square root of
    the summed variances, ρ the most any holder charged, the budget left the least any has, and
    exact only if every declaring holder was exact. None if no contributor declared its noise.
    Raises ValueError when a holder declares a different number of parts than the job has."""
    named = set(contributors)
    declared = [r.noise for r in receipts if r.party in named and r.HasField("noise")]
    if not declared:
        return None
    noisy = [n for n in declared if not n.exact]
    if not noisy:
        return common_pb2.NoiseDeclaration(exact=True)
    var = [0.0] * parts
    for n in noisy:
        if len(n.part_sd) != parts:
            raise ValueError(f"a holder declares noise for {len(n.part_sd)} figure parts; the job has {parts}")
        for i, sd in enumerate(n.part_sd):
            var[i] += sd * sd
    tightest = min(noisy, key=lambda n: n.remaining)
    return common_pb2.NoiseDeclaration(rho=max(n.rho for n in noisy), part_sd=[math.sqrt(v) for v in var],
                                       remaining=tightest.remaining, renews_at=tightest.renews_at)
