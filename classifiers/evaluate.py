"""Evaluate a sentiment Classifier on a labelled TSV (the shared format: id, label, text).

The headline metric is TweetEval's official one, macro-averaged recall over negative / neutral /
positive: it does not reward a model for favouring the majority class. Calibration is reported
as the expected calibration error (ECE, 15 equal-width bins on the top probability), because the
alert rules threshold probabilities and should be able to trust them.

No torch here: metrics are pure numpy over labels and probabilities, so they are testable on
hand-made numbers and reused by ``classifiers.train``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import SENTIMENT_LABELS, Classifier, Prediction
from listener.core.errors import ClassifierError

ECE_BINS = 15
CHUNK = 2048  # texts handed to the classifier at once: big enough for good length sorting


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall, F1 and gold support of one class."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalResult:
    """Everything the report prints; ``confusion[gold][predicted]`` in SENTIMENT_LABELS order."""

    n: int
    per_class: dict[str, ClassMetrics]
    macro_recall: float
    macro_f1: float
    accuracy: float
    ece: float
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_labelled_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a shared-format TSV (no quoting: texts never hold tabs); extra columns ignored."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = {"id", "label", "text"} - set(reader.fieldnames or ())
            if missing:
                raise ClassifierError(
                    f"{path}: missing column(s) {sorted(missing)}; need id, label, text"
                )
            return [row for row in reader if row.get("text") is not None]
    except OSError as exc:
        raise ClassifierError(f"cannot read evaluation data {path}: {exc}") from exc


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Weighted mean |accuracy − confidence| over equal-width bins (i/n, (i+1)/n]."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return 0.0
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            ece += gap * members.sum() / len(confidence)
    return float(ece)


def macro_recall(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean over classes of recall, on integer labels (TweetEval's official sentiment metric)."""
    return float(
        np.mean([(pred[y == k] == k).mean() if (y == k).any() else 0.0 for k in range(n_classes)])
    )


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean over classes of F1."""
    scores = []
    for k in range(n_classes):
        tp = float(((pred == k) & (y == k)).sum())
        denominator = float((pred == k).sum() + (y == k).sum())
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def sentiment_metrics(
    gold: Sequence[str], predicted: Sequence[str], probabilities: np.ndarray
) -> EvalResult:
    """All metrics from gold labels, predicted labels and (n, 3) probabilities in label order."""
    labels = list(SENTIMENT_LABELS)
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ClassifierError(f"unknown gold label(s) {unknown}: expected one of {labels}")
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((3, 3), dtype=int)
    for g, p in zip(gold, predicted, strict=True):
        confusion[index[g], index[p]] += 1
    per_class = {}
    for i, label in enumerate(labels):
        tp, gold_n, pred_n = confusion[i, i], confusion[i].sum(), confusion[:, i].sum()
        precision = tp / pred_n if pred_n else 0.0
        recall = tp / gold_n if gold_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassMetrics(float(precision), float(recall), float(f1), int(gold_n))
    probs = np.asarray(probabilities, dtype=np.float64).reshape(len(gold), 3)
    correct = np.array([g == p for g, p in zip(gold, predicted, strict=True)])
    n = len(gold)
    return EvalResult(
        n=n,
        per_class=per_class,
        macro_recall=float(np.mean([m.recall for m in per_class.values()])),
        macro_f1=float(np.mean([m.f1 for m in per_class.values()])),
        accuracy=float(correct.mean()) if n else 0.0,
        ece=expected_calibration_error(probs.max(axis=1), correct),
        confusion=confusion.tolist(),
    )


def predict_all(classifier: Classifier, texts: Sequence[str]) -> list[Prediction]:
    """Predictions for many texts, handed over in chunks so memory stays bounded; a model with
    ``predict_chunks`` (torch) tokenises the next chunk while it scores this one."""
    chunks = [texts[start : start + CHUNK] for start in range(0, len(texts), CHUNK)]
    stream = getattr(classifier, "predict_chunks", None)
    parts = stream(chunks) if stream is not None else map(classifier.predict, chunks)
    return [prediction for part in parts for prediction in part]


def evaluate(
    classifier: Classifier, data_path: Path, *, predictions_path: Path | None = None
) -> EvalResult:
    """Score every row of ``data_path`` and compare with its gold labels."""
    rows = read_labelled_tsv(Path(data_path))
    if not rows:
        raise ClassifierError(f"{data_path} holds no labelled rows")
    predictions = predict_all(classifier, [row["text"] for row in rows])
    gold = [row["label"] for row in rows]
    probs = np.array([[p.probabilities[label] for label in SENTIMENT_LABELS] for p in predictions])
    result = sentiment_metrics(gold, [p.sentiment for p in predictions], probs)
    if predictions_path is not None:
        write_predictions(Path(predictions_path), rows, predictions)
    return result


def write_predictions(
    path: Path, rows: Sequence[dict[str, str]], predictions: Sequence[Prediction]
) -> None:
    """One line per row: id, gold, predicted, three probabilities, urgency (.jsonl or TSV)."""
    records = [
        {
            "id": row["id"],
            "gold": row["label"],
            "predicted": pred.sentiment,
            **{f"p_{label}": round(pred.probabilities[label], 6) for label in SENTIMENT_LABELS},
            "urgency": round(pred.urgency, 6),
        }
        for row, pred in zip(rows, predictions, strict=True)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        if path.suffix in (".jsonl", ".json"):
            for record in records:
                handle.write(json.dumps(record) + "\n")
            return
        writer = csv.DictWriter(
            handle, fieldnames=list(records[0]) if records else ["id"], delimiter="\t"
        )
        writer.writeheader()
        writer.writerows(records)


def format_report(result: EvalResult, *, title: str = "") -> str:
    """A printable report: headline metrics, per-class table, confusion matrix."""
    lines = [title] if title else []
    lines += [
        f"rows            {result.n}",
        f"macro-recall    {100 * result.macro_recall:.1f}   (TweetEval official metric)",
        f"macro-F1        {100 * result.macro_f1:.1f}",
        f"accuracy        {100 * result.accuracy:.1f}",
        f"ECE (15 bins)   {100 * result.ece:.1f}",
        "",
        f"{'class':<10} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}",
    ]
    for label, m in result.per_class.items():
        lines.append(
            f"{label:<10} {100 * m.precision:>9.1f} {100 * m.recall:>7.1f} {100 * m.f1:>6.1f} "
            f"{m.support:>8}"
        )
    lines += ["", "confusion (rows gold, columns predicted): " + " / ".join(SENTIMENT_LABELS)]
    for label, row in zip(SENTIMENT_LABELS, result.confusion, strict=True):
        lines.append(f"{label:<10} " + " ".join(f"{count:>8}" for count in row))
    return "\n".join(lines)
