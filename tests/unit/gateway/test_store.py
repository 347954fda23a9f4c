"""The store's numbered migrations: fresh, repeated, upgraded from before versioning, and refused."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from datawharf.states import ACTIVE_JOB_STATES, JobState, TaskState
from gateway.store import JobRow, SqliteStore, StoreVersionError, TaskRow
from gateway.store.migrate import Migration, load_migrations, migrate, statements

DATA = Path(__file__).resolve().parent / "data"
LATEST = load_migrations()[-1].version


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def shape(path: Path) -> dict[str, object]:
    """Tables with their columns and indexes with their columns: what queries depend on."""
    db = sqlite3.connect(path)
    try:
        out: dict[str, object] = {}
        for kind, name, table in db.execute("SELECT type, name, tbl_name FROM sqlite_master ORDER BY name"):
            if kind == "table":
                out[f"table {name}"] = [tuple(c) for c in db.execute(f'PRAGMA table_info("{name}")')]
            elif kind == "index":
                columns = [c[2] for c in db.execute(f'PRAGMA index_info("{name}")')]
                unique = [i[2] for i in db.execute(f'PRAGMA index_list("{table}")') if i[1] == name]
                out[f"index {name}"] = (table, columns, unique)
        return out
    finally:
        db.close()


def job_row(job_id: str = "j1", request_id: str = "r1", state: str = JobState.PENDING) -> JobRow:
    return JobRow(job_id=job_id, buyer="buyer", request_id=request_id, kind="sum", backend="paillier",
                  spec=b"\x0a\x06visits", state=state, reason="", min_parties=2, created_at=100.0,
                  deadline=200.0, finished_at=0.0)


def test_migrations_are_numbered_from_one() -> None:
    found = load_migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "0001_initial.sql"


def test_fresh_database_ends_at_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store = SqliteStore(path)
    assert store.schema_version == LATEST
    store.close()
    assert user_version(path) == LATEST


def test_opening_twice_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store = SqliteStore(path)
    store.insert_job(job_row(), [("t1", "a"), ("t2", "b")])
    store.close()
    before = shape(path)

    again = SqliteStore(path)
    assert again.schema_version == LATEST
    assert again.job("j1") == job_row()
    assert [t.task_id for t in again.tasks("j1")] == ["t1", "t2"]
    again.close()
    assert shape(path) == before
    assert user_version(path) == LATEST


def test_stores_opened_at_once_on_a_new_file_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            SqliteStore(path).close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert user_version(path) == LATEST


def build_unversioned(path: Path) -> None:
    """A database as the gateway made it before migrations were numbered, filled by plain SQL."""
    db = sqlite3.connect(path)
    db.executescript((DATA / "schema_v0.sql").read_text())
    db.executescript("""
        INSERT INTO parties VALUES ('clinic-a', X'0a0376697369', 10.0, 20.0, 1);
        INSERT INTO parties VALUES ('clinic-b', X'0a0376697369', 11.0, 21.0, 0);
        INSERT INTO jobs VALUES ('j0', 'buyer', 'r0', 'count', 'paillier', X'0a01', 'DONE', '', 1,
                                 50.0, 150.0, 60.0);
        INSERT INTO jobs VALUES ('j1', 'buyer', 'r1', 'sum', 'ckks', X'0a06766973697473', 'COLLECTING',
                                 '', 2, 100.0, 200.0, 0);
        INSERT INTO tasks VALUES ('t1', 'j1', 'clinic-a', 'CONTRIBUTED', '', 101.0);
        INSERT INTO tasks VALUES ('t2', 'j1', 'clinic-b', 'DISPATCHED', '', 101.0);
        INSERT INTO tasks VALUES ('t3', 'j1', 'clinic-c', 'LOST', 'stream closed', 102.0);
        INSERT INTO contributions VALUES ('t1', 'j1', X'deadbeef', 103.0);
        INSERT INTO results VALUES ('j0', X'cafe', 60.0);
        INSERT INTO events (at, kind, job_id, party, detail) VALUES (101.0, 'dispatched', 'j1', 'clinic-a', '');
    """)
    db.close()
    assert user_version(path) == 0


def test_database_from_before_versioning_is_upgraded_without_loss(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"
    build_unversioned(old)

    store = SqliteStore(old)
    assert store.schema_version == LATEST
    assert user_version(old) == LATEST

    assert store.job("j1") == JobRow(
        job_id="j1", buyer="buyer", request_id="r1", kind="sum", backend="ckks", spec=b"\x0a\x06visits",
        state=JobState.COLLECTING, reason="", min_parties=2, created_at=100.0, deadline=200.0, finished_at=0.0)
    found = store.find_job_by_request("buyer", "r1")
    assert found is not None and found.job_id == "j1"
    assert [j.job_id for j in store.jobs(ACTIVE_JOB_STATES)] == ["j1"]
    assert [j.job_id for j in store.jobs()] == ["j0", "j1"]
    assert store.tasks("j1") == [
        TaskRow("t1", "j1", "clinic-a", TaskState.CONTRIBUTED, ""),
        TaskRow("t2", "j1", "clinic-b", TaskState.DISPATCHED, ""),
        TaskRow("t3", "j1", "clinic-c", TaskState.LOST, "stream closed"),
    ]
    assert [(p["name"], bytes(p["listings"]), p["contributions"]) for p in store.parties()] == [
        ("clinic-a", b"\x0a\x03visi", 1), ("clinic-b", b"\x0a\x03visi", 0)]
    assert store.contributions("j1") == [("clinic-a", b"\xde\xad\xbe\xef")]
    assert store.result("j0") == b"\xca\xfe"
    assert [t.task_id for t in store.open_tasks_for_party("clinic-c")] == ["t3"]
    assert store.open_tasks_for_party("clinic-a") == []
    recent = {r["job_id"]: (r["expected"], r["answered"], r["contributed"]) for r in store.recent_jobs()}
    assert recent == {"j1": (3, 1, 1), "j0": (0, 0, 0)}
    assert sorted((r["kind"], r["state"], r["n"]) for r in store.job_counts()) == [
        ("count", "DONE", 1), ("sum", "COLLECTING", 1)]
    assert [(e["kind"], e["party"]) for e in store.events()] == [("dispatched", "clinic-a")]

    # Still writable: a restart's resend, the missing contribution, the result.
    assert store.reset_dispatched() == 1
    assert store.add_contribution("t2", "j1", "clinic-b", b"\x01") is True
    assert store.add_contribution("t2", "j1", "clinic-b", b"\x01") is False
    store.finish_job("j1", b"total")
    assert store.contributions("j1") == []
    assert store.result("j1") == b"total"
    store.close()

    # Same tables, columns and indexes as a database created at the latest version.
    fresh = tmp_path / "fresh.sqlite3"
    SqliteStore(fresh).close()
    assert shape(old) == shape(fresh)


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 999")
    db.close()

    with pytest.raises(StoreVersionError) as refused:
        SqliteStore(path)
    message = str(refused.value)
    assert "schema version 999" in message and f"up to {LATEST}" in message
    assert "newer wharf" in message and "does not downgrade" in message
    assert user_version(path) == 999


def test_unversioned_database_missing_version_1_parts_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    db = sqlite3.connect(path)
    # The earliest development schema: jobs had no backend column.
    db.executescript((DATA / "schema_v0.sql").read_text().replace("backend     TEXT NOT NULL DEFAULT '',", ""))
    db.close()

    with pytest.raises(StoreVersionError, match=r"lacks parts of version 1 \(column jobs.backend\)"):
        SqliteStore(path)
    assert user_version(path) == 0


def test_failing_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    SqliteStore(path).close()
    broken = Migration(LATEST + 1, f"{LATEST + 1:04d}_broken.sql",
                       "CREATE TABLE scratch (seq BIGINT PRIMARY KEY);\nSELECT no_such_column FROM jobs;\n")
    db = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, path=str(path), migrations=load_migrations() + [broken])
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'scratch'").fetchall() == []
    db.close()
    assert user_version(path) == LATEST


def test_statements_split_on_semicolons_outside_quotes_and_comments() -> None:
    sql = ("-- a comment; not a statement end\n"
           "CREATE TABLE t (a TEXT NOT NULL DEFAULT ';'); -- trailing\n"
           "CREATE INDEX t_a ON t (a);\n"
           "-- closing remark\n")
    assert statements(sql) == [
        "-- a comment; not a statement end\nCREATE TABLE t (a TEXT NOT NULL DEFAULT ';'); -- trailing",
        "CREATE INDEX t_a ON t (a);",
    ]
    db = sqlite3.connect(":memory:")
    for statement in statements(sql):
        db.execute(statement)  # a trailing comment is accepted by execute()
    db.close()
    with pytest.raises(ValueError, match="missing ';'"):
        statements("CREATE TABLE t (a TEXT)\n")
