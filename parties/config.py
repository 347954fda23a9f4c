"""The party node's TOML configuration, validated when it is loaded.

    name = "st-mary"                  # must be the name in the certificate
    gateway = "127.0.0.1:50051"
    identity = "ids/st-mary"          # ca.pem, cert.pem, key.pem from `wharf ca issue --role party`
    # crl = "ca/crl.pem"              # the CA's revocations, re-read when it changes (optional)
    # insecure = true                 # plaintext on loopback, for development only
    # compute = "dask://10.0.0.7:8786" # PSI blinding on a Dask scheduler's workers, which then hold
    #                                  # the PSI key: your own cluster, private network; needs
    #                                  # pip install 'datawharf[dask]'. Default "local": one process per core

    [[datasets]]
    name = "visits"
    source = "visits.csv"          # relative to this file; .csv or .parquet
    # Column roles: nothing is allowed unless said. `filter` lists the operators a
    # filter may use on the column, `group` lets buyers group by its categories,
    # `aggregate` lets them sum (mean, variance, histogram) it, `join_key` lets
    # PSI join on it and `psi_value` sum it over a join. `bounds` clip every value
    # (differential privacy's sensitivity) and clamp filter literals.
    # An `identifier` (and any join key) may never be filtered, grouped or aggregated.
    columns = [
      { name = "patient_id", type = "string", join_key = true },
      { name = "age", type = "int", filter = ["<", "<=", ">", ">="], aggregate = true, bounds = [0, 120] },
      { name = "cost", type = "decimal", decimals = 2, aggregate = true, bounds = [0, 20000] },
      { name = "department", type = "string", categories = ["cardiology", "oncology"], group = true, filter = ["=="] },
      { name = "daily", type = "vector", length = 24, decimals = 1, aggregate = true, bounds = [0, 50] },
    ]
    [datasets.policy]
    allowed_buyers = ["acme-insurance"]    # or ["*"]
    allowed_statistics = ["sum", "count", "mean", "variance"]
    min_rows = 10                          # rows behind any released figure
    min_parties = 1                        # holders a job must require
    small_groups = "suppress"              # or "refuse": groups/bins under min_rows
    list_suppressed = true                 # tell the buyer which groups were suppressed
    [datasets.policy.dp]                   # on unless `enabled = false` is written here
    budget = 1.0                           # zCDP ρ per buyer per period
    period_days = 30                       # the budget renews every period
    max_per_job = 0.25                     # the most one job may spend
    default_per_job = 0.05                 # spent when the buyer names no spend
    noise = "full"                         # or "split" among the job's minimum holders
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from decimal import Decimal

from datawharf.errors import WharfError
from datawharf.filters import Op
from datawharf.tomlfile import read_toml, validation_message
from datawharf.pki import Credentials, Role, check_name
from datawharf.tls import check_insecure
from parties.compute import LOCAL, parse_compute
from protocols.figures import Statistic


class ConfigError(WharfError):
    """The configuration file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: Literal["int", "decimal", "string", "vector"]
    decimals: int = Field(default=2, ge=0, le=12)
    # vector columns: numbers per row (Parquet list column, or CSV cell "1.5;2;3")
    length: int | None = Field(default=None, ge=1, le=1 << 20)
    # string columns: the declared values, which buyers may group by
    categories: list[str] | None = Field(default=None, min_length=1, max_length=4096)
    # PSI: buyers may join on this column (join_key) or sum it over a join (psi_value)
    join_key: bool = False
    psi_value: bool = False
    # Aggregate-job roles (see the module docstring); restrictive by default.
    identifier: bool = False
    filter: list[Op] = Field(default_factory=list)
    group: bool = False
    aggregate: bool = False
    bounds: tuple[Decimal, Decimal] | None = None

    @property
    def numeric(self) -> bool:
        return self.type in ("int", "decimal", "vector")

    @model_validator(mode="after")
    def _roles(self) -> "ColumnConfig":
        if self.identifier or self.join_key:
            what = "an identifier" if self.identifier else "a join key"
            if self.filter or self.group or self.aggregate:
                raise ValueError(f"{self.name} is {what}: it may never be filtered, grouped by or aggregated")
            if self.identifier and (self.join_key or self.psi_value):
                raise ValueError("identifier columns take no PSI role; mark a joinable ID as join_key only")
        if self.group and self.categories is None:
            raise ValueError("group = true needs the column's declared categories")
        if self.aggregate and not self.numeric:
            raise ValueError("aggregate applies only to int, decimal and vector columns")
        if self.type == "vector" and self.filter:
            raise ValueError("vector columns cannot be filtered on")
        if self.type == "string" and any(op not in (Op.EQ, Op.NE) for op in self.filter):
            raise ValueError("text columns may be filtered only with == and !=")
        if self.bounds is not None:
            if not self.numeric:
                raise ValueError("bounds apply only to int, decimal and vector columns")
            lo, hi = self.bounds
            if not (lo.is_finite() and hi.is_finite() and lo <= hi):
                raise ValueError("bounds must be two finite numbers [lower, upper] with lower <= upper")
            if max(abs(lo), abs(hi)) >= Decimal(10) ** 15:
                raise ValueError("bounds must lie within ±10^15")
        return self

    @model_validator(mode="after")
    def _fits_type(self) -> "ColumnConfig":
        if self.type == "vector" and self.length is None:
            raise ValueError("a vector column needs its length")
        if self.type != "vector" and self.length is not None:
            raise ValueError("length applies only to vector columns")
        if self.psi_value and self.type not in ("int", "decimal"):
            raise ValueError("psi_value applies only to int and decimal columns")
        if self.categories is not None:
            if self.type != "string":
                raise ValueError("categories apply only to string columns")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError("categories are listed twice")
        return self


