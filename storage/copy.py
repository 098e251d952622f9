"""``listener db copy``: an SQLite database moved into PostgreSQL, resumable and verified.

What moves: every table of SQLite's schema except ``posts_fts*`` (FTS5's index: PostgreSQL's
search document is ``triage.search_vector``, recomputed here), ``_migrations`` (the target has
its own, applied when it is opened) and SQLite's own ``sqlite_*`` tables. Rows keep their ids;
each identity sequence is then set past the largest id copied, so the next insert gets a new
one. Columns are copied by name (the two schemas list them in different orders).

How it stays exact: rows that triggers derive (the rollups ``post_hours*``/``post_days*``,
``triage``) are copied as SQLite holds them, with the target's triggers off while their
tables are written. ``SET session_replication_role = replica`` would do it for the session
but needs a superuser; instead each chunk's transaction runs ``ALTER TABLE … DISABLE TRIGGER
USER`` on the table it fills and enables them again before it commits, so no other session
ever sees them off (the catalog change is transactional) and a crash leaves them on. That
needs the role to own the tables: the role the listener's migrations ran as, i.e. the owner
of the database, as in a normal deployment; nothing more. Foreign keys (internal triggers,
untouched by ``USER``) stay checked, so tables are filled parents first. (The two references
PostgreSQL checks with triggers of its own, a score's and a queue row's post, are off with
the other triggers while those tables fill: SQLite's foreign keys already held them there.)
Re-deriving the rows with the triggers on instead would give other rollups than SQLite's
wherever SQLite's came from its migrations' backfills, and cost a trigger per row.

How it resumes: each table is read in primary-key order (keyset pages: ``WHERE (key) > (last)
ORDER BY key LIMIT n``, an index walk on SQLite) and written in chunks; each chunk is one
PostgreSQL transaction that COPYs its rows and moves the table's marker in ``_copy_progress``
(last key copied, rows so far). A copy stopped anywhere (Ctrl-C, kill, a lost connection)
has committed whole chunks with their markers, or nothing of a chunk: started again with
``resume=True`` it continues after each table's marker and never writes a row twice. Chosen
over ``ON CONFLICT DO NOTHING`` with key ranges because COPY cannot skip conflicts: each chunk
would have to go through a staging table and an ``INSERT … SELECT``, writing every row twice,
and a conflict needs a unique key, where a marker needs only an order (a table without a
primary key would be read in rowid order).

The source is read in one SQLite read transaction: one snapshot for the whole copy, whatever
the dashboard writes meanwhile (``listener db copy`` holds the run lock, so no pipeline run
writes). A resumed copy checks that the SQLite database is still the one it started from
(per table: rows and last key, recorded when the copy started), since a run in between would
otherwise be half copied. After the last chunk: identity sequences, ``VACUUM (ANALYZE)`` (the
planner's statistics: a freshly filled table has none, and PostgreSQL plans badly without
them), then row counts per table compared with the snapshot's — a mismatch is an error naming
each table — and ``_copy_progress`` is dropped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from listener.core.errors import StorageError
from storage import score_batches
from storage.engine import Db
from storage.migrations_pg_references import CHECKED_REFERENCES
from storage.tx import immediate

CHUNK_ROWS = 10_000  # rows per transaction: a few MB of posts
PROGRESS_TABLE = "_copy_progress"
# one `db copy` at a time into a database ("listecop")
COPY_LOCK_KEY = 0x6C69737465636F70
_NOT_COPIED = ("_migrations", PROGRESS_TABLE, score_batches.GATE)  # the gate: SQLite only
_NOT_COPIED_PREFIXES = ("posts_fts", "sqlite_")
_PROGRESS = (
    f"CREATE TABLE {PROGRESS_TABLE} (table_name TEXT PRIMARY KEY, source TEXT NOT NULL,"
    " total BIGINT NOT NULL, last_in_source TEXT, copied BIGINT NOT NULL DEFAULT 0,"
    " last_key TEXT, done BOOLEAN NOT NULL DEFAULT false, updated_at TIMESTAMPTZ)"
)
_TRIAGE_DOCUMENTS = (  # the search documents of a chunk of triage rows (post ids in a range)
    "UPDATE triage t SET search_vector = search_document(p.text) FROM posts p"  # noqa: S608 (constants)
    " WHERE p.id = t.post_id AND t.post_id BETWEEN ? AND ?"
)

Progress = Callable[[str, int, int], None]
"""``(table, rows copied so far, rows to copy)``, the last two over every table."""


class CopyError(StorageError):
    """The copy cannot start, cannot go on, or does not add up; the message says which table
    and what to do."""


@dataclass(frozen=True)
class Table:
    """One table to copy, as the source's snapshot has it."""

    name: str
    columns: tuple[str, ...]  # SQLite's, copied by name
    key: tuple[str, ...]  # the primary key (else rowid): the order of the copy
    rows: int
    last: str | None  # the last key (JSON): with ``rows``, what a resumed copy checks
    triggers: bool  # the target has user triggers on it: off while it is filled

    @property
    def selected(self) -> tuple[str, ...]:
        """The columns read: the copied ones, then the key where it is not one of them."""
        return self.columns + tuple(k for k in self.key if k not in self.columns)


