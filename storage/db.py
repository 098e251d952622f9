"""Verbs over the database: what each stage reads as its pending work and writes as its result.

Each writing verb is one transaction, so every stage is crash-safe: what is not committed is
simply picked up again by the next run. Values are always bound parameters, never SQL text.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
from sqlite_utils import Database

from listener.core.log import redact
from listener.core.models import Page, Post, Rejected, Score, clean_text, parse_iso, to_iso
from storage import pg_pages, rollups, score_batches
from storage.engine import POSTGRESQL, SQLITE, Db, dialect
from storage.migrations import migrate
from storage.tx import again_after_deadlock, connect, environmental, immediate, ingest_turn

POST_COLUMNS = (
    "platform", "platform_id", "source", "brand", "kind", "url", "author", "author_followers",
    "text", "lang", "rating", "created_at", "collected_at", "raw", "text_hash", "thread",
)
CROSSPOST_WINDOW_S = 3600  # identical text within an hour, on any platform, is one cross-post
CROSSPOST_MIN_CHARS = 30  # short texts ("thanks!") repeat by chance; never link them
_URL = re.compile(r"https?://\S+|www\.\S+")
# one encoder for every post: json.dumps with options builds a new JSONEncoder on each call
_JSON_RAW = json.JSONEncoder(ensure_ascii=False, default=str).encode
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def raw_json(raw: dict[str, Any]) -> str:
    """A post's raw record as JSON text: orjson, a tenth of the standard encoder's time (3 of
    the ~13 µs a post cost the collecting process, bench/ingest.py); the standard encoder for
    what orjson refuses (an integer beyond 64 bits). Both read back as the same object; values
    of other types become their ``str`` in both (datetimes too, by the passthrough option)."""
    try:
        return orjson.dumps(raw, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _JSON_RAW(raw)


# column names come from the constant tuple above; values are always bound
_COLS, _MARKS = ", ".join(POST_COLUMNS), ", ".join("?" * len(POST_COLUMNS))
_INSERT_POST = (
    f"INSERT INTO posts ({_COLS}) VALUES ({_MARKS}) "  # noqa: S608
    "ON CONFLICT(platform, platform_id) DO NOTHING"
)
# PostgreSQL's triggers on scores (and posts) run once per statement (storage/migrations_pg_bulk):
# rows go in one statement there, each column as one array (``unnest``: one statement text
# whatever the count, so psycopg and the server parse it once; a VALUES list of thousands of
# placeholders costs more to convert than to run), in order (WITH ORDINALITY: ids handed out
# as row by row). Posts take their own way there: storage.pg_pages.


def unnest_insert(table: str, columns: Sequence[str], types: dict[str, str],
                  conflict: str) -> str:
    """PostgreSQL's INSERT of rows given as one array per column (``types``: those not text).

    psycopg's own placeholders (``%b``: binary arrays, which skip the text format's escaping
    of every element), so it runs on the raw connection (:func:`insert_columns`)."""
    arrays = ", ".join(f"CAST(%b AS {types.get(c, 'text[]')})" for c in columns)
    names = ", ".join(columns)
    return (f"INSERT INTO {table} ({names}) SELECT {names} FROM unnest({arrays})"  # noqa: S608
            f" WITH ORDINALITY AS r ({names}, n) ORDER BY n {conflict}")


def insert_columns(db: Db, sql: str, rows: Sequence[Sequence[Any]], width: int) -> int:
    """Run an :func:`unnest_insert` statement with ``rows`` (each ``width`` values) given as
    one list per column; how many rows were inserted."""
    columns = [[row[i] for row in rows] for i in range(width)]
    return max(int(db.conn.raw.execute(sql.encode(), columns).rowcount), 0)


REASON_CHARS = 500  # reject and pause reasons, delivery errors: enough to say why
# What one row's values can raise on their way into SQLite (a value of an unsupported type, an
# integer beyond 64 bits, text that is not UTF-8, a value too big, a constraint): that row is
# rejected, the rest is stored. Anything else (locked, full, corrupt) fails the whole page.
_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
               sqlite3.DataError, ValueError, TypeError, OverflowError, RecursionError)
_ROW_ERROR_CODES = ("SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_CONSTRAINT", "SQLITE_RANGE")


def scrubbed(text: str, limit: int | None = REASON_CHARS) -> str:
    """Error or reason text as it may be stored: every registered secret, credential URL
    parameter and URL password masked (:func:`listener.core.log.redact`, as in the logs), storable
    UTF-8, at most ``limit`` characters.

    Every verb that writes such text (runs, rejects, pauses, deliveries, alerts) calls this, so
    no caller can forget: the database is read by the dashboard, ``status``, ``alerts list``
    and backups, and a secret echoed in an error must reach none of them. Redacted before it is
    cut, so a secret cut in half cannot slip through.
    """
    clean = clean_text(redact(str(text)))
    return clean if limit is None else clean[:limit]


def open_db(path: str | Path) -> Db:
    """Connect and bring the schema up to date (migrations are idempotent and cheap)."""
    db = connect(path)
    migrate_database(db)
    return db


def migrate_database(db: Db) -> list[str]:
    """Apply the pending migrations of ``db``'s engine; the names applied (none: up to date)."""
    if isinstance(db, Database):
        return migrate(db)
    from storage.migrations_pg import migrate_pg

    return migrate_pg(db.conn.raw)


