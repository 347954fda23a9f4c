from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.exchange import Exchange


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    ex = Exchange(
        tmp_path_factory.mktemp("exchange"),
        wire_log=True,
        statistics={"northgate": ["sum", "count", "mean"]},
    )
    try:
        yield ex.start()
    finally:
        ex.stop()
