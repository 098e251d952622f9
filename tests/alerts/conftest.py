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


@pytest.fixture(scope="session")
def model() -> object:
    """The default model as the daemon serves it on a CPU machine (ONNX Runtime, int8): its
    sentence vectors group incidents. Loaded once per session from the session's cache."""
    import os

    from classifiers.onnx_backend import load_onnx_classifier

    return load_onnx_classifier(cache_dir=Path(os.environ["LISTENER_CACHE_DIR"]) / "onnx")
