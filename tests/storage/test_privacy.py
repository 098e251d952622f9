"""Personal data (issue 18): ``forget_author`` and ``erase_older_than`` on both engines — the
person's text, author and links leave posts, the search index, alert errors, notes, vectors,
incident members and reports; everyone else's stay; the counts stay; the audit log says what
was done without naming the person."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from listener.core.models import Page, Post, Report, Score
from storage import db as store
from storage import feedback, inbox, outbox, privacy
from storage.engine import POSTGRESQL, Db, dialect
from storage.incidents import IncidentRow, VectorRow, save_incident, save_vectors
from storage.reports import enqueue_report
from tests.dbrows import count, get, rows

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCORE = Score("negative", 0.9, 0.08, 0.02, 0.8, "m", "v1")
ROLLUPS = ("post_hours", "post_days", "post_hours_extra", "post_days_extra")


def _post(platform: str, pid: str, author: str | None, text: str, age: timedelta,
          **extra: Any) -> Post:
    return Post(platform=platform, platform_id=pid, text=text, created_at=NOW - age,
                source=f"{platform}-main", brand="acme", author=author, author_followers=5000,
                url=f"https://{platform}.example/{author}/{pid}", raw={"user": author},
                lang="en", **extra)


def _store(db: Db, *posts: Post, now: datetime = NOW) -> dict[str, int]:
    """Store and score the posts (negative: every one enters the triage queue); their ids by
    ``platform:platform_id``."""
    store.store_page(db, "src", Page(posts=list(posts)), now)
    ids = {f"{r['platform']}:{r['platform_id']}": int(r["id"])
           for r in db.query("SELECT id, platform, platform_id FROM posts")}
    new = [ids[p.key] for p in posts]
    store.save_scores(db, [(i, SCORE, None) for i in new], now)
    return ids


def _search(db: Db, word: str) -> set[int]:
    if dialect(db) == POSTGRESQL:
        found = db.execute("SELECT post_id FROM triage WHERE search_vector @@"
                           " to_tsquery('simple', search_fold(?))", [word]).fetchall()
    else:
        found = db.execute("SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?",
                           [word]).fetchall()
    return {int(r[0]) for r in found}


def _scores(db: Db) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in db.execute(
        "SELECT id, post_id, sentiment, p_negative, urgency FROM scores ORDER BY id")]


def _rollups(db: Db) -> dict[str, list[dict[str, Any]]]:
    return {t: rows(db, t, "bucket, brand, source, sentiment") for t in ROLLUPS}


@dataclass
class World:
    alice: int  # x, in the queue, with a note, a vector, an alert and an incident
    alice_old: int  # x, 40 days old, ALICE in capitals
    alice_reddit: int  # the same handle on another platform: someone else
    bob: int  # x, another author
    alert: str  # alice's alert (failed, with an error quoting her)
    bob_alert: str
    report: str  # the incident's first message, naming both customers


def _world(db: Db) -> World:
    ids = _store(
        db,
        _post("x", "1", "alice", "zanzibar refund never came, my card 4242 still charged",
              timedelta(hours=2)),
        _post("x", "2", "ALICE", "second complaint about the quokka app", timedelta(days=40)),
        _post("reddit", "r1", "alice", "zanzibar is down for me too", timedelta(hours=3)),
        _post("x", "3", "bob", "zanzibar broken again", timedelta(hours=1)),
    )
    alice, bob = ids["x:1"], ids["x:3"]
    inbox.add_note(db, alice, "agent", "called alice back about zanzibar", NOW)
    vector = np.full(4, 0.5, dtype=np.float32)
    members = [VectorRow(alice, "acme", NOW - timedelta(hours=2), "alice", vector),
               VectorRow(bob, "acme", NOW - timedelta(hours=1), "bob", vector)]
    save_vectors(db, members)
    save_incident(db, IncidentRow("inc1", "acme", NOW, NOW - timedelta(hours=2), NOW, 0, 0,
                                  vector * 2), members, NOW)
    score_of = {int(r[1]): int(r[0]) for r in db.execute("SELECT id, post_id FROM scores")}
    new = [outbox.NewAlert("unhappy", "slack", p, score_of[p], f"x:{p}") for p in (alice, bob)]
    outbox.enqueue(db, new, [], NOW)
    outbox.record_failure(db, new[0].id, 1, NOW, error="400: bad text 'zanzibar refund never'",
                          status_code=400, retry_at=None, ms=3.0)
    report = Report(kind="incident", name="incident", brand="acme",
                    title="acme: 2 customers report the same problem",
                    window_start=NOW - timedelta(hours=2), window_end=NOW,
                    summary="Since 10:00 UTC, 2 different customers posted what looks like one "
                    "problem.", facts=[("Customers", "2"), ("Customers so far", "alice, bob")],
                    example_post_ids=[alice, bob],
                    numbers={"incident": "inc1", "authors": ["alice", "bob"],
                             "post_ids": [alice, bob]}, priority="high", key="incident\x1finc1")
    enqueue_report(db, report, ["slack"], NOW)
    return World(alice, ids["x:2"], ids["reddit:r1"], bob, new[0].id, new[1].id, report.id)


def test_forgetting_a_person_erases_them_everywhere_and_keeps_the_counts(any_db: Db) -> None:
    db = any_db
    w = _world(db)
    assert _search(db, "zanzibar") == {w.alice, w.alice_reddit, w.bob}
    assert _search(db, "quokka") == {w.alice_old}
    rollups, scores = _rollups(db), _scores(db)
    customers = get(db, "incidents", "inc1")["customers"]

    erased = privacy.forget_author(db, "x", " Alice ", NOW, actor="cli:tester")

    assert erased == privacy.Erased(posts=2, alerts=1, notes=1, vectors=1, incident_members=1,
                                    reports=1)
    for pid in (w.alice, w.alice_old):
        post = get(db, "posts", pid)
        assert post["text"] == privacy.ERASED
        assert [post[k] for k in ("author", "author_followers", "url", "raw", "text_hash")] == [
            None] * 5
        assert (post["platform"], post["source"], post["brand"], post["lang"]) == (
            "x", "x-main", "acme", "en")
    assert get(db, "posts", w.alice_old)["created_at"] == "2026-10-11T12:00:00Z"
    # the search index no longer holds her words; the others' posts are still found
    assert _search(db, "zanzibar") == {w.alice_reddit, w.bob}
    assert _search(db, "quokka") == set() and _search(db, "4242") == set()
    assert get(db, "triage", w.alice, "post_id")["followers"] == 0
    # the same handle elsewhere and other authors are untouched
    for pid, author in ((w.alice_reddit, "alice"), (w.bob, "bob")):
        post = get(db, "posts", pid)
        assert post["author"] == author and post["text"] != privacy.ERASED
        assert post["url"] and post["raw"] and post["author_followers"] == 5000
    # notes and vectors deleted; the incident keeps its count under a pseudonym
    assert count(db, "post_notes") == 0
    assert [r["post_id"] for r in rows(db, "post_vectors")] == [w.bob]
    members = {r["post_id"]: r["author"] for r in rows(db, "incident_posts")}
    assert members[w.bob] == "bob" and members[w.alice].startswith("erased:")
    assert get(db, "incidents", "inc1")["customers"] == customers == 2
    # her failed alert is stopped, the error that quoted her blanked; bob's still waits
    alert = get(db, "alerts", w.alert)
    assert (alert["status"], alert["last_error"]) == ("suppressed", privacy.NOT_SENT)
    assert [r["error"] for r in db.query("SELECT error FROM deliveries WHERE alert_id = ?",
                                         [w.alert])] == [privacy.ERASED]
    assert get(db, "alerts", w.bob_alert)["status"] == "pending"
    # the incident's message no longer names her
    report = get(db, "reports", w.report)
    payload = json.loads(report["payload"])
    assert "alice" not in report["payload"].lower() and "bob" in report["payload"]
    assert dict(map(tuple, payload["facts"]))["Customers so far"] == "[erased], bob"
    assert payload["numbers"]["authors"] == ["[erased]", "bob"]
    # counts stay: rollups, scores, the queue
    assert _rollups(db) == rollups and _scores(db) == scores
    # no alert will be raised about her posts (their scores count as evaluated)
    pending = db.execute("SELECT post_id FROM scores WHERE rules_at IS NULL").fetchall()
    assert {r[0] for r in pending} == {w.alice_reddit, w.bob}
    assert count(db, "triage") == 4 and count(db, "posts") == 4
    # audited, by the hash of the handle, never the handle
    [entry] = rows(db, "audit_log")
    digest = hashlib.sha256(b"alice").hexdigest()
    assert (entry["actor"], entry["action"], entry["target"]) == (
        "cli:tester", "privacy.forget", f"author:x:{digest}")
    detail = json.loads(entry["detail"])
    assert detail == {"platform": "x", "author_sha256": digest, **erased.counts()}
    assert "alice" not in json.dumps(rows(db, "audit_log")).lower()
    # again: nothing left to erase, and said so
    assert privacy.forget_author(db, "x", "alice", NOW, actor="cli:tester") == privacy.Erased()
    assert count(db, "audit_log") == 2


def test_forget_works_in_batches_and_catches_posts_stored_meanwhile(any_db: Db) -> None:
    db = any_db
    _store(db, *[_post("x", str(i), "carol" if i % 2 else "dave", f"post {i} of many",
                       timedelta(hours=1)) for i in range(11)])
    assert privacy.count_author_posts(db, "x", "CAROL") == 5
    erased = privacy.forget_author(db, "x", "carol", NOW, actor="a", batch=2)
    assert erased.posts == 5 and privacy.count_author_posts(db, "x", "carol") == 0
    assert count(db, "audit_log") == 1  # one entry for the run, not one per batch
    assert db.execute("SELECT count(*) FROM posts WHERE author = 'dave'").fetchone()[0] == 6


def test_a_run_cut_short_still_audits_what_it_committed(any_db: Db,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    db = any_db
    _store(db, *[_post("x", str(i), "carol", f"post {i}", timedelta(hours=1)) for i in range(3)])
    real = privacy._erase
    calls: list[int] = []

    def failing(*args: Any) -> privacy.Erased:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(privacy, "_erase", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        privacy.forget_author(db, "x", "carol", NOW, actor="a", batch=1)
    [entry] = rows(db, "audit_log")
    assert json.loads(entry["detail"])["incomplete"] is True
    assert json.loads(entry["detail"])["posts"] == 1
    monkeypatch.setattr(privacy, "_erase", real)
    assert privacy.forget_author(db, "x", "carol", NOW, actor="a").posts == 2  # finishes


def test_unknown_author_erases_nothing_but_is_audited(any_db: Db) -> None:
    db = any_db
    _world(db)
    assert privacy.count_author_posts(db, "x", "nobody") == 0
    assert privacy.forget_author(db, "x", "nobody", NOW, actor="a") == privacy.Erased()
    assert [r["action"] for r in rows(db, "audit_log")] == ["privacy.forget"]
    with pytest.raises(ValueError, match="name the author"):
        privacy.forget_author(db, "x", "  ", NOW, actor="a")


def test_retention_erases_only_old_posts_once_and_is_incremental(any_db: Db) -> None:
    db = any_db
    w = _world(db)
    ids = _store(db, _post("x", "old", "erin", "ancient history", timedelta(days=31)),
                 _post("x", "mid", "erin", "ten days ago", timedelta(days=10)))
    old_report = Report(kind="incident", name="incident", brand="acme", title="old incident",
                        window_start=NOW - timedelta(days=45), window_end=NOW - timedelta(days=44),
                        facts=[("Customers so far", "erin")], numbers={"authors": ["erin"]},
                        key="incident\x1fold")
    enqueue_report(db, old_report, ["slack"], NOW - timedelta(days=44))
    rollups = _rollups(db)
    cutoff = NOW - timedelta(days=30)
    assert privacy.retention_due(db, NOW) and privacy.last_retention(db) is None
    assert privacy.count_older_than(db, cutoff) == 2

    erased = privacy.erase_older_than(db, cutoff, NOW, actor="system", batch=1)

    assert (erased.posts, erased.reports) == (2, 1)
    erased_ids = {r["id"] for r in db.query("SELECT id FROM posts WHERE text = ?",
                                            [privacy.ERASED])}
    assert erased_ids == {w.alice_old, ids["x:old"]}
    assert get(db, "posts", ids["x:old"])["author"] is None
    assert get(db, "posts", ids["x:mid"])["author"] == "erin"
    assert _rollups(db) == rollups
    scrubbed = json.loads(get(db, "reports", old_report.id)["payload"])
    assert "authors" not in scrubbed["numbers"]
    assert scrubbed["facts"] == [["Customers so far", privacy.ERASED]]
    assert "alice" in get(db, "reports", w.report)["payload"]  # a recent report: kept
    mark = privacy.last_retention(db)
    top = db.execute("SELECT max(id) FROM posts").fetchone()[0]
    assert mark is not None and (mark.cutoff, mark.through_id) == ("2026-10-21T12:00:00Z", top)
    assert not privacy.retention_due(db, NOW + timedelta(hours=22))
    assert privacy.retention_due(db, NOW + timedelta(hours=23))

    # again at once: nothing to do, and the posts the last run covered are not read again
    # (one put back by hand stays as it is: the run looks only past its mark)
    db.execute("UPDATE posts SET text = 'put back' WHERE id = ?", [ids["x:old"]])
    assert privacy.erase_older_than(db, cutoff, NOW, actor="system") == privacy.Erased()
    assert get(db, "posts", ids["x:old"])["text"] == "put back"
    # a post collected late with an old date, and the next day's cutoff passing another one
    late = _store(db, _post("x", "late", "erin", "found in a backfill", timedelta(days=50)))
    later = NOW + timedelta(days=21)
    again = privacy.erase_older_than(db, later - timedelta(days=30), later, actor="system")
    assert again.posts == 2
    assert get(db, "posts", late["x:late"])["text"] == privacy.ERASED
    assert get(db, "posts", ids["x:mid"])["text"] == privacy.ERASED
    entries = [json.loads(r["detail"]) for r in rows(db, "audit_log", "id")]
    assert [e["posts"] for e in entries] == [2, 0, 2]
    assert all(r["action"] == "privacy.retention" and r["actor"] == "system"
               and r["target"] == "retention" for r in rows(db, "audit_log"))


def test_retention_after_a_forget_does_not_count_erased_posts_again(any_db: Db) -> None:
    db = any_db
    _world(db)
    assert privacy.forget_author(db, "x", "alice", NOW, actor="a").posts == 2
    assert privacy.erase_older_than(db, NOW - timedelta(days=30), NOW, actor="b").posts == 0


def test_training_rows_leave_erased_posts_out(any_db: Db) -> None:
    db = any_db
    w = _world(db)
    feedback.add_feedback(db, w.alice, "sentiment", "negative", "agent", NOW)
    feedback.add_feedback(db, w.bob, "sentiment", "negative", "agent", NOW)
    assert len(list(feedback.training_rows(db, "sentiment"))) == 2
    privacy.forget_author(db, "x", "alice", NOW, actor="a")
    assert [r[0] for r in feedback.training_rows(db, "sentiment")] == ["x:3"]
    assert len(feedback.for_post(db, w.alice)) == 1  # the verdict itself is kept (a count)


def test_the_teams_replies_to_a_forgotten_person_are_erased_and_unsent_ones_cancelled(
    any_db: Db,
) -> None:
    db = any_db
    if "replies" not in db.table_names():
        pytest.skip("no replies table in this schema")
    w = _world(db)
    for rid, pid, status, error in (("r1", w.alice, "sent", None),
                                    ("r2", w.alice, "failed", "403: '@alice' is blocked"),
                                    ("r3", w.bob, "pending", None)):
        db.execute("INSERT INTO replies (id, post_id, account, platform, author, text, status,"
                   " created_at, next_attempt_at, last_error, remote_url) VALUES"
                   " (?, ?, 'acme-x', 'x', 'agent', ?, ?, ?, ?, ?, ?)",
                   [rid, pid, f"@{'bob' if pid == w.bob else 'alice'} sorry about that",
                    status, "2026-11-20T12:00:00Z", "2026-11-20T12:00:00Z", error,
                    "https://x.example/acme/status/9"])
    erased = privacy.forget_author(db, "x", "alice", NOW, actor="a")
    assert erased.replies == 2
    got = {r["id"]: r for r in rows(db, "replies")}
    assert [(got["r1"][k]) for k in ("text", "status", "last_error", "remote_url")] == [
        privacy.ERASED, "sent", None, None]
    assert [(got["r2"][k]) for k in ("text", "status", "last_error")] == [
        privacy.ERASED, "cancelled", privacy.ERASED]
    assert got["r3"]["text"] == "@bob sorry about that" and got["r3"]["status"] == "pending"
