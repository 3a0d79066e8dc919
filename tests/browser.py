"""Helpers for the tests that run pages in a real browser: Debian's Chromium, driven by Playwright for Python.

Playwright's own browser download is never used (it fails offline). The Chromium comes from the system
(``apt-get install chromium``), or from LATENTATLAS_CHROMIUM.
"""

import contextlib
import os
import shutil

import pytest

# Headless, and nothing that phones home: without the background-networking flags Chromium tries to reach
# Google's services at start-up, which a closed network refuses many times over.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions"]


def _unavailable(why: str):
    if os.environ.get("LATENTATLAS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required but {why}")
    pytest.skip(why)


@contextlib.contextmanager
def launch_chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright; the system Chromium is used)")
    exe = os.environ.get("LATENTATLAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        _unavailable("no Chromium found: apt-get install chromium, or set LATENTATLAS_CHROMIUM")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class WatchedPage:
    """A page that records console errors, uncaught exceptions and every request other than the page itself."""

    def __init__(self, browser, url: str, viewport=(1400, 1000)):
        self.url = url
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("request", lambda r: r.url.split("#")[0] != url and self.requests.append(r.url))
        self.page.goto(url)

    def wait_ready(self, timeout_ms: int = 20_000) -> "WatchedPage":
        """Wait until the page marks itself ready (``<body data-ready="1">``, as the explorer does once drawn)."""
        self.page.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
        return self

    def close(self):
        self.page.close()
