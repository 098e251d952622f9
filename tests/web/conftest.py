"""Fixtures for the dashboard tests: a seeded database, the app, waitress in a thread, Chromium.

Browser tests need Debian's Chromium at /usr/bin/chromium (``.ci/run`` installs it). Where it
or Playwright is missing they are skipped with the reason, except in CI (``CI=true``), where a
missing browser is a failure: the browser tests must never silently stop running there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from listener.web.app import WebSettings, create_app
from listener.web.serve import make_server
from tests.web.seed import NOW, Seeded, seed

CHROMIUM = Path(os.environ.get("LISTENER_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
TOKEN = "test-token-0123456789abcdef"
REBINDING_NAME = "attacker.example"


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, Seeded]:
    path = tmp_path / "listener.db"
    return path, seed(path)


def make_app(path: Path, token: str | None = None) -> Flask:
    return create_app(WebSettings(database=path, token=token, clock=lambda: NOW,
                                  brand_words=frozenset({"acme", "globex"})))


@pytest.fixture
def app(seeded: tuple[Path, Seeded]) -> Flask:
    return make_app(seeded[0])


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@contextmanager
def running(app: Flask) -> Iterator[str]:
    """The real app on waitress, on a free 127.0.0.1 port, served from a daemon thread."""
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        def close_all() -> None:  # runs on the server's own loop thread
            for channel in list(server._map.values()):
                channel.close()

        server.trigger.pull_trigger(close_all)
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    with running(app) as url:
        yield url


def _require_browser() -> Any:
    """Playwright's sync API, or skip (fail in CI) when it or Chromium is missing."""
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[test]')"
    if problem is None and not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    if problem is not None:
        if in_ci:
            pytest.fail(f"browser tests cannot run in CI: {problem}")
        pytest.skip(f"browser tests skipped: {problem}")
    return sync_playwright


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    """One Playwright driver for the session (its sync API runs one at a time)."""
    sync_playwright = _require_browser()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Any) -> Iterator[Any]:
    chromium = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def rebinding_browser(playwright_driver: Any) -> Iterator[Any]:
    """Chromium whose resolver answers 127.0.0.1 for attacker.example: what a DNS rebinding
    attacker's name does once it has flipped (issue 14 #3)."""
    chromium = playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM), headless=True,
        args=[f"--host-resolver-rules=MAP {REBINDING_NAME} 127.0.0.1"])
    yield chromium
    chromium.close()


@contextmanager
def open_page(browser: Any) -> Iterator[Any]:
    """A fresh browser page; console errors (a CSP violation, a JS exception) fail the test.

    Open it inside the ``running`` block of the server it visits, so that it closes first:
    the other way round, a request still in flight when the test ends (the favicon, which
    Chromium asks for after the page's load event) had its connection closed under it, and
    the console's ``ERR_EMPTY_RESPONSE`` (or ``ERR_CONNECTION_REFUSED``) failed a test that
    had passed.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"browser console errors: {errors}"


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    """:func:`open_page` on the seeded dashboard (``base_url``), which pytest stops after the
    page has closed (the page asks for it: fixtures stop in the reverse order they start)."""
    with open_page(browser) as tab:
        yield tab


def screenshot(tab: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path
