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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from classifiers.base import Classifier
from classifiers.routing import ANY, ENGLISH_ONLY, LanguageRouter, languages_of
from listener.core.errors import ClassifierError, MissingDependency

log = logging.getLogger(__name__)

DEFAULT = "default"
# the default model's two halves, for a language map that wants only one of them
DEFAULT_ENGLISH = "default-english"
DEFAULT_MULTILINGUAL = "default-multilingual"
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
    heads_dir: Path | None = None,
) -> Classifier:
    """Load the model named by ``spec`` once; reuse the returned object for every batch.

    ``cache_dir`` is where the onnx backend keeps its exported encoder (default:
    ``classifiers.onnx_export.default_cache_dir()``); the torch backend ignores it.
    ``heads_dir``: the default model's folder (default: the committed one); a model promoted
    from reviewers' corrections is ``classifiers.model_store.active_heads_dir(models_dir)``.
    Other models ignore it.
    """
    if batch_size < 1:
        raise ClassifierError(f"batch size must be at least 1, got {batch_size}")
    if backend not in BACKENDS:
        raise ClassifierError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    if spec == DEFAULT and labels:
        raise ClassifierError("classifier.labels applies to Hugging Face models only")
    if backend == "auto" and auto_backend(spec, device) == "onnx":
        try:
            return _load_onnx(spec, batch_size=batch_size, device=device, cache_dir=cache_dir,
                              heads_dir=heads_dir)
        except (ClassifierError, MissingDependency) as exc:  # scoring goes on, slower
            log.warning("backend auto: ONNX Runtime is unavailable (%s); serving with torch", exc)
    if backend == "onnx":
        return _load_onnx(spec, batch_size=batch_size, device=device, cache_dir=cache_dir,
                          heads_dir=heads_dir)
    if spec == DEFAULT:
        from classifiers.artifacts import DEFAULT_HEADS_DIR
        from classifiers.transformer import TransformerClassifier

        return TransformerClassifier(heads_dir or DEFAULT_HEADS_DIR, batch_size=batch_size,
                                     device=device)
    from classifiers.hf import load_hf_classifier

    return load_hf_classifier(
        spec, batch_size=batch_size, device=device, labels=labels, urgency=urgency
    )


def load_routed(
    spec: str = DEFAULT,
    models: Mapping[str, str] | None = None,
    *,
    detect: Callable[[str], str] | None = None,
    **options: Any,
) -> LanguageRouter:
    """The classifier a config names, routed by language (:mod:`classifiers.routing`).

    ``models`` maps language codes to specs, ``"*"`` for every other language (default:
    ``spec``). ``default`` means both halves of the bundled model: all-MiniLM-L6-v2 + heads for
    English (and posts too short to tell), multilingual-e5-small + heads for the seven other
    languages it was trained on and, as a best guess flagged unsupported, for every language
    nobody covers. ``default-english`` and ``default-multilingual`` name one half. A Hugging
    Face model mapped to a language is taken to understand that language. Each distinct spec is
    loaded once; ``options`` are :func:`load_classifier`'s.
    """
    wanted = dict(models or {})
    wanted.setdefault(ANY, spec)
    loaded: dict[str, Classifier] = {}

    def get(name: str) -> Classifier:
        if name not in loaded:
            if name == DEFAULT_MULTILINGUAL:
                from classifiers.multilingual import MultilingualClassifier

                loaded[name] = MultilingualClassifier()
            else:
                bundled = name in (DEFAULT, DEFAULT_ENGLISH)
                loaded[name] = load_classifier(  # `labels` are the Hugging Face models' only
                    DEFAULT if bundled else name,
                    **{k: v for k, v in options.items() if not (bundled and k == "labels")})
                if name not in (DEFAULT, DEFAULT_ENGLISH):
                    loaded[name].languages = frozenset(  # type: ignore[attr-defined]
                        lang for lang, s in wanted.items() if s == name and lang != ANY
                    ) or ENGLISH_ONLY
        return loaded[name]

    routes: dict[str, Classifier] = {}
    for lang, name in sorted(wanted.items(), key=lambda item: item[0] != ANY):
        if name != DEFAULT:
            routes[lang] = get(name)
            continue
        multilingual = get(DEFAULT_MULTILINGUAL)
        if lang == ANY:  # English for English and unknown, the rest to the multilingual half
            routes.setdefault("en", get(DEFAULT_ENGLISH))
            for code in languages_of(multilingual) - {"en"}:
                routes.setdefault(code, multilingual)
            routes[ANY] = multilingual
        else:
            routes[lang] = get(DEFAULT_ENGLISH) if lang == "en" else multilingual
    return LanguageRouter(routes, name=spec if spec != DEFAULT_ENGLISH else DEFAULT,
                          detect=detect)


def auto_backend(spec: str, device: str) -> str:
    """What ``auto`` means here: ONNX Runtime for the default model on the CPU — 3× torch's
    speed at 40 % of its memory on a small machine — and torch for any other model, an
    explicit cuda device, or a machine with an NVIDIA driver (checked without importing torch,
    whose import alone costs ~200 MB)."""
    on_cpu = device == "cpu" or (device == "auto" and not NVIDIA_DRIVER.exists())
    return "onnx" if spec == DEFAULT and on_cpu else "torch"


def _load_onnx(spec: str, *, batch_size: int, device: str, cache_dir: Path | None,
               heads_dir: Path | None = None) -> Classifier:
    """The default model on ONNX Runtime, int8 (the config checks the same, naming the keys)."""
    if spec != DEFAULT:
        raise ClassifierError(
            f"the onnx backend serves the model 'default' only, not {spec!r}: use backend torch"
        )
    if device not in ("auto", "cpu"):
        raise ClassifierError(
            f"the onnx backend runs on the CPU: use device auto or cpu, not {device!r}"
        )
    from classifiers.artifacts import DEFAULT_HEADS_DIR
    from classifiers.onnx_backend import load_onnx_classifier

    return load_onnx_classifier(batch_size=batch_size, cache_dir=cache_dir,
                                heads_dir=heads_dir or DEFAULT_HEADS_DIR)
