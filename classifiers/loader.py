"""Pick the classifier a config names. Model modules are imported only when chosen (torch is
heavy: a process served by ONNX Runtime never imports it).

- ``"default"``: the bundled model (all-MiniLM-L6-v2 with its fine-tuning adapter + trained
  heads), served by ONNX Runtime in int8 (CPU only, no torch in the serving process) or torch;
  ``backend="auto"`` (the default) picks ONNX Runtime unless the machine has an NVIDIA GPU;
- anything else: a Hugging Face sequence-classification model id (from the local cache, never
  downloaded) or a local model directory, with its labels mapped through ``id2label``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from classifiers.base import Classifier
from listener.errors import ClassifierError, MissingDependency

log = logging.getLogger(__name__)

DEFAULT = "default"
BACKENDS = ("auto", "torch", "onnx")
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # present when an NVIDIA driver is loaded


def load_classifier(
    spec: str = DEFAULT,
    *,
    batch_size: int = 32,
    device: str = "auto",
    labels: Mapping[str, str] | None = None,
    urgency: str = "default",
    backend: str = "auto",
    cache_dir: Path | None = None,
) -> Classifier:
    """Load the model named by ``spec`` once; reuse the returned object for every batch.

    ``cache_dir`` is where the onnx backend keeps its exported encoder (default:
    ``classifiers.onnx_export.default_cache_dir()``); the torch backend ignores it.
    """
    if batch_size < 1:
        raise ClassifierError(f"batch size must be at least 1, got {batch_size}")
    if backend not in BACKENDS:
        raise ClassifierError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    if spec == DEFAULT and labels:
        raise ClassifierError("classifier.labels applies to Hugging Face models only")
    if backend == "auto" and auto_backend(spec, device) == "onnx":
        try:
            return _load_onnx(spec, batch_size=batch_size, device=device, cache_dir=cache_dir)
        except (ClassifierError, MissingDependency) as exc:  # scoring goes on, slower
            log.warning("backend auto: ONNX Runtime is unavailable (%s); serving with torch", exc)
    if backend == "onnx":
        return _load_onnx(spec, batch_size=batch_size, device=device, cache_dir=cache_dir)
    if spec == DEFAULT:
        from classifiers.artifacts import DEFAULT_HEADS_DIR
        from classifiers.transformer import TransformerClassifier

        return TransformerClassifier(DEFAULT_HEADS_DIR, batch_size=batch_size, device=device)
    from classifiers.hf import load_hf_classifier

    return load_hf_classifier(
        spec, batch_size=batch_size, device=device, labels=labels, urgency=urgency
    )


def auto_backend(spec: str, device: str) -> str:
    """What ``auto`` means here: ONNX Runtime for the default model on the CPU — 3× torch's
    speed at 40 % of its memory on a small machine — and torch for any other model, an
    explicit cuda device, or a machine with an NVIDIA driver (checked without importing torch,
    whose import alone costs ~200 MB)."""
    on_cpu = device == "cpu" or (device == "auto" and not NVIDIA_DRIVER.exists())
    return "onnx" if spec == DEFAULT and on_cpu else "torch"


def _load_onnx(spec: str, *, batch_size: int, device: str, cache_dir: Path | None) -> Classifier:
    """The default model on ONNX Runtime, int8 (the config checks the same, naming the keys)."""
    if spec != DEFAULT:
        raise ClassifierError(
            f"the onnx backend serves the model 'default' only, not {spec!r}: use backend torch"
        )
    if device not in ("auto", "cpu"):
        raise ClassifierError(
            f"the onnx backend runs on the CPU: use device auto or cpu, not {device!r}"
        )
    from classifiers.onnx_backend import load_onnx_classifier

    return load_onnx_classifier(batch_size=batch_size, cache_dir=cache_dir)
