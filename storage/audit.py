"""The audit log: who changed what, when, and from where (issue 18). Rows are only added.

Callers record an entry in the same transaction as the change it describes (``immediate``
nests), so a change and its entry are stored together or not at all. ``detail`` is a small JSON
object of what changed (``{"from": "new", "to": "handled"}``); it never holds a secret —
passwords and tokens are not passed here. ``actor`` is a user's name, ``token`` (the shared
``serve.token``), ``local`` (a dashboard without log-in) or ``cli:<os user>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.core.models import to_iso
from storage.engine import Db
from storage.tx import immediate

_COLUMNS = "id, at, actor, action, target, detail, address"
PAGE = 200


@dataclass(frozen=True)
class Entry:
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    address: str | None


@dataclass(frozen=True)
class AuditFilter:
    """What the admin's audit page and its CSV export narrow to (all optional)."""

    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in '.': 'post.' = every post change
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def record(db: Db, actor: str, action: str, now: datetime, *, target: str | None = None,
           detail: Mapping[str, Any] | None = None, address: str | None = None) -> None:
    """Add one entry (joining the caller's transaction when there is one)."""
    text = json.dumps(dict(detail), ensure_ascii=False, sort_keys=True) if detail else None
    with immediate(db):
        db.execute("INSERT INTO audit_log (at, actor, action, target, detail, address)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   [to_iso(now), actor, action, target, text, address])


def _where(f: AuditFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if f.actor:
        clauses.append("actor = ?")
        params.append(f.actor)
    if f.action and f.action.endswith("."):
        clauses.append("substr(action, 1, ?) = ?")
        params += [len(f.action), f.action]
    elif f.action:
        clauses.append("action = ?")
        params.append(f.action)
    if f.target:
        clauses.append("target = ?")
        params.append(f.target)
    if f.since:
        clauses.append("at >= ?")
        params.append(to_iso(f.since))
    if f.until:
        clauses.append("at < ?")
        params.append(to_iso(f.until))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _entry(row: Any) -> Entry:
    return Entry(int(row[0]), str(row[1]), str(row[2]), str(row[3]), row[4],
                 json.loads(row[5]) if row[5] else {}, row[6])


def entries(db: Db, f: AuditFilter, *, limit: int = PAGE, before_id: int | None = None
            ) -> list[Entry]:
    """The newest entries first; ``before_id`` pages back past the last one shown."""
    where, params = _where(f)
    if before_id is not None:
        where += (" AND" if where else " WHERE") + " id < ?"
        params.append(before_id)
    rows = db.execute(f"SELECT {_COLUMNS} FROM audit_log{where}"  # noqa: S608 (clauses are constants)
                      " ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall()
    return [_entry(row) for row in rows]


def every_entry(db: Db, f: AuditFilter, chunk: int = 5000) -> Iterator[Entry]:
    """Every matching entry, oldest first, read in chunks (the CSV export streams them)."""
    where, params = _where(f)
    after = 0
    while True:
        clause = where + (" AND" if where else " WHERE") + " id > ?"
        rows = db.execute(f"SELECT {_COLUMNS} FROM audit_log{clause}"  # noqa: S608 (constants)
                          " ORDER BY id LIMIT ?", [*params, after, chunk]).fetchall()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = int(rows[-1][0])


def actions(db: Db) -> list[str]:
    """The actions recorded so far (the audit page's filter lists them)."""
    return [str(r[0]) for r in db.execute(
        "SELECT DISTINCT action FROM audit_log ORDER BY action").fetchall()]
