"""Score statements on PostgreSQL: linear whatever the planner believed, and side by side.

A trigger function's queries are planned once per server session and the plan kept until the
table's statistics change. Found by issue 17's benchmark: a classify worker's second
connection planned pg005's "the post's previous score" lookup (``ORDER BY id DESC LIMIT 1``)
while ``scores`` looked small, chose to walk the primary key backwards filtering on the post,
and then read every score of the table for each post: a batch of 8,192 scores took 8-22 s
instead of 0.5. pg011's ``score_statement`` finds a post's scores only through its ``post_id``
(an aggregate, no order to follow), so no plan can walk the whole table per post.

Counted, not timed: the scores the statements' index scans fetch (``idx_tup_fetch``) against
the scores saved.

Side by side (pg012, ``storage.migrations_pg_pending``): batches of scores take the write lock
shared and leave their rollup moves pending, folded into the cells when no write is in flight;
a batch is held in flight by another transaction holding one of its posts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from listener.core.models import Page, Post, Score
from storage import claims, rollups
from storage.db import open_db, save_scores, store_page
from tests.pg_server import Server
from tests.storage.pg_threads import in_thread, wait_for_lock

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
POSTS = 16_384
BATCH = 4096


def _fetched(db: Any) -> int:
    """Index entries fetched from ``scores`` so far, every session's counts flushed."""
    db.execute("SELECT pg_stat_clear_snapshot()")
    row = db.execute("SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0)"
                     " FROM pg_stat_user_tables WHERE relname = 'scores'").fetchone()
    return int(row[0])


def _save(db: Any, post_ids: list[int]) -> None:
    labels = ("negative", "neutral", "positive")
    save_scores(db, [(pid, Score(labels[pid % 3], 0.8, 0.1, 0.1, 0.2, "m", "1", "en"), None)
                     for pid in post_ids], NOW)
    db.execute("SELECT pg_stat_force_next_flush()")  # its counts reach the shared ones now


def test_each_connections_first_score_statement_reads_only_its_posts_scores(
    pg_server: Server,
) -> None:
    url = pg_server.new_database()
    first = open_db(url)
    ids = _stored(first, POSTS)
    first.execute("ANALYZE posts")  # scores never analysed: empty to the planner
    others = [open_db(url) for _ in range(3)]
    try:
        before = _fetched(first)
        # the workers' connections take turns, each planning its first statement later
        for n, start in enumerate(range(0, POSTS, BATCH)):
            _save((first, *others)[n % 4], ids[start:start + BATCH])
        fetched = _fetched(first) - before
    finally:
        for db in others:
            db.close()
    assert first.execute("SELECT count(*) FROM scores").fetchone()[0] == POSTS
    assert first.execute("SELECT sum(n) FROM post_days").fetchone()[0] == POSTS
    # a post's own scores (and the index's neighbours): a few per score, not the table's
    assert fetched < 8 * POSTS, f"{fetched:,} scores fetched to save {POSTS:,}"
    first.close()


def test_a_brand_added_to_stored_posts_reads_only_their_scores(pg_server: Server) -> None:
    """pg013: the triggers counting a brand added to a stored post (another source found it
    for another brand) read the post's current score through post_id only; pg001's ``ORDER BY
    id DESC LIMIT 1`` walked the primary key down from the newest score while scores looked
    small to the planner."""
    url = pg_server.new_database()
    watch = open_db(url)
    ids = _stored(watch, POSTS)
    for start in range(0, POSTS, BATCH):
        _save(watch, ids[start:start + BATCH])
    page = open_db(url)  # a new session plans the brand triggers now (scores never analysed)
    before = _fetched(watch)
    found = [Post("x", str(i), "found again", NOW, brand="beta", also_brands=("alpha",),
                  lang="en") for i in range(0, POSTS, 64)]
    store_page(page, "src-b", Page(found), NOW)
    page.execute("SELECT pg_stat_force_next_flush()")
    fetched = _fetched(watch) - before
    assert watch.execute("SELECT count(*) FROM post_extra_brands").fetchone()[0] == len(found)
    assert watch.execute("SELECT sum(n) FROM post_days_extra").fetchone()[0] == len(found)
    assert fetched < 16 * len(found), f"{fetched:,} scores fetched for {len(found)} brands"
    page.close()
    watch.close()

