"""What people read back, on both engines (``any_db``): the outbox listed and counted
(storage/alert_log.py), one post with everything stored about it (storage/post_record.py), the
terminal summary's counts (storage/summaries.py) and the spikes the overview marks
(storage/trends.py) — the same rows in the same order whichever engine holds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Rejected, Report, Score
from storage import alert_log, outbox, post_record, reports, summaries, triage
from storage import db as store
from storage.engine import Db
from storage.trends import Period, spikes

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def stored(db: Db, *posts: Post, source: str = "x-main") -> list[int]:
    store.store_page(db, source, Page(posts=list(posts)), NOW)
    return [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]


def post(pid: str, text: str, minutes: int = 60, **kw: object) -> Post:
    fields = dict(platform="x", platform_id=pid, text=text, source="x-main", brand="acme",
                  created_at=NOW - timedelta(minutes=minutes), author="jane")
    fields.update(kw)
    return Post(**fields)  # type: ignore[arg-type]


def score(sentiment: str, urgency: float, version: str = "1") -> Score:
    return Score(sentiment, 0.8, 0.1, 0.1, urgency, "m", version)


def alert(db: Db, post_id: int, rule: str, destination: str, priority: str = "normal",
          rank: float = 0.0) -> outbox.NewAlert:
    """An alert on the post's newest score."""
    score_id = db.execute("SELECT max(id) FROM scores WHERE post_id = ?", [post_id]).fetchone()[0]
    return outbox.NewAlert(rule=rule, destination=destination, post_id=post_id,
                           score_id=score_id, post_key=f"x:{post_id}", priority=priority,
                           rank=rank)


def spike(name: str, brand: str | None, source: str | None, start: datetime,
          kind: str = "spike") -> Report:
    return Report(kind=kind, name=name, title=f"{name} {brand} {source}", window_start=start,
                  window_end=start + timedelta(hours=1), brand=brand, source=source,
                  summary=f"{name} rose", terms=[f"t{i}" for i in range(10)])


def test_the_outbox_lists_filters_and_counts_alike(any_db: Db) -> None:
    db = any_db
    older, newer, other = stored(db, post("1", "old news", 90), post("2", "new news", 30),
                                 post("3", "other news", 10))
    store.save_scores(db, [(pid, score("negative", 0.9), None) for pid in (older, newer, other)],
                      NOW)
    # one batch: the same created_at for every alert in it
    outbox.enqueue(db, [alert(db, older, "unhappy", "slack", "high", 1.0),
                        alert(db, newer, "unhappy", "slack", rank=3.0),
                        alert(db, newer, "urgent", "zendesk", "low", 9.0)], [], NOW)
    reports.enqueue_report(db, spike("volume", "acme", None, NOW - timedelta(hours=2)),
                           ["slack"], NOW)
    failed = outbox.alert_id("urgent", f"x:{newer}", "zendesk")
    unhappy = outbox.alert_id("unhappy", f"x:{newer}", "slack")
    outbox.record_failure(db, failed, 1, NOW, error="HTTP 500", status_code=500, retry_at=None,
                          ms=12.0)

    listed = alert_log.alerts(db, alert_log.AlertFilter())
    assert len(listed) == 4 and [r["created_at"] for r in listed] == [
        "2026-11-20T12:00:00Z"] * 4
    assert [r["id"] for r in listed] == sorted((r["id"] for r in listed), reverse=True)
    report_row = next(r for r in listed if r["report_id"])
    assert (report_row["post_id"], report_row["excerpt"], report_row["report_title"]) == (
        None, None, "volume acme None")
    assert {r["excerpt"] for r in listed if r["post_id"]} == {"old news", "new news"}
    assert [r["id"] for r in alert_log.alerts(db, alert_log.AlertFilter(status="failed"))] == [
        failed]
    assert [r["rule"] for r in alert_log.alerts(db, alert_log.AlertFilter(
        destination="slack", rule="unhappy"))] == ["unhappy", "unhappy"]
    assert len(alert_log.alerts(db, alert_log.AlertFilter(), limit=2, offset=3)) == 1
    assert alert_log.alert_counts(db) == [
        {"destination": "slack", "status": "pending", "n": 3},
        {"destination": "zendesk", "status": "failed", "n": 1}]
    assert alert_log.alert_names(db) == {"destination": ["slack", "zendesk"],
                                         "rule": ["unhappy", "urgent", "volume"]}

    # one batch comes newest post first, the report's alert (no post) last
    newest = alert_log.listed(db, None, 10, "newest")
    assert [(a.rule, a.platform_id) for a in newest[2:]] == [("unhappy", "1"), ("volume", None)]
    assert [a.id for a in newest[:2]] == sorted([failed, unhappy])  # one post's: by id
    assert newest[-1].report_kind == "spike" and newest[0].report_kind is None
    by_priority = alert_log.listed(db, None, 10, "priority")
    assert [(a.priority, a.rule, a.platform_id) for a in by_priority] == [
        ("high", "unhappy", "1"), ("normal", "unhappy", "2"), ("normal", "volume", None),
        ("low", "urgent", "2")]
    assert [a.id for a in alert_log.listed(db, "failed", 10, "newest")] == [failed]
    assert alert_log.failed_ids(db) == [failed]
    assert alert_log.with_prefix(db, failed[:3]) == [(failed, "failed")]
    assert alert_log.with_prefix(db, "g") == []


