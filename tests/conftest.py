"""Fixtures and marks shared by the whole suite.

``start_exchange`` is the one way a test module starts a real exchange; a
module's own ``exchange`` fixture states only how its exchange differs from
the default (tests.exchange.Exchange). Every test under integration/ and
e2e/ starts processes and is marked ``slow``, so ``pytest -m "not slow"`` runs
the unit suite alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    # Imported lazily: the exchange pulls in every role, and a unit run must
    # not depend on those importing cleanly.
    from tests.exchange import Exchange, StartExchange

HERE = Path(__file__).resolve().parent
SLOW_FOLDERS = (HERE / "integration", HERE / "e2e")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(folder in item.path.parents for folder in SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throw-away PostgreSQL cluster for the session (tests.postgres.Cluster); ``postgres.database()``
    makes a fresh database in it."""
    from tests.postgres import start_or_skip

    cluster = start_or_skip()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs twice: on a SQLite file and on a new PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite"
    return str(request.getfixturevalue("postgres").database())


@pytest.fixture(scope="module")
def start_exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartExchange]:
    """``start_exchange(name, **options)`` starts an Exchange(options) in a fresh
    folder and returns it once its holders are online.

    Module-scoped: whatever a module started is stopped when the module
    ends, even if a start failed half-way, so exchanges do not pile up on a
    small machine while later modules run.
    """
    from tests.exchange import Exchange

    started: list[Exchange] = []

    def start(name: str = "exchange", **options: Any) -> Exchange:
        ex = Exchange(tmp_path_factory.mktemp(name), **options)
        started.append(ex)  # before start(): a half-started exchange is stopped too
        return ex.start()

    try:
        yield start
    finally:
        for ex in reversed(started):
            ex.stop()
