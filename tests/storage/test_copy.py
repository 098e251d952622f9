"""``storage.copy``: a real SQLite database, filled by the pipeline's own verbs, copied into a
real PostgreSQL database (the session's throwaway cluster) and compared table by table."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from listener.core.models import Page, Post, Rejected, Report, Score
from storage import db as store
from storage import feedback, incidents, leases, outbox, sessions, source_pauses, triage, workers
from storage.copy import PROGRESS_TABLE, CopyError, copy_database
from storage.engine import Db
from storage.reports import enqueue_report
from tests.pg_server import Server

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# every byte value, backslashes and NULs included: COPY's escaping of bytea
CHART = bytes(range(256)) * 4
# what COPY's text format escapes (tab, newline, backslash), quotes, accents, emoji
ODD = "tab\there, line\nbreak, back\\slash \\N, 'quotes' \"too\", café ñandú 🚀"


def _post(n: int, text: str, **kw: Any) -> Post:
    fields: dict[str, Any] = {
        "source": "x-main", "brand": "acme", "lang": "en", "author": f"user{n % 7}",
        "author_followers": n * 37, "url": f"https://x.example/{n}",
        "raw": {"id": n, "nested": {"a": [1, 2.5, None]}, "text": text}}
    fields.update(kw)
    return Post(platform=fields.pop("platform", "x"), platform_id=f"p{n}", text=text,
                created_at=fields.pop("created_at", NOW - timedelta(minutes=7 * n)), **fields)


def fill(path: Path) -> dict[str, int]:
    """A database as the pipeline leaves it: posts of two brands (some about both), cross-posts,
    rejects, cursors, two model versions' scores (the queue, rollups moved, a language no model
    covers), statuses set and changed, alerts delivered and parked with their deliveries, a
    report with its chart, an incident with its vectors, feedback, runs, a paused source, web
    sessions, leases and workers. Returns a few ids."""
    db = store.open_db(path)
    texts = ["the login is broken again and support ignores me",
             "refund never arrived, charged twice this month",
             "love the new dashboard, great work",
             "does the new plan include exports?", ODD,
             "Le café est fermé, la facture est arrivée deux fois"]
    posts = [_post(n, f"{texts[n % len(texts)]} #{n}",
                   also_brands=("globex",) if n % 5 == 0 else (),
                   lang="fr" if n % 6 == 5 else "en") for n in range(60)]
    twin = posts[1]  # the same author on another platform minutes later: a cross-post
    cross = Post("reddit", "t3_x", twin.text, twin.created_at + timedelta(minutes=3),
                 source="reddit", brand="acme", author=twin.author)
    store.store_page(db, "x-main", Page(posts=posts[:30], cursor={"since_id": "p30"},
                                        rejected=[Rejected("x:bad", "missing text")]), NOW)
    store.store_page(db, "x-main", Page(posts=[*posts[25:], posts[3]], cursor={"since": 60}),
                     NOW)
    store.store_page(db, "reddit", Page(posts=[cross], cursor={"after": "t3_x"}), NOW)
    ids = {r["platform_id"]: r["id"] for r in db.query("SELECT id, platform_id FROM posts")}
    scores = []
    for n, post in enumerate(posts):
        negative = n % 3 != 2
        scores.append((ids[post.platform_id], Score(
            "negative" if negative else "positive", 0.8 if negative else 0.1, 0.1,
            0.1 if negative else 0.8, 0.9 if n % 2 else 0.2, "default", "v1", lang=post.lang,
            language_supported=post.lang != "fr"), None))
    store.save_scores(db, scores, NOW)
    # a new model version re-scores some posts: their rollup cells and queue rows move
    store.save_scores(db, [(pid, Score("neutral", 0.2, 0.7, 0.1, 0.3, "default", "v2"), "en")
                           for pid, _, _ in scores[:10]], NOW)
    triage.set_status(db, ids["p0"], "handled", "ana", NOW)
    triage.set_status(db, ids["p4"], "not_relevant", "ana", NOW)
    triage.set_status(db, ids["p4"], "new", "bo", NOW + timedelta(minutes=1))  # changed back
    feedback.add_feedback(db, ids["p1"], "sentiment", "positive", "ana", NOW)
    feedback.add_feedback(db, ids["p7"], "relevance", "not_relevant", "bo", NOW)
    queued = list(db.query("SELECT post_id, score_id FROM triage ORDER BY post_id LIMIT 4"))
    outbox.enqueue(db, [outbox.NewAlert("unhappy", dest, r["post_id"], r["score_id"],
                                        f"x:{r['post_id']}")
                        for r in queued for dest in ("slack", "zendesk")], [], NOW)
    alert_ids = [r["id"] for r in db.query("SELECT id FROM alerts ORDER BY id")]
    outbox.record_delivered(db, alert_ids[0], 1, "1700000000.0001", NOW, 120.5)
    outbox.record_failure(db, alert_ids[1], 8, NOW, error="404 channel_not_found",
                          status_code=404, retry_at=None, ms=80.0)
    enqueue_report(db, Report(kind="spike", name="volume", brand="acme", source="x-main",
                              title="acme on x-main: 40 posts in an hour", summary=ODD,
                              terms=("outage",), window_start=NOW - timedelta(hours=1),
                              window_end=NOW, chart_png=CHART), ["slack"], NOW)
    vectors = [incidents.VectorRow(r["post_id"], "acme", NOW, f"user{i}",
                                   np.full(8, 0.25 * (i + 1), np.float32))
               for i, r in enumerate(queued)]
    incidents.save_vectors(db, vectors)
    incidents.save_incident(db, incidents.IncidentRow(
        "inc-1", "acme", NOW, NOW - timedelta(hours=1), NOW, 0, 0,
        np.arange(8, dtype=np.float32)), vectors[:3], NOW)
    incidents.mark_announced(db, "inc-1", [vectors[0].post_id], NOW)
    run = store.start_run(db, "collect", "x-main", NOW)
    store.beat_run(db, run, NOW)
    store.finish_run(db, run, NOW, items=60)
    failed = store.start_run(db, "dispatch", "", NOW)
    store.finish_run(db, failed, NOW, items=0, error="boom")
    source_pauses.pause_source(db, "reddit", NOW + timedelta(hours=1), "429", NOW)
    sessions.start(db, "digest-1", None, NOW, NOW + timedelta(days=1), NOW - timedelta(days=1))
    sessions.start(db, "digest-2", 7, NOW, NOW + timedelta(days=2), NOW - timedelta(days=1))
    sessions.revoke(db, "digest-2", NOW)
    leases.take(db, "source:x-main", "worker-1", NOW, 300)
    workers.register(db, "worker-1", "host-a", 1234, ["collect", "rules"], NOW)
    db.close()
    return ids


def sqlite_tables(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'posts_fts%'"
        " AND name NOT LIKE 'sqlite_%' AND name NOT IN ('_migrations', 'score_batch')"
        " ORDER BY name")]  # score_batch: SQLite's gate, empty outside a transaction
    conn.close()
    return names


def table_rows(db: Db, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (those columns), in one order on both engines."""
    cols = ", ".join(f'"{c}"' for c in columns)
    got = db.execute(f'SELECT {cols} FROM "{table}" ORDER BY {cols}').fetchall()  # noqa: S608
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in got]


