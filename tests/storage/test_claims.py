"""Claiming alerts to send when many dispatch workers share the database (issue 17): on both
engines, then many claimers at once on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Score
from storage import claims, due_alerts, leases, outbox
from storage import db as store
from storage.engine import Db
from storage.tx import connect
from tests.pg_server import Server

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def seed(db: Db, count: int, destination: str = "hook", *, start: int = 0,
         now: datetime = T0) -> list[str]:
    """``count`` negative posts, scored, each with one pending alert (rule ``r``) for
    ``destination``; their alert ids in post order."""
    keys = range(start, start + count)
    posts = [Post("x", str(i), f"post {i}: the acme cloud is down", now, source="s")
             for i in keys]
    store.store_page(db, "s", Page(posts=posts), now)
    score = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v")
    rows = store.posts_to_score(db, "m", "v", count)
    store.save_scores(db, [(r.id, score, None) for r in rows], now)
    evaluated = store.scores_to_evaluate(db, count)
    alerts = [outbox.NewAlert("r", destination, r.post_id, r.score_id, f"x:{r.post.platform_id}")
              for r in evaluated]
    outbox.enqueue(db, alerts, [r.score_id for r in evaluated], now)
    return [outbox.alert_id("r", f"x:{i}", destination) for i in keys]


def second_rule(db: Db, key: int, destination: str = "hook", now: datetime = T0) -> str:
    """Another rule matching post ``x:<key>``: its alert joins the post's group."""
    post_id, score_id = db.execute(
        "SELECT p.id, s.id FROM posts p JOIN scores s ON s.post_id = p.id"
        " WHERE p.platform_id = ?", [str(key)]).fetchone()
    outbox.enqueue(db, [outbox.NewAlert("r2", destination, post_id, score_id, f"x:{key}")], [],
                   now)
    return outbox.alert_id("r2", f"x:{key}", destination)


def held_by(db: Db) -> dict[str, str]:
    return {lease.name: lease.owner for lease in leases.listed(db)}


def test_two_workers_claim_different_groups_in_due_order_every_alert_leased(any_db: Db) -> None:
    ids = seed(any_db, 5)
    joined = second_rule(any_db, 0)  # post 0's group: two alerts, one message
    order = [d.alert_ids for d in due_alerts.due(any_db, T0, 10, "hook")]
    first = claims.deliveries_to_send(any_db, T0, 2, "hook", "w1", 300)
    second = claims.deliveries_to_send(any_db, T0, 10, "hook", "w2", 300)
    assert [d.alert_ids for d in first] == order[:2] and [d.alert_ids for d in second] == order[2:]
    assert set(first[0].alert_ids) == {ids[0], joined}
    owners = held_by(any_db)
    assert owners == {claims.alert_lease(a): ("w1" if i < 2 else "w2")
                      for i, group in enumerate(order) for a in group}
    assert claims.deliveries_to_send(any_db, T0, 10, "hook", "w3", 300) == []  # all held
    # a worker reading again sees its own claims as free for it (it renews them)
    assert [d.alert_ids for d in claims.deliveries_to_send(any_db, T0, 2, "hook", "w1", 300)
            ] == order[:2]
    assert claims.deliveries_to_send(any_db, T0, 10, "other", "w3", 300) == []  # destination


def test_released_claims_are_free_at_once_and_a_dead_workers_after_expiry(any_db: Db) -> None:
    seed(any_db, 3)
    first = claims.deliveries_to_send(any_db, T0, 1, "hook", "w1", 300)
    dead = claims.deliveries_to_send(any_db, T0, 2, "hook", "w2", 300)
    assert claims.release(any_db, first, "w1") == 1
    assert claims.deliveries_to_send(any_db, T0, 9, "hook", "w3", 300) == first
    assert claims.release(any_db, first, "w3") == 1
    # w2 died holding its two: free only once its leases ran out, then claimed in due order
    assert claims.deliveries_to_send(any_db, T0 + timedelta(seconds=299), 9, "hook", "w4",
                                     300) == first
    later = claims.deliveries_to_send(any_db, T0 + timedelta(seconds=301), 9, "hook", "w4", 300)
    assert [d.alert_ids for d in later] == [d.alert_ids for d in first + dead]


def test_a_group_another_worker_holds_stays_its_own_when_an_alert_joins(any_db: Db) -> None:
    ids = seed(any_db, 1)
    [claimed] = claims.deliveries_to_send(any_db, T0, 9, "hook", "w1", 300)
    joined = second_rule(any_db, 0)  # a rule added meanwhile: not yet attempted, so it joins
    assert claims.deliveries_to_send(any_db, T0, 9, "hook", "w2", 300) == []
    [again] = claims.deliveries_to_send(any_db, T0, 9, "hook", "w1", 300)
    assert claimed.alert_ids == (ids[0],) and set(again.alert_ids) == {ids[0], joined}


