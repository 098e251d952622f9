"""The team inbox's storage (issue 18, migrations 013 / pg007) on both engines: statuses with
first-response and resolution stamps, assignees, undo, bulk changes, notes, the queue's
"mine" and "open" views, and response times per brand and agent."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.core.models import Page, Post, Score, parse_iso
from storage import db as store
from storage import inbox, score_batches, triage
from storage.engine import Db
from storage.migrations import MIGRATIONS, migrate
from storage.tx import connect

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _posts(db: Db, count: int, brand: str = "acme", *, row_by_row: bool = False) -> list[int]:
    """``count`` posts of ``brand``, each scored negative and urgent; ``row_by_row``: the scores
    inserted as a release of before migration 016 did (its row triggers move the rollups and
    the queue), for a database of an older schema."""
    posts = [Post(platform="x", platform_id=f"{brand}{i}", text=f"my order {i} never arrived",
                  created_at=NOW - timedelta(hours=2), source="x-main", brand=brand, lang="en",
                  author_followers=100) for i in range(count)]
    store.store_page(db, "x-main", Page(posts=posts), NOW)
    ids = [r[0] for r in db.execute("SELECT id FROM posts WHERE brand = ? ORDER BY id",
                                    [brand]).fetchall()]
    scores = [(i, Score("negative", 0.8, 0.1, 0.1, 0.9, "m", "1"), "en") for i in ids]
    if row_by_row:
        score_batches.insert_rows(db, store.score_values(scores, NOW))
    else:
        store.save_scores(db, scores, NOW)
    return ids


def _row(db: Db, post_id: int) -> tuple[object, ...]:
    return tuple(db.execute("SELECT status, assignee, first_response_at, resolved_at"
                            " FROM post_status WHERE post_id = ?", [post_id]).fetchone())


def test_statuses_stamp_first_response_once_and_resolution_until_reopened(any_db: Db) -> None:
    db = any_db
    (pid,) = _posts(db, 1)
    assert triage.set_status(db, pid, "assigned", "ann", NOW) == "new"
    assert _row(db, pid) == ("assigned", None, None, None)
    later = NOW + timedelta(minutes=30)
    assert triage.set_status(db, pid, "replied", "ann", later) == "assigned"
    assert _row(db, pid)[2:] == ("2026-11-20T12:30:00Z", None)
    triage.set_status(db, pid, "handled", "ann", later + timedelta(hours=1))
    assert _row(db, pid)[2:] == ("2026-11-20T12:30:00Z", "2026-11-20T13:30:00Z")
    triage.set_status(db, pid, "replied", "bo", later + timedelta(hours=2))  # reopened
    assert _row(db, pid)[2:] == ("2026-11-20T12:30:00Z", None)
    assert db.execute("SELECT status FROM triage WHERE post_id = ?", [pid]).fetchone()[0] == (
        "replied")
    with pytest.raises(ValueError, match="status must be one of"):
        triage.set_status(db, pid, "done", "bo", NOW)


def test_assigning_moves_new_posts_and_undo_puts_everything_back(any_db: Db) -> None:
    db = any_db
    first, second = _posts(db, 2)
    before = inbox.assign(db, first, "ann", "lead", NOW)
    assert before == inbox.Holder("new", None)
    assert _row(db, first)[:2] == ("assigned", "ann")
    inbox.assign(db, first, None, "lead", NOW)  # given to nobody: new again
    assert _row(db, first)[:2] == ("new", None)
    triage.set_status(db, second, "replied", "bo", NOW)
    inbox.assign(db, second, "bo", "bo", NOW)  # answered posts only change hands
    assert _row(db, second)[:2] == ("replied", "bo")
    changed = inbox.assign(db, second, "ann", "lead", NOW)
    inbox.restore(db, second, changed, "lead", NOW)
    assert _row(db, second)[:2] == ("replied", "bo")
    triage.set_status(db, second, "new", "lead", NOW)  # back to new: nobody has it
    assert _row(db, second)[:2] == ("new", None)


def test_bulk_changes_are_all_or_nothing(any_db: Db) -> None:
    db = any_db
    ids = _posts(db, 3)
    assert inbox.bulk_assign(db, ids[:2], "ann", "lead", NOW) == {
        ids[0]: inbox.Holder("new", None), ids[1]: inbox.Holder("new", None)}
    assert inbox.bulk_status(db, ids, "handled", "ann", NOW) == {
        ids[0]: "assigned", ids[1]: "assigned", ids[2]: "new"}
    with pytest.raises(ValueError):
        inbox.bulk_status(db, ids, "nonsense", "ann", NOW)
    assert {r[0] for r in db.execute("SELECT status FROM post_status")} == {"handled"}


def test_mine_and_open_views_of_the_queue(any_db: Db) -> None:
    db = any_db
    ids = _posts(db, 4)
    inbox.assign(db, ids[0], "ann", "lead", NOW)
    inbox.assign(db, ids[1], "bo", "lead", NOW)
    triage.set_status(db, ids[2], "handled", "bo", NOW)

    def found(**kw: object) -> set[int]:
        return {r["post_id"] for r in triage.queue(db, triage.QueueFilter(**kw))}  # type: ignore[arg-type]

    assert found(assignee="ann", status=None) == {ids[0]}
    assert found(status="open") == {ids[0], ids[1], ids[3]}
    assert found() == {ids[3]}  # "new": nobody has it yet
    assert triage.count_queue(db, triage.QueueFilter(status="open", assignee="bo")) == 1


def test_notes_are_kept_in_order_and_bounded(any_db: Db) -> None:
    db = any_db
    (pid,) = _posts(db, 1)
    inbox.add_note(db, pid, "ann", "  called them back, waiting on billing ", NOW)
    inbox.add_note(db, pid, "bo", "refund issued — ça marche", NOW + timedelta(minutes=1))
    assert [(n.author, n.text) for n in inbox.notes(db, pid)] == [
        ("ann", "called them back, waiting on billing"), ("bo", "refund issued — ça marche")]
    for bad in ("   ", "x" * (inbox.NOTE_MAX + 1)):
        with pytest.raises(ValueError, match="a note has"):
            inbox.add_note(db, pid, "ann", bad, NOW)


def test_response_times_per_brand_and_per_agent(any_db: Db) -> None:
    db = any_db
    acme, globex = _posts(db, 3), _posts(db, 1, brand="globex")
    created = NOW - timedelta(hours=2)
    for pid, minutes, who in ((acme[0], 10, "ann"), (acme[1], 30, "ann"), (globex[0], 60, "bo")):
        inbox.assign(db, pid, who, "lead", created)
        triage.set_status(db, pid, "replied", who, created + timedelta(minutes=minutes))
    triage.set_status(db, acme[0], "handled", "ann", created + timedelta(hours=1))
    period = (NOW - timedelta(days=1), NOW)
    brands = {r.key: r for r in inbox.response_times(db, *period, by="brand")}
    assert set(brands) == {"acme", "globex"}  # acme[2] was never answered
    assert (brands["acme"].answered, brands["acme"].first_response_median) == (2, 1200.0)
    assert (brands["acme"].resolved, brands["acme"].resolution_median) == (1, 3600.0)
    assert brands["globex"].first_response_p90 == 3600.0 and brands["globex"].resolved == 0
    agents = {r.key: r.answered for r in inbox.response_times(db, *period, by="agent")}
    assert agents == {"ann": 2, "bo": 1}


def test_migration_013_keeps_statuses_and_the_queue_in_step(tmp_path: Path) -> None:
    """An SQLite database made before 013, with statuses set, migrates with its rows (stamped
    as answered/resolved when handled), and the rebuilt table's triggers still copy statuses
    into the queue."""
    old = connect(tmp_path / "old.db")
    steps = MIGRATIONS[:12]  # up to 012: three statuses, no assignee
    assert steps[-1][0] == "012_people"
    for _, step in steps:
        step(old)
    old["_migrations"].insert_all({"name": n, "applied_at": "x"} for n, _ in steps)
    ids = _posts(old, 3, row_by_row=True)
    for pid, status in zip(ids, ("handled", "not_relevant", "new"), strict=True):
        old.execute("INSERT INTO post_status (post_id, status, updated_at, by)"
                    " VALUES (?, ?, '2026-11-20T11:00:00Z', 'dashboard')", [pid, status])
    with pytest.raises(sqlite3.IntegrityError):  # the old CHECK: no 'assigned' yet
        old.execute("UPDATE post_status SET status = 'assigned' WHERE post_id = ?", [ids[2]])
    assert migrate(old)[0] == "013_inbox"  # and any later ones
    assert [_row(old, pid) for pid in ids] == [
        ("handled", None, "2026-11-20T11:00:00Z", "2026-11-20T11:00:00Z"),
        ("not_relevant", None, "2026-11-20T11:00:00Z", "2026-11-20T11:00:00Z"),
        ("new", None, None, None)]
    inbox.assign(old, ids[2], "ann", "lead", NOW)  # the triggers copy statuses again
    assert dict(old.execute("SELECT post_id, status FROM triage").fetchall()) == {
        ids[0]: "handled", ids[1]: "not_relevant", ids[2]: "assigned"}
    assert old.execute("PRAGMA foreign_key_check").fetchall() == []
    old.close()


def test_waiting_customers_climb_the_queue_and_stale_posts_sink(any_db: Db) -> None:
    """Same urgency and reach: the post waiting past its brand's target leads, a fresh one
    follows, a week-old one sinks; an answered post keeps its plain rank; a brand with a
    shorter target climbs sooner. Without ``waiting`` the order is rank alone, as before."""
    db = any_db
    ages = {"fresh": timedelta(minutes=5), "late": timedelta(hours=6),
            "stale": timedelta(days=11), "answered": timedelta(hours=9)}
    posts = [Post(platform="x", platform_id=name, text=f"{name}: my order never arrived",
                  created_at=NOW - age, source="x-main", brand="acme", lang="en",
                  author_followers=100) for name, age in ages.items()]
    posts.append(Post(platform="x", platform_id="vip", text="vip: down again", lang="en",
                      created_at=NOW - timedelta(hours=1), source="x-main", brand="globex",
                      author_followers=100))
    store.store_page(db, "x-main", Page(posts=posts), NOW)
    ids = dict(db.execute("SELECT platform_id, id FROM posts").fetchall())
    store.save_scores(db, [(i, Score("negative", 0.8, 0.1, 0.1, 0.9, "m", "1"), "en")
                           for i in ids.values()], NOW)
    triage.set_status(db, ids["answered"], "replied", "ann", NOW)
    waiting = triage.Waiting(now=NOW, target=timedelta(hours=4),
                             brand_targets={"globex": timedelta(minutes=30)})

    def order(w: triage.Waiting | None) -> list[str]:
        rows = triage.queue(db, triage.QueueFilter(status="open", waiting=w))
        names = {v: k for k, v in ids.items()}
        return [names[r["post_id"]] for r in rows]

    # vip: twice its 30-minute target (x3); late: 1.5 targets (x2.5); fresh: x1, newest first
    assert order(waiting) == ["vip", "late", "fresh", "answered", "stale"]
    # rank alone: all equal, newest first
    assert order(None) == ["fresh", "vip", "late", "answered", "stale"]
    assert waiting.overdue("acme", NOW - ages["late"], "new")
    assert not waiting.overdue("acme", NOW - ages["late"], "replied")
    assert waiting.overdue("globex", NOW - timedelta(hours=1), "assigned")
    assert not waiting.overdue("acme", NOW - timedelta(hours=1), "new")



def _factor(w: triage.Waiting, status: str, created: datetime, brand: str | None) -> float:
    """Waiting's factor as its docstring defines it, computed here row by row."""
    if status not in ("new", "assigned"):
        return 1.0
    if created < w.now - w.stale_after:
        return 0.25
    target = w.target_for(brand)
    quarters = [k for k in range(1, triage.STEPS + 1) if created <= w.now - target * k / 4]
    return 1 + max(quarters) / 4 if quarters else 1.0


