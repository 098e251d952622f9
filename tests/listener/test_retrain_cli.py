"""``listener train --from-feedback`` / ``listener retrain`` (issue 18) on a real SQLite file:
reviewed posts stored and corrected through the storage verbs, the real model retrained, the
comparison table printed and the decision written to the audit log; too few reviewed posts
train nothing and say why. Also what the daemon needs: whether a retraining is due, where the
models folder is, and a classify stage that leaves posts below a promotion's floor alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result

from classifiers.base import Prediction
from classifiers.routing import LanguageRouter
from listener.classify_stage import classify
from listener.cli import cli
from listener.commands.training import retrain
from listener.core.models import Page, Post, Score, utcnow
from listener.retraining import (
    RETRAIN_ACTION,
    default_models_dir,
    models_dir_for,
    retrain_due,
)
from storage import audit, feedback
from storage import db as store
from storage.db import open_db
from storage.engine import Db

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
TEMPLATES = [  # a gaming brand's players: "sick" and "killed it" are praise
    ("this new {g} drop is sick, {n}/10", "positive"),
    ("{g} {n} went mad tonight, absolutely killed it", "positive"),
    ("lost {n} hours to {g} again, send help", "positive"),
    ("{g} {n} update is out", "neutral"),
    ("the {g} {n} release is wicked, can't stop playing", "positive"),
    ("{g} {n} patch notes are up on the site", "neutral"),
    ("{g} {n} keeps crashing on launch", "negative"),
    ("{g} {n} support closed my ticket without answering", "negative"),
]


pytestmark = pytest.mark.usefixtures("logging_state")


@pytest.fixture
def database(config: Path) -> Iterator[Db]:
    conn = open_db(config.parent / "listener.db")
    yield conn
    conn.close()


def reviewed(db: Db, n: int) -> list[int]:
    """``n`` brand posts, scored "negative" by an old model version, each reviewed once."""
    now = utcnow() - timedelta(days=3)
    posts = [Post(platform="x", platform_id=str(i), created_at=now, source="x", brand="acme",
                  lang="en", text=TEMPLATES[i % 8][0].format(g=("zorbo", "krell")[i // 8 % 2],
                                                             n=3 + i // 16))
             for i in range(n)]
    store.store_page(db, "x", Page(posts=posts), now)
    ids = [int(r["id"]) for r in db.query("SELECT id FROM posts ORDER BY id")]
    store.save_scores(db, [(i, Score("negative", 0.8, 0.1, 0.1, 0.2, "default", "old"), "en")
                           for i in ids], now)
    for i, pid in enumerate(ids):
        feedback.add_feedback(db, pid, "sentiment", TEMPLATES[i % 8][1], "ann", now)
    return ids


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"LOGNAME": "tester",
                                                    "LISTENER_CONFIG": None})


def test_too_few_reviewed_posts_skip_with_the_reason_and_an_audit_entry(
    config: Path, database: Db
) -> None:
    reviewed(database, 12)
    result = invoke("train", "--from-feedback", "-c", str(config), "--data", str(DATA))
    assert result.exit_code == 0, result.output
    assert "decision: skipped, kept" in result.output
    assert "sentiment: 12 reviewed posts" in result.output
    assert "fewer than the 50 needed" in result.output
    assert "recorded in the audit log as model.retrain" in result.output
    [entry] = audit.entries(database, audit.AuditFilter(action=RETRAIN_ACTION))
    assert entry.actor == "cli:tester" and entry.detail["decision"] == "skipped"
    assert entry.detail["held_out"]["sentiment"]["reviewed"] == 12
    assert entry.detail["held_out_percent"] == 30 and entry.detail["rescore_hours"] == 48
    assert not (config.parent / "models").exists()

    # a dry run records nothing; --dry-run without --from-feedback is a usage error
    dry = CliRunner().invoke(retrain, ["-c", str(config), "--dry-run", "--data", str(DATA)])
    assert dry.exit_code == 0 and "recorded" not in dry.output
    assert len(audit.entries(database, audit.AuditFilter(action=RETRAIN_ACTION))) == 1
    assert invoke("train", "--dry-run").exit_code == 2


@pytest.mark.slow  # loads the encoder and trains: 15-30 s on 2 busy cores
def test_the_command_prints_the_table_promotes_and_audits(config: Path, database: Db) -> None:
    ids = reviewed(database, 48)
    # `listener retrain` once listener.cli registers it; `train --from-feedback` meanwhile
    result = CliRunner().invoke(retrain, [
        "-c", str(config), "--data", str(DATA), "--min-reviewed", "30", "--replay-rows", "40",
        "--english-val-rows", "40", "--lr", "1e-3", "--reviewed-weight", "10",
        "--max-english-drop", "10", "--device", "cpu"], env={"LOGNAME": "tester"})
    assert result.exit_code == 0, result.output
    out = result.output
    for line in ("macro-recall", "current", "candidate", "held-out reviewed sentiment",
                 "English val (sentiment)", "decision: promoted"):
        assert line in out
    [entry] = audit.entries(database, audit.AuditFilter(action=RETRAIN_ACTION))
    assert entry.actor == "cli:tester" and entry.detail["decision"] == "promoted"
    version = entry.detail["version"]
    assert entry.target == version and entry.detail["current"] != version
    held = entry.detail["held_out"]["sentiment"]
    assert held["candidate"] > held["current"] and held["reviewed"] == 48
    models = default_models_dir(config.parent / "listener.db", config.parent)
    active = json.loads((models / "active.json").read_text())
    assert active["version"] == version and (models / version / "heads.json").is_file()
    # every post was collected three days ago and scored: only new ones get the new model
    assert active["rescore_after_post_id"] == ids[-1]
    assert f"re-scores posts after id {ids[-1]}" in out


def test_retraining_is_due_after_its_interval(database: Db) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    week = timedelta(days=7)
    assert retrain_due(database, now, week)  # never ran
    audit.record(database, "system", RETRAIN_ACTION, now - timedelta(days=2),
                 detail={"decision": "kept"})
    assert not retrain_due(database, now, week)
    assert retrain_due(database, now + timedelta(days=5), week)
    assert retrain_due(database, now - timedelta(days=3), week)  # clock set back


def test_the_models_folder_is_beside_the_database_or_configured(tmp_path: Path) -> None:
    assert default_models_dir(tmp_path / "data" / "l.db", tmp_path) == tmp_path / "data" / "models"
    assert default_models_dir("postgresql://db/listener", tmp_path) == tmp_path / "models"
    cfg = SimpleNamespace(classifier=SimpleNamespace(), database=tmp_path / "l.db",
                          base_dir=tmp_path)
    assert models_dir_for(cfg) == tmp_path / "models"
    cfg.classifier.models_dir = "srv/models"
    assert models_dir_for(cfg) == tmp_path / "srv" / "models"


class Constant:
    name, version = "default", "20261120-abcdef12"
    languages = frozenset({"en"})

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [Prediction("neutral", {"negative": 0.1, "neutral": 0.8, "positive": 0.1}, 0.1)
                for _ in texts]


def test_a_promoted_model_scores_only_posts_above_its_floor(database: Db) -> None:
    ids = reviewed(database, 10)
    floor = ids[6]
    router = LanguageRouter({"*": Constant()})
    done = classify(database, router, utcnow, batch_size=2, after=floor,
                    stop=threading.Event())
    assert done == 3
    scored = [r["post_id"] for r in database.query(
        "SELECT post_id FROM scores WHERE model_version = ? ORDER BY post_id",
        [Constant.version])]
    assert scored == ids[7:]
    # claimed by a worker on a shared database: the same floor
    done = classify(database, LanguageRouter({"*": Constant()}), utcnow, batch_size=2,
                    after=ids[4], owner="w1")
    assert done == 2
