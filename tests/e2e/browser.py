"""Headless Debian Chromium driven by Playwright, shared by the browser tests.

Screenshots land in ARTIFACTS (test-artifacts/, or $WHARF_TEST_ARTIFACTS).
Without Chromium, ``needs_chromium`` skips a module and says how to install it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("WHARF_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
TOKEN = "operator-token-0123456789"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not found: install Debian's package (`apt-get install chromium`; .ci/run does) to run this test",
)


def launch() -> Iterator[object]:
    """A browser for a module's ``browser`` fixture, closed when the module ends."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency: make test installs it")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()
