"""Any Hugging Face sequence-classification model in place of the default, strictly offline.

``classifier.model`` may name a local directory (as written by ``save_pretrained`` or
``hf download --local-dir``) or a hub id such as ``cardiffnlp/twitter-roberta-base-sentiment-latest``
that is already in the Hugging Face cache. Nothing is ever downloaded: a model that is not on
disk is a ClassifierError that says how to bring it here.

Pipeline (house style, as in ``classifiers.transformer``):

* **preprocess** — the default normalisation (``@user``, ``http``; tweet models expect it).
* **forward** — tokenise, truncate to the model's maximum length (at most 512 word pieces),
  length-sorted batches under ``torch.inference_mode``; returns the model's raw logits.
* **postprocess** — :func:`postprocess`, pure numpy: softmax over the model's own classes, then
  summed into negative / neutral / positive through a 0/1 matrix built from ``id2label``.

Sentiment models have no urgency output. With ``urgency="default"`` urgency comes from the
default model (``TransformerClassifier``: MiniLM encoder + urgency head) run on the same texts;
with ``urgency="none"`` it is 0.0 for every post, so urgency-based alert rules never fire.

``version`` identifies the weights (hub commit, else a hash of the weight files) plus, when
used, the default model's version, so scores of different models never mix in trends.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from classifiers.artifacts import DEFAULT_HEADS_DIR, sha256_file
from classifiers.base import SENTIMENT_LABELS, Classifier, Prediction
from classifiers.normalize import normalize_texts
from classifiers.postprocess import softmax
from classifiers.transformer import TransformerClassifier, configure_threads, resolve_device
from listener.core.errors import ClassifierError

MAX_LENGTH_CAP = 512
URGENCY_CHOICES = ("default", "none")
# what model labels may be called, compared case-insensitively, → our label
LABEL_SYNONYMS: dict[str, str] = {
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "positive": "positive",
    "pos": "positive",
}
REQUIRED_LABELS = ("negative", "positive")  # neutral may be absent: two-class models
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def load_hf_classifier(
    spec: str,
    *,
    batch_size: int = 32,
    device: str = "auto",
    labels: Mapping[str, str] | None = None,
    urgency: str = "default",
) -> Classifier:
    """Load ``spec`` (directory or cached hub id) once; reuse the result for every batch.

    ``labels`` maps model label names (case-insensitive) to negative|neutral|positive, for
    models whose ``id2label`` says only ``LABEL_0``…. ``urgency="default"`` also loads the
    default model for its urgency head; ``"none"`` scores urgency 0.0, so urgency rules never fire.
    """
    if batch_size < 1:
        raise ClassifierError(f"batch size must be at least 1, got {batch_size}")
    if urgency not in URGENCY_CHOICES:
        raise ClassifierError(f"urgency {urgency!r}: use one of {', '.join(URGENCY_CHOICES)}")
    name, directory = resolve_model_dir(spec)
    tokenizer, model = _load_pretrained(name, directory, from_hub=not _is_dir(spec))
    matrix = label_matrix(model.config.id2label, labels, model_name=name)
    version = weights_version(directory, model.config)
    urgency_model = _load_urgency_model(batch_size, device) if urgency == "default" else None
    if urgency_model is not None:
        version = f"{version}+u{urgency_model.version}"
    return HFClassifier(
        tokenizer,
        model,
        name=name,
        version=version,
        label_matrix=matrix,
        urgency_model=urgency_model,
        batch_size=batch_size,
        device=device,
    )


def _is_dir(spec: str) -> bool:
    return Path(spec).expanduser().is_dir()


def resolve_model_dir(spec: str) -> tuple[str, Path]:
    """(name, directory): a local directory as its resolved path, a hub id from the HF cache."""
    path = Path(spec).expanduser()
    if path.is_dir():
        resolved = path.resolve()
        return str(resolved), resolved
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or "\\" in spec:
        raise ClassifierError(
            f"model directory {spec!r} does not exist: set classifier.model to a directory "
            "written by save_pretrained or `hf download --local-dir`, or to a Hugging Face model id"
        )
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(spec, "config.json")
    except ValueError as exc:  # HFValidationError: not a valid repo id either
        raise ClassifierError(
            f"model {spec!r} is neither a directory nor a valid Hugging Face model id: {exc}"
        ) from exc
    if not isinstance(cached, str):
        raise ClassifierError(offline_message(spec))
    return spec, Path(cached).parent  # snapshots/<commit>/, not resolved (files are symlinks)


def offline_message(spec: str, detail: str = "") -> str:
    """What happened and how to bring the model here; listener itself never downloads."""
    from huggingface_hub import constants

    cache = constants.HF_HUB_CACHE
    code = (
        "from transformers import AutoModelForSequenceClassification as M, AutoTokenizer as T; "
        f"T.from_pretrained('{spec}').save_pretrained('DIR'); "
        f"M.from_pretrained('{spec}').save_pretrained('DIR')"
    )
    why = f" ({detail})" if detail else ""
    return (
        f"model {spec!r} is not available offline: it is not a local directory and not "
        f"(completely) in the Hugging Face cache at {cache}{why}, and listener never downloads "
        f"models. On a machine with network run `hf download {spec} --local-dir DIR` (older "
        f"huggingface_hub: `huggingface-cli download {spec} --local-dir DIR`) or "
        f'python -c "{code}", copy DIR here and set classifier.model to its path; '
        f"or copy that machine's Hugging Face cache (~/.cache/huggingface/hub) to {cache}"
    )


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No loading bars on stderr (``listener score`` prints results there)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _load_pretrained(name: str, directory: Path, *, from_hub: bool) -> tuple[Any, nn.Module]:
    """Tokenizer and model from ``directory`` only (``local_files_only``), never the network."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        with _quiet_progress():
            tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(directory), local_files_only=True
            )
    except (OSError, ValueError) as exc:  # EnvironmentError is OSError
        if from_hub:  # a hub id whose cache holds only some of the files
            raise ClassifierError(offline_message(name, str(exc).splitlines()[0])) from exc
        raise ClassifierError(
            f"cannot load a sequence-classification model from {directory}: {exc}; the directory "
            "needs config.json, the weights and the tokenizer files, as written by "
            "save_pretrained or `hf download --local-dir`"
        ) from exc
    _ensure_pad_token(tokenizer, model)
    return tokenizer, model.eval()


