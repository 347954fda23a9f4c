"""The store on both engines: the same queries give the same answers on SQLite and PostgreSQL, and
PostgreSQL's own concerns (replicas sharing one database, a lost connection) hold."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from datawharf.errors import InvalidArgument
from datawharf.ledger import parse_lines, verify
from datawharf.states import JobState, TaskState
from gateway.ledger import Ledger
from gateway.store import JobRow, Store, StoreVersionError, open_store
from gateway.store.base import display_url
from gateway.store.migrate import load_migrations
from gateway.store.postgres import PostgresStore, StoreUnavailable, postgres_sql
from tests.postgres import Cluster, start_or_skip

LATEST = load_migrations()[-1].version


def job_row(job_id: str = "j1", request_id: str = "r1") -> JobRow:
    return JobRow(job_id=job_id, buyer="buyer", request_id=request_id, kind="sum", backend="paillier",
                  spec=b"\x0a\x06visits\x00\xff", state=JobState.PENDING, reason="", min_parties=2,
                  created_at=100.0, deadline=200.0, finished_at=0.0, signed=b"sig")


def test_the_same_story_reads_the_same_on_either_engine(store_spec: str, tmp_path: Path) -> None:
    store = open_store(store_spec, tmp_path)
    assert store.schema_version == LATEST
    store.upsert_party("a", b"\x01listing", organisation="A Org", serial="ff")
    store.insert_job(job_row(), [("t1", "a"), ("t2", "b")])
    assert store.job("j1") == job_row()
    assert store.find_job_by_request("buyer", "r1") == job_row()
    assert [t.party for t in store.open_tasks_for_party("a")] == ["a"]
    store.set_task_state("t1", TaskState.DISPATCHED)
    store.set_dispatched_at("t1", 150.5)
    assert store.reset_dispatched() == 1
    payload = bytes(range(256)) * 64
    assert store.add_contribution("t1", "j1", "a", payload)
    assert not store.add_contribution("t1", "j1", "a", b"a second answer to the same task")
    assert store.contributions("j1") == [("a", payload)]
    assert store.parties()[0]["contributions"] == 1
    store.set_receipt("t1", b"receipt")
    assert store.receipts("j1") == [b"receipt"]
    store.record("job_submitted", job_id="j1", detail="100% of 'quoted' text? yes")
    assert [e["detail"] for e in store.job_events("j1")] == ["100% of 'quoted' text? yes"]
    store.finish_job("j1", b"result")
    assert store.result("j1") == b"result" and store.contributions("j1") == []
    assert store.job("j1").state == JobState.DONE  # type: ignore[union-attr]
    recent = [dict(r) for r in store.recent_jobs()]
    assert recent[0]["expected"] == 2 and recent[0]["contributed"] == 1
    assert {(r["kind"], r["state"], r["n"]) for r in store.job_counts()} == {("sum", "DONE", 1)}
    assert store.listings(limit=-1) == [] and store.count_listings() == 0 and store.listing_version("a", "d") == 0
    assert store.drop_result("j1") and not store.drop_result("j1")
    store.close()


def test_a_postgres_store_keeps_contributions_out_of_rows_and_destroys_them(postgres: Cluster, tmp_path: Path
                                                                           ) -> None:
    store = open_store(postgres.database(), tmp_path, blob_dir=tmp_path / "blobs")
    assert isinstance(store, PostgresStore)
    store.insert_job(job_row(), [("t1", "a"), ("t2", "b")])
    secret = b"ciphertext-" * 1000
    store.add_contribution("t1", "j1", "a", secret)
    (row,) = store._db.execute("SELECT payload, blob FROM contributions").fetchall()
    assert bytes(row["payload"]) == b"" and row["blob"]
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == secret
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    store.drop_contributions("j1")
    assert not any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))
    store.close()


def test_two_replicas_answering_the_same_task_at_once_count_it_once(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.database()
    replicas = [open_store(url, tmp_path / f"r{i}", blob_dir=tmp_path / "blobs") for i in range(2)]
    replicas[0].upsert_party("a", b"")
    replicas[0].insert_job(job_row(), [("t1", "a"), ("t2", "b")])
    results: list[bool] = []
    start = threading.Barrier(2)

    def answer(store: Store, payload: bytes) -> None:
        start.wait()
        results.append(store.add_contribution("t1", "j1", "a", payload))

    threads = [threading.Thread(target=answer, args=(s, f"answer {i}".encode())) for i, s in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    ((party, kept),) = replicas[1].contributions("j1")
    assert kept in (b"answer 0", b"answer 1")
    assert replicas[0].parties()[0]["contributions"] == 1
    for s in replicas:
        s.close()


def test_replicas_sharing_a_database_and_key_write_one_chain(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.database()
    replicas = []
    for i in range(2):
        store = open_store(url, tmp_path / f"r{i}")
        # Replicas share the ledger key (copied into each data directory by the operator).
        store.attach_ledger(lambda lines, insert: Ledger.open(tmp_path, lines, None, insert))
        replicas.append(store)
    for n in range(6):
        replicas[n % 2].record("job_submitted", job_id=f"job-{n}")
    entries = list(parse_lines(replicas[0].ledger_lines()))
    assert [e.seq for e in entries] == list(range(7))
    assert verify(entries).entries == 7
    for s in replicas:
        s.close()


def test_migrations_on_postgres_run_once_and_refuse_a_newer_database(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.database()
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(open_store(url, tmp_path))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and [s.schema_version for s in stores] == [LATEST] * 3
    stores[0]._db.execute("UPDATE wharf_schema SET version = ?", (LATEST + 1,))
    for s in stores:
        s.close()
    with pytest.raises(StoreVersionError, match="newer wharf"):
        open_store(url, tmp_path)


def test_migrations_read_as_postgres_types() -> None:
    assert postgres_sql("seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL, b BLOB DEFAULT x'', blob TEXT") == (
        "seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at DOUBLE PRECISION, b BYTEA DEFAULT "
        "'\\x'::bytea, blob TEXT")


def test_a_dropped_connection_is_retried_and_the_call_succeeds(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.database()
    store = open_store(url, tmp_path)
    store.insert_job(job_row(), [("t1", "a")])
    pid = store._db.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert store.job("j1") == job_row()
    assert store._db.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
    store.close()


def test_a_database_that_stays_away_makes_the_store_unavailable_until_it_returns(tmp_path: Path) -> None:
    cluster = start_or_skip()
    try:
        heard: list[bool] = []
        store = open_store(cluster.database(), tmp_path, retry_s=0.5, on_change=heard.append)
        cluster.pause()
        with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
            store.jobs()
        assert heard == [False] and not store.available  # type: ignore[attr-defined]
        with pytest.raises(StoreUnavailable, match="unreachable; retry shortly"):
            store.job("j1")  # fails fast while away
        cluster.resume()
        assert store.reconnect(10.0)  # type: ignore[attr-defined]
        assert heard == [False, True] and store.jobs() == []
        store.close()
    finally:
        cluster.stop()


def test_an_unreachable_database_at_start_is_named_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        open_store("postgresql://wharf:hunter2@127.0.0.1:1/exchange", tmp_path)
    assert "postgresql://wharf:***@127.0.0.1:1/exchange" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(InvalidArgument, match="--store must be"):
        open_store("mysql://wharf:hunter2@h/x", tmp_path)


@pytest.mark.parametrize("url, shown", [
    ("postgresql://wharf:hunter2@db:5432/exchange", "postgresql://wharf:***@db:5432/exchange"),
    ("postgresql://wharf:hunter2@[::1]:5432/exchange", "postgresql://wharf:***@[::1]:5432/exchange"),
    ("postgresql://wharf:hunter2@db:notaport/exchange", "postgresql://wharf:***@db:notaport/exchange"),
    ("postgresql://wharf:p@ss@db/exchange", "postgresql://wharf:***@db/exchange"),
    ("postgresql://wharf@db/exchange?sslmode=require", "postgresql://wharf@db/exchange?sslmode=require"),
    ("sqlite", "sqlite"),
])
def test_a_store_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert display_url(url) == shown
