"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

Screenshots land in test-artifacts/ (or $WHARF_TEST_ARTIFACTS). Without
Chromium the test skips and says how to install it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from benchmarks.harness import Record
from tests.e2e.browser import ARTIFACTS, TOKEN, launch, needs_chromium
from tests.exchange import Exchange, StartExchange


pytestmark = needs_chromium


def write_records(folder: Path) -> None:
    """Two full aggregate runs and a later quick one; psi with quick runs only, over two sizes."""
    day = 86_400
    for i, (ts, speed, speedup) in enumerate(((1_700_000_000, 4.0e5, 230.0), (1_700_000_000 + day, 5.5e5, 242.0))):
        rec = Record("aggregate", False, {"holders": 10, "values_per_holder": 100_000}, started=float(ts))
        rec.add("plaintext@inprocess", "values_per_s", [1.1e9], "values/s")
        rec.add("paillier-naive@inprocess", "values_per_s", [66.0], "values/s", n=200)
        rec.add("paillier-packed@inprocess", "values_per_s", [66.0 * speedup], "values/s", n=100_000)
        rec.add("ckks@inprocess", "values_per_s", [speed], "values/s", n=100_000)
        rec.add("ckks@gateway", "seconds", [2.3 - i * 0.2], "s", n=100_000)
        rec.add("ckks@gateway-insecure", "seconds", [2.0 - i * 0.2], "s", n=100_000)
        rec.check("packed_vs_naive_paillier_speedup", speedup, ">= 50", lambda x: x >= 50)
        ratio = (2.3 - i * 0.2) / (10 * 100_000 / speed)
        rec.check("ckks_gateway_over_inprocess_time", ratio, "<= 1.5", lambda x: x <= 1.5)
        rec.check("ckks_10x100k_gateway_seconds", 2.3 - i * 0.2, "< 3 (full run)", lambda x: x < 3)
        rec.write(results_dir=folder)
    quick = Record("aggregate", True, {"holders": 3, "values_per_holder": 1000}, started=float(1_700_000_000 + 2 * day))
    quick.add("ckks@inprocess", "values_per_s", [1e5], "values/s", n=1000)
    quick.check("packed_vs_naive_paillier_speedup", 12.0, ">= 50", lambda x: x >= 50)
    quick.write(results_dir=folder)
    for i, ts in enumerate((1_700_000_000 + 3600, 1_700_000_000 + day + 3600)):
        rec = Record("psi", True, {"sizes": [4096, 16384]}, started=float(ts))
        for n in (4096, 16384):
            rec.add("hash-join", "seconds", [n * 1e-7], "s", n=n)
            rec.add("dh-floor", "seconds", [n * 1e-4], "s", n=n)
            rec.add("psi@inprocess", "seconds", [n * 2.5e-4], "s", n=n)
            rec.add("psi@gateway", "seconds", [n * (1.3e-4 - i * 1e-5)], "s", n=n)
            rec.add("psi@gateway", "bytes_per_element", [96.7], "bytes", n=n)
            rec.check(f"gateway_over_dh_floor_n{n}", 1.3 - i * 0.1, "<= 1.5", lambda x: x <= 1.5)
        rec.add("psi@gateway-insecure", "seconds", [16384 * 1.25e-4], "s", n=16384)
        if i == 0:  # the peer is installed for the first run only
            rec.add("openmined", "seconds", [16384 * 5e-4], "s", n=16384)
        rec.check("openmined_over_gateway_n16384", 3.85 if i == 0 else None, ">= 3", lambda x: x >= 3)
        rec.check("tls_and_signing_over_insecure_n16384", 1.04 - i * 0.08, "<= 1.25", lambda x: x <= 1.25)
        rec.write(results_dir=folder)


CHECKS = {"aggregate": 3, "psi": 4}  # rows in each benchmark's summary: the checks of the run it shows
MIN_CANVAS = 240

