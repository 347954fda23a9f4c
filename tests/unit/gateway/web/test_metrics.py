"""/metrics as Prometheus scrapes it: its content type, the process metrics, a parseable body."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics
from gateway.store import JobRow, SqliteStore
from gateway.web.app import create_app, start_http


def scrape(store: SqliteStore, token: str | None = None) -> tuple[int, str, str]:
    metrics = Metrics(store)
    metrics.job_submitted("sum", "paillier")
    # /metrics reads only the metrics registry; the orchestrator and dispatcher serve other pages.
    app = create_app(cast(Any, None), cast(Any, None), metrics, results_dir=None, token=token)

    async def go() -> tuple[int, str, str]:
        runner, address = await start_http(app, "127.0.0.1:0")
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://{address}/metrics", headers=headers) as response:
                    return response.status, response.headers["Content-Type"], await response.text()
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_metrics_have_prometheus_content_type_and_process_metrics(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    store.insert_job(JobRow("j1", "buyer", "r1", "sum", "paillier", b"", "PENDING", "", 1, 1.0, 2.0, 0.0), [])
    try:
        status, content_type, body = scrape(store)
    finally:
        store.close()

    assert status == 200
    assert content_type == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(body)}
    for name in ("process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds",
                 "process_start_time_seconds", "python_info"):
        assert name in families, name
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert [(s.labels, s.value) for s in families["wharf_jobs"].samples] == [
        ({"type": "sum", "state": "PENDING"}, 1.0)]
    assert [s.value for s in families["wharf_jobs_submitted"].samples if s.name.endswith("_total")] == [1.0]


def test_metrics_with_a_token_keep_the_content_type(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    try:
        status, content_type, body = scrape(store, token="t" * 32)
    finally:
        store.close()
    assert status == 200 and content_type == CONTENT_TYPE_LATEST
    assert "process_resident_memory_bytes" in body
