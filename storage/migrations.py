"""Schema migrations: an ordered list of named steps, each applied once, in its own transaction.

A new schema change is a new function appended to :data:`MIGRATIONS`; never edit an applied one.
Applied names are recorded in ``_migrations`` so ``listener db migrate`` is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database

from storage.tx import immediate


def _m001_initial(db: Database) -> None:
    """Posts, cursors, scores, the alert outbox, delivery attempts, rejects and runs."""
    db["posts"].create(
        {
            "id": int, "platform": str, "platform_id": str, "source": str, "brand": str,
            "kind": str, "url": str, "author": str, "author_followers": int, "text": str,
            "lang": str, "rating": float, "created_at": str, "collected_at": str, "raw": str,
        },
        pk="id",
        not_null={"platform", "platform_id", "text", "created_at", "collected_at"},
    )
    db["posts"].create_index(["platform", "platform_id"], unique=True)
    db["posts"].create_index(["created_at"])
    db["posts"].create_index(["source", "created_at"])
    db["posts"].create_index(["brand", "created_at"])
    db["cursors"].create({"source": str, "value": str, "updated_at": str}, pk="source")
    db["scores"].create(
        {
            "id": int, "post_id": int, "model": str, "model_version": str, "sentiment": str,
            "p_negative": float, "p_neutral": float, "p_positive": float, "urgency": float,
            "lang": str, "scored_at": str, "rules_at": str,
        },
        pk="id",
        foreign_keys=[("post_id", "posts", "id")],
        not_null={"post_id", "model", "model_version", "sentiment"},
    )
    db["scores"].create_index(["post_id", "model", "model_version"], unique=True)
    # the rules stage scans only scores it has not evaluated yet
    db.execute("CREATE INDEX idx_scores_rules_pending ON scores(id) WHERE rules_at IS NULL")
    db["alerts"].create(
        {
            "id": str, "post_id": int, "score_id": int, "rule": str, "destination": str,
            "status": str, "priority": str, "attempts": int, "next_attempt_at": str,
            "last_error": str, "remote_id": str, "created_at": str, "delivered_at": str,
        },
        pk="id",
        foreign_keys=[("post_id", "posts", "id"), ("score_id", "scores", "id")],
        not_null={"post_id", "rule", "destination", "status", "created_at"},
        defaults={"attempts": 0},
    )
    db["alerts"].create_index(["status", "next_attempt_at"])
    db["alerts"].create_index(["post_id"])
    db["deliveries"].create(
        {
            "id": int, "alert_id": str, "attempt": int, "at": str, "outcome": str,
            "status_code": int, "error": str, "remote_id": str, "duration_ms": float,
        },
        pk="id",
        foreign_keys=[("alert_id", "alerts", "id")],
    )
    db["deliveries"].create_index(["alert_id"])
    db["rejects"].create(
        {"id": int, "source": str, "location": str, "reason": str, "at": str}, pk="id"
    )
    db["runs"].create(
        {
            "id": int, "stage": str, "target": str, "started_at": str, "finished_at": str,
            "status": str, "items": int, "error": str,
        },
        pk="id",
    )
    db["runs"].create_index(["stage", "started_at"])


def _m002_source_state(db: Database) -> None:
    """Per-source pause (rate limits, monthly caps) that survives restarts and cron runs."""
    db["source_state"].create(
        {"source": str, "paused_until": str, "reason": str, "updated_at": str}, pk="source"
    )


def _m003_crossposts(db: Database) -> None:
    """Link cross-posted identical text: a hash of the normalised text, and the first post."""
    db["posts"].add_column("text_hash", str)
    db["posts"].add_column("duplicate_of", int)
    db["posts"].create_index(["text_hash", "created_at"])


def _m004_reports_and_threads(db: Database) -> None:
    """Alerts not about one post (spikes, digests), and the conversation a post belongs to.

    ``reports`` holds what a spike or digest says; its alerts live in the same outbox (same
    retries, list and retry commands), so ``alerts.post_id``/``score_id`` become nullable and an
    alert points at either a post or a report. ``posts.thread`` lets Slack thread follow-ups.
    """
    db["posts"].add_column("thread", str)
    db["posts"].create_index(["platform", "thread"])
    db["reports"].create(
        {
            "id": str, "kind": str, "name": str, "brand": str, "source": str,
            "window_start": str, "window_end": str, "title": str, "payload": str,
            "chart_png": bytes, "created_at": str,
        },
        pk="id",
        not_null={"kind", "name", "title", "payload", "created_at"},
    )
    db["reports"].create_index(["kind", "created_at"])
    db["alerts"].add_column("report_id", str)
    db["alerts"].transform(
        not_null={"post_id": False},
        add_foreign_keys=[("report_id", "reports", "id")],
    )
    db["alerts"].create_index(["report_id"], if_not_exists=True)


MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_source_state", _m002_source_state),
    ("003_crossposts", _m003_crossposts),
    ("004_reports_and_threads", _m004_reports_and_threads),
]


def applied(db: Database) -> set[str]:
    if "_migrations" not in db.table_names():
        return set()
    return {row["name"] for row in db["_migrations"].rows}


def migrate(db: Database) -> list[str]:
    """Apply pending migrations in order; returns the names applied now."""
    done: list[str] = []
    for name, step in MIGRATIONS:
        with immediate(db):
            # re-read inside the write lock: two processes starting at once must not both apply
            if name in applied(db):
                continue
            if "_migrations" not in db.table_names():
                db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
            step(db)
            db["_migrations"].insert(
                {"name": name, "applied_at": db.execute("SELECT datetime('now')").fetchone()[0]}
            )
        done.append(name)
    return done


def pending(db: Database) -> list[str]:
    have = applied(db)
    return [name for name, _ in MIGRATIONS if name not in have]