def assert_same(path: Path, pg: Db) -> dict[str, int]:
    """Every copied table holds the same rows on both engines; rows per table."""
    lite = store.open_db(path)
    counts = {}
    try:
        for table in sqlite_tables(path):
            columns = [r[1] for r in lite.execute(f'PRAGMA table_info("{table}")').fetchall()]
            mine, theirs = table_rows(lite, table, columns), table_rows(pg, table, columns)
            assert theirs == mine, table
            counts[table] = len(mine)
    finally:
        lite.close()
    return counts


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "listener.db"
    fill(path)
    return path


@pytest.fixture
def target(pg_server: Server) -> str:
    return pg_server.new_database()


def test_everything_arrives_as_sqlite_holds_it(source: Path, target: str) -> None:
    result = copy_database(source, target, chunk_rows=7)
    assert not result.resumed
    pg = store.open_db(target)
    try:
        counts = assert_same(source, pg)
        assert result.tables == counts
        assert set(counts) == set(sqlite_tables(source))
        # every kind of row the pipeline writes is there, derived ones included
        for table in ("posts", "post_extra_brands", "scores", "post_hours", "post_days",
                      "post_hours_extra", "post_days_extra", "triage", "post_status", "alerts",
                      "deliveries", "reports", "incidents", "incident_posts", "post_vectors",
                      "feedback", "runs", "rejects", "cursors", "source_state", "web_sessions",
                      "leases", "workers"):
            assert counts[table] > 0, table
        assert pg.execute("SELECT chart_png FROM reports").fetchone()[0] == CHART
        assert pg.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL"
                          ).fetchone()[0] == 1
        assert pg.execute("SELECT to_regclass(?)", [PROGRESS_TABLE]).fetchone()[0] is None
        # the triggers are on again, and PostgreSQL has statistics for its planner
        assert pg.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
                          " AND tgenabled = 'D'").fetchone()[0] == 0
        assert pg.execute("SELECT reltuples FROM pg_class WHERE relname = 'posts'"
                          ).fetchone()[0] == counts["posts"]
    finally:
        pg.close()


