"""Persistence for jobs, tasks, parties, contributions and results.

SQLite (one file in the data directory) is the default; PostgreSQL is the
store gateway replicas share. ``open_store`` picks by the ``--store`` value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from datawharf.errors import InvalidArgument
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


__all__ = ["JobRow", "SQLITE_FILE", "SqliteStore", "Store", "StoreVersionError", "TaskRow", "open_store"]