def text_hash(text: str) -> str | None:
    """Hash of the text with links and case and spacing removed; None for short texts."""
    if "://" in text or "www." in text:  # the links' pattern cannot match without either
        text = _URL.sub(" ", text)
    core = " ".join(text.lower().split())
    if len(core) < CROSSPOST_MIN_CHARS:
        return None
    return hashlib.sha1(core.encode()).hexdigest()[:20]


def _post_values(post: Post, source: str, collected_at: str) -> tuple[Any, ...]:
    return (
        post.platform, post.platform_id, post.source or source, post.brand, post.kind, post.url,
        post.author, post.author_followers, post.text, post.lang, post.rating,
        to_iso(post.created_at), collected_at, raw_json(post.raw),
        text_hash(post.text), post.thread,
    )


# the earlier posts a new post (``posts``) is a cross-post of; ? is the window in seconds.
# ``+o.id``: not through an index (the same idiom in both engines): a planner without
# statistics yet (a new table) would otherwise AND the text hash's index with a range of the
# primary key, reading every earlier post's id for each new post.
_EARLIER = (
    "FROM posts o WHERE o.text_hash = posts.text_hash AND +o.id < posts.id"
    " AND o.author IS NOT NULL AND lower(o.author) = lower(posts.author)"
    " AND abs(julianday(o.created_at) - julianday(posts.created_at)) * 86400 <= ?"
)


def _link_crossposts(db: Db, after_id: int) -> None:
    """Point each new post at the first earlier post *by the same author* with the same text
    within the window: the same account, or the same handle on another platform.

    Different authors saying the same thing are different customers (during an outage most of
    them write "X is down"): each stays in the queue and is counted; the incident grouping of
    the rules stage, not this link, keeps them from paging a person a hundred times.

    Only posts that have such an earlier post are written: rewriting every new post's NULL
    would, on PostgreSQL, write each one a second time, with all its index entries. The test is
    a scalar subquery, not EXISTS, which PostgreSQL may turn into a hash join reading every
    post at each page; a scalar one is an index lookup per new post on both engines.
    """
    db.execute(
        f"UPDATE posts SET duplicate_of = (SELECT min(o.id) {_EARLIER})"  # noqa: S608
        f" WHERE id > ? AND text_hash IS NOT NULL AND author IS NOT NULL"
        f" AND duplicate_of IS NULL AND (SELECT min(o.id) {_EARLIER}) IS NOT NULL",
        [CROSSPOST_WINDOW_S, after_id, CROSSPOST_WINDOW_S],
    )


