"""Reports (spikes, digests) in the outbox, and conversation threading, on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from alerts.dispatch import group_rows, message_from_rows
from listener.core.models import Page, Post, ReportMessage, Score
from storage import db as store
from storage import outbox
from storage.reports import Report, enqueue_report, last_report_at

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCORE = Score("negative", 0.9, 0.08, 0.02, 0.7, "m", "v1")


def _stored(db: Database, *posts: Post) -> list[int]:
    store.store_page(db, "src", Page(posts=list(posts)), NOW)
    ids = [r["id"] for r in db.query("SELECT id FROM posts ORDER BY id")]
    store.save_scores(db, [(i, SCORE, None) for i in ids], NOW)
    return ids


def _report(**overrides: object) -> Report:
    fields = dict(kind="spike", name="volume", title="Acme: 5× usual volume",
                  window_start=NOW - timedelta(hours=1), window_end=NOW, brand="Acme",
                  facts=[("posts", "120"), ("baseline", "24/h")], terms=["outage", "login"])
    fields.update(overrides)
    return Report(**fields)  # type: ignore[arg-type]


def test_a_report_is_stored_once_with_one_alert_per_destination(db: Database) -> None:
    ids = _stored(db, Post("x", "1", "the app is down again", NOW, source="src"))
    report = _report(example_post_ids=ids)
    assert enqueue_report(db, report, ["slack", "mail"], NOW) == 2
    assert enqueue_report(db, report, ["slack", "mail"], NOW + timedelta(minutes=5)) == 0
    assert db["reports"].count == 1 and db["alerts"].count == 2
    assert last_report_at(db, "spike", "volume", "Acme", None) == NOW
    assert last_report_at(db, "spike", "volume", "Other", None) is None

    groups = group_rows(outbox.due(db, NOW, 10))
    assert len(groups) == 2
    message = message_from_rows(groups[0], db)
    assert isinstance(message, ReportMessage)
    assert message.title == "Acme: 5× usual volume" and message.rules == ("volume",)
    assert message.facts == (("posts", "120"), ("baseline", "24/h"))
    assert message.terms == ("outage", "login")
    assert [p.platform_id for p, _ in message.examples] == ["1"]
    assert message.examples[0][1].sentiment == "negative"


def test_follow_ups_in_a_conversation_reply_under_the_first_delivered_alert(db: Database) -> None:
    ids = _stored(
        db,
        Post("x", "10", "root: the app is down", NOW, source="src", thread="10"),
        Post("x", "11", "reply: still down", NOW, source="src", thread="10"),
    )
    for pid in ids:
        outbox.enqueue(db, [outbox.NewAlert("neg", "slack", pid, pid, f"x:{pid}")], [], NOW)
    first, second = group_rows(outbox.due(db, NOW, 10))
    assert message_from_rows(first, db).reply_to is None
    outbox.record_delivered(db, first[0]["alert_id"], 1, "1700000000.000100", NOW, 5.0)
    follow_up = message_from_rows(second, db)
    assert follow_up.post.thread == "10" and follow_up.reply_to == "1700000000.000100"
