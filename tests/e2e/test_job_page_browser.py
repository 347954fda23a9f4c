"""One job's page in a real browser: headless Debian Chromium driven by Playwright.

A job waits for a holder that is offline, so the page is seen live; the
holder then comes back and the page follows the job to DONE and stops
polling. Screenshots land in test-artifacts/ (or $WHARF_TEST_ARTIFACTS).
Without Chromium the test skips and says how to install it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.browser import ARTIFACTS, TOKEN, launch, needs_chromium
from tests.exchange import ALL_STATS, Exchange, StartExchange
from wharf.demo import party_config

LATE = "riverside"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("job-page", parties=("st-mary", LATE), rows=300, http=True, http_token=TOKEN)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def bring_back(exchange: Exchange, name: str) -> None:
    exchange.start_party(name, party_config(name, exchange.address, exchange.sources[name],
                                            ward_source=exchange.wards[name], statistics=ALL_STATS))


def test_job_page_follows_a_job_to_done(exchange: Exchange, browser) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    exchange.stop_party(LATE)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    base = f"http://{exchange.http_address}"
    page.goto(f"{base}/login")
    page.fill("#token", TOKEN)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/", timeout=10_000)
    page.wait_for_selector(f'#parties tr[data-party="{LATE}"] td.offline', timeout=30_000)

    with exchange.client() as c:
        # Naming the offline holder makes the job wait for it instead of leaving it out.
        job = c.submit("visits", "cost", "sum", parties=["st-mary", LATE], min_parties=2, timeout_s=120)
        link = f'#jobs tr[data-job="{job.job_id}"] a'
        page.wait_for_selector(link, timeout=20_000)
        assert page.get_attribute(link, "href") == f"jobs/{job.job_id}"
        page.click(link)
        page.wait_for_url(f"{base}/jobs/{job.job_id}", timeout=10_000)

        tasks = "#job-tasks tbody"
        page.wait_for_selector(f'{tasks} tr[data-party="st-mary"] td.state-CONTRIBUTED', timeout=30_000)
        assert page.is_visible("#job-live")  # still polling: the job waits for the late holder
        assert page.inner_text(f'{tasks} tr[data-party="{LATE}"] td.state').strip() == "PENDING"
        assert page.inner_text("#job-facts dd[data-field=buyer]").strip() == "acme-insurance"
        assert page.inner_text("#job-facts dd[data-field=finished_at]").strip() == "–"
        page.screenshot(path=str(ARTIFACTS / "job-page-running.png"), full_page=True)

        bring_back(exchange, LATE)
        page.wait_for_selector("#job-state.state-DONE", timeout=60_000)
        c.result(job)

    for party in ("st-mary", LATE):
        row = f'{tasks} tr[data-party="{party}"]'
        assert page.inner_text(f"{row} td.state").strip() == "CONTRIBUTED"
        assert re.fullmatch(r"\d+(\.\d+)? (s|min)", page.inner_text(f"{row} td.answer").strip())
        assert re.fullmatch(r"\d+(\.\d)? (B|KiB|MiB)", page.inner_text(f"{row} td.bytes").strip())
    assert page.is_hidden("#job-live")
    assert page.inner_text("#job-facts dd[data-field=type]").strip() == "aggregate"
    events = page.eval_on_selector_all("#job-history tbody tr", "rows => rows.map(r => r.dataset.event)")
    assert events[0] == "job_submitted" and events[-2:] == ["job_done", "destroyed"]
    assert events.count("contribution") == 2
    assert page.is_hidden("#job-stages-section")  # an aggregation has no PSI stages

    # Final: the page stops asking (one more poll interval would show up here).
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/api/jobs/" in r.url else None)
    page.wait_for_timeout(3_500)
    assert polls == []

    page.screenshot(path=str(ARTIFACTS / "job-page-1400.png"), full_page=True)
    page.set_viewport_size({"width": 800, "height": 1200})
    page.wait_for_timeout(200)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 800, f"the page is {width} px wide in an 800 px window"
    page.screenshot(path=str(ARTIFACTS / "job-page-800.png"), full_page=True)

    page.goto(f"{base}/jobs/job-0123456789abcdef")
    page.wait_for_selector("#job-error:not([hidden])", timeout=10_000)
    assert "no job job-0123456789abcdef" in page.inner_text("#job-error")
    assert not errors, errors
    page.close()