def _several_brands(posts: Sequence[Post]) -> list[Post]:
    """The posts about more than one brand: their brands are recorded beyond the first."""
    return [p for p in posts if p.also_brands and len(p.brands) > 1]


def _add_extra_brands(db: Db, posts: Sequence[Post]) -> None:
    """Record every brand beyond a post's first, for new posts and already stored ones alike:
    the same post found again by another source's search for another brand is about both."""
    # the first brand too: a post stored earlier may have another
    rows = [(brand, p.platform, p.platform_id, brand)
            for p in _several_brands(posts) for brand in p.brands]
    if rows:
        db.conn.executemany(
            "INSERT INTO post_extra_brands (post_id, brand) SELECT id, ? FROM posts"
            " WHERE platform = ? AND platform_id = ? AND coalesce(brand, '') != ?"
            " ON CONFLICT DO NOTHING", rows)


_LAST_ID = "SELECT coalesce(max(id), 0) FROM posts"


def store_page(db: Db, source: str, page: Page, now: datetime) -> int:
    """Store a page's posts, rejects and cursor in ONE transaction; returns how many were new.

    Posts already stored (same platform + id) are left untouched, so re-imports and overlapping
    polls are harmless; the cursor moves only together with the posts it covers. A new post whose
    text another post already has (within an hour) is linked to it as a cross-post.

    A post that still cannot be stored (``Post`` construction repairs what it can) is rejected
    alone, as ``platform:id``, and the rest of the page and its cursor are stored: one bad
    record must never hold a source's cursor back forever. A failure of the database itself
    (locked, disk full) still fails the whole page, which the next run fetches again.

    On PostgreSQL pages of several workers are stored side by side (:mod:`storage.pg_pages`).
    """
    stamp = to_iso(now)
    rows, refused = _storable(page.posts, source, stamp)
    if dialect(db) == POSTGRESQL:
        return again_after_deadlock(db, lambda: _store_page_pg(db, source, page, stamp, rows,
                                                               refused))
    with immediate(db):
        last_id = db.execute(_LAST_ID).fetchone()[0]
        new, failed = _insert_posts(db, rows)
        if new:
            _link_crossposts(db, last_id)
        _page_rest(db, source, page, stamp, rows, refused, failed)
    return new


def _store_page_pg(db: Db, source: str, page: Page, stamp: str, rows: list[Row],
                   refused: list[Rejected]) -> int:
    """store_page on PostgreSQL, side by side with other pages (:mod:`storage.pg_pages`)."""
    # COPY in a transaction of the page's own (inside a caller's transaction the temporary
    # table may still hold an earlier page's rows: then one unnest statement)
    bulk = not db.conn.in_transaction
    with immediate(db, shared=True):
        new_ids, failed = _insert_pg(db, rows, bulk=bulk)
        ingest_turn(db)
        bad = {id(post) for post, _ in failed}
        # the stored posts the page adds brands to: locked with the twins it links, in id order
        touched = pg_pages.stored_ids(db, [(p.platform, p.platform_id) for p in _several_brands(
            [post for post, _ in rows if id(post) not in bad])])
        pg_pages.link_crossposts(db, new_ids, CROSSPOST_WINDOW_S, touched)
        _page_rest(db, source, page, stamp, rows, refused, failed)
    return len(new_ids)


def _page_rest(db: Db, source: str, page: Page, stamp: str, rows: list[Row],
               refused: list[Rejected], failed: Refused) -> None:
    """After the posts: their extra brands, the page's rejects (the source's own, the posts
    whose values could not be computed, the rows the database refused), and its cursor."""
    bad = {id(post) for post, _ in failed}
    _add_extra_brands(db, [post for post, _ in rows if id(post) not in bad])
    rejects = [*page.rejected, *refused, *(_refusal(post, exc) for post, exc in failed)]
    if rejects:
        db.conn.executemany(
            "INSERT INTO rejects (source, location, reason, at) VALUES (?, ?, ?, ?)",
            [(source, scrubbed(r.where), scrubbed(r.reason), stamp) for r in rejects],
        )
    if page.cursor is not None:
        db.execute(
            "INSERT INTO cursors (source, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (source) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            [source, json.dumps(page.cursor), stamp],
        )


