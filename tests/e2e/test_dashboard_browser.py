"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

Screenshots land in test-artifacts/ (or $WHARF_TEST_ARTIFACTS). Without
Chromium the test skips and says how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from benchmarks.harness import Record
from tests.exchange import Exchange, StartExchange

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("WHARF_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
TOKEN = "operator-token-0123456789"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not found: install Debian's package (`apt-get install chromium`; .ci/run does) to run this test",
)


def write_records(folder: Path) -> None:
    for i, (ts, speed) in enumerate(((1_700_000_000, 4.0e5), (1_700_086_400, 5.5e5))):
        rec = Record("aggregate", False, {"holders": 10, "values_per_holder": 100_000}, started=float(ts))
        rec.add("plaintext@inprocess", "values_per_s", [1.1e9], "values/s")
        rec.add("paillier-naive@inprocess", "values_per_s", [66.0], "values/s", n=200)
        rec.add("paillier-packed@inprocess", "values_per_s", [1.6e4], "values/s", n=100_000)
        rec.add("ckks@inprocess", "values_per_s", [speed], "values/s", n=100_000)
        rec.add("ckks@gateway", "seconds", [2.3 - i * 0.2], "s", n=100_000)
        rec.check("packed_vs_naive_paillier_speedup", 242.0, ">= 50", lambda x: x >= 50)
        rec.write(results_dir=folder)


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange, tmp_path_factory: pytest.TempPathFactory) -> Exchange:
    results = tmp_path_factory.mktemp("bench-results")
    write_records(results)
    return start_exchange("browser", parties=("st-mary", "riverside"), rows=300, http=True, http_token=TOKEN,
                          bench_results=results)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency: make test installs it")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def _chart(reduce: str) -> str:
    """A page function of a canvas selector: ``reduce`` over the values of its chart's datasets (0 without one)."""
    return f"""(sel) => {{ const c = document.querySelector(sel); const ch = c && Chart.getChart(c);
                         return ch ? ch.data.datasets.reduce((n, d) => n + d.data.reduce({reduce}, 0), 0) : 0; }}"""


CHART_POINTS = _chart("(k, v) => k + (v !== null ? 1 : 0)")  # points drawn
CHART_TOTAL = _chart("(k, v) => k + (v || 0)")  # sum of the values


def chart_points(page, selector: str) -> int:  # type: ignore[no-untyped-def]
    return page.evaluate(CHART_POINTS, selector)


def test_live_view_and_benchmarks_view(exchange: Exchange, browser) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"http://{exchange.http_address}/")
    # Without a session the browser lands on the login form; the token goes in the form, never the URL.
    assert page.url.endswith("/login")
    page.fill("#token", "wrong-token-wrong-token")
    page.click("#sign-in")
    assert "not the operator token" in page.inner_text(".error")
    page.fill("#token", TOKEN)
    page.click("#sign-in")
    page.wait_for_url(f"http://{exchange.http_address}/", timeout=10_000)
    assert TOKEN not in page.url
    session = next(c for c in page.context.cookies() if c["name"] == "wharf_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: page scripts cannot read it
    page.wait_for_selector('#parties tr[data-party="riverside"] td.online', timeout=20_000)
    with exchange.client() as c:
        job = c.submit("visits", "cost", "mean", where="age >= 40")
        page.wait_for_selector(f'#jobs tr[data-job="{job.job_id}"]', timeout=20_000)
        page.wait_for_selector(f'#jobs tr[data-job="{job.job_id}"] td.state-DONE', timeout=30_000)
        c.result(job)
    row = page.inner_text(f'#jobs tr[data-job="{job.job_id}"]')
    assert "paillier-packed" in row and "2 / 2" in row
    assert page.inner_text("#parties-online").strip() == "2 / 2"
    # The page refreshes every 2 s; wait for a refresh whose charts count the
    # finished job (empty minutes are zeros in the throughput chart, gaps in
    # the latency chart, so counting points alone would not show it).
    page.wait_for_function(f"(sel) => ({CHART_TOTAL})(sel) >= 1", arg="#chart-throughput", timeout=10_000)
    assert chart_points(page, "#chart-latency") >= 1
    page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)

    page.click("#tab-benchmarks")
    page.wait_for_selector('canvas[data-chart="aggregate:values_per_s:history"]', timeout=20_000)
    assert chart_points(page, 'canvas[data-chart="aggregate:values_per_s:latest"]') == 4
    assert chart_points(page, 'canvas[data-chart="aggregate:values_per_s:history"]') == 8  # 4 cases × 2 runs
    assert "PASS" in page.inner_text(".checks")
    page.screenshot(path=str(ARTIFACTS / "dashboard-benchmarks.png"), full_page=True)

    page.click("#logout button")
    page.wait_for_url(f"http://{exchange.http_address}/login", timeout=10_000)
    assert not [c for c in page.context.cookies() if c["name"] == "wharf_session"]
    assert not errors, errors
    page.close()


def test_bench_report_opens_with_its_charts(exchange: Exchange, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "wharf", "bench", "report", "--results",
                           str(exchange.bench_results), "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "from 2 record(s)" in done.stdout
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.wait_for_selector('canvas[data-chart="aggregate:values_per_s:latest"]', timeout=10_000)
    assert chart_points(page, 'canvas[data-chart="aggregate:values_per_s:history"]') == 8
    page.screenshot(path=str(ARTIFACTS / "bench-report.png"), full_page=True)
    assert not errors, errors
    page.close()
