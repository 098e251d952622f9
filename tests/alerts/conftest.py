"""Fixtures shared by the alert tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage import db as store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A real SQLite file with every migration applied (the outbox the sinks deliver from)."""
    conn = store.open_db(tmp_path / "d.db")
    yield conn
    conn.close()
