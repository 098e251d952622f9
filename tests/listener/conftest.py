"""Fixtures the command-line tests share (``pytestmark = pytest.mark.usefixtures(...)``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def logging_state() -> Iterator[None]:
    """Commands set logging up from the config (the root logger, some libraries' levels): put
    it back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    libraries = {name: logging.getLogger(name).level for name in ("apscheduler", "urllib3")}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in libraries.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The smallest config a command runs with: a database beside it, no metrics port."""
    path = tmp_path / "config.yaml"
    path.write_text("storage: {path: listener.db}\nmetrics: {port: null}\n")
    return path
