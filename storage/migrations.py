"""Schema migrations: an ordered list of named steps, each applied once, in its own transaction.

A new schema change is a new function appended to :data:`MIGRATIONS`; never edit an applied one.
Applied names are recorded in ``_migrations`` so ``listener db migrate`` is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database

from storage.score_batches import GATE_TABLE, TRIAGE_ROW, TRIGGERS_ON, label
from storage.tx import immediate


def _m001_initial(db: Database) -> None:
    """Posts, cursors, scores, the alert outbox, delivery attempts, rejects and runs."""
    db.table("posts").create(
        {
            "id": int, "platform": str, "platform_id": str, "source": str, "brand": str,
            "kind": str, "url": str, "author": str, "author_followers": int, "text": str,
            "lang": str, "rating": float, "created_at": str, "collected_at": str, "raw": str,
        },
        pk="id",
        not_null={"platform", "platform_id", "text", "created_at", "collected_at"},
    )
    db.table("posts").create_index(["platform", "platform_id"], unique=True)
    db.table("posts").create_index(["created_at"])
    db.table("posts").create_index(["source", "created_at"])
    db.table("posts").create_index(["brand", "created_at"])
    db.table("cursors").create({"source": str, "value": str, "updated_at": str}, pk="source")
    db.table("scores").create(
        {
            "id": int, "post_id": int, "model": str, "model_version": str, "sentiment": str,
            "p_negative": float, "p_neutral": float, "p_positive": float, "urgency": float,
            "lang": str, "scored_at": str, "rules_at": str,
        },
        pk="id",
        foreign_keys=[("post_id", "posts", "id")],
        not_null={"post_id", "model", "model_version", "sentiment"},
    )
    db.table("scores").create_index(["post_id", "model", "model_version"], unique=True)
    # the rules stage scans only scores it has not evaluated yet
    db.execute("CREATE INDEX idx_scores_rules_pending ON scores(id) WHERE rules_at IS NULL")
    db.table("alerts").create(
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
    db.table("alerts").create_index(["status", "next_attempt_at"])
    db.table("alerts").create_index(["post_id"])
    db.table("deliveries").create(
        {
            "id": int, "alert_id": str, "attempt": int, "at": str, "outcome": str,
            "status_code": int, "error": str, "remote_id": str, "duration_ms": float,
        },
        pk="id",
        foreign_keys=[("alert_id", "alerts", "id")],
    )
    db.table("deliveries").create_index(["alert_id"])
    db.table("rejects").create(
        {"id": int, "source": str, "location": str, "reason": str, "at": str}, pk="id"
    )
    db.table("runs").create(
        {
            "id": int, "stage": str, "target": str, "started_at": str, "finished_at": str,
            "status": str, "items": int, "error": str,
        },
        pk="id",
    )
    db.table("runs").create_index(["stage", "started_at"])


def _m002_source_state(db: Database) -> None:
    """Per-source pause (rate limits, monthly caps) that survives restarts and cron runs."""
    db.table("source_state").create(
        {"source": str, "paused_until": str, "reason": str, "updated_at": str}, pk="source"
    )


def _m003_crossposts(db: Database) -> None:
    """Link cross-posted identical text: a hash of the normalised text, and the first post."""
    db.table("posts").add_column("text_hash", str)
    db.table("posts").add_column("duplicate_of", int)
    db.table("posts").create_index(["text_hash", "created_at"])


def _m004_reports_and_threads(db: Database) -> None:
    """Alerts not about one post (spikes, digests), and the conversation a post belongs to.

    ``reports`` holds what a spike or digest says; its alerts live in the same outbox (same
    retries, list and retry commands), so ``alerts.post_id``/``score_id`` become nullable and an
    alert points at either a post or a report. ``posts.thread`` lets Slack thread follow-ups.
    """
    db.table("posts").add_column("thread", str)
    db.table("posts").create_index(["platform", "thread"])
    db.table("reports").create(
        {
            "id": str, "kind": str, "name": str, "brand": str, "source": str,
            "window_start": str, "window_end": str, "title": str, "payload": str,
            "chart_png": bytes, "created_at": str,
        },
        pk="id",
        not_null={"kind", "name", "title", "payload", "created_at"},
    )
    db.table("reports").create_index(["kind", "created_at"])
    db.table("alerts").add_column("report_id", str)
    db.table("alerts").transform(
        not_null={"post_id": False},
        add_foreign_keys=[("report_id", "reports", "id")],
    )
    db.table("alerts").create_index(["report_id"], if_not_exists=True)


def _rollup(table: str, width: int, label: str = "sentiment", when: str = "") -> tuple[str, ...]:
    """A rollup of posts per time bucket (the first ``width`` characters of created_at: 13 for
    the hour, 10 for the day), brand, source and current sentiment, kept by triggers.

    A post counts as 'unscored' until classified; each new score moves it from the bucket of
    its previous score (or 'unscored') to its own, and cells that fall to zero are removed.
    ``label`` is the scores' expression for the cell (migration 009 passes
    :func:`storage.score_batches.label`); ``when``, the score trigger's condition (016's gate).
    """
    key = f"substr(created_at, 1, {width})"
    new_label = label.replace("language_supported", "new.language_supported").replace(
        "sentiment END", "new.sentiment END") if label != "sentiment" else "new.sentiment"
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
        f"CREATE TRIGGER {table}_score AFTER INSERT ON scores{when and f' WHEN {when}'} BEGIN"  # noqa: S608 (constants)
        f" UPDATE {table} SET n = n - 1, urgent = urgent - coalesce((SELECT urgency >= 0.5 {before}),"
        f" 0) WHERE (bucket, brand, source) = ({cell})"
        f" AND sentiment = coalesce((SELECT {label} {before}), 'unscored');"
        f" DELETE FROM {table} WHERE n = 0 AND (bucket, brand, source) = ({cell});"
        f" INSERT INTO {table} SELECT {key}, coalesce(brand, ''), coalesce(source, ''),"
        f" {new_label}, 1, new.urgency >= 0.5 FROM posts WHERE id = new.post_id"
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


def _extra_rollup(table: str, width: int, label: str = "sentiment", when: str = ""
                  ) -> tuple[str, ...]:
    """Rollup cells for a post's extra brands (``post_extra_brands``), kept like ``_rollup``'s.

    A post about two brands counts once in ``post_hours``/``post_days`` (under its first brand,
    so totals stay right) and once more here for every other brand, so a view of one brand, or
    one line per brand, counts it for each (``storage.trends`` adds the two tables up then).
    ``label``, ``when``: as for :func:`_rollup`.
    """
    new_label = label.replace("language_supported", "new.language_supported").replace(
        "sentiment END", "new.sentiment END") if label != "sentiment" else "new.sentiment"
    key = f"substr(p.created_at, 1, {width})"
    cells = (f"SELECT {key}, e.brand, coalesce(p.source, '') FROM post_extra_brands e"  # noqa: S608
             " JOIN posts p ON p.id = e.post_id WHERE e.post_id = new.post_id")
    before = "FROM scores WHERE post_id = new.post_id AND id < new.id ORDER BY id DESC LIMIT 1"
    current = ("FROM scores WHERE post_id = new.post_id ORDER BY id DESC LIMIT 1")
    upsert = "ON CONFLICT (bucket, brand, source, sentiment) DO UPDATE SET"
    return (
        f"CREATE TABLE {table} (bucket TEXT NOT NULL, brand TEXT NOT NULL, source TEXT NOT NULL,"
        " sentiment TEXT NOT NULL, n INTEGER NOT NULL, urgent INTEGER NOT NULL,"
        " PRIMARY KEY (bucket, brand, source, sentiment)) WITHOUT ROWID",
        # a brand added to a post: counted under the post's current sentiment
        f"CREATE TRIGGER {table}_brand AFTER INSERT ON post_extra_brands BEGIN"  # noqa: S608 (constants)
        f" INSERT INTO {table} SELECT substr(p.created_at, 1, {width}), new.brand,"
        f" coalesce(p.source, ''), coalesce((SELECT {label} {current}), 'unscored'), 1,"
        f" coalesce((SELECT urgency >= 0.5 {current}), 0) FROM posts p WHERE p.id = new.post_id"
        f" {upsert} n = n + 1, urgent = urgent + excluded.urgent; END",
        # a new score moves each extra brand's cell, as the main rollup's trigger does
        f"CREATE TRIGGER {table}_score AFTER INSERT ON scores"  # noqa: S608 (constants)
        f" WHEN {when and f'{when} AND '}EXISTS (SELECT 1 FROM post_extra_brands"
        " WHERE post_id = new.post_id) BEGIN"
        f" UPDATE {table} SET n = n - 1, urgent = urgent - coalesce((SELECT urgency >= 0.5"
        f" {before}), 0) WHERE sentiment = coalesce((SELECT {label} {before}), 'unscored')"
        f" AND (bucket, brand, source) IN ({cells});"
        f" DELETE FROM {table} WHERE n = 0 AND (bucket, brand, source) IN ({cells});"
        f" INSERT INTO {table} SELECT {key}, e.brand, coalesce(p.source, ''), {new_label}, 1,"
        " new.urgency >= 0.5 FROM post_extra_brands e JOIN posts p ON p.id = e.post_id"
        f" WHERE e.post_id = new.post_id {upsert} n = n + 1, urgent = urgent + excluded.urgent;"
        " END",
    )


# a triage row for one post (the migration 005 queue), for posts unlinked from a cross-post
_TRIAGE_UNLINKED = (
    f"INSERT OR IGNORE INTO triage {_TRIAGE_ROW}"  # noqa: S608 (constants)
    " AND s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)"
    " AND p.id IN (SELECT post_id FROM _unlinked)"
)


def _m006_trustworthy_alerts(db: Database) -> None:
    """Alerts a person can trust (issue 13): extra brands per post, priority rank on alerts,
    incidents, and cross-posts limited to one author.

    - ``post_extra_brands``: brands beyond ``posts.brand`` whose queries accept the post, with
      their rollup cells (``post_hours_extra``, ``post_days_extra``);
    - ``alerts.rank``: urgency × reach (the queue's rank), so a cap keeps and dispatch sends the
      most important alerts first; reports rank by their priority;
    - ``incidents`` / ``incident_posts`` / ``post_vectors``: many customers reporting the same
      problem within minutes become one incident per brand, alerted once and then updated;
    - identical text from *different* authors is no longer a cross-post: such links are undone
      and those posts enter the triage queue (they are different customers).
    """
    statements = (
        "CREATE TABLE post_extra_brands (post_id INTEGER NOT NULL REFERENCES posts(id),"
        " brand TEXT NOT NULL, PRIMARY KEY (post_id, brand)) WITHOUT ROWID",
        "CREATE INDEX idx_post_extra_brands_brand ON post_extra_brands (brand, post_id)",
        *_extra_rollup("post_hours_extra", 13),
        *_extra_rollup("post_days_extra", 10),
        "ALTER TABLE alerts ADD COLUMN rank REAL NOT NULL DEFAULT 0",
        "UPDATE alerts SET rank = coalesce((SELECT s.urgency * length(CAST(max(coalesce("
        "p.author_followers, 0), 0) AS TEXT)) FROM scores s JOIN posts p ON p.id = s.post_id"
        " WHERE s.id = alerts.score_id), CASE priority WHEN 'high' THEN 100 WHEN 'normal'"
        " THEN 1 ELSE 0 END)",
        "CREATE INDEX idx_alerts_group ON alerts (status, destination, post_id, report_id)",
        # when a destination last took an alert (health: a destination that keeps failing)
        "CREATE INDEX idx_alerts_delivered ON alerts (destination, status, delivered_at)",
        "CREATE TABLE incidents (id TEXT PRIMARY KEY, brand TEXT NOT NULL,"
        " opened_at TEXT NOT NULL, first_at TEXT NOT NULL, last_at TEXT NOT NULL,"
        " reports INTEGER NOT NULL, customers INTEGER NOT NULL, centroid BLOB NOT NULL,"
        " updated_at TEXT NOT NULL)",
        "CREATE INDEX idx_incidents_brand ON incidents (brand, last_at)",
        "CREATE TABLE incident_posts (incident_id TEXT NOT NULL REFERENCES incidents(id),"
        " post_id INTEGER NOT NULL REFERENCES posts(id), author TEXT, added_at TEXT NOT NULL,"
        " announced TEXT, PRIMARY KEY (incident_id, post_id)) WITHOUT ROWID",
        "CREATE INDEX idx_incident_posts_post ON incident_posts (post_id)",
        "CREATE INDEX idx_incident_posts_unannounced ON incident_posts (incident_id)"
        " WHERE announced IS NULL",
        # what incident grouping compares: recent posts that need a person, per brand
        "CREATE TABLE post_vectors (post_id INTEGER NOT NULL REFERENCES posts(id),"
        " brand TEXT NOT NULL, created_at TEXT NOT NULL, author TEXT, vector BLOB NOT NULL,"
        " PRIMARY KEY (post_id, brand)) WITHOUT ROWID",
        "CREATE INDEX idx_post_vectors_brand ON post_vectors (brand, created_at)",
        # cross-posts are one author's: undo links between different (or unknown) authors
        "CREATE TEMP TABLE _unlinked AS SELECT p.id AS post_id FROM posts p"
        " JOIN posts o ON o.id = p.duplicate_of WHERE p.author IS NULL OR o.author IS NULL"
        " OR lower(p.author) != lower(o.author)",
        "UPDATE posts SET duplicate_of = NULL WHERE id IN (SELECT post_id FROM _unlinked)",
        _TRIAGE_UNLINKED,
        "DROP TABLE _unlinked",
    )
    for statement in statements:
        db.execute(statement)


def _m007_run_heartbeats(db: Database) -> None:
    """A run shows progress (a page collected, a batch scored, a message sent) in
    ``heartbeat_at``: a run that has shown none for long is stuck, and ``/healthz`` says so.
    Running runs are few; the partial index finds them without reading every run ever made."""
    db.execute("ALTER TABLE runs ADD COLUMN heartbeat_at TEXT")
    db.execute("CREATE INDEX idx_runs_running ON runs (status) WHERE status = 'running'")


def _m008_web_sessions(db: Database) -> None:
    """Dashboard log-ins kept server-side, so logging out (or an operator) can end one: a
    signed cookie alone stays valid until it expires. ``id`` is the SHA-256 of the random id
    the cookie carries (a copy of the database yields no usable cookie); ``user_id`` stays
    NULL for the shared ``serve.token`` until named users exist."""
    db.execute("CREATE TABLE web_sessions (id TEXT PRIMARY KEY, user_id INTEGER,"
               " created_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT)"
               " WITHOUT ROWID")
    db.execute("CREATE INDEX idx_web_sessions_expires ON web_sessions (expires_at)")


def _triggers(statements: tuple[str, ...]) -> list[str]:
    return [x for x in statements if x.startswith("CREATE TRIGGER") and "ON scores" in x
            or x.startswith("CREATE TRIGGER") and "ON post_extra_brands" in x]


def _triage_score(when: str = "") -> str:
    """The queue's row trigger from migration 009 on (its row: also posts in a language no
    model covers, a person must read them); ``when``: as for :func:`_rollup`."""
    return (f"CREATE TRIGGER triage_score AFTER INSERT ON scores{when and f' WHEN {when}'} BEGIN"  # noqa: S608 (constants)
            " DELETE FROM triage WHERE post_id = new.post_id;"
            f" INSERT INTO triage {TRIAGE_ROW} AND s.id = new.id; END")


def _m009_languages(db: Database) -> None:
    """Languages (issue 15): each score says whether a configured model covers the post's
    language (``language_supported``) and which model scored it when the configured one routes
    by language (``scored_by``). Posts no model covers enter the triage queue whatever their
    score (a person must read them; ``triage.supported`` = 0) and count apart in the rollups,
    in an 'unsupported' cell instead of their sentiment's. Existing scores are all supported:
    nothing before this release knew otherwise.
    """
    rollups = (*_rollup("post_hours", 13, label()), *_rollup("post_days", 10, label()),
               *_extra_rollup("post_hours_extra", 13, label()),
               *_extra_rollup("post_days_extra", 10, label()))
    statements = (
        "ALTER TABLE scores ADD COLUMN language_supported INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE scores ADD COLUMN scored_by TEXT",
        "ALTER TABLE triage ADD COLUMN supported INTEGER NOT NULL DEFAULT 1",
        *(f"DROP TRIGGER {name}" for name in (
            "post_hours_score", "post_days_score", "post_hours_extra_score",
            "post_days_extra_score", "post_hours_extra_brand", "post_days_extra_brand",
            "triage_score")),
        *_triggers(rollups),
        _triage_score(),
        # the queue's language filter lists languages through idx_triage_lang already; posts
        # scored without understanding are found by this one
        "CREATE INDEX idx_triage_unsupported ON triage (created_at) WHERE supported = 0",
    )
    for statement in statements:
        db.execute(statement)


def _m010_workers(db: Database) -> None:
    """Many workers on one database (issue 17): ``leases`` says who holds what until when — a
    source being polled, a singleton stage (rules, reports), the posts a classify worker is
    scoring, the alerts a dispatch worker is sending — so work is claimed, not locked globally,
    and a worker that dies loses nothing: its leases expire and another takes the work.
    ``workers`` is each process's heartbeat for ``listener status``. A single SQLite process
    writes both too, so the two engines keep one schema.
    """
    db.execute("CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL,"
               " until TEXT NOT NULL, taken_at TEXT NOT NULL)")
    db.execute("CREATE INDEX idx_leases_owner ON leases (owner)")
    db.execute("CREATE TABLE workers (id TEXT PRIMARY KEY, host TEXT NOT NULL,"
               " pid INTEGER NOT NULL, stages TEXT NOT NULL, started_at TEXT NOT NULL,"
               " heartbeat_at TEXT NOT NULL, stopped_at TEXT)")


def _m011_run_workers(db: Database) -> None:
    """Which worker a run belongs to: on a shared database a killed worker's runs stay
    ``running``; the workers still alive close them as interrupted (and ``/healthz`` stops
    counting them as stuck) once that worker has gone quiet."""
    db.execute("ALTER TABLE runs ADD COLUMN worker TEXT")


# issue 18: named people with roles, and what each of them (or a script, or the CLI) changed
_PEOPLE = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL"
    " CHECK (role IN ('admin', 'agent', 'viewer')), password_hash TEXT,"
    " created_at TEXT NOT NULL, disabled_at TEXT, last_login_at TEXT)",
    "CREATE UNIQUE INDEX idx_users_name ON users (name)",
    "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL,"
    " action TEXT NOT NULL, target TEXT, detail TEXT, address TEXT)",
    "CREATE INDEX idx_audit_log_at ON audit_log (at)",
    "CREATE INDEX idx_audit_log_actor ON audit_log (actor, at)",
    "CREATE INDEX idx_audit_log_target ON audit_log (target, at)",
)


def _m012_people(db: Database) -> None:
    """People and the audit log (issue 18). ``users.name`` is the login name, stored lower-case
    (a single-sign-on header and a typed name must meet); ``password_hash`` is an argon2 hash,
    NULL for people who only come through the single-sign-on proxy; a disabled person keeps
    their row, so the audit log's names stay meaningful. ``audit_log`` says who (a user's name,
    ``token`` for the shared token, ``cli:<os user>``), what (``action``: ``post.status``,
    ``user.add``, ``login.failed`` …), on what (``target``: ``post:123``, ``user:jane``), the
    details as JSON, and from which address. Rows are only ever added."""
    for statement in _PEOPLE:
        db.execute(statement)


# issue 18: the statuses a team works a post through (``new`` = nobody has it yet)
_INBOX_STATUSES = "('new', 'assigned', 'replied', 'handled', 'not_relevant')"
_POST_STATUS_013 = (
    "CREATE TABLE post_status (post_id INTEGER PRIMARY KEY REFERENCES posts(id),"
    f" status TEXT NOT NULL CHECK (status IN {_INBOX_STATUSES}), updated_at TEXT NOT NULL,"
    " by TEXT, assignee TEXT, first_response_at TEXT, resolved_at TEXT)"
)
_NOTES = (
    "CREATE TABLE post_notes (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL"
    " REFERENCES posts(id), author TEXT NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE INDEX idx_post_notes_post ON post_notes (post_id, id)",
    "CREATE INDEX idx_post_status_assignee ON post_status (assignee, status)",
    "CREATE INDEX idx_post_status_responded ON post_status (first_response_at)"
    " WHERE first_response_at IS NOT NULL",
)


def _m013_inbox(db: Database) -> None:
    """A queue a team works (issue 18): two more statuses (``assigned``, ``replied``), who has
    the post (``assignee``, a user's name), when it was first answered (``first_response_at``:
    the first move to replied, handled or not relevant) and last resolved (``resolved_at``),
    and internal notes. SQLite cannot change a CHECK in place: the table is rebuilt, its
    triggers (and those of other tables that read it) saved and recreated around the rebuild,
    since renaming a table re-reads every trigger that names it. Posts already handled count
    as answered and resolved when they were handled."""
    saved = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'"
                       " AND sql LIKE '%post_status%'").fetchall()
    names = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                       " AND sql LIKE '%post_status%'").fetchall()
    for (name,) in names:
        db.execute(f"DROP TRIGGER {name}")
    db.execute("ALTER TABLE post_status RENAME TO post_status_012")
    db.execute(_POST_STATUS_013)
    db.execute("INSERT INTO post_status (post_id, status, updated_at, by, first_response_at,"
               " resolved_at) SELECT post_id, status, updated_at, by, CASE WHEN status <> 'new'"
               " THEN updated_at END, CASE WHEN status IN ('handled', 'not_relevant')"
               " THEN updated_at END FROM post_status_012")
    db.execute("DROP TABLE post_status_012")
    for (sql,) in saved:
        db.execute(sql)
    for statement in _NOTES:
        db.execute(statement)


# issue 18: replies written on the post page and sent through the platform, like alerts
_REPLIES = (
    "CREATE TABLE replies (id TEXT PRIMARY KEY, post_id INTEGER NOT NULL REFERENCES posts(id),"
    " account TEXT NOT NULL, platform TEXT NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('awaiting_approval', 'pending', 'sending', 'sent',"
    " 'failed', 'rejected', 'cancelled')), created_at TEXT NOT NULL, approved_by TEXT,"
    " approved_at TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT NOT NULL,"
    " last_error TEXT, remote_id TEXT, remote_url TEXT, sent_at TEXT)",
    "CREATE INDEX idx_replies_post ON replies (post_id, created_at)",
    "CREATE INDEX idx_replies_due ON replies (status, next_attempt_at)",
    "CREATE INDEX idx_replies_approval ON replies (created_at) WHERE status = 'awaiting_approval'",
)


def _m014_replies(db: Database) -> None:
    """Replies to customers, sent through the platform's own API (issue 18). A reply is an
    outbound delivery as an alert is — written first, sent by the dispatch stage, retried,
    never sent twice — but one post may get several (a conversation), so it has a row of its
    own instead of an alert's (rule, post, destination) key. ``account`` names the configured
    write credentials (per platform and brand); ``sending`` with ``attempts`` > 0 after a crash
    means "look on the platform before sending again"; ``remote_id``/``remote_url`` are what the
    platform created."""
    for statement in _REPLIES:
        db.execute(statement)


_QUEUE_ORDER = (
    # the queue's order (rank, newest, id) read from an index, for one status and for all:
    # the first page is the index's first rows that pass the other filters, instead of a sort
    # of every row of the period (a million on a 10-million-post database: bench/dashboard.py)
    "CREATE INDEX idx_triage_status_rank ON triage"
    " (status, rank DESC, created_at DESC, post_id DESC)",
    "CREATE INDEX idx_triage_rank ON triage (rank DESC, created_at DESC, post_id DESC)",
)


def _m015_queue_order(db: Database) -> None:
    """Indexes in the queue's order (see _QUEUE_ORDER)."""
    for statement in _QUEUE_ORDER:
        db.execute(statement)


