"""Numbered schema migrations for the store.

``migrations/NNNN_name.sql`` files are applied in order, each once; SQLite's
``PRAGMA user_version`` holds the number of the last one applied. A file is
plain SQL statements separated by semicolons, so a PostgreSQL runner can
read the same files and keep its own version record.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreVersionError(RuntimeError):
    """The database's schema is not one this gateway can use."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(folder: Traversable | None = None) -> list[Migration]:
    """The migrations in ``folder`` (the package's own by default), numbered 1, 2, 3, ... without gaps."""
    folder = folder or resources.files("gateway.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    # A gap or a duplicate number would make user_version ambiguous.
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps: {[m.name for m in found]}")
    return found


def statements(sql: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement knows quotes and comments."""
    out: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if _without_comments(pending).strip():
        raise ValueError(f"migration ends inside a statement (missing ';'?): {pending.strip()[:80]!r}")
    return out


def _without_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, *, path: str, migrations: list[Migration] | None = None) -> int:
    """Bring ``db`` to the latest version in one transaction; return that version.

    ``db`` must be in autocommit mode (``isolation_level=None``). ``path`` only
    names the database in error messages.
    """
    migrations = migrations if migrations is not None else load_migrations()
    latest = migrations[-1].version if migrations else 0
    with db:
        # IMMEDIATE takes the write lock before reading the version, so two
        # processes opening a new file at once cannot both apply 0001.
        db.execute("BEGIN IMMEDIATE")
        current = user_version(db)
        if current > latest:
            raise StoreVersionError(
                f"{path} has schema version {current}, but this wharf only knows versions up to {latest}: "
                "it was written by a newer wharf. Run that newer version (or a later one) with this data "
                "directory, or restore a backup taken before it was upgraded; wharf does not downgrade databases."
            )
        if current == 0 and migrations and _predates_versioning(db):
            _check_unversioned(db, path, migrations[0])
            current = 1
            db.execute("PRAGMA user_version = 1")
        for m in migrations[current:]:
            for statement in statements(m.sql):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {m.version:d}")
    return latest


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _predates_versioning(db: sqlite3.Connection) -> bool:
    # Before numbered migrations the schema was created with user_version left at 0.
    return "jobs" in _tables(db)


def _shape(db: sqlite3.Connection) -> set[str]:
    """Tables, their columns and named indexes, as comparable names."""
    shape = set()
    for table in _tables(db):
        shape.add(f"table {table}")
        for column in db.execute(f'PRAGMA table_info("{table}")'):
            shape.add(f"column {table}.{column[1]}")
    for (index,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"):
        shape.add(f"index {index}")
    return shape


def _check_unversioned(db: sqlite3.Connection, path: str, first: Migration) -> None:
    """An unversioned database is version 1 only if it has everything version 1 creates."""
    reference = sqlite3.connect(":memory:")
    try:
        for statement in statements(first.sql):
            reference.execute(statement)
        missing = _shape(reference) - _shape(db)
    finally:
        reference.close()
    if missing:
        raise StoreVersionError(
            f"{path} has no schema version and lacks parts of version 1 ({', '.join(sorted(missing))}); "
            "it was made by an early development build. Move it aside and start the gateway with an empty "
            "data directory."
        )
