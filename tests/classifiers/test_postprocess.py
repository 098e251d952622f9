"""postprocess: pure numpy from hand-made logits to Predictions (no model needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from classifiers.base import SENTIMENT_LABELS
from classifiers.postprocess import postprocess


def test_probabilities_sum_to_one_and_argmax_is_the_label() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0], [0.1, 4.0, 0.2]])
    preds = postprocess(logits, np.zeros(3))
    assert [p.sentiment for p in preds] == ["negative", "positive", "neutral"]
    for pred in preds:
        assert tuple(pred.probabilities) == SENTIMENT_LABELS
        assert math.isclose(sum(pred.probabilities.values()), 1.0, abs_tol=1e-9)
        assert pred.urgency == pytest.approx(0.5)


def test_softmax_values_by_hand() -> None:
    (pred,) = postprocess(np.array([[0.0, 0.0, math.log(2.0)]]), np.array([0.0]))
    assert pred.probabilities == pytest.approx({"negative": 0.25, "neutral": 0.25, "positive": 0.5})


def test_temperature_flattens_without_changing_the_label() -> None:
    logits = np.array([[3.0, 1.0, 0.0]])
    sharp = postprocess(logits, np.zeros(1), temperature=1.0)[0]
    flat = postprocess(logits, np.zeros(1), temperature=2.0)[0]
    assert sharp.sentiment == flat.sentiment == "negative"
    assert flat.probabilities["negative"] < sharp.probabilities["negative"]
    expected = np.exp(logits[0] / 2.0) / np.exp(logits[0] / 2.0).sum()
    assert [flat.probabilities[k] for k in SENTIMENT_LABELS] == pytest.approx(expected)


def test_labels_order_of_the_head_is_respected() -> None:
    (pred,) = postprocess(
        np.array([[3.0, 0.0, -1.0]]), np.array([0.0]), labels=("positive", "neutral", "negative")
    )
    assert pred.sentiment == "positive"
    assert tuple(pred.probabilities) == SENTIMENT_LABELS  # keys always in the contract's order
    assert (
        pred.probabilities["positive"]
        > pred.probabilities["neutral"]
        > pred.probabilities["negative"]
    )


def test_urgency_is_a_sigmoid_and_extreme_logits_stay_finite() -> None:
    preds = postprocess(np.array([[1000.0, -1000.0, 0.0]] * 3), np.array([-1000.0, 0.0, 2.0]))
    assert preds[0].urgency == pytest.approx(0.0)
    assert preds[1].urgency == pytest.approx(0.5)
    assert preds[2].urgency == pytest.approx(1.0 / (1.0 + math.exp(-2.0)))
    assert preds[0].probabilities["negative"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("logits", "urgency", "kwargs"),
    [
        (np.zeros((2, 2)), np.zeros(2), {}),
        (np.zeros((2, 3)), np.zeros(3), {}),
        (np.zeros((1, 3)), np.zeros(1), {"temperature": 0.0}),
        (np.zeros((1, 3)), np.zeros(1), {"labels": ("a", "b", "c")}),
    ],
)
def test_bad_shapes_and_arguments_are_rejected(logits, urgency, kwargs) -> None:
    with pytest.raises(ValueError):
        postprocess(logits, urgency, **kwargs)


def test_empty_batch() -> None:
    assert postprocess(np.zeros((0, 3)), np.zeros(0)) == []
