"""The link's TOML configuration, validated when it is loaded.

    name = "harbour-a"                  # the link's party name at exchange B (its B certificate's)
    refresh_seconds = 60                # how often A's catalog is re-read (listings follow it)
    allowed_buyers = ["*"]              # B's buyers the link answers
    grants = "optional"                 # "required": each B buyer also needs a grant the link signed
    # state_dir = ".wharf-link-harbour-a"   # receipts of every relayed task (default beside this file)

    [party_at]                          # exchange B: the link is one of its parties
    gateway = "b.example:50051"
    identity = "ids/party-harbour-a"    # `wharf ca issue --role party harbour-a` by B's CA
    crl = "b-ca/crl.pem"                # B's revocations (optional), for the buyers' certificates

    [buyer_at]                          # exchange A: the link is one of its buyers
    exchange = "exchange A"             # how refusals and failures relayed to B name A
    gateway = "a.example:50051"
    identity = "ids/buyer-link-b"       # `wharf ca issue --role buyer link-b` by A's CA
    crl = "a-ca/crl.pem"                # A's revocations (optional), for A's holders' receipts
    datasets = ["visits"]               # what to offer at B; default every dataset in A's catalog
    min_parties = 1                     # organisations at A a relayed job requires

Both identities are required: the link relays only signed jobs and signs
what it relays, on both sides (there is no insecure mode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from datawharf.errors import WharfError
from datawharf.pki import Credentials, Role, check_name
from datawharf.tomlfile import read_toml, validation_message

__all__ = ["ConfigError", "LinkConfig", "load_link_config"]


class ConfigError(WharfError):
    """The link's configuration file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(v: Path | None, info: ValidationInfo) -> Path | None:
    if v is None:
        return None
    base = (info.context or {}).get("base", Path("."))
    return (v if v.is_absolute() else base / v).resolve()


class PartySide(_Strict):
    """Exchange B, where the link registers as a party."""

    gateway: str = Field(pattern=r"^[^\s:]+:\d{1,5}$")
    identity: Path
    crl: Path | None = None

    @field_validator("identity", "crl")
    @classmethod
    def _paths(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(v, info)


class BuyerSide(_Strict):
    """Exchange A, where the link submits jobs as a buyer."""

    exchange: str = Field(default="", max_length=100)
    gateway: str = Field(pattern=r"^[^\s:]+:\d{1,5}$")
    identity: Path
    crl: Path | None = None
    datasets: list[str] | None = Field(default=None, min_length=1)
    min_parties: int = Field(default=1, ge=1, le=1024)

    @field_validator("identity", "crl")
    @classmethod
    def _paths(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(v, info)

    @property
    def label(self) -> str:
        return self.exchange or f"the exchange at {self.gateway}"


class LinkConfig(_Strict):
    name: str
    party_at: PartySide
    buyer_at: BuyerSide
    # B's buyers the link answers ("*": any); with grants = "required" each also needs a grant the
    # link signed (`wharf link grant approve`), as for a holder's dataset.
    allowed_buyers: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    grants: Literal["optional", "required"] = "optional"
    refresh_seconds: float = Field(default=60.0, ge=1.0, le=86400.0)
    state_dir: Path | None = None

    @field_validator("state_dir")
    @classmethod
    def _paths(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(v, info)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_name(v, "link name")
        except WharfError as exc:
            raise ValueError(exc.message) from None

    def party_credentials(self) -> Credentials:
        """The link's certificate at B: a party certificate naming this link."""
        creds = _load(self.party_at.identity, "[party_at] identity")
        ident = creds.identity
        if ident.role is not Role.PARTY:
            raise ConfigError(f"{self.party_at.identity}: a {ident.role.value} certificate; at exchange B the link "
                              "is a party and needs a party certificate of B's CA (`wharf ca issue --role party`)")
        if ident.name != self.name:
            raise ConfigError(f"{self.party_at.identity}: the certificate names {ident.name!r} but this link is "
                              f"{self.name!r}; B's gateway knows a party only by its certificate's name")
        return creds

    def buyer_credentials(self) -> Credentials:
        """The link's certificate at A: a buyer certificate of A's CA."""
        creds = _load(self.buyer_at.identity, "[buyer_at] identity")
        if creds.identity.role is not Role.BUYER:
            raise ConfigError(f"{self.buyer_at.identity}: a {creds.identity.role.value} certificate; at exchange A "
                              "the link is a buyer and needs a buyer certificate of A's CA "
                              "(`wharf ca issue --role buyer`)")
        return creds


def _load(directory: Path, what: str) -> Credentials:
    try:
        return Credentials.load(directory)
    except WharfError as exc:
        raise ConfigError(f"{what}: {exc.message}") from None
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {directory}: {exc.strerror or exc}") from None


def load_link_config(path: Path | str) -> LinkConfig:
    path = Path(path)
    raw = read_toml(path, ConfigError)
    try:
        cfg = LinkConfig.model_validate(raw, context={"base": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None
    if cfg.state_dir is None:
        cfg = cfg.model_copy(update={"state_dir": path.resolve().parent / f".wharf-link-{cfg.name}"})
    return cfg
