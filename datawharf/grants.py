"""Data-use grants: terms a holder signs, and the check its node applies to every task.

A buyer asks a holder for access to one dataset, for a stated purpose, for
some statistics, until a date, for a number of jobs and a privacy budget.
The holder approves by signing the canonical terms with its certificate's
key; its node then enforces the signed terms on every task, from its own
copy, so neither the gateway nor the buyer can widen them. The holder's TOML
policy stays the outer limit: a grant only ever narrows it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass

from datawharf.errors import InvalidArgument
from datawharf.pki import Credentials, check_name, sign, verify_signature, load_certificate

GRANT_DOMAIN = b"datawharf.v1.Grant"

AGGREGATE_STATISTICS = ("sum", "count", "mean", "variance", "histogram")
PSI_STATISTICS = ("psi", "psi-cardinality", "psi-sum", "psi-unbalanced")
STATISTICS = AGGREGATE_STATISTICS + PSI_STATISTICS
MAX_PURPOSE = 500
MAX_JOBS = 1_000_000
MAX_BUDGET = 100.0
_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class GrantTerms:
    id: str
    buyer: str
    party: str
    dataset: str
    purpose: str
    statistics: tuple[str, ...]
    until: float           # unix seconds
    max_jobs: int
    budget: float = 0.0    # zCDP rho in all; 0: only the holder's policy budget applies

    def canonical(self) -> bytes:
        """The bytes the holder signs: sorted-key JSON, so every party computes the same."""
        d = asdict(self)
        d["statistics"] = list(self.statistics)
        return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def parse(cls, raw: bytes) -> "GrantTerms":
        try:
            d = json.loads(raw)
            terms = cls(str(d["id"]), str(d["buyer"]), str(d["party"]), str(d["dataset"]), str(d["purpose"]),
                        tuple(str(s) for s in d["statistics"]), float(d["until"]), int(d["max_jobs"]),
                        float(d.get("budget", 0.0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument(f"grant terms do not parse: {exc}") from None
        if terms.canonical() != raw:
            raise InvalidArgument("grant terms are not in canonical form")
        return terms


def check_request(dataset: str, purpose: str, statistics: list[str] | tuple[str, ...], until: float,
                  max_jobs: int, budget: float, *, now: float) -> tuple[str, ...]:
    """Raise InvalidArgument naming what is wrong with a grant request; the statistics, deduplicated."""
    if not _DATASET.fullmatch(dataset or ""):
        raise InvalidArgument(f"dataset {dataset!r} is not a dataset name", argument="dataset")
    if not purpose.strip() or len(purpose) > MAX_PURPOSE or any(ord(c) < 32 for c in purpose):
        raise InvalidArgument(f"purpose must be 1 to {MAX_PURPOSE} printable characters: say what the data is for",
                              argument="purpose")
    stats = tuple(dict.fromkeys(s.strip().lower() for s in statistics if s.strip()))
    unknown = [s for s in stats if s not in STATISTICS]
    if not stats or unknown:
        raise InvalidArgument(f"statistics must be some of {', '.join(STATISTICS)}"
                              + (f"; unknown: {', '.join(unknown)}" if unknown else ""), argument="statistics")
    if not (math.isfinite(until) and until > now):
        raise InvalidArgument("until must be a date in the future", argument="until")
    if until > now + 5 * 366 * 86400:
        raise InvalidArgument("until may be at most five years ahead", argument="until")
    if not 1 <= max_jobs <= MAX_JOBS:
        raise InvalidArgument(f"max_jobs must be 1 to {MAX_JOBS}", argument="max_jobs")
    if not (math.isfinite(budget) and 0 <= budget <= MAX_BUDGET):
        raise InvalidArgument(f"budget must be a privacy loss rho from 0 to {MAX_BUDGET} (0: no cap of its own)",
                              argument="budget")
    return stats


def sign_terms(creds: Credentials, terms: GrantTerms) -> bytes:
    if creds.identity.name != terms.party:
        raise InvalidArgument(f"this grant is addressed to {terms.party!r}, not to {creds.identity.name!r}")
    return sign(creds.key, GRANT_DOMAIN, terms.canonical())


def verify_terms(certificate_pem: bytes, terms: GrantTerms, signature: bytes) -> None:
    """Raise SignatureError unless ``signature`` is the addressed holder's over the terms."""
    cert = load_certificate(certificate_pem)
    verify_signature(cert, GRANT_DOMAIN, terms.canonical(), signature, what=f"the grant {terms.id}")


def statistic_of(kind: str, statistic: str = "", cardinality_only: bool = False) -> str:
    """The grant statistic a task asks for: an aggregate's statistic, or the PSI kind."""
    if kind == "aggregate":
        return statistic
    if kind == "psi":
        return "psi-cardinality" if cardinality_only else "psi"
    return kind  # psi-sum, psi-unbalanced


__all__ = ["AGGREGATE_STATISTICS", "GRANT_DOMAIN", "GrantTerms", "PSI_STATISTICS", "STATISTICS", "check_name",
           "check_request", "sign_terms", "statistic_of", "verify_terms"]
