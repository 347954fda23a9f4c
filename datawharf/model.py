"""Domain types shared by the buyer, the gateway and the party node."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from decimal import Decimal

from datawharf.filters import Condition, Op
from protocols.aggregate import AggregateRequest
from protocols.figures import Layout, Statistic
from protocols.psi_stages import PsiMode
from protocols.schemes import PublicParams
from datawharf.states import FINAL_JOB_STATES, JobState, TaskState


class ColumnKind(str, enum.Enum):
    INT = "int"
    DECIMAL = "decimal"
    STRING = "string"
    VECTOR = "vector"

    @property
    def numeric(self) -> bool:
        return self is not ColumnKind.STRING


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: ColumnKind
    decimals: int = 0
    dimension: int = 1
    categories: tuple[str, ...] = ()
    join_key: bool = False
    psi_value: bool = False
    filter_ops: tuple[Op, ...] = ()
    group: bool = False
    aggregate: bool = False
    identifier: bool = False
    bounds: tuple[Decimal, Decimal] | None = None

    @property
    def roles(self) -> str:
        """The roles in words, as the catalog shows them."""
        out = []
        if self.filter_ops:
            out.append("filter " + " ".join(o.value for o in self.filter_ops))
        if self.group:
            out.append("group")
        if self.aggregate:
            out.append("aggregate")
        if self.join_key:
            out.append("join")
        if self.psi_value:
            out.append("psi-sum")
        if self.identifier:
            out.append("identifier")
        return ", ".join(out) or "none"


@dataclass(frozen=True)
class PrivacyTerms:
    """A holder's differential-privacy terms for a dataset; ``dp`` False is an explicit opt-out."""

    dp: bool = True
    budget: float = 0.0
    period_days: float = 0.0
    max_per_job: float = 0.0
    default_per_job: float = 0.0
    noise: str = "full"
    list_suppressed: bool = True


@dataclass(frozen=True)
class Listing:
    name: str
    columns: tuple[ColumnSpec, ...]
    approx_rows: int
    description: str = ""
    min_parties: int = 1  # the holder's own minimum, enforced by the gateway as well
    privacy: PrivacyTerms = PrivacyTerms()
    # Holders whose sum this party's answer is: 1 for a holder, more for a link to another
    # exchange; a buyer's packed slots need headroom for each of them.
    holders: int = 1

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class GroupBy:
    column: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class AggregateJob:
    """One aggregation as the buyer asked for it, with public parameters only."""

    dataset: str
    column: str
    statistic: Statistic
    where: tuple[Condition, ...]
    places: int
    encryption: PublicParams
    dimension: int = 1
    group_by: GroupBy | None = None
    bin_edges: tuple[Decimal, ...] = ()
    rho: float = 0.0  # the buyer's privacy spend per holder; 0: each holder's default

    @property
    def groups(self) -> int:
        if self.group_by is not None:
            return len(self.group_by.categories)
        if self.bin_edges:
            return len(self.bin_edges) - 1
        return 1

    @property
    def group_labels(self) -> list[str]:
        if self.group_by is not None:
            return list(self.group_by.categories)
        if self.bin_edges:
            e = self.bin_edges
            return [f"[{e[i]}, {e[i + 1]})" for i in range(len(e) - 1)]
        return [""]

    @property
    def layout(self) -> Layout:
        return Layout(self.statistic, self.dimension, self.groups)

    @property
    def request(self) -> AggregateRequest:
        return AggregateRequest(self.layout, self.places, self.encryption)


@dataclass(frozen=True)
class TaskView:
    party: str
    state: TaskState
    reason: str = ""


@dataclass(frozen=True)
class PsiJob:
    dataset: str
    key_column: str
    mode: PsiMode
    cardinality_only: bool = False
    value_columns: tuple[str, ...] = ()
    buyer_box_key: bytes = b""
    buyer_set_size: int = 0
    rho: float = 0.0  # the buyer's privacy spend at a holder under DP; 0: the holder's default
    # Multi-holder PSI (protocols.psi_multi): the k >= 2 holders, each once, and the threshold t
    # (1 <= t <= k; 0 means k: IDs at all of them). Empty: a job against one holder.
    holders: tuple[str, ...] = ()
    at_least: int = 0

    @property
    def multi(self) -> bool:
        return bool(self.holders)

    @property
    def threshold(self) -> int:
        """How many of the holders an ID must be at (k when ``at_least`` is 0)."""
        return self.at_least or len(self.holders) or 1

    @property
    def kind(self) -> str:
        return {PsiMode.INTERSECTION: "psi", PsiMode.SUM: "psi-sum", PsiMode.UNBALANCED: "psi-unbalanced"}[self.mode]


@dataclass
class JobView:
    job_id: str
    request_id: str
    buyer: str
    state: JobState
    reason: str
    spec: "AggregateJob | PsiJob"
    min_parties: int
    created_at: float
    deadline: float
    finished_at: float = 0.0
    tasks: list[TaskView] = field(default_factory=list)
    next_stage: str = ""

    @property
    def final(self) -> bool:
        return self.state in FINAL_JOB_STATES


def round_rows(n: int) -> int:
    """Round a row count to two significant figures, so listings do not
    reveal exact sizes (and so exact changes) of a holder's data."""
    if n < 100:
        return n - n % 10 if n >= 10 else n
    digits = len(str(n)) - 2
    return int(round(n, -digits))
