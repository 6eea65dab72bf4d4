"""A headless Chromium for tests that look at pages the service serves, with no network.

The browser is Debian's `chromium` package (`.ci/run` installs it; nothing downloads a browser
at test time), driven by Playwright with `executable_path`. Each test gets a fresh profile
(`--user-data-dir`), every request to a host other than loopback is refused and recorded (so a
page that needs a CDN fails visibly), and console errors are collected. Tests here skip, saying
why, only where no Chromium is installed.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.live_server import live_server
from tests.service.conftest import service_settings

LOOPBACK = ("127.0.0.1", "localhost")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Belt and braces beside the request filter: no name but loopback resolves at all.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


def chromium_executable() -> str | None:
    """Debian's Chromium (or $LISTSERVE_TEST_CHROMIUM), if installed."""
    candidates = [os.environ.get("LISTSERVE_TEST_CHROMIUM"), shutil.which("chromium")]
    candidates += ["/usr/bin/chromium", shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@dataclass
class BrowserPage:
    """A page in a fresh, offline browser profile, and what it tried that it should not."""

    page: object
    blocked_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[object]:
    """Playwright's sync driver, stopped after each module: while it runs, its event loop counts
    as running on the main thread, and later tests that call asyncio.run() would fail."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip(
            "no Chromium installed (apt-get install chromium; .ci/run does): browser tests skipped"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser_page(playwright_driver) -> Iterator[BrowserPage]:
    """A new page in headless Chromium with a fresh user-data-dir and no network but loopback."""
    profile = tempfile.mkdtemp(prefix="listserve-chromium-")
    context = playwright_driver.chromium.launch_persistent_context(
        profile,
        executable_path=chromium_executable(),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 800},
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        watched = BrowserPage(page)

        def only_loopback(route) -> None:
            if urlparse(route.request.url).hostname in LOOPBACK:
                route.continue_()
            else:
                watched.blocked_requests.append(route.request.url)
                route.abort()

        def console(message) -> None:
            if message.type == "error":
                watched.console_errors.append(message.text)

        context.route("**/*", only_loopback)
        page.on("console", console)
        page.on("pageerror", lambda error: watched.console_errors.append(str(error)))
        yield watched
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def served_app(tmp_path: Path, tiny_roberta_path: Path) -> Iterator[str]:
    """The service on a real port (tiny RoBERTa backbone, this test's own SQLite and store)."""
    with live_server(service_settings(tmp_path, tiny_roberta_path)) as base:
        yield base
