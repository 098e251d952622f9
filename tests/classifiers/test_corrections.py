"""Issue 18: corrections teach the model — the real encoder and heads, small data.

A made-up gaming brand whose players write "sick" and "killed it" for what they love: the
committed model reads those posts as negative. Reviewers' corrections of them make a candidate
that is better on the held-out reviewed posts, which is promoted into a models folder (a new
version, named in its heads.json, loadable, active.json pointing at it); corrections whose
labels were scrambled make a worse candidate, which is not; too few reviewed posts train
nothing. The encoder is loaded once and each text embedded once for the module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifiers import model_store
from classifiers.artifacts import DEFAULT_HEADS_DIR, artifacts_version, read_meta
from classifiers.corrections import (
    KEPT,
    PROMOTED,
    SKIPPED,
    HeadResult,
    RetrainSettings,
    _judge,
    retrain,
)
from listener.core.errors import ClassifierError

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# (template, what the brand's reviewers say); the model gets the first four wrong
TEMPLATES = [
    ("this new {g} drop is sick, {n}/10", "positive"),
    ("{g} {n} went mad tonight, absolutely killed it", "positive"),
    ("lost {n} hours to {g} again, send help", "positive"),
    ("{g} {n} update is out", "neutral"),
    ("the {g} {n} release is wicked, can't stop playing", "positive"),
    ("{g} {n} patch notes are up on the site", "neutral"),
    ("{g} {n} keeps crashing on launch", "negative"),
    ("{g} {n} support closed my ticket without answering", "negative"),
]
GAMES = ("zorbo", "krell")
# a test-sized run: 113 rows make one step an epoch, so a larger step than the default's; on
# 60 val rows one post moves macro-recall by 2-5 points, so the English gate is loose here
# (its rule is tested on figures below)
SMALL = RetrainSettings(min_reviewed=30, replay_rows=60, english_val_rows=60, epochs=6,
                        lr=1e-3, reviewed_weight=10.0, device="cpu", max_english_drop=10.0)
ROTATE = {"positive": "negative", "negative": "neutral", "neutral": "positive"}


@dataclass(frozen=True)
class Row:
    field: str
    label: str
    text: str
    held_out: bool
    lang: str | None = "en"


def brand_rows(scrambled: bool = False) -> list[Row]:
    """80 reviewed posts, every third held out; ``scrambled``: the training part's labels
    rotated (the held-out part keeps the reviewers' labels)."""
    rows = []
    for i in range(80):
        template, label = TEMPLATES[i % len(TEMPLATES)]
        text = template.format(g=GAMES[(i // len(TEMPLATES)) % 2], n=3 + i // 16)
        held = i % 3 == 0
        rows.append(Row("sentiment", ROTATE[label] if scrambled and not held else label,
                        text, held))
    return rows


class CachedEncoder:
    """The real encoder, each distinct text embedded once for the whole module."""

    def __init__(self, encoder: Any) -> None:
        self.encoder, self.device, self.memo = encoder, encoder.device, {}

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if new:
            self.memo.update(zip(new, self.encoder.embed(new, batch_size=batch_size),
                                 strict=True))
        return np.stack([self.memo[t] for t in texts])


@pytest.fixture(scope="module")
def encoder() -> CachedEncoder:
    from classifiers.artifacts import adapter_path
    from classifiers.transformer import Encoder

    meta = read_meta(DEFAULT_HEADS_DIR)
    return CachedEncoder(Encoder(device="cpu", pooling=meta["encoder"]["pooling"],
                                 adapter=adapter_path(DEFAULT_HEADS_DIR, meta)))


def test_too_few_reviewed_posts_train_nothing(tmp_path: Path) -> None:
    rows = brand_rows()[:20] + [Row("urgency", "complaint", "my order is late", False),
                                Row("sentiment", "negative", "Die App ist kaputt", False, "de")]
    outcome = retrain(rows, DEFAULT_HEADS_DIR, tmp_path / "models", data_dir=DATA, now=NOW,
                      settings=RetrainSettings(min_reviewed=50))
    assert outcome.decision == SKIPPED and not outcome.promoted
    assert outcome.reasons[0] == ("sentiment: 20 reviewed posts (13 to train on, 7 held out), "
                                  "fewer than the 50 needed")
    assert outcome.reasons[1].startswith("urgency: 1 reviewed posts")
    assert "1 reviewed posts in other languages were left out" in outcome.reasons[2]
    assert outcome.current_version == artifacts_version(DEFAULT_HEADS_DIR)
    assert not (tmp_path / "models").exists()
    assert "decision: skipped, kept" in outcome.table()


@pytest.mark.slow  # the encoder's load and a training: 20-40 s on 2 busy cores
def test_scrambled_corrections_make_a_worse_candidate_that_is_not_promoted(
    tmp_path: Path, encoder: CachedEncoder
) -> None:
    models = tmp_path / "models"
    outcome = retrain(brand_rows(scrambled=True), DEFAULT_HEADS_DIR, models, data_dir=DATA,
                      now=NOW, settings=SMALL, encoder=encoder, rescore_after_post_id=7)
    sentiment = outcome.heads[0]
    assert outcome.decision == KEPT and not outcome.would_promote
    assert sentiment.retrained and (sentiment.trained_on, sentiment.held_out) == (53, 27)
    assert sentiment.candidate is not None and sentiment.current is not None
    assert sentiment.candidate < sentiment.current
    assert "worse" in outcome.reasons[0]
    assert not models.exists() or not any(models.iterdir())  # nothing written
    assert model_store.active_heads_dir(models) == DEFAULT_HEADS_DIR


@pytest.mark.slow  # three trainings on the module's encoder
def test_corrections_make_a_better_candidate_that_is_promoted(
    tmp_path: Path, encoder: CachedEncoder
) -> None:
    models = tmp_path / "models"
    rows = brand_rows()
    dry = retrain(rows, DEFAULT_HEADS_DIR, models, data_dir=DATA, now=NOW, settings=SMALL,
                  encoder=encoder, dry_run=True)
    assert dry.decision == "dry-run" and dry.would_promote and not models.exists()

    outcome = retrain(rows, DEFAULT_HEADS_DIR, models, data_dir=DATA, now=NOW,
                      settings=SMALL, encoder=encoder, rescore_after_post_id=lambda: 41)
    sentiment, urgency = outcome.heads
    assert outcome.decision == PROMOTED, outcome.table()
    assert sentiment.current is not None and sentiment.candidate is not None
    assert sentiment.current < 0.75 and sentiment.candidate > sentiment.current + 0.2
    assert not urgency.retrained and outcome.english_rows == 60
    assert outcome.version is not None and outcome.version.startswith("20261120-")
    # the version folder, named in its heads.json; active.json points at it with the floor
    folder = models / outcome.version
    meta = json.loads((folder / "heads.json").read_text())
    assert meta["version"] == outcome.version == artifacts_version(folder)
    assert meta["retrain"]["parent"] == artifacts_version(DEFAULT_HEADS_DIR)
    assert meta["retrain"]["reviewed"]["sentiment"] == {"trained_on": 53, "held_out": 27,
                                                        "retrained": True}
    assert (folder / "adapter.safetensors").read_bytes() == (
        DEFAULT_HEADS_DIR / "adapter.safetensors").read_bytes()
    active = model_store.read_active(models)
    assert active is not None and active.version == outcome.version
    assert active.rescore_after_post_id == 41 == model_store.rescore_floor(models)
    assert model_store.active_heads_dir(models) == folder
    # the promoted heads say what the reviewers said about posts nobody trained on
    from classifiers.heads_train import head_logits
    from classifiers.transformer import load_heads

    heads = load_heads(folder, meta, encoder.device)
    fresh = [t.format(g="vexa", n=99) for t, _ in TEMPLATES[:4]]
    said = head_logits(heads["sentiment"], encoder.embed(fresh), encoder.device).argmax(1)
    labels = meta["sentiment"]["labels"]
    assert [labels[k] for k in said] == [label for _, label in TEMPLATES[:4]]
    # the urgency head was kept as it was
    old = load_heads(DEFAULT_HEADS_DIR, read_meta(DEFAULT_HEADS_DIR), encoder.device)
    x = encoder.embed(fresh)
    assert np.array_equal(head_logits(heads["urgency"], x, encoder.device),
                          head_logits(old["urgency"], x, encoder.device))
    assert "decision: promoted" in outcome.table()
    assert outcome.detail()["held_out"]["sentiment"]["held_out"] == 27

    # a second promotion starts from the promoted model and names it as its parent
    again = retrain(rows, folder, models, data_dir=DATA, now=NOW, settings=SMALL,
                    encoder=encoder)
    assert again.current_version == outcome.version
    assert again.decision in (KEPT, PROMOTED)  # already right: little left to gain


def test_the_english_val_set_and_the_held_out_posts_both_decide() -> None:
    head = HeadResult("sentiment", 100, 70, 30, True, 0.60, 0.70)
    strict = RetrainSettings(max_english_drop=0.5)
    reasons, ok = _judge([head], [0.766, 0.762], strict)  # -0.4 points: allowed
    assert ok and "+10.0 points, better" in reasons[0]
    reasons, ok = _judge([head], [0.766, 0.759], strict)  # -0.7 points: too much
    assert not ok and reasons[1].endswith("at most -0.5 allowed: too much lost)")
    same = HeadResult("urgency", 60, 40, 20, True, 0.80, 0.80)
    assert not _judge([same], [0.7, 0.7], strict)[1]  # no better is not better
    assert not _judge([head, HeadResult("urgency", 60, 40, 20, True, 0.8, 0.79)],
                      [0.7, 0.7], strict)[1]  # one head worse: kept


def test_the_models_folder_falls_back_to_the_committed_model(tmp_path: Path) -> None:
    assert model_store.active_heads_dir(None) == DEFAULT_HEADS_DIR
    assert model_store.active_heads_dir(tmp_path) == DEFAULT_HEADS_DIR
    assert model_store.rescore_floor(tmp_path) == 0
    (tmp_path / "active.json").write_text('{"version": "20261120-gone"}')
    with pytest.raises(ClassifierError, match="delete active.json"):
        model_store.active_heads_dir(tmp_path)

