"""A task's path at the holder: policy → data → filter → protocol role."""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

import numpy as np

from datawharf.config import DatasetConfig, PartyConfig
from datawharf.errors import WharfError
from datawharf.filters import Condition, Op
from datawharf.model import AggregateJob
from datawharf.serde import figures_to_proto
from parties import policy
from parties.sources import CachedSource, SourceError, Table, listing, load
from datawharf.model import Listing
from protocols import paillier_aggregate as pa
from protocols.fixed_point import EncodingError, scale_column

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


class TaskError(WharfError):
    """The task cannot be run against this dataset (bad column, bad filter)."""


def row_mask(table: Table, where: tuple[Condition, ...]) -> np.ndarray:
    mask = np.ones(table.rows, dtype=bool)
    for cond in where:
        col = table.columns.get(cond.column)
        if col is None:
            raise TaskError(f"filter column {cond.column!r} is not in this dataset")
        is_text = col.dtype == object
        if is_text != isinstance(cond.literal, str):
            raise TaskError(f"filter on {cond.column!r} compares {'text' if is_text else 'numbers'} with the wrong kind of value")
        literal: object = cond.literal if isinstance(cond.literal, str) else float(cond.literal)
        if isinstance(cond.literal, Decimal) and col.dtype.kind in "iu" and cond.literal == cond.literal.to_integral_value():
            literal = int(cond.literal)  # compare integers exactly, not through float
        mask &= np.asarray(_OPS[cond.op](col, literal), dtype=bool)
    return mask


class Runner:
    def __init__(self, config: PartyConfig) -> None:
        self.config = config
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
            return Answer(refusal=decision.reason)
        try:
            table = self.sources[dataset.name].table()
            column = table.columns.get(job.column)
            if column is None:
                return Answer(failure=f"column {job.column!r} is not in dataset {dataset.name!r}")
            mask = row_mask(table, job.where)
            rows = int(mask.sum())
            decision = policy.check_rows(dataset, rows)
            if not decision.allowed:
                return Answer(refusal=decision.reason)
            if job.statistic is pa.Statistic.COUNT:
                scaled = np.zeros(rows, dtype=np.int64)
            else:
                scaled = scale_column(column[mask], job.places)
            holder = pa.Holder(job.request)
            contribution = holder.contribute(scaled)
        except (TaskError, SourceError, EncodingError, pa.ProtocolError) as exc:
            return Answer(failure=str(exc))
        payload = figures_to_proto(contribution.ciphertexts, job.public_n).SerializeToString()
        return Answer(payload=payload)


__all__ = ["Answer", "Runner", "TaskError", "row_mask", "load"]