Row = tuple[Post, tuple[Any, ...]]
Refused = list[tuple[Post, BaseException]]  # rows the database would not take, with why


def _refusal(post: Post, exc: BaseException) -> Rejected:
    """A post storage could not take, named by platform and id (what every source has)."""
    return Rejected(where=post.key, reason=f"cannot be stored: {type(exc).__name__}: {exc}")


def _storable(posts: Sequence[Post], source: str, stamp: str) -> tuple[list[Row], list[Rejected]]:
    """Each post with its column values; a post whose values cannot even be computed (a
    ``created_at`` that is not a datetime, raw JSON that cannot be encoded) is refused."""
    rows: list[Row] = []
    refused: list[Rejected] = []
    for post in posts:
        try:
            rows.append((post, _post_values(post, source, stamp)))
        except (ValueError, TypeError, OverflowError, RecursionError, AttributeError) as exc:
            refused.append(_refusal(post, exc))
    return rows, refused


@contextmanager
def _savepoint(db: Db) -> Iterator[None]:
    """A nested transaction: undone alone on error, leaving the page's transaction open."""
    db.conn.execute("SAVEPOINT store_row")
    try:
        yield
    except BaseException:
        with suppress(Exception):  # SQLite may have rolled everything back (SQLITE_FULL)
            db.conn.execute("ROLLBACK TO store_row")
            db.conn.execute("RELEASE store_row")
        raise
    db.conn.execute("RELEASE store_row")


