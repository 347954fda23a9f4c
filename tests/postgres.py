"""The throw-away PostgreSQL cluster of the suite (wharf.pgcluster), skipped where the server is not
installed, except on CI, where a missing server fails the test."""

from __future__ import annotations

import os

import pytest

from wharf.pgcluster import Cluster

__all__ = ["Cluster", "start_or_skip"]


def start_or_skip() -> Cluster:
    try:
        return Cluster()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
