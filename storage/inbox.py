"""Working the queue as a team (issue 18): who has a post, notes about it, changes to many
posts at once, and how fast customers were answered.

The status itself is :func:`storage.triage.set_status` (the queue filters on its copy); this
module adds what a team needs around it. Each verb returns what it replaced, so the web layer
can write the audit entry and offer "undo" in the same transaction.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from listener.core.models import parse_iso, to_iso
from storage.engine import Db
from storage.triage import set_status
from storage.tx import immediate

NOTE_MAX = 4000  # characters: an internal note, not a document


@dataclass(frozen=True)
class Holder:
    """A post's status and assignee before a change."""

    status: str
    assignee: str | None


def holder(db: Db, post_id: int) -> Holder:
    row = db.execute("SELECT status, assignee FROM post_status WHERE post_id = ?",
                     [post_id]).fetchone()
    return Holder(str(row[0]), row[1]) if row else Holder("new", None)


def assign(db: Db, post_id: int, assignee: str | None, by: str, now: datetime) -> Holder:
    """Give the post to ``assignee`` (None: to nobody); returns who had it. A new post becomes
    ``assigned``; an assigned one given to nobody is ``new`` again; an answered or resolved
    post keeps its status (it only changes hands)."""
    with immediate(db):
        before = holder(db, post_id)
        if assignee is None and before.status == "assigned":
            set_status(db, post_id, "new", by, now)
        elif assignee is not None and before.status == "new":
            set_status(db, post_id, "assigned", by, now)
        else:
            set_status(db, post_id, before.status, by, now)
        db.execute("UPDATE post_status SET assignee = ? WHERE post_id = ?", [assignee, post_id])
    return before


def restore(db: Db, post_id: int, before: Holder, by: str, now: datetime) -> None:
    """Undo: put back the status and assignee a change replaced."""
    with immediate(db):
        set_status(db, post_id, before.status, by, now)
        db.execute("UPDATE post_status SET assignee = ? WHERE post_id = ?",
                   [before.assignee, post_id])


def bulk_status(db: Db, post_ids: Sequence[int], status: str, by: str, now: datetime
                ) -> dict[int, str]:
    """One status for many posts, all or none; each post's previous status."""
    with immediate(db):
        return {pid: set_status(db, pid, status, by, now) for pid in post_ids}


def bulk_assign(db: Db, post_ids: Sequence[int], assignee: str | None, by: str, now: datetime
                ) -> dict[int, Holder]:
    with immediate(db):
        return {pid: assign(db, pid, assignee, by, now) for pid in post_ids}


@dataclass(frozen=True)
class Note:
    id: int
    post_id: int
    author: str
    text: str
    created_at: str


def add_note(db: Db, post_id: int, author: str, text: str, now: datetime) -> int:
    """An internal note on a post (never sent anywhere); its id."""
    text = text.strip()
    if not text or len(text) > NOTE_MAX:
        raise ValueError(f"a note has 1 to {NOTE_MAX} characters")
    with immediate(db):
        db.execute("INSERT INTO post_notes (post_id, author, text, created_at)"
                   " VALUES (?, ?, ?, ?)", [post_id, author, text, to_iso(now)])
        return int(db.execute("SELECT max(id) FROM post_notes WHERE post_id = ?",
                              [post_id]).fetchone()[0])


def notes(db: Db, post_id: int) -> list[Note]:
    rows = db.execute("SELECT id, post_id, author, text, created_at FROM post_notes"
                      " WHERE post_id = ? ORDER BY id", [post_id]).fetchall()
    return [Note(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


@dataclass(frozen=True)
class ResponseTimes:
    """First-response and resolution times of one brand's or one agent's posts (seconds)."""

    key: str
    answered: int
    first_response_median: float | None
    first_response_p90: float | None
    resolved: int
    resolution_median: float | None
    resolution_p90: float | None


def p90(values: list[float]) -> float | None:
    """The value at 90 % of the sorted times: one of the observed times, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


GROUPS = ("brand", "agent")
# who a post's response counts for: its brand, or the agent who has it (else who answered it)
_KEYS = {"brand": "coalesce(p.brand, '')", "agent": "coalesce(st.assignee, st.by, '')"}


def response_times(db: Db, start: datetime, end: datetime, by: str,
                   brand: str | None = None) -> list[ResponseTimes]:
    """Per brand (``by='brand'``) or per agent (``'agent'``: the post's assignee, else whoever
    answered it) for posts created in [start, end), optionally of one brand's posts. Times are
    from the post's creation — what the customer waited — read as rows and summarised here:
    medians are not SQL on SQLite, and a period's answered posts are thousands, not millions.
    The overview's card, its CSV and the metrics all read this."""
    if by not in _KEYS:
        raise ValueError(f"by must be one of: {', '.join(GROUPS)}")
    sql = (f"SELECT {_KEYS[by]}, p.created_at, st.first_response_at, st.resolved_at"  # noqa: S608 (one of two constants)
           " FROM post_status st JOIN posts p ON p.id = st.post_id"
           " WHERE st.first_response_at IS NOT NULL AND p.created_at >= ? AND p.created_at < ?")
    params: list[object] = [to_iso(start), to_iso(end)]
    if brand is not None:
        sql += " AND p.brand = ?"
        params.append(brand)
    first: dict[str, list[float]] = defaultdict(list)
    done: dict[str, list[float]] = defaultdict(list)
    for name, created, responded, resolved in db.execute(sql, params).fetchall():
        at = parse_iso(created)
        first[name].append(max((parse_iso(responded) - at).total_seconds(), 0.0))
        if resolved:
            done[name].append(max((parse_iso(resolved) - at).total_seconds(), 0.0))
    return [ResponseTimes(name, len(first[name]), statistics.median(first[name]),
                          p90(first[name]), len(done[name]),
                          statistics.median(done[name]) if done[name] else None,
                          p90(done[name]))
            for name in sorted(first)]
