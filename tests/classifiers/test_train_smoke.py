"""A tiny end-to-end training run: synthetic data, one epoch, then the artifacts load and score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from classifiers.calibration import fit_temperature, stratified_folds
from classifiers.evaluate import macro_f1, macro_recall
from classifiers.transformer import TransformerClassifier
from listener.commands.training import train

pytestmark = pytest.mark.slow  # make test-fast leaves it out

WORDS = {
    "negative": ["awful", "terrible", "broken", "hate", "worst"],
    "neutral": ["tuesday", "meeting", "schedule", "update", "report"],
    "positive": ["love", "great", "wonderful", "best", "happy"],
}


def write_tsv(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """20 sentiment rows per class for train, 5 for val, 30 complaint rows: synthetic text."""
    root = tmp_path / "data"
    for split, n in (("train", 20), ("val", 5)):
        rows = [
            f"{split}{label}{i}\t{label}\t@shop the {WORDS[label][i % 5]} thing number {i}"
            for label in WORDS
            for i in range(n)
        ]
        write_tsv(root / "sentiment" / f"{split}.tsv", "id\tlabel\ttext", rows)
    complaints = [
        f"c{i}\t{'complaint' if i % 2 else 'not_complaint'}\tfood\t"
        + ("@help my order is broken, fix it" if i % 2 else "@help what time do you open?")
        + f" #{i}"
        for i in range(30)
    ]
    write_tsv(root / "complaints" / "train.tsv", "id\tlabel\tdomain\ttext", complaints)
    return root


@pytest.mark.parametrize(
    ("extra", "pooling"),
    [
        (["--finetune-epochs", "1"], ["mean:-4", "mean:-3", "mean:-2", "mean:-1"]),
        (["--pooling", "mean:-1", "--strip-hash", "--finetune-epochs", "0"], ["mean:-1"]),
    ],
)
def test_train_command_writes_loadable_heads(
    tiny_data: Path, tmp_path: Path, extra: list[str], pooling: list[str]
) -> None:
    out = tmp_path / "heads"
    args = ["--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--cv-folds", "2"]
    result = CliRunner().invoke(train, [*args, "--device", "cpu", *extra])
    assert result.exit_code == 0, result.output
    assert "val macro-recall" in result.output and "CV macro-F1" in result.output
    meta = json.loads((out / "heads.json").read_text())
    assert meta["training"]["rows"] == {
        "sentiment/train.tsv": 60,
        "sentiment/val.tsv": 15,
        "complaints/train.tsv": 30,
    }
    assert meta["sentiment"]["temperature"] > 0 and meta["urgency"]["temperature"] > 0
    assert meta["encoder"]["pooling"] == pooling
    assert meta["sentiment"]["in_dim"] == 384 * len(pooling)
    assert meta["normalize"]["strip_hash"] is ("--strip-hash" in extra)
    assert (out / "heads.safetensors").stat().st_size < 8_000_000
    tuned = "--finetune-epochs" in extra and extra[extra.index("--finetune-epochs") + 1] != "0"
    assert (out / "adapter.safetensors").is_file() is tuned
    assert bool(meta["adapter"]) is tuned
    if tuned:  # the frozen model is evaluated first, then after every step (2 steps of 32 rows)
        history = meta["metrics"]["sentiment"]["finetune"]["history"]
        assert [row["step"] for row in history] == [0, 1, 2]
        assert meta["metrics"]["sentiment"]["frozen_encoder"]["chosen"] in {"linear", "mlp512"}
        assert (out / "adapter.safetensors").stat().st_size < 4_000_000
    model = TransformerClassifier(out, device="cpu", name="tiny")
    preds = model.predict(["I love it", "@shop awful"])
    assert len(preds) == 2 and model.version in result.output


def test_train_rejects_bad_pooling(tiny_data: Path) -> None:
    result = CliRunner().invoke(train, ["--data", str(tiny_data), "--pooling", "max:-1"])
    assert result.exit_code == 2 and "mean:LAYER" in result.output


def test_macro_metrics_and_folds() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    assert macro_recall(y, pred, 3) == pytest.approx(2 / 3)
    assert macro_f1(np.array([0, 1, 1]), np.array([0, 1, 0]), 2) == pytest.approx(
        (2 / 3 + 2 / 3) / 2
    )
    folds = stratified_folds(np.array([0] * 6 + [1] * 4), 2, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10))
    assert [int((f < 6).sum()) for f in folds] == [3, 3]


def test_fit_temperature_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 3)) * 2
    probs = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in probs])
    assert fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.1)
