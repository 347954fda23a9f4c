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

A multi-holder job (``protocols.psi_multi``) is answered like a job for
this holder alone, under the same policy, grant, quotas and budget, with
three differences: D stays in the buyer's order (the gateway counts matches
per ID across holders); in join-and-sum the padding rows the gateway
counts carry noise of their own (one more part of ρ); and in join-and-sum
over t >= 2 of k holders the sums' and those rows' noise is √k times
larger (``plan_noise``: one ID here can move every holder's total).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from datawharf.pki import write_private
from parties.budget import BudgetBook, Limit
from parties.config import DatasetConfig, PartyConfig
from datawharf.model import PsiJob
from parties import psi_stream
from parties.sources import CachedSource, SourceError, public_reason
from protocols import dp, oprf, psi, psi_sum
from protocols.fixed_point import scale_column
from protocols.psi_stages import MAX_PADDING, GatewayNotes, NoiseDeclaration, PsiMode, Stage, pack_masked

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
    stages: dict[Stage, bytes | Path] = field(default_factory=dict)  # a Path: a large stage in a file
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


# Shifted noise (the size's and the padding's) is clamped at zero beyond this many σ: a tail below 10^-23.
SHIFT_SD = 10


@dataclass(frozen=True)
class NoiseDraw:
    """One job's noise: what the gateway adds to the size, the padding rows, the sums' noise row."""

    offset: int                  # added to the number of matches
    count: int                   # psi-sum: zero padding rows the gateway counts (offset + shift)
    padding: int                 # dummy rows in W
    sums: tuple[int, ...] | None  # psi-sum: the noise row's values, fixed point


@dataclass(frozen=True)
class PsiNoise:
    """The noise one PSI job carries under the holder's DP policy, as σ per released part.

    Parts: the size (cardinality and psi-sum), the holder's set size (any
    job that sends W) and each summed column; ρ is split evenly over them."""

    mode: PsiMode
    rho: float
    size_sd: float               # IDs; 0 when the size is not noised
    set_size_sd: float           # IDs; 0 when W is not sent
    sum_sd: tuple[float, ...]    # fixed-point units, per value column
    places: tuple[int, ...]
    # Multi-holder psi-sum: σ of the padding rows the gateway counts, drawn apart from the size's
    # noise (protocols.psi_multi: tied to it, the buyer could cancel the size's noise); 0 otherwise.
    rows_sd: float = 0.0

    def draw(self) -> NoiseDraw:
        """Fresh noise from OpenDP's discrete Gaussian sampler."""
        size, set_size, rows, *sums = dp.noise([self.size_sd, self.set_size_sd, self.rows_sd, *self.sum_sd])
        offset, count, padding = size, 0, 0
        if self.set_size_sd:
            shift = math.ceil(SHIFT_SD * self.set_size_sd)
            padding = min(max(shift + set_size, 0), 2 * shift)
        if self.mode is PsiMode.SUM:
            # The size's noise is realised as padding rows the gateway counts: shifted to be non-negative.
            # Multi-holder: those rows carry noise of their own, and the size its offset alone.
            row_sd, row_noise = (self.rows_sd, rows) if self.rows_sd else (self.size_sd, size)
            shift = math.ceil(SHIFT_SD * row_sd)
            count = min(max(shift + row_noise, 0), 2 * shift)
            offset = size if self.rows_sd else count - shift
            padding += 2 * shift
        if padding > MAX_PADDING:
            raise dp.PrivacyError(f"this spend needs {padding} padding rows, more than {MAX_PADDING}")
        return NoiseDraw(offset, count, padding, tuple(sums) if self.mode is PsiMode.SUM else None)

    def declaration(self, remaining: float, renews_at: float, columns: tuple[str, ...]) -> NoiseDeclaration:
        return NoiseDeclaration(False, self.rho, self.size_sd, self.set_size_sd,
                                tuple((c, sd / 10 ** p) for c, sd, p in zip(columns, self.sum_sd, self.places)),
                                remaining, renews_at)


def plan_noise(dataset: DatasetConfig, job: PsiJob, rho: float) -> PsiNoise | None:
    """The noise for ``job`` at a spend of ``rho``; None when nothing it releases can carry noise
    (an exact intersection in unbalanced mode: positions, and no W)."""
    noisy_size = job.mode is PsiMode.SUM or job.cardinality_only
    sends_w = job.mode is not PsiMode.UNBALANCED
    cols = [dataset.column(name) for name in job.value_columns] if job.mode is PsiMode.SUM else []
    own_rows = job.multi and job.mode is PsiMode.SUM  # see PsiNoise.rows_sd
    # Multi-holder sums at t >= 2: one ID of this holder can bring an ID over the threshold, and with it
    # a row into every other holder's J and a value into every other holder's total, each released
    # apart (protocols.psi_multi). Over the k holders' releases that is √k times one holder's
    # sensitivity in L2: every holder scales its sums' and counted rows' noise by √k, so the k noises
    # together cover one holder's ID at this holder's spend (holders of one listing clip alike).
    spread = math.sqrt(len(job.holders)) if own_rows and job.threshold >= 2 else 1.0
    parts = int(noisy_size) + int(sends_w) + len(cols) + int(own_rows)
    if parts == 0:
        return None
    per_part = rho / parts
    places, sds = [], []
    for col in cols:
        assert col is not None and col.bounds is not None  # checked by _check and the config
        pl = col.decimals if col.type == "decimal" else 0
        bounds = dp.Bounds(*col.bounds)
        lo, hi = bounds.scaled(pl)
        places.append(pl)
        sds.append(dp.scale_for(per_part, float(max(abs(lo), abs(hi))) * spread))
    one = dp.scale_for(per_part, 1.0)
    return PsiNoise(job.mode, rho, one if noisy_size else 0.0, one if sends_w else 0.0, tuple(sds), tuple(places),
                    dp.scale_for(per_part, spread) if own_rows else 0.0)


def _ids(values: np.ndarray) -> list[str]:
    return [str(v) for v in values.tolist()]


def psi_limits(dataset: DatasetConfig, mode: PsiMode = PsiMode.INTERSECTION) -> tuple[Limit, Limit]:
    """The (jobs, IDs) limits a PSI job of ``mode`` on ``dataset`` is charged against."""
    pol = dataset.policy
    period_s = pol.oprf_epoch_hours * 3600 if mode is PsiMode.UNBALANCED else pol.psi_period_days * 86400
    return (Limit("psi_jobs", pol.psi_jobs_per_period, period_s),
            Limit("psi_ids", pol.psi_ids_per_period, period_s))


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
        ids = job.buyer_set_size - (0 if job.mode is PsiMode.UNBALANCED else psi.COMMITMENT_POINTS)
        if ids > pol.max_buyer_set:
            return PsiAnswer(refusal=f"the buyer's set of {ids} IDs exceeds this holder's limit of "
                             f"{pol.max_buyer_set}", code="max_buyer_set")
        cols = {c.name: c for c in dataset.columns}
        key = cols.get(job.key_column)
        if key is None or not key.join_key:
            return PsiAnswer(failure=f"{job.key_column!r} is not a join key of {dataset.name!r}")
        for v in job.value_columns:
            if v not in cols or not cols[v].psi_value:
                return PsiAnswer(failure=f"{v!r} is not a value column of {dataset.name!r}")
        return None

    def run(self, buyer: str, job: PsiJob, points: list[bytes] | Path, *, job_id: str,
            cached_tables: list[str]) -> PsiAnswer:
        """The answer to one task. ``points`` is the buyer's stage A as points, or as the file it was
        received into: then an intersection is answered by streaming (``parties.psi_stream``), its D and
        W written as files beside it, and memory stays flat in either set's size."""
        if isinstance(points, Path) and job.mode is not PsiMode.INTERSECTION:
            data = points.read_bytes()
            points = [data[i:i + psi.POINT_BYTES] for i in range(0, len(data), psi.POINT_BYTES)]
        dataset = next((d for d in self.config.datasets if d.name == job.dataset), None)
        if dataset is None:
            return PsiAnswer(failure=f"this holder does not list dataset {job.dataset!r}")
        problem = self._check(dataset, buyer, job)
        if problem is not None:
            return problem
        if job.multi and self.config.name not in job.holders:
            return PsiAnswer(refusal=f"the job names holders {', '.join(job.holders)}, not this one "
                             f"({self.config.name})", code="not_asked")
        received = points.stat().st_size // psi.POINT_BYTES if isinstance(points, Path) else len(points)
        if received != job.buyer_set_size:
            return PsiAnswer(failure=f"received {received} points; the job announced {job.buyer_set_size}")
        dpc = dataset.policy.dp
        plan: PsiNoise | None = None
        rho = Limit("rho", dpc.budget, dpc.period_days * 86400)  # shared with aggregate jobs on this dataset
        if dpc.enabled:
            if job.rho > dpc.max_per_job:
                return PsiAnswer(refusal=f"the job asks to spend rho = {job.rho:g} on {dataset.name!r}; this holder "
                                 f"allows at most {dpc.max_per_job:g} per job", code="dp_per_job")
            try:
                plan = plan_noise(dataset, job, job.rho or dpc.default_per_job)
            except dp.PrivacyError as exc:
                return PsiAnswer(refusal=f"differential privacy on {dataset.name!r}: {exc}", code="dp")
            if plan is not None and self.budget.balance(buyer, dataset.name, rho).remaining + 1e-9 < plan.rho:
                return self._rho_refusal(dataset, buyer, rho, plan.rho)
        commitment: list[bytes] = []
        if isinstance(points, Path):
            if received <= psi.COMMITMENT_POINTS:
                return PsiAnswer(failure=f"the buyer's set holds {received} points; it must end with its "
                                 f"{psi.COMMITMENT_POINTS}-point commitment after at least one ID")
        elif job.mode is not PsiMode.UNBALANCED:
            try:  # A ends with the buyer's commitment to its scalar, which the canaries check
                points, commitment = psi.split_commitment(points)
            except psi.PsiError as exc:
                return PsiAnswer(failure=str(exc))
        ids_sent = received - psi.COMMITMENT_POINTS if isinstance(points, Path) else len(points)
        spent = self._charge(dataset, buyer, job, ids_sent, job_id)
        if spent is not None:
            return spent
        declaration = NoiseDeclaration()
        draw = NoiseDraw(0, 0, 0, None)
        if plan is not None:
            got = self.budget.charge(buyer, dataset.name, rho, plan.rho, job_id)
            if not got.charged:  # another task took the budget since the check above
                return self._rho_refusal(dataset, buyer, rho, plan.rho)
            try:
                draw = plan.draw()
            except dp.PrivacyError as exc:
                return PsiAnswer(refusal=f"differential privacy on {dataset.name!r}: {exc}", code="dp")
            declaration = plan.declaration(got.balance.remaining, got.balance.renews_at, job.value_columns)
        if isinstance(points, Path):
            return self._streamed(dataset, job, points, draw, declaration, job_id)
        try:
            table = self.sources[dataset.name].table()
        except SourceError as exc:
            return PsiAnswer(failure=public_reason(dataset.name, exc))
        ids = _ids(table.columns[job.key_column])
        minimum = dataset.policy.min_intersection
        mapper = _logging_mapper(self.mapper, f"{job_id}: points blinded")
        declared = {Stage.P: declaration.pack()}
        try:
            if job.mode is PsiMode.INTERSECTION:
                holder = psi.Holder(ids)
                d, w = holder.answer(points, cardinality_only=job.cardinality_only, mapper=mapper,
                                     padding=draw.padding, commitment=commitment, keep_order=job.multi)
                notes = GatewayNotes(draw.offset, (), tuple(holder.canaries))
                return PsiAnswer({Stage.D: b"".join(d), Stage.W: b"".join(w), Stage.N: notes.pack(), **declared},
                                 min_intersection=minimum)
            if job.mode is PsiMode.SUM:
                cols = [c for c in dataset.columns if c.name in job.value_columns]
                order = {c.name: i for i, c in enumerate(cols)}
                scaled = [scale_column(table.columns[name], next(c.decimals if c.type == "decimal" else 0
                                                                for c in cols if c.name == name))
                          for name in job.value_columns if name in order]
                bounds = None
                if plan is not None:
                    by_name = {c.name: c for c in cols}
                    bounds = [dp.Bounds(*by_name[n].bounds).scaled(pl)  # type: ignore[misc]
                              for n, pl in zip(job.value_columns, plan.places)]
                rows = [(ident, [int(s[i]) for s in scaled]) for i, ident in enumerate(ids)]
                ans = psi_sum.Holder(rows, bounds=bounds).answer(
                    points, job.buyer_box_key, job_id.encode(), minimum=minimum, mapper=mapper,
                    padding=draw.padding, noise=draw.sums, count=draw.count, commitment=commitment,
                    keep_order=job.multi)
                masked = pack_masked(ans.for_gateway_masked)
                return PsiAnswer({Stage.D: b"".join(ans.for_gateway_d), Stage.W: b"".join(ans.for_buyer_w),
                                  Stage.M: masked, Stage.S: ans.for_buyer_sealed_seed,
                                  Stage.N: GatewayNotes(draw.offset, ans.counted, ans.canaries,
                                                        rows=len(ans.for_buyer_w)).pack(), **declared},
                                 min_intersection=minimum)
            key, epoch, tags = self._epoch(dataset, job, ids)
            stages = {Stage.E: b"".join(key.evaluate(points)), Stage.N: GatewayNotes(draw.offset).pack(), **declared}
            if epoch not in cached_tables:
                stages[Stage.T] = tags
            return PsiAnswer(stages, min_intersection=minimum, table_epoch=epoch)
        except psi.RepeatedPoint as exc:
            return PsiAnswer(refusal=str(exc), code="psi_repeated_point")
        except psi.PsiError as exc:
            return PsiAnswer(failure=str(exc))

    def _streamed(self, dataset: DatasetConfig, job: PsiJob, a_path: Path, draw: NoiseDraw,
                  declaration: NoiseDeclaration, job_id: str) -> PsiAnswer:
        """An intersection answered through files beside ``a_path`` (``parties.psi_stream``)."""
        mapper = self.mapper
        try:
            ans = psi_stream.answer(psi.Key(), a_path, self.sources[dataset.name].id_batches(job.key_column),
                                    a_path.parent, mapper=mapper, cardinality_only=job.cardinality_only,
                                    keep_order=job.multi, padding=draw.padding)
        except SourceError as exc:
            return PsiAnswer(failure=public_reason(dataset.name, exc))
        except psi.RepeatedPoint as exc:
            return PsiAnswer(refusal=str(exc), code="psi_repeated_point")
        except psi.PsiError as exc:
            return PsiAnswer(failure=str(exc))
        log.info("%s: %d points re-blinded, %d rows blinded", job_id, ans.points, ans.rows)
        notes = GatewayNotes(draw.offset, (), ans.canaries)
        return PsiAnswer({Stage.D: ans.d, Stage.W: ans.w, Stage.N: notes.pack(), Stage.P: declaration.pack()},
                         min_intersection=dataset.policy.min_intersection)

    def _rho_refusal(self, dataset: DatasetConfig, buyer: str, rho: Limit, need: float) -> PsiAnswer:
        b = self.budget.balance(buyer, dataset.name, rho)
        return PsiAnswer(refusal=f"the buyer's privacy budget for {dataset.name!r} cannot pay for this job "
                         f"(it needs rho = {need:g}; {b.remaining:.4g} of {b.limit:g} remains) until "
                         f"{_when(b.renews_at)}", code="dp_budget")

    def quotas(self, dataset: DatasetConfig, mode: PsiMode) -> tuple[Limit, Limit]:
        """The (jobs, IDs) limits a job of ``mode`` on ``dataset`` is charged against."""
        return psi_limits(dataset, mode)

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
