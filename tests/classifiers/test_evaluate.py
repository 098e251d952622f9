"""evaluate(): metrics on a tiny handmade TSV, checked against numbers computed by hand."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from classifiers.base import SENTIMENT_LABELS, Prediction
from classifiers.evaluate import (
    evaluate,
    expected_calibration_error,
    format_report,
    read_labelled_tsv,
)
from listener.core.errors import ClassifierError

# text → (predicted label, confidence of that label); gold labels are in the TSV below
CANNED = {
    "a": ("negative", 0.95),  # gold negative: correct
    "b": ("neutral", 0.62),  # gold negative: wrong
    "c": ("neutral", 0.75),  # gold neutral: correct
    "d": ("neutral", 0.75),  # gold neutral: correct
    "e": ("positive", 0.95),  # gold positive: correct
    "f": ("negative", 0.55),  # gold positive: wrong
}
GOLD = ["negative", "negative", "neutral", "neutral", "positive", "positive"]


class CannedClassifier:
    """A Classifier that answers from a lookup table, so metrics can be computed by hand."""

    name = "canned"
    version = "1"

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        out = []
        for text in texts:
            label, confidence = CANNED[text]
            rest = (1.0 - confidence) / 2
            probs = {k: confidence if k == label else rest for k in SENTIMENT_LABELS}
            out.append(Prediction(sentiment=label, probabilities=probs, urgency=0.25))
        return out


@pytest.fixture
def tsv(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.tsv"
    lines = ["id\tlabel\tdomain\ttext"]  # an extra column, to be ignored
    lines += [f"r{i}\t{g}\tfood\t{t}" for i, (g, t) in enumerate(zip(GOLD, CANNED, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_metrics_match_hand_computed_numbers(tsv: Path) -> None:
    result = evaluate(CannedClassifier(), tsv)
    # confusion (gold rows × predicted): neg [1 1 0], neu [0 2 0], pos [1 0 1]
    assert result.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert result.n == 6
    assert result.per_class["negative"].recall == pytest.approx(1 / 2)
    assert result.per_class["neutral"].recall == pytest.approx(1.0)
    assert result.per_class["positive"].recall == pytest.approx(1 / 2)
    assert result.per_class["negative"].precision == pytest.approx(1 / 2)
    assert result.per_class["neutral"].precision == pytest.approx(2 / 3)
    assert result.per_class["positive"].precision == pytest.approx(1.0)
    assert result.per_class["neutral"].f1 == pytest.approx(0.8)
    assert result.macro_recall == pytest.approx(2 / 3)
    assert result.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert result.accuracy == pytest.approx(4 / 6)
    # bins of width 1/15: {0.95, 0.95} all right, {0.62} wrong, {0.75, 0.75} right, {0.55} wrong
    assert result.ece == pytest.approx((2 * 0.05 + 0.62 + 2 * 0.25 + 0.55) / 6)
    assert [m.support for m in result.per_class.values()] == [2, 2, 2]


def test_report_prints_the_headline_numbers(tsv: Path) -> None:
    report = format_report(evaluate(CannedClassifier(), tsv), title="tiny")
    assert report.startswith("tiny")
    assert "macro-recall    66.7" in report
    assert "accuracy        66.7" in report
    assert "ECE (15 bins)   29.5" in report


@pytest.mark.parametrize("suffix", [".jsonl", ".tsv"])
def test_predictions_file(tsv: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"preds{suffix}"
    evaluate(CannedClassifier(), tsv, predictions_path=out)
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        with open(out, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(6)]
    assert rows[1]["gold"] == "negative" and rows[1]["predicted"] == "neutral"
    assert set(rows[0]) == {
        "id",
        "gold",
        "predicted",
        "p_negative",
        "p_neutral",
        "p_positive",
        "urgency",
    }
    assert float(rows[0]["p_negative"]) == pytest.approx(0.95)
    assert float(rows[0]["urgency"]) == pytest.approx(0.25)


def test_ece_edge_cases() -> None:
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([1, 0])) == pytest.approx(0.4)


def test_bad_files_raise_classifier_errors(tmp_path: Path) -> None:
    missing = tmp_path / "cols.tsv"
    missing.write_text("id\ttext\n1\thello\n", encoding="utf-8")
    with pytest.raises(ClassifierError, match="missing column"):
        read_labelled_tsv(missing)
    with pytest.raises(ClassifierError, match="cannot read"):
        read_labelled_tsv(tmp_path / "nope.tsv")
    unknown = tmp_path / "labels.tsv"
    unknown.write_text("id\tlabel\ttext\n1\tangry\ta\n", encoding="utf-8")
    with pytest.raises(ClassifierError, match="angry"):
        evaluate(CannedClassifier(), unknown)
