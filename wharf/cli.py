"""The `wharf` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from datawharf.errors import WharfError
from datawharf.states import TaskState

if TYPE_CHECKING:  # the roles load on first use, so `wharf --help` stays quick
    from decimal import Decimal

    from buyers.client import AggregateAnswer, Client, JobFailed
    from buyers.keystore import Keystore
    from datawharf.model import AggregateJob, JobView, PrivacyTerms
    from protocols.schemes import PublicParams

app = typer.Typer(help="DataWharf: compute on holders' data without seeing it.", no_args_is_help=True)
gateway_app = typer.Typer(help="Run the exchange's gateway (operators).", no_args_is_help=True)
party_app = typer.Typer(help="Run a party node beside your data (data holders).", no_args_is_help=True)
job_app = typer.Typer(help="Submit and follow jobs (buyers).", no_args_is_help=True)
app.add_typer(gateway_app, name="gateway")
app.add_typer(party_app, name="party")
app.add_typer(job_app, name="job")

GatewayOpt = typer.Option("127.0.0.1:50051", "--gateway", "-g", envvar="WHARF_GATEWAY", help="Gateway address host:port.")
IdentityOpt = typer.Option(None, "--identity", "-i", envvar="WHARF_IDENTITY",
                           help="Your certificate directory (ca.pem, cert.pem, key.pem from `wharf ca issue`).")
InsecureAsOpt = typer.Option(None, "--insecure-as", envvar="WHARF_INSECURE_AS",
                             help="Plaintext to an --insecure gateway on loopback, under this self-asserted name.")
KeystoreOpt = typer.Option(None, "--keystore", envvar="WHARF_KEYSTORE",
                           help="Directory of your stored job keys (default ~/.local/share/wharf/keystore).")


def _print_version(value: bool) -> None:
    if value:
        from datawharf import __version__

        typer.echo(f"wharf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    pass


class LogFormat(str, Enum):
    text = "text"
    json = "json"


TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, for log collectors: ts (ISO 8601, UTC), level, logger, message, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ASCII escapes keep every line valid whatever the stream's encoding.
        return json.dumps(entry, default=str)


LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str, fmt: LogFormat = LogFormat.text) -> None:
    """Root logging for a serve command: ``level`` by name, text or JSON lines on stderr."""
    if level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if fmt is LogFormat.json else logging.Formatter(TEXT_LOG_FORMAT))
    # force: a serve command owns its process's logging; without it a handler
    # installed earlier would win and --log-format would silently do nothing.
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


LogLevelOpt = typer.Option("info", envvar="WHARF_LOG_LEVEL", help="debug, info, warning or error.")
LogFormatOpt = typer.Option(LogFormat.text, envvar="WHARF_LOG_FORMAT", case_sensitive=False,
                            help="text, or json: one JSON object per line (ts, level, logger, message, exc).")


# The Python API's argument names (WharfError.argument) as this command line spells them.
FLAGS = {
    "dataset": "--dataset", "column": "--column", "statistic": "--stat", "where": "--where",
    "group_by": "--group-by", "bins": "--bins", "backend": "--backend", "parties": "--party", "party": "--party",
    "min_parties": "--min-parties", "timeout_s": "--timeout", "request_id": "--request-id",
    "slot_bits": "--slot-bits", "key_column": "--key-column", "value_columns": "--value-column", "ids": "--ids",
    "cardinality_only": "--cardinality-only", "at_least": "--at-least",
}


def cli_message(exc: WharfError, flags: dict[str, str] | None = None) -> str:
    """The error's message with the argument it names spelt as this command's flag.

    Names such as ``min_parties`` are code wherever they appear; a plain word
    (``column``, ``bins``) is only rewritten where the message uses it as an
    argument: ``bins=...`` or a leading ``where:``."""
    arg = exc.argument
    flag = {**FLAGS, **(flags or {})}.get(arg)
    if not flag:
        return exc.message
    name = re.escape(arg)
    if "_" in arg:
        return re.sub(rf"(?<![\w-]){name}(?![\w-])", flag, exc.message)
    text = re.sub(rf"(?<![\w-]){name}=", f"{flag}=", exc.message)
    return re.sub(rf"^{name}:", f"{flag}:", text)


def _fail(exc: WharfError, code: int = 1, *, flags: dict[str, str] | None = None) -> None:
    typer.secho(f"error: {cli_message(exc, flags)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _client(gateway: str, identity: Optional[Path], insecure_as: Optional[str]) -> "Client":
    """The buyer's client: under its certificate, or plaintext under a claimed name."""
    from buyers.client import Client
    from datawharf.errors import InvalidArgument
    from datawharf.tls import check_insecure

    if identity is not None and insecure_as:
        raise InvalidArgument("give --identity or --insecure-as, not both")
    if insecure_as:
        check_insecure(gateway, "this client")
        return Client(gateway, caller=insecure_as, insecure=True)
    if identity is None:
        raise InvalidArgument("who are you? pass --identity DIR (from `wharf ca issue --role buyer NAME --out DIR`), "
                              "or --insecure-as NAME for an --insecure gateway on loopback")
    return Client(gateway, identity)


def exact_text(value: Fraction) -> str:
    """A fraction as an exact decimal when it has one, else as p/q."""
    den = value.denominator
    k = 0
    while den % 10 == 0 or den % 2 == 0 or den % 5 == 0:
        if den % 10 == 0:
            den //= 10
        elif den % 2 == 0:
            den //= 2
        else:
            den //= 5
        k += 1
    if den != 1 or k > 40:
        return f"{value.numerator}/{value.denominator}"
    places = 0
    while (value * 10**places).denominator != 1:
        places += 1
    scaled = value * 10**places
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
    return sign + (digits[:-places] + "." + digits[-places:] if places else digits)


