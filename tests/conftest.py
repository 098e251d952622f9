"""Session-wide test settings and the fixtures every test folder shares.

``classifier.backend`` defaults to ``auto``, which on a CPU machine serves the default model
through ONNX Runtime from an exported encoder cached under ``$LISTENER_CACHE_DIR``. Point it at
one temporary folder for the whole session — inherited by the CLI subprocesses the tests start —
so tests never write into the user's own ``~/.cache`` and the export happens once per session.

Shared fixtures: ``_no_proxy`` (autouse: the fakes are reached directly) and ``db`` (a migrated
database of its own for each test).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

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
