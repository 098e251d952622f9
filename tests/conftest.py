"""Session-wide test settings and the fixtures every test folder shares.

``classifier.backend`` defaults to ``auto``, which on a CPU machine serves the default model
through ONNX Runtime from an exported encoder cached under ``$LISTENER_CACHE_DIR``. Point it at
one temporary folder for the whole session — inherited by the CLI subprocesses the tests start —
so tests never write into the user's own ``~/.cache`` and the export happens once per session.

Shared fixtures: ``_no_proxy`` (autouse: the fakes are reached directly), ``db`` (a migrated
SQLite database of its own for each test), ``any_db`` (the same, once on SQLite and once on
PostgreSQL) and ``pg_server`` (the session's PostgreSQL server, :mod:`tests.pg_server`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

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
