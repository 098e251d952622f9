"""storage.outbox (and storage.due_alerts, which reads it as deliveries) on both engines: the
same alerts written, grouped, ordered, attempted, deferred and requeued, to the value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from listener.core.models import Page, Post, Report, Score
from storage import db as store
from storage import due_alerts, outbox, reports
from storage.engine import Db
from storage.outbox import NewAlert

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SCORE = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "1")


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def seeded(db: Db, *keys: str, thread: str | None = None) -> dict[str, tuple[int, int]]:
    """One scored post per key (platform x, platform id = key): key → (post id, score id)."""
    posts = [Post("x", k, f"the app is broken, report {k}", T0, source="x-main", brand="acme",
                  thread=thread) for k in keys]
    store.store_page(db, "x-main", Page(posts=posts), T0)
    ids = {r["platform_id"]: int(r["id"]) for r in db.query(
        "SELECT id, platform_id FROM posts WHERE platform = 'x'")}
    store.save_scores(db, [(ids[k], SCORE, "en") for k in keys], T0)
    scores = {int(r["post_id"]): int(r["id"]) for r in db.query("SELECT id, post_id FROM scores")}
    return {k: (ids[k], scores[ids[k]]) for k in keys}


def new(seed: dict[str, tuple[int, int]], key: str, rule: str, destination: str,
        **extra: Any) -> NewAlert:
    post_id, score_id = seed[key]
    return NewAlert(rule, destination, post_id, score_id, f"x:{key}", **extra)


def alerts(db: Db, columns: str) -> list[tuple[Any, ...]]:
    """``columns`` of every alert, ordered by rule, destination, post (``id`` last)."""
    return [tuple(r.values()) for r in db.query(
        f"SELECT {columns} FROM alerts ORDER BY rule, destination, post_id, id")]  # noqa: S608


def status(db: Db, alert: NewAlert) -> tuple[Any, ...]:
    row = db.execute("SELECT status, attempts, next_attempt_at FROM alerts WHERE id = ?",
                     [alert.id]).fetchone()
    return tuple(row)


def test_enqueue_writes_each_alert_once_and_marks_the_scores_evaluated(any_db: Db) -> None:
    s = seeded(any_db, "1", "2")
    a = new(s, "1", "unhappy", "hook", priority="high", rank=2.5)
    b = new(s, "1", "unhappy", "mail")
    c = new(s, "2", "angry", "hook", status=outbox.DRY_RUN)
    assert outbox.enqueue(any_db, [a, a, b, c], [s["1"][1]], T0) == 3  # a twice: once
    assert outbox.enqueue(any_db, [a, b], [s["2"][1]], at(5)) == 0  # the same ids: nothing
    p1, sc1 = s["1"]
    p2, sc2 = s["2"]
    assert alerts(any_db, "id, post_id, score_id, rule, destination, status, priority, rank,"
                          " attempts, next_attempt_at, created_at, delivered_at, remote_id,"
                          " last_error, report_id") == [
        (c.id, p2, sc2, "angry", "hook", "dry_run", "normal", 0.0, 0, iso(T0), iso(T0),
         None, None, None, None),
        (a.id, p1, sc1, "unhappy", "hook", "pending", "high", 2.5, 0, iso(T0), iso(T0),
         None, None, None, None),
        (b.id, p1, sc1, "unhappy", "mail", "pending", "normal", 0.0, 0, iso(T0), iso(T0),
         None, None, None, None),
    ]
    # the scores are marked evaluated even when no alert was added for them
    assert [tuple(r.values()) for r in any_db.query(
        "SELECT post_id, rules_at FROM scores ORDER BY post_id")] == \
        [(p1, iso(T0)), (p2, iso(at(5)))]


def test_a_post_already_sent_to_a_destination_gets_no_second_alert_there(any_db: Db) -> None:
    s = seeded(any_db, "1", "2", "3")
    first = new(s, "1", "unhappy", "hook")
    assert outbox.enqueue(any_db, [first], [], T0) == 1
    joined = new(s, "1", "angry", "hook")  # still waiting: joins the one message
    assert outbox.enqueue(any_db, [joined], [], T0) == 1
    outbox.begin_attempt(any_db, [first.id, joined.id], 1)
    # being sent (an attempt began): a new rule gets nothing there, elsewhere it does
    assert outbox.enqueue(any_db, [new(s, "1", "vip", "hook"), new(s, "1", "vip", "mail")],
                          [], at(1)) == 1
    delivered, parked = new(s, "2", "unhappy", "hook"), new(s, "3", "unhappy", "hook")
    assert outbox.enqueue(any_db, [delivered, parked], [], T0) == 2
    outbox.record_delivered(any_db, delivered.id, 1, "r-2", at(1), 1.0)
    outbox.record_failure(any_db, parked.id, 1, at(1), error="410 Gone", status_code=410,
                          retry_at=None, ms=1.0)
    # delivered or parked as failed: no second alert either
    assert outbox.enqueue(any_db, [new(s, "2", "angry", "hook"), new(s, "3", "angry", "hook")],
                          [], at(2)) == 0
    p1, p2, p3 = s["1"][0], s["2"][0], s["3"][0]
    assert alerts(any_db, "rule, destination, post_id, status, attempts") == [
        ("angry", "hook", p1, "pending", 1),
        ("unhappy", "hook", p1, "pending", 1),
        ("unhappy", "hook", p2, "delivered", 1),
        ("unhappy", "hook", p3, "failed", 1),
        ("vip", "mail", p1, "pending", 0),
    ]


def due_queue(db: Db) -> dict[str, Any]:
    """A queue of groups with every tie the order must break; the alerts by name."""
    s = seeded(db, "1", "2", "3", "4", "5")
    named = {
        "p1 hook r1": new(s, "1", "r1", "hook", rank=2.0),
        "p2 hook r1": new(s, "2", "r1", "hook", rank=5.0),
        "p1 mail r1": new(s, "1", "r1", "mail", rank=2.0),
        "p5 hook r1": new(s, "5", "r1", "hook", rank=1.0),
    }
    outbox.enqueue(db, list(named.values()), [], T0)
    named["p1 hook r2"] = new(s, "1", "r2", "hook", rank=0.5)  # joins p1's group later
    named["p3 hook r1"] = new(s, "3", "r1", "hook", rank=2.0)  # as important, newer
    outbox.enqueue(db, [named["p1 hook r2"], named["p3 hook r1"]], [], at(1))
    named["p4 hook r1"] = new(s, "4", "r1", "hook", rank=9.0)
    outbox.enqueue(db, [named["p4 hook r1"]], [], at(2))
    outbox.record_failure(db, named["p4 hook r1"].id, 1, at(3), error="503", status_code=503,
                          retry_at=at(60), ms=1.0)  # waits for its retry
    spike = Report(kind="spike", name="spikes", title="Spike", window_start=at(-60),
                   window_end=T0, priority="normal")  # rank 1.0, as p5's: no post sorts first
    reports.enqueue_report(db, spike, ["hook"], T0)
    return {"named": named, "spike": reports.report_alert_id(spike, "hook"), "report": spike.id}


def test_due_groups_come_most_important_first_then_oldest(any_db: Db) -> None:
    q = due_queue(any_db)
    n, spike, report = q["named"], q["spike"], q["report"]
    rows = outbox.due(any_db, at(10), 10)
    assert [r["alert_id"] for r in rows] == [
        n["p2 hook r1"].id,  # rank 5
        n["p1 hook r1"].id, n["p1 hook r2"].id,  # rank 2 (its highest), oldest; hook < mail
        n["p1 mail r1"].id,
        n["p3 hook r1"].id,  # rank 2, a minute newer
        spike,  # rank 1, as old as p5's: the report (no post) first
        n["p5 hook r1"].id,
    ]  # p4 is waiting for its retry at 11:00
    spike_row = rows[5]
    assert (spike_row["rule"], spike_row["report_id"], spike_row["id"], spike_row["sentiment"],
            spike_row["rank"]) == ("spikes", report, None, None, 1.0)
    first = rows[0]
    assert (first["rule"], first["destination"], first["attempts"], first["priority"],
            first["platform_id"], first["sentiment"], first["urgency"], first["brand"],
            first["also_brands"]) == ("r1", "hook", 0, "normal", "2", "negative", 0.8, "acme",
                                      None)
    # the limit counts groups: a group comes whole
    assert [r["alert_id"] for r in outbox.due(any_db, at(10), 2)] == \
        [n["p2 hook r1"].id, n["p1 hook r1"].id, n["p1 hook r2"].id]
    assert [r["alert_id"] for r in outbox.due(any_db, at(10), 10, "mail")] == [n["p1 mail r1"].id]
    assert outbox.due(any_db, at(10), 10, "slack") == []
    # a clock set back before the queue was written: everything is due, p4 (rank 9) first
    assert [r["alert_id"] for r in outbox.due(any_db, at(-60), 1)] == [n["p4 hook r1"].id]
    # once its retry time has come, p4 is due again
    assert [r["alert_id"] for r in outbox.due(any_db, at(60), 1)] == [n["p4 hook r1"].id]


def test_due_deliveries_are_one_message_per_post_or_report_and_destination(
    any_db: Db,
) -> None:
    q = due_queue(any_db)
    n, spike, report = q["named"], q["spike"], q["report"]
    got = [(d.destination, d.alert_ids, d.about, d.post_key, d.collected_at)
           for d in due_alerts.due(any_db, at(10), 10)]
    assert got == [
        ("hook", (n["p2 hook r1"].id,), "post x:2", ("x", "2"), iso(T0)),
        ("hook", (n["p1 hook r1"].id, n["p1 hook r2"].id), "post x:1", ("x", "1"), iso(T0)),
        ("mail", (n["p1 mail r1"].id,), "post x:1", ("x", "1"), iso(T0)),
        ("hook", (n["p3 hook r1"].id,), "post x:3", ("x", "3"), iso(T0)),
        ("hook", (spike,), f"report {report}", None, None),
        ("hook", (n["p5 hook r1"].id,), "post x:5", ("x", "5"), iso(T0)),
    ]
    [mail] = due_alerts.due(any_db, at(10), 10, "mail")
    message = due_alerts.message(any_db, mail)
    assert (message.alert_id, message.rules, message.attempt, message.reply_to) == \
        (n["p1 mail r1"].id, ("r1",), 1, None)


def test_delivered_and_failed_attempts_are_recorded_with_their_deliveries(any_db: Db) -> None:
    s = seeded(any_db, "1", "2")
    a, b = new(s, "1", "unhappy", "hook"), new(s, "2", "unhappy", "hook")
    outbox.enqueue(any_db, [a, b], [], T0)
    outbox.begin_attempt(any_db, [a.id], 1)
    assert status(any_db, a) == ("pending", 1, iso(T0))
    outbox.record_failure(any_db, a.id, 1, at(1), status_code=503, retry_at=at(6), ms=12.34,
                          error="POST https://h.example/x?token=abc failed: 503")  # scrubbed
    assert status(any_db, a) == ("pending", 1, iso(at(6)))
    outbox.record_failure(any_db, b.id, 1, at(2), error="429 Too Many Requests", status_code=429,
                          retry_at=at(3), ms=1.0, outcome="rate_limited")
    outbox.record_delivered(any_db, a.id, 2, "remote-1", at(7), 80.06)
    outbox.record_failure(any_db, b.id, 2, at(8), error="410 Gone", status_code=410,
                          retry_at=None, ms=3.0)
    assert alerts(any_db, "id, status, attempts, next_attempt_at, last_error, remote_id,"
                          " delivered_at") == [
        (a.id, "delivered", 2, iso(at(6)), None, "remote-1", iso(at(7))),
        (b.id, "failed", 2, None, "410 Gone", None, None),
    ]
    assert [tuple(r.values()) for r in any_db.query(
        "SELECT alert_id, attempt, at, outcome, status_code, error, remote_id, duration_ms"
        " FROM deliveries ORDER BY id")] == [
        (a.id, 1, iso(at(1)), "retry", 503, "POST https://h.example/x?token=*** failed: 503", None,
         12.3),
        (b.id, 1, iso(at(2)), "rate_limited", 429, "429 Too Many Requests", None, 1.0),
        (a.id, 2, iso(at(7)), "delivered", None, None, "remote-1", 80.1),
        (b.id, 2, iso(at(8)), "failed", 410, "410 Gone", None, 3.0),
    ]
    assert outbox.remote_id(any_db, a.id) == "remote-1"
    assert outbox.remote_id(any_db, b.id) is None  # failed: never delivered
    assert outbox.remote_id(any_db, "no-such-alert") is None


def test_a_rate_limited_destination_is_deferred_and_its_next_due_time_known(any_db: Db) -> None:
    s = seeded(any_db, "1", "2", "3", "4")
    waiting, later = new(s, "1", "r", "hook"), new(s, "2", "r", "hook")
    other, sent = new(s, "3", "r", "mail"), new(s, "4", "r", "hook")
    outbox.enqueue(any_db, [waiting, later, other, sent], [], T0)
    outbox.record_failure(any_db, later.id, 1, T0, error="503", status_code=503,
                          retry_at=at(120), ms=1.0)
    outbox.record_delivered(any_db, sent.id, 1, "r-4", T0, 1.0)
    assert outbox.defer_destination(any_db, "hook", at(60)) == 1  # only what was due sooner
    assert [status(any_db, x) for x in (waiting, later, other, sent)] == [
        ("pending", 0, iso(at(60))), ("pending", 1, iso(at(120))), ("pending", 0, iso(T0)),
        ("delivered", 1, iso(T0))]
    assert outbox.defer_destination(any_db, "hook", at(30)) == 0  # never moves one sooner
    assert outbox.next_due_at(any_db, ["hook"]) == iso(at(60))
    assert outbox.next_due_at(any_db, ["hook", "mail"]) == iso(T0)
    assert outbox.next_due_at(any_db, ["slack"]) is None
    assert outbox.next_due_at(any_db, []) is None


def test_requeue_failed_puts_parked_alerts_back_all_or_by_id(any_db: Db) -> None:
    s = seeded(any_db, "1", "2", "3", "4")
    a, b, c, d = (new(s, k, "r", "hook") for k in ("1", "2", "3", "4"))
    outbox.enqueue(any_db, [a, b, c, d], [], T0)
    for alert, attempts in ((a, 3), (b, 1), (c, 0)):  # c: refused before any attempt
        outbox.record_failure(any_db, alert.id, attempts, T0, error="400", status_code=400,
                              retry_at=None, ms=1.0)
    assert outbox.requeue_failed(any_db, at(1), [a.id, d.id]) == 1  # d is not parked
    assert [status(any_db, x) for x in (a, b, c, d)] == [
        ("pending", 1, iso(at(1))), ("failed", 1, None), ("failed", 0, None),
        ("pending", 0, iso(T0))]
    assert outbox.requeue_failed(any_db, at(2)) == 2
    assert [status(any_db, x) for x in (b, c)] == [("pending", 1, iso(at(2))),
                                                   ("pending", 0, iso(at(2)))]
    assert outbox.requeue_failed(any_db, at(3)) == 0


def test_a_conversation_threads_under_its_first_delivered_alert(any_db: Db) -> None:
    s = seeded(any_db, "1", "2", "3", "5", thread="t-1")
    s.update(seeded(any_db, "4", thread="t-2"))
    p1, p2, p3 = new(s, "1", "r", "hook"), new(s, "2", "r", "hook"), new(s, "3", "r", "hook")
    m1, p4, p5 = new(s, "1", "r", "mail"), new(s, "4", "r", "hook"), new(s, "5", "r", "hook")
    outbox.enqueue(any_db, [p1, p2, p3, m1, p4, p5], [], T0)
    outbox.record_delivered(any_db, p3.id, 1, None, T0, 1.0)  # no remote id: cannot thread
    outbox.record_delivered(any_db, p2.id, 1, "ts-2", at(1), 1.0)
    outbox.record_delivered(any_db, p1.id, 1, "ts-1", at(5), 1.0)
    outbox.record_delivered(any_db, m1.id, 1, "m-1", at(10), 1.0)
    assert outbox.thread_parent(any_db, "hook", "x", "t-1") == "ts-2"
    assert outbox.thread_parent(any_db, "mail", "x", "t-1") == "m-1"
    assert outbox.thread_parent(any_db, "hook", "x", "t-2") is None  # p4 still pending
    assert outbox.thread_parent(any_db, "hook", "reddit", "t-1") is None
    replies = {d.post_key: due_alerts.message(any_db, d).reply_to
               for d in due_alerts.due(any_db, at(20), 10, "hook")}
    assert replies == {("x", "4"): None, ("x", "5"): "ts-2"}


def test_a_cap_demotes_the_lowest_ranked_waiting_alert(any_db: Db) -> None:
    s = seeded(any_db, "1", "2", "3", "4", "5", "6")
    top, low = new(s, "1", "r", "hook", rank=3.0), new(s, "2", "r", "hook", rank=1.0)
    twin = new(s, "6", "r", "hook", rank=1.0)  # as low and as old as `low`
    tried, dry = new(s, "4", "r", "hook", rank=0.5), new(s, "5", "r", "hook",
                                                          status=outbox.DRY_RUN)
    outbox.enqueue(any_db, [top, low, twin, tried, dry], [], T0)
    newer = new(s, "3", "r", "hook", rank=1.0)  # as low as `low`, newer: demoted first
    outbox.enqueue(any_db, [newer], [], at(1))
    outbox.begin_attempt(any_db, [tried.id], 1)  # being sent: never demoted
    assert outbox.sent_since(any_db, "r", "hook", T0) == 5  # the dry run does not count
    equals = sorted([low.id, twin.id])  # of equals, the lower id first
    assert [outbox.demote_lowest(any_db, "r", "hook", T0, 2.0) for _ in range(4)] == \
        [newer.id, *equals, None]  # then none: top ranks higher
    assert outbox.demote_lowest(any_db, "r", "hook", at(2), 9.0) is None  # none since then
    assert outbox.sent_since(any_db, "r", "hook", T0) == 2
    assert outbox.fold_into_incident(any_db, [s["1"][0], s["4"][0]]) == 1  # tried stays
    assert outbox.fold_into_incident(any_db, []) == 0
    assert [status(any_db, x)[0] for x in (top, low, twin, newer, tried, dry)] == \
        ["incident", "suppressed", "suppressed", "suppressed", "pending", "dry_run"]


def test_alerts_held_over_quiet_hours_are_read_then_digested(any_db: Db) -> None:
    s = seeded(any_db, "1", "2", "3")
    early, late = (new(s, "1", "quiet", "hook", status=outbox.HELD, priority="high"),
                   new(s, "2", "quiet", "hook", status=outbox.HELD))
    other = new(s, "3", "loud", "hook", status=outbox.HELD)
    outbox.enqueue(any_db, [early, other], [], T0)
    outbox.enqueue(any_db, [late], [], at(5))
    assert outbox.held(any_db, "quiet", at(5)) == [
        {"alert_id": early.id, "destination": "hook", "priority": "high",
         "created_at": iso(T0), "post_id": s["1"][0], "sentiment": "negative", "urgency": 0.8,
         "brand": "acme"}]
    assert [r["alert_id"] for r in outbox.held(any_db, "quiet", at(6))] == [early.id, late.id]
    outbox.mark_digested(any_db, [early.id, late.id])
    assert [status(any_db, x)[0] for x in (early, late, other)] == \
        ["digested", "digested", "held"]
    assert outbox.held(any_db, "quiet", at(6)) == []
