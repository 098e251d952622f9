"""Verbs over the database: what each stage reads as its pending work and writes as its result.

Each writing verb is one transaction, so every stage is crash-safe: what is not committed is
simply picked up again by the next run. Values are always bound parameters, never SQL text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from listener.models import Page, Post, Score, parse_iso, to_iso
from storage.migrations import migrate
from storage.tx import connect, immediate

POST_COLUMNS = (
    "platform", "platform_id", "source", "brand", "kind", "url", "author", "author_followers",
    "text", "lang", "rating", "created_at", "collected_at", "raw", "text_hash", "thread",
)
CROSSPOST_WINDOW_S = 3600  # identical text within an hour, on any platform, is one cross-post
CROSSPOST_MIN_CHARS = 30  # short texts ("thanks!") repeat by chance; never link them
_URL = re.compile(r"https?://\S+|www\.\S+")
# one encoder for every post: json.dumps with options builds a new JSONEncoder on each call
_RAW_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode
# column names come from the constant tuple above; values are always bound
_COLS, _MARKS = ", ".join(POST_COLUMNS), ", ".join("?" * len(POST_COLUMNS))
_INSERT_POST = (
    f"INSERT INTO posts ({_COLS}) VALUES ({_MARKS}) "  # noqa: S608
    "ON CONFLICT(platform, platform_id) DO NOTHING"
)


def open_db(path: str | Path) -> Database:
    """Connect and bring the schema up to date (migrations are idempotent and cheap)."""
    db = connect(path)
    migrate(db)
    return db


def text_hash(text: str) -> str | None:
    """Hash of the text with links and case and spacing removed; None for short texts."""
    core = " ".join(_URL.sub(" ", text).lower().split())
    if len(core) < CROSSPOST_MIN_CHARS:
        return None
    return hashlib.sha1(core.encode()).hexdigest()[:20]


def _post_values(post: Post, source: str, collected_at: str) -> tuple[Any, ...]:
    return (
        post.platform, post.platform_id, post.source or source, post.brand, post.kind, post.url,
        post.author, post.author_followers, post.text, post.lang, post.rating,
        to_iso(post.created_at), collected_at, _RAW_JSON(post.raw),
        text_hash(post.text), post.thread,
    )


def _link_crossposts(db: Database, after_id: int) -> None:
    """Point each new post at the first earlier post *by the same author* with the same text
    within the window: the same account, or the same handle on another platform.

    Different authors saying the same thing are different customers (during an outage most of
    them write "X is down"): each stays in the queue and is counted; the incident grouping of
    the rules stage, not this link, keeps them from paging a person a hundred times.
    """
    db.execute(
        "UPDATE posts SET duplicate_of = (SELECT min(o.id) FROM posts o"
        " WHERE o.text_hash = posts.text_hash AND o.id < posts.id"
        " AND o.author IS NOT NULL AND lower(o.author) = lower(posts.author)"
        " AND abs(julianday(o.created_at) - julianday(posts.created_at)) * 86400 <= ?)"
        " WHERE id > ? AND text_hash IS NOT NULL AND author IS NOT NULL"
        " AND duplicate_of IS NULL",
        [CROSSPOST_WINDOW_S, after_id],
    )


def _add_extra_brands(db: Database, posts: Sequence[Post]) -> None:
    """Record every brand beyond a post's first, for new posts and already stored ones alike:
    the same post found again by another source's search for another brand is about both."""
    rows = [(brand, p.platform, p.platform_id, brand)  # the first too: a post stored earlier
            for p in posts if len(p.brands) > 1 for brand in p.brands]  # may have another
    if rows:
        db.conn.executemany(
            "INSERT OR IGNORE INTO post_extra_brands (post_id, brand) SELECT id, ? FROM posts"
            " WHERE platform = ? AND platform_id = ? AND coalesce(brand, '') != ?", rows)


def store_page(db: Database, source: str, page: Page, now: datetime) -> int:
    """Store a page's posts, rejects and cursor in ONE transaction; returns how many were new.

    Posts already stored (same platform + id) are left untouched, so re-imports and overlapping
    polls are harmless; the cursor moves only together with the posts it covers. A new post whose
    text another post already has (within an hour) is linked to it as a cross-post.
    """
    stamp = to_iso(now)
    with immediate(db):
        last_id = db.execute("SELECT coalesce(max(id), 0) FROM posts").fetchone()[0]
        cur = db.conn.executemany(_INSERT_POST, [_post_values(p, source, stamp) for p in page.posts])
        new = max(cur.rowcount, 0)
        if new:
            _link_crossposts(db, last_id)
        _add_extra_brands(db, page.posts)
        if page.rejected:
            db["rejects"].insert_all(
                {"source": source, "location": r.where, "reason": r.reason, "at": stamp}
                for r in page.rejected
            )
        if page.cursor is not None:
            db["cursors"].upsert(
                {"source": source, "value": json.dumps(page.cursor), "updated_at": stamp},
                pk="source",
            )
    return new


def load_cursor(db: Database, source: str) -> Any:
    row = db.execute("SELECT value FROM cursors WHERE source = ?", [source]).fetchone()
    return json.loads(row[0]) if row else None