@dataclass(frozen=True)
class CopyResult:
    tables: dict[str, int]  # rows per table, in the order copied (equal on both sides)
    resumed: bool
    seconds: float


def _lite_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_pg_name = _lite_name  # both quote identifiers alike


def copy_database(
    source: Path, target: str, *, resume: bool = False, chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None, after_chunk: Callable[[str, int], None] | None = None,
    before_verify: Callable[[Db], None] | None = None,
) -> CopyResult:
    """Copy the SQLite database at ``source`` into the PostgreSQL database at ``target``
    (migrated first), which must hold no rows unless ``resume`` continues a copy this
    function started there. ``after_chunk(table, rows)`` is called after each committed
    chunk and ``before_verify(target_db)`` before the counts are compared (tests stop a copy
    half way, or change a table behind its back, through them)."""
    from storage.db import open_db
    from storage.postgres import is_url

    if not is_url(target):
        raise CopyError("the target must be a postgresql:// URL")
    if not source.is_file():
        raise CopyError(f"no SQLite database at {source}; check storage.path in the config")
    if chunk_rows < 1:
        raise CopyError("chunk_rows must be at least 1")
    started = time.monotonic()
    lite = open_db(source)  # migrated like any command's: the schema the target's matches
    try:
        pg = open_db(target)
        try:
            _take_copy_lock(pg)
            lite.conn.execute("BEGIN")  # one snapshot of the source for the whole copy
            try:
                tables = _plan(lite, pg)
                resumed, state = _start(pg, tables, str(source.resolve()), resume)
                total = sum(t.rows for t in tables)
                done = sum(state[t.name][0] for t in tables)
                for table in tables:
                    done = _copy_table(lite, pg, table, state[table.name], chunk_rows, done,
                                       total, progress, after_chunk)
                _set_identities(pg, tables)
                _vacuum(pg, tables)
                if before_verify is not None:
                    before_verify(pg)
                _verify(pg, tables)
                pg.execute(f"DROP TABLE {PROGRESS_TABLE}")
            finally:
                if lite.conn.in_transaction:
                    lite.conn.execute("ROLLBACK")
        finally:
            pg.close()  # also gives the copy lock back
    finally:
        lite.close()
    return CopyResult({t.name: t.rows for t in tables}, resumed, time.monotonic() - started)


def _take_copy_lock(pg: Db) -> None:
    """One copy at a time into a database (a session lock: gone with the connection)."""
    if not pg.execute("SELECT pg_try_advisory_lock(?)", [COPY_LOCK_KEY]).fetchone()[0]:
        raise CopyError("another listener db copy is writing into this database")


