"""The alerts in the outbox, read back for people: listed newest first with optional filters,
counted per destination and status, and the destinations and rules to filter by.

Read-only. :mod:`storage.outbox` writes and delivers these rows (the daemon's path); these
reads are what a person looks at, so they live apart from it rather than in it. They were
``storage/dashboard.py``'s, named for the screen that shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from storage.engine import Db, pick


@dataclass(frozen=True)
class AlertFilter:
    status: str | None = None
    destination: str | None = None
    rule: str | None = None


def alerts(db: Db, f: AlertFilter, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Outbox rows, newest first, with a post excerpt or the report's title; the page's rows
    are picked from the alerts table alone, then joined. A post's alert carries the language
    of the score it was raised on, whether the model knew it, and the model that scored it."""
    wanted = [(column, value) for column, value in
              (("status", f.status), ("destination", f.destination), ("rule", f.rule)) if value]
    where = " AND ".join(f"{column} = ?" for column, _ in wanted)  # column names: constants
    # how the page's rows are found again: SQLite's rowid (the table's own b-tree, the fastest
    # way back); PostgreSQL has no rowid, and the primary key, id, is indexed there
    address = pick(db, sqlite="rowid", postgresql="id")
    sql = (
        "SELECT a.id, a.created_at, a.rule, a.destination, a.status, a.priority, a.attempts,"  # noqa: S608
        " a.next_attempt_at, a.delivered_at, a.last_error, a.remote_id, a.post_id, a.report_id,"
        " substr(p.text, 1, 160) AS excerpt, r.title AS report_title,"
        " coalesce(s.lang, p.lang) AS lang, s.language_supported, s.scored_by"
        f" FROM (SELECT {address} AS rid FROM alerts{' WHERE ' + where if where else ''}"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?) page"
        f" JOIN alerts a ON a.{address} = page.rid LEFT JOIN posts p ON p.id = a.post_id"
        " LEFT JOIN scores s ON s.id = a.score_id"
        " LEFT JOIN reports r ON r.id = a.report_id ORDER BY a.created_at DESC, a.id DESC"
    )
    return [dict(r) for r in db.query(sql, [*(v for _, v in wanted), limit, offset])]


def alert_counts(db: Db) -> list[dict[str, Any]]:
    """Alerts per destination and status: the outbox at a glance."""
    return [dict(r) for r in db.query(
        "SELECT destination, status, count(*) AS n FROM alerts GROUP BY 1, 2 ORDER BY 1, 2")]


def alert_names(db: Db) -> dict[str, list[str]]:
    """Destinations and rules that have alerts, for the filter menus."""
    return {
        column: [r[0] for r in db.execute(
            f"SELECT DISTINCT {column} FROM alerts ORDER BY 1 LIMIT 200").fetchall()]  # noqa: S608
        for column in ("destination", "rule")
    }


# -- ``listener alerts list`` and ``listener alerts retry`` ----------------------------------

AlertSort = Literal["newest", "priority"]
_LISTED = (
    "SELECT a.id, a.rule, a.destination, a.status, a.attempts, a.last_error, a.created_at,"
    " a.priority, p.platform, p.platform_id, r.kind AS report_kind FROM alerts a"
    " LEFT JOIN posts p ON p.id = a.post_id LEFT JOIN reports r ON r.id = a.report_id"
)
_PRIORITY_ORDER = "CASE a.priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END"
# the alerts table's column names (a pick: SQLite's PRAGMA, PostgreSQL's catalogue)
_COLUMNS_SQLITE = "SELECT name FROM pragma_table_info('alerts')"
_COLUMNS_PG = ("SELECT column_name FROM information_schema.columns"
               " WHERE table_schema = current_schema() AND table_name = 'alerts'")


@dataclass(frozen=True)
class ListedAlert:
    """One alert as the terminal lists it: what it is about and where it stands."""

    id: str
    rule: str
    destination: str
    status: str
    attempts: int
    last_error: str | None
    created_at: str
    priority: str | None
    platform: str | None  # the post's; None for a report's alert
    platform_id: str | None
    report_kind: str | None  # the report's; None for a post's alert


def listed(db: Db, status: str | None, limit: int, sort: AlertSort) -> list[ListedAlert]:
    """Alerts newest first, or by priority — high, normal, low, then ``alerts.rank`` (urgency ×
    reach) where the schema has it — then newest. Alerts queued together (one batch shares a
    time) come newest post first, not in id (hash) order."""
    where = " WHERE a.status = ?" if status else ""
    # a report's alert has no post: NULLS LAST is SQLite's order for DESC, not PostgreSQL's
    newest = "a.created_at DESC, p.created_at DESC NULLS LAST, a.id"
    order = newest
    if sort == "priority":
        has_rank = any(r[0] == "rank" for r in db.execute(
            pick(db, sqlite=_COLUMNS_SQLITE, postgresql=_COLUMNS_PG)))
        order = f"{_PRIORITY_ORDER}, {'a.rank DESC, ' if has_rank else ''}{newest}"
    sql = f"{_LISTED}{where} ORDER BY {order} LIMIT ?"  # constant clauses; values bound
    params: list[Any] = [status] if status else []
    return [ListedAlert(**dict(r)) for r in db.query(sql, [*params, limit])]


def failed_ids(db: Db) -> list[str]:
    """Every parked alert: what ``listener alerts retry`` re-queues without ids."""
    return [r["id"] for r in db.query("SELECT id FROM alerts WHERE status = 'failed'")]


def with_prefix(db: Db, prefix: str, limit: int = 6) -> list[tuple[str, str]]:
    """``(id, status)`` of the alerts whose id starts with the lowercase hex ``prefix``.

    Ids are lowercase hex, so every id with the prefix sorts in ``[prefix, prefix + 'g')``:
    a range the primary key answers, unlike ``LIKE``."""
    return [(r["id"], r["status"]) for r in db.query(
        "SELECT id, status FROM alerts WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
        [prefix, prefix + "g", limit])]
