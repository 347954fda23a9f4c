"""Persistence for jobs, tasks, parties, contributions and results."""

from gateway.store.sqlite import JobRow, SqliteStore, TaskRow

__all__ = ["JobRow", "SqliteStore", "TaskRow"]
