"""The job store on embedded SQLite: one file under the data directory."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from gateway.store.base import ACTIVE_JOB_STATES, OPEN_TASK_STATES, JobRow, Store, TaskRow, charge_rows
from gateway.store.migrate import StoreVersionError, migrate

# ACTIVE_JOB_STATES and OPEN_TASK_STATES are re-exported for modules that
# still import them from here; datawharf.states is where they are defined.
__all__ = ["ACTIVE_JOB_STATES", "JobRow", "OPEN_TASK_STATES", "SqliteStore", "StoreVersionError", "TaskRow",
           "charge_rows"]


class SqliteStore(Store):
    """One process's store: blobs stay in rows, which ``secure_delete`` zeroes when dropped."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.ledger: Any = None
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Deleted rows (per-holder ciphertexts) are overwritten with zeros, not left in free pages.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA foreign_keys=ON")
        try:
            self.schema_version = migrate(self._db, path=self.path)
        except BaseException:
            self._db.close()
            raise

    def _wal(self, wait_s: float = 10.0) -> None:
        # Switching a new file to WAL needs it to itself, and SQLite answers "database is locked"
        # at once instead of waiting while another process (a second gateway opening the same new
        # file) holds it for its migrations; so wait here, boundedly.
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    self._db.close()
                    raise
                time.sleep(0.02)

    def _begin_write(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def _erase_deleted(self) -> None:
        # The WAL still holds the deleted pages' old frames until a checkpoint copies the zeroed
        # pages back and truncates it; do that now rather than at SQLite's next automatic one.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
