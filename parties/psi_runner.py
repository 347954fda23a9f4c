"""A PSI task at the holder: policy, quotas, IDs from the data, the protocol role.

The holder's OPRF key and table for unbalanced mode are kept per epoch in the
node's state directory, so the table over a large set is computed once per
epoch, not per query.

Quotas: each buyer may run ``psi_jobs_per_period`` jobs and send
``psi_ids_per_period`` IDs per dataset and period (``psi_period_days``; in
unbalanced mode the key epoch, so a buyer cannot spread one epoch's
linkable queries over fresh quota). Charges live in the holder's
BudgetBook, so a restart keeps them. A job is charged once its policy checks
pass and before any point is blinded, whatever happens to it afterwards:
an attempt that ends below the minimum still told the buyer something.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from datawharf.pki import write_private
from parties.budget import BudgetBook, Limit
from parties.config import DatasetConfig, PartyConfig
from datawharf.model import PsiJob
from parties.sources import CachedSource, SourceError, public_reason
from protocols import oprf, psi, psi_sum
from protocols.fixed_point import scale_column
from protocols.psi_stages import PsiMode, Stage, pack_masked

log = logging.getLogger("datawharf.party")


def _logging_mapper(mapper: psi.Mapper, what: str) -> psi.Mapper:
    """Log progress of large sets every tenth or so, for the holder's operator."""
    def run(fn, chunks):  # type: ignore[no-untyped-def]
        total = sum(len(c) for c in chunks)
        step = max(1, total // 10)
        done = mark = 0
        for part in mapper(fn, chunks):
            done += len(part)
            if total >= 1 << 15 and done - mark >= step:
                mark = done
                log.info("%s: %d of %d", what, done, total)
            yield part
    return run


@dataclass
class PsiAnswer:
    stages: dict[Stage, bytes] = field(default_factory=dict)
    refusal: str | None = None
    failure: str | None = None
    code: str = ""
    min_intersection: int = 0
    table_epoch: str = ""


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _period_text(seconds: float) -> str:
    if seconds % 86400 == 0:
        days = int(seconds // 86400)
        return "day" if days == 1 else f"{days} days"
    hours = seconds / 3600
    return "hour" if hours == 1 else f"{hours:g} hours"


def _ids(values: np.ndarray) -> list[str]:
    return [str(v) for v in values.tolist()]


class PsiRunner:
    def __init__(self, config: PartyConfig, sources: dict[str, CachedSource], state_dir: Path,
                 mapper: psi.Mapper = psi._serial_map, on_destroyed: Callable[..., None] | None = None,
                 budget: BudgetBook | None = None) -> None:
        # Per-buyer PSI quotas and privacy spend survive restarts in the holder's own state.
        self.budget = budget or BudgetBook(state_dir)
        self.on_destroyed = on_destroyed or (lambda **fields: None)
        self.config = config
        self.sources = sources
        self.state_dir = state_dir
        self.mapper = mapper

    def _check(self, dataset: DatasetConfig, buyer: str, job: PsiJob) -> PsiAnswer | None:
        pol = dataset.policy
        if not pol.allows_buyer(buyer):
            return PsiAnswer(refusal=f"buyer {buyer!r} is not granted access to dataset {dataset.name!r}",
                             code="buyer_not_granted")
        wanted = {PsiMode.SUM: "sum", PsiMode.UNBALANCED: "unbalanced"}.get(job.mode, "intersection")
        if job.mode is PsiMode.INTERSECTION and job.cardinality_only and "cardinality" in pol.allowed_psi:
            wanted = "cardinality"
        if wanted not in pol.allowed_psi:
            return PsiAnswer(refusal=f"PSI mode {wanted!r} is not allowed on {dataset.name!r} "
                             f"(allowed: {', '.join(pol.allowed_psi) or 'none'})", code="psi_not_allowed")
        if not pol.exact_intersection and job.mode is not PsiMode.SUM and not job.cardinality_only:
            return PsiAnswer(refusal=f"dataset {dataset.name!r} answers only intersection sizes and sums, never "
                             "which IDs matched (exact_intersection = false); ask for the size only "
                             "(cardinality_only)", code="exact_intersection")
        if job.buyer_set_size > pol.max_buyer_set:
            return PsiAnswer(refusal=f"the buyer's set of {job.buyer_set_size} IDs exceeds this holder's limit of "
                             f"{pol.max_buyer_set}", code="max_buyer_set")
        cols = {c.name: c for c in dataset.columns}
        key = cols.get(job.key_column)
        if key is None or not key.join_key:
            return PsiAnswer(failure=f"{job.key_column!r} is not a join key of {dataset.name!r}")
        for v in job.value_columns:
            if v not in cols or not cols[v].psi_value:
                return PsiAnswer(failure=f"{v!r} is not a value column of {dataset.name!r}")
        return None

    def run(self, buyer: str, job: PsiJob, points: list[bytes], *, job_id: str, cached_tables: list[str]) -> PsiAnswer:
        dataset = next((d for d in self.config.datasets if d.name == job.dataset), None)
        if dataset is None:
            return PsiAnswer(failure=f"this holder does not list dataset {job.dataset!r}")
        problem = self._check(dataset, buyer, job)
        if problem is not None:
            return problem
        if len(points) != job.buyer_set_size:
            return PsiAnswer(failure=f"received {len(points)} points; the job announced {job.buyer_set_size}")
        spent = self._charge(dataset, buyer, job, len(points), job_id)
        if spent is not None:
            return spent
        try:
            table = self.sources[dataset.name].table()
        except SourceError as exc:
            return PsiAnswer(failure=public_reason(dataset.name, exc))
        ids = _ids(table.columns[job.key_column])
        minimum = dataset.policy.min_intersection
        mapper = _logging_mapper(self.mapper, f"{job_id}: points blinded")
        try:
            if job.mode is PsiMode.INTERSECTION:
                d, w = psi.Holder(ids).answer(points, cardinality_only=job.cardinality_only, mapper=mapper)
                return PsiAnswer({Stage.D: b"".join(d), Stage.W: b"".join(w)}, min_intersection=minimum)
            if job.mode is PsiMode.SUM:
                cols = [c for c in dataset.columns if c.name in job.value_columns]
                order = {c.name: i for i, c in enumerate(cols)}
                scaled = [scale_column(table.columns[name], next(c.decimals if c.type == "decimal" else 0
                                                                for c in cols if c.name == name))
                          for name in job.value_columns if name in order]
                rows = [(ident, [int(s[i]) for s in scaled]) for i, ident in enumerate(ids)]
                ans = psi_sum.Holder(rows).answer(points, job.buyer_box_key, job_id.encode(), minimum=minimum,
                                                  mapper=mapper)
                masked = pack_masked(ans.for_gateway_masked)
                return PsiAnswer({Stage.D: b"".join(ans.for_gateway_d), Stage.W: b"".join(ans.for_buyer_w),
                                  Stage.M: masked, Stage.S: ans.for_buyer_sealed_seed}, min_intersection=minimum)
            key, epoch, tags = self._epoch(dataset, job, ids)
            stages = {Stage.E: b"".join(key.evaluate(points))}
            if epoch not in cached_tables:
                stages[Stage.T] = tags
            return PsiAnswer(stages, min_intersection=minimum, table_epoch=epoch)
        except psi.RepeatedPoint as exc:
            return PsiAnswer(refusal=str(exc), code="psi_repeated_point")
        except psi.PsiError as exc:
            return PsiAnswer(failure=str(exc))

    def quotas(self, dataset: DatasetConfig, mode: PsiMode) -> tuple[Limit, Limit]:
        """The (jobs, IDs) limits a job of ``mode`` on ``dataset`` is charged against."""
        pol = dataset.policy
        period_s = pol.oprf_epoch_hours * 3600 if mode is PsiMode.UNBALANCED else pol.psi_period_days * 86400
        return (Limit("psi_jobs", pol.psi_jobs_per_period, period_s),
                Limit("psi_ids", pol.psi_ids_per_period, period_s))

    def _charge(self, dataset: DatasetConfig, buyer: str, job: PsiJob, ids: int, job_id: str) -> PsiAnswer | None:
        """Charge one job and its IDs to the buyer's quota, or say which quota is spent (None: charged)."""
        jobs, id_limit = self.quotas(dataset, job.mode)
        per = _period_text(jobs.period_s)
        # Jobs are checked first and charged last, so a job refused for IDs costs no job.
        if self.budget.balance(buyer, dataset.name, jobs).remaining < 1:
            return PsiAnswer(refusal=f"the buyer's PSI quota for {dataset.name!r} ({int(jobs.amount)} jobs per {per}) "
                             f"is spent until {_when(jobs.renews_at(self.budget.clock()))}", code="psi_quota")
        got = self.budget.charge(buyer, dataset.name, id_limit, float(ids), job_id)
        if not got.charged:
            b = got.balance
            return PsiAnswer(refusal=f"this job's {ids} IDs exceed what remains of the buyer's PSI ID quota for "
                             f"{dataset.name!r}: {int(b.remaining)} of {int(b.limit)} per {per}, renewed at "
                             f"{_when(b.renews_at)}", code="psi_quota")
        # A race with another task for the last job may lose here after the IDs were charged;
        # the quota errs on the side of the holder.
        if not self.budget.charge(buyer, dataset.name, jobs, 1.0, job_id).charged:
            return PsiAnswer(refusal=f"the buyer's PSI quota for {dataset.name!r} ({int(jobs.amount)} jobs per {per}) "
                             f"is spent until {_when(jobs.renews_at(self.budget.clock()))}", code="psi_quota")
        return None

    def _epoch(self, dataset: DatasetConfig, job: PsiJob, ids: list[str]) -> tuple[oprf.HolderKey, str, bytes]:
        """This epoch's key and table, from the cache or made now."""
        hours = dataset.policy.oprf_epoch_hours
        epoch_no = int(self.budget.clock() // (hours * 3600))  # the quota's period is this epoch
        source = self.sources[dataset.name]
        st = source.path.stat()
        fingerprint = hashlib.sha256(f"{source.path}:{st.st_mtime_ns}:{st.st_size}:{job.key_column}".encode()).hexdigest()[:16]
        folder = self.state_dir / "oprf" / dataset.name / job.key_column
        meta_path = folder / "epoch.json"
        old_epoch = ""
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta["epoch_no"] == epoch_no and meta["fingerprint"] == fingerprint:
                key = oprf.HolderKey(bytes.fromhex(meta["key"]))
                return key, meta["epoch"], (folder / "table.bin").read_bytes()
            old_epoch = meta["epoch"]
        key = oprf.HolderKey()
        tags = b"".join(sorted(key.table(ids)))
        epoch = hashlib.sha256(key.raw() + fingerprint.encode()).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "table.bin").write_bytes(tags)
        tmp = meta_path.with_suffix(".tmp")
        write_private(tmp, json.dumps({"epoch_no": epoch_no, "fingerprint": fingerprint, "epoch": epoch,
                                       "key": key.raw().hex()}).encode())
        tmp.rename(meta_path)  # the old epoch's key goes with the file it replaces
        if old_epoch:
            self.on_destroyed(artefact="oprf_epoch_key", dataset=dataset.name, column=job.key_column,
                              epoch=old_epoch, method="key file replaced by the next epoch's")
        return key, epoch, tags