def test_the_waiting_order_pages_through_every_band_as_the_factor_defines(any_db: Db) -> None:
    """The page is merged from the bands where the factor is constant (each read in rank
    order): every page of it, of every view, is the order of rank x factor computed row by
    row — brands with their own target and without a brand, every quarter step, stale,
    answered, equal ranks broken by time then id."""
    db = any_db
    rng = random.Random(17)
    brands = ["acme", "globex", None]
    posts = [Post(platform="x", platform_id=f"p{i}", text=f"order {i} never arrived",
                  created_at=NOW - timedelta(seconds=rng.choice([
                      rng.randrange(0, 12 * 86400), rng.randrange(0, 9 * 3600)])),
                  source="x-main", brand=rng.choice(brands), lang="en",
                  author_followers=rng.choice([10, 100, 1000])) for i in range(160)]
    store.store_page(db, "x-main", Page(posts=posts), NOW)
    ids = [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]
    store.save_scores(db, [(i, Score("negative", 0.8, 0.1, 0.1, rng.choice([0.5, 0.9]), "m", "1"),
                            "en") for i in ids], NOW)
    for post_id in ids:
        status = rng.choice(["new", "new", "assigned", "replied", "handled", "not_relevant"])
        if status != "new":
            triage.set_status(db, post_id, status, "ann", NOW)
    waiting = triage.Waiting(now=NOW, target=timedelta(hours=4), stale_after=timedelta(days=7),
                             brand_targets={"globex": timedelta(minutes=30)})
    rows = {r[0]: r for r in db.execute(
        "SELECT post_id, rank, status, created_at, brand FROM triage").fetchall()}

    def expected(statuses: tuple[str, ...]) -> list[int]:
        chosen = [r for r in rows.values() if r[2] in statuses]
        return [r[0] for r in sorted(chosen, key=lambda r: (
            -r[1] * _factor(waiting, r[2], parse_iso(r[3]), r[4]), -parse_iso(r[3]).timestamp(),
            -r[0]))]

    for status, statuses in (("open", triage.OPEN), (None, triage.STATUSES), ("new", ("new",))):
        f = triage.QueueFilter(status=status, waiting=waiting)
        paged = [r["post_id"] for offset in range(0, len(rows), 7)
                 for r in triage.queue(db, f, 7, offset)]
        assert paged == expected(statuses), status