# Every layout fault of the benchmarks view, as text: a summary table with the wrong number of rows or
# wider than its card, a chart narrower than MIN_CANVAS or collapsed, a canvas or legend outside its card,
# a page wider than the window.
LAYOUT_PROBLEMS = """([checks, minWidth]) => {
  const out = [];
  const inside = (r, c) => r.left >= c.left - 1 && r.right <= c.right + 1 && r.top >= c.top - 1 && r.bottom <= c.bottom + 1;
  const fmt = (r) => `[${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.right)},${Math.round(r.bottom)}]`;
  if (document.documentElement.scrollWidth > window.innerWidth) out.push(`page ${document.documentElement.scrollWidth}px wide`);
  for (const [name, rows] of Object.entries(checks)) {
    const table = document.querySelector(`.bench[data-benchmark="${name}"] table.bench-summary`);
    if (!table) { out.push(`${name}: no summary table`); continue; }
    const got = table.querySelectorAll("tr.check-row").length;
    if (got !== rows) out.push(`${name}: ${got} check rows, not ${rows}`);
    if (table.scrollWidth > table.parentElement.clientWidth + 1) out.push(`${name}: summary table wider than its card`);
  }
  for (const canvas of document.querySelectorAll(".bench canvas")) {
    const key = canvas.dataset.chart, chart = Chart.getChart(canvas);
    const card = canvas.closest(".chart-card").getBoundingClientRect(), r = canvas.getBoundingClientRect();
    if (r.width < minWidth) out.push(`${key}: canvas ${Math.round(r.width)}px wide`);
    if (!inside(r, card)) out.push(`${key}: canvas ${fmt(r)} outside its card ${fmt(card)}`);
    if (!chart) { out.push(`${key}: no chart`); continue; }
    if (chart.chartArea.bottom - chart.chartArea.top < 60) out.push(`${key}: plot area collapsed`);
    const legend = chart.legend;
    if (legend && legend.options.display) {
      const boxes = [{left: legend.left, top: legend.top, width: legend.width, height: legend.height}]
        .concat(legend.legendHitBoxes || []);
      for (const b of boxes) {
        const abs = {left: r.left + b.left, top: r.top + b.top, right: r.left + b.left + b.width, bottom: r.top + b.top + b.height};
        if (!inside(abs, card)) out.push(`${key}: legend ${fmt(abs)} outside its card ${fmt(card)}`);
      }
    }
  }
  return out;
}"""

# Chart.js follows its container on the next frame after a resize; until then sizes are stale.
CHARTS_SETTLED = """() => [...document.querySelectorAll('.bench canvas')].every(
  (c) => Math.abs(c.getBoundingClientRect().width - c.parentElement.clientWidth) < 1.5)"""


def check_bench_layout(page, shot: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(CHARTS_SETTLED, timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    assert page.evaluate(LAYOUT_PROBLEMS, [CHECKS, MIN_CANVAS]) == [], shot


def check_bench_answers(page) -> None:  # type: ignore[no-untyped-def]
    """The answers at the top of each benchmark: the run shown, its checks, the previous run and the change."""
    agg = '.bench[data-benchmark="aggregate"]'
    assert "latest full run" in page.inner_text(f"{agg} .run-badge")  # the later quick run is not the one shown
    row = page.locator(f'{agg} tr.check-row[data-check="packed_vs_naive_paillier_speedup"] td')
    cells = [row.nth(i).inner_text() for i in range(row.count())]
    assert "paillier-packed@inprocess" in cells[1] and "paillier-naive@inprocess" in cells[2]
    assert cells[3] == "242×" and cells[5] == "pass" and cells[6] == "230×" and cells[7] == "+5.22 %"
    assert chart_points(page, 'canvas[data-chart="aggregate:values_per_s:latest"]') == 4
    # The quick run's figure stays out of the full runs' history.
    assert chart_points(page, 'canvas[data-chart="aggregate:check:packed_vs_naive_paillier_speedup:history"]') == 2
    psi = '.bench[data-benchmark="psi"]'
    assert "latest quick run" in page.inner_text(f"{psi} .run-badge")
    peer = page.locator(f'{psi} tr.check-row[data-check="openmined_over_gateway_n16384"]')
    assert "not measured" in peer.inner_text() and peer.locator(".verdict").inner_text() == "n/a"
    # By size: one line per implementation, n on the x axis.
    sweep = 'canvas[data-chart="psi:seconds:latest"]'
    assert page.evaluate("(s) => Chart.getChart(document.querySelector(s)).config.type", sweep) == "line"
    assert chart_points(page, sweep) == 9  # four implementations at two sizes, the insecure gateway at one


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange, tmp_path_factory: pytest.TempPathFactory) -> Exchange:
    results = tmp_path_factory.mktemp("bench-results")
    write_records(results)
    return start_exchange("browser", parties=("st-mary", "riverside"), rows=300, http=True, http_token=TOKEN,
                          bench_results=results)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


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
    page.wait_for_selector('canvas[data-chart="aggregate:check:packed_vs_naive_paillier_speedup:history"]',
                           timeout=20_000)
    check_bench_answers(page)
    check_bench_layout(page, "bench-dashboard-1400.png")
    page.set_viewport_size({"width": 800, "height": 1200})  # the same page, reflowed
    check_bench_layout(page, "bench-dashboard-800.png")

    page.click("#logout button")
    page.wait_for_url(f"http://{exchange.http_address}/login", timeout=10_000)
    assert not [c for c in page.context.cookies() if c["name"] == "wharf_session"]
    assert not errors, errors
    page.close()


def test_bench_report_opens_with_its_charts(exchange: Exchange, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "wharf", "bench", "report", "--results",
                           str(exchange.bench_results), "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "from 5 record(s)" in done.stdout
    for width, height in ((1400, 1000), (800, 1200)):
        page = browser.new_page(viewport={"width": width, "height": height})
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_selector('canvas[data-chart="aggregate:values_per_s:latest"]', timeout=10_000)
        check_bench_answers(page)
        check_bench_layout(page, f"bench-report-{width}.png")
        assert not errors, errors
        page.close()
