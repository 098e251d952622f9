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


def _rollup(table: str, width: int) -> tuple[str, ...]:
    """A rollup of posts per time bucket (the first ``width`` characters of created_at: 13 for
    the hour, 10 for the day), brand, source and current sentiment, kept by triggers.

    A post counts as 'unscored' until classified; each new score moves it from the bucket of
    its previous score (or 'unscored') to its own, and cells that fall to zero are removed.
    """
    key = f"substr(created_at, 1, {width})"
    cell = (f"SELECT {key}, coalesce(brand, ''), coalesce(source, '') FROM posts"  # noqa: S608
            " WHERE id = new.post_id")
    before = "FROM scores WHERE post_id = new.post_id AND id < new.id ORDER BY id DESC LIMIT 1"
    upsert = "ON CONFLICT (bucket, brand, source, sentiment) DO UPDATE SET"
    return (
        f"CREATE TABLE {table} (bucket TEXT NOT NULL, brand TEXT NOT NULL, source TEXT NOT NULL,"
        " sentiment TEXT NOT NULL, n INTEGER NOT NULL, urgent INTEGER NOT NULL,"
        " PRIMARY KEY (bucket, brand, source, sentiment)) WITHOUT ROWID",
        f"CREATE TRIGGER {table}_post AFTER INSERT ON posts BEGIN INSERT INTO {table} VALUES"  # noqa: S608 (constants)
        f" (substr(new.created_at, 1, {width}), coalesce(new.brand, ''), coalesce(new.source, ''),"
        f" 'unscored', 1, 0) {upsert} n = n + 1; END",
        f"CREATE TRIGGER {table}_score AFTER INSERT ON scores BEGIN"  # noqa: S608 (constants)
        f" UPDATE {table} SET n = n - 1, urgent = urgent - coalesce((SELECT urgency >= 0.5 {before}),"
        f" 0) WHERE (bucket, brand, source) = ({cell})"
        f" AND sentiment = coalesce((SELECT sentiment {before}), 'unscored');"
        f" DELETE FROM {table} WHERE n = 0 AND (bucket, brand, source) = ({cell});"
        f" INSERT INTO {table} SELECT {key}, coalesce(brand, ''), coalesce(source, ''),"
        f" new.sentiment, 1, new.urgency >= 0.5 FROM posts WHERE id = new.post_id"
        f" {upsert} n = n + 1, urgent = urgent + excluded.urgent; END",
        f"INSERT INTO {table} SELECT substr(p.created_at, 1, {width}), coalesce(p.brand, ''),"  # noqa: S608 (constants)
        " coalesce(p.source, ''), coalesce(s.sentiment, 'unscored'), count(*),"
        " coalesce(sum(s.urgency >= 0.5), 0) FROM posts p LEFT JOIN scores s"
        " ON s.id = (SELECT max(id) FROM scores WHERE post_id = p.id) GROUP BY 1, 2, 3, 4",
    )