# ---------------------------------------------------------------- gateway
@gateway_app.command("serve")
def gateway_serve(
    listen: str = typer.Option("127.0.0.1:50051", envvar="WHARF_LISTEN",
                               help="Address to listen on (port 0 picks a free one)."),
    data_dir: Path = typer.Option(Path("wharf-data"), envvar="WHARF_DATA_DIR",
                                  help="Where the gateway keeps its files (and its SQLite store)."),
    store: str = typer.Option("sqlite", envvar="WHARF_STORE",
                              help="sqlite (a file in --data-dir), or a postgresql://user@host:port/db URL that "
                                   "several gateway replicas share (password from ~/.pgpass or PGPASSWORD)."),
    blob_dir: Optional[Path] = typer.Option(None, envvar="WHARF_BLOB_DIR",
                                            help="With a PostgreSQL store, where contributions are kept "
                                                 "(default --data-dir/blobs); replicas must share it."),
    replica: str = typer.Option("", envvar="WHARF_REPLICA",
                                help="This replica's name among those sharing a PostgreSQL store "
                                     "(default: the host name and a digest of --data-dir)."),
    lease: float = typer.Option(10.0, min=0.5, max=3600.0, envvar="WHARF_LEASE",
                                help="Seconds a replica's jobs stay its own without renewal; a replica that "
                                     "stops has its jobs taken over this long after."),
    wire_log: Optional[Path] = typer.Option(None, envvar="WHARF_WIRE_LOG",
                                            help="Append every message received and sent, as JSON lines (privacy audits)."),
    http: Optional[str] = typer.Option(None, envvar="WHARF_HTTP",
                                       help="Serve the dashboard and /metrics here, e.g. 127.0.0.1:8080."),
    http_token: Optional[str] = typer.Option(None, envvar="WHARF_HTTP_TOKEN",
                                             help="Require this token: Authorization: Bearer for scripts, "
                                                  "a sign-in at /login for browsers."),
    http_host: list[str] = typer.Option([], "--http-host", envvar="WHARF_HTTP_HOST",
                                        help="A host name the dashboard answers to (repeatable); others get 421."),
    http_tls: Optional[bool] = typer.Option(None, "--http-tls/--no-http-tls", envvar="WHARF_HTTP_TLS",
                                            help="Serve the dashboard over HTTPS with the gateway's certificate "
                                                 "(default: when not on loopback)."),
    http_allow_remote: bool = typer.Option(False, envvar="WHARF_HTTP_ALLOW_REMOTE",
                                           help="Allow the dashboard on a non-loopback address (needs a token)."),
    bench_results: Path = typer.Option(Path("benchmarks/results"), envvar="WHARF_BENCH_RESULTS",
                                       help="Benchmark records to chart."),
    identity: Optional[Path] = typer.Option(None, "--identity", "-i", envvar="WHARF_IDENTITY",
                                            help="The gateway's certificate directory (`wharf ca issue --role "
                                                 "gateway`)."),
    crl: Optional[Path] = typer.Option(None, envvar="WHARF_CRL",
                                       help="The CA's revocation list (crl.pem), re-read whenever it changes."),
    insecure: bool = typer.Option(False, envvar="WHARF_INSECURE",
                                  help="Plaintext with self-asserted names, loopback only (development)."),
    ledger: bool = typer.Option(True, "--ledger/--no-ledger", envvar="WHARF_LEDGER",
                                help="Record every use in the signed ledger (off only to measure its cost)."),
    result_ttl: float = typer.Option(168.0, min=0.001, envvar="WHARF_RESULT_TTL",
                                     help="Hours a result is kept for its buyer before it is destroyed."),
    anchor_url: Optional[str] = typer.Option(None, envvar="WHARF_ANCHOR_URL",
                                             help="An RFC 3161 time-stamping authority to anchor the ledger's head."),
    anchor_every: float = typer.Option(3600.0, min=1.0, envvar="WHARF_ANCHOR_EVERY",
                                       help="Seconds between anchors (only when the ledger has grown)."),
    max_open_jobs: int = typer.Option(16, min=0, envvar="WHARF_MAX_OPEN_JOBS",
                                      help="Jobs one buyer may have running at once (0: no limit)."),
    jobs_per_minute: int = typer.Option(60, min=0, envvar="WHARF_JOBS_PER_MINUTE",
                                        help="Jobs one buyer may submit in any minute (0: no limit)."),
    max_upload_bytes: int = typer.Option(1 << 30, min=0, envvar="WHARF_MAX_UPLOAD_BYTES",
                                         help="Bytes of unfinished set uploads one buyer may have (0: no limit)."),
    max_calls_per_caller: int = typer.Option(128, min=0, envvar="WHARF_MAX_CALLS_PER_CALLER",
                                             help="Calls one caller may have running at once (0: no limit)."),
    max_concurrent_rpcs: int = typer.Option(1024, min=0, envvar="WHARF_MAX_CONCURRENT_RPCS",
                                            help="Calls of all callers at once (0: no limit)."),
    spool_max_bytes: int = typer.Option(4 << 30, min=1, envvar="WHARF_SPOOL_MAX_BYTES",
                                        help="Disk the PSI spool may use under --data-dir, in bytes."),
    idle_timeout: float = typer.Option(300.0, min=1.0, envvar="WHARF_IDLE_TIMEOUT",
                                       help="Seconds after which a connection without calls is closed."),
    listing_review: str = typer.Option("required", envvar="WHARF_LISTING_REVIEW",
                                       help="required: only listings an operator approved are in the catalog "
                                            "(`wharf listing`); off: every dataset a holder registers."),
    fee_percent: str = typer.Option("0", envvar="WHARF_FEE_PERCENT",
                                    help="The operator's fee on each charged job, in percent: a separate line "
                                         "the buyer pays on top (rounded half-to-even)."),
    log_level: str = LogLevelOpt,
    log_format: LogFormat = LogFormatOpt,
) -> None:
    """Serve the buyer and party gRPC services until SIGTERM or Ctrl-C.

    Every caller presents a certificate of the exchange's CA (mutual TLS).
    Every option can also be set by the environment variable shown beside it.
    """
    from gateway.app import GatewaySettings, serve
    from gateway.quotas import QuotaSettings
    from gateway.web.app import AccessError

    # Everything the gateway writes (store, WAL, spool, wire log) is its operator's alone.
    os.umask(0o077)
    configure_logging(log_level, log_format)
    settings = GatewaySettings(listen=listen, data_dir=data_dir, store=store, blob_dir=blob_dir, replica=replica,
                               lease_s=lease,
                               wire_log=wire_log, http=http,
                               http_token=http_token, http_allow_remote=http_allow_remote,
                               results_dir=bench_results, identity=identity, crl=crl, insecure=insecure,
                               http_hosts=tuple(http_host), http_tls=http_tls, ledger=ledger,
                               result_ttl_s=result_ttl * 3600, anchor_url=anchor_url,
                               anchor_every_s=anchor_every,
                               quotas=QuotaSettings(max_open_jobs=max_open_jobs, jobs_per_minute=jobs_per_minute,
                                                    max_upload_bytes=max_upload_bytes,
                                                    max_calls_per_caller=max_calls_per_caller),
                               spool_max_bytes=spool_max_bytes, max_concurrent_rpcs=max_concurrent_rpcs,
                               idle_s=idle_timeout, listing_review=_listing_review(listing_review),
                               fee_percent=_fee_percent(fee_percent))
    try:
        asyncio.run(serve(settings))
    except (OSError, AccessError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    except WharfError as exc:
        _fail(exc, flags={"identity": "--identity", "insecure": "--insecure"})


def _listing_review(value: str) -> bool:
    if value not in ("required", "off"):
        raise typer.BadParameter(f"{value!r} is not required or off", param_hint="--listing-review")
    return value == "required"


def _fee_percent(value: str) -> "Decimal":
    from decimal import Decimal, InvalidOperation

    try:
        fee = Decimal(value)
    except InvalidOperation:
        fee = Decimal("NaN")
    if not fee.is_finite() or not 0 <= fee <= 100:
        raise typer.BadParameter(f"{value!r} is not a percentage between 0 and 100", param_hint="--fee-percent")
    return fee


# --------------------------------------------------------------------- ca
ca_app = typer.Typer(help="The exchange's certificate authority (operators).", no_args_is_help=True)
app.add_typer(ca_app, name="ca")
CaDirOpt = typer.Option(Path("wharf-ca"), "--dir", envvar="WHARF_CA_DIR",
                        help="The CA's directory (its key is needed only to issue and revoke).")


@ca_app.command("init")
def ca_init(directory: Path = CaDirOpt,
            name: str = typer.Option("DataWharf exchange CA", help="The CA's common name.")) -> None:
    """Create the exchange's root: ca.pem (give it to everyone), key.pem (keep it safe, 0600), crl.pem."""
    from datawharf.pki import Authority

    try:
        Authority.init(directory, name=name)
    except WharfError as exc:
        _fail(exc)
    typer.echo(f"CA created in {directory}: ca.pem (share), key.pem (keep offline), crl.pem (publish)")


@ca_app.command("request")
def ca_request(
    name: str = typer.Argument(..., help="Your name on the exchange, as the operator will certify it."),
    out: Path = typer.Option(..., help="Where to write key.pem (0600, stays here) and request.csr (send it)."),
) -> None:
    """Make your key and a certificate request; the operator issues from the request, never seeing the key."""
    from datawharf.pki import make_request

    try:
        csr = make_request(name, out)
    except WharfError as exc:
        _fail(exc)
        return
    typer.echo(f"wrote {out / 'key.pem'} (0600; keep it here) and {csr}: send the request to the operator "
               "(`wharf ca issue NAME --role ROLE --csr request.csr`), and put the cert.pem and ca.pem it returns "
               f"in {out}")


@ca_app.command("issue")
def ca_issue(
    name: str = typer.Argument(..., help="The holder's, buyer's, operator's or gateway's name."),
    role: str = typer.Option(..., help="buyer, party, operator, gateway or authority (second approval of public listings)."),
    csr: Optional[Path] = typer.Option(None, help="Certify the key of this request (from `wharf ca request`), "
                                                  "so the key never leaves its owner. Without it a key is made here."),
    out: Optional[Path] = typer.Option(None, help="Where to write cert.pem and ca.pem (and key.pem without --csr); "
                                                  "default ./NAME."),
    organisation: str = typer.Option("", help="The organisation (default: the name); min_parties counts these."),
    days: int = typer.Option(30, min=1, max=825, help="Lifetime; renew before it ends."),
    host: list[str] = typer.Option([], "--host", help="Gateway: a DNS name or IP clients dial (repeatable)."),
    directory: Path = CaDirOpt,
) -> None:
    """Issue a certificate; any key made here is written 0600 and never printed."""
    from datawharf.pki import Authority, Role, identity_of, load_certificate

    target = out or Path(name)
    try:
        if role not in {r.value for r in Role}:
            raise WharfError(f"unknown role {role!r}; use buyer, party, operator or gateway")
        ca = Authority(directory)
        if csr is not None:
            try:
                request = csr.read_bytes()
            except OSError as exc:
                raise WharfError(f"cannot read {csr}: {exc.strerror or exc}") from None
            cert = ca.issue_request(request, name, Role(role), organisation=organisation, days=days, hosts=host)
            target.mkdir(parents=True, exist_ok=True)
            (target / "cert.pem").write_bytes(cert)
            (target / "ca.pem").write_bytes(ca.ca_pem)
            written = "cert.pem, ca.pem"
        else:
            creds = ca.issue(name, Role(role), organisation=organisation, days=days, hosts=host)
            creds.save(target)
            cert, written = creds.cert_pem, "cert.pem, ca.pem, key.pem (0600)"
    except WharfError as exc:
        _fail(exc)
        return
    ident = identity_of(load_certificate(cert))
    until = datetime.fromtimestamp(ident.not_after, timezone.utc).strftime("%Y-%m-%d")
    typer.echo(f"issued {ident} serial {ident.serial:x}, valid until {until}: {written} in {target}")


@ca_app.command("renew")
def ca_renew(
    certificate: Path = typer.Argument(..., help="The certificate to renew (cert.pem, or the directory holding it)."),
    days: int = typer.Option(30, min=1, max=825, help="Lifetime of the new certificate."),
    out: Optional[Path] = typer.Option(None, help="Where to write the new certificate (default: over the old one)."),
    directory: Path = CaDirOpt,
) -> None:
    """A new certificate for the same key, name, role and organisation, taken from the CA's own
    records (not from what the certificate claims). Only the certificate is needed, never the key."""
    from datawharf.pki import Authority, identity_of, load_certificate

    source = certificate / "cert.pem" if certificate.is_dir() else certificate
    target = out or source
    try:
        try:
            old = source.read_bytes()
        except OSError as exc:
            raise WharfError(f"cannot read {source}: {exc.strerror or exc}") from None
        new = Authority(directory).renew(old, days=days)
        target.write_bytes(new)
    except WharfError as exc:
        _fail(exc)
        return
    ident = identity_of(load_certificate(new))
    until = datetime.fromtimestamp(ident.not_after, timezone.utc).strftime("%Y-%m-%d")
    typer.echo(f"renewed {ident} until {until}: {target}")


@ca_app.command("revoke")
def ca_revoke(
    name: str = typer.Argument(..., help="A name (every live certificate of it) or one serial in hex."),
    reason: str = typer.Option("", help="Why, for the record."),
    directory: Path = CaDirOpt,
) -> None:
    """Revoke and rewrite crl.pem; gateways and holders reading it refuse the certificate at once."""
    from datawharf.pki import Authority

    try:
        gone = Authority(directory).revoke(name, reason=reason)
    except WharfError as exc:
        _fail(exc)
        return
    for r in gone:
        typer.echo(f"revoked {r.role} {r.name} serial {r.serial:x}")
    typer.echo(f"publish {directory / 'crl.pem'} to the gateway (--crl) and holders (crl = ...)")


@ca_app.command("list")
def ca_list(directory: Path = CaDirOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every certificate issued: name, role, organisation, serial, expiry, revocation."""
    from datawharf.pki import Authority

    try:
        issued = Authority(directory).issued()
    except WharfError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps([r.__dict__ | {"serial": f"{r.serial:x}"} for r in issued]))
        return
    now = time.time()
    for r in issued:
        state = "revoked" if r.revoked_at else ("expired" if r.not_after < now else "valid")
        until = datetime.fromtimestamp(r.not_after, timezone.utc).strftime("%Y-%m-%d")
        typer.echo(f"{r.serial:040x}  {r.role:8}  {r.name:20}  {r.organisation:20}  until {until}  {state}")


# ------------------------------------------------------------------ audit
audit_app = typer.Typer(help="The gateway's ledger: export it, verify it, read one job's history.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _ledger_lines(data_dir: Path, store: str = "sqlite") -> list[str]:
    from gateway.store import missing_table, open_reader

    db, name = open_reader(store, data_dir)
    try:
        return [row[0] for row in db.execute("SELECT entry FROM ledger ORDER BY seq")]
    except Exception as exc:
        if missing_table(exc):
            raise WharfError(f"{name} holds no ledger ({exc}); it was written by an older gateway") from None
        raise
    finally:
        db.close()


StoreOpt = typer.Option("sqlite", "--store", envvar="WHARF_STORE",
                        help="The gateway's store: sqlite (in --data-dir) or its postgresql:// URL.")


@audit_app.command("export")
def audit_export(
    out: Path = typer.Option(..., "--out", "-o", help="The JSON-lines file to write."),
    data_dir: Path = typer.Option(Path("wharf-data"), envvar="WHARF_DATA_DIR", help="The gateway's data directory."),
    store: str = StoreOpt,
) -> None:
    """Write the ledger, one signed entry per line, for anyone to verify and publish."""
    from datawharf.ledger import parse_lines

    try:
        lines = _ledger_lines(data_dir, store)
        entries = list(parse_lines(lines))
    except WharfError as exc:
        _fail(exc)
        return
    out.write_text("".join(line + "\n" for line in lines))
    head = entries[-1] if entries else None
    typer.echo(f"wrote {len(lines)} entries to {out}" + (f"; head {head.seq} {head.hash}" if head else ""))


@audit_app.command("verify")
def audit_verify(
    ledger: Path = typer.Argument(..., help="A file from `wharf audit export`."),
    ca: Optional[Path] = typer.Option(None, help="The exchange's ca.pem: also check the ledger key's binding and "
                                                 "every buyer's and holder's signature inside the entries."),
    receipts: list[Path] = typer.Option([], "--receipts", help="A holder's receipts.jsonl (or its state "
                                        "directory): check the ledger agrees with what it witnessed (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check the chain and every signature; a changed, missing or moved entry is named."""
    from datawharf.ledger import LedgerError, check_witness, parse_lines, verify
    from datawharf.pki import TrustStore
    from parties.receipts import read_receipts

    witnessed = 0
    try:
        trust = TrustStore.load(ca) if ca is not None else None
        try:
            text = ledger.read_text()
        except OSError as exc:
            raise WharfError(f"cannot read {ledger}: {exc.strerror or exc}") from None
        entries = list(parse_lines(text.splitlines()))
        report = verify(entries, trust=trust)
        for path in receipts:
            try:
                witnessed += check_witness(entries, read_receipts(path), holder=str(path))
            except (OSError, ValueError) as exc:
                raise WharfError(f"cannot read the receipts {path}: {exc}") from None
    except LedgerError as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "entry": exc.seq, "error": exc.message}))
            raise typer.Exit(1)
        _fail(exc)
        return
    except WharfError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps({"ok": True, "entries": report.entries, "jobs": len(report.jobs),
                               "head": report.head, "bound_to_ca": report.bound, "signatures": report.signatures,
                               "receipts": witnessed}))
        return
    typer.echo(f"ledger verifies: {report.entries} entries, {len(report.jobs)} jobs, head {report.head}")
    if ca is not None:
        typer.echo(f"  ledger key vouched for by a gateway certificate of the CA: {'yes' if report.bound else 'no'}; "
                   f"{report.signatures} signatures of buyers, holders and reviewers checked")
    else:
        typer.echo("  (pass --ca ca.pem to check the gateway's, buyers' and holders' certificates too)")
    if receipts:
        typer.echo(f"  {witnessed} holder receipts agree with the ledger")


