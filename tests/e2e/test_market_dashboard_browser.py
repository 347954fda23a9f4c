"""The dashboard's market panels in a real browser: pending reviews, revenue per holder per day, grants by state."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from buyers.grants import GrantClient
from datawharf.pki import Role
from tests.e2e.browser import ARTIFACTS, TOKEN, launch, needs_chromium
from tests.exchange import Exchange
from wharf.cli import app as cli_app

pytestmark = needs_chromium


def ok(*args: str | Path) -> Any:
    out = subprocess.run([sys.executable, "-m", "wharf", *map(str, args), "--json"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    ex = Exchange(tmp_path_factory.mktemp("market-browser"), parties=("st-mary", "riverside"), rows=300,
                  http=True, http_token=TOKEN, review=True)
    try:
        yield ex.start()
    finally:
        ex.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def test_pending_reviews_then_revenue(exchange: Exchange, browser) -> None:  # type: ignore[no-untyped-def]
    ex = exchange
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"http://{ex.http_address}/login")
    page.fill("#token", TOKEN)
    page.click("#sign-in")
    page.wait_for_url(f"http://{ex.http_address}/", timeout=20_000)
    page.wait_for_function("() => document.getElementById('pending-count').textContent === '0'", timeout=20_000)
    assert page.is_visible("#pending-none") and page.is_visible("#revenue-none")

    listed = {}
    for party, price in (("st-mary", "20.00"), ("riverside", "12.50")):
        listed[party] = ok("listing", "submit", "--config", ex.root / f"{party}.toml", "--dataset", "visits",
                           "--title", f"{party} visits", "--classification", "sensitive", "--personal-data", "yes",
                           "--price-per-job", price, "--currency", "CNY")["listing_id"]
    for party, listing_id in listed.items():
        page.wait_for_selector(f'#pending tr[data-listing="{listing_id}"]', timeout=20_000)
    assert page.inner_text("#pending-count") == "2"
    row = page.inner_text(f'#pending tr[data-listing="{listed["riverside"]}"]')
    assert "riverside" in row and "12.50 CNY (per-holder)" in row and "PENDING" in row
    page.screenshot(path=str(ARTIFACTS / "dashboard-market-pending.png"), full_page=True)

    operator = ex.identity("ops", Role.OPERATOR)
    for listing_id in listed.values():
        ok("listing", "approve", listing_id, "--note", "ok", "-g", ex.address, "-i", operator)
    page.wait_for_function("() => document.getElementById('pending-count').textContent === '0'", timeout=20_000)
    assert page.locator("#pending tbody tr").count() == 0

    ex.wait_online(["st-mary", "riverside"])
    with ex.client() as c:
        for _ in range(2):
            c.result(c.submit("visits", "cost", "sum", min_parties=2, timeout_s=60))
    day = time.strftime("%Y-%m-%d", time.gmtime())
    for party, amount in (("st-mary", "40.00 CNY"), ("riverside", "25.00 CNY")):
        selector = f'#revenue tr[data-revenue="{day}/{party}"]'
        page.wait_for_selector(selector, timeout=20_000)
        # The panel refreshes every 2 s: it may show the first job's charge before the second's.
        page.wait_for_function(f"""() => (document.querySelector('{selector}') || {{}}).innerText
                                      ?.includes('{amount}')""", timeout=20_000)
        cells = page.locator(f"{selector} td")
        assert [cells.nth(i).inner_text() for i in range(4)] == [day, party, "2", amount]
    assert not page.is_visible("#revenue-none")
    page.screenshot(path=str(ARTIFACTS / "dashboard-market-revenue.png"), full_page=True)

    # Grants by state: a request to both holders, one approved (signed by the holder), one rejected.
    page.wait_for_function("() => document.querySelector('#grants [data-grant=PENDING]').textContent === '0'",
                           timeout=20_000)
    with GrantClient(ex.address, ex.identity("acme-insurance")) as b:
        made = {g.party: g.id for g in b.request("visits", "pricing", ["sum"], time.time() + 86400, 5)}
    page.wait_for_function("() => document.querySelector('#grants [data-grant=PENDING]').textContent === '2'",
                           timeout=20_000)
    CliRunner().invoke(cli_app, ["grant", "approve", made["st-mary"], "--config", str(ex.root / "st-mary.toml")])
    CliRunner().invoke(cli_app, ["grant", "reject", made["riverside"], "--reason", "no",
                                 "--config", str(ex.root / "riverside.toml")])
    page.wait_for_function("() => document.querySelector('#grants [data-grant=APPROVED]').textContent === '1'"
                           " && document.querySelector('#grants [data-grant=REJECTED]').textContent === '1'"
                           " && document.querySelector('#grants [data-grant=PENDING]').textContent === '0'",
                           timeout=20_000)
    assert not errors, errors
    page.close()
