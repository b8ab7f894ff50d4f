"""Browser tests: real headless Chromium (Debian's `chromium` package) driven by Playwright for
Python against pytest-django's live server. `make test` installs Chromium when it can; when it
cannot, these tests are skipped with a banner that says so (never silently)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Screenshots land in the ignored run dir; SCREENSHOTS_DIR=docs/screenshots refreshes the README's.
SCREENSHOTS_DIR = Path(os.environ.get("SCREENSHOTS_DIR") or BASE_DIR / ".run" / "screenshots")

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


def chromium_missing() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium not found at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed"
    return ""


def _needs_browser(item: pytest.Item) -> bool:
    # Only the tests that drive the browser: other e2e tests (real workers) still run.
    return "browser" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = chromium_missing()
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"BROWSER TESTS NOT RUN: {missing}")
    skipped = [item for item in items if _needs_browser(item)]
    for item in skipped:
        item.add_marker(skip)
    config._e2e_skipped = (missing, len(skipped))  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    skipped = getattr(config, "_e2e_skipped", None)
    if not skipped:
        return
    missing, count = skipped
    line = "!" * 78
    terminalreporter.write_line(line, red=True, bold=True)
    terminalreporter.write_line(
        f"!!! {count} BROWSER TESTS (tests/e2e) WERE SKIPPED: {missing}.", red=True, bold=True
    )
    terminalreporter.write_line(
        "!!! Install Debian's chromium (`apt-get install chromium`, which `make test` does as "
        "root) to run them.",
        red=True,
        bold=True,
    )
    terminalreporter.write_line(line, red=True, bold=True)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One Chromium per test module. Playwright's sync API keeps an event loop in this thread
    while it is open, and the ORM calls the tests make between browser steps are plain
    synchronous code: Django's async guard stands aside for exactly that long (the variable
    must not leak to other tests or to the subprocesses they start)."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def e2e_settings(settings):
    settings.STAFF_TIMELINE_POLL_SECONDS = 1
    return settings


@pytest.fixture
def page(browser, live_server, e2e_settings) -> Iterator:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    context.set_default_timeout(10_000)
    page = context.new_page()
    # 127.0.0.1, not "localhost": Chromium may try HTTPS first for a host name.
    page.base_url = live_server.url.replace("localhost", "127.0.0.1")  # type: ignore[attr-defined]
    yield page
    context.close()


@pytest.fixture
def screenshot():
    def take(page, name: str, **kwargs) -> Path:
        SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS_DIR / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path

    return take
