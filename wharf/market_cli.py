"""`wharf listing ...` and `wharf billing ...`: the market from the command line.

Holders submit with their TOML and certificate (the node's own listing of the
dataset: schema and column roles, never rows); operators and authorities
review with theirs. Every submission and decision is signed here, with the
key in the caller's identity directory, before it is sent: the gateway
checks the signature against the caller and keeps it in the ledger.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import typer

from datawharf.errors import WharfError

if TYPE_CHECKING:
    import grpc

    from datawharf.pki import Credentials
    from datawharf.v1 import market_pb2, market_pb2_grpc

listing_app = typer.Typer(help="List datasets on the exchange (holders) and review listings (operators).",
                          no_args_is_help=True)
billing_app = typer.Typer(help="What jobs cost: statements per holder and per buyer.", no_args_is_help=True)

GatewayOpt = typer.Option("127.0.0.1:50051", "--gateway", "-g", envvar="WHARF_GATEWAY",
                          help="Gateway address host:port.")
IdentityOpt = typer.Option(None, "--identity", "-i", envvar="WHARF_IDENTITY",
                           help="Your certificate directory (ca.pem, cert.pem, key.pem from `wharf ca issue`).")
ConfigOpt = typer.Option(..., "--config", "-c", help="The holder's TOML file (its identity and gateway).")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")
FLAGS = {"price_per_job": "--price-per-job", "currency": "--currency", "classification": "--classification",
         "pricing": "--pricing", "weight": "--weight", "title": "--title", "description": "--description",
         "reason": "--reason", "month": "--month", "state": "--state", "dataset": "--dataset"}
T = TypeVar("T")


def _fail(exc: WharfError) -> None:
    message = exc.message
    flag = FLAGS.get(exc.argument)
    if flag and not message.startswith(flag):
        message = f"{flag}: {message}"
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _call(fn: Callable[[], T]) -> T:
    import grpc

    from datawharf.errors import from_rpc_error

    try:
        return fn()
    except grpc.RpcError as err:
        raise from_rpc_error(err) from None


def _creds(identity: Optional[Path], what: str) -> "Credentials":
    from datawharf.pki import Credentials

    if identity is None:
        raise WharfError(f"who are you? pass --identity DIR with your {what} certificate "
                         f"(`wharf ca issue --role {what} NAME --out DIR`)")
    return Credentials.load(identity)


def _stub(gateway: str, creds: "Credentials") -> tuple["grpc.Channel", "market_pb2_grpc.MarketServiceStub"]:
    from datawharf.tls import channel
    from datawharf.v1 import market_pb2_grpc

    ch = channel(gateway, creds)
    return ch, market_pb2_grpc.MarketServiceStub(ch)


def _every(stub: "market_pb2_grpc.MarketServiceStub", **filters: Any) -> list["market_pb2.MarketListing"]:
    """Every listing matching ``filters``, page by page."""
    from datawharf.v1 import market_pb2

    out: list[market_pb2.MarketListing] = []
    while True:
        page = _call(lambda: stub.ListListings(market_pb2.ListListingsRequest(offset=len(out), **filters)))
        out += page.listings
        if not page.listings or len(out) >= page.total:
            return out


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if at else "-"


def listing_json(x: "market_pb2.MarketListing") -> dict[str, Any]:
    from datawharf.v1 import market_pb2

    body = market_pb2.ListingBody.FromString(x.submission.body)
    return {
        "listing_id": x.listing_id, "holder": x.holder, "dataset": x.dataset, "version": x.version,
        "state": x.state, "title": body.title, "description": body.description,
        "classification": body.classification, "personal_data": body.personal_data,
        "price_per_job": body.price_per_job, "currency": body.currency, "pricing": body.pricing,
        "weight": body.weight, "columns": [c.name for c in body.dataset.columns],
        "submitted_at": x.submitted_at, "ledger_seq": x.ledger_seq, "home_exchange": x.home_exchange,
        **({"runnable_here": x.runnable_here, "availability": x.availability} if x.home_exchange else {}),
        "decisions": [{"action": d.action, "reviewer": d.reviewer, "role": d.role, "text": d.text, "at": d.at,
                       "ledger_seq": d.ledger_seq} for d in x.decisions],
    }


def _print_listing(x: "market_pb2.MarketListing") -> None:
    j = listing_json(x)
    home = f"  from {j['home_exchange']}" if j["home_exchange"] else ""
    typer.echo(f"{j['listing_id']}  {j['holder']}/{j['dataset']} v{j['version']}  {j['state']}{home}")
    typer.echo(f"    {j['title']} ({j['classification']}, personal data: {'yes' if j['personal_data'] else 'no'}); "
               f"{j['price_per_job']} {j['currency']} per job, {j['pricing']}"
               + (f" weight {j['weight']}" if j["pricing"] == "shared" else ""))
    typer.echo(f"    columns: {', '.join(j['columns'])}; submitted {_when(j['submitted_at'])}")
    if j["home_exchange"]:
        typer.echo(f"    {j['availability']}")
    for d in j["decisions"]:
        typer.echo(f"    {d['action']} by {d['role']} {d['reviewer']} {_when(d['at'])}"
                   + (f": {d['text']}" if d["text"] else "") + (f" (ledger #{d['ledger_seq']})" if d["ledger_seq"]
                                                               else ""))


def _print_listings(listings: list["market_pb2.MarketListing"], as_json: bool, empty: str) -> None:
    if as_json:
        typer.echo(json.dumps({"listings": [listing_json(x) for x in listings]}))
    elif not listings:
        typer.echo(empty)
    for x in listings if not as_json else []:
        _print_listing(x)


# ------------------------------------------------------------------ holders
@listing_app.command("submit")
def listing_submit(
    config: Path = ConfigOpt,
    dataset: str = typer.Option(..., help="A dataset of the TOML, as the node lists it."),
    title: Optional[str] = typer.Option(None, help="What buyers see first."),
    description: Optional[str] = typer.Option(None, help="What the data is, for buyers and reviewers."),
    classification: Optional[str] = typer.Option(None, help="internal, sensitive or public (needs an authority)."),
    personal_data: Optional[str] = typer.Option(None, "--personal-data", help="yes or no."),
    price_per_job: Optional[str] = typer.Option(None, help="Exact decimal per job, e.g. 20.00."),
    currency: Optional[str] = typer.Option(None, help="ISO 4217 code, e.g. CNY."),
    pricing: Optional[str] = typer.Option(None, help="per-holder (your own price) or shared (one job price split "
                                                     "by weight among its holders)."),
    weight: Optional[str] = typer.Option(None, help="Shared pricing: your weight in the split (default 1)."),
    as_json: bool = JsonOpt,
) -> None:
    """Submit (or resubmit) a listing; it is PENDING until the exchange reviews it.

    Fields not given here come from the dataset's [datasets.listing] table in the TOML."""
    from datawharf.market import check_terms, sign_listing
    from datawharf.pki import Credentials
    from datawharf.serde import listing_to_proto
    from datawharf.tls import channel
    from datawharf.v1 import market_pb2, market_pb2_grpc
    from parties.config import ListingConfig, load_party_config
    from parties.runner import Runner

    try:
        cfg = load_party_config(config)
        ds = next((d for d in cfg.datasets if d.name == dataset), None)
        if ds is None:
            raise WharfError(f"{config} lists no dataset {dataset!r} (it lists "
                             f"{', '.join(d.name for d in cfg.datasets)})")
        toml = ds.listing or ListingConfig()
        if personal_data is not None and personal_data not in ("yes", "no"):
            raise WharfError(f"--personal-data {personal_data!r}: say yes or no")
        node = next(x for x in Runner(cfg).listings() if x.name == dataset)
        body = market_pb2.ListingBody(
            holder=cfg.name, dataset=listing_to_proto(node), title=title if title is not None else toml.title,
            description=description if description is not None else (toml.description or ds.description),
            classification=classification or toml.classification,
            personal_data=(personal_data == "yes") if personal_data is not None else toml.personal_data,
            price_per_job=price_per_job if price_per_job is not None else toml.price_per_job,
            currency=(currency or toml.currency).upper(), pricing=pricing or toml.pricing,
            weight=weight or toml.weight, signed_at=time.time())
        check_terms(body)  # the gateway checks too; a typo is caught before anything is sent
        if cfg.identity is None:
            raise WharfError(f"{config} names no identity: listings are signed with the holder's certificate")
        creds = Credentials.load(cfg.identity)
        with channel(cfg.gateway, creds) as ch:
            out = _call(lambda: market_pb2_grpc.MarketServiceStub(ch).SubmitListing(sign_listing(creds, body)))
    except WharfError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(listing_json(out)))
        return
    typer.echo(f"submitted {out.listing_id}: {out.holder}/{out.dataset} v{out.version} is {out.state}; "
               f"`wharf listing status --config {config}` shows the review")


