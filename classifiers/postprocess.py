"""Logits → Predictions, in pure numpy: shared by every backend, testable on hand-made logits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from classifiers.base import SENTIMENT_LABELS, Prediction


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted so large logits cannot overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def postprocess(
    sentiment_logits: np.ndarray,
    urgency_logits: np.ndarray,
    temperature: float = 1.0,
    labels: Sequence[str] = SENTIMENT_LABELS,
    *,
    urgency_temperature: float = 1.0,
) -> list[Prediction]:
    """Logits → Predictions. Pure numpy so it is testable on hand-made logits.

    ``sentiment_logits`` is (n, 3) in the order of ``labels``; it is divided by ``temperature``
    (fitted on validation data) before the softmax. ``urgency_logits`` is (n,), one logit per
    text, divided by ``urgency_temperature`` (fitted on cross-validation predictions) and turned
    into a probability with a sigmoid.
    """
    logits = np.asarray(sentiment_logits, dtype=np.float64)
    urgent = np.asarray(urgency_logits, dtype=np.float64).reshape(-1)
    if logits.ndim != 2 or logits.shape[1] != len(labels) or len(urgent) != len(logits):
        raise ValueError(f"logits of shape {logits.shape} / {urgent.shape} do not fit {labels}")
    if sorted(labels) != sorted(SENTIMENT_LABELS) or min(temperature, urgency_temperature) <= 0:
        raise ValueError(f"labels must be {SENTIMENT_LABELS} and temperatures > 0")
    probs = softmax(logits / temperature)
    index = {label: i for i, label in enumerate(labels)}
    urgency = 0.5 * (
        1.0 + np.tanh(0.5 * urgent / urgency_temperature)
    )  # the sigmoid, without overflow warnings
    # column-wise, then plain Python floats: per-row numpy indexing costs ~6 µs a post, which
    # at GPU speeds is a fifth of the classify stage's time (bench/classify_stage.py)
    best = [labels[i] for i in probs.argmax(axis=1).tolist()]
    ordered = probs[:, [index[label] for label in SENTIMENT_LABELS]].tolist()
    negative, neutral, positive = SENTIMENT_LABELS
    return [
        Prediction(sentiment=label,
                   probabilities={negative: row[0], neutral: row[1], positive: row[2]},
                   urgency=u)
        for label, row, u in zip(best, ordered, urgency.tolist(), strict=True)
    ]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (all-zero rows stay zero), so a dot product is the cosine."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)