def _row_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about the row's values rather than the database (locked, full,
    corrupt): only then may the row be rejected and the cursor move past it."""
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        if isinstance(exc, sqlite3.OperationalError) and environmental(exc):
            return False
        return isinstance(exc, _ROW_ERRORS) or name.startswith(_ROW_ERROR_CODES)
    return isinstance(exc, _ROW_ERRORS) or _pg_row_error(exc)


def _pg_row_error(exc: BaseException) -> bool:
    """PostgreSQL's refusals of a row's values (a NOT NULL or CHECK violation, a value out of
    range), read from psycopg's error classes by name: psycopg is imported only where
    PostgreSQL is configured."""
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    return type(exc).__module__.startswith("psycopg") and bool(
        kinds & {"IntegrityError", "DataError"})


T = TypeVar("T")


def _insert_rows(db: Db, rows: list[Row], all_at_once: Callable[[list[Row]], T],
                 one: Callable[[Row], T], *, order: Callable[[Row], Any] | None = None
                 ) -> tuple[list[T], Refused]:
    """Insert the rows: all at once, or, when one of them fails, one by one (in ``order``, if
    given), each row that fails left out; each step in a savepoint, so a refused row undoes
    only itself. Returns what each insert returned, and the rows refused with why."""
    try:
        with _savepoint(db):
            return [all_at_once(rows)], []
    except Exception as exc:
        if not _row_error(exc):
            raise
    done: list[T] = []
    failed: Refused = []
    for row in rows if order is None else sorted(rows, key=order):
        try:
            with _savepoint(db):
                done.append(one(row))
        except Exception as exc:
            if not _row_error(exc):
                raise
            failed.append((row[0], exc))
    return done, failed


def _insert_posts(db: Db, rows: list[Row]) -> tuple[int, Refused]:
    """Insert the rows (SQLite): one pipelined ``executemany``, or row by row
    (:func:`_insert_rows`); how many were new, and the rows refused with why."""
    counts, failed = _insert_rows(
        db, rows, lambda page: db.conn.executemany(_INSERT_POST, [v for _, v in page]).rowcount,
        lambda row: db.conn.execute(_INSERT_POST, row[1]).rowcount)
    return sum(max(int(c), 0) for c in counts), failed


# Pages of COPY_MIN_ROWS posts or more go through COPY on PostgreSQL, smaller ones through one
# unnest statement: the COPY's extra round trips cost more than they save there
# (bench/ingest.py --postgresql).
COPY_MIN_ROWS = 64


def _insert_pg(db: Db, rows: list[Row], *, bulk: bool) -> tuple[list[int], Refused]:
    """Insert the rows (PostgreSQL, :mod:`storage.pg_pages`): COPY (with ``bulk``) or one unnest
    statement, or row by row in key order, the order every page inserts in
    (:func:`_insert_rows`); the new posts' ids, and the rows refused with why.

    Binary COPY: a value of another type than its column's (which Post construction rules out)
    fails in Python with a TypeError or OverflowError, a row error, as a value the server
    refuses does (DataError): the page then goes row by row."""
    def all_at_once(page: list[Row]) -> list[int]:
        if bulk and len(page) >= COPY_MIN_ROWS:
            return _copy_posts(db, page)
        return pg_pages.unnest_rows(db, POST_COLUMNS, [v for _, v in page])

    parts, failed = _insert_rows(
        db, rows, all_at_once, lambda row: pg_pages.unnest_rows(db, POST_COLUMNS, [row[1]]),
        order=_key_order)
    return [post_id for ids in parts for post_id in ids], failed


def _key_order(row: Row) -> tuple[str, str]:
    """A row's place in key order (a refused row may hold a None or a value of another type:
    its place then hardly matters, but sorting must not fail)."""
    platform, platform_id = row[0].platform, row[0].platform_id
    return ("" if platform is None else str(platform),
            "" if platform_id is None else str(platform_id))


def _copy_posts(db: Db, rows: list[Row]) -> list[int]:
    """The rows into posts through COPY (PostgreSQL); the new posts' ids."""
    return pg_pages.copy_rows(db, POST_COLUMNS, [values for _, values in rows])


def load_cursor(db: Db, source: str) -> Any:
    row = db.execute("SELECT value FROM cursors WHERE source = ?", [source]).fetchone()
    return json.loads(row[0]) if row else None


class Unscored(NamedTuple):
    """A post waiting for a score from one model version: what the classify stage reads."""

    id: int
    text: str
    lang: str | None  # None: stored before languages were detected (the router detects it)


_UNSCORED = (
    "SELECT id, text, lang FROM posts p WHERE p.id > ? AND NOT EXISTS (SELECT 1 FROM scores"
    " s WHERE s.post_id = p.id AND s.model = ? AND s.model_version = ?) ORDER BY id LIMIT ?"
)


# a batch's ``SELECT id, text, lang`` as one row of three JSON arrays (json_agg of none: NULL)
_AS_ONE_ROW = {
    SQLITE: "SELECT json_group_array(id), json_group_array(text), json_group_array(lang) FROM ({})",
    POSTGRESQL: "SELECT coalesce(json_agg(id), '[]')::text, coalesce(json_agg(text), '[]')::text,"
                " coalesce(json_agg(lang), '[]')::text FROM ({}) AS batch",
}


def posts_to_score(db: Db, model: str, version: str, limit: int, *, after: int = 0
                   ) -> list[Unscored]:
    """Posts without a score from this model version, oldest first; with ``after``, only
    posts with a greater id (a reader running ahead of the writer skips what it already read)."""
    return unscored_batch(db, _UNSCORED, [after, model, version, limit])


