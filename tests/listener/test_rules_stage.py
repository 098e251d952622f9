"""The rules stage on a real database: alerts once per post, never for cross-posts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alerts.incidents import IncidentConfig
from alerts.rules import RuleConfig
from alerts.rules_stage import RulesContext
from listener.core.models import Page, Post, Score
from listener.pipeline import evaluate_rules
from storage import db as store
from storage import outbox

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TEXT = "Acme Cloud has been down for an hour and nobody answers our support tickets"


def test_a_crosspost_does_not_alert_twice_and_reruns_add_nothing(tmp_path: Path) -> None:
    db = store.open_db(tmp_path / "r.db")
    posts = [Post("x", "1", TEXT, NOW, source="s", author="ann"),
             Post("reddit", "t3_q", TEXT, NOW, source="s", author="ann"),  # ann, cross-posting
             Post("x", "2", "I love it", NOW, source="s")]
    store.store_page(db, "s", Page(posts=posts), NOW)
    negative = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v")
    rows = store.posts_to_score(db, "m", "v", 10)
    store.save_scores(db, [(r.id, negative, None) for r in rows], NOW)
    rule = RuleConfig.model_validate({"name": "unhappy", "when": {"sentiment": "negative"},
                                      "destinations": ["slack", "email"]})
    assert evaluate_rules(db, [rule], {"slack"}, lambda: NOW) == 2  # posts 1 and 2, slack only
    assert evaluate_rules(db, [rule], {"slack"}, lambda: NOW) == 0
    alerted = {r["platform_id"] for r in db.query(
        "SELECT p.platform_id FROM alerts a JOIN posts p ON p.id = a.post_id")}
    assert alerted == {"1", "2"}
    db.close()


def test_dry_run_and_caps_record_alerts_that_are_never_sent(tmp_path: Path) -> None:
    db = store.open_db(tmp_path / "c.db")
    posts = [Post("x", str(i), f"broken thing number {i}", NOW, source="s") for i in range(5)]
    store.store_page(db, "s", Page(posts=posts), NOW)
    negative = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v")
    store.save_scores(db, [(r.id, negative, None) for r in store.posts_to_score(db, "m", "v", 9)],
                      NOW)
    rules = [
        RuleConfig.model_validate({"name": "capped", "when": {}, "destinations": ["slack"],
                                   "max_alerts": {"count": 2, "per_seconds": 3600}}),
        RuleConfig.model_validate({"name": "trial", "when": {}, "destinations": ["slack"],
                                   "dry_run": True}),
    ]
    alone = RulesContext(incidents=IncidentConfig(enabled=False))  # 5 alike posts: no incident
    assert evaluate_rules(db, rules, {"slack"}, lambda: NOW, context=alone) == 10
    counts = {(r["rule"], r["status"]): r["n"] for r in db.query(
        "SELECT rule, status, count(*) AS n FROM alerts GROUP BY rule, status")}
    assert counts == {("capped", "pending"): 2, ("capped", "suppressed"): 3,
                      ("trial", "dry_run"): 5}
    due = {r["rule"] for r in outbox.due(db, NOW, 100)}
    assert due == {"capped"}  # only the two within the cap will ever be sent
    db.close()
