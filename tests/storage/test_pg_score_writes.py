"""Score statements on PostgreSQL stay linear whatever the planner believed when it planned.

A trigger function's queries are planned once per server session and the plan kept until the
table's statistics change. Found by issue 17's benchmark: a classify worker's second
connection planned pg005's "the post's previous score" lookup (``ORDER BY id DESC LIMIT 1``)
while ``scores`` looked small, chose to walk the primary key backwards filtering on the post,
and then read every score of the table for each post: a batch of 8,192 scores took 8-22 s
instead of 0.5. pg011's ``score_statement`` finds a post's scores only through its ``post_id``
(an aggregate, no order to follow), so no plan can walk the whole table per post.

Counted, not timed: the scores the statements' index scans fetch (``idx_tup_fetch``) against
the scores saved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from listener.core.models import Page, Post, Score
from storage.db import open_db, save_scores, store_page
from tests.pg_server import Server

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
    for start in range(0, POSTS, 1000):
        store_page(first, "bench", Page([
            Post("x", str(i), f"the app crashed again, ticket {i}", NOW, source="bench",
                 lang="en") for i in range(start, min(start + 1000, POSTS))]), NOW)
    first.execute("ANALYZE posts")  # scores never analysed: empty to the planner
    ids = [int(r[0]) for r in first.execute("SELECT id FROM posts ORDER BY id").fetchall()]
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

