"""The rules stage on a real database: alerts once per post, never for cross-posts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alerts.rules import RuleConfig
from listener.models import Page, Post, Score
from listener.pipeline import evaluate_rules
from storage import db as store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TEXT = "Acme Cloud has been down for an hour and nobody answers our support tickets"


def test_a_crosspost_does_not_alert_twice_and_reruns_add_nothing(tmp_path: Path) -> None:
    db = store.open_db(tmp_path / "r.db")
    posts = [Post("x", "1", TEXT, NOW, source="s"), Post("reddit", "t3_q", TEXT, NOW, source="s"),
             Post("x", "2", "I love it", NOW, source="s")]
    store.store_page(db, "s", Page(posts=posts), NOW)
    negative = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v")
    rows = store.posts_to_score(db, "m", "v", 10)
    store.save_scores(db, [(r["id"], negative, None) for r in rows], NOW)
    rule = RuleConfig.model_validate({"name": "unhappy", "when": {"sentiment": "negative"},
                                      "destinations": ["slack", "email"]})
    assert evaluate_rules(db, [rule], {"slack"}, lambda: NOW) == 2  # posts 1 and 2, slack only
    assert evaluate_rules(db, [rule], {"slack"}, lambda: NOW) == 0
    alerted = {r["platform_id"] for r in db.query(
        "SELECT p.platform_id FROM alerts a JOIN posts p ON p.id = a.post_id")}
    assert alerted == {"1", "2"}
    db.close()
