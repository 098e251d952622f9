"""Hugging Face models in place of the default: tiny BERTs built in tmp_path, nothing downloaded.

Each tiny model is a randomly initialised 2-layer BERT with its own word-level tokenizer, saved
with ``save_pretrained`` exactly as a real model directory would be. The real default model is
loaded once per module, only for the urgency comparison.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from classifiers.base import SENTIMENT_LABELS, Classifier
from classifiers.hf import (
    HFClassifier,
    label_matrix,
    load_hf_classifier,
    postprocess,
    weights_version,
)
from classifiers.loader import load_classifier
from listener.core.errors import ClassifierError

WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "@", "user", "http", "!", ".", ",",
    "i", "love", "hate", "this", "is", "ok", "bad", "good", "the", "service", "order",
    "never", "arrived", "thanks", "worst", "best", "ever", "my", "help", "please",
]  # fmt: skip
THREE = {0: "Negative", 1: "Neutral", 2: "Positive"}
GENERIC = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
TWO = {0: "NEG", 1: "POS"}
TEXTS = [
    "ok",
    "I love this service, best order ever! " * 4,
    "@bob the worst http://x.co/abc",
    "my order never arrived, please help",
    "thanks",
]


def build_tiny_model(directory: Path, id2label: dict[int, str], *, seed: int = 0) -> Path:
    """A saved tiny BERT classifier + tokenizer, laid out like any downloaded model directory."""
    directory.mkdir(parents=True, exist_ok=True)
    BertTokenizerFast(vocab={word: i for i, word in enumerate(WORDS)}).save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.5,  # large weights: texts get clearly different logits
        id2label=id2label,
        label2id={label: i for i, label in id2label.items()},
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hf")
    build_tiny_model(root / "three", THREE)
    build_tiny_model(root / "generic", GENERIC)
    build_tiny_model(root / "two", TWO)
    return root


@pytest.fixture(scope="module")
def three(models_dir: Path) -> Classifier:
    return load_hf_classifier(str(models_dir / "three"), batch_size=2, device="cpu", urgency="none")


@pytest.fixture(scope="module")
def default_model() -> Classifier:
    return load_classifier("default", batch_size=8, device="cpu", backend="torch")


def test_named_labels_load_and_predict(three: Classifier, models_dir: Path) -> None:
    preds = three.predict(TEXTS)
    assert len(preds) == len(TEXTS)
    for pred in preds:
        assert tuple(pred.probabilities) == SENTIMENT_LABELS
        assert math.isclose(sum(pred.probabilities.values()), 1.0, abs_tol=1e-6)
        assert pred.sentiment == max(pred.probabilities, key=pred.probabilities.__getitem__)
        assert pred.urgency == 0.0
    assert three.predict([]) == []
    assert three.name == str((models_dir / "three").resolve())


def test_batches_keep_order_and_match_single_predictions(three: Classifier) -> None:
    together = three.predict(TEXTS)  # batch size 2, sorted by length inside
    alone = [three.predict([text])[0] for text in TEXTS]
    for batched, single in zip(together, alone, strict=True):
        for label in SENTIMENT_LABELS:
            assert batched.probabilities[label] == pytest.approx(
                single.probabilities[label], abs=1e-5
            )
    distinct = {round(p.probabilities["positive"], 4) for p in alone}
    assert len(distinct) > 1  # the comparison above would be vacuous if every text scored alike


def test_long_texts_are_truncated_to_the_model(three: Classifier) -> None:
    (pred,) = three.predict(["the service is bad . " * 100])  # far beyond 64 positions
    assert pred.sentiment in SENTIMENT_LABELS
    assert isinstance(three, HFClassifier) and three.max_length == 64


def test_generic_labels_need_an_explicit_mapping(models_dir: Path) -> None:
    spec = str(models_dir / "generic")
    with pytest.raises(ClassifierError) as info:
        load_hf_classifier(spec, device="cpu", urgency="none")
    message = str(info.value)
    assert "LABEL_0, LABEL_1, LABEL_2" in message
    assert "labels:\n    LABEL_0: negative\n    LABEL_1: neutral\n    LABEL_2: positive" in message
    mapping = {"label_0": "Negative", "LABEL_1": "neutral", "LABEL_2": "positive"}
    model = load_hf_classifier(spec, device="cpu", labels=mapping, urgency="none")
    (pred,) = model.predict(["I love this"])
    assert math.isclose(sum(pred.probabilities.values()), 1.0, abs_tol=1e-6)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ({"LABEL_0": "angry"}, "each value must be one of"),
        ({"LABEL_9": "negative"}, "does not have; its labels are LABEL_0"),
        ({"LABEL_0": "negative", "LABEL_1": "neutral", "LABEL_2": "neutral"}, "maps to positive"),
    ],
)
def test_bad_label_mappings_are_refused(models_dir: Path, labels: dict, match: str) -> None:
    with pytest.raises(ClassifierError, match=match):
        load_hf_classifier(str(models_dir / "generic"), labels=labels, urgency="none")


def test_two_class_model_has_zero_neutral(models_dir: Path) -> None:
    model = load_hf_classifier(str(models_dir / "two"), device="cpu", urgency="none")
    for pred in model.predict(TEXTS):
        assert pred.probabilities["neutral"] == 0.0
        assert pred.sentiment != "neutral"
        assert math.isclose(sum(pred.probabilities.values()), 1.0, abs_tol=1e-6)


def test_urgency_none_is_zero_and_leaves_the_version_alone(three: Classifier) -> None:
    assert all(pred.urgency == 0.0 for pred in three.predict(TEXTS))
    assert "+u" not in three.version and len(three.version) == 12


def test_default_urgency_is_the_default_models(models_dir: Path, default_model: Classifier) -> None:
    model = load_hf_classifier(str(models_dir / "three"), batch_size=2, device="cpu")
    ours = [pred.urgency for pred in model.predict(TEXTS)]
    expected = [pred.urgency for pred in default_model.predict(TEXTS)]
    assert ours == pytest.approx(expected, abs=1e-5)
    assert all(0.0 <= u <= 1.0 for u in ours) and max(ours) > min(ours)
    plain = weights_version(models_dir / "three")
    assert model.version == f"{plain}+u{default_model.version}"


def test_missing_hub_model_says_it_is_not_available_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ClassifierError) as info:
        load_hf_classifier("nobody/no-such-model-xyz", urgency="none")
    message = str(info.value)
    assert "not available offline" in message
    assert "hf download nobody/no-such-model-xyz --local-dir DIR" in message
    assert "save_pretrained" in message and "classifier.model" in message


def test_missing_directory_and_invalid_id_are_named(tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="does not exist"):
        load_hf_classifier(str(tmp_path / "nope"), urgency="none")
    with pytest.raises(ClassifierError, match="neither a directory nor a valid"):
        load_hf_classifier("not a model id!", urgency="none")


def test_directory_without_a_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="cannot load a sequence-classification model"):
        load_hf_classifier(str(tmp_path), urgency="none")


def test_cached_hub_model_loads_offline_and_is_versioned_by_commit(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-sentiment"
    shutil.copytree(models_dir / "three", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model = load_hf_classifier("tiny-org/tiny-sentiment", device="cpu", urgency="none")
    assert model.name == "tiny-org/tiny-sentiment"
    assert model.version == commit[:12]
    assert len(model.predict(["thanks"])) == 1


def test_partly_cached_hub_model_says_it_is_not_available_offline(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    snapshot = tmp_path / "hub" / "models--tiny-org--partial" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(models_dir / "three" / "config.json", snapshot)  # config only, no weights
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ClassifierError, match="not available offline"):
        load_hf_classifier("tiny-org/partial", urgency="none")


def test_version_changes_when_the_weights_change(models_dir: Path, tmp_path: Path) -> None:
    first = weights_version(models_dir / "three")
    copy = tmp_path / "copy"
    shutil.copytree(models_dir / "three", copy)
    assert weights_version(copy) == first  # stable: same weights, other place
    build_tiny_model(copy, THREE, seed=1)  # re-saved with other weights
    assert weights_version(copy) != first
    assert load_hf_classifier(str(copy), urgency="none").version == weights_version(copy)


def test_label_matrix_maps_synonyms_case_insensitively() -> None:
    matrix = label_matrix({0: "NEG", 1: "neu", 2: "Positive"}, model_name="m")
    assert matrix.tolist() == np.eye(3).tolist()
    stars = {i: f"{i + 1} stars" for i in range(5)}
    mapping = {"1 stars": "negative", "2 STARS": "negative", "3 stars": "neutral"}
    mapping |= {"4 stars": "positive", "5 stars": "positive"}
    matrix = label_matrix(stars, mapping, model_name="stars")
    assert matrix.sum(axis=0).tolist() == [2.0, 1.0, 2.0]


def test_postprocess_sums_model_classes_into_our_labels() -> None:
    stars = {i: f"{i + 1} stars" for i in range(5)}
    mapping = {"1 stars": "negative", "2 stars": "negative", "3 stars": "neutral"}
    mapping |= {"4 stars": "positive", "5 stars": "positive"}
    matrix = label_matrix(stars, mapping, model_name="stars")
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.25, 0.15], [0.5, 0.3, 0.1, 0.05, 0.05]]))
    first, second = postprocess(logits, matrix, np.array([0.2, 0.9]))
    assert first.probabilities == pytest.approx({"negative": 0.3, "neutral": 0.3, "positive": 0.4})
    assert (first.sentiment, first.urgency) == ("positive", 0.2)
    assert second.sentiment == "negative" and second.probabilities["negative"] == pytest.approx(0.8)
    assert postprocess(np.array([[1000.0, -1000.0, 0.0]]), np.eye(3))[0].urgency == 0.0
    with pytest.raises(ValueError, match="do not fit"):
        postprocess(np.zeros((2, 4)), np.eye(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"urgency": "sometimes"}, "use one of default, none"), ({"batch_size": 0}, "at least 1")],
)
def test_bad_arguments_are_refused(models_dir: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ClassifierError, match=match):
        load_hf_classifier(str(models_dir / "three"), **kwargs)
