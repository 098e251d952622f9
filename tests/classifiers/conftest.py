"""Shared by the ONNX tests: one export per precision for the whole session, in a temporary
cache laid out like ``$LISTENER_CACHE_DIR`` (never the user's own cache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from classifiers.base import Classifier


@pytest.fixture(scope="session")
def cache_root() -> Path:
    """What ``LISTENER_CACHE_DIR`` points to: the session's folder (tests/conftest.py), so the
    exports made here are the ones the pipeline tests load through the defaults."""
    return Path(os.environ["LISTENER_CACHE_DIR"])


@pytest.fixture(scope="session")
def onnx_cache(cache_root: Path) -> Path:
    return cache_root / "onnx"


@pytest.fixture(scope="session")
def int8(onnx_cache: Path) -> Classifier:
    pytest.importorskip("onnxruntime")
    from classifiers.onnx_backend import load_onnx_classifier

    return load_onnx_classifier(quantize=True, cache_dir=onnx_cache)


@pytest.fixture(scope="session")
def fp32(onnx_cache: Path) -> Classifier:
    pytest.importorskip("onnxruntime")
    from classifiers.onnx_backend import load_onnx_classifier

    return load_onnx_classifier(quantize=False, cache_dir=onnx_cache, batch_size=7)
