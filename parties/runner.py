"""A task's path at the holder: policy → data → filter → protocol role."""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable

import numpy as np

from parties.budget import BudgetBook
from parties.config import DatasetConfig, PartyConfig
from datawharf.errors import WharfError
from datawharf.filters import Condition, FilterTypeError, Op, check_types
from datawharf.model import AggregateJob
from datawharf.model import Listing
from datawharf.serde import contribution_to_proto
from parties import policy
from parties.sources import CachedSource, SourceError, Table, listing, load, public_reason
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


class TaskError(WharfError):
    """The task cannot be run against this dataset (bad column, bad filter)."""


def row_mask(table: Table, where: tuple[Condition, ...]) -> np.ndarray:
    mask = np.ones(table.rows, dtype=bool)
    for cond in where:
        col = table.columns.get(cond.column)
        if col is None:
            raise TaskError(f"filter column {cond.column!r} is not in this dataset")
        try:
            check_types(cond, text=col.dtype == object, vector=col.ndim != 1)
        except FilterTypeError as exc:
            raise TaskError(str(exc)) from None
        literal: object = cond.literal if isinstance(cond.literal, str) else float(cond.literal)
        if isinstance(cond.literal, Decimal) and col.dtype.kind in "iu" and cond.literal == cond.literal.to_integral_value():
            literal = int(cond.literal)  # compare integers exactly, not through float
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
        """Load every dataset once: a broken file fails at start-up, not mid-job."""
        return [listing(d, self.sources[d.name].table().rows) for d in self.config.datasets]

    def run(self, buyer: str, job: AggregateJob, min_parties: int) -> Answer:
        dataset: DatasetConfig | None = next((d for d in self.config.datasets if d.name == job.dataset), None)
        if dataset is None:
            return Answer(failure=f"this holder does not list dataset {job.dataset!r}")
        decision = policy.check_task(dataset, buyer, job, min_parties)
        if not decision.allowed:
            return Answer(refusal=decision.reason, code=decision.code)
        try:
            return self._run(dataset, job)
        except SourceError as exc:
            return Answer(failure=public_reason(dataset.name, exc))
        except (TaskError, EncodingError, SchemeError, ValueError) as exc:
            return Answer(failure=str(exc))

    def _run(self, dataset: DatasetConfig, job: AggregateJob) -> Answer:
        table = self.sources[dataset.name].table()
        column = table.columns.get(job.column)
        if column is None:
            return Answer(failure=f"column {job.column!r} is not in dataset {dataset.name!r}")
        mask = row_mask(table, job.where)
        rows = int(mask.sum())
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
        if needs_values:
            scaled = scale_column(column[mask], job.places).reshape(rows, -1)
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
        suppressed: list[int] = []
        if layout.groups > 1:
            small = [g for g, n in enumerate(per_group) if n < dataset.policy.min_rows]
            if small and dataset.policy.small_groups == "refuse":
                names = ", ".join(job.group_labels[g] for g in small[:10])
                return Answer(refusal=f"groups under the holder's minimum of {dataset.policy.min_rows} rows: {names}",
                              code="small_groups")
            for g in small:
                for f in layout.parts:
                    s = layout.slice(g, f)
                    figures[s] = [0] * (s.stop - s.start)
            suppressed = small
        contribution = Holder(job.request).contribute(figures, suppressed)
        return Answer(payload=contribution_to_proto(contribution).SerializeToString())


__all__ = ["Answer", "Runner", "TaskError", "row_mask", "load"]
