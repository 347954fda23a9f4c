"""Persistence for jobs, tasks, parties, contributions and results.

SQLite (one file in the data directory) is the default; PostgreSQL is the
store gateway replicas share. ``open_store`` picks by the ``--store`` value.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

from datawharf.errors import InvalidArgument, NotFound
from gateway.store.base import JobRow, Store, TaskRow, display_url
from gateway.store.migrate import StoreVersionError
from gateway.store.sqlite import SqliteStore

SQLITE_FILE = "gateway.sqlite3"


def open_store(spec: str, data_dir: Path, *, blob_dir: Path | None = None, retry_s: float = 3.0,
               on_change: Callable[[bool], None] | None = None) -> Store:
    """The store ``spec`` names: "" or "sqlite" for the data directory's file, a postgresql:// URL for a
    shared database (contributions then go to ``blob_dir``, by default under the data directory)."""
    if spec in ("", "sqlite"):
        return SqliteStore(data_dir / SQLITE_FILE)
    if spec.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore  # psycopg is loaded only by gateways that use it

        return PostgresStore(spec, blob_dir or data_dir / "blobs", retry_s=retry_s, on_change=on_change)
    raise InvalidArgument(f"--store must be 'sqlite' or a postgresql://user@host:port/database URL, not {display_url(spec)!r}")


def open_reader(spec: str, data_dir: Path) -> tuple[Any, str]:
    """A read-only connection to a gateway's store, for offline tools (audit export, statements); the
    connection (sqlite3's, or one that reads the same way) and the store's name for messages."""
    if spec in ("", "sqlite"):
        path = data_dir / SQLITE_FILE
        if not path.exists():
            raise NotFound(f"no gateway store at {path}; pass the gateway's --data-dir (or its --store)")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        return db, str(path)
    if spec.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import Connection

        conn = Connection(spec)
        conn.execute("SET default_transaction_read_only = on")
        return conn, display_url(spec)
    raise InvalidArgument(f"--store must be 'sqlite' or a postgresql://user@host:port/database URL, not "
                          f"{display_url(spec)!r}")


# What a read through open_reader raises when the store lacks a table: sqlite3's, or psycopg's (a
# subclass of its Error, loaded only with a PostgreSQL store).
def missing_table(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) or type(exc).__name__ == "UndefinedTable"


__all__ = ["JobRow", "SQLITE_FILE", "SqliteStore", "Store", "StoreVersionError", "TaskRow", "missing_table",
           "open_reader", "open_store"]
