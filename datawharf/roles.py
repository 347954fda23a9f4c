"""Column roles: what a holder lets buyers do with each column of an aggregate job.

Like a column control list: a column may be filtered (with the operators
listed), grouped by (its declared categories), aggregated (summed, averaged,
binned) or joined on in PSI; identifiers and join keys never appear in a
filter, a group or a sum, so ``patient_id != 'P0007'`` cannot difference one
person out of a total. Nothing is allowed unless the holder says so.

The gateway applies this to each holder's listing when a job is submitted,
and every holder applies it again to its own configuration before it reads
a row, so both refuse the same jobs with the same words.
"""

from __future__ import annotations

from typing import Callable

from datawharf.filters import FilterTypeError, check_role
from datawharf.model import AggregateJob, ColumnSpec
from protocols.figures import Statistic


class RoleError(ValueError):
    """The job uses a column in a way its holder does not allow."""


def check_job(job: AggregateJob, column: Callable[[str], ColumnSpec | None], where: str = "") -> None:
    """Raise RoleError naming the first use of a column its holder does not grant."""
    at = f" at {where}" if where else ""
    target = column(job.column)
    if target is not None and job.statistic is not Statistic.COUNT and not target.aggregate:
        raise RoleError(f"the holder{at} does not allow aggregating {job.column!r} "
                        f"(its roles: {target.roles}); see `wharf catalog`")
    if job.group_by is not None:
        g = column(job.group_by.column)
        if g is not None and not g.group:
            raise RoleError(f"the holder{at} does not allow grouping by {job.group_by.column!r} (its roles: {g.roles})")
    for cond in job.where:
        c = column(cond.column)
        if c is None:
            continue
        try:
            check_role(cond, c.filter_ops)
        except FilterTypeError as exc:
            raise RoleError(f"{exc}{at} (its roles: {c.roles})") from None


__all__ = ["RoleError", "check_job"]