def _copied(name: str) -> bool:
    return name not in _NOT_COPIED and not name.startswith(_NOT_COPIED_PREFIXES)


def _plan(lite: Db, pg: Db) -> list[Table]:
    """The tables to copy, parents before the tables whose foreign keys point at them, each
    checked against the target's schema."""
    names = [r[0] for r in lite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()]
    theirs: dict[str, set[str]] = {}
    for row in pg.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema()").fetchall():
        theirs.setdefault(row[0], set()).add(row[1])
    triggered = {r[0] for r in pg.execute(
        "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
    ).fetchall()}
    tables: dict[str, Table] = {}
    for name in filter(_copied, names):
        info = lite.execute("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid",
                            [name]).fetchall()
        columns = tuple(r[0] for r in info)
        if name not in theirs:
            raise CopyError(f"table {name} of the SQLite database has no counterpart in "
                            "PostgreSQL: the database is newer than this listener's "
                            "PostgreSQL schema; upgrade the listener first")
        missing = [c for c in columns if c not in theirs[name]]
        if missing:
            raise CopyError(f"table {name}: PostgreSQL has no column {', '.join(missing)}; "
                            "upgrade the listener first")
        key = tuple(r[0] for r in sorted((r for r in info if r[1]), key=lambda r: r[1]))
        key = key or ("rowid",)
        rows = lite.execute(f"SELECT count(*) FROM {_lite_name(name)}").fetchone()[0]  # noqa: S608 (quoted names)
        last = _last_key(lite, name, key)
        tables[name] = Table(name, columns, key, int(rows), last, name in triggered)
    return [tables[name] for name in _parents_first(pg, list(tables))]


def _last_key(lite: Db, name: str, key: Sequence[str]) -> str | None:
    order = ", ".join(f"{_lite_name(k)} DESC" for k in key)
    row = lite.execute(
        f"SELECT {', '.join(map(_lite_name, key))} FROM {_lite_name(name)}"  # noqa: S608 (quoted names)
        f" ORDER BY {order} LIMIT 1").fetchone()
    return None if row is None else json.dumps(list(row))


def _parents_first(pg: Db, names: list[str]) -> list[str]:
    """``names`` ordered so that every table comes after those its foreign keys reference
    (ties: alphabetical), from the target's constraints and the references it checks with
    triggers (:data:`CHECKED_REFERENCES`)."""
    parents: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in pg.execute(
            "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
            " WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"
    ).fetchall():
        child, parent = child.strip('"'), parent.strip('"')
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    for child, _, parent, _ in CHECKED_REFERENCES:  # foreign keys checked by triggers there
        if child in parents and parent in parents:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(name for name, needs in parents.items() if not needs - set(ordered))
        if not ready:
            raise CopyError(f"foreign keys form a cycle between {', '.join(sorted(parents))}")
        ordered.append(ready[0])
        del parents[ready[0]]
    return ordered


def _start(pg: Db, tables: list[Table], source: str, resume: bool
           ) -> tuple[bool, dict[str, tuple[int, list[Any] | None, bool]]]:
    """Where each table's copy starts: ``(rows copied, last key, done)``. A new copy needs an
    empty target and records its plan; a resumed one checks the plan against the source."""
    if pg.execute("SELECT to_regclass(?)", [PROGRESS_TABLE]).fetchone()[0] is not None:
        if not resume:
            raise CopyError("an earlier listener db copy into this database stopped before it "
                            "finished: run it again with --resume to continue where it stopped")
        return True, _resumed(pg, tables, source)
    full = [t.name for t in tables if pg.execute(
        f"SELECT EXISTS (SELECT 1 FROM {_pg_name(t.name)})").fetchone()[0]]  # noqa: S608 (quoted names)
    if full:
        raise CopyError(f"the PostgreSQL database already holds rows ({', '.join(full)}): db "
                        "copy fills an empty database only (create a new one, or drop this "
                        "one's tables)")
    with immediate(pg):
        pg.execute(_PROGRESS)
        pg.conn.executemany(
            f"INSERT INTO {PROGRESS_TABLE} (table_name, source, total, last_in_source)"  # noqa: S608
            " VALUES (?, ?, ?, ?)", [(t.name, source, t.rows, t.last) for t in tables])
    return False, {t.name: (0, None, False) for t in tables}


