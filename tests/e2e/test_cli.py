"""The `wharf` command line, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from wharf.demo import truth
from tests.exchange import Exchange, StartExchange


def wharf(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wharf", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("cli", parties=("st-mary", "riverside"), rows=300)


def me(exchange: Exchange) -> str:
    """The buyer's certificate directory, as `wharf ca issue --out` writes it."""
    return str(exchange.identity("acme-insurance"))


@pytest.mark.parametrize("command", [[], ["gateway", "serve"], ["party", "serve"], ["party", "check"], ["catalog"],
                                     ["job", "aggregate"], ["job", "status"], ["job", "cancel"], ["demo"],
                                     ["ca", "init"], ["ca", "issue"], ["ca", "revoke"], ["ca", "renew"],
                                     ["ca", "list"], ["ca", "request"], ["job", "purge"], ["audit", "export"],
                                     ["audit", "verify"], ["audit", "show"], ["party", "receipts"],
                                     ["job", "receipts"]])
def test_help_everywhere(command: list[str]) -> None:
    out = wharf(*command, "--help")
    assert out.returncode == 0 and "Usage" in out.stdout


def test_aggregate_json(exchange: Exchange) -> None:
    out = wharf("job", "aggregate", "--gateway", exchange.address, "--identity", me(exchange), "--dataset", "visits",
                "--column", "cost", "--stat", "mean", "--where", "age < 30", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["state"] == "DONE" and sorted(result["contributors"]) == ["riverside", "st-mary"]
    assert Fraction(result["exact"]) == truth(exchange.rows_of(["st-mary", "riverside"]), "cost", "mean", "age < 30")
    assert abs(result["value"] - float(Fraction(result["exact"]))) < 1e-9


def test_aggregate_human_output_and_failure_exit_code(exchange: Exchange) -> None:
    out = wharf("job", "aggregate", "-g", exchange.address, "--identity", me(exchange), "--dataset", "visits",
                "--column", "age", "--stat", "count")
    assert out.returncode == 0 and "holders: 2 contributed" in out.stdout
    refused = wharf("job", "aggregate", "-g", exchange.address, "--identity", str(exchange.identity("nobody")), "--dataset", "visits",
                    "--column", "age", "--stat", "count")
    assert refused.returncode == 3
    assert "FAILED" in refused.stderr and "'nobody' is not granted" in refused.stderr


def test_errors_are_one_clear_line(exchange: Exchange) -> None:
    out = wharf("job", "aggregate", "-g", exchange.address, "--identity", me(exchange), "--dataset", "visits",
                "--column", "shoe_size", "--stat", "sum")
    assert out.returncode == 1 and out.stderr.startswith("error: column 'shoe_size' is not in dataset 'visits'")
    out = wharf("job", "aggregate", "-g", exchange.address, "--identity", me(exchange), "--dataset", "visits",
                "--column", "cost", "--stat", "sum", "--where", "age => 3")
    assert out.returncode == 1 and "--where" in out.stderr and "character" in out.stderr
    gone = wharf("catalog", "-g", "127.0.0.1:1", "--identity", me(exchange))
    assert gone.returncode == 1 and "gateway unavailable" in gone.stderr


def test_catalog_and_status(exchange: Exchange) -> None:
    out = wharf("catalog", "-g", exchange.address, "--identity", me(exchange), "--json")
    entry = {d["dataset"]: d for d in json.loads(out.stdout)["datasets"]}["visits"]
    assert entry["approx_rows"] == 600
    job = json.loads(wharf("job", "aggregate", "-g", exchange.address, "--identity", me(exchange), "--dataset",
                           "visits", "--column", "cost", "--stat", "sum", "--json").stdout)
    status = wharf("job", "status", job["job_id"], "-g", exchange.address, "--identity", me(exchange))
    assert json.loads(status.stdout)["state"] == "DONE"


def test_party_config_errors_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('name = "x"\ngateway = "127.0.0.1:1"\ndatasetz = []\n')
    out = wharf("party", "serve", "--config", str(tmp_path / "p.toml"))
    assert out.returncode == 1
    assert "datasetz: unknown key" in out.stderr and "datasets: required key is missing" in out.stderr
    out = wharf("party", "check", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 1 and "no such configuration file" in out.stderr


def test_psi_commands(exchange: Exchange, tmp_path: Path) -> None:
    rows = exchange.rows_of(["st-mary"])
    ids = [r["patient_id"] for r in rows[:40]] + [f"nobody-{i}" for i in range(30)]
    (tmp_path / "mine.csv").write_text("phone\n" + "\n".join(ids) + "\n")
    base = ["-g", exchange.address, "--identity", me(exchange), "--ids", str(tmp_path / "mine.csv"),
            "--id-column", "phone", "--dataset", "visits", "--party", "st-mary"]
    out = wharf("job", "psi", *base, "--column", "patient_id", "--output", str(tmp_path / "m.csv"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["intersection_size"] == 40
    assert (tmp_path / "m.csv").read_text().splitlines()[1:] == sorted(ids[:40], key=ids.index)
    out = wharf("job", "psi-sum", *base, "--key-column", "patient_id", "--value-column", "cost", "--json")
    assert out.returncode == 0, out.stderr
    from decimal import Decimal

    assert Decimal(json.loads(out.stdout)["sums"]["cost"]) == sum(Decimal(r["cost"]) for r in rows[:40])
    job_id = json.loads(out.stdout)["job_id"]
    status = json.loads(wharf("job", "status", job_id, "-g", exchange.address, "--identity", me(exchange)).stdout)
    assert status["state"] == "DONE" and status["psi"]["kind"] == "psi-sum"
    bad = wharf("job", "psi", *base[:4], "--ids", str(tmp_path / "mine.csv"), "--id-column", "email",
                "--dataset", "visits", "--column", "patient_id")
    assert bad.returncode == 1 and "has no column 'email' (columns: phone)" in bad.stderr


def test_the_ca_commands(tmp_path: Path) -> None:
    ca = str(tmp_path / "ca")
    assert wharf("ca", "init", "--dir", ca).returncode == 0
    again = wharf("ca", "init", "--dir", ca)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    out = wharf("ca", "issue", "--dir", ca, "--role", "party", "st-mary", "--organisation", "st-mary-trust",
                "--days", "7", "--out", str(tmp_path / "stm"))
    assert out.returncode == 0 and "party st-mary (st-mary-trust)" in out.stdout
    assert "PRIVATE" not in out.stdout + out.stderr
    assert oct((tmp_path / "stm" / "key.pem").stat().st_mode & 0o777) == "0o600"
    bad = wharf("ca", "issue", "--dir", ca, "--role", "king", "x")
    assert bad.returncode == 1 and "unknown role 'king'" in bad.stderr
    before = (tmp_path / "stm" / "cert.pem").read_bytes()
    renewed = wharf("ca", "renew", str(tmp_path / "stm" / "cert.pem"), "--dir", ca, "--days", "30")
    assert renewed.returncode == 0 and "party st-mary (st-mary-trust)" in renewed.stdout
    assert (tmp_path / "stm" / "cert.pem").read_bytes() != before
    revoked = wharf("ca", "revoke", "--dir", ca, "st-mary", "--reason", "left")
    assert revoked.returncode == 0 and revoked.stdout.count("revoked party st-mary") == 2  # both certificates
    listed = json.loads(wharf("ca", "list", "--dir", ca, "--json").stdout)
    assert [(r["name"], r["revoked_at"] is not None) for r in listed][:2] == [("st-mary", True), ("st-mary", True)]
    # The recommended way: the holder makes its key and a request; the operator certifies the request.
    req = wharf("ca", "request", "riverside", "--out", str(tmp_path / "rs"))
    assert req.returncode == 0 and (tmp_path / "rs" / "request.csr").exists()
    wrong = wharf("ca", "issue", "--dir", ca, "--role", "party", "st-mary", "--csr", str(tmp_path / "rs" / "request.csr"))
    assert wrong.returncode == 1 and "names 'riverside'" in wrong.stderr
    issued = wharf("ca", "issue", "--dir", ca, "--role", "party", "riverside", "--csr",
                   str(tmp_path / "rs" / "request.csr"), "--out", str(tmp_path / "rs"))
    assert issued.returncode == 0 and "key.pem" not in issued.stdout
    from datawharf.pki import Credentials, Role

    ident = Credentials.load(tmp_path / "rs").check_current()
    assert (ident.name, ident.role) == ("riverside", Role.PARTY)
    nothing = wharf("ca", "list", "--dir", str(tmp_path / "none"))
    assert nothing.returncode == 1 and "wharf ca init" in nothing.stderr


def test_plaintext_only_on_loopback_and_only_when_asked(tmp_path: Path) -> None:
    exposed = wharf("gateway", "serve", "--insecure", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path))
    assert exposed.returncode == 1 and "only allowed on a loopback address" in exposed.stderr
    unnamed = wharf("gateway", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path))
    assert unnamed.returncode == 1 and "--identity" in unnamed.stderr
    anonymous = wharf("catalog", "-g", "127.0.0.1:1")
    assert anonymous.returncode == 1 and "--identity" in anonymous.stderr
    remote = wharf("catalog", "-g", "203.0.113.5:50051", "--insecure-as", "acme")
    assert remote.returncode == 1 and "loopback" in remote.stderr