def unscored_batch(db: Db, sql: str, params: Sequence[Any]) -> list[Unscored]:
    """The rows of ``sql`` (``SELECT id, text, lang … ORDER BY id``), handed over from the
    database as one row of three JSON arrays, in id order.

    Why not row by row: the classify stage reads on a thread of its own beside the thread
    that scores, which on a GPU is busy in Python (normalising, tokenising's lists, launching
    kernels). Python's sqlite3 gives the interpreter lock up and takes it back for every row
    it fetches, and psycopg for every piece of a result that libpq receives (16 kB, ~70 for a
    batch of 8,192 tweets); beside a busy thread each take waits for its switch interval. A
    batch read in 8–13 ms alone took 6–12 s there on SQLite and ~400 ms on PostgreSQL; as one
    row (one step; one message that libpq receives in a few large pieces) 12–30 ms alone and
    30–80 ms there (``python bench/lock_handoffs.py``).
    """
    one = _AS_ONE_ROW[dialect(db)].format(sql)  # noqa: S608 (the callers' constant SQL)
    ids, texts, langs = (orjson.loads(array) for array in db.execute(one, params).fetchone())
    # sorted: the aggregates keep the inner ORDER BY in practice, SQL does not promise it
    return [Unscored(*row) for row in sorted(zip(ids, texts, langs, strict=True))]


def save_scores(
    db: Db, score_rows: Sequence[tuple[int, Score, str | None]], now: datetime
) -> int:
    """Insert ``(post_id, score, lang)`` rows (``lang`` None: the score's own ``lang``); a
    re-score by the same model version is ignored."""
    rows = score_values(score_rows, now)
    if dialect(db) == POSTGRESQL:
        saved = again_after_deadlock(db, lambda: _save_scores_pg(db, rows))
        rollups.fold(db)
        return saved
    with immediate(db):
        return score_batches.save(db, rows)


def score_values(score_rows: Sequence[tuple[int, Score, str | None]], now: datetime
                 ) -> list[tuple[Any, ...]]:
    """Each ``(post_id, score, lang)`` as the values of a ``scores`` row (:data:`_SCORE_COLUMNS`
    order), scored at ``now``."""
    stamp = to_iso(now)
    return [(pid, s.model, s.model_version, s.sentiment, s.p_negative, s.p_neutral,
             s.p_positive, s.urgency, lang if lang is not None else s.lang,
             int(s.language_supported), s.scored_by, stamp) for pid, s, lang in score_rows]


def _save_scores_pg(db: Db, rows: list[tuple[Any, ...]]) -> int:
    """PostgreSQL: one statement (its trigger runs once for it), side by side with other
    batches and pages, its rollup moves left pending (:mod:`storage.migrations_pg_pending`)."""
    with immediate(db, shared=True):
        db.execute("SELECT set_config(?, 'pending', true)", [rollups.SETTING])
        return insert_columns(db, _INSERT_SCORES_PG, rows, len(_SCORE_COLUMNS))


_SCORE_COLUMNS = ("post_id", "model", "model_version", "sentiment", "p_negative", "p_neutral",
                  "p_positive", "urgency", "lang", "language_supported", "scored_by",
                  "scored_at")
_INSERT_SCORES_PG = unnest_insert(
    "scores", _SCORE_COLUMNS,
    {"post_id": "bigint[]", "language_supported": "integer[]",
     **{c: "float8[]" for c in ("p_negative", "p_neutral", "p_positive", "urgency")}},
    "ON CONFLICT (post_id, model, model_version) DO NOTHING")


EXTRA_BRANDS_SQL = (  # a post's extra brands as one column, joined by the unit separator
    "(SELECT group_concat(brand, '\x1f') FROM post_extra_brands WHERE post_id = p.id)"
)
# every column score_from_row reads, for each query that hands rows to it (``s`` = scores)
SCORE_COLUMNS = (
    "s.sentiment, s.p_negative, s.p_neutral, s.p_positive, s.urgency, s.model, s.model_version,"
    " s.lang AS score_lang, s.language_supported, s.scored_by"
)
_JOINED = (
    f"SELECT s.id AS score_id, {SCORE_COLUMNS}, {EXTRA_BRANDS_SQL} AS also_brands, p.*"  # noqa: S608
    " FROM scores s JOIN posts p ON p.id = s.post_id"
)


