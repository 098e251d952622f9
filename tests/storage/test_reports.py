"""Reports (spikes, digests) in the outbox, and conversation threading, on both engines
(``any_db``: an SQLite file, a PostgreSQL database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import AlertMessage, Page, Post, Report, ReportMessage, Score
from storage import db as store
from storage import due_alerts, outbox
from storage.engine import Db
from storage.reports import (
    SpikeWindow,
    enqueue_report,
    last_incident_report_at,
    last_report_at,
    report_alert_id,
    report_alert_status,
    spike_windows,
)
from tests.dbrows import count

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCORE = Score("negative", 0.9, 0.08, 0.02, 0.7, "m", "v1")


def _stored(db: Db, *posts: Post) -> list[int]:
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


def test_a_report_is_stored_once_with_one_alert_per_destination(any_db: Db) -> None:
    ids = _stored(any_db, Post("x", "1", "the app is down again", NOW, source="src"))
    chart = b"\x89PNG\r\n\x1a\n\x00chart"
    report = _report(example_post_ids=ids, chart_png=chart)
    assert enqueue_report(any_db, report, ["slack", "mail"], NOW) == 2
    assert enqueue_report(any_db, report, ["slack", "mail"], NOW + timedelta(minutes=5)) == 0
    assert count(any_db, "reports") == 1 and count(any_db, "alerts") == 2
    assert last_report_at(any_db, "spike", "volume", "Acme", None) == NOW
    assert last_report_at(any_db, "spike", "volume", "Other", None) is None

    deliveries = due_alerts.due(any_db, NOW, 10)
    assert len(deliveries) == 2
    message = due_alerts.message(any_db, deliveries[0])
    assert isinstance(message, ReportMessage)
    assert message.title == "Acme: 5× usual volume" and message.rules == ("volume",)
    assert message.facts == (("posts", "120"), ("baseline", "24/h"))
    assert message.terms == ("outage", "login")
    assert [p.platform_id for p, _ in message.examples] == ["1"]
    assert message.examples[0][1].sentiment == "negative"
    assert message.chart_png == chart and type(message.chart_png) is bytes  # as written


def test_follow_ups_in_a_conversation_reply_under_the_first_delivered_alert(any_db: Db) -> None:
    ids = _stored(
        any_db,
        Post("x", "10", "root: the app is down", NOW, source="src", thread="10"),
        Post("x", "11", "reply: still down", NOW, source="src", thread="10"),
    )
    for pid in ids:
        outbox.enqueue(any_db, [outbox.NewAlert("neg", "slack", pid, pid, f"x:{pid}")], [], NOW)
    first, second = due_alerts.due(any_db, NOW, 10)
    assert due_alerts.message(any_db, first).reply_to is None
    outbox.record_delivered(any_db, first.alert_ids[0], 1, "1700000000.000100", NOW, 5.0)
    follow_up = due_alerts.message(any_db, second)
    assert isinstance(follow_up, AlertMessage)
    assert follow_up.post.thread == "10" and follow_up.reply_to == "1700000000.000100"


def test_a_stored_report_comes_back_as_the_same_report_with_its_id(any_db: Db) -> None:
    """One Report type: what a sink is handed *is* the report the detector wrote, plus where it
    goes; an incident's id comes from its key, which is not stored, so the message carries the
    stored id instead of recomputing a different one from the window."""
    ids = _stored(any_db, Post("x", "1", "the app is down again", NOW, source="src"))
    report = _report(kind="incident", key="incident:acme:42", example_post_ids=ids,
                     numbers={"posts": 120}, priority="high", parent_id="f" * 32)
    enqueue_report(any_db, report, ["slack"], NOW)
    [delivery] = due_alerts.due(any_db, NOW, 10)
    message = due_alerts.message(any_db, delivery)
    assert isinstance(message, Report) and message.id == report.id
    for name in ("kind", "name", "title", "window_start", "window_end", "brand", "source",
                 "summary", "numbers", "priority", "parent_id"):
        assert getattr(message, name) == getattr(report, name), name
    assert (list(message.facts), list(message.terms)) == (list(report.facts), list(report.terms))
    assert list(message.example_post_ids) == ids
    assert delivery.about == f"report {report.id}" and delivery.alert_ids == (message.alert_id,)


def test_spike_windows_are_a_detectors_recent_reports_with_their_kinds(any_db: Db) -> None:
    def spike(end: datetime, kinds: list[str], **fields: object) -> None:
        report = _report(window_start=end - timedelta(hours=1), window_end=end,
                         numbers={"spikes": kinds}, **fields)
        enqueue_report(any_db, report, ["slack"], end)

    spike(NOW - timedelta(hours=2), ["volume"])
    spike(NOW - timedelta(hours=1), ["volume", "negative"])
    spike(NOW - timedelta(hours=1), ["volume"], name="other")  # another detector
    spike(NOW - timedelta(hours=1), ["volume"], source="reddit")  # another series
    spike(NOW - timedelta(days=2), ["negative"])  # too old
    enqueue_report(any_db, _report(numbers={}), ["slack"], NOW)  # no kinds in its numbers

    got = spike_windows(any_db, "volume", "Acme", None, NOW - timedelta(days=1))
    assert sorted(got, key=lambda w: w.window_end) == [
        SpikeWindow(NOW - timedelta(hours=2), ("volume",)),
        SpikeWindow(NOW - timedelta(hours=1), ("volume", "negative")),
        SpikeWindow(NOW, ()),
    ]
    assert spike_windows(any_db, "volume", "Acme", "reddit", NOW - timedelta(days=1)) == [
        SpikeWindow(NOW - timedelta(hours=1), ("volume",))]
    assert spike_windows(any_db, "volume", None, None, NOW - timedelta(days=1)) == []


def test_report_alert_status_is_none_where_the_report_was_not_sent(any_db: Db) -> None:
    report = _report(kind="incident", key="incident:acme:7")
    assert report_alert_status(any_db, report, "slack") is None
    enqueue_report(any_db, report, ["slack", "mail"], NOW)
    outbox.record_delivered(any_db, report_alert_id(report, "slack"), 1, "ts-1", NOW, 5.0)
    assert report_alert_status(any_db, report, "slack") == outbox.DELIVERED
    assert report_alert_status(any_db, report, "mail") == outbox.PENDING
    assert report_alert_status(any_db, report, "jira") is None


def test_last_incident_report_at_finds_the_newest_report_about_the_incident(any_db: Db) -> None:
    def update(incident: str, at: datetime, **fields: object) -> None:
        report = _report(kind="incident_update", name="incident", key=f"u:{incident}:{at}",
                         numbers={"incident": incident}, **fields)
        enqueue_report(any_db, report, ["slack"], at)

    assert last_incident_report_at(any_db, "incident_update", "incident", "Acme", "i1") is None
    update("i1", NOW - timedelta(minutes=20))
    update("i1", NOW - timedelta(minutes=5))
    update("i2", NOW)  # another incident
    update("i1", NOW, brand="Globex")  # another brand
    assert (last_incident_report_at(any_db, "incident_update", "incident", "Acme", "i1")
            == NOW - timedelta(minutes=5))
    assert last_incident_report_at(any_db, "incident", "incident", "Acme", "i1") is None