# -- batches of scores side by side (pg012) ---------------------------------------------------

_RECOUNT = """
SELECT substr(p.created_at, 1, {width}), {brand}, coalesce(p.source, ''),
       coalesce(CASE WHEN s.language_supported = 0 THEN 'unsupported' ELSE s.sentiment END,
                'unscored'), count(*), coalesce(sum((s.urgency >= 0.5)::integer), 0)
FROM posts p {extra}
LEFT JOIN scores s ON s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)
GROUP BY 1, 2, 3, 4
"""


def _exact(db: Any) -> None:
    """Every rollup, read as the trends read it (cells and pending moves), is what a recount
    from scratch says; the queue holds each queued post's newest score."""
    for table, width, moves in rollups.ROLLUPS:
        extra = "JOIN post_extra_brands e ON e.post_id = p.id" if moves == "extra" else ""
        brand = "e.brand" if extra else "coalesce(p.brand, '')"
        read = {tuple(r) for r in db.execute(
            f"SELECT bucket, brand, source, sentiment, sum(n), sum(urgent)"
            f" FROM {rollups.cells(db, table)} c GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0")}
        assert read == {tuple(r) for r in db.execute(
            _RECOUNT.format(width=width, brand=brand, extra=extra))}, table
    assert db.execute("SELECT post_id, score_id FROM triage ORDER BY 1").fetchall() == \
        db.execute("SELECT post_id, id FROM scores s WHERE id = (SELECT max(id) FROM scores"
                   " WHERE post_id = s.post_id) AND (sentiment = 'negative' OR urgency >= 0.5"
                   " OR language_supported = 0) ORDER BY 1").fetchall()


def _pending(db: Any) -> int:
    return int(db.execute(f"SELECT count(*) FROM {rollups.PENDING}").fetchone()[0])


def _score(label: str, version: str = "1", urgency: float = 0.2) -> Score:
    return Score(label, 0.8, 0.1, 0.1, urgency, "m", version, "en")


def _stored(db: Any, count: int, brand: str = "alpha") -> list[int]:
    store_page(db, "src", Page([Post("x", str(i), f"the app crashed again, ticket {i}", NOW,
                                     author=f"user{i}", brand=brand, lang="en")
                                for i in range(count)]), NOW)
    return [int(r[0]) for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]


@pytest.fixture
def conns(pg_server: Server) -> Iterator[Callable[[], Any]]:
    """Connections to a database of the test's own, each closed at the end."""
    url = pg_server.new_database()
    opened: list[Any] = []

    def open_one() -> Any:
        opened.append(open_db(url))
        return opened[-1]

    yield open_one
    for db in opened:
        db.close()


def test_a_score_batch_in_flight_holds_up_no_other_and_counts_stay_exact(
    conns: Callable[[], Any],
) -> None:
    """Behind the one write lock a second batch waited for the first's commit. Now it commits
    meanwhile; its moves wait, pending, for a moment with no write in flight, and the rollups
    read with them are exact all along."""
    watch, lock = conns(), conns()
    ids = _stored(watch, 4)
    lock.conn.execute("BEGIN")  # another transaction holds the second post of the first batch
    lock.execute("SELECT 1 FROM posts WHERE id = ? FOR NO KEY UPDATE", [ids[1]])
    first = in_thread(conns(), lambda db: save_scores(
        db, [(ids[0], _score("negative"), None), (ids[1], _score("positive"), None)], NOW))
    wait_for_lock(watch, first.pid, "the first batch")
    second = in_thread(conns(), lambda db: save_scores(
        db, [(ids[2], _score("negative", urgency=0.9), None),
             (ids[3], _score("neutral"), None)], NOW))
    second.thread.join(5)  # well within the first one's lock timeout (10 s)
    assert not second.thread.is_alive(), "the second batch waited for the one in flight"
    assert second.errors == [] and second.result == [2]
    assert _pending(watch) > 0  # no fold with a batch in flight
    _exact(watch)
    lock.conn.execute("ROLLBACK")
    first.thread.join(20)
    assert first.errors == [] and first.result == [2]
    assert _pending(watch) == 0  # folded once nothing was in flight
    _exact(watch)
    assert watch.execute("SELECT sentiment, n FROM post_days ORDER BY 1").fetchall() == [
        ("negative", 2), ("neutral", 1), ("positive", 1)]


