"""The party node's TOML configuration, validated when it is loaded.

    name = "st-mary"                  # must be the name in the certificate
    gateway = "127.0.0.1:50051"
    identity = "ids/st-mary"          # ca.pem, cert.pem, key.pem from `wharf ca issue --role party`
    # crl = "ca/crl.pem"              # the CA's revocations, re-read when it changes (optional)
    # insecure = true                 # plaintext on loopback, for development only

    [[datasets]]
    name = "visits"
    source = "visits.csv"          # relative to this file; .csv or .parquet
    columns = [
      { name = "patient_id", type = "string" },
      { name = "age", type = "int" },
      { name = "cost", type = "decimal", decimals = 2 },
      { name = "department", type = "string", categories = ["cardiology", "oncology"] },
      { name = "daily", type = "vector", length = 24, decimals = 1 },
    ]
    [datasets.policy]
    allowed_buyers = ["acme-insurance"]    # or ["*"]
    allowed_statistics = ["sum", "count", "mean", "variance"]
    min_rows = 10                          # rows behind any released figure
    min_parties = 1                        # holders a job must require
    small_groups = "suppress"              # or "refuse": groups/bins under min_rows
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from datawharf.errors import WharfError
from datawharf.pki import Credentials, Role, check_name
from datawharf.tls import check_insecure
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


class PolicyConfig(_Strict):
    allowed_buyers: list[str] = Field(min_length=1)
    allowed_statistics: list[Statistic] = Field(default_factory=lambda: list(Statistic))
    min_rows: int = Field(default=10, ge=1)
    min_parties: int = Field(default=1, ge=1)
    # A group or bin with fewer than min_rows rows is zeroed and reported
    # ("suppress") or makes the holder refuse the whole task ("refuse").
    small_groups: Literal["suppress", "refuse"] = "suppress"
    # PSI: which kinds of private set intersection this dataset answers (none unless listed)
    allowed_psi: list[Literal["intersection", "cardinality", "sum", "unbalanced"]] = Field(default_factory=list)
    min_intersection: int = Field(default=10, ge=1)   # below this, nothing is released
    max_buyer_set: int = Field(default=1 << 22, ge=1)  # IDs a buyer may send in one job
    oprf_epoch_hours: float = Field(default=24.0, gt=0)  # unbalanced mode: key and table lifetime

    def allows_buyer(self, buyer: str) -> bool:
        return "*" in self.allowed_buyers or buyer in self.allowed_buyers


class DatasetConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    source: Path
    description: str = ""
    columns: list[ColumnConfig] = Field(min_length=1)
    policy: PolicyConfig

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
        return self


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

    @field_validator("state_dir", "identity", "crl")
    @classmethod
    def _state_dir(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        base = (info.context or {}).get("base", Path("."))
        return (v if v.is_absolute() else base / v).resolve()

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


def _format(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def load_party_config(path: Path | str) -> PartyConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        cfg = PartyConfig.model_validate(raw, context={"base": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(_format(path, exc)) from None
    if cfg.state_dir is None:
        cfg = cfg.model_copy(update={"state_dir": path.resolve().parent / f".wharf-state-{cfg.name}"})
    return cfg
