"""PostgreSQL's way of storing a page of posts, written for many collect workers at once.

On SQLite one writer stores a page at a time (``BEGIN IMMEDIATE``), and so it did on PostgreSQL
behind the one write lock (:mod:`storage.tx`): ingest then stopped at about 45,000 posts/s
on any machine, because the server's part of a post (the row and its eight index entries, about
15 µs) ran one transaction at a time. Here a page's transaction takes that lock *shared*
(:func:`storage.tx.immediate` with ``shared``): pages of several workers insert side by side,
as do batches of scores (:mod:`storage.migrations_pg_pending`), while every other writer
(rules, retention, erasure) still runs alone and so still sees every post id handed out so far
committed. What pages share is kept safe as follows:

- **Dedup.** The unique index on ``(platform, platform_id)`` decides, as before; ``ON CONFLICT DO
  NOTHING`` waits for a page in flight holding the same key. Every page inserts its rows in key
  order, so two pages holding keys the other wants cannot wait for each other (no deadlock).
  Ids are still handed out in page order (``nextval`` after the sort by ``n``).
- **Rollup cells.** The statement triggers upsert their cells in key order (pg005): a page
  waits there for an earlier page's commit, after its own rows are in.
- **Cross-post links, extra brands, rejects, cursor.** They read what other pages write, so they
  run one page at a time: :func:`storage.tx.ingest_turn`, a second lock, taken after the insert.
  A page cannot see the posts of a page still in flight, and ids are handed out before commit,
  so a post may commit *after* a post with a higher id: :func:`link_crossposts` links this
  page's posts to the earlier twins it can see (as SQLite does) and also the twins it can see
  with higher ids to this page's posts, whoever stored them. Every pair of twins is met by the
  later of the two pages to take its turn, so each post ends pointing at its first twin, as one
  writer would leave it (``tests/storage/test_pg_concurrent_ingest.py``).

Locks are always taken in the same order, shared write lock, keys (ascending), rollup cells
(ascending), ingest turn, so pages never deadlock among themselves. A batch of scores beside
them takes no cell (its moves are left pending) and locks its posts first, in id order, so the
only rows a page and a score batch can both wait for are stored posts; and a page locks every
stored post it is about to change (the later twins it links, the posts it adds brands to)
first too, in id order, in one statement (:func:`link_crossposts`), so neither ever holds one
the other wants while waiting for a lower one. (Were PostgreSQL to end either to break a
deadlock all the same, :func:`storage.db.store_page` and ``save_scores`` run it again.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.engine import Db

# posts' id column's sequence (an identity column's, named by PostgreSQL for its table)
_SEQUENCE = "posts_id_seq"
# each column's type in SQL and in psycopg's binary COPY (posts' own types; the others text)
_TYPES = {"n": ("INTEGER", "int4"), "author_followers": ("BIGINT", "int8"),
          "rating": ("DOUBLE PRECISION", "float8")}
_ARRAY_TYPES = {"author_followers": "bigint[]", "rating": "float8[]"}
# a conflict, or a row a NOT NULL refuses, consumes an id: ids have gaps (as with the default)
_CONFLICT = "ON CONFLICT (platform, platform_id) DO NOTHING"


def _insert(columns: Sequence[str], rows_from: str) -> str:
    """The INSERT of the rows ``rows_from`` yields (with their page order as ``n``): ids in
    page order, rows in key order (see the module docstring), the new rows' ids returned."""
    cols = ", ".join(columns)
    return (
        f"WITH new AS (INSERT INTO posts (id, {cols}) SELECT id, {cols} FROM"  # noqa: S608
        f" (SELECT nextval('{_SEQUENCE}') AS id, {cols} FROM {rows_from} ORDER BY n OFFSET 0) r"
        f" ORDER BY platform, platform_id, id {_CONFLICT} RETURNING id)"
        " SELECT coalesce(array_agg(id), '{}') FROM new"  # one value: a row each cost 1 µs
    )


def copy_statements(columns: Sequence[str]) -> tuple[str, str, str, list[str]]:
    """The temporary table a page is COPYed into, the COPY, the INSERT from it, and the COPY's
    column types (binary). The table has posts' types and no constraints (a NOT NULL refuses at
    the INSERT); ON COMMIT DELETE ROWS empties it at each commit, and IF NOT EXISTS creates it in
    the page's own transaction, so a pooler handing that transaction another server session
    still finds it."""
    typed = [(c, *_TYPES.get(c, ("TEXT", "text"))) for c in ("n", *columns)]
    table = ("CREATE TEMP TABLE IF NOT EXISTS store_page_rows ("
             + ", ".join(f"{name} {sql_type}" for name, sql_type, _ in typed)
             + ") ON COMMIT DELETE ROWS")
    copy = f"COPY store_page_rows (n, {', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    return table, copy, _insert(columns, "store_page_rows"), [t for _, _, t in typed]


