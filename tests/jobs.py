"""Building jobs in tests without the client: a buyer role plus its public spec."""

from __future__ import annotations

from decimal import Decimal

from datawharf.filters import parse
from datawharf.model import AggregateJob, GroupBy
from protocols.aggregate import Buyer
from protocols.figures import Layout, Statistic
from protocols.schemes import Backend


def make_job(
    stat: str | Statistic = "sum",
    column: str = "cost",
    *,
    dataset: str = "visits",
    where: str = "",
    places: int = 2,
    backend: Backend = Backend.PAILLIER_PACKED,
    dimension: int = 1,
    group_by: GroupBy | None = None,
    bins: tuple[str, ...] = (),
    max_contributors: int = 3,
    keypair: object = None,
    rho: float = 0.0,
) -> tuple[Buyer, AggregateJob]:
    statistic = Statistic(stat)
    edges = tuple(Decimal(b) for b in bins)
    groups = len(group_by.categories) if group_by else (len(edges) - 1 if edges else 1)
    buyer = Buyer(Layout(statistic, dimension, groups), places, backend, max_contributors, keypair=keypair)
    job = AggregateJob(dataset, column, statistic, tuple(parse(where)), places, buyer.request.params,
                       dimension, group_by, edges, rho)
    return buyer, job