class DpConfig(_Strict):
    """Differential privacy on every released figure; on unless ``enabled = false`` is written."""

    enabled: bool = True
    budget: float = Field(default=1.0, gt=0, le=100)            # zCDP ρ per buyer and dataset per period
    period_days: float = Field(default=30.0, gt=0, le=3660)
    max_per_job: float = Field(default=0.25, gt=0)
    default_per_job: float = Field(default=0.05, gt=0)
    noise: Literal["full", "split"] = "full"
    # "split": each holder adds 1/split_among of the variance, and jobs must require that many holders.
    split_among: int = Field(default=2, ge=2, le=64)

    @model_validator(mode="after")
    def _fits(self) -> "DpConfig":
        if self.max_per_job > self.budget:
            raise ValueError("max_per_job is above the whole budget")
        if self.default_per_job > self.max_per_job:
            raise ValueError("default_per_job is above max_per_job")
        return self


class PolicyConfig(_Strict):
    allowed_buyers: list[str] = Field(min_length=1)
    allowed_statistics: list[Statistic] = Field(default_factory=lambda: list(Statistic))
    min_rows: int = Field(default=10, ge=1)
    min_parties: int = Field(default=1, ge=1)
    # A group or bin with fewer than min_rows rows is zeroed and reported
    # ("suppress") or makes the holder refuse the whole task ("refuse").
    small_groups: Literal["suppress", "refuse"] = "suppress"
    # Figures one job may ask of this holder (groups × statistic parts × vector length): each is
    # encrypted, and under differential privacy noised, so the buyer sets the holder's CPU bill.
    max_figures: int = Field(default=1 << 20, ge=1, le=1 << 22)
    # PSI: which kinds of private set intersection this dataset answers (none unless listed)
    allowed_psi: list[Literal["intersection", "cardinality", "sum", "unbalanced"]] = Field(default_factory=list)
    min_intersection: int = Field(default=10, ge=1)   # below this, nothing is released
    max_buyer_set: int = Field(default=1 << 24, ge=1)  # IDs a buyer may send in one job
    oprf_epoch_hours: float = Field(default=24.0, gt=0)  # unbalanced mode: key and table lifetime
    # PSI per buyer and dataset per period (per key epoch in unbalanced mode)
    psi_jobs_per_period: int = Field(default=20, ge=1)
    psi_ids_per_period: int = Field(default=1 << 23, ge=1)
    psi_period_days: float = Field(default=1.0, gt=0)
    exact_intersection: bool = True      # false: only cardinalities and sums, never the matched IDs
    # "required": besides allowed_buyers, a buyer needs a grant this holder signed (`wharf grant approve`)
    grants: Literal["optional", "required"] = "optional"
    list_suppressed: bool = True         # false: say only how many groups were suppressed, not which
    dp: DpConfig = Field(default_factory=DpConfig)

    def allows_buyer(self, buyer: str) -> bool:
        return "*" in self.allowed_buyers or buyer in self.allowed_buyers