def test_a_post_is_read_back_with_everything_stored_about_it(any_db: Db) -> None:
    db = any_db
    first, cross = stored(db, post("1", "the app is broken and I want a refund", 30),
                          post("2", "the app is broken and I want a refund", 20,
                               platform="reddit", url="https://r.example/2"))
    store.save_scores(db, [(first, score("negative", 0.9), "en")], NOW)
    store.save_scores(db, [(first, score("neutral", 0.2, "2"), "en")], NOW)
    triage.set_status(db, first, "handled", "ann", NOW)
    outbox.enqueue(db, [alert(db, first, "unhappy", "slack")], [], NOW)
    alert_id = outbox.alert_id("unhappy", f"x:{first}", "slack")
    outbox.record_failure(db, alert_id, 1, NOW, error="timeout", status_code=None,
                          retry_at=NOW + timedelta(minutes=5), ms=30000.0)
    outbox.record_delivered(db, alert_id, 2, "remote-7", NOW + timedelta(minutes=5), 80.0)

    detail = post_record.post_detail(db, first)
    assert detail is not None
    assert (detail["id"], detail["text"], detail["status"], detail["status_by"]) == (
        first, "the app is broken and I want a refund", "handled", "ann")
    assert [(s["model_version"], s["sentiment"]) for s in detail["scores"]] == [
        ("2", "neutral"), ("1", "negative")]
    [sent] = detail["alerts"]
    assert (sent["id"], sent["status"], sent["remote_id"]) == (alert_id, "delivered", "remote-7")
    assert [(d["attempt"], d["outcome"], d["status_code"], d["error"], d["remote_id"])
            for d in sent["deliveries"]] == [(1, "retry", None, "timeout", None),
                                             (2, "delivered", None, None, "remote-7")]
    assert detail["crossposts"] == [{"id": cross, "platform": "reddit",
                                     "url": "https://r.example/2"}]
    untouched = post_record.post_detail(db, cross)
    assert untouched is not None and untouched["status"] == "new"
    assert untouched["scores"] == untouched["alerts"] == untouched["crossposts"] == []
    assert post_record.post_detail(db, 999) is None


def test_the_run_summary_counts_alike(any_db: Db) -> None:
    db = any_db
    ids = stored(db, post("1", "a"), post("2", "b"), post("3", "c"))
    db.execute("UPDATE posts SET source = NULL WHERE id = ?", [ids[0]])  # an old import's
    store.store_page(db, "rss", Page(posts=[post("4", "d", source="rss")],
                                     rejected=[Rejected("feed:3", "no text")]), NOW)
    store.save_scores(db, [(ids[1], score("negative", 0.9), None),
                           (ids[2], score("neutral", 0.1), None)], NOW)
    store.save_scores(db, [(ids[2], Score("positive", 0.1, 0.1, 0.8, 0.1, "m", "2",
                                          language_supported=False), None)], NOW)
    table = summaries.posts_by_source_and_sentiment(db)
    assert list(table) == ["?", "rss", "x-main"]  # posts without a source first, as SQLite
    assert table["x-main"] == {"negative": 1, "neutral": 0, "positive": 0, "unsupported": 1,
                               "unscored": 0}
    assert table["?"]["unscored"] == 1 and table["rss"]["unscored"] == 1
    outbox.enqueue(db, [alert(db, ids[1], "unhappy", "slack"),
                        alert(db, ids[2], "unhappy", "slack"),
                        alert(db, ids[2], "all", "zendesk")], [], NOW)
    assert summaries.alerts_by_rule_and_status(db) == [
        {"rule": "all", "destination": "zendesk", "status": "pending", "n": 1},
        {"rule": "unhappy", "destination": "slack", "status": "pending", "n": 2}]
    assert summaries.rejects_by_source(db) == {"rss": 1}
    for stage, error in (("collect", "HTTP 503"), ("score", None), ("alert", "sink down")):
        run = store.start_run(db, stage, "t", NOW)
        store.finish_run(db, run, NOW, items=0, error=error)
    assert summaries.failed_runs(db, "2026-11-20") == [
        {"stage": "collect", "target": "t", "error": "HTTP 503"},
        {"stage": "alert", "target": "t", "error": "sink down"}]
    assert summaries.failed_runs(db, "2026-11-21") == []


def test_spikes_overlapping_the_period_by_brand_and_source(any_db: Db) -> None:
    db = any_db
    day = Period(NOW - timedelta(days=1), NOW)
    for report in (spike("volume", "acme", None, NOW - timedelta(hours=3)),  # brand-wide
                   spike("volume", "acme", "reddit", NOW - timedelta(hours=5)),
                   spike("negative", "globex", "x-main", NOW - timedelta(hours=4)),
                   spike("volume", "acme", None, NOW - timedelta(days=3)),  # before the period
                   spike("digest", "acme", None, NOW - timedelta(hours=2), kind="digest")):
        reports.enqueue_report(db, report, ["slack"], NOW)
    everything = spikes(db, day)
    assert [(s["name"], s["brand"], s["source"]) for s in everything] == [
        ("volume", "acme", "reddit"), ("negative", "globex", "x-main"),
        ("volume", "acme", None)]
    assert everything[0]["summary"] == "volume rose" and everything[0]["terms"] == [
        f"t{i}" for i in range(8)]
    assert [(s["brand"], s["source"]) for s in spikes(db, day, brand="acme")] == [
        ("acme", "reddit"), ("acme", None)]
    assert [(s["brand"], s["source"]) for s in spikes(db, day, source="x-main")] == [
        ("globex", "x-main"), ("acme", None)]  # a brand-wide spike shows on every source
    assert spikes(db, day, brand="acme", source="x-main")[0]["source"] is None
    assert spikes(db, Period(NOW, NOW + timedelta(hours=1))) == []
