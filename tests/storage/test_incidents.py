"""Incident verbs of storage/incidents.py on both engines (``any_db``: an SQLite file, a
PostgreSQL database): post vectors, incidents and their members, the brand's posts that need a
person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import outbox
from storage.engine import Db
from storage.incidents import (
    IncidentRow,
    VectorRow,
    load,
    loose_vectors,
    mark_announced,
    member_destinations,
    member_texts,
    members,
    needy_count,
    needy_times,
    open_incidents,
    save_incident,
    save_vectors,
    unannounced,
    with_unannounced,
)
from tests.dbrows import count

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NEG = Score("negative", 0.9, 0.05, 0.05, 0.7, "m", "v1")
POS = Score("positive", 0.05, 0.15, 0.8, 0.1, "m", "v1")


def _stored(db: Db, *posts: Post) -> list[int]:
    """Store ``posts``; their ids in the order given."""
    store.store_page(db, "src", Page(posts=list(posts)), NOW)
    ids = {r["platform_id"]: r["id"] for r in db.query("SELECT id, platform_id FROM posts")}
    return [ids[p.platform_id] for p in posts]


def _post(pid: str, minutes_before: float, author: str | None = None, **fields: object) -> Post:
    return Post("x", pid, f"the app is down {pid}", NOW - timedelta(minutes=minutes_before),
                author=author, **fields)  # type: ignore[arg-type]


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def _incident(incident_id: str, first: datetime, last: datetime,
              total: np.ndarray | None = None) -> IncidentRow:
    return IncidentRow(incident_id, "acme", first, first, last, 0, 0,
                       _unit(1, 0, 0, 0) if total is None else total)


def test_member_texts_are_the_texts_of_the_posts_asked_for(any_db: Db) -> None:
    posts = [Post("x", str(i), f"the app is down {i}", NOW, brand="acme") for i in range(4)]
    store.store_page(any_db, "src", Page(posts=posts), NOW)
    ids = [r["id"] for r in any_db.query("SELECT id FROM posts ORDER BY id")]
    assert member_texts(any_db, [ids[3], ids[1]]) == ["the app is down 1", "the app is down 3"]
    assert member_texts(any_db, [ids[0], 10_000]) == ["the app is down 0"]
    assert member_texts(any_db, []) == []


def test_vectors_are_kept_once_and_loose_until_an_incident_takes_them(any_db: Db) -> None:
    ids = _stored(any_db, *(_post(str(i), 30 - 10 * i, author=f"u{i}") for i in range(3)))
    rows = [VectorRow(pid, "acme", NOW - timedelta(minutes=30 - 10 * i), f"u{i}",
                      _unit(1, i, 0, 0)) for i, pid in enumerate(ids)]
    save_vectors(any_db, rows)
    save_vectors(any_db, rows)  # the batch evaluated again: nothing new
    save_vectors(any_db, [VectorRow(ids[0], "globex", rows[0].created_at, "u0", _unit(0, 1))])
    assert count(any_db, "post_vectors") == 4

    loose = loose_vectors(any_db, "acme", NOW - timedelta(hours=1), NOW)
    assert [(r.post_id, r.brand, r.created_at, r.author) for r in loose] == [
        (r.post_id, "acme", r.created_at, r.author) for r in rows]
    for got, want in zip(loose, rows, strict=True):  # stored as float16
        assert np.allclose(got.vector, want.vector, atol=1e-3)
    # the range is closed at both ends
    assert [r.post_id for r in loose_vectors(any_db, "acme", rows[1].created_at,
                                             rows[2].created_at)] == ids[1:]

    save_incident(any_db, _incident("i1", rows[0].created_at, rows[1].created_at), loose[:2], NOW)
    assert [r.post_id for r in loose_vectors(any_db, "acme", NOW - timedelta(hours=1), NOW)] == [
        ids[2]]
    # an incident of acme does not take the post's vector for another brand
    assert [r.post_id for r in loose_vectors(any_db, "globex", NOW - timedelta(hours=1),
                                             NOW)] == [ids[0]]


def test_an_incident_keeps_its_earliest_first_and_latest_last_report(any_db: Db) -> None:
    ids = _stored(any_db, _post("a", 30, author="Ann"), _post("b", 20, author="ann"),
                  _post("c", 10), _post("d", 5, author="bob"))
    vec = [VectorRow(pid, "acme", NOW, author, _unit(1, 0))
           for pid, author in zip(ids, ["Ann", "ann", None, "bob"], strict=True)]
    t = [NOW - timedelta(minutes=m) for m in (60, 50, 40, 30)]
    total = np.asarray([0.25, -1.5, 3.0], dtype=np.float32)

    incident = _incident("i1", t[1], t[2], total)
    save_incident(any_db, incident, vec[:3], NOW)
    # Ann and ann are one customer; a post without an author is a customer of its own
    assert (incident.reports, incident.customers) == (3, 2)
    save_incident(any_db, _incident("i1", t[2], t[1], total), vec[:3], NOW)  # retried: no more
    stored = load(any_db, "i1")
    assert stored is not None
    assert (stored.first_at, stored.last_at, stored.reports, stored.customers) == (
        t[1], t[2], 3, 2)
    assert stored.total.tolist() == total.tolist() and stored.opened_at == t[1]

    grown = _incident("i1", t[0], t[3], total * 2)
    save_incident(any_db, grown, vec[3:], NOW + timedelta(minutes=1))
    stored = load(any_db, "i1")
    assert stored is not None
    assert (stored.first_at, stored.last_at, stored.reports, stored.customers) == (
        t[0], t[3], 4, 3)
    assert stored.opened_at == t[1]  # when it was opened does not move
    assert stored.total.tolist() == (total * 2).tolist()
    assert load(any_db, "nope") is None


def test_open_incidents_are_the_brands_still_going_on_oldest_first(any_db: Db) -> None:
    opened = NOW - timedelta(hours=1)
    for incident_id, last in (("b", NOW), ("a", NOW), ("c", NOW - timedelta(minutes=50))):
        save_incident(any_db, _incident(incident_id, opened, last), [], NOW)
    save_incident(any_db, _incident("d", opened - timedelta(minutes=1), NOW), [], NOW)
    other = IncidentRow("e", "globex", opened, opened, NOW, 0, 0, _unit(1, 0))
    save_incident(any_db, other, [], NOW)
    # opened in the same second: by id
    assert [i.id for i in open_incidents(any_db, "acme", NOW - timedelta(minutes=30))] == [
        "d", "a", "b"]
    assert [i.id for i in open_incidents(any_db, "acme", NOW - timedelta(minutes=50))] == [
        "d", "a", "b", "c"]


def test_members_are_announced_once_and_go_where_their_alerts_went(any_db: Db) -> None:
    ids = _stored(any_db, _post("a", 10, author="ann"), _post("b", 30, author="bob"),
                  _post("c", 20))
    store.save_scores(any_db, [(ids[0], NEG, None), (ids[1], POS, None)], NOW)
    scores = {r["post_id"]: r["id"] for r in any_db.query("SELECT id, post_id FROM scores")}
    vec = {pid: VectorRow(pid, "acme", NOW, None, _unit(1, 0)) for pid in ids}
    save_incident(any_db, _incident("i2", NOW, NOW), [vec[ids[0]], vec[ids[1]]], NOW)
    save_incident(any_db, _incident("i1", NOW, NOW), [vec[ids[2]]], NOW)
    alerts = [outbox.NewAlert("negative", "slack", ids[0], scores[ids[0]], "x:a"),
              outbox.NewAlert("negative", "mail", ids[0], scores[ids[0]], "x:a"),
              outbox.NewAlert("negative", "jira", ids[1], scores[ids[1]], "x:b",
                              status="dry_run"),
              outbox.NewAlert("negative", "discord", ids[1], scores[ids[1]], "x:b",
                              status="held")]
    outbox.enqueue(any_db, alerts, [], NOW)

    assert with_unannounced(any_db) == ["i1", "i2"]
    assert unannounced(any_db, "i2") == [ids[1], ids[0]]  # oldest first
    got = members(any_db, "i2")
    assert [(m["id"], m["author"], m["platform"], m["urgency"], m["p_negative"], m["announced"])
            for m in got] == [(ids[1], "bob", "x", 0.1, 0.05, None),
                              (ids[0], "ann", "x", 0.7, 0.9, None)]
    assert member_destinations(any_db, "i2") == ["mail", "slack"]  # dry runs and held: not
    assert member_destinations(any_db, "i1") == []

    mark_announced(any_db, "i2", [ids[1]], NOW)
    assert unannounced(any_db, "i2") == [ids[0]]
    assert [m["announced"] for m in members(any_db, "i2")] == ["2026-11-20T12:00:00Z", None]
    mark_announced(any_db, "i2", [ids[0]], NOW)
    mark_announced(any_db, "i1", [ids[2]], NOW)
    assert with_unannounced(any_db) == []


def test_needy_posts_are_the_brands_posts_in_the_queue(any_db: Db) -> None:
    ids = _stored(
        any_db,
        _post("a", 30, brand="acme"),
        _post("b", 20, brand="acme"),  # positive: not in the queue
        _post("c", 10, brand="globex", also_brands=("acme",)),
        _post("d", 5, brand="globex"),
        _post("e", 0, brand="acme"),
    )
    store.save_scores(any_db, [(ids[0], NEG, None), (ids[1], POS, None), (ids[2], NEG, None),
                               (ids[3], NEG, None), (ids[4], NEG, None)], NOW)
    since, until = NOW - timedelta(minutes=30), NOW
    assert needy_count(any_db, "acme", since, until) == 2  # [since, until)
    assert needy_times(any_db, "acme", since, until) == [  # [since, until]
        since, NOW - timedelta(minutes=10), NOW]
    assert needy_count(any_db, "globex", since, until) == 2
    assert needy_count(any_db, "initech", since, until) == 0