def _resumed(pg: Db, tables: list[Table], source: str
             ) -> dict[str, tuple[int, list[Any] | None, bool]]:
    saved = {r["table_name"]: r for r in pg.query(f"SELECT * FROM {PROGRESS_TABLE}")}  # noqa: S608
    sources = {r["source"] for r in saved.values()}
    if sources and sources != {source}:
        raise CopyError(f"the copy to resume was started from {', '.join(sorted(sources))}, "
                        f"not {source}")
    changed = [t.name for t in tables if t.name not in saved
               or (saved[t.name]["total"], saved[t.name]["last_in_source"]) != (t.rows, t.last)]
    if changed or len(saved) != len(tables):
        raise CopyError(
            "the SQLite database changed since the copy started (tables "
            f"{', '.join(changed or sorted(set(saved) - {t.name for t in tables}))}): a run "
            "wrote to it in between, so what was copied is no longer a snapshot of it; empty "
            "the PostgreSQL database (drop and create it) and copy again")
    return {name: (int(r["copied"]), json.loads(r["last_key"]) if r["last_key"] else None,
                   bool(r["done"])) for name, r in saved.items()}


def _copy_table(
    lite: Db, pg: Db, table: Table, state: tuple[int, list[Any] | None, bool], chunk_rows: int,
    done: int, total: int, progress: Progress | None,
    after_chunk: Callable[[str, int], None] | None,
) -> int:
    """Copy what is left of ``table`` chunk by chunk; returns the rows copied over all."""
    copied, last, finished = state
    if progress is not None:
        progress(table.name, done, total)
    if finished:
        return done
    name, keys = _lite_name(table.name), ", ".join(map(_lite_name, table.key))
    selected = ", ".join(map(_lite_name, table.selected))
    at = [table.selected.index(k) for k in table.key]
    first = f"SELECT {selected} FROM {name} ORDER BY {keys} LIMIT ?"  # noqa: S608 (quoted)
    marks = ", ".join("?" * len(table.key))
    after = (f"SELECT {selected} FROM {name} WHERE ({keys}) > ({marks})"  # noqa: S608 (quoted)
             f" ORDER BY {keys} LIMIT ?")
    copy = (f"COPY {_pg_name(table.name)} ({', '.join(map(_pg_name, table.columns))})"
            " FROM STDIN")
    while True:
        rows = lite.execute(after if last is not None else first,
                            [*(last or ()), chunk_rows]).fetchall()
        ended = len(rows) < chunk_rows
        new_last = [rows[-1][i] for i in at] if rows else last
        try:
            with immediate(pg):
                if rows:
                    _write(pg, table, copy, rows, at)
                pg.execute(
                    f"UPDATE {PROGRESS_TABLE} SET copied = copied + ?, last_key = ?,"  # noqa: S608
                    " done = ?, updated_at = now() WHERE table_name = ?",
                    [len(rows), json.dumps(new_last) if new_last is not None else None, ended,
                     table.name])
        except psycopg.Error as exc:
            raise _failed(table, last, exc) from exc
        copied, done, last = copied + len(rows), done + len(rows), new_last
        if progress is not None:
            progress(table.name, done, total)
        if after_chunk is not None and rows:
            after_chunk(table.name, copied)
        if ended:
            return done