def test_a_worker_claims_its_next_batch_while_a_score_batch_is_in_flight(
    conns: Callable[[], Any],
) -> None:
    """Taking leases is one upsert that decides each name by its row: behind the exclusive
    write lock a classify worker's next claim waited for every score batch in flight."""
    watch, lock = conns(), conns()
    ids = _stored(watch, 6)
    lock.conn.execute("BEGIN")
    lock.execute("SELECT 1 FROM posts WHERE id = ? FOR NO KEY UPDATE", [ids[1]])
    first = in_thread(conns(), lambda db: save_scores(
        db, [(ids[0], _score("negative"), None), (ids[1], _score("positive"), None)], NOW))
    wait_for_lock(watch, first.pid, "the batch")
    claim = in_thread(conns(), lambda db: claims.posts_to_score(
        db, "m", "1", 3, "w2", NOW, 60, after=ids[1]))
    claim.thread.join(5)  # well within the batch's lock timeout (10 s)
    assert not claim.thread.is_alive(), "the claim waited for the score batch in flight"
    assert claim.errors == [] and [p.id for p in claim.result[0]] == ids[2:5]
    lock.conn.execute("ROLLBACK")
    first.thread.join(20)
    assert first.errors == [] and first.result == [2]


def test_a_score_batch_ended_by_a_deadlock_is_saved_again(
    conns: Callable[[], Any], caplog: pytest.LogCaptureFixture,
) -> None:
    """Another transaction takes the batch's posts in the other order: PostgreSQL ends one of
    the two after deadlock_timeout, here the batch (it waited first), which runs again."""
    watch, other = conns(), conns()
    ids = _stored(watch, 2)
    other.conn.execute("BEGIN")
    other.execute("SELECT 1 FROM posts WHERE id = ? FOR NO KEY UPDATE", [ids[1]])
    batch = in_thread(conns(), lambda db: save_scores(
        db, [(ids[0], _score("negative"), None), (ids[1], _score("neutral"), None)], NOW))
    wait_for_lock(watch, batch.pid, "the batch")  # it holds the first post, wants the second
    other.execute("SET deadlock_timeout = '10s'")  # so the batch is the one that finds it
    ended = in_thread(other, lambda db: db.execute(
        "SELECT 1 FROM posts WHERE id = ? FOR NO KEY UPDATE", [ids[0]]).fetchall())
    ended.thread.join(20)
    assert ended.errors == []  # it got the first post once the batch was rolled back
    other.conn.execute("COMMIT")
    batch.thread.join(20)
    assert batch.errors == [] and batch.result == [2]
    assert "deadlock" in caplog.text
    _exact(watch)


def test_a_page_adding_brands_beside_a_score_batch_locks_in_id_order(
    conns: Callable[[], Any], caplog: pytest.LogCaptureFixture,
) -> None:
    """A score batch locks its posts in id order; a page finding two of them again for
    another brand, the higher one first, locked them in its own order: it held the higher
    while waiting for the lower, which the batch held while waiting for the higher — a
    deadlock, one of the two ended after a second and run again. The page now locks every
    stored post it changes first, in id order."""
    watch, lock = conns(), conns()
    a, b, c = _stored(watch, 3)
    lock.conn.execute("BEGIN")  # holds the batch in flight at its second post
    lock.execute("SELECT 1 FROM posts WHERE id = ? FOR NO KEY UPDATE", [b])
    batch = in_thread(conns(), lambda db: save_scores(
        db, [(pid, _score("negative"), None) for pid in (a, b, c)], NOW))
    wait_for_lock(watch, batch.pid, "the batch")  # holds a, waits for b
    found = [Post("x", str(n), "found again", NOW, brand="beta", also_brands=("alpha",),
                  lang="en") for n in (2, 0)]  # c's key first, then a's
    page = in_thread(conns(), lambda db: store_page(db, "src-b", Page(found), NOW))
    wait_for_lock(watch, page.pid, "the page")  # waits for a, which the batch holds
    lock.conn.execute("ROLLBACK")
    batch.thread.join(20)
    page.thread.join(20)
    assert batch.errors == [] and batch.result == [3]
    assert page.errors == [] and page.result == [0]
    assert "deadlock" not in caplog.text
    assert watch.execute("SELECT post_id FROM post_extra_brands ORDER BY 1").fetchall() == [
        (a,), (c,)]
    _exact(watch)


