"""The buyer's Python client.

    from buyers import Client

    with Client("127.0.0.1:50051", "ids/acme-insurance") as wharf:   # from `wharf ca issue --out`
        job = wharf.submit("visits", "cost", "mean", where="age >= 65")
        for status in wharf.watch(job):
            print(status.state, [(t.party, t.state) for t in status.tasks])
        answer = wharf.result(job)
        print(answer.value, answer.rows, answer.contributors)

        job = wharf.submit("visits", "cost", "sum", group_by="department")
        for group in wharf.result(job).groups:
            print(group.label, group.values, group.suppressed_by)

The key material is made in ``submit`` and kept in the returned
``SubmittedJob``; only public parameters are sent, in a job signed with the
buyer's certified key so that holders can tell it is the buyer's. Decryption
happens in ``result``, in this process, after checking that every holder
named as a contributor signed a receipt for this job. Errors are ``datawharf.errors.WharfError``s;
each names the offending argument in ``argument`` when there is one.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

from buyers.connection import CatalogItem, Connection, answered
from buyers.psi import Progress, PsiAnswer, run_psi
from datawharf import filters
from datawharf.errors import FailedPrecondition, InvalidArgument, JobFailed, WharfError
from datawharf.pki import Credentials
from datawharf.model import AggregateJob, ColumnKind, GroupBy, JobView
from datawharf.serde import aggregate_to_proto, result_from_proto
from datawharf.v1 import buyer_pb2
from protocols import dp
from datawharf.states import JobState
from protocols.aggregate import Buyer, choose_backend
from protocols.figures import Figure, Layout, Statistic
from protocols.schemes import Backend
from protocols.schemes.paillier import DEFAULT_KEY_BITS, generate_keypair

__all__ = ["AggregateAnswer", "CatalogItem", "Client", "GroupAnswer", "JobFailed", "PsiAnswer", "SubmittedJob",
           "answered"]


@dataclass
class SubmittedJob:
    """A job id and the buyer role holding its secret key. Keep it to decrypt."""

    job_id: str
    request_id: str
    buyer: Buyer
    spec: AggregateJob
    view: JobView
    body_digest: bytes = b""  # what holders' receipts refer to (empty when insecure)
    min_parties: int = 1


@dataclass(frozen=True)
class GroupAnswer:
    label: str  # "" when the job is not grouped
    values: tuple[Fraction | float, ...]  # one per vector element; Fractions when exact
    rows: int | None
    suppressed_by: tuple[str, ...]  # holders whose policy withheld this group
    # Under differential privacy: each value's noise (σ and a 95 % interval); empty when exact.
    intervals: tuple[dp.Interval | None, ...] = ()


@dataclass(frozen=True)
class Noise:
    """The differential-privacy noise in a result, as each contributing holder declared it (signed).

    ``sd`` is the standard deviation of each released figure part in the column's units
    (``sum``, ``sum_of_squares``, ``count``); ``spent``/``remaining`` are per holder, in zCDP ρ."""

    sd: dict[str, float]
    spent: dict[str, float]
    remaining: dict[str, float]
    renews_at: dict[str, float]
    exact_holders: tuple[str, ...]  # holders that opted out of differential privacy

    @property
    def private(self) -> bool:
        return bool(self.spent)


@dataclass(frozen=True)
class AggregateAnswer:
    job_id: str
    statistic: str
    backend: str
    exact_backend: bool
    max_abs_error: float  # 0 when exact; else a bound on each value's absolute error
    groups: tuple[GroupAnswer, ...]
    contributors: tuple[str, ...]
    view: JobView
    noise: Noise | None = None  # None when no holder declared its noise

    @property
    def scalar(self) -> bool:
        return len(self.groups) == 1 and len(self.groups[0].values) == 1

    @property
    def exact(self) -> Fraction:
        """The value of an ungrouped scalar job from an exact backend."""
        if not self.scalar or not self.exact_backend:
            raise ValueError("exact applies to an ungrouped scalar result from an exact backend")
        v = self.groups[0].values[0]
        assert isinstance(v, Fraction)
        return v

    @property
    def value(self) -> float:
        if not self.scalar:
            raise ValueError("this result has several values: read .groups")
        return float(self.groups[0].values[0])

    @property
    def rows(self) -> int | None:
        return self.groups[0].rows if len(self.groups) == 1 else None


class Client(Connection):
    """Submit jobs and read their results; the buyer's keys never leave this object.

    Args:
        gateway: ``host:port`` of the gateway.
        identity: the buyer's credentials or their directory (see ``Connection``).
        insecure, caller: plaintext to an ``--insecure`` gateway under a self-asserted name.
        rpc_timeout_s: the deadline of each unary call.
        key_reuse_s: use one Paillier key pair (per key size) for this many seconds of jobs instead of a
            new one per job. A new key costs the buyer its generation and proof (about 0.2 s at 2048
            bits) and every holder the proof's check (about 0.3 s each); a reused one is checked once.
            The price: whoever obtains that key reads every result made under it, not one job's.
            Default 0: a fresh key per job.
    """

    def __init__(self, gateway: str, identity: Credentials | Path | str | None = None, *,
                 key_reuse_s: float = 0.0, **options: Any) -> None:
        super().__init__(gateway, identity, **options)
        if not 0 <= key_reuse_s <= 7 * 24 * 3600 or not math.isfinite(key_reuse_s):
            raise InvalidArgument(f"key_reuse_s must be between 0 and a week, got {key_reuse_s}",
                                  argument="key_reuse_s")
        self.key_reuse_s = key_reuse_s
        self._keys: dict[int, tuple[float, Any]] = {}
        self._keys_lock = threading.Lock()

    def _paillier_key(self, key_bits: int) -> Any:
        """A key pair to reuse, or None for a fresh one per job."""
        if self.key_reuse_s <= 0:
            return None
        with self._keys_lock:
            made = self._keys.get(key_bits)
            if made is None or time.monotonic() - made[0] > self.key_reuse_s:
                made = self._keys[key_bits] = (time.monotonic(), generate_keypair(key_bits))
            return made[1]

    # ------------------------------------------------------------- aggregation
    def submit(
        self,
        dataset: str,
        column: str,
        statistic: str | Statistic,
        *,
        where: str | None = None,
        group_by: str | None = None,
        bins: Sequence[str | float | int] | str | None = None,
        backend: str | Backend = "auto",
        parties: Sequence[str] = (),
        min_parties: int = 1,
        timeout_s: int = 120,
        request_id: str | None = None,
        key_bits: int = DEFAULT_KEY_BITS,
        slot_bits: int | None = None,
        rho: float | None = None,
    ) -> SubmittedJob:
        """Make a key pair here, send the job with its public part only, and return at once.

        Args:
            dataset: a dataset name from ``catalog()``.
            column: the column to aggregate (any column for ``count``).
            statistic: ``sum``, ``count``, ``mean``, ``variance`` (sample, n − 1) or ``histogram``.
            where: a filter such as ``"age >= 65 and department == 'cardiology'"``, evaluated by each holder.
            group_by: a column whose declared categories each get their own result.
            bins: histogram bin edges, ``[a, b)`` each, as numbers or ``"0,18,35"``.
            backend: ``auto``, ``paillier``, ``paillier-packed``, ``bfv`` or ``ckks``.
            parties: ask only these holders (waiting for them if offline); default every online holder.
            min_parties: the job fails unless at least this many holders contribute.
            timeout_s: seconds before the job fails for lack of answers.
            request_id: an idempotency key; resubmitting it returns the same job.
            key_bits, slot_bits: Paillier modulus size and bits per packed value.
            rho: the privacy loss (zCDP ρ) to spend at each holder that applies differential privacy;
                more is less noise. Default: each holder's own default per job (see ``catalog()``).

        Returns:
            A ``SubmittedJob`` holding the secret key: pass it to ``result``.

        Raises:
            InvalidArgument: a malformed argument (``argument`` names it).
            NotFound: an unknown dataset, column or holder.
            FailedPrecondition: ``min_parties`` cannot be met, or no holder is online.
            Unavailable: the gateway cannot be reached.
        """
        try:
            stat = Statistic(statistic)
        except ValueError:
            raise InvalidArgument(f"unknown statistic {statistic!r}; use one of "
                                  f"{', '.join(s.value for s in Statistic)}", argument="statistic") from None
        try:
            conditions = tuple(filters.parse(where or ""))
        except filters.FilterSyntaxError as exc:
            raise InvalidArgument(f"where: {exc}", argument="where") from None
        item = self.item(dataset)
        col = item.column(column)
        if col.kind is ColumnKind.STRING and stat is not Statistic.COUNT:
            raise InvalidArgument(f"column {column!r} holds text; {stat.value} needs a numeric column",
                                  argument="column")
        grouping = None
        if group_by:
            gcol = item.column(group_by)
            if not gcol.categories:
                raise InvalidArgument(f"column {group_by!r} has no categories declared by every holder, "
                                      "so it cannot be grouped by", argument="group_by")
            grouping = GroupBy(group_by, gcol.categories)
        edges = _edges(bins)
        if stat is Statistic.HISTOGRAM and not edges:
            raise InvalidArgument("a histogram needs bins, e.g. bins=0,18,35,50,65,80,120", argument="bins")
        if edges and stat is not Statistic.HISTOGRAM:
            raise InvalidArgument("bins apply only to the histogram statistic", argument="bins")
        dimension = col.dimension if stat is not Statistic.COUNT else 1
        groups = len(grouping.categories) if grouping else (len(edges) - 1 if edges else 1)
        layout = Layout(stat, dimension, groups)
        try:
            chosen = Backend(backend) if backend != "auto" else choose_backend(
                stat, layout, real_valued=col.kind is not ColumnKind.INT and col.decimals > 0)
        except ValueError:
            raise InvalidArgument(f"unknown backend {backend!r}; use auto, {', '.join(b.value for b in Backend)}",
                                  argument="backend") from None
        # A link to another exchange answers with the sum of its holders: slots leave room for each.
        max_contributors = item.contributors(parties)
        paillier = chosen in (Backend.PAILLIER, Backend.PAILLIER_PACKED)
        buyer = Buyer(layout, col.decimals, chosen, max_contributors, key_bits=key_bits, slot_bits=slot_bits,
                      keypair=self._paillier_key(key_bits) if paillier else None)
        if rho is not None and not (0 < rho <= 100 and math.isfinite(rho)):
            raise InvalidArgument(f"rho must be a positive privacy spend (at most 100), got {rho}", argument="rho")
        job = AggregateJob(dataset, column, stat, conditions, col.decimals, buyer.request.params,
                           dimension, grouping, edges, rho or 0.0)
        request_id = request_id or uuid.uuid4().hex
        view, body_digest = self.submit_job(request_id, parties=parties, min_parties=min_parties,
                                            timeout_s=timeout_s, aggregate=aggregate_to_proto(job))
        return SubmittedJob(view.job_id, request_id, buyer, job, view, body_digest, min_parties)

    def result(self, job: SubmittedJob, *, wait: bool = True, timeout_s: float = 300.0) -> AggregateAnswer:
        """Wait for the job, fetch the encrypted totals and decrypt them here.

        Raises:
            JobFailed: the job ended FAILED or CANCELLED (``.view`` has each holder's state and reason).
            FailedPrecondition: ``wait=False`` and the job is not DONE yet.
            DeadlineExceeded: not final after ``timeout_s``.
            WharfError: the result is malformed or does not decrypt under this job's key.
        """
        view = self.wait(job, timeout_s=timeout_s) if wait else self.status(job)
        if view.state in (JobState.FAILED, JobState.CANCELLED):
            raise JobFailed(view)
        if view.state != JobState.DONE:
            raise FailedPrecondition(f"job {job.job_id} is {view.state}; wait for DONE")
        result = self.fetch_result(job.job_id)
        if result.job_id != job.job_id:
            raise WharfError(f"gateway returned the result of {result.job_id!r} for {job.job_id!r}")
        self.check_contributors(result, job.body_digest, job.min_parties)
        try:
            outcome = job.buyer.finish(result_from_proto(result))
        except ValueError as exc:
            raise WharfError(f"the result does not decrypt: {exc}") from None
        labels = job.spec.group_labels
        noise = _noise(job.spec, result)
        groups = tuple(
            GroupAnswer(labels[g], gv.values, gv.rows,
                        tuple(p for p, gs in sorted(outcome.suppressed.items()) if g in gs),
                        _intervals(job.spec.statistic, gv.values, gv.rows, noise))
            for g, gv in enumerate(outcome.groups)
        )
        return AggregateAnswer(job.job_id, job.spec.statistic.value, outcome.backend.value, outcome.exact,
                               outcome.max_abs_error, groups, tuple(result.contributors), view, noise)

    # --------------------------------------------------------------------- PSI
    def psi(
        self,
        dataset: str,
        key_column: str,
        ids: Sequence[str],
        *,
        mode: str = "intersection",
        cardinality_only: bool = False,
        value_columns: Sequence[str] = (),
        party: str | None = None,
        timeout_s: int = 600,
        request_id: str | None = None,
        progress: Progress | None = None,
        parallel: bool = True,
        rho: float | None = None,
        parties: Sequence[str] = (),
        at_least: int | None = None,
    ) -> PsiAnswer:
        """Run a private set intersection of ``ids`` with a holder's ``key_column``; blocks until done.

        Args:
            dataset, key_column: the holder's dataset and a column it marks as a join key.
            ids: the buyer's IDs (normalised: NFKC, trimmed, case-folded; repeats count once).
            mode: ``intersection``, ``sum`` (join-and-sum over ``value_columns``) or ``unbalanced``.
            cardinality_only: learn only the size of the intersection.
            value_columns: psi-sum: the holder's value columns to sum over the intersection.
            party: the holder to ask when several list the dataset.
            timeout_s: seconds the whole job may take.
            progress: called as ``progress(stage, done, total)`` while blinding and sending.
            parallel: blind on every core with worker processes (guard a script's entry point with
                ``if __name__ == "__main__":``).
            rho: the privacy loss (zCDP ρ) to spend at a holder that applies differential privacy
                to PSI; None spends its default per job.
            parties: a multi-holder job: two or more holders of ``dataset``, each named once; the
                answer is about the IDs present at ``at_least`` of them (all of them by default), and
                psi-sum sums each value column over every holder that has such an ID.
            at_least: the threshold t, 1 <= t <= len(parties); only with ``parties``.

        Returns:
            A ``PsiAnswer``: the size, the buyer's own matching IDs (in input order) or the sums,
            and ``noise`` (σ and 95 % intervals) when the holder applied differential privacy.

        Raises:
            InvalidArgument, NotFound: a malformed argument or an unknown dataset or column.
            JobFailed: the holder refused (its reason is in ``.view``) or the job failed; in a
                multi-holder job any one holder's refusal fails the job, and the reason names it.
        """
        return run_psi(self, dataset, key_column, ids, mode=mode, cardinality_only=cardinality_only,
                       value_columns=value_columns, party=party, timeout_s=timeout_s, request_id=request_id,
                       progress=progress, parallel=parallel, rho=rho, parties=parties, at_least=at_least)


def _noise(spec: AggregateJob, result: buyer_pb2.JobResult) -> Noise | None:
    """Sum the contributors' declared noise variances into each figure part's σ, in value units."""
    declared = {r.party: r.noise for r in result.receipts if r.HasField("noise") and r.party in result.contributors}
    if not declared:
        return None
    parts = spec.layout.parts
    var = dict.fromkeys(parts, 0.0)
    spent, remaining, renews, exact = {}, {}, {}, []
    for party, n in sorted(declared.items()):
        if n.exact:
            exact.append(party)
            continue
        if len(n.part_sd) != len(parts):
            raise WharfError(f"{party} declares noise for {len(n.part_sd)} figure parts; the job has {len(parts)}")
        for f, sd in zip(parts, n.part_sd):
            var[f] += sd * sd
        spent[party], remaining[party], renews[party] = n.rho, n.remaining, n.renews_at
    unit = {Figure.SUM: 10 ** spec.places, Figure.SUM_OF_SQUARES: 10 ** (2 * spec.places), Figure.COUNT: 1}
    sd = {f.value: math.sqrt(v) / unit[f] for f, v in var.items()}
    return Noise(sd, spent, remaining, renews, tuple(exact))


def _intervals(stat: Statistic, values: tuple[Fraction | float, ...], rows: int | None,
               noise: Noise | None) -> tuple[dp.Interval | None, ...]:
    """Each value's 95 % interval; none for a variance (its mean is not released with it: read ``noise.sd``)."""
    if noise is None or not noise.private:
        return ()
    sd = noise.sd
    if stat is Statistic.VARIANCE:
        return tuple(None for _ in values)
    return tuple(dp.interval(stat, v, rows, sum_sd=sd.get("sum", 0.0), count_sd=sd.get("count", 0.0))
                 for v in values)


def _edges(bins: Sequence[str | float | int] | str | None) -> tuple[Decimal, ...]:
    if bins is None or bins == "":
        return ()
    parts = bins.split(",") if isinstance(bins, str) else [str(b) for b in bins]
    try:
        return tuple(Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        raise InvalidArgument(f"bins must be numbers separated by commas, got {bins!r}", argument="bins") from None