def _write(pg: Db, table: Table, copy: str, rows: Sequence[Sequence[Any]], at: list[int]
           ) -> None:
    """One chunk's rows (as selected: the key may follow the copied columns) into the
    target, its triggers off (module docstring), inside the chunk's transaction. A row
    PostgreSQL cannot hold fails the chunk with an error naming that row's key."""
    quoted, width = _pg_name(table.name), len(table.columns)
    if table.triggers:
        pg.execute(f"ALTER TABLE {quoted} DISABLE TRIGGER USER")
    written = 0  # rows handed to the COPY: psycopg refuses a value as it is handed over
    try:
        with pg.conn.raw.cursor() as cur, cur.copy(copy) as stream:
            for row in rows:
                stream.write_row(row[:width])
                written += 1
    except psycopg.DataError as exc:  # a value: psycopg's own check, or the server's
        line = re.search(r"\bline (\d+)", str(exc.diag.context or ""))
        bad = rows[int(line.group(1)) - 1 if line else written]
        raise CopyError(
            f"table {table.name}: the row with key {json.dumps([bad[i] for i in at])} cannot "
            f"be stored in PostgreSQL ({type(exc).__name__}: {exc}); the copy stopped before "
            "that row's chunk — correct the row in the SQLite database, then run db copy "
            "again with --resume (a row deleted instead: copy into a new, empty database)"
        ) from exc
    if table.name == "triage":  # its search document: from posts' text, as its trigger would
        pg.execute(_TRIAGE_DOCUMENTS, [rows[0][at[0]], rows[-1][at[0]]])
    if table.triggers:
        pg.execute(f"ALTER TABLE {quoted} ENABLE TRIGGER USER")


def _failed(table: Table, last: list[Any] | None, exc: psycopg.Error) -> CopyError:
    where = f"after key {json.dumps(last)}" if last is not None else "from its first row"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return CopyError(f"table {table.name}: {exc} — the copy turns the table's triggers off "
                         "while it fills it, which only the table's owner may do: connect as "
                         "the role that owns the database (the one its migrations ran as)")
    return CopyError(f"table {table.name}: the rows {where} could not be copied "
                     f"({type(exc).__name__}: {exc}); nothing of that chunk was kept — fix "
                     "the row in the SQLite database, then run db copy again with --resume")


def _set_identities(pg: Db, tables: list[Table]) -> None:
    """Move every identity sequence past the largest id copied: the next insert gets a new id
    (an empty table's starts at 1)."""
    names = {t.name for t in tables}
    for table, column in pg.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
        if table in names:
            pg.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max({_pg_name(column)}),"  # noqa: S608
                f" 0) + 1, false) FROM {_pg_name(table)}", [_pg_name(table), column])


def _vacuum(pg: Db, tables: list[Table]) -> None:
    """Statistics for the planner and the visibility map, as after any bulk load (outside a
    transaction: VACUUM cannot run inside one)."""
    for table in tables:
        pg.execute(f"VACUUM (ANALYZE) {_pg_name(table.name)}")


def _verify(pg: Db, tables: list[Table]) -> None:
    """Rows per table equal to the source snapshot's, and every triage row searchable."""
    wrong = []
    for table in tables:
        theirs = pg.execute(f"SELECT count(*) FROM {_pg_name(table.name)}").fetchone()[0]  # noqa: S608
        if theirs != table.rows:
            wrong.append(f"{table.name} ({table.rows:,} rows in SQLite, {theirs:,} in "
                         "PostgreSQL)")
    if wrong:
        raise CopyError(f"the copy does not add up: {'; '.join(wrong)}. Something wrote to "
                        "the PostgreSQL database during the copy; do not use it: drop and "
                        "create it, then copy again")
    if any(t.name == "triage" for t in tables):
        missing = pg.execute("SELECT count(*) FROM triage WHERE search_vector IS NULL"
                             ).fetchone()[0]
        if missing:
            raise CopyError(f"triage: {missing:,} rows without their search document")