def test_score_batches_and_pages_side_by_side_leave_every_count_exact(
    conns: Callable[[], Any],
) -> None:
    """Two model versions scoring the same posts in their own orders, while pages store new
    posts, cross-posts, and stored posts found again for other brands (extra brands added to
    posts being scored): nothing fails, and every rollup and the queue end as a recount."""
    watch = conns()
    ids = _stored(watch, 300)
    labels = ("negative", "neutral", "positive")

    def scorer(version: str, seed: int) -> Callable[[Any], None]:
        def run(db: Any) -> None:
            order = random.Random(seed).sample(ids, len(ids))
            for start in range(0, len(order), 40):
                save_scores(db, [(i, _score(labels[(i + seed) % 3], version, (i % 7) / 6), None)
                                 for i in order[start:start + 40]], NOW)
        return run

    def pager(brand: str, seed: int) -> Callable[[Any], None]:
        def run(db: Any) -> None:
            rng = random.Random(seed)
            for page in range(15):
                posts = [Post("x", str(rng.randrange(300)), "found again", NOW, brand=brand,
                              also_brands=("alpha",), lang="en") for _ in range(5)]
                posts += [Post("reddit", f"{brand}{page}-{n}", f"the app crashed again, ticket"
                               f" {rng.randrange(300)}", NOW, author=f"user{rng.randrange(300)}",
                               brand=brand, lang="en") for n in range(10)]
                store_page(db, f"src-{brand}", Page(posts), NOW)
        return run

    work = [scorer("1", 1), scorer("2", 2), pager("beta", 3), pager("gamma", 4)]
    held = [in_thread(conns(), job) for job in work]
    for job in held:
        job.thread.join(120)
        assert not job.thread.is_alive() and job.errors == [], job.errors
    rollups.fold(watch)
    assert _pending(watch) == 0
    assert watch.execute("SELECT count(*) FROM post_extra_brands").fetchone()[0] > 0
    assert watch.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL"
                         ).fetchone()[0] > 0
    _exact(watch)


def test_the_score_writes_bench_runs_every_row(pg_server: Server,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """bench/score_writes.py (issue 17's PostgreSQL write figures), small, so it cannot rot:
    every row runs and checks that every score and count landed."""
    from bench import score_writes

    assert score_writes.main(["--posts", "300", "--batch", "100", "--writers", "1", "2",
                              "--pages", "1", "--url", pg_server.url]) == 0
    rows = [(line[:10].strip(), line[11:25].strip(), *line[25:].split()) for line in
            capsys.readouterr().out.splitlines() if line.startswith(("postgresql ", "sqlite "))]
    assert [r[:4] for r in rows] == [
        *(("postgresql", way, queued, writers) for queued in ("third", "all")
          for way, writers in (("one at a time", "1"), ("side by side", "1"),
                               ("side by side", "2"))),
        *(("postgresql", "beside pages", queued, writers) for queued in ("third", "all")
          for writers in ("1", "2")),
        *(("sqlite", way, queued, "1") for queued in ("third", "all")
          for way in ("row triggers", "batch"))]
    # pages were stored meanwhile, and no write ended in a deadlock
    assert all(r[7] != "0" and r[-1] == "0" for r in rows[6:10]), rows[6:10]


def test_the_lock_handoffs_bench_runs_every_row(pg_server: Server,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """bench/lock_handoffs.py (the stage's reads and saves beside a thread busy in Python),
    small, so it cannot rot: every call, alone and beside, at both switch intervals."""
    from bench import lock_handoffs

    assert lock_handoffs.main(["--batch", "50", "--repeat", "1", "--switch-interval", "0.5",
                               "--url", pg_server.url]) == 0
    rows = [(line[:11].strip(), line[12:28].strip(), line[29:43].strip())
            for line in capsys.readouterr().out.splitlines()
            if line.startswith(("postgresql ", "sqlite "))]
    assert rows == [(engine, call, where + interval) for engine in ("sqlite", "postgresql")
                    for interval in ("", ", 0.5 ms")
                    for call in ("read", "read row by row", "save")
                    for where in ("alone", "beside")]
