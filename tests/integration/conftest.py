from __future__ import annotations

import pytest

from tests.exchange import Exchange, StartExchange


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    """Three hospitals; northgate does not release variances (test_aggregate checks its refusal)."""
    return start_exchange(statistics={"northgate": ["sum", "count", "mean"]})
