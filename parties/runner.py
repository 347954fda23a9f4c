"""A task's path at the holder: policy → data → filter → protocol role."""

from __future__ import annotations

import logging
import operator
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable

import numpy as np

from parties.budget import BudgetBook, Limit
from parties.config import DatasetConfig, PartyConfig
from datawharf.errors import WharfError
from datawharf import roles
from datawharf.filters import Condition, FilterSyntaxError, FilterTypeError, Op, check_literal, check_types
from datawharf.model import AggregateJob, ColumnSpec, Listing
from datawharf.serde import contribution_to_proto
from datawharf.v1 import common_pb2
from parties import policy
from parties.sources import CachedSource, SourceError, Table, listing, load, public_reason
from protocols import dp
from protocols.aggregate import Holder
from protocols.figures import Statistic, local_figures
from protocols.fixed_point import EncodingError, scale_column
from protocols.schemes import SchemeError

log = logging.getLogger("datawharf.party")

_OPS: dict[Op, Callable[[np.ndarray, object], np.ndarray]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}


@dataclass(frozen=True)
class Answer:
    """Exactly one of payload (a serialized EncryptedFigures), refusal, failure."""

    payload: bytes | None = None
    refusal: str | None = None
    failure: str | None = None
    code: str = ""  # the policy rule behind a refusal
    noise: common_pb2.NoiseDeclaration | None = None  # with a payload: what the holder added


def privacy_limit(dataset: DatasetConfig) -> Limit:
    """The buyer's privacy budget on ``dataset``: PSI and aggregate jobs draw on the same one."""
    cfg = dataset.policy.dp
    return Limit("rho", cfg.budget, cfg.period_days * 86400)


class TaskError(WharfError):
    """The task cannot be run against this dataset (bad column, bad filter)."""


def row_mask(table: Table, where: tuple[Condition, ...],
             bounds: dict[str, tuple[Decimal, Decimal]] | None = None) -> np.ndarray:
    """Rows matching every condition. A numeric literal is first clamped into the column's declared
    bounds, where it has them: past a bound every row compares the same way, so nothing is lost,
    and a literal costs the same whatever its size."""
    mask = np.ones(table.rows, dtype=bool)
    for cond in where:
        col = table.columns.get(cond.column)
        if col is None:
            raise TaskError(f"filter column {cond.column!r} is not in this dataset")
        try:
            check_types(cond, text=col.dtype == object, vector=col.ndim != 1)
            check_literal(cond.column, cond.literal)
        except (FilterTypeError, FilterSyntaxError) as exc:
            raise TaskError(str(exc)) from None
        value = cond.literal
        box = (bounds or {}).get(cond.column)
        if isinstance(value, Decimal) and box is not None and not box[0] <= value <= box[1]:
            # Strictly outside: step half a unit past the bound so < and > keep their meaning.
            step = Decimal(1) if col.dtype.kind in "iu" else Decimal("0.5")
            value = box[0] - step if value < box[0] else box[1] + step
        literal: object = value if isinstance(value, str) else float(value)
        if isinstance(value, Decimal) and col.dtype.kind in "iu" and value == value.to_integral_value():
            literal = int(value)  # compare integers exactly, not through float
        mask &= np.asarray(_OPS[cond.op](col, literal), dtype=bool)
    return mask


def _bin_index(values: np.ndarray, edges: tuple[Decimal, ...], places: int) -> np.ndarray:
    """Bin of each scaled value: [e_i, e_i+1) compared exactly in fixed point; -1 outside."""
    unit = Decimal(10) ** places
    scaled_edges = np.array([int((e * unit).to_integral_value(rounding="ROUND_CEILING")) for e in edges])
    idx = np.searchsorted(scaled_edges, values, side="right") - 1
    idx[(idx < 0) | (idx >= len(edges) - 1)] = -1
    return idx.astype(np.int64)