@listing_app.command("status")
def listing_status(config: Path = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Your listings, their states and every reviewer's decision and reason."""
    from datawharf.pki import Credentials
    from parties.config import load_party_config

    try:
        cfg = load_party_config(config)
        if cfg.identity is None:
            raise WharfError(f"{config} names no identity")
        ch, stub = _stub(cfg.gateway, Credentials.load(cfg.identity))
        with ch:
            listings = _every(stub)
    except WharfError as exc:
        _fail(exc)
        return
    _print_listings(listings, as_json, "no listings submitted yet (`wharf listing submit`)")


# ------------------------------------------------------------------ reviewers
@listing_app.command("list")
def listing_list(
    state: str = typer.Option("", help="Only this state: pending, awaiting_authority, approved, rejected, "
                                       "delisted, superseded."),
    foreign: bool = typer.Option(False, "--foreign", help="Listings imported from other exchanges."),
    limit: int = typer.Option(200, min=1, max=500, help="At most this many."),
    offset: int = typer.Option(0, min=0, help="After skipping this many."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every listing (operators, authorities), or your own (holders)."""
    from datawharf.v1 import market_pb2

    try:
        ch, stub = _stub(gateway, _creds(identity, "operator"))
        with ch:
            out = _call(lambda: stub.ListListings(market_pb2.ListListingsRequest(
                state=state.upper(), foreign=foreign, limit=limit, offset=offset)))
    except WharfError as exc:
        _fail(exc)
        return
    _print_listings(list(out.listings), as_json, f"no {state.lower() + ' ' if state else ''}listings")
    if not as_json and out.total > offset + len(out.listings):
        typer.echo(f"... {out.total - offset - len(out.listings)} more: --offset {offset + len(out.listings)}")


def _decide(listing_id: str, action: str, text: str, gateway: str, identity: Optional[Path], as_json: bool) -> None:
    from datawharf.market import sign_decision
    from datawharf.pki import digest
    from datawharf.v1 import market_pb2

    try:
        creds = _creds(identity, "operator")
        ch, stub = _stub(gateway, creds)
        with ch:
            found = _call(lambda: stub.ListListings(market_pb2.ListListingsRequest(listing_id=listing_id))).listings
            target = found[0] if found else None
            if target is None:
                raise WharfError(f"no listing {listing_id!r}; `wharf listing list` shows them")
            # What is signed is the listing as this reviewer saw it: its digest is in the decision.
            body = market_pb2.DecisionBody(listing_id=listing_id, listing_digest=digest(target.submission.body),
                                           action=action, text=text, reviewer=creds.identity.name,
                                           signed_at=time.time())
            out = _call(lambda: stub.DecideListing(sign_decision(creds, body)))
    except WharfError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(listing_json(out)))
        return
    typer.echo(f"{out.listing_id} ({out.holder}/{out.dataset} v{out.version}) is now {out.state}")


@listing_app.command("approve")
def listing_approve(listing_id: str = typer.Argument(...), note: str = typer.Option("", help="For the record."),
                    gateway: str = GatewayOpt, identity: Optional[Path] = IdentityOpt, as_json: bool = JsonOpt) -> None:
    """Approve a listing (operator; an authority's second approval for public data)."""
    _decide(listing_id, "approve", note, gateway, identity, as_json)


@listing_app.command("reject")
def listing_reject(listing_id: str = typer.Argument(...),
                   reason: str = typer.Option(..., help="What the holder must change to be approved."),
                   gateway: str = GatewayOpt, identity: Optional[Path] = IdentityOpt, as_json: bool = JsonOpt) -> None:
    """Reject a pending listing; the holder sees the reason and may resubmit."""
    _decide(listing_id, "reject", reason, gateway, identity, as_json)


@listing_app.command("delist")
def listing_delist(listing_id: str = typer.Argument(...), reason: str = typer.Option(..., help="Why, for the holder."),
                   gateway: str = GatewayOpt, identity: Optional[Path] = IdentityOpt, as_json: bool = JsonOpt) -> None:
    """Take an approved listing off the catalog; its holder's open tasks on it end."""
    _decide(listing_id, "delist", reason, gateway, identity, as_json)


@listing_app.command("export")
def listing_export(
    out: Path = typer.Option(..., "--out", "-o", help="The bundle file to write (JSON)."),
    signed: bool = typer.Option(False, "--signed", help="Sign with your operator certificate (required)."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
) -> None:
    """Write this exchange's approved listings as a bundle signed by you, for other exchanges to import."""
    from gateway.market.bundles import make_bundle

    try:
        if not signed:
            raise WharfError("only signed bundles can be exported (another exchange imports nothing unsigned): "
                             "pass --signed")
        creds = _creds(identity, "operator")
        ch, stub = _stub(gateway, creds)
        with ch:
            listings = _every(stub, state="APPROVED")
        out.write_bytes(make_bundle(creds, listings))
    except WharfError as exc:
        _fail(exc)
        return
    typer.echo(f"wrote {len(listings)} approved listing(s) to {out}, signed by {creds.identity.name}")


@listing_app.command("import")
def listing_import(
    bundle: Path = typer.Argument(..., help="A bundle from `wharf listing export --signed` of another exchange."),
    from_ca: Path = typer.Option(..., "--from-ca", help="That exchange's CA certificate (ca.pem)."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recognise another exchange's approved listings: every signature is checked against its CA
    (by the gateway), and one that fails rejects the whole bundle."""
    from datawharf.v1 import market_pb2

    try:
        try:
            raw, ca = bundle.read_bytes(), from_ca.read_bytes()
        except OSError as exc:
            raise WharfError(f"cannot read {exc.filename}: {exc.strerror}") from None
        from datawharf.grpc_options import MAX_MESSAGE_BYTES

        if len(raw) + len(ca) > MAX_MESSAGE_BYTES - 4096:
            # One message carries the bundle (it is verified whole): about 500 listings fit.
            raise WharfError(f"{bundle} is {len(raw)} bytes, more than one call to the gateway carries "
                             f"({MAX_MESSAGE_BYTES - 4096}); ask the other exchange for a smaller bundle")
        ch, stub = _stub(gateway, _creds(identity, "operator"))
        with ch:
            res = _call(lambda: stub.ImportBundle(market_pb2.ImportBundleRequest(bundle=raw, ca=ca)))
    except WharfError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps({"home_exchange": res.home_exchange,
                               "listings": [listing_json(x) for x in res.listings]}))
        return
    typer.echo(f"imported {len(res.listings)} listing(s) of {res.home_exchange}; the catalog shows them as foreign")


# ------------------------------------------------------------------ billing
@billing_app.command("statement")
def billing_statement(
    party: str = typer.Option("", "--party", help="A holder's statement: what it is paid."),
    buyer: str = typer.Option("", "--buyer", help="A buyer's statement: what it pays (with the operator's fee)."),
    month: str = typer.Option("", help="YYYY-MM (UTC); default every month."),
    csv: bool = typer.Option(False, "--csv", help="CSV: a row per line, then the totals."),
    as_json: bool = JsonOpt,
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Operators: read the gateway's data directory "
                                                                     "offline instead of calling it."),
    store: str = typer.Option("sqlite", "--store", envvar="WHARF_STORE",
                              help="With --data-dir: the gateway's store, sqlite or its postgresql:// URL."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Holders: your TOML (its identity and "
                                                                       "gateway; --party defaults to its name)."),
) -> None:
    """Per-job lines (job, date, dataset, buyer, holder, amount, currency, ledger seq) and totals that add up."""
    from datawharf.v1 import market_pb2
    from gateway.market.statements import check_request, join, to_csv

    try:
        creds = None
        if config is not None:
            from datawharf.pki import Credentials
            from parties.config import load_party_config

            cfg = load_party_config(config)
            if cfg.identity is None:
                raise WharfError(f"{config} names no identity")
            party, gateway, creds = party or cfg.name, cfg.gateway, Credentials.load(cfg.identity)
        check_request(party, buyer)
        if data_dir is not None:
            statement = _offline(data_dir, store, party, buyer, month)
        else:
            ch, stub = _stub(gateway, creds or _creds(identity, "party, buyer or operator"))
            with ch:
                statement = _call(lambda: join(stub.GetStatement(market_pb2.StatementRequest(
                    party=party, buyer=buyer, month=month))))
    except WharfError as exc:
        _fail(exc)
        return
    if csv:
        sys.stdout.write(to_csv(statement))
        return
    if as_json:
        typer.echo(json.dumps(statement_json(statement)))
        return
    who = f"holder {party}" if party else f"buyer {buyer}"
    typer.echo(f"statement of {who}, {month or 'all months'}")
    if not statement.lines and not statement.fees:
        typer.echo("  no charges")
    for x in [*statement.lines, *statement.fees]:
        typer.echo(f"  {x.job_id}  {_when(x.at)[:10]}  {x.dataset:<12} {x.buyer:<18} {x.holder or '(fee)':<14} "
                   f"{x.amount:>12} {x.currency}  ledger #{x.ledger_seq}")
    for t in statement.totals:
        typer.echo(f"  total {t.amount} {t.currency}")


def statement_json(s: "market_pb2.Statement") -> dict[str, Any]:
    def line(x: "market_pb2.ChargeLine") -> dict[str, Any]:
        return {"job_id": x.job_id, "at": x.at, "dataset": x.dataset, "buyer": x.buyer, "holder": x.holder,
                "kind": x.kind, "amount": x.amount, "currency": x.currency, "ledger_seq": x.ledger_seq}

    return {"party": s.party, "buyer": s.buyer, "month": s.month, "lines": [line(x) for x in s.lines],
            "fees": [line(x) for x in s.fees], "totals": {t.currency: t.amount for t in s.totals}}


def _offline(data_dir: Path, store: str, party: str, buyer: str, month: str) -> "market_pb2.Statement":
    from gateway.market.statements import build, month_range
    from gateway.store import missing_table, open_reader
    from gateway.store.base import charge_rows

    start, end = month_range(month)
    db, name = open_reader(store, data_dir)
    try:
        rows = charge_rows(db, holder=party or None, buyer=buyer or None, start=start, end=end)
    except Exception as exc:
        if missing_table(exc):
            raise WharfError(f"{name} holds no charges ({exc}); it was written by a gateway without the "
                             "market") from None
        raise
    finally:
        db.close()
    return build(rows, party=party, buyer=buyer, month=month)


__all__ = ["billing_app", "listing_app"]
