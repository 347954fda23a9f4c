"""The gateway's ledger on its store: appended with every event, checked at every start."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from datawharf.ledger import LedgerError, parse_lines, verify
from datawharf.pki import Authority, Role, TrustStore
from gateway.ledger import Ledger
from gateway.store import Store
from gateway.store import open_store as open_any


def open_store(path: Path, creds=None, spec: str = "sqlite") -> Store:  # type: ignore[no-untyped-def]
    store = open_any(spec, path)
    store.attach_ledger(lambda lines, insert: Ledger.open(path, lines, creds, insert))
    return store


def test_every_event_is_an_entry_and_the_chain_survives_a_restart(tmp_path: Path, store_spec: str) -> None:
    ca = Authority.init(tmp_path / "ca")
    gw = ca.issue("gw", Role.GATEWAY)
    store = open_store(tmp_path, gw, store_spec)
    store.record("job_submitted", job_id="job-1", detail="sum", evidence={"buyer": "acme"})
    store.record("job_done", job_id="job-1", evidence={"result_digest": "ab" * 32})
    store.close()
    store = open_store(tmp_path, gw, store_spec)
    store.record("job_submitted", job_id="job-2")
    lines = store.ledger_lines()
    store.close()
    entries = list(parse_lines(lines))
    assert [e.kind for e in entries] == ["genesis", "job_submitted", "job_done", "job_submitted"]
    report = verify(entries, trust=TrustStore(ca.ca_pem))
    assert report.bound and report.entries == 4 and report.jobs == {"job-1", "job-2"}
    assert oct((tmp_path / "ledger.key").stat().st_mode & 0o777) == "0o600"


def test_a_ledger_edited_at_rest_stops_the_gateway_naming_the_entry(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(3):
        store.record("job_submitted", job_id=f"job-{i}")
    store.close()
    db = sqlite3.connect(tmp_path / "gateway.sqlite3")
    row = json.loads(db.execute("SELECT entry FROM ledger WHERE seq = 2").fetchone()[0])
    row["fields"]["job_id"] = "job-9"
    db.execute("UPDATE ledger SET entry = ? WHERE seq = 2", (json.dumps(row),))
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="entry 2 was altered") as err:
        open_store(tmp_path)
    assert err.value.seq == 2


def test_a_lost_key_is_not_replaced_by_a_new_chain(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    (tmp_path / "ledger.key").unlink()
    with pytest.raises(LedgerError, match="key .* is missing"):
        open_store(tmp_path)


def test_a_foreign_ca_does_not_vouch_for_the_ledger(tmp_path: Path) -> None:
    gw = Authority.init(tmp_path / "ca").issue("gw", Role.GATEWAY)
    store = open_store(tmp_path, gw)
    lines = store.ledger_lines()
    store.close()
    other = Authority.init(tmp_path / "other")
    with pytest.raises(LedgerError, match="not vouched for") as err:
        verify(parse_lines(lines), trust=TrustStore(other.ca_pem))
    assert err.value.seq == 0


def test_a_buyer_checks_its_entries_without_the_whole_chain(tmp_path: Path, store_spec: str) -> None:
    from dataclasses import replace

    from datawharf.ledger import check_entries

    store = open_store(tmp_path, spec=store_spec)
    store.record("job_submitted", job_id="job-1")
    store.record("destroyed", job_id="job-1", evidence={"artefact": "result"})
    entries = list(parse_lines(store.ledger_lines()))
    store.close()
    assert check_entries(entries[0], entries[1:]) == 3
    forged = replace(entries[2], fields={**entries[2].fields, "artefact": "nothing"})
    with pytest.raises(LedgerError, match="entry 2 was altered"):
        check_entries(entries[0], [entries[1], forged])


def test_a_jobs_entries_are_read_by_index(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(5):
        store.record("job_submitted", job_id=f"job-{i}")
    store.record("destroyed", job_id="job-3")
    kinds = [json.loads(x)["kind"] for x in store.job_ledger_lines("job-3")]
    plan = [tuple(r) for r in store._db.execute(
        "EXPLAIN QUERY PLAN SELECT entry FROM ledger WHERE job_id = ? ORDER BY seq", ("job-3",))]
    store.close()
    assert kinds == ["genesis", "job_submitted", "destroyed"]
    assert "USING INDEX ledger_job" in str(plan)