@audit_app.command("show")
def audit_show(
    job_id: str = typer.Argument(..., help="The job whose history to print."),
    data_dir: Path = typer.Option(Path("wharf-data"), envvar="WHARF_DATA_DIR", help="The gateway's data directory."),
    ledger: Optional[Path] = typer.Option(None, help="Read this export instead of the gateway's store."),
    store: str = StoreOpt,
) -> None:
    """One job's history from the ledger, as a person reads it."""
    from datawharf.ledger import parse_lines

    try:
        lines = ledger.read_text().splitlines() if ledger is not None else _ledger_lines(data_dir, store)
        entries = [e for e in parse_lines(lines) if e.fields.get("job_id") == job_id]
    except (WharfError, OSError) as exc:
        _fail(exc if isinstance(exc, WharfError) else WharfError(str(exc)))
        return
    if not entries:
        _fail(WharfError(f"the ledger has no entry for job {job_id}"))
    for e in entries:
        when = datetime.fromtimestamp(e.at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        who = e.fields.get("party") or e.fields.get("buyer") or ""
        extra = []
        if "buyer_signature" in e.fields:
            extra.append("signed by the buyer")
        if "receipt_signature" in e.fields:
            extra.append(f"receipt over {str(e.fields.get('content_digest', ''))[:16]}…")
        if "result_digest" in e.fields:
            extra.append(f"result {str(e.fields['result_digest'])[:16]}…")
        if "method" in e.fields:
            extra.append(str(e.fields["method"]))
        detail = str(e.fields.get("detail", ""))
        typer.echo(f"{e.seq:>6}  {when}  {e.kind:<20} {who:<16} {detail}" + (f"  [{'; '.join(extra)}]" if extra else ""))


# ------------------------------------------------------------------ party
@party_app.command("serve")
def party_serve(
    config: Path = typer.Option(..., "--config", "-c", envvar="WHARF_PARTY_CONFIG",
                                help="The party's TOML file (see README)."),
    log_level: str = LogLevelOpt,
    log_format: LogFormat = LogFormatOpt,
) -> None:
    """Connect to the gateway and answer tasks under this holder's policy.

    Every option can also be set by the environment variable shown beside it.
    """
    from parties.config import load_party_config
    from parties.node import PartyNode

    # The holder's own state (OPRF keys and tables) is readable by it alone.
    os.umask(0o077)
    configure_logging(log_level, log_format)
    try:
        cfg = load_party_config(config)
    except WharfError as exc:
        _fail(exc)
        return

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await PartyNode(cfg).run(stop)

    try:
        asyncio.run(main())
    except WharfError as exc:
        _fail(exc)


@party_app.command("receipts")
def party_receipts(
    config: Path = typer.Option(..., "--config", "-c", envvar="WHARF_PARTY_CONFIG", help="The party's TOML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the receipts as JSON lines."),
) -> None:
    """Every use of this holder's data it witnessed: which buyer computed what on which dataset, when,
    and what it contributed or refused, with the ledger head the gateway stated."""
    from parties.config import load_party_config

    try:
        cfg = load_party_config(config)
    except WharfError as exc:
        _fail(exc)
        return

    def detail(r: dict[str, Any]) -> str:
        if r["kind"] == "task":
            head = r.get("head") or {}
            return (f"{r.get('buyer', '')}: {r.get('what', '')} on {r.get('dataset', '')}  "
                    f"(ledger head {head.get('seq', '-')})")
        if r["kind"] == "contributed":
            return f"digest {str(r.get('content_digest', ''))[:16]}…"
        return str(r.get("reason", ""))

    assert cfg.state_dir is not None
    _print_receipts(cfg.state_dir, as_json, detail)


def _print_receipts(state_dir: Path, as_json: bool, detail: Callable[[dict[str, Any]], str]) -> None:
    """A node's receipts.jsonl, a line each (``detail`` says what each kind shows), or as JSON lines."""
    from parties.receipts import FILE, read_receipts

    path = state_dir / FILE
    if not path.exists():
        typer.echo(f"no receipts yet ({path})")
        return
    for r in read_receipts(path):
        if as_json:
            typer.echo(json.dumps(r, sort_keys=True))
            continue
        when = datetime.fromtimestamp(float(r.get("at", 0)), timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{when}  {r['kind']:<11} {r.get('job_id', '')}  {detail(r)}")


# ------------------------------------------------------------------- link
link_app = typer.Typer(help="Link exchanges: a buyer here computes on another exchange's holders.",
                       no_args_is_help=True)
app.add_typer(link_app, name="link")


@link_app.command("serve")
def link_serve(
    config: Path = typer.Option(..., "--config", "-c", envvar="WHARF_LINK_CONFIG",
                                help="The link's TOML file (see links/config.py and the README)."),
    log_level: str = LogLevelOpt,
    log_format: LogFormat = LogFormatOpt,
) -> None:
    """Be a party of exchange B whose answers are jobs at exchange A, run as one of A's buyers.

    Needs a party certificate of B's CA and a buyer certificate of A's CA. Every option can also
    be set by the environment variable shown beside it.
    """
    from links.config import load_link_config
    from links.node import LinkNode

    os.umask(0o077)  # its receipts are its operator's alone
    configure_logging(log_level, log_format)
    try:
        cfg = load_link_config(config)
        node = LinkNode(cfg)
    except WharfError as exc:
        _fail(exc)
        return

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await node.run(stop)

    try:
        asyncio.run(main())
    except WharfError as exc:
        _fail(exc)


@link_app.command("submit")
def link_submit(
    config: Path = typer.Option(..., "--config", "-c", envvar="WHARF_LINK_CONFIG", help="The link's TOML file."),
    dataset: str = typer.Option(..., help="One of A's datasets the link offers."),
    title: str = typer.Option(..., help="What B's buyers see first."),
    description: str = typer.Option("", help="Default: the dataset, A's name and the holders behind the link."),
    classification: str = typer.Option("internal", help="internal, sensitive or public (needs an authority)."),
    personal_data: str = typer.Option("yes", "--personal-data", help="yes or no."),
    price_per_job: str = typer.Option(..., help="Exact decimal B's buyers pay per job, e.g. 45.00."),
    currency: str = typer.Option("CNY", help="ISO 4217 code."),
    pricing: str = typer.Option("per-holder", help="per-holder or shared."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Submit the link's listing of one of A's datasets for review at B (signed with its B certificate)."""
    from links.config import load_link_config
    from links.market import submit_listing

    if personal_data not in ("yes", "no"):
        _fail(WharfError(f"--personal-data {personal_data!r}: say yes or no"))
        return
    try:
        out = submit_listing(load_link_config(config), dataset, title=title, description=description,
                             classification=classification, personal_data=personal_data == "yes",
                             price_per_job=price_per_job, currency=currency, pricing=pricing)
    except WharfError as exc:
        _fail(exc, flags={"price_per_job": "--price-per-job", "title": "--title", "currency": "--currency"})
        return
    if as_json:
        typer.echo(json.dumps({"listing_id": out.listing_id, "holder": out.holder, "dataset": out.dataset,
                               "state": out.state, "version": out.version}))
        return
    typer.echo(f"submitted {out.listing_id}: {out.holder}/{out.dataset} v{out.version} is {out.state}")


@link_app.command("receipts")
def link_receipts(
    config: Path = typer.Option(..., "--config", "-c", envvar="WHARF_LINK_CONFIG", help="The link's TOML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the receipts as JSON lines."),
) -> None:
    """The link's own record: each task from B, and for each relayed one the job at A that answered it
    (with A's contributors), so the two exchanges' ledgers and statements can be reconciled."""
    from links.config import load_link_config

    try:
        cfg = load_link_config(config)
    except WharfError as exc:
        _fail(exc)
        return

    def detail(r: dict[str, Any]) -> str:
        if r["kind"] == "contributed":
            return (f"relayed job {r.get('remote_job', '')} ({', '.join(r.get('remote_contributors', []))}), "
                    f"digest {str(r.get('content_digest', ''))[:16]}…")
        if r["kind"] == "task":
            return f"{r.get('buyer', '')} on {r.get('dataset', '')}"
        return str(r.get("reason", r.get("grant", "")))

    assert cfg.state_dir is not None
    _print_receipts(cfg.state_dir, as_json, detail)


link_grant_app = typer.Typer(help="Grants B's buyers ask of the link (with grants = \"required\" in link.toml).",
                             no_args_is_help=True)
link_app.add_typer(link_grant_app, name="grant")
LinkConfigOpt = typer.Option(..., "--config", "-c", envvar="WHARF_LINK_CONFIG", help="The link's TOML file.")


def _link_grant(action: str, config: Path, grant_id: str = "", reason: str = "", state: str = "",
                as_json: bool = False) -> None:
    from links import grants
    from links.config import load_link_config

    try:
        cfg = load_link_config(config)
        if action == "list":
            with grants.client(cfg) as client:
                found = [_grant_json(g) for g in client.list(state)]
        else:
            decided = (grants.approve(cfg, grant_id) if action == "approve" else
                       getattr(grants, action)(cfg, grant_id, reason))
            found = [_grant_json(decided)]
    except WharfError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps({"grants": found}))
        return
    for g in found:
        typer.echo(_grant_line(g))
    if not found:
        typer.echo("no grants")


@link_grant_app.command("list")
def link_grant_list(config: Path = LinkConfigOpt, state: str = typer.Option("", help="pending, approved, ..."),
                    as_json: bool = typer.Option(False, "--json")) -> None:
    """Grants B's buyers asked of the link."""
    _link_grant("list", config, state=state, as_json=as_json)


@link_grant_app.command("approve")
def link_grant_approve(grant_id: str = typer.Argument(...), config: Path = LinkConfigOpt,
                       as_json: bool = typer.Option(False, "--json")) -> None:
    """Sign the grant with the link's B certificate; the link enforces it from its own copy."""
    _link_grant("approve", config, grant_id, as_json=as_json)


@link_grant_app.command("reject")
def link_grant_reject(grant_id: str = typer.Argument(...), reason: str = typer.Option(..., help="Told to the buyer."),
                      config: Path = LinkConfigOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Refuse a pending grant, with a reason the buyer sees."""
    _link_grant("reject", config, grant_id, reason, as_json=as_json)


@link_grant_app.command("revoke")
def link_grant_revoke(grant_id: str = typer.Argument(...), reason: str = typer.Option(..., help="Told to the buyer."),
                      config: Path = LinkConfigOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """End a grant: the link refuses its next task; B's gateway and the buyer are told."""
    _link_grant("revoke", config, grant_id, reason, as_json=as_json)


grant_app = typer.Typer(help="Data-use grants: buyers request, holders approve, reject and revoke.",
                        no_args_is_help=True)
app.add_typer(grant_app, name="grant")
ConfigOpt = typer.Option(None, "--config", "-c", help="A holder's TOML: act as that holder (its certificate).")


def _grant_client(config: Optional[Path], gateway: str, identity: Optional[Path], insecure_as: Optional[str]) -> Any:
    """A holder's connection when --config is given, else the buyer's (or operator's)."""
    from buyers.grants import GrantClient
    from parties.config import load_party_config

    if config is None:
        if identity is None and insecure_as is None:
            raise _usage("give --identity (or --insecure-as), or --config to act as a holder")
        return GrantClient(gateway, identity, caller=insecure_as or "", insecure=identity is None)
    cfg = load_party_config(config)
    return GrantClient(cfg.gateway, cfg.credentials(), caller=cfg.name, insecure=cfg.insecure)


def _usage(message: str) -> WharfError:
    from datawharf.errors import InvalidArgument

    return InvalidArgument(message)


def _grant_json(g: Any) -> dict[str, Any]:
    from buyers.grants import STATE_NAMES

    terms = json.loads(g.terms) if g.terms else {}
    return {"id": g.id, "buyer": g.buyer, "party": g.party, "state": STATE_NAMES.get(g.state, "unknown"),
            "reason": g.reason, "dataset": terms.get("dataset"), "purpose": terms.get("purpose"),
            "statistics": terms.get("statistics"), "until": terms.get("until"), "max_jobs": terms.get("max_jobs"),
            "budget": terms.get("budget"), "signed": bool(g.signature)}


def _grant_line(g: dict[str, Any]) -> str:
    until = datetime.fromtimestamp(g["until"], timezone.utc).strftime("%Y-%m-%d") if g["until"] else "?"
    budget = f", rho {g['budget']:g}" if g["budget"] else ""
    why = f" — {g['reason']}" if g["reason"] else ""
    return (f"{g['id']}  {g['state']:<8} {g['buyer']} → {g['party']}  {g['dataset']}: "
            f"{','.join(g['statistics'] or [])} until {until}, {g['max_jobs']} jobs{budget}; "
            f"purpose {g['purpose']!r}{why}")


@grant_app.command("request")
def grant_request(
    dataset: str = typer.Option(..., help="Dataset name from `wharf catalog`."),
    purpose: str = typer.Option(..., help="What the data is for; recorded with every job under the grant."),
    statistics: str = typer.Option(..., help="Comma-separated: sum, count, mean, variance, histogram, psi, "
                                              "psi-cardinality, psi-sum, psi-unbalanced."),
    until: str = typer.Option(..., help="Last day of the grant, YYYY-MM-DD (UTC)."),
    max_jobs: int = typer.Option(..., min=1, help="Jobs the grant allows in all."),
    budget: float = typer.Option(0.0, min=0.0, help="Privacy budget (zCDP rho) the grant allows in all; 0: none "
                                                    "of its own."),
    party: list[str] = typer.Option([], "--party", help="Ask only these holders (repeatable)."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Ask the holders of a dataset for a grant: one request per holder, pending until each decides."""
    try:
        day = datetime.strptime(until, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        _fail(_usage(f"--until {until!r} is not a date YYYY-MM-DD"), 2)
        return
    try:
        with _grant_client(None, gateway, identity, insecure_as) as client:
            made = client.request(dataset, purpose, statistics.split(","), day.timestamp() + 86400, max_jobs,
                                  budget=budget, parties=party)
    except WharfError as exc:
        _fail(exc)
        return
    out = [_grant_json(g) for g in made]
    if as_json:
        typer.echo(json.dumps({"grants": out}))
        return
    for g in out:
        typer.echo(_grant_line(g))


@grant_app.command("list")
def grant_list(
    config: Optional[Path] = ConfigOpt,
    state: str = typer.Option("", help="pending, approved, rejected or revoked (default all)."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Grants: a buyer's own, those addressed to a holder (--config), or all (an operator)."""
    try:
        with _grant_client(config, gateway, identity, insecure_as) as client:
            found = [_grant_json(g) for g in client.list(state)]
    except WharfError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps({"grants": found}))
        return
    if not found:
        typer.echo("no grants" + (f" {state}" if state else ""))
    for g in found:
        typer.echo(_grant_line(g))


@grant_app.command("approve")
def grant_approve(grant_id: str = typer.Argument(..., help="The grant's id."),
                  config: Path = typer.Option(..., "--config", "-c", help="Your party TOML.")) -> None:
    """Sign the grant with your certificate; your node enforces it from your own copy."""
    from parties.config import load_party_config
    from parties.grants import GrantBook

    try:
        cfg = load_party_config(config)
        assert cfg.state_dir is not None
        book = GrantBook(cfg.state_dir)
        if book.state(grant_id) in ("REVOKED", "REJECTED"):
            raise _usage(f"grant {grant_id} was {str(book.state(grant_id)).lower()} here; the buyer must ask again")
        with _grant_client(config, "", None, None) as client:
            grant = client.find(grant_id)
            decided, terms, signature = client.approve(grant)
        book.approve(terms, signature)
        book.close()
    except WharfError as exc:
        _fail(exc)
        return
    # What was signed, from the terms themselves rather than the gateway's summary.
    line = _grant_json(decided)
    line.update(json.loads(terms.canonical()))
    typer.echo(_grant_line(line))


@grant_app.command("reject")
def grant_reject(grant_id: str = typer.Argument(...), reason: str = typer.Option(..., help="Told to the buyer."),
                 config: Path = typer.Option(..., "--config", "-c", help="Your party TOML.")) -> None:
    """Refuse a pending grant, with a reason the buyer sees."""
    from datawharf.grants import GrantTerms
    from parties.config import load_party_config
    from parties.grants import GrantBook

    try:
        cfg = load_party_config(config)
        with _grant_client(config, "", None, None) as client:
            decided = client.reject(grant_id, reason)
    except WharfError as exc:
        _fail(exc)
        return
    assert cfg.state_dir is not None
    book = GrantBook(cfg.state_dir)
    book.reject(GrantTerms.parse(decided.terms), reason)
    book.close()
    typer.echo(_grant_line(_grant_json(decided)))


@grant_app.command("revoke")
def grant_revoke(grant_id: str = typer.Argument(...), reason: str = typer.Option(..., help="Told to the buyer."),
                 config: Path = typer.Option(..., "--config", "-c", help="Your party TOML.")) -> None:
    """End an approved grant: your node refuses its next task; the gateway and the buyer are told."""
    from parties.config import load_party_config
    from parties.grants import GrantBook

    try:
        cfg = load_party_config(config)
    except WharfError as exc:
        _fail(exc, 2)
        return
    assert cfg.state_dir is not None
    book = GrantBook(cfg.state_dir)
    # Locally first: the node stops honouring it even if the gateway cannot be reached.
    known = book.revoke(grant_id, reason)
    book.close()
    try:
        with _grant_client(config, "", None, None) as client:
            decided = client.revoke(grant_id, reason)
    except WharfError as exc:
        if known:
            typer.secho(f"revoked here (your node refuses its tasks); the gateway was not told: {exc.message}",
                        fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(1)
        _fail(exc)
        return
    typer.echo(_grant_line(_grant_json(decided)))


@app.command("budget")
def budget(
    config: Path = typer.Option(..., "--config", "-c", help="The party's TOML file."),
    buyer: Optional[str] = typer.Option(None, help="Only this buyer."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """What each buyer has spent and has left of this holder's budgets (privacy and PSI), this period."""
    from parties.budget import BudgetBook
    from parties.config import ConfigError, load_party_config
    from parties.psi_runner import psi_limits
    from parties.runner import privacy_limit

    try:
        cfg = load_party_config(config)
    except ConfigError as exc:
        _fail(exc, 2)
        return
    assert cfg.state_dir is not None
    book = BudgetBook(cfg.state_dir)
    datasets = {d.name: d for d in cfg.datasets}
    rows = []
    for who, name in book.buyers():
        if (buyer is not None and who != buyer) or name not in datasets:
            continue
        d = datasets[name]
        limits = ([privacy_limit(d)] if d.policy.dp.enabled else []) + list(psi_limits(d))
        for limit in limits:
            b = book.balance(who, name, limit)
            rows.append({"buyer": who, "dataset": name, "resource": limit.resource, "limit": b.limit,
                         "spent": b.spent, "remaining": b.remaining,
                         "renews_at": datetime.fromtimestamp(b.renews_at, timezone.utc).isoformat()})
    book.close()
    if as_json:
        typer.echo(json.dumps({"party": cfg.name, "budgets": rows}))
        return
    if not rows:
        typer.echo("no buyer has spent anything yet" + (f" ({buyer})" if buyer else ""))
    for r in rows:
        typer.echo(f"{r['buyer']:<20} {r['dataset']:<16} {r['resource']:<9} spent {r['spent']:<10g} "
                   f"of {r['limit']:<10g} left {r['remaining']:<10g} renews {r['renews_at'][:16]}")


@party_app.command("check")
def party_check(config: Path = typer.Option(..., "--config", "-c", help="The party's TOML file.")) -> None:
    """Validate the config and read every dataset once, without connecting."""
    from parties.config import load_party_config
    from parties.runner import Runner

    try:
        cfg = load_party_config(config)
        for listing in Runner(cfg).listings():
            typer.echo(f"{listing.name}: ~{listing.approx_rows} rows, columns "
                       + ", ".join(f"{c.name}:{c.kind.value}" for c in listing.columns))
    except WharfError as exc:
        _fail(exc)


# ------------------------------------------------------------------ buyer
@app.command("catalog")
def catalog(
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Datasets listed by holders: names, holders, columns, approximate rows."""

    try:
        with _client(gateway, identity, insecure_as) as client:
            items = client.catalog()
    except WharfError as exc:
        _fail(exc)
        return
    foreign = _foreign_listings(gateway, identity)
    if as_json:
        typer.echo(json.dumps({"foreign": foreign, "datasets": [
            {
                "dataset": i.dataset,
                "holders": list(i.holders),
                "holders_online": list(i.holders_online),
                "columns": [{"name": c.name, "type": c.kind.value, "decimals": c.decimals, "roles": c.roles,
                             "bounds": [str(b) for b in c.bounds] if c.bounds else None} for c in i.columns],
                "approx_rows": i.approx_rows,
                "privacy": {h: _terms_json(t) for h, t in sorted(i.terms.items())},
            }
            for i in items
        ]}))
        return
    if not items:
        typer.echo("no datasets listed (no holder has connected yet)")
    for i in items:
        online = f"{len(i.holders_online)}/{len(i.holders)} online"
        typer.echo(f"{i.dataset}  ~{i.approx_rows} rows  holders: {', '.join(i.holders)} ({online})")
        for c in i.columns:
            kind = c.kind.value + (f"({c.decimals})" if c.kind.value == "decimal" else "")
            bounds = f"  bounds [{c.bounds[0]}, {c.bounds[1]}]" if c.bounds else ""
            typer.echo(f"    {c.name:<20} {kind:<12} {c.roles}{bounds}")
        for holder, t in sorted(i.terms.items()):
            typer.echo(f"    {holder}: {_terms_text(t)}")
    if foreign:
        typer.echo("from other exchanges (imported listings; `wharf listing list --foreign` for more):")
    for f in foreign:
        reach = "runnable here through a link" if f.get("runnable_here") else "not reachable from here"
        typer.echo(f"  {f['dataset']}  at {f['holder']} of {f['home_exchange']}: {f['title']}; "
                   f"{f['price_per_job']} {f['currency']} per job; {reach}")


def _foreign_listings(gateway: str, identity: Optional[Path]) -> list[dict[str, Any]]:
    """Listings imported from other exchanges, as the market service shows them; none on an insecure
    exchange or where the caller may not read them."""
    if identity is None:
        return []
    from datawharf.pki import Credentials
    from datawharf.v1 import market_pb2
    from wharf.market_cli import _call, _stub, listing_json

    try:
        ch, stub = _stub(gateway, Credentials.load(identity))
        with ch:
            out = _call(lambda: stub.ListListings(market_pb2.ListListingsRequest(foreign=True, limit=200)))
    except WharfError:
        return []
    return [listing_json(x) for x in out.listings]


def _terms_json(t: "PrivacyTerms") -> dict[str, Any]:
    if not t.dp:
        return {"differential_privacy": False}
    return {"differential_privacy": True, "budget_rho": t.budget, "period_days": t.period_days,
            "max_per_job": t.max_per_job, "default_per_job": t.default_per_job, "noise": t.noise}


def _terms_text(t: "PrivacyTerms") -> str:
    if not t.dp:
        return "no differential privacy (the holder opted out: exact answers)"
    return (f"differential privacy: rho {t.budget:g} per buyer every {t.period_days:g} days, at most "
            f"{t.max_per_job:g} per job (default {t.default_per_job:g}), {t.noise} noise")


def describe_encryption(params: PublicParams) -> dict[str, Any]:
    """The backend and its parameters, as shown in job status and results."""
    out: dict[str, Any] = {"backend": params.backend.value, "figures": params.length,
                           "max_contributors": params.max_contributors}
    if params.backend.value.startswith("paillier"):
        if params.paillier_n:
            out["key_bits"] = params.paillier_n.bit_length()
        if params.slot_bits:
            out["slot_bits"] = params.slot_bits
    else:
        out["poly_modulus_degree"] = params.poly_modulus_degree
        out["coeff_mod_bit_sizes"] = list(params.coeff_mod_bit_sizes)
        if params.plain_modulus:
            out["plain_modulus"] = params.plain_modulus
        if params.scale_bits:
            out["scale_bits"] = params.scale_bits
    return out


def _job_json(view: JobView) -> dict[str, Any]:
    from datawharf.model import PsiJob

    out: dict[str, Any] = {
        "job_id": view.job_id,
        "state": view.state,
        "reason": view.reason,
        "tasks": [{"party": t.party, "state": t.state, "reason": t.reason} for t in view.tasks],
    }
    if isinstance(view.spec, PsiJob):
        out["psi"] = {"kind": view.spec.kind, "dataset": view.spec.dataset, "key_column": view.spec.key_column,
                      "cardinality_only": view.spec.cardinality_only, "buyer_ids": view.spec.buyer_set_size,
                      "next_stage": view.next_stage}
    else:
        out["encryption"] = describe_encryption(view.spec.encryption)
    return out


def _num(v: Fraction | float) -> float:
    return float(v)


def _exact(v: Fraction | float) -> str:
    return exact_text(v) if isinstance(v, Fraction) else repr(v)


def _answer_json(answer: AggregateAnswer) -> dict[str, Any]:
    noisy = answer.noise is not None and answer.noise.private
    out: dict[str, Any] = {
        "statistic": answer.statistic,
        "precision": "exact" if answer.exact_backend else {"max_abs_error": answer.max_abs_error},
        "groups": [
            {
                "group": g.label,
                "value": [_num(v) for v in g.values] if len(g.values) > 1 else _num(g.values[0]),
                "exact": ([_exact(v) for v in g.values] if len(g.values) > 1 else _exact(g.values[0]))
                if answer.exact_backend else None,
                "rows": g.rows,
                "suppressed_by": list(g.suppressed_by),
                "interval95": [[iv.low, iv.high] if iv else None for iv in g.intervals] if g.intervals else None,
            }
            for g in answer.groups
        ],
    }
    if answer.scalar:
        out["value"] = answer.value
        out["exact"] = exact_text(answer.exact) if answer.exact_backend and not noisy else None
        out["rows"] = answer.rows
        iv = answer.groups[0].intervals[0] if answer.groups[0].intervals else None
        if iv is not None:
            out["noise_sd"], out["interval95"] = iv.sd, [iv.low, iv.high]
    n = answer.noise
    if n is not None:
        out["privacy"] = {"noise_sd": n.sd, "spent_rho": n.spent, "remaining_rho": n.remaining,
                          "renews_at": n.renews_at, "exact_holders": list(n.exact_holders)}
    return out


@job_app.command("aggregate")
def job_aggregate(
    dataset: str = typer.Option(..., help="Dataset name from `wharf catalog`."),
    column: str = typer.Option(..., help="Column to aggregate."),
    stat: str = typer.Option(..., help="sum, count, mean, variance (sample variance) or histogram."),
    where: Optional[str] = typer.Option(None, help="Filter, e.g. \"age >= 65 and department == 'cardiology'\"."),
    group_by: Optional[str] = typer.Option(None, help="One result per declared category of this column."),
    bins: Optional[str] = typer.Option(None, help="Histogram bin edges, e.g. 0,18,35,50,65,80,120 (bins are [a, b))."),
    backend: str = typer.Option("auto", help="auto, paillier, paillier-packed, bfv or ckks (see README)."),
    slot_bits: Optional[int] = typer.Option(None, help="paillier-packed: bits per value (default 64; 128 for variance)."),
    rho: Optional[float] = typer.Option(None, min=0.0, help="Privacy budget (zCDP rho) to spend at each holder "
                                        "that applies differential privacy; more is less noise. Default: each "
                                        "holder's own default per job (see `wharf catalog`)."),
    party: list[str] = typer.Option([], "--party", help="Ask only these holders (repeatable); waits for them if offline."),
    min_parties: int = typer.Option(1, min=1, help="Fail unless at least this many holders contribute."),
    timeout: int = typer.Option(120, min=1, help="Seconds before the job fails for lack of answers."),
    request_id: Optional[str] = typer.Option(None, help="Idempotency key: resubmitting it returns the same job."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the result."),
    keep: bool = typer.Option(False, "--keep", help="Store the job's keys in the keystore before waiting, so that "
                              "`wharf job result JOB_ID` can read the result from another process (Paillier only)."),
    detach: bool = typer.Option(False, "--detach", help="With --keep: submit, store the keys and print the job id."),
    keystore: Optional[Path] = KeystoreOpt,
) -> None:
    """Run an aggregation; the key pair is made and kept here, the result decrypted here."""
    from buyers.client import JobFailed, answered
    from datawharf.errors import InvalidArgument

    if detach and not keep:
        _fail(InvalidArgument("--detach needs --keep: without stored keys a detached job's result is lost"))
    store = _keystore(keystore) if keep else None
    if store is not None and backend in ("bfv", "ckks"):
        _fail(InvalidArgument(f"--keep stores Paillier jobs only; a {backend} job's keys cannot be kept yet "
                              "(use --backend paillier or paillier-packed)"))

    started = time.monotonic()
    show_progress = not as_json and sys.stderr.isatty()
    try:
        with _client(gateway, identity, insecure_as) as client:
            job = client.submit(
                dataset, column, stat, where=where, group_by=group_by, bins=bins, backend=backend,
                slot_bits=slot_bits, parties=party, min_parties=min_parties, timeout_s=timeout,
                request_id=request_id, rho=rho or None,
            )
            if store is not None:
                try:
                    store.save(job, gateway, where=where or "")
                except WharfError:
                    client.cancel(job.job_id)  # its result could never be read
                    raise
                if detach:
                    typer.echo(json.dumps({"job_id": job.job_id, "state": job.view.state}) if as_json else job.job_id)
                    return
            if show_progress:
                from rich.console import Console
                from rich.progress import Progress

                with Progress(transient=True, console=Console(stderr=True)) as progress:
                    bar = progress.add_task(f"{job.job_id}", total=len(job.view.tasks))
                    for view in client.watch(job, timeout_s=timeout + 30):
                        progress.update(bar, completed=answered(view),
                                        description=f"{job.job_id} {view.state.lower()}")
            answer = client.result(job, timeout_s=timeout + 30)
    except JobFailed as exc:
        _print_job_failed(exc, as_json)
    except WharfError as exc:
        _fail(exc)
        return
    _print_answer(answer, job.spec, where or "", time.monotonic() - started, as_json)


def _print_job_failed(exc: "JobFailed", as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_job_json(exc.view)))
    else:
        typer.secho(f"job {exc.view.job_id} {exc.view.state}: {exc.view.reason}", fg=typer.colors.RED, err=True)
        for t in exc.view.tasks:
            typer.echo(f"  {t.party}: {t.state}" + (f" — {t.reason}" if t.reason else ""), err=True)
    raise typer.Exit(3)


def _print_answer(answer: "AggregateAnswer", spec: "AggregateJob", where: str, seconds: float, as_json: bool) -> None:
    """An aggregation's answer, as `job aggregate` and `job result` print it."""
    dataset, column = spec.dataset, spec.column
    group_by = spec.group_by.column if spec.group_by is not None else ""
    if as_json:
        out = _job_json(answer.view)
        out["encryption"] = describe_encryption(spec.encryption)
        out.update(_answer_json(answer))
        out.update(dataset=dataset, column=column, where=where, group_by=group_by,
                   contributors=list(answer.contributors), seconds=round(seconds, 3))
        typer.echo(json.dumps(out))
        return
    filt = f" where {where}" if where else ""
    by = f" by {group_by}" if group_by else ""
    typer.echo(f"{answer.statistic} of {column} over {dataset}{filt}{by}")
    enc = describe_encryption(spec.encryption)
    precision = "exact" if answer.exact_backend else f"|error| <= {answer.max_abs_error:.2g}"
    typer.echo(f"  backend: {enc.pop('backend')} ({', '.join(f'{k}={v}' for k, v in enc.items())}); {precision}")
    noise = answer.noise if answer.noise is not None and answer.noise.private else None
    if answer.scalar:
        exact = answer.exact_backend and noise is None
        shown = f"{answer.value:.10g}" + (f"   (exact {exact_text(answer.exact)})" if exact else "")
        typer.echo(f"  value:   {shown}")
        iv = answer.groups[0].intervals[0] if answer.groups[0].intervals else None
        if iv is not None:
            typer.echo(f"  95% interval: [{iv.low:.6g}, {iv.high:.6g}]   (noise sd {iv.sd:.4g})")
        if answer.rows is not None:
            typer.echo(f"  rows:    {answer.rows}" + ("   (noisy)" if noise is not None else ""))
    else:
        for g in answer.groups:
            vals = ", ".join(f"{float(v):.10g}" for v in g.values[:8]) + (" ..." if len(g.values) > 8 else "")
            extra = f"  rows {g.rows}" if g.rows is not None else ""
            held = f"  (withheld by {', '.join(g.suppressed_by)})" if g.suppressed_by else ""
            ivs = [iv for iv in g.intervals[:1] if iv is not None]
            pm = f"  ±{(ivs[0].high - ivs[0].low) / 2:.4g}" if ivs else ""
            typer.echo(f"  {g.label or 'all':<24} {vals}{pm}{extra}{held}")
    if noise is not None:
        sd = ", ".join(f"{k} {v:.4g}" for k, v in noise.sd.items())
        typer.echo(f"  privacy: differentially private; noise sd per figure: {sd}")
        for holder, spent in sorted(noise.spent.items()):
            renews = time.strftime("%Y-%m-%d", time.gmtime(noise.renews_at[holder]))
            typer.echo(f"    {holder}: spent rho {spent:g}, {noise.remaining[holder]:g} left until {renews}")
        if noise.exact_holders:
            typer.echo(f"    exact (opted out): {', '.join(noise.exact_holders)}")
    typer.echo(f"  holders: {len(answer.contributors)} contributed ({', '.join(answer.contributors)})")
    for t in answer.view.tasks:
        if t.state != TaskState.CONTRIBUTED:
            typer.echo(f"  {t.party}: {t.state} — {t.reason}")
    typer.echo(f"  job {answer.job_id} in {seconds:.2f} s")


def _keystore(directory: Optional[Path]) -> "Keystore":
    """The buyer's keystore; the passphrase from WHARF_KEYSTORE_PASSPHRASE, else asked for (hidden)."""
    from buyers.keystore import Keystore

    passphrase = os.environ.get("WHARF_KEYSTORE_PASSPHRASE") or typer.prompt("Keystore passphrase", hide_input=True)
    try:
        return Keystore(directory or Keystore.default_dir(), passphrase)
    except WharfError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits


@job_app.command("result")
def job_result(
    job_id: str = typer.Argument(..., help="A job submitted with --keep."),
    keystore: Optional[Path] = KeystoreOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
    timeout: float = typer.Option(300, min=1, help="Seconds to wait for the job to finish."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the result."),
) -> None:
    """Fetch and decrypt a stored job's result at the gateway it was sent to, with the keys from the keystore."""
    from buyers.client import JobFailed

    started = time.monotonic()
    try:
        stored = _keystore(keystore).load(job_id)
        with _client(stored.gateway, identity, insecure_as) as client:
            answer = client.result(stored.job, timeout_s=timeout)
    except JobFailed as exc:
        _print_job_failed(exc, as_json)
    except WharfError as exc:
        _fail(exc)
        return
    _print_answer(answer, stored.job.spec, stored.where, time.monotonic() - started, as_json)


@job_app.command("list")
def job_list(
    keystore: Optional[Path] = KeystoreOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
) -> None:
    """Your stored jobs with their state at the gateway (or "unknown: <reason>" when it cannot say)."""
    store = _keystore(keystore)
    try:
        ids = store.job_ids()
    except WharfError as exc:
        _fail(exc)
        return
    for job_id in ids:
        try:
            stored = store.load(job_id)
        except WharfError as exc:
            typer.echo(f"{job_id}  unknown: {exc.message}")
            continue
        spec = stored.job.spec
        try:
            with _client(stored.gateway, identity, insecure_as) as client:
                state = str(client.status(job_id).state)
        except WharfError as exc:
            state = f"unknown: {exc.message}"
        typer.echo(f"{job_id}  {state}  {spec.statistic.value} of {spec.column} over {spec.dataset}"
                   f"  at {stored.gateway}")
    if not ids:
        typer.echo(f"(no stored jobs in {store.directory})")


@job_app.command("forget")
def job_forget(
    job_id: str = typer.Argument(..., help="A stored job."),
    keystore: Optional[Path] = KeystoreOpt,
) -> None:
    """Delete a stored job's keys (overwritten, then unlinked): its result can no longer be decrypted here."""
    from buyers.keystore import Keystore

    directory = keystore or Keystore.default_dir()
    try:
        Keystore(directory, None).forget(job_id)
    except WharfError as exc:
        _fail(exc)
    typer.echo(f"forgot job {job_id}")


def read_ids(path: Path, column: str) -> list[str]:
    """The ID column of a CSV file, as text; errors name the file and column."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from datawharf.errors import InvalidArgument

    if not path.is_file():
        raise InvalidArgument(f"{path}: no such file")
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={column: pa.string()}))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidArgument(f"{path}: cannot read it as CSV: {exc}") from None
    if column not in table.column_names:
        raise InvalidArgument(f"{path} has no column {column!r} (columns: {', '.join(table.column_names)})")
    values = table.column(column).to_pylist()
    empty = [i for i, v in enumerate(values) if v is None or not str(v).strip()]
    if empty:
        raise InvalidArgument(f"{path}: row {empty[0] + 2} has an empty {column!r}; remove or fill it")
    return [str(v) for v in values]


def _psi_command(mode: str, ids: Path, id_column: str, dataset: str, key_column: str, value_column: list[str],
                 cardinality_only: bool, output: Optional[Path], party: list[str], timeout: int,
                 gateway: str, identity: Optional[Path], insecure_as: Optional[str], as_json: bool,
                 rho: Optional[float] = None, at_least: Optional[int] = None) -> None:
    from buyers.client import JobFailed

    # One --party: the holder; several: a multi-holder job over IDs at --at-least of them (all by default).
    single = party[0] if len(party) == 1 else None
    holders = party if len(party) > 1 else []

    started = time.monotonic()
    show = not as_json and sys.stderr.isatty()
    progress = None
    bar_ctx = None
    if show:
        from rich.console import Console
        from rich.progress import Progress

        bar_ctx = Progress(transient=True, console=Console(stderr=True))
        bars: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = bar_ctx.add_task(stage, total=total)  # type: ignore[union-attr]
            bar_ctx.update(bars[stage], completed=done)  # type: ignore[union-attr]

        bar_ctx.start()
    try:
        values = read_ids(ids, id_column)
        with _client(gateway, identity, insecure_as) as client:
            answer = client.psi(dataset, key_column, values, mode=mode, cardinality_only=cardinality_only,
                                value_columns=value_column, party=single, timeout_s=timeout, progress=progress,
                                rho=rho or None, parties=holders, at_least=at_least)
    except JobFailed as exc:
        if bar_ctx:
            bar_ctx.stop()
        if as_json:
            typer.echo(json.dumps({"job_id": exc.view.job_id, "state": exc.view.state, "reason": exc.view.reason}))
        else:
            typer.secho(f"job {exc.view.job_id} {exc.view.state}: {exc.view.reason}", fg=typer.colors.RED, err=True)
        raise typer.Exit(3)
    except WharfError as exc:
        if bar_ctx:
            bar_ctx.stop()
        _fail(exc, flags={"key_column": "--column" if mode != "sum" else "--key-column", "ids": "--ids"})
        return
    if bar_ctx:
        bar_ctx.stop()
    seconds = time.monotonic() - started
    if output is not None and answer.matched:
        import csv

        with open(output, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([id_column])
            w.writerows([m] for m in answer.matched)
    if as_json:
        typer.echo(json.dumps({
            "job_id": answer.job_id, "mode": answer.mode, "holder": answer.holder, "intersection_size": answer.size,
            **({"holders": list(answer.holders), "at_least": answer.at_least} if answer.holders else {}),
            "buyer_ids": len(values), "matched_rows": len(answer.matched),
            "sums": {k: exact_text(v) for k, v in answer.totals.items()},
            "output": str(output) if output is not None and answer.matched else None, "seconds": round(seconds, 3),
            "noise": None if answer.noise is None else {
                "rho": answer.noise.rho, "size_sd": answer.noise.size_sd, "set_size_sd": answer.noise.set_size_sd,
                "sum_sd": answer.noise.sum_sd, "remaining": answer.noise.remaining,
                "renews_at": answer.noise.renews_at,
                "intervals95": {k: [iv.low, iv.high] for k, iv in answer.noise.intervals.items()}
                | ({"size": [answer.noise.size_interval.low, answer.noise.size_interval.high]}
                   if answer.noise.size_interval else {})},
        }))
        return
    if answer.holders:
        k = len(answer.holders)
        typer.echo(f"{answer.mode} against {k} holders' {dataset}.{key_column} ({answer.holder}): IDs at "
                   f"{'all' if answer.at_least == k else f'at least {answer.at_least}'} of {k}: {answer.size} of "
                   f"your {len(values)} IDs")
    else:
        typer.echo(f"{answer.mode} against {answer.holder}'s {dataset}.{key_column}: intersection size {answer.size}"
                   f" of your {len(values)} IDs")
    pn = answer.noise
    if pn is not None and pn.size_interval is not None:
        iv = pn.size_interval
        typer.echo(f"  size 95% interval: [{iv.low:.6g}, {iv.high:.6g}]   (noise sd {iv.sd:.4g})")
    for col, total in answer.totals.items():
        if pn is None:
            typer.echo(f"  sum of {col}: {float(total):.10g}   (exact {exact_text(total)})")
        else:
            iv = pn.intervals[col]
            typer.echo(f"  sum of {col}: {float(total):.10g}   95% interval [{iv.low:.6g}, {iv.high:.6g}]"
                       f"   (noise sd {iv.sd:.4g})")
    if pn is not None:
        renews = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(pn.renews_at))
        typer.echo(f"  privacy: differentially private; spent rho {pn.rho:g}, {pn.remaining:g} left until {renews}"
                   f"; the holder's set size is hidden by noise of sd {pn.set_size_sd:.4g}")
    if answer.matched:
        where = f"; written to {output}" if output is not None else " (pass --output FILE to save them)"
        typer.echo(f"  {len(answer.matched)} of your rows matched{where}")
    typer.echo(f"  job {answer.job_id} in {seconds:.2f} s")


@job_app.command("psi")
def job_psi(
    ids: Path = typer.Option(..., help="CSV file with your IDs."),
    id_column: str = typer.Option(..., help="The column of --ids holding the IDs."),
    dataset: str = typer.Option(..., help="The holder's dataset."),
    column: str = typer.Option(..., help="The holder's join-key column."),
    cardinality_only: bool = typer.Option(False, help="Learn only how many IDs are shared, not which."),
    unbalanced: bool = typer.Option(False, help="Query the holder's per-epoch OPRF table (fast for small lists)."),
    output: Optional[Path] = typer.Option(None, help="Write your matched IDs here (CSV)."),
    party: list[str] = typer.Option([], "--party", help="The holder, when several list the dataset; repeat it to "
                                    "intersect with several holders' sets in one job (IDs at all of them, or "
                                    "--at-least T)."),
    at_least: Optional[int] = typer.Option(None, "--at-least", help="With several --party: IDs at T or more of "
                                           "those holders (default: all of them)."),
    timeout: int = typer.Option(600, min=1, help="Seconds before the job fails."),
    rho: Optional[float] = typer.Option(None, min=0.0, help="Privacy budget (zCDP rho) to spend if the holder "
                                        "applies differential privacy; default its own per job."),

    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Which of your IDs a holder also has (or only how many); with several --party, which are at all of
    them (or --at-least T). IDs are trimmed, case-folded and NFKC-normalised."""
    _psi_command("unbalanced" if unbalanced else "intersection", ids, id_column, dataset, column, [],
                 cardinality_only, output, party, timeout, gateway, identity, insecure_as, as_json, rho, at_least)


@job_app.command("psi-sum")
def job_psi_sum(
    ids: Path = typer.Option(..., help="CSV file with your IDs."),
    id_column: str = typer.Option(..., help="The column of --ids holding the IDs."),
    dataset: str = typer.Option(..., help="The holder's dataset."),
    key_column: str = typer.Option(..., help="The holder's join-key column."),
    value_column: list[str] = typer.Option(..., "--value-column", help="A holder column to sum over the join (repeatable)."),
    party: list[str] = typer.Option([], "--party", help="The holder, when several list the dataset; repeat it to "
                                    "join with several holders (sums over every holder that has each ID)."),
    at_least: Optional[int] = typer.Option(None, "--at-least", help="With several --party: join the IDs at T or "
                                           "more of those holders (default: all of them)."),
    timeout: int = typer.Option(600, min=1, help="Seconds before the job fails."),
    rho: Optional[float] = typer.Option(None, min=0.0, help="Privacy budget (zCDP rho) to spend if the holder "
                                        "applies differential privacy; default its own per job."),

    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The size of the join and the sums of the holder's values over it; never a single row's value."""
    _psi_command("sum", ids, id_column, dataset, key_column, value_column, False, None, party, timeout,
                 gateway, identity, insecure_as, as_json, rho, at_least)


@job_app.command("status")
def job_status(
    job_id: str = typer.Argument(..., help="The job id printed at submission."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
) -> None:
    """A job's state and each holder's part in it."""

    try:
        with _client(gateway, identity, insecure_as) as client:
            view = client.status(job_id)
    except WharfError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(_job_json(view), indent=2))


@job_app.command("cancel")
def job_cancel(
    job_id: str = typer.Argument(..., help="The job id printed at submission."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
) -> None:
    """Cancel a running job."""

    try:
        with _client(gateway, identity, insecure_as) as client:
            view = client.cancel(job_id)
    except WharfError as exc:
        _fail(exc)
        return
    typer.echo(f"job {view.job_id} {view.state}")


@job_app.command("receipts")
def job_receipts(
    job_id: str = typer.Argument(..., help="One of your jobs."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
) -> None:
    """The gateway's signed ledger entries about your job: what was computed, who contributed, and what
    was destroyed when and how; each entry's signature is checked."""
    from datawharf.ledger import parse_lines

    try:
        with _client(gateway, identity, insecure_as) as client:
            lines = client.job_ledger(job_id)
    except WharfError as exc:
        _fail(exc)
        return
    for e in list(parse_lines(lines))[1:]:
        when = datetime.fromtimestamp(e.at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        what = e.fields.get("method") or e.fields.get("detail") or ""
        typer.echo(f"{e.seq:>6}  {when}  {e.kind:<16} {e.fields.get('party', ''):<14} {what}")
    typer.echo(f"({len(lines) - 1} entries, each signed by the gateway's ledger key)")


@job_app.command("purge")
def job_purge(
    job_id: str = typer.Argument(..., help="A finished job of yours."),
    gateway: str = GatewayOpt,
    identity: Optional[Path] = IdentityOpt,
    insecure_as: Optional[str] = InsecureAsOpt,
) -> None:
    """Destroy a finished job's result at the gateway now, and print the destruction receipt."""
    try:
        with _client(gateway, identity, insecure_as) as client:
            r = client.purge(job_id)
    except WharfError as exc:
        _fail(exc)
        return
    when = datetime.fromtimestamp(r.destroyed_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    typer.echo(f"job {r.job_id}: {r.artefact} destroyed at {when} ({r.method}); "
               f"ledger entry {r.ledger_seq} {r.ledger_hash}")


# ------------------------------------------------------------------ bench
bench_app = typer.Typer(help="Benchmark records (see `python -m benchmarks`).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("report")
def bench_report(
    out: Path = typer.Option(Path("benchmark-report.html"), "--out", "-o", help="The HTML file to write."),
    results: Path = typer.Option(Path("benchmarks/results"), help="Directory of benchmark records (*.json)."),
) -> None:
    """Write the benchmarks view as one self-contained HTML file (no network needed to open it)."""
    from gateway.web.report import write_report

    count = write_report(results, out)
    if count == 0:
        typer.secho(f"warning: no benchmark records in {results}; the report is empty", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"wrote {out} from {count} record(s)")


# ------------------------------------------------------------------- demo
@app.command("demo")
def demo(
    workdir: Optional[Path] = typer.Option(None, help="Keep generated data, configs and logs here (default: a temp dir)."),
    rows: int = typer.Option(3000, min=100, help="Rows per hospital."),
) -> None:
    """A whole exchange on this machine: gateway, three hospitals, a buyer running every job."""
    from wharf.demo import run_demo

    raise typer.Exit(run_demo(workdir=workdir, rows=rows))


# ----------------------------------------------------------------- market
from wharf.market_cli import billing_app, listing_app  # noqa: E402  (typer apps; their commands import lazily)

app.add_typer(listing_app, name="listing")
app.add_typer(billing_app, name="billing")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
