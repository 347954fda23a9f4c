"""Persistence for jobs, tasks, parties, contributions and results."""

from gateway.store.sqlite import JobRow, SqliteStore, StoreVersionError, TaskRow

__all__ = ["JobRow", "SqliteStore", "StoreVersionError", "TaskRow"]
