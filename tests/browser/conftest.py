"""Fixtures of the browser suite: the built book served on 127.0.0.1, and Chromium.

The suite drives the system Chromium (Debian's ``chromium`` package) through Playwright
for Python; it never downloads a browser. CDN files the pages load are served from local
copies of the same versions (``tools/cdn_assets.py``); any other request that leaves
127.0.0.1 is refused and reported.
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import shutil
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENABLE_HINT = ("install Chromium from your distribution (Debian/Ubuntu: "
               "`sudo apt-get install chromium fonts-noto-cjk`) or set FANCYDL_CHROMIUM "
               "to a Chromium executable, then run `make test` again")


def chromium_path():
    """The Chromium executable to drive, or None."""
    configured = os.environ.get("FANCYDL_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site():
    """Base URL of ``_build/html`` served over http (require.js needs http, not file://)."""
    if not (HTML / "book" / "intro.html").is_file():
        pytest.fail("the book is not built: run `make book` (or `make book-strict`) first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _skip_or_fail(reason):
    """Skip with instructions; fail instead where CI requires the browser tests."""
    if os.environ.get("FANCYDL_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}, and FANCYDL_REQUIRE_BROWSER is set")
    pytest.skip(f"browser tests skipped: {reason}; {ENABLE_HINT}")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("Playwright for Python is not installed")
    executable = chromium_path()
    if executable is None:
        _skip_or_fail("no Chromium found")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