def _ensure_pad_token(tokenizer: Any, model: nn.Module) -> None:
    """GPT-style models have no pad token; batches need one (the usual fix: pad with EOS)."""
    if tokenizer.pad_token_id is not None:
        return
    if tokenizer.eos_token is None:
        raise ClassifierError(
            "the model's tokenizer has neither a pad nor an end token to pad with"
        )
    tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id


def _load_urgency_model(batch_size: int, device: str) -> Classifier:
    """The default model, whose urgency head scores the posts the HF model has no output for."""
    try:
        return TransformerClassifier(DEFAULT_HEADS_DIR, batch_size=batch_size, device=device)
    except ClassifierError as exc:
        raise ClassifierError(
            f"urgency comes from the default model, which cannot be loaded: {exc}; or set "
            "classifier.urgency: none (urgency is then 0 and urgency rules never fire)"
        ) from exc


def label_matrix(
    id2label: Mapping[Any, str], labels: Mapping[str, str] | None = None, *, model_name: str
) -> np.ndarray:
    """(n_model_classes, 3) 0/1 matrix: column j sums the model's classes that mean our label j.

    Explicit ``labels`` win over the built-in synonyms; every model class must map somewhere,
    and negative and positive must both be covered (neutral may be missing: two-class models).
    """
    names = _ordered_labels(id2label, model_name)
    explicit = _explicit_labels(labels, names, model_name)
    matrix = np.zeros((len(names), len(SENTIMENT_LABELS)), dtype=np.float64)
    mapped: dict[str, str] = {}
    for i, label in enumerate(names):
        ours = explicit.get(label.lower()) or LABEL_SYNONYMS.get(label.strip().lower())
        if ours is not None:
            mapped[label] = ours
            matrix[i, SENTIMENT_LABELS.index(ours)] = 1.0
    unmapped = [label for label in names if label not in mapped]
    missing = [label for label in REQUIRED_LABELS if label not in mapped.values()]
    if unmapped or missing:
        verb = "maps" if len(unmapped) == 1 else "map"
        problem = (
            f"{', '.join(unmapped)} {verb} to none of {', '.join(SENTIMENT_LABELS)}"
            if unmapped
            else f"no label maps to {' or '.join(missing)}"
        )
        raise ClassifierError(
            f"model {model_name!r} has labels {', '.join(names)}: {problem}. Say in the config "
            "which is which (see the model card; this order is only a guess):\n"
            + _labels_hint(model_name, names, mapped)
        )
    return matrix


def _ordered_labels(id2label: Mapping[Any, str], model_name: str) -> list[str]:
    """The model's label names in logit order; ids must be 0..n-1."""
    by_id = {int(key): str(value) for key, value in id2label.items()}
    if sorted(by_id) != list(range(len(by_id))) or len(by_id) < 2:
        raise ClassifierError(f"model {model_name!r} has an unusable id2label: {dict(id2label)}")
    return [by_id[i] for i in range(len(by_id))]


def _explicit_labels(
    labels: Mapping[str, str] | None, names: Sequence[str], model_name: str
) -> dict[str, str]:
    """The configured mapping, lower-cased and checked: a typo must not silently do nothing."""
    explicit = {str(k).lower(): str(v).strip().lower() for k, v in (labels or {}).items()}
    bad_values = sorted(v for v in explicit.values() if v not in SENTIMENT_LABELS)
    if bad_values:
        raise ClassifierError(
            f"classifier.labels maps to {', '.join(bad_values)}: "
            f"each value must be one of {', '.join(SENTIMENT_LABELS)}"
        )
    unknown = sorted(set(explicit) - {name.lower() for name in names})
    if unknown:
        raise ClassifierError(
            f"classifier.labels names {', '.join(unknown)}, which model {model_name!r} does not "
            f"have; its labels are {', '.join(names)}"
        )
    return explicit


