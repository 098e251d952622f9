"""PostgreSQL's schema (:mod:`storage.migrations_pg`) against SQLite's, on real servers.

SQLite's migrated schema is the reference: every table, column, key, CHECK and index it has must
exist alike on PostgreSQL, and every trigger must leave the same rows behind. Each trigger's
scenario runs on both engines, statement by statement, and the rows the triggers keep (rollups,
triage queue, search matches) are compared after each statement.

The server is the session's (``pg_server`` in tests/conftest.py: ``LISTENER_TEST_POSTGRES_URL``
when set, else a private cluster from the distribution's binaries; skipped when neither is
there). Each test gets an empty database of its own, dropped afterwards.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (.[postgresql])")

from storage import migrations_pg  # noqa: E402
from storage.db import open_db  # noqa: E402
from storage.migrations_pg import PG_MIGRATIONS, migrate_pg, pending_pg  # noqa: E402
from storage.migrations_pg_references import CHECKED_REFERENCES  # noqa: E402
from storage.migrations_pg_scores import NAME as SCORE_STATEMENT  # noqa: E402
from storage.migrations_pg_scores import REPLACED  # noqa: E402
from tests.pg_server import Server  # noqa: E402

Step = tuple[str, Sequence[Any]]


def _admin(server: Server, statement: str) -> None:
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(statement.encode())


@pytest.fixture
def pg_url(pg_server: Server) -> Iterator[str]:
    """An empty UTF8 database of this test's own (the schema needs UTF8: see migrations_pg)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    _admin(pg_server, f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
    yield pg_server.database_url(name)
    _admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg(pg_url: str) -> Iterator[Any]:
    """An autocommit connection (as storage.postgres opens them) to a migrated database."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate_pg(conn)
        yield conn


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """The reference: an SQLite database with every migration applied."""
    db = open_db(tmp_path / "reference.db")
    yield db.conn
    db.close()


# -- the schema, compared by introspection ----------------------------------------------------

_TYPES = {"INTEGER": {"bigint", "integer"}, "REAL": {"double precision"}, "TEXT": {"text"},
          "BLOB": {"bytea"}}
# PostgreSQL's own: the triage row's search document and its index (posts_fts's part)
_PG_ONLY_COLUMNS = {("triage", "search_vector")}
_PG_ONLY_INDEXES = {"idx_triage_search"}


def _sqlite_tables(lite: sqlite3.Connection) -> list[str]:
    return [r[0] for r in lite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'posts_fts%'"
        " AND name NOT LIKE 'sqlite_%' AND name != 'score_batch' ORDER BY name")]
    # score_batch: SQLite's gate for batches of scores (PostgreSQL has a statement trigger)


def _predicate(text: str | None) -> str:
    """A partial index's WHERE, spelled alike for both engines (PostgreSQL adds casts, parens)."""
    return re.sub(r"[()\s]|::text", "", (text or "").lower())


def _sqlite_indexes(lite: sqlite3.Connection) -> dict[str, tuple[str, tuple[str, ...], bool, str]]:
    found = {}
    for table in _sqlite_tables(lite):
        for _, name, unique, origin, _ in lite.execute(f"PRAGMA index_list({table})"):
            if origin != "c":  # primary keys and UNIQUE constraints: compared as keys
                continue
            columns = tuple(r[2] for r in lite.execute(f"PRAGMA index_info({name})"))
            sql = lite.execute("SELECT sql FROM sqlite_master WHERE name = ?", [name]).fetchone()[0]
            where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else None
            found[name] = (table, columns, bool(unique), _predicate(where))
    return found


_PG_INDEXES = """
SELECT i.relname, t.relname, array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o)
       JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.o),
       x.indisunique, pg_get_expr(x.indpred, x.indrelid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = current_schema()::regnamespace AND NOT x.indisprimary
"""
_PG_COLUMNS = """
SELECT column_name, data_type, is_nullable = 'NO', column_default, is_identity = 'YES'
FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s
ORDER BY ordinal_position
"""
_PG_KEY = """
SELECT array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.contype = 'p'
"""
_PG_FOREIGN_KEYS = """
SELECT a.attname, f.relname, b.attname FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_class f ON f.oid = c.confrelid
JOIN pg_attribute b ON b.attrelid = c.confrelid AND b.attnum = c.confkey[1]
WHERE c.conrelid = %s::regclass AND c.contype = 'f'
"""
_PG_CHECKS = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass" \
             " AND contype = 'c'"