def paused_until(db: Database, source: str) -> datetime | None:
    row = db.execute("SELECT paused_until FROM source_state WHERE source = ?", [source]).fetchone()
    return parse_iso(row[0]) if row and row[0] else None


def pause_end(db: Database, source: str, now: datetime) -> datetime | None:
    """When a paused source may poll again, proof against a clock that was set back.

    A pause is a wait that began when it was recorded (``updated_at``). If the clock now reads
    earlier than that, it was set back since (or ran ahead then): the wait is moved to start now
    (and saved), so a pause never lasts longer than the wait it was given.
    """
    row = db.execute("SELECT paused_until, updated_at FROM source_state WHERE source = ?",
                     [source]).fetchone()
    if not row or not row[0]:
        return None
    until = parse_iso(row[0])
    if not row[1] or now >= parse_iso(row[1]):
        return until
    until = now + (until - parse_iso(row[1]))
    with immediate(db):
        db.execute("UPDATE source_state SET paused_until = ?, updated_at = ?"
                   " WHERE source = ? AND updated_at = ?", [to_iso(until), to_iso(now), source,
                                                           row[1]])
    return until


def pause_source(db: Database, source: str, until: datetime | None, reason: str,
                 now: datetime) -> None:
    """Pause a source until ``until`` (None resumes it); kept across restarts and cron runs."""
    with immediate(db):
        db["source_state"].upsert(
            {"source": source, "paused_until": to_iso(until) if until else None,
             "reason": reason[:500] if until else None, "updated_at": to_iso(now)},
            pk="source",
        )


def posts_to_score(db: Database, model: str, version: str, limit: int) -> list[dict[str, Any]]:
    """Posts without a score from this model version, oldest first."""
    sql = (
        "SELECT id, text, lang FROM posts p WHERE NOT EXISTS (SELECT 1 FROM scores s "
        "WHERE s.post_id = p.id AND s.model = ? AND s.model_version = ?) ORDER BY id LIMIT ?"
    )
    return [dict(r) for r in db.query(sql, [model, version, limit])]


def save_scores(
    db: Database, score_rows: Sequence[tuple[int, Score, str | None]], now: datetime
) -> int:
    """Insert ``(post_id, score, lang)`` rows; a re-score by the same model version is ignored."""
    stamp = to_iso(now)
    rows = [
        (pid, s.model, s.model_version, s.sentiment, s.p_negative, s.p_neutral, s.p_positive,
         s.urgency, lang, stamp)
        for pid, s, lang in score_rows
    ]
    with immediate(db):
        cur = db.conn.executemany(
            "INSERT INTO scores (post_id, model, model_version, sentiment, p_negative, p_neutral,"
            " p_positive, urgency, lang, scored_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(post_id, model, model_version) DO NOTHING",
            rows,
        )
    return max(cur.rowcount, 0)


EXTRA_BRANDS_SQL = (  # a post's extra brands as one column, joined by the unit separator
    "(SELECT group_concat(brand, char(31)) FROM post_extra_brands WHERE post_id = p.id)"
)
_JOINED = (
    "SELECT s.id AS score_id, s.sentiment, s.p_negative, s.p_neutral, s.p_positive, s.urgency,"  # noqa: S608
    f" s.model, s.model_version, {EXTRA_BRANDS_SQL} AS also_brands, p.* FROM scores s"
    " JOIN posts p ON p.id = s.post_id"
)


def scores_to_evaluate(db: Database, limit: int) -> list[dict[str, Any]]:
    """Scores the rules stage has not looked at yet, joined with their posts."""
    sql = f"{_JOINED} WHERE s.rules_at IS NULL ORDER BY s.id LIMIT ?"
    return [dict(r) for r in db.query(sql, [limit])]


def post_from_row(row: dict[str, Any]) -> Post:
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
    return Score(
        sentiment=row["sentiment"], p_negative=row["p_negative"], p_neutral=row["p_neutral"],
        p_positive=row["p_positive"], urgency=row["urgency"], model=row["model"],
        model_version=row["model_version"],
    )


def start_run(db: Database, stage: str, target: str, now: datetime) -> int:
    with immediate(db):
        return int(
            db["runs"].insert(
                {"stage": stage, "target": target, "started_at": to_iso(now), "status": "running"}
            ).last_pk
        )


def close_interrupted_runs(db: Database, now: datetime) -> int:
    """Mark runs left 'running' by a killed or crashed process as 'interrupted'. Only called
    by a process holding the run lock, so no run is really in progress; without this,
    ``listener status`` would show a stage as running forever after a SIGKILL."""
    with immediate(db):
        cursor = db.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
            " WHERE status = 'running'",
            [to_iso(now), "the process stopped before this run finished (killed or crashed)"],
        )
        return cursor.rowcount


def finish_run(
    db: Database, run_id: int, now: datetime, *, items: int, error: str | None = None
) -> None:
    status = "error" if error else "ok"
    with immediate(db):
        db["runs"].update(
            run_id,
            {"finished_at": to_iso(now), "status": status, "items": items, "error": error},
        )