# rank = urgency x reach, reach = digits of the follower count (0-9 → 1, 1,000 → 4, 1M → 7)
_TRIAGE_ROW = (
    "SELECT p.id, s.id, p.created_at, p.brand, p.source, coalesce(s.lang, p.lang), s.sentiment,"
    " s.urgency, max(coalesce(p.author_followers, 0), 0), s.urgency * length(CAST(max(coalesce("
    "p.author_followers, 0), 0) AS TEXT)), coalesce((SELECT status FROM post_status"
    " WHERE post_id = p.id), 'new') FROM posts p JOIN scores s ON s.post_id = p.id"
    " WHERE p.duplicate_of IS NULL AND (s.sentiment = 'negative' OR s.urgency >= 0.5)"
)
_DASHBOARD = (
    # full-text search over the text of posts in the triage queue (the only place it is used);
    # external content, so the text is stored once, in posts. Indexing when a post enters the
    # queue, not when it is collected, keeps ingest fast: most posts never need searching.
    "CREATE VIRTUAL TABLE posts_fts USING fts5(text, content='posts', content_rowid='id',"
    " tokenize='unicode61 remove_diacritics 2')",
    # hourly cells for views per hour (up to a week), daily cells for views per day or week
    *_rollup("post_hours", 13),
    *_rollup("post_days", 10),
    # what a human decided about a post, and what they said the model got wrong or right
    "CREATE TABLE post_status (post_id INTEGER PRIMARY KEY REFERENCES posts(id),"
    " status TEXT NOT NULL CHECK (status IN ('new', 'handled', 'not_relevant')),"
    " updated_at TEXT NOT NULL, by TEXT)",
    "CREATE TABLE feedback (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL REFERENCES posts(id),"
    " field TEXT NOT NULL CHECK (field IN ('sentiment', 'urgency', 'relevance')),"
    " label TEXT NOT NULL, predicted TEXT, model TEXT, model_version TEXT,"
    " created_at TEXT NOT NULL, by TEXT)",
    "CREATE INDEX idx_feedback_post ON feedback (post_id, field)",
    "CREATE INDEX idx_feedback_created ON feedback (created_at)",
    # the triage queue: posts whose current score is negative or help-seeking (urgency >= 0.5),
    # cross-posts left out, carrying every column the queue filters and sorts on (status is a
    # copy of post_status's), so a queue query reads one covering index and joins nothing
    "CREATE TABLE triage (post_id INTEGER PRIMARY KEY REFERENCES posts(id),"
    " score_id INTEGER NOT NULL, created_at TEXT NOT NULL, brand TEXT, source TEXT, lang TEXT,"
    " sentiment TEXT NOT NULL, urgency REAL NOT NULL, followers INTEGER NOT NULL,"
    " rank REAL NOT NULL, status TEXT NOT NULL)",
    # a post is searchable while it is in triage ('delete' must repeat the indexed text, and
    # only rows that were indexed may be deleted: triage rows are exactly those)
    "CREATE TRIGGER triage_fts_insert AFTER INSERT ON triage BEGIN"
    " INSERT INTO posts_fts (rowid, text) SELECT id, text FROM posts WHERE id = new.post_id; END",
    "CREATE TRIGGER triage_fts_delete AFTER DELETE ON triage BEGIN"
    " INSERT INTO posts_fts (posts_fts, rowid, text)"
    " SELECT 'delete', id, text FROM posts WHERE id = old.post_id; END",
    "CREATE TRIGGER posts_fts_update BEFORE UPDATE OF text ON posts"
    " WHEN EXISTS (SELECT 1 FROM triage WHERE post_id = old.id) BEGIN"
    " INSERT INTO posts_fts (posts_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER posts_fts_updated AFTER UPDATE OF text ON posts"
    " WHEN EXISTS (SELECT 1 FROM triage WHERE post_id = new.id) BEGIN"
    " INSERT INTO posts_fts (rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER triage_score AFTER INSERT ON scores BEGIN"  # noqa: S608 (constants)
    " DELETE FROM triage WHERE post_id = new.post_id;"
    f" INSERT INTO triage {_TRIAGE_ROW} AND s.id = new.id; END",
    "CREATE TRIGGER triage_status_insert AFTER INSERT ON post_status BEGIN"
    " UPDATE triage SET status = new.status WHERE post_id = new.post_id; END",
    "CREATE TRIGGER triage_status_update AFTER UPDATE OF status ON post_status BEGIN"
    " UPDATE triage SET status = new.status WHERE post_id = new.post_id; END",
    f"INSERT INTO triage {_TRIAGE_ROW}"  # noqa: S608 (constants)
    " AND s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)",
    # covering indexes: a time range (any filter mix), or a language then a time range; the
    # second also lists the languages present by skipping through it
    "CREATE INDEX idx_triage_queue ON triage"
    " (created_at, rank, brand, source, lang, sentiment, status)",
    "CREATE INDEX idx_triage_lang ON triage"
    " (lang, created_at, rank, brand, source, sentiment, status)",
    # the post page lists cross-posts; the alerts page sorts by time and counts per destination
    "CREATE INDEX idx_posts_duplicate_of ON posts (duplicate_of) WHERE duplicate_of IS NOT NULL",
    "CREATE INDEX idx_alerts_created ON alerts (created_at, id)",
    "CREATE INDEX idx_alerts_destination ON alerts (destination, status)",
)


def _m005_dashboard(db: Database) -> None:
    """The dashboard: full-text search, hourly and daily rollups, the triage queue, each post's
    status (new / handled / not relevant) and reviewers' feedback on the model.

    Rollups and queue are kept by triggers, so they change in the same transaction as the posts
    and scores they summarise, whatever code writes those. A post's current score is its newest
    (highest id). Caveat: sqlite-utils ``transform()`` rebuilds a table and drops its triggers,
    so a later migration that transforms posts, scores or post_status must recreate them.
    Statements run one by one: ``executescript`` would commit the migration's transaction.
    """
    for statement in _DASHBOARD:
        db.execute(statement)


MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_source_state", _m002_source_state),
    ("003_crossposts", _m003_crossposts),
    ("004_reports_and_threads", _m004_reports_and_threads),
    ("005_dashboard", _m005_dashboard),
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