class Runner:
    def __init__(self, config: PartyConfig, *, budget: BudgetBook | None = None) -> None:
        self.config = config
        self.budget = budget or BudgetBook(config.state_dir or Path(".wharf-state"))
        self.sources = {d.name: CachedSource(d) for d in config.datasets}

    def listings(self) -> list[Listing]:
        """Read every dataset once: a broken file fails at start-up, not mid-job. In batches, not kept: a
        holder of a large PSI set does not hold its table in memory for the listing's row count."""
        return [listing(d, self.sources[d.name].rows()) for d in self.config.datasets]

    def run(self, buyer: str, job: AggregateJob, min_parties: int, job_id: str = "") -> Answer:
        dataset: DatasetConfig | None = next((d for d in self.config.datasets if d.name == job.dataset), None)
        if dataset is None:
            return Answer(failure=f"this holder does not list dataset {job.dataset!r}")
        decision = policy.check_task(dataset, buyer, job, min_parties)
        if not decision.allowed:
            return Answer(refusal=decision.reason, code=decision.code)
        specs = self._specs(dataset)
        try:
            roles.check_job(job, specs.get)
        except roles.RoleError as exc:
            return Answer(refusal=str(exc), code="column_role")
        try:
            return self._run(dataset, job, buyer, min_parties, job_id)
        except SourceError as exc:
            return Answer(failure=public_reason(dataset.name, exc))
        except (TaskError, EncodingError, SchemeError, ValueError) as exc:
            return Answer(failure=str(exc))
        except sqlite3.Error as exc:  # the holder's budget book: this task fails, the node goes on
            log.error("budget book error on %s: %s", dataset.name, exc)
            return Answer(failure=f"this holder could not update its privacy budget ({type(exc).__name__}); "
                                  "try again")

    def _specs(self, dataset: DatasetConfig) -> dict[str, ColumnSpec]:
        return {c.name: c for c in listing(dataset, 0).columns}

    def _run(self, dataset: DatasetConfig, job: AggregateJob, buyer: str, min_parties: int, job_id: str) -> Answer:
        table = self.sources[dataset.name].table()
        column = table.columns.get(job.column)
        if column is None:
            return Answer(failure=f"column {job.column!r} is not in dataset {dataset.name!r}")
        bounds = {c.name: c.bounds for c in dataset.columns if c.bounds is not None}
        mask = row_mask(table, job.where, bounds)
        rows = int(mask.sum())
        private = dataset.policy.dp.enabled
        if not private:
            decision = policy.check_rows(dataset, rows)
            if not decision.allowed:
                return Answer(refusal=decision.reason, code=decision.code)
        layout = job.layout
        numeric = column.dtype != object
        needs_values = job.statistic is not Statistic.COUNT
        if needs_values and not numeric:
            raise TaskError(f"column {job.column!r} holds text; {job.statistic.value} needs numbers")
        width = column.shape[1] if column.ndim == 2 else 1
        if needs_values and width != job.dimension:
            raise TaskError(f"column {job.column!r} has {width} values per row here; the job expects {job.dimension}")
        col_cfg = dataset.column(job.column)
        col_bounds = col_cfg.bounds if col_cfg is not None else None
        holder = Holder(job.request)  # checks the buyer's parameters before any budget is spent
        plan = noise = None
        if private:
            # Charged before anything about the rows is decided: a refusal on the noisy minimum costs
            # the buyer its spend too, so probing the minimum is paid for like any other answer.
            spent = self._spend(dataset, job, buyer, job_id, col_bounds)
            if isinstance(spent, Answer):
                return spent
            plan, noise = spent
        if needs_values:
            scaled = scale_column(column[mask], job.places).reshape(rows, -1)
            # A histogram releases counts only (sensitivity 1): its values are binned as they are.
            if private and job.statistic is not Statistic.HISTOGRAM:
                assert col_bounds is not None  # the config refuses an aggregable column without bounds under dp
                scaled = dp.clip(scaled, dp.Bounds(*col_bounds), job.places)
        else:
            scaled = np.zeros((rows, job.dimension), dtype=np.int64)
        groups = None
        if job.group_by is not None:
            declared = next((c.categories for c in dataset.columns if c.name == job.group_by.column), None)
            if tuple(declared or ()) != job.group_by.categories:
                raise TaskError(
                    f"column {job.group_by.column!r} here declares categories {declared}; the job groups by "
                    f"{list(job.group_by.categories)}"
                )
            index = {c: i for i, c in enumerate(job.group_by.categories)}
            labels = table.columns[job.group_by.column][mask]
            groups = np.fromiter((index.get(v, -1) for v in labels), dtype=np.int64, count=rows)
        elif job.bin_edges:
            if width != 1:
                raise TaskError("a histogram needs a scalar column")
            groups = _bin_index(scaled[:, 0], job.bin_edges, job.places)
        figures, per_group = local_figures(layout, scaled, groups)
        counts: list[float] = [float(n) for n in per_group]
        if plan is not None:
            # The minimum is judged on noisy counts (their own share of rho), never on exact ones.
            counts = [n + e for n, e in zip(per_group, dp.noise([plan.threshold_sd] * len(per_group)))]
            total = sum(counts) if layout.groups > 1 else counts[0]
            decision = policy.check_rows(dataset, total)
            if not decision.allowed:
                return Answer(refusal=decision.reason, code=decision.code)
        suppressed: list[int] = []
        if layout.groups > 1:
            small = [g for g, n in enumerate(counts) if n < dataset.policy.min_rows]
            if small and dataset.policy.small_groups == "refuse":
                if dataset.policy.list_suppressed:
                    names = ", ".join(job.group_labels[g] for g in small[:10])
                    why = f"some groups have fewer rows than the holder's minimum (min_rows): {names}"
                else:
                    why = "some groups have fewer rows than the holder's minimum (min_rows)"
                return Answer(refusal=why, code="small_groups")
            for g in small:
                for f in layout.parts:
                    s = layout.slice(g, f)
                    figures[s] = [0] * (s.stop - s.start)
            # Unlisted, suppressed groups still come back zeroed (plus noise): the buyer cannot tell which.
            suppressed = small if dataset.policy.list_suppressed else []
        if plan is not None:
            figures = dp.add_noise(figures, plan.scales(layout))
        else:
            noise = common_pb2.NoiseDeclaration(exact=True)
        contribution = holder.contribute(figures, suppressed)
        return Answer(payload=contribution_to_proto(contribution).SerializeToString(), noise=noise)

    def _spend(self, dataset: DatasetConfig, job: AggregateJob, buyer: str, job_id: str,
               bounds: tuple[Decimal, Decimal] | None) -> Answer | tuple[dp.NoisePlan, common_pb2.NoiseDeclaration]:
        """Charge the job's ρ to the buyer's budget and size the noise, or refuse saying which rule."""
        cfg = dataset.policy.dp
        rho = job.rho or cfg.default_per_job
        if rho > cfg.max_per_job + 1e-12:
            return Answer(refusal=f"the job asks to spend rho={rho:g} per holder; this holder allows at most "
                                  f"{cfg.max_per_job:g} per job on {dataset.name!r}", code="dp_per_job")
        # The holder, not the buyer, says among how many holders the noise is split.
        shares = cfg.split_among if cfg.noise == "split" else 1
        plan = dp.plan(job.layout, job.places, dp.Bounds(*bounds) if bounds else None, rho, shares=shares,
                       threshold=True)
        limit = privacy_limit(dataset)
        charge = self.budget.charge(buyer, dataset.name, limit, rho, job_id)
        b = charge.balance
        if not charge.charged:
            renews = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(b.renews_at))
            return Answer(refusal=f"the buyer's privacy budget for {dataset.name!r} at this holder has rho="
                                  f"{b.remaining:g} left of {b.limit:g}, less than the {rho:g} this job asks; "
                                  f"it renews {renews}", code="dp_budget")
        decl = common_pb2.NoiseDeclaration(rho=rho, part_sd=[plan.share[f] for f in job.layout.parts],
                                           remaining=b.remaining, renews_at=b.renews_at)
        return plan, decl


__all__ = ["Answer", "Runner", "TaskError", "row_mask", "load"]
