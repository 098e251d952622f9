"""What the queue page reads beyond :mod:`storage.triage` (issue 18): whether posts arrived
since it was drawn, and which of the posts a change names exist.

Arrivals are told apart by post id, not by time: ids only grow as posts are stored, while a
post's ``created_at`` is when it was written, often long before it was collected. The page
remembers the newest queue row it was drawn with (:func:`newest`) and asks how many rows past
it match its filters (:func:`arrivals`) — with the queue's own filter clauses, so the number
agrees with what a reload shows. Both reads walk triage's primary key from its end: a handful
of rows per question, however long the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.engine import Db
from storage.triage import QueueFilter
from storage.triage import _where as queue_where  # the queue's filter clauses, exactly

ARRIVALS_CAP = 500  # counted up to here ("500+ new"): nobody reads more at once


@dataclass(frozen=True)
class Arrivals:
    """Queue rows past ``since`` that a filter shows: how many (up to the cap) and the newest
    one's id (``since`` itself when none arrived)."""

    count: int
    newest_id: int


def newest(db: Db) -> int:
    """The newest queue row's post id (0 for an empty queue)."""
    row = db.execute("SELECT max(post_id) FROM triage").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def arrivals(db: Db, f: QueueFilter, since: int, cap: int = ARRIVALS_CAP) -> Arrivals:
    """The rows the filter ``f`` shows whose post id is above ``since``."""
    where, params = queue_where(db, f)
    clause = f"{where} AND t.post_id > ?" if where else " WHERE t.post_id > ?"
    sql = (f"SELECT t.post_id FROM triage t{clause}"  # noqa: S608 (constant clauses)
           " ORDER BY t.post_id DESC LIMIT ?")
    ids = [int(r[0]) for r in db.execute(sql, [*params, since, cap]).fetchall()]
    return Arrivals(len(ids), ids[0] if ids else since)


def existing(db: Db, post_ids: Sequence[int]) -> set[int]:
    """Which of these posts exist (a change to many posts is refused whole when one is
    missing: nothing is changed rather than part of it)."""
    ids = sorted(set(post_ids))
    if not ids:
        return set()
    marks = ", ".join("?" * len(ids))
    rows = db.execute(f"SELECT id FROM posts WHERE id IN ({marks})", ids)  # noqa: S608 (placeholders)
    return {int(r[0]) for r in rows.fetchall()}