def _checks(definitions: Sequence[str]) -> set[tuple[str, frozenset[str]]]:
    """Each CHECK as (its column, the values it allows): ``x IN ('a', 'b')`` on SQLite,
    ``x = ANY (ARRAY['a'::text, ...])`` on PostgreSQL."""
    return {(re.findall(r"[a-z_]+", d)[0], frozenset(re.findall(r"'(\w+)'", d)))
            for d in definitions}


def test_baseline_has_every_sqlite_table_column_key_and_index(
    lite: sqlite3.Connection, pg: Any
) -> None:
    for table in _sqlite_tables(lite):
        info = lite.execute(f"PRAGMA table_info({table})").fetchall()
        columns = pg.execute(_PG_COLUMNS, [table]).fetchall()
        assert columns, f"{table}: no such table on PostgreSQL"
        names = [c[0] for c in columns if (table, c[0]) not in _PG_ONLY_COLUMNS]
        assert names == [c[1] for c in info], f"{table}: columns (in order)"
        by_name = {c[0]: c for c in columns}
        for _, name, decl, notnull, default, pk in info:
            _, pg_type, pg_notnull, pg_default, identity = by_name[name]
            where = f"{table}.{name}"
            assert pg_type in _TYPES[decl.upper()], f"{where}: {decl} became {pg_type}"
            # SQLite's text primary keys are nullable (a legacy quirk); PostgreSQL's never are
            assert pg_notnull == bool(notnull or pk), f"{where}: NOT NULL"
            assert (pg_default or "").strip("'") == (default or "").strip("'"), f"{where}: default"
            assert identity == (name == "id" and decl == "INTEGER" and pk == 1), f"{where}: identity"
        key = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        assert pg.execute(_PG_KEY, [table]).fetchone()[0] == key, f"{table}: primary key"
        foreign = {(r[3], r[2], r[4]) for r in lite.execute(f"PRAGMA foreign_key_list({table})")}
        # pg014: these two are checked by triggers once a statement, not by foreign keys
        foreign -= {(c, t, k) for table_, c, t, k in CHECKED_REFERENCES if table_ == table}
        assert set(pg.execute(_PG_FOREIGN_KEYS, [table]).fetchall()) == foreign, f"{table}: FKs"
        sql = lite.execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()[0]
        lite_checks = re.findall(r"CHECK \((\w+ IN \([^)]*\))\)", sql)
        pg_checks = [r[0] for r in pg.execute(_PG_CHECKS, [table])]
        assert _checks(pg_checks) == _checks(lite_checks), f"{table}: CHECKs"
    pg_indexes = {r[0]: (r[1], tuple(r[2]), r[3], _predicate(r[4]))
                  for r in pg.execute(_PG_INDEXES)}
    lite_indexes = _sqlite_indexes(lite)
    assert {n: pg_indexes.get(n) for n in lite_indexes} == lite_indexes
    assert set(pg_indexes) - set(lite_indexes) == _PG_ONLY_INDEXES