@dataclass(frozen=True)
class Scored:
    """A post with a score the rules stage has not looked at yet."""

    score_id: int
    post_id: int
    post: Post
    score: Score
    duplicate_of: int | None  # the same author's cross-post of this post id, if any


def scores_to_evaluate(db: Db, limit: int) -> list[Scored]:
    """Scores the rules stage has not looked at yet, with their posts, oldest first."""
    sql = f"{_JOINED} WHERE s.rules_at IS NULL ORDER BY s.id LIMIT ?"
    return [Scored(r["score_id"], r["id"], post_from_row(r), score_from_row(r), r["duplicate_of"])
            for r in (dict(row) for row in db.query(sql, [limit]))]


def post_from_row(row: dict[str, Any]) -> Post:
    """The post of a row holding every ``posts`` column (and, optionally, ``also_brands``)."""
    return Post(
        platform=row["platform"], platform_id=row["platform_id"], text=row["text"],
        created_at=parse_iso(row["created_at"]), source=row["source"] or "", url=row["url"],
        author=row["author"], author_followers=row["author_followers"], lang=row["lang"],
        kind=row["kind"] or "mention", rating=row["rating"], brand=row["brand"],
        raw=json.loads(row["raw"]) if row.get("raw") else {}, thread=row.get("thread"),
        also_brands=split_brands(row.get("also_brands")),
    )


def split_brands(joined: str | None) -> tuple[str, ...]:
    """The extra brands of :data:`EXTRA_BRANDS_SQL`'s column, sorted (None: none)."""
    return tuple(sorted(joined.split("\x1f"))) if joined else ()


def score_from_row(row: dict[str, Any]) -> Score:
    """The score of a row selected with :data:`SCORE_COLUMNS`."""
    return Score(
        sentiment=row["sentiment"], p_negative=row["p_negative"], p_neutral=row["p_neutral"],
        p_positive=row["p_positive"], urgency=row["urgency"], model=row["model"],
        model_version=row["model_version"], lang=row["score_lang"],
        # read strictly: a query without SCORE_COLUMNS must fail, not say "understood"
        language_supported=bool(row["language_supported"]), scored_by=row["scored_by"],
    )


def start_run(db: Db, stage: str, target: str, now: datetime, worker: str | None = None) -> int:
    """A run of ``stage`` begins; ``worker`` (on a shared database) is whose it is, so the
    workers still alive can close it if this one dies (:mod:`storage.workers`)."""
    with immediate(db):
        row = db.execute(
            "INSERT INTO runs (stage, target, started_at, status, worker)"
            " VALUES (?, ?, ?, 'running', ?) RETURNING id", [stage, target, to_iso(now), worker],
        ).fetchone()
        return int(row[0])


def beat_run(db: Db, run_id: int, now: datetime) -> None:
    """The run made progress (its own transaction: progress is shown between batches)."""
    with immediate(db):
        db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", [to_iso(now), run_id])


def close_interrupted_runs(db: Db, now: datetime) -> int:
    """Mark runs left 'running' by a killed or crashed process as 'interrupted'. Only called
    by a process holding the run lock, so no run is really in progress; without this,
    ``listener status`` would show a stage as running forever after a SIGKILL."""
    with immediate(db):
        cursor = db.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
            " WHERE status = 'running'",
            [to_iso(now), "the process stopped before this run finished (killed or crashed)"],
        )
        return int(cursor.rowcount)


def finish_run(
    db: Db, run_id: int, now: datetime, *, items: int, error: str | None = None
) -> None:
    status = "error" if error else "ok"
    with immediate(db):
        db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, items = ?, error = ? WHERE id = ?",
            [to_iso(now), status, items, scrubbed(error, limit=None) if error else error,
             run_id],
        )