def _labels_hint(model_name: str, names: Sequence[str], mapped: Mapping[str, str]) -> str:
    """A YAML snippet to paste: known mappings kept, unknown ones guessed by position."""
    guesses = {2: ("negative", "positive"), 3: SENTIMENT_LABELS}.get(len(names))
    lines = ["classifier:", f"  model: {model_name}", "  labels:"]
    for i, label in enumerate(names):
        ours = mapped.get(label) or (guesses[i] if guesses else "negative|neutral|positive")
        key = label if _PLAIN_KEY.match(label) else json.dumps(label)  # YAML-safe
        lines.append(f"    {key}: {ours}")
    return "\n".join(lines)


def weights_version(directory: Path, config: Any = None) -> str:
    """12 hex: the hub commit when known, else a sha256 over the weight files.

    The commit comes from ``config._commit_hash`` (transformers 4.x) or the cache path
    ``snapshots/<commit>/``; a plain directory is hashed, so re-saved weights change it.
    """
    commit = getattr(config, "_commit_hash", None)
    if not commit and directory.parent.name == "snapshots" and _COMMIT.match(directory.name):
        commit = directory.name
    if commit:
        return str(commit)[:12]
    files = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("pytorch_model*.bin"))
    if not files:
        raise ClassifierError(
            f"no weight files (*.safetensors, pytorch_model*.bin) in {directory} to version"
        )
    digest = hashlib.sha256()
    for path in files:  # per-file hashes, read in chunks (weights can be GBs)
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()[:12]


def postprocess(
    logits: np.ndarray, matrix: np.ndarray, urgency: np.ndarray | None = None
) -> list[Prediction]:
    """Model logits (n, k) → Predictions. Pure numpy so it is testable on hand-made logits.

    Softmax over the model's k classes, then ``@ matrix`` (k, 3) sums them into our labels;
    ``urgency`` is one probability per text (zeros when None).
    """
    logits = np.asarray(logits, dtype=np.float64)
    urgent = np.zeros(len(logits)) if urgency is None else np.asarray(urgency, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != matrix.shape[0] or urgent.shape != (len(logits),):
        raise ValueError(
            f"logits {logits.shape} / urgency {urgent.shape} do not fit the labels {matrix.shape}"
        )
    probs = softmax(logits) @ matrix
    return [
        Prediction(
            sentiment=SENTIMENT_LABELS[int(row.argmax())],
            probabilities={label: float(p) for label, p in zip(SENTIMENT_LABELS, row, strict=True)},
            urgency=float(u),
        )
        for row, u in zip(probs, urgent, strict=True)
    ]


class HFClassifier:
    """A loaded sequence-classification model + label matrix (+ optional urgency model)."""

    def __init__(
        self,
        tokenizer: Any,
        model: nn.Module,
        *,
        name: str,
        version: str,
        label_matrix: np.ndarray,
        urgency_model: Classifier | None = None,
        batch_size: int = 32,
        device: str = "auto",
    ) -> None:
        self.device = resolve_device(device)
        configure_threads(self.device)
        self.tokenizer, self.model = tokenizer, model.to(self.device).eval()
        self.name, self.version = name, version
        self.label_matrix, self.urgency_model = label_matrix, urgency_model
        self.batch_size = batch_size
        limits = [MAX_LENGTH_CAP, int(getattr(tokenizer, "model_max_length", MAX_LENGTH_CAP))]
        limits.append(int(getattr(model.config, "max_position_embeddings", 0) or MAX_LENGTH_CAP))
        self.max_length = min(limits)

    def preprocess(self, texts: Sequence[str]) -> list[str]:
        """The default normalisation (mentions → ``@user``, links → ``http``)."""
        return normalize_texts([str(text) for text in texts])

    def forward(self, texts: Sequence[str]) -> np.ndarray:
        """Logits (n, k) in input order; batches sorted by token length so padding stays small."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        ids = encoded["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), self.label_matrix.shape[0]), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                features = {key: [encoded[key][i] for i in batch] for key in encoded}
                inputs = self.tokenizer.pad(features, return_tensors="pt").to(self.device)
                out[batch] = self.model(**inputs).logits.float().cpu().numpy()
        return out

    def urgency(self, texts: Sequence[str]) -> np.ndarray | None:
        """The default model's urgency for the raw texts (it normalises them itself), or None."""
        if self.urgency_model is None:
            return None
        return np.array([p.urgency for p in self.urgency_model.predict(texts)], dtype=np.float64)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score raw post texts; any failure inside the model becomes a ClassifierError."""
        if not texts:
            return []
        try:
            logits = self.forward(self.preprocess(texts))
        except (RuntimeError, ValueError, IndexError) as exc:
            raise ClassifierError(f"model {self.name!r} failed on a batch: {exc}") from exc
        return postprocess(logits, self.label_matrix, self.urgency(texts))