class ListingConfig(_Strict):
    """``[datasets.listing]``: how the dataset is offered on the exchange (`wharf listing submit`).
    Prices stay text here; the exchange parses them as exact decimals at the currency's minor unit."""

    title: str = ""
    description: str = ""
    classification: Literal["internal", "sensitive", "public"] = "internal"
    personal_data: bool = True  # say false only for data about no person
    price_per_job: str = ""
    currency: str = "CNY"
    pricing: Literal["per-holder", "shared"] = "per-holder"
    weight: str = "1"  # shared pricing: this holder's weight in the split


class DatasetConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    source: Path
    description: str = ""
    columns: list[ColumnConfig] = Field(min_length=1)
    policy: PolicyConfig
    listing: ListingConfig | None = None

    @field_validator("source")
    @classmethod
    def _source_exists(cls, v: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base", Path("."))
        path = v if v.is_absolute() else base / v
        if path.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"{v}: only .csv and .parquet sources are supported")
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        return path.resolve()

    @model_validator(mode="after")
    def _unique_columns(self) -> "DatasetConfig":
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column(s) listed twice: {', '.join(dupes)}")
        if self.policy.dp.enabled:
            loose = [c.name for c in self.columns if (c.aggregate or c.psi_value) and c.bounds is None]
            if loose:
                raise ValueError(f"column(s) {', '.join(loose)} may be summed under differential privacy and need "
                                 "bounds = [lower, upper] (values are clipped to them; the noise scales with them)")
        return self

    def column(self, name: str) -> ColumnConfig | None:
        return next((c for c in self.columns if c.name == name), None)


class PartyConfig(_Strict):
    name: str
    gateway: str = Field(pattern=r"^[^\s:]+:\d{1,5}$")
    datasets: list[DatasetConfig] = Field(min_length=1)
    # Where the node keeps state of its own (OPRF keys and tables); default
    # ".wharf-state-<name>" beside this file.
    state_dir: Path | None = None
    # The holder's certificate directory (relative to this file); required unless insecure.
    identity: Path | None = None
    crl: Path | None = None
    insecure: bool = False
    # Where heavy work runs: "local" (a process pool) or "dask://HOST:PORT" (parties.compute).
    compute: str = LOCAL

    @field_validator("state_dir", "identity", "crl")
    @classmethod
    def _state_dir(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        base = (info.context or {}).get("base", Path("."))
        return (v if v.is_absolute() else base / v).resolve()

    @field_validator("compute")
    @classmethod
    def _compute(cls, v: str) -> str:
        parse_compute(v)  # a ValueError names the key through validation_message
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_name(v, "party name")
        except WharfError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _unique_datasets(self) -> "PartyConfig":
        names = [d.name for d in self.datasets]
        if len(names) != len(set(names)):
            raise ValueError("two datasets share a name")
        return self

    def credentials(self) -> Credentials | None:
        """The holder's certificate, checked against its name; None when insecure."""
        if self.insecure:
            check_insecure(self.gateway, f"party {self.name}")
            return None
        if self.identity is None:
            raise ConfigError("identity is required: the directory from "
                              f"`wharf ca issue --role party {self.name} --out DIR` (or insecure = true on loopback)")
        creds = Credentials.load(self.identity)
        ident = creds.identity
        if ident.role is not Role.PARTY:
            raise ConfigError(f"{self.identity}: a {ident.role.value} certificate; a party node needs a party "
                              "certificate (`wharf ca issue --role party`)")
        if ident.name != self.name:
            raise ConfigError(f"{self.identity}: the certificate names {ident.name!r} but this node is "
                              f"{self.name!r}; the gateway accepts a party only under its certificate's name")
        return creds


def load_party_config(path: Path | str) -> PartyConfig:
    path = Path(path)
    raw = read_toml(path, ConfigError)
    try:
        cfg = PartyConfig.model_validate(raw, context={"base": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None
    if cfg.state_dir is None:
        cfg = cfg.model_copy(update={"state_dir": path.resolve().parent / f".wharf-state-{cfg.name}"})
    return cfg