def test_search_finds_the_same_posts(source: Path, target: str) -> None:
    copy_database(source, target)
    lite, pg = store.open_db(source), store.open_db(target)
    try:
        for q in ("refund", "cafe", "café OR login", '"charged twice"', "login NOT refund",
                  "dash*", "slash"):
            f = triage.QueueFilter(q=q, status=None)
            found = [r["post_id"] for r in triage.queue(lite, f, limit=100)]
            assert [r["post_id"] for r in triage.queue(pg, f, limit=100)] == found, q
            assert found or q == "dash*", q  # positives are not in the queue
        everything = triage.QueueFilter(status=None)
        assert triage.queue(pg, everything, 100) == triage.queue(lite, everything, 100)
    finally:
        lite.close()
        pg.close()


def test_new_rows_after_the_copy_get_new_ids_and_derive_alike(source: Path, target: str
                                                               ) -> None:
    copy_database(source, target)
    lite, pg = store.open_db(source), store.open_db(target)
    try:
        for db in (lite, pg):  # the same writes on both: ids, rollups, queue move alike
            posts = [_post(n, f"after the copy: outage everywhere #{n}",
                           also_brands=("globex",)) for n in (100, 101)]
            assert store.store_page(db, "x-main", Page(posts=posts), NOW) == 2
            new = [r[0] for r in db.execute(
                "SELECT id FROM posts WHERE platform_id IN ('p100', 'p101') ORDER BY id")]
            store.save_scores(db, [(pid, Score("negative", 0.9, 0.05, 0.05, 0.95, "default",
                                               "v1"), "en") for pid in (new[0], 1)], NOW)
            triage.set_status(db, new[0], "handled", "cy", NOW)
            feedback.add_feedback(db, new[0], "urgency", "complaint", "cy", NOW)
            run = store.start_run(db, "classify", "", NOW)
            store.finish_run(db, run, NOW, items=2)
            store.store_page(db, "x-main", Page(posts=[], rejected=[Rejected("x", "y")]), NOW)
        for table in ("posts", "scores", "feedback", "runs", "rejects"):
            ids = [r[0] for r in pg.execute(f"SELECT id FROM {table} ORDER BY id")]  # noqa: S608
            assert len(ids) == len(set(ids)), table
        assert_same(source, pg)
    finally:
        lite.close()
        pg.close()


class Stop(Exception):
    pass


def test_an_interrupted_copy_resumes_where_it_stopped(source: Path, target: str) -> None:
    seen: list[tuple[str, int]] = []

    def stop_after_5(table: str, rows: int) -> None:
        seen.append((table, rows))
        if len(seen) == 5:
            raise Stop

    with pytest.raises(Stop):
        copy_database(source, target, chunk_rows=13, after_chunk=stop_after_5)
    pg = store.open_db(target)
    try:
        at_stop = dict(seen)  # rows per table when it stopped: whole chunks, committed
        done = {r["table_name"]: r["copied"] for r in pg.query(
            f"SELECT table_name, copied FROM {PROGRESS_TABLE} WHERE copied > 0")}  # noqa: S608
        assert done == at_stop
        # not started again from scratch, nor anything else
        with pytest.raises(CopyError, match="--resume"):
            copy_database(source, target)
        resumed: list[tuple[str, int]] = []
        result = copy_database(source, target, chunk_rows=13, resume=True,
                               after_chunk=lambda t, n: resumed.append((t, n)))
        assert result.resumed
        table, rows = resumed[0]  # it goes on after the last chunk copied
        assert rows > at_stop.get(table, 0) and (table not in at_stop or table == seen[-1][0])
        assert_same(source, pg)
    finally:
        pg.close()


