"""Fixtures shared by the alert tests (``db`` and ``_no_proxy`` come from ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model() -> object:
    """The default model as the daemon serves it on a CPU machine (ONNX Runtime, int8): its
    sentence vectors group incidents. Loaded once per session from the session's cache."""
    import os

    from classifiers.onnx_backend import load_onnx_classifier

    return load_onnx_classifier(cache_dir=Path(os.environ["LISTENER_CACHE_DIR"]) / "onnx")