def _trigger_shapes(definitions: Sequence[str]) -> dict[str, tuple[str, str, str]]:
    """name → (timing, event, table) of each ``CREATE TRIGGER`` text, from either engine."""
    shapes = {}
    for sql in definitions:
        m = re.match(r"CREATE TRIGGER (\w+) (BEFORE|AFTER) (INSERT|UPDATE OF \w+|DELETE)"
                     r" ON (?:\w+\.)?(\w+)", sql)
        assert m, sql
        shapes[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return shapes


def test_every_sqlite_trigger_has_its_counterpart(lite: sqlite3.Connection, pg: Any) -> None:
    """Same name, table, event and timing; what PostgreSQL does otherwise is said here."""
    lite_shapes = _trigger_shapes([r[0] for r in lite.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger'")])
    pg_shapes = _trigger_shapes([r[0] for r in pg.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal")])
    assert len(lite_shapes) == 15
    # the search document lives on the triage row: removed with it, re-made in one step
    expected = {n: s for n, s in lite_shapes.items()
                if n not in {"triage_fts_delete", "posts_fts_update"}}
    # BEFORE: it sets the row's own search_vector (SQLite's writes posts_fts after the insert)
    expected["triage_fts_insert"] = ("BEFORE", "INSERT", "triage")
    # pg011: the five triggers SQLite runs on each score are one statement trigger here
    for name in REPLACED:
        assert expected.pop(name) == ("AFTER", "INSERT", "scores")
    expected[SCORE_STATEMENT] = ("AFTER", "INSERT", "scores")
    # pg014: what the foreign keys of CHECKED_REFERENCES did, checked by triggers
    expected |= {"triage_posts": ("AFTER", "INSERT", "triage"),
                 "scores_post_update": ("BEFORE", "UPDATE OF post_id", "scores"),
                 "triage_post_update": ("BEFORE", "UPDATE OF post_id", "triage"),
                 "posts_referenced_delete": ("BEFORE", "DELETE", "posts"),
                 "posts_referenced_update": ("BEFORE", "UPDATE OF id", "posts")}
    assert pg_shapes == expected


# -- the ledger: idempotent, and safe when workers start together -----------------------------

def test_migrate_twice_is_a_no_op(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert pending_pg(conn) == [name for name, _ in PG_MIGRATIONS]
        assert migrate_pg(conn) == [name for name, _ in PG_MIGRATIONS]
        rows = conn.execute("SELECT name, applied_at FROM _migrations").fetchall()
    assert [r[0] for r in rows] == [name for name, _ in PG_MIGRATIONS]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows[0][1])  # SQLite's datetime()
    # a connection not in autocommit: nothing applied, and no transaction left open
    with psycopg.connect(pg_url) as conn:
        assert migrate_pg(conn) == [] and pending_pg(conn) == []
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(PG_MIGRATIONS)


def test_two_workers_migrating_at_once_apply_each_step_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow second step widens the race: applied twice, its CREATE TABLE would fail."""
    def slow(conn: Any) -> None:
        conn.execute("SELECT pg_sleep(0.3)")
        conn.execute("CREATE TABLE race_probe (x integer)")

    monkeypatch.setattr(migrations_pg, "PG_MIGRATIONS", [*PG_MIGRATIONS, ("pg999_slow", slow)])
    start = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                start.wait()
                results.append(migrate_pg(conn))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(results) == 2
    applied = sorted(name for names in results for name in names)
    assert applied == [*(name for name, _ in PG_MIGRATIONS), "pg999_slow"]  # each once
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(PG_MIGRATIONS) + 1


def test_a_database_not_in_utf8_is_refused_before_anything_is_created(pg_server: Server) -> None:
    name = f"t_{uuid.uuid4().hex[:16]}"
    _admin(pg_server, f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'SQL_ASCII'"
                      " LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        with psycopg.connect(pg_server.database_url(name), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.RaiseException, match="UTF8"):
                migrate_pg(conn)
            assert conn.execute("SELECT to_regclass('_migrations')").fetchone()[0] is None
            assert conn.execute("SELECT to_regclass('posts')").fetchone()[0] is None
    finally:
        _admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- the triggers: one scenario each, the same rows on both engines ---------------------------

def _post(platform_id: str, created_at: str = "2026-11-20T10:15:00+00:00", *,
          brand: str | None = "acme", source: str | None = "x-main", author: str = "jane",
          followers: int | None = 1500, text: str = "the app is broken and I want a refund",
          lang: str | None = "en") -> Step:
    return ("INSERT INTO posts (platform, platform_id, source, brand, author, author_followers,"
            " text, lang, created_at, collected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ["x", platform_id, source, brand, author, followers, text, lang, created_at,
             "2026-11-20T12:00:00+00:00"])


def _score(post_id: int, sentiment: str, urgency: float, version: str = "1", *,
           lang: str | None = "en", supported: int = 1) -> Step:
    return ("INSERT INTO scores (post_id, model, model_version, sentiment, p_negative, p_neutral,"
            " p_positive, urgency, lang, language_supported, scored_at)"
            " VALUES (?, 'm', ?, ?, 0.8, 0.1, 0.1, ?, ?, ?, '2026-11-20T12:00:00+00:00')",
            [post_id, version, sentiment, urgency, lang, supported])


def _brand(post_id: int, brand: str) -> Step:
    return "INSERT INTO post_extra_brands (post_id, brand) VALUES (?, ?)", [post_id, brand]


def _status(post_id: int, status: str) -> Step:  # storage.triage.set_status's statement
    return ("INSERT INTO post_status (post_id, status, updated_at, by) VALUES (?, ?, ?, 'test')"
            " ON CONFLICT (post_id) DO UPDATE SET status = excluded.status,"
            " updated_at = excluded.updated_at, by = excluded.by",
            [post_id, status, "2026-11-20T12:30:00+00:00"])


SCENARIOS: dict[str, list[Step]] = {
    # a post counts as 'unscored' in its hour's and day's cell; NULL brand and source as ''
    "post_hours_post, post_days_post": [
        _post("1"), _post("2", "2026-11-20T10:59:00+00:00"),
        _post("3", "2026-11-19T23:00:00+00:00", brand=None, source=None),
    ],
    # each score moves its post from the previous score's cell; empty cells go
    "post_hours_score, post_days_score": [
        _post("1"), _post("2"), _score(1, "negative", 0.9), _score(2, "neutral", 0.1),
        _score(1, "positive", 0.2, "2"), _score(2, "neutral", 0.6, "2", supported=0),
        _score(2, "negative", 0.7, "3"),
    ],
    # an extra brand counts under the post's current label ('unscored' before any score)
    "post_hours_extra_brand, post_days_extra_brand": [
        _post("1"), _brand(1, "globex"), _score(1, "negative", 0.8), _brand(1, "initech"),
        _post("2"), _score(2, "neutral", 0.3, supported=0), _brand(2, "globex"),
    ],
    # a new score moves every extra brand's cell; posts without extra brands leave them alone
    "post_hours_extra_score, post_days_extra_score": [
        _post("1"), _brand(1, "globex"), _brand(1, "initech"), _score(1, "negative", 0.9),
        _score(1, "positive", 0.1, "2"), _post("2"), _score(2, "negative", 0.9),
        _post("3", "2026-11-21T01:00:00+00:00"), _brand(3, "globex"),
        _score(3, "neutral", 0.2, supported=0),
    ],
    # the queue holds each post whose newest score is negative, urgent or not understood
    "triage_score": [
        _post("1"), _post("2", followers=0, text="how do I reset it", lang=None),
        _post("3", text="happy customer"), _post("4", followers=-5, text="что-то сломалось"),
        _post("5", author="jane"),
        ("UPDATE posts SET duplicate_of = 1 WHERE id = 5", []),  # a cross-post: left out
        _score(1, "negative", 0.2), _score(2, "neutral", 0.8, lang=None),
        _score(3, "positive", 0.1), _score(4, "positive", 0.1, lang="ru", supported=0),
        _score(5, "negative", 0.9), _score(1, "positive", 0.1, "2"),
        _score(3, "negative", 0.55, "2"),
    ],
    # a status, set before or after the post enters the queue, is the queue row's
    "triage_status_insert, triage_status_update": [
        _post("1"), _post("2"), _score(1, "negative", 0.9), _status(1, "handled"),
        _status(2, "not_relevant"), _score(2, "negative", 0.4), _status(1, "not_relevant"),
        ("UPDATE post_status SET updated_at = 'later' WHERE post_id = 2", []),
        _status(2, "new"),
    ],
}
_CELLS = "bucket, brand, source, sentiment, n, urgent"


def _many(*steps: Step) -> Step:
    """Several single-row INSERTs of one table as one multi-row statement: SQLite's row
    triggers fire once per row, PostgreSQL's (pg005) once for the statement."""
    sql, _ = steps[0]
    head, values = sql.split(" VALUES ", 1)
    return (f"{head} VALUES {', '.join([values] * len(steps))}",
            [param for _, params in steps for param in params])


# pg005: one statement of many posts and scores moves the same cells as row after row
SCENARIOS["statement triggers: many rows in one statement"] = [
    _many(_post("1"), _post("2"), _post("3", "2026-11-21T01:00:00+00:00"),
          _post("4", brand=None, source=None), _post("5", text="what now?")),
    _brand(1, "globex"), _brand(3, "globex"), _brand(3, "initech"),
    _many(_score(1, "negative", 0.9), _score(2, "neutral", 0.2), _score(3, "positive", 0.1),
          _score(4, "neutral", 0.7, supported=0)),
    # two scores of one post in one statement: it moves once, to the last one's cell
    _many(_score(1, "positive", 0.1, "2"), _score(2, "negative", 0.8, "2"),
          _score(1, "neutral", 0.6, "3"), _score(5, "negative", 0.3),
          _score(3, "positive", 0.2, "2")),
    # a post's cell emptied and refilled by one statement
    _many(_score(2, "neutral", 0.2, "3"), _score(4, "negative", 0.9, "2")),
]
_STATE = {
    "post_hours": f"SELECT {_CELLS} FROM post_hours",
    "post_days": f"SELECT {_CELLS} FROM post_days",
    "post_hours_extra": f"SELECT {_CELLS} FROM post_hours_extra",
    "post_days_extra": f"SELECT {_CELLS} FROM post_days_extra",
    "triage": "SELECT post_id, score_id, created_at, brand, source, lang, sentiment, urgency,"
              " followers, rank, status, supported FROM triage",
}


def _run(execute: Callable[[str, Sequence[Any]], Any], query: Callable[[str], list[Any]],
         steps: list[Step]) -> list[dict[str, list[tuple[Any, ...]]]]:
    """What the triggers kept after each step."""
    states = []
    for sql, params in steps:
        execute(sql, params)
        states.append({table: sorted(tuple(r) for r in query(select))
                       for table, select in _STATE.items()})
    return states


def _on_sqlite(lite: sqlite3.Connection) -> tuple[Callable[..., Any], Callable[[str], list[Any]]]:
    return lite.execute, lambda sql: lite.execute(sql).fetchall()


def _on_pg(pg: Any) -> tuple[Callable[..., Any], Callable[[str], list[Any]]]:
    # the scenarios' SQL holds no literal '?' or '%': placeholders are the only ones
    return (lambda sql, params: pg.execute(sql.replace("?", "%s"), params),
            lambda sql: pg.execute(sql).fetchall())


@pytest.mark.parametrize("triggers", list(SCENARIOS))
def test_each_trigger_keeps_the_rows_sqlite_keeps(
    triggers: str, lite: sqlite3.Connection, pg: Any
) -> None:
    steps = SCENARIOS[triggers]
    expected = _run(*_on_sqlite(lite), steps)
    assert any(any(state.values()) for state in expected)  # the scenario does something
    assert _run(*_on_pg(pg), steps) == expected


# FTS5 queries (words, "phrases", OR, NOT, prefix*) and the tsquery each one maps to
SEARCHES = [
    ("cafe", "cafe"), ("CAFÉ", "CAFÉ"), ("creme", "creme"), ('"app broken"', "app <-> broken"),
    ("ref*", "ref:*"), ("refund OR brulee", "refund | brulee"),
    ("broken NOT refund", "broken & !refund"), ("москва", "москва"), ("ελλαδα", "ελλαδα"),
    ("ελλάδα", "ελλάδα"), ("viet", "viet"), ("lodz", "lodz"), ("łódź", "łódź"),
]


def test_posts_are_searchable_exactly_while_in_triage(lite: sqlite3.Connection, pg: Any) -> None:
    """SQLite's four posts_fts triggers and PostgreSQL's two give the same matches: a post
    enters the search with the queue, leaves with it, and is found by its current text."""
    ctype = pg.execute("SELECT datctype FROM pg_database"
                       " WHERE datname = current_database()").fetchone()[0]
    if ctype in ("C", "POSIX"):
        pytest.skip("non-ASCII letters fold case only in a database with a UTF-8 LC_CTYPE")
    steps = [
        _post("1", text="Café CRÈME brûlée: the app broken"), _post("2", text="MOSKVA Москва"),
        _post("3", text="Ελλάδα and Việt Nam, a refund please"), _post("4", text="łódź app"),
        _post("5", text="café outside the queue"),
        _score(1, "negative", 0.9), _score(2, "negative", 0.9), _score(3, "neutral", 0.7),
        _score(4, "negative", 0.9), _score(5, "positive", 0.1),
        ("UPDATE posts SET text = 'the app broken, no refund' WHERE id = 2", []),
        ("UPDATE posts SET text = 'crème brûlée' WHERE id = 5", []),  # not in the queue
        _score(4, "positive", 0.1, "2"),  # leaves the queue, and the search
        ("UPDATE posts SET text = text WHERE id = 1", []),
    ]
    (lite_exec, _), (pg_exec, _) = _on_sqlite(lite), _on_pg(pg)
    for sql, params in steps:
        lite_exec(sql, params)
        pg_exec(sql, params)
        for fts5, tsquery in SEARCHES:
            found = {r[0] for r in lite.execute(
                "SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?", [fts5])}
            assert {r[0] for r in pg.execute(
                "SELECT post_id FROM triage"
                " WHERE search_vector @@ to_tsquery('simple', search_fold(%s))", [tsquery])
            } == found, (sql, fts5)
    assert {r[0] for r in pg.execute("SELECT post_id FROM triage WHERE search_vector @@"
                                     " to_tsquery('simple', search_fold('CAFÉ'))")} == {1}


# -- PostgreSQL's own: transactions side by side ---------------------------------------------

# each rollup recounted from scratch (migrations._rollup's backfill): {width} is 13 or 10
_RECOUNT = """
SELECT substr(p.created_at, 1, {width}), coalesce(p.brand, ''), coalesce(p.source, ''),
       coalesce(CASE WHEN s.language_supported = 0 THEN 'unsupported' ELSE s.sentiment END,
                'unscored'), count(*)::integer, coalesce(sum((s.urgency >= 0.5)::integer), 0)::integer
FROM posts p LEFT JOIN scores s ON s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)
GROUP BY 1, 2, 3, 4
"""


def _exact(pg: Any) -> None:
    """The rollups are what a recount from scratch says; the queue row is the newest score's
    (when that one belongs in the queue)."""
    for table, width in (("post_hours", 13), ("post_days", 10)):
        assert set(pg.execute(f"SELECT {_CELLS} FROM {table}").fetchall()) == set(
            pg.execute(_RECOUNT.format(width=width)).fetchall()), table
    assert pg.execute("SELECT post_id, score_id FROM triage").fetchall() == pg.execute(
        "SELECT post_id, id FROM scores s WHERE id = (SELECT max(id) FROM scores"
        " WHERE post_id = s.post_id) AND (sentiment = 'negative' OR urgency >= 0.5"
        " OR language_supported = 0)").fetchall()


def _side_by_side(pg_url: str, first: Step, second: Step) -> None:
    """``first`` in a transaction left open, ``second`` in another one meanwhile: once the
    second is seen waiting for a lock, the first commits, then the second."""
    with psycopg.connect(pg_url, autocommit=True) as one, \
            psycopg.connect(pg_url, autocommit=True) as other:
        one.execute("BEGIN")
        _on_pg(one)[0](*first)
        errors: list[BaseException] = []

        def meanwhile() -> None:
            try:
                other.execute("BEGIN")
                _on_pg(other)[0](*second)
                other.execute("COMMIT")
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        thread = threading.Thread(target=meanwhile)
        thread.start()
        deadline = time.monotonic() + 10
        try:
            while one.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                              [other.info.backend_pid]).fetchone()[0] != "Lock":
                assert time.monotonic() < deadline, "the second transaction never waited"
                time.sleep(0.02)
        finally:
            one.execute("COMMIT")
            thread.join(timeout=10)
    assert errors == []


def test_two_transactions_scoring_one_post_take_turns(pg: Any, pg_url: str) -> None:
    """Without the post's lock the second score would read the first as not there yet and
    count the post twice (moving it out of a cell the first already left)."""
    for step in (_post("1"), _score(1, "negative", 0.9)):
        _on_pg(pg)[0](*step)
    _side_by_side(pg_url, _score(1, "negative", 0.8, "2"), _score(1, "negative", 0.6, "3"))
    _exact(pg)
    assert pg.execute(f"SELECT {_CELLS} FROM post_days").fetchall() == [
        ("2026-11-20", "acme", "x-main", "negative", 1, 1)]


def test_a_status_set_while_the_post_enters_the_queue_reaches_its_row(
    pg: Any, pg_url: str
) -> None:
    """Without the post's lock the status would update no queue row (the new one is not
    committed yet) and the new row would carry the status read before it was set."""
    _on_pg(pg)[0](*_post("1"))
    _side_by_side(pg_url, _score(1, "negative", 0.9), _status(1, "handled"))
    assert pg.execute("SELECT post_id, status FROM triage").fetchall() == [(1, "handled")]


def test_a_score_older_than_the_newest_moves_nothing(pg: Any) -> None:
    """Ids come from a sequence before the post's lock is taken, so the transaction that
    commits second may hold the lower id: the newest score stays the current one."""
    execute = _on_pg(pg)[0]
    execute(*_post("1"))
    sql, params = _score(1, "positive", 0.1, "new")
    execute(sql.replace("INSERT INTO scores (", "INSERT INTO scores (id, ").replace(
        "VALUES (", "VALUES (100, "), params)
    sql, params = _score(1, "negative", 0.9, "old")
    execute(sql.replace("INSERT INTO scores (", "INSERT INTO scores (id, ").replace(
        "VALUES (", "VALUES (50, "), params)
    assert pg.execute(f"SELECT {_CELLS} FROM post_hours").fetchall() == [
        ("2026-11-20T10", "acme", "x-main", "positive", 1, 0)]
    assert pg.execute("SELECT count(*) FROM triage").fetchone()[0] == 0
    _exact(pg)


def test_pg010_has_the_score_statement_write_the_search_documents(pg: Any) -> None:
    """The queue rows a score statement adds carry their document from the statement itself
    (set-based), not from the per-row trigger, which now only fills a row inserted without."""
    from storage.migrations_pg_bulk import triage_with_documents

    score_fn, _ = triage_with_documents()
    assert "supported, search_vector)" in score_fn and "search_document(p.text)" in score_fn
    # since pg011 the statement is score_statement's
    source = pg.execute("SELECT prosrc FROM pg_proc WHERE proname = 'score_statement'"
                        ).fetchone()[0]
    assert "search_document(p.text)" in source


def test_pg010s_faster_search_document_is_pg001s_exactly(pg: Any) -> None:
    """pg010 redefines search_fold and search_document for speed (ASCII skips the fold, one
    regular expression instead of translate): every document and every folded query must be
    what pg001's definitions made, or stored search vectors would no longer match queries."""
    import random
    import string

    from storage.migrations_pg import _PUNCTUATION

    spaces = "'" + " " * len(string.punctuation) + "'"
    old_fold = ("normalize(regexp_replace(normalize(x, NFD), '([A-Za-z])[\\u0300-\\u036f]+',"
                " '\\1', 'g'), NFC)")
    punctuation = _PUNCTUATION.replace("%", "%%")  # a literal %, not a placeholder
    old_document = f"to_tsvector('simple', translate({old_fold}, {punctuation}, {spaces}))"
    pool = (string.printable + "éÉèñÑüßøłŁçÇåÅæ" + "\u0301\u0308\u0327\u0300\u036f\u0370"
            + "ΑλφαΣσςКириллица" + "中文日本語한국어" + "😡🔥👍🏽" + "\u00a0\u2028\u200b\ufeff"
            + "ſKİıﬀ" + "“”‘’–—…«»¿¡")
    rng = random.Random(10)
    texts = ["", "café", "CAFE\u0301 déjà-vu", "foo@bar.com", "a.b_c-d", "naïve 1.5e3 x/y",
             "e\u0301\u0301", "\u0301a", "Ωm\u0301", "http://x.y/z?q=1&r=2#frag", "@user #tag",
             string.punctuation, "ǅ ǈ Ǆ"]
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    differ = pg.execute(
        f"SELECT x FROM unnest(%s::text[]) AS x WHERE search_fold(x) IS DISTINCT FROM {old_fold}"
        f" OR search_document(x) IS DISTINCT FROM {old_document}", [texts]).fetchall()
    assert differ == []
    assert pg.execute("SELECT search_document('Déjà-vu, café!')::text").fetchone()[0] == (
        "'cafe':3 'deja':1 'vu':2")
