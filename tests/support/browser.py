"""Real-browser fixtures: Playwright's sync API driving Debian's Chromium.

``chromium`` is one headless Chromium (``/usr/bin/chromium``, from Debian's ``chromium`` package,
which ``.ci/run`` installs; never a browser build Playwright downloads) for the whole session.
``page`` is a fresh page in a fresh browser context for one test, with a 5 s default timeout;
a JavaScript error in any page of that context fails the test. When Chromium is not installed
the browser tests fail if ``CI`` is set, and are skipped otherwise. Tests that use them are marked
``browser`` automatically (``pytest -m "not browser"`` leaves them out).

Use them from plain (sync) test functions, never from ``anyio`` tests. Playwright's sync API
runs its own asyncio loop in a greenlet and, after each call, marks that loop as the running loop
of the main thread; while that is so, every ``asyncio.run`` or ``anyio`` test in the session
fails with "cannot be called from a running event loop". So the loop is marked running only
while a browser test runs, and unmarked between tests (``_playwright_loop_guard``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, WebError, sync_playwright

DEBIAN_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
DEFAULT_TIMEOUT_MS = 5_000


def chromium_executable() -> str | None:
    """Debian's Chromium launcher, or ``None`` when it is not installed."""
    found = shutil.which("chromium")
    if found:
        return found
    return DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else None


@dataclass(frozen=True)
class _BrowserSession:
    browser: Browser
    loop: asyncio.AbstractEventLoop


def _unmark_running_loop() -> None:
    asyncio._set_running_loop(None)


@pytest.fixture(scope="session")
def _browser_session() -> Iterator[_BrowserSession]:
    executable = chromium_executable()
    if executable is None:
        message = (
            "Chromium is not installed: apt-get install --no-install-recommends chromium "
            "(.ci/run does)"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        loop = asyncio.get_running_loop()  # Playwright's, marked running by the sync API
        _unmark_running_loop()
        try:
            yield _BrowserSession(browser, loop)
        finally:
            asyncio._set_running_loop(loop)
            browser.close()
    finally:
        playwright.stop()  # runs the loop to its end, which unmarks it again


@pytest.fixture(scope="session")
def chromium(_browser_session: _BrowserSession) -> Browser:
    """The session's headless Chromium (Playwright's sync API; use from sync tests only)."""
    return _browser_session.browser


@pytest.fixture(autouse=True)
def _playwright_loop_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Mark Playwright's loop as running for the browser tests only (see the module's doc)."""
    if "_browser_session" not in request.fixturenames:
        yield
        return
    if inspect.iscoroutinefunction(request.function):
        pytest.fail("the browser fixtures use Playwright's sync API: write a sync test")
    session: _BrowserSession = request.getfixturevalue("_browser_session")
    asyncio._set_running_loop(session.loop)
    try:
        yield
    finally:
        _unmark_running_loop()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A new page in a new browser context (its own cookies and storage) for one test."""
    context = chromium.new_context()
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    errors: list[WebError] = []

    def on_error(error: WebError) -> None:
        errors.append(error)

    context.on("weberror", on_error)
    try:
        yield context.new_page()
    finally:
        context.close()
    if errors:
        pytest.fail(
            "JavaScript errors in the page: " + "; ".join(str(e.error) for e in errors),
            pytrace=False,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "_browser_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