def _m016_score_batches(db: Database) -> None:
    """Scores saved a batch at a time (:mod:`storage.score_batches`): the gate table, and the
    five row triggers on scores recreated to step aside while it holds a row."""
    rollups = (*_rollup("post_hours", 13, label(), TRIGGERS_ON),
               *_rollup("post_days", 10, label(), TRIGGERS_ON),
               *_extra_rollup("post_hours_extra", 13, label(), TRIGGERS_ON),
               *_extra_rollup("post_days_extra", 10, label(), TRIGGERS_ON))
    statements = (
        GATE_TABLE,
        *(f"DROP TRIGGER {name}" for name in (
            "post_hours_score", "post_days_score", "post_hours_extra_score",
            "post_days_extra_score", "triage_score")),
        *(x for x in rollups if x.startswith("CREATE TRIGGER") and "ON scores" in x),
        _triage_score(TRIGGERS_ON),
    )
    for statement in statements:
        db.execute(statement)


MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_source_state", _m002_source_state),
    ("003_crossposts", _m003_crossposts),
    ("004_reports_and_threads", _m004_reports_and_threads),
    ("005_dashboard", _m005_dashboard),
    ("006_trustworthy_alerts", _m006_trustworthy_alerts),
    ("007_run_heartbeats", _m007_run_heartbeats),
    ("008_web_sessions", _m008_web_sessions),
    ("009_languages", _m009_languages),
    ("010_workers", _m010_workers),
    ("011_run_workers", _m011_run_workers),
    ("012_people", _m012_people),
    ("013_inbox", _m013_inbox),
    ("014_replies", _m014_replies),
    ("015_queue_order", _m015_queue_order),
    ("016_score_batches", _m016_score_batches),
]


def applied(db: Database) -> set[str]:
    if "_migrations" not in db.table_names():
        return set()
    return {row["name"] for row in db.table("_migrations").rows}


def migrate(db: Database) -> list[str]:
    """Apply pending migrations in order; returns the names applied now."""
    done: list[str] = []
    for name, step in MIGRATIONS:
        with immediate(db):
            # re-read inside the write lock: two processes starting at once must not both apply
            if name in applied(db):
                continue
            if "_migrations" not in db.table_names():
                db.table("_migrations").create({"name": str, "applied_at": str}, pk="name")
            step(db)
            db.table("_migrations").insert(
                {"name": name, "applied_at": db.execute("SELECT datetime('now')").fetchone()[0]}
            )
        done.append(name)
    return done


def pending(db: Database) -> list[str]:
    have = applied(db)
    return [name for name, _ in MIGRATIONS if name not in have]
