"""Migration 009 (issue 15): scores say whether their language was understood and by which
model; posts nobody understood enter the queue whatever their score and count apart in trends
(on both engines; migrating an SQLite database keeps what it had)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listener.core.models import Page, Post, Score
from storage import db as store
from storage.engine import Db
from storage.migrations import MIGRATIONS, migrate
from storage.tx import connect
from tests.dbrows import count
from tests.storage.old_schema import save_scores_before_009

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ROLLUPS = ("post_hours", "post_days", "post_hours_extra", "post_days_extra")


def neutral(supported: bool, version: str = "1") -> Score:
    return Score("neutral", 0.1, 0.8, 0.1, 0.05, "m", version, lang="ja",
                 language_supported=supported, scored_by=f"e5 {version}")


def cells(db: Db, table: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in db.execute(
        f"SELECT sentiment, brand, n FROM {table}").fetchall())  # noqa: S608


def posts(db: Db, n: int = 2) -> list[int]:
    page = Page([Post("x", str(i), f"text {i}", NOW, brand="acme", also_brands=("beta",))
                 for i in range(n)])
    store.store_page(db, "s", page, NOW)
    return [r["id"] for r in db.query("SELECT id FROM posts ORDER BY id")]


def test_a_score_nobody_understood_is_queued_and_counted_apart(any_db: Db) -> None:
    db = any_db
    first, second = posts(db)
    store.save_scores(db, [(first, neutral(False), None), (second, neutral(True), None)], NOW)
    row = next(db.query("SELECT lang, language_supported, scored_by FROM scores"
                        " WHERE post_id = ?", [first]))
    assert row == {"lang": "ja", "language_supported": 0, "scored_by": "e5 1"}
    assert [tuple(r) for r in db.execute("SELECT post_id, supported, lang FROM triage")] == [
        (first, 0, "ja")]  # a neutral, supported post is not in the queue
    for table in ROLLUPS:
        brand = "beta" if "extra" in table else "acme"
        assert cells(db, table) == [("neutral", brand, 1), ("unsupported", brand, 1)], table
    # understood on a second try (a model for Japanese added): it leaves both
    store.save_scores(db, [(first, neutral(True, "2"), None)], NOW)
    assert count(db, "triage") == 0
    assert cells(db, "post_hours") == [("neutral", "acme", 2)]
    assert cells(db, "post_days_extra") == [("neutral", "beta", 2)]
    score = store.score_from_row(next(db.query(
        f"SELECT {store.SCORE_COLUMNS} FROM scores s WHERE post_id = ? ORDER BY id DESC",  # noqa: S608
        [first])))
    assert (score.lang, score.language_supported, score.scored_by) == ("ja", True, "e5 2")


def test_migrating_a_database_keeps_its_scores_and_queues_new_unsupported_ones(
        tmp_path: Path) -> None:
    old = connect(tmp_path / "old.db")
    steps = MIGRATIONS[:8]  # up to 008
    for _, step in steps:
        step(old)
    old["_migrations"].insert_all({"name": n, "applied_at": "x"} for n, _ in steps)
    first, second = posts(old)
    save_scores_before_009(old, [(first, Score("negative", .8, .1, .1, .2, "m", "1"), "en")], NOW)
    before = {t: cells(old, t) for t in ROLLUPS}
    assert migrate(old)[0] == "009_languages"  # and any later ones
    assert {t: cells(old, t) for t in ROLLUPS} == before
    assert [tuple(r) for r in old.execute("SELECT post_id, supported FROM triage")] == [
        (first, 1)]
    store.save_scores(old, [(second, neutral(False), None)], NOW)
    assert sorted(tuple(r) for r in old.execute("SELECT post_id, supported FROM triage")) == [
        (first, 1), (second, 0)]
    assert ("unsupported", "acme", 1) in cells(old, "post_hours")
