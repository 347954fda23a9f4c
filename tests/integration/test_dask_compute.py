"""A holder with ``compute = "dask://..."``: its PSI blinding runs on a Dask cluster, answers unchanged.

One holder, one LocalCluster of one worker process; an aggregate job and a
PSI job through a real gateway, each checked against the plaintext truth,
and the scheduler's own count of the holder's tasks.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.exchange import Exchange
from wharf.demo import truth

distributed = pytest.importorskip("distributed")

COUNTER = "datawharf-run-chunk-counter"


class RunChunkCounter(distributed.diagnostics.plugin.SchedulerPlugin):  # type: ignore[misc]
    """Counts tasks of ``protocols.psi.run_chunk`` that a worker finished (key prefix ``run_chunk-``)."""

    def __init__(self) -> None:
        self.done = 0

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "memory" and str(key).startswith("run_chunk-"):
            self.done += 1


def chunks_done(dask_scheduler: Any) -> int:
    return int(dask_scheduler.plugins[COUNTER].done)


class DaskExchange(Exchange):
    """The test exchange, its holders pointed at a Dask scheduler."""

    def __init__(self, root: Path, *, compute: str, **options: Any) -> None:
        super().__init__(root, **options)
        self.compute = compute

    def config(self, name: str) -> str:
        return f'compute = "{self.compute}"\n' + super().config(name)  # a top-level key: before any table


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        client.register_plugin(RunChunkCounter(), name=COUNTER)
        yield client


@pytest.fixture(scope="module")
def exchange(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    port = cluster.scheduler.address.rsplit(":", 1)[1]
    ex = DaskExchange(tmp_path_factory.mktemp("dask"), compute=f"dask://127.0.0.1:{port}", parties=("st-mary",))
    try:
        yield ex.start()
    finally:
        ex.stop()


def test_aggregate_and_psi_on_a_dask_cluster_match_the_truth(exchange: Exchange, cluster: Any) -> None:
    assert "compute: Dask scheduler tcp://127.0.0.1:" in (exchange.logs / "st-mary.log").read_text()
    rows = exchange.rows_of(["st-mary"])
    with exchange.client() as c:
        answer = c.result(c.submit("visits", "cost", "sum", timeout_s=60), timeout_s=90)
        assert list(answer.contributors) == ["st-mary"]
        assert answer.exact == truth(rows, "cost", "sum", "")

        before = cluster.run_on_scheduler(chunks_done)
        picked = random.Random(7).sample([r["patient_id"] for r in rows], 120)
        ids = picked + [f"ZZ-{i:06d}" for i in range(4900)]  # > 4096: the holder re-blinds in two chunks
        ans = c.psi("visits", "patient_id", ids, party="st-mary", parallel=False, timeout_s=120)
    assert ans.size == len(picked) and set(ans.matched) == set(picked)
    # The holder's re-blinding ran as Dask tasks; with the local pool this count would not move.
    assert cluster.run_on_scheduler(chunks_done) - before >= 2