def test_a_copy_stopped_twice_still_adds_up(source: Path, target: str) -> None:
    for stop_at in (3, 9):
        calls = [0]

        def hook(table: str, rows: int, stop_at: int = stop_at, calls: list[int] = calls
                 ) -> None:
            calls[0] += 1
            if calls[0] == stop_at:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            copy_database(source, target, chunk_rows=5, resume=True, after_chunk=hook)
    copy_database(source, target, chunk_rows=5, resume=True)
    pg = store.open_db(target)
    try:
        assert_same(source, pg)
    finally:
        pg.close()


def test_a_target_that_holds_rows_is_refused(source: Path, target: str) -> None:
    pg = store.open_db(target)
    try:
        store.store_page(pg, "elsewhere", Page(posts=[_post(1, "already here")]), NOW)
    finally:
        pg.close()
    for resume in (False, True):  # --resume continues only a copy db copy started
        with pytest.raises(CopyError, match=r"already holds rows \(post_days, post_hours, posts\)"):
            copy_database(source, target, resume=resume)


def test_a_resumed_copy_refuses_a_source_that_changed_meanwhile(source: Path, target: str
                                                                ) -> None:
    def stop(table: str, rows: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        copy_database(source, target, chunk_rows=5, after_chunk=stop)
    lite = store.open_db(source)
    store.start_run(lite, "collect", "x-main", NOW)  # a run in between
    lite.close()
    with pytest.raises(CopyError, match=r"changed since the copy started \(tables runs\)"):
        copy_database(source, target, resume=True)


def test_counts_that_do_not_add_up_fail_loudly(source: Path, target: str) -> None:
    def behind_its_back(pg: Db) -> None:
        pg.execute("DELETE FROM web_sessions WHERE id = 'digest-1'")

    with pytest.raises(CopyError, match=r"web_sessions \(2 rows in SQLite, 1 in PostgreSQL\)"):
        copy_database(source, target, before_verify=behind_its_back)


def test_a_row_postgresql_refuses_names_its_table_and_keeps_whole_chunks(
    source: Path, target: str,
) -> None:
    lite = sqlite3.connect(source)
    lite.execute("UPDATE rejects SET reason = ? WHERE id = 1", ["nul \x00 inside"])  # SQLite takes it
    lite.commit()
    lite.close()
    with pytest.raises(CopyError, match=r"table rejects: the row with key \[1\] cannot"):
        copy_database(source, target, chunk_rows=10)
    pg = store.open_db(target)
    try:  # the tables before it are complete, and the copy can be resumed once fixed
        assert pg.execute(f"SELECT done FROM {PROGRESS_TABLE} WHERE table_name = 'posts'"  # noqa: S608
                          ).fetchone()[0] is True
    finally:
        pg.close()
    lite = sqlite3.connect(source)
    lite.execute("UPDATE rejects SET reason = 'fixed' WHERE id = 1")
    # a value the server refuses: SQLite keeps text in an INTEGER column, PostgreSQL cannot
    lite.execute("UPDATE runs SET items = 'many' WHERE id = 2")
    lite.commit()
    lite.close()
    with pytest.raises(CopyError, match=r"table runs: the row with key \[2\] cannot.*many"):
        copy_database(source, target, chunk_rows=10, resume=True)
    lite = sqlite3.connect(source)
    lite.execute("UPDATE runs SET items = 0 WHERE id = 2")
    lite.commit()
    lite.close()
    copy_database(source, target, chunk_rows=10, resume=True)
    pg = store.open_db(target)
    try:
        assert_same(source, pg)
    finally:
        pg.close()


def test_a_database_owner_who_is_not_a_superuser_can_copy(source: Path, pg_server: Server
                                                          ) -> None:
    name = "t_owner_copy"
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS t_owner_copy")
        admin.execute("DROP ROLE IF EXISTS listener_owner")
        admin.execute("CREATE ROLE listener_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        admin.execute("CREATE DATABASE t_owner_copy OWNER listener_owner")
    url = pg_server.database_url(name).replace("postgresql://postgres@", "postgresql://"
                                               "listener_owner@")
    copy_database(source, url, chunk_rows=9)
    pg = store.open_db(url)
    try:
        assert not pg.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                              ).fetchone()[0]
        assert_same(source, pg)
    finally:
        pg.close()


def test_not_a_database_or_not_a_url(tmp_path: Path, target: str) -> None:
    with pytest.raises(CopyError, match="no SQLite database"):
        copy_database(tmp_path / "missing.db", target)
    with pytest.raises(CopyError, match="postgresql://"):
        copy_database(tmp_path / "missing.db", str(tmp_path / "other.db"))