def test_begin_checks_again_that_the_claim_is_still_its_own_pending_and_due(any_db: Db) -> None:
    seed(any_db, 3)
    a, b, c = claims.deliveries_to_send(any_db, T0, 9, "hook", "w1", 300)
    # the destination answered another worker 429 Retry-After 30: every pending alert waits
    outbox.defer_destination(any_db, "hook", T0 + timedelta(seconds=30))
    assert not claims.begin(any_db, a, 1, "w1", T0 + timedelta(seconds=1), 300)
    assert [r["attempts"] for r in any_db.query(
        "SELECT attempts FROM alerts WHERE id = ?", [a.alert_ids[0]])] == [0]
    after = T0 + timedelta(seconds=30)
    assert claims.begin(any_db, a, 1, "w1", after, 300)  # the wait is over
    assert [r["attempts"] for r in any_db.query(
        "SELECT attempts FROM alerts WHERE id = ?", [a.alert_ids[0]])] == [1]
    outbox.record_delivered(any_db, a.alert_ids[0], 1, "evt_1", after, 200.0)
    assert not claims.begin(any_db, a, 2, "w1", after, 300)  # delivered: nothing to send
    # w1's claim on b ran out (a stuck worker) and w2 took it: w1 must not send it any more
    expired = T0 + timedelta(seconds=301)
    assert [d.alert_ids for d in claims.deliveries_to_send(any_db, expired, 1, "hook", "w2",
                                                           300)] == [b.alert_ids]
    assert not claims.begin(any_db, b, 1, "w1", expired, 300)
    # ran out but nobody took it: still pending and due, so w1 goes on (renewed)
    assert claims.begin(any_db, c, 1, "w1", expired, 300)
    assert held_by(any_db)[claims.alert_lease(c.alert_ids[0])] == "w1"
    # w2 attempted b, failed, is due again and gave b back: w1's reading of b is out of date
    # (it would send it as attempt 1, and a ticket sink would not look before creating)
    assert claims.begin(any_db, b, 1, "w2", expired, 300)
    outbox.record_failure(any_db, b.alert_ids[0], 1, expired, error="timed out",
                          status_code=None, retry_at=expired, ms=10_000.0)
    claims.release(any_db, [b], "w2")
    assert not claims.begin(any_db, b, 1, "w1", expired, 300)
    [fresh] = [d for d in claims.deliveries_to_send(any_db, expired, 9, "hook", "w1", 300)
               if d.alert_ids == b.alert_ids]  # read again (with c, which w1 holds)
    assert claims.begin(any_db, fresh, 2, "w1", expired, 300)


def test_an_update_waits_while_another_worker_sends_the_message_it_replies_to(
    any_db: Db,
) -> None:
    ids = seed(any_db, 2)
    parent, update = claims.deliveries_to_send(any_db, T0, 2, "hook", "w1", 300)
    claims.release(any_db, [parent], "w1")
    assert claims.deliveries_to_send(any_db, T0, 1, "hook", "w2", 300) == [parent]
    assert not claims.begin(any_db, update, 1, "w1", T0, 300, after=ids[0])
    claims.release(any_db, [parent], "w2")  # sent and recorded
    assert claims.begin(any_db, update, 1, "w1", T0, 300, after=ids[0])


def test_on_sqlite_due_reads_exactly_as_before(any_db: Db) -> None:
    """Without ``free_for`` the outbox reads every due group, leased or not (one process)."""
    seed(any_db, 2)
    claims.deliveries_to_send(any_db, T0, 1, "hook", "w1", 300)
    assert len(due_alerts.due(any_db, T0, 9, "hook")) == 2
    assert len(due_alerts.due(any_db, T0, 9, "hook", free_for="w2")) == 1


def test_many_workers_claiming_at_once_never_claim_one_group_twice(pg_server: Server) -> None:
    """Eight threads, each its own connection, claim three groups at a time as fast as they
    can, record them delivered and give them back: every group claimed by exactly one."""
    url = pg_server.new_database()
    setup = connect(url)
    seed(setup, 120)
    setup.close()
    claimed: Counter[str] = Counter()
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(name: str) -> None:
        db = connect(url)
        try:
            while batch := claims.deliveries_to_send(db, T0, 3, "hook", name, 300):
                for delivery in batch:
                    assert claims.begin(db, delivery, 1, name, T0, 300)
                    for alert in delivery.alert_ids:
                        outbox.record_delivered(db, alert, 1, name, T0, 1.0)
                claims.release(db, batch, name)
                with lock:
                    claimed.update(a for d in batch for a in d.alert_ids)
        except BaseException as exc:
            failures.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert len(claimed) == 120 and set(claimed.values()) == {1}
    check = connect(url)
    try:
        senders = Counter(r["remote_id"] for r in check.query(
            "SELECT remote_id FROM alerts WHERE status = 'delivered'"))
        assert sum(senders.values()) == 120 and len(senders) > 1  # shared among workers
        assert leases.listed(check) == []
    finally:
        check.close()
