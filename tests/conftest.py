"""Session-wide test settings and the fixtures every test folder shares.

``classifier.backend`` defaults to ``auto``, which on a CPU machine serves the default model
through ONNX Runtime from an exported encoder cached under ``$LISTENER_CACHE_DIR``. Point it at
one temporary folder for the whole session — inherited by the CLI subprocesses the tests start —
so tests never write into the user's own ``~/.cache`` and the export happens once per session.

Shared fixtures: ``_no_proxy`` (autouse: the fakes are reached directly),
``_library_log_levels`` (autouse: logger levels put back after each test), ``db`` (a migrated
SQLite database of its own for each test), ``any_db`` (the same, once on SQLite and once on
PostgreSQL) and ``pg_server`` (the session's PostgreSQL server, :mod:`tests.pg_server`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from listener.core.log import CHATTY_LIBRARIES
from tests.pg_server import Server

if TYPE_CHECKING:
    from sqlite_utils import Database

_CREATED: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if "LISTENER_CACHE_DIR" not in os.environ:
        _CREATED.append(tempfile.mkdtemp(prefix="listener-test-cache-"))
        os.environ["LISTENER_CACHE_DIR"] = _CREATED[0]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fake runs on 127.0.0.1: a proxy from the environment must not sit in between
    (httpx, requests and urllib all honour these variables)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _library_log_levels() -> Iterator[None]:
    """The third-party loggers' levels as they were before the test: a test that sets the
    daemon's logging up (the CLI does) holds httpx and the other chatty libraries at WARNING
    (``listener.core.log.quiet_libraries``), and a later test reading their records through
    ``caplog`` would then pass or fail by the order the tests ran in (the sinks' token-leak
    tests did). Handlers are pytest's own to manage; only levels are put back."""
    names = ("", *CHATTY_LIBRARIES)
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """The session's PostgreSQL server (:mod:`tests.pg_server`). Missing binaries skip the
    PostgreSQL cases on a developer's machine; in CI they fail, as a missing browser does."""
    server = Server()
    if not server.available:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql)")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database of its own for each test, once on each engine: an SQLite file and
    a PostgreSQL database — the same verbs must behave the same on both."""
    from storage.db import open_db

    if request.param == "sqlite":
        conn = open_db(tmp_path / "fixture.db")
    else:
        conn = open_db(request.getfixturevalue("pg_server").new_database())
    yield conn
    conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A real SQLite file under ``tmp_path`` with every migration applied, closed afterwards."""
    from storage.db import open_db

    conn = open_db(tmp_path / "fixture.db")
    yield conn
    conn.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _CREATED:
        shutil.rmtree(folder, ignore_errors=True)