def copy_rows(db: Db, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
    """The rows into posts through COPY and one INSERT; the ids of the new ones."""
    table, copy_sql, insert, types = copy_statements(columns)
    raw = db.conn.raw
    raw.execute(table)
    with raw.cursor() as cur:
        with cur.copy(copy_sql) as copy:
            copy.set_types(types)
            for n, values in enumerate(rows):
                copy.write_row((n, *values))
        return list(cur.execute(insert).fetchone()[0])


def unnest_rows(db: Db, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
    """The rows into posts as one array per column (one statement; psycopg's binary ``%b``
    arrays, on the raw connection); the ids of the new ones. For small pages, where COPY's
    round trips cost more than they save, and for one row at a time."""
    arrays = ", ".join(f"CAST(%b AS {_ARRAY_TYPES.get(c, 'text[]')})" for c in columns)
    source = f"unnest({arrays}) WITH ORDINALITY AS r ({', '.join(columns)}, n)"
    values = [[row[i] for row in rows] for i in range(len(columns))]
    return list(db.conn.raw.execute(_insert(columns, source).encode(), values).fetchone()[0])


# Every pair of twins with at least one post of this page: the same text hash, the same
# author (case aside), within the window (%s seconds). The page's posts are read by id, then
# every post holding one of their text hashes in one index scan (``= ANY``: as a join
# PostgreSQL planned a sort of every post, 86 ms a page of 1,000; one lookup per post cost a
# third more, bench/README.md); each pair as the later post and the first of its earlier twins.
_IDS = "CAST(%b AS bigint[])"
_PAIRS = (
    "WITH mine AS MATERIALIZED (SELECT id, text_hash, lower(author) AS author, created_at"  # noqa: S608
    f" FROM posts WHERE id = ANY({_IDS}) AND text_hash IS NOT NULL AND author IS NOT NULL),"
    " twin AS (SELECT id, text_hash, lower(author) AS author, created_at FROM posts"
    " WHERE text_hash = ANY(ARRAY(SELECT text_hash FROM mine)) AND author IS NOT NULL)"
    " SELECT greatest(mine.id, twin.id) AS id, min(least(mine.id, twin.id)) AS first"
    " FROM mine JOIN twin ON twin.text_hash = mine.text_hash AND twin.author = mine.author"
    " AND twin.id <> mine.id"
    " AND abs(julianday(twin.created_at) - julianday(mine.created_at)) * 86400 <= %s"
    " GROUP BY 1"
)
# The planner guesses the page's posts from posts' statistics. Where those say posts have no
# author (a database that began with feeds alone, until its next ANALYZE) it expects one post
# and pairs by nested loops, scanning the index for the page's whole array of hashes once per
# post: 1,000 scans of 1,000 keys for a page of 1,000, ~200 ms instead of ~3 (bench/README.md).
# A hash join costs no more when the guess is right, so nested loops are off for this one
# statement; the setting is put back at once (the page's later statements look posts up by
# key, which wants them).
_NESTED_LOOPS_OFF = ("SELECT current_setting('enable_nestloop'),"
                     " set_config('enable_nestloop', 'off', true)")
_NESTED_LOOPS_BACK = "SELECT set_config('enable_nestloop', %s, true)"
# the stored posts a page is about to change, locked in id order (module docstring)
_LOCK = f"SELECT 1 FROM posts WHERE id = ANY({_IDS}) ORDER BY id FOR NO KEY UPDATE"  # noqa: S608
# the later of each pair points at the first of its earlier twins, unless it points at an
# earlier one already. Only posts that get a link are written: rewriting a NULL would write the
# row a second time, with all its index entries.
_LINK = (
    f"UPDATE posts p SET duplicate_of = pair.first FROM unnest({_IDS}, {_IDS})"  # noqa: S608
    " AS pair (id, first)"
    " WHERE p.id = pair.id AND (p.duplicate_of IS NULL OR p.duplicate_of > pair.first)"
)
# the stored posts (not the page's new ones) that some of the page's posts name by key
_STORED = ("SELECT p.id FROM unnest(CAST(%b AS text[]), CAST(%b AS text[])) AS k (platform,"
           " platform_id) JOIN posts p ON (p.platform, p.platform_id) = (k.platform,"
           " k.platform_id)")


def stored_ids(db: Db, keys: Sequence[tuple[str, str]]) -> list[int]:
    """The ids of the stored posts with these ``(platform, platform_id)`` keys: those a page
    adds brands to (:func:`storage.db._add_extra_brands`)."""
    if not keys:
        return []
    rows = db.conn.raw.execute(_STORED.encode(), [[k[0] for k in keys], [k[1] for k in keys]])
    return [int(r[0]) for r in rows]


def link_crossposts(db: Db, new_ids: list[int], window_s: int,
                    touched: Sequence[int] = ()) -> None:
    """Link this page's new posts (``new_ids``) to their first earlier twins, and twins that
    committed before them with higher ids to them (the module docstring says why both); in
    the ingest turn, so no other page links meanwhile. First every stored post the page will
    change — those twins and ``touched`` (the posts it adds brands to) — is locked, in id
    order, in one statement: a batch of scores locks its posts in id order too, so the two
    never wait for each other both ways."""
    pairs = _pairs(db, new_ids, window_s) if new_ids else []
    mine = set(new_ids)
    stored = sorted({int(i) for i, _ in pairs if i not in mine} | set(touched) - mine)
    if stored:
        db.conn.raw.execute(_LOCK.encode(), [stored]).fetchall()
    if pairs:
        db.conn.raw.execute(_LINK.encode(), [[int(i) for i, _ in pairs],
                                             [int(f) for _, f in pairs]])


def _pairs(db: Db, new_ids: list[int], window_s: int) -> list[tuple[int, int]]:
    """:data:`_PAIRS` for these posts, planned without nested loops (see there why)."""
    raw = db.conn.raw
    before = raw.execute(_NESTED_LOOPS_OFF.encode()).fetchone()[0]
    pairs = raw.execute(_PAIRS.encode(), [new_ids, window_s]).fetchall()
    # (a failure above ends the transaction, and a rollback takes the setting back with it)
    raw.execute(_NESTED_LOOPS_BACK.encode(), [before])
    return [(int(i), int(f)) for i, f in pairs]
