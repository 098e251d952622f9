"""What the post page, the overview's response-time card, the approvals page and the metrics
endpoint need of a team's work (issue 18), beyond the verbs of :mod:`storage.inbox` and
:mod:`storage.replies`.

Reads, and one write: :func:`forget_first_response`, which "undo" needs so that a status clicked
by mistake does not count as the customer's first response. :func:`response_times` is :func:`storage.inbox.response_times` (one summary for the card, its
CSV and the metrics);
:func:`overdue_posts` counts what the queue highlights as overdue, per brand, for alerting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from listener.core.models import to_iso
from storage.engine import Db
from storage.inbox import GROUPS, ResponseTimes, p90, response_times
from storage.replies import AWAITING
from storage.tx import immediate

__all__ = ["GROUPS", "ResponseTimes", "p90", "response_times"]  # the inbox's, for the pages

UNANSWERED = ("new", "assigned")  # what "overdue" is about: nobody has answered yet


@dataclass(frozen=True)
class Handling:
    """Where one post stands with the team: its status, who has it, when it was answered and
    resolved (None: not yet). A post nobody touched is ``new`` with nothing else."""

    status: str
    assignee: str | None
    by: str | None
    updated_at: str | None
    first_response_at: str | None
    resolved_at: str | None


def handling(db: Db, post_id: int) -> Handling:
    row = db.execute("SELECT status, assignee, by, updated_at, first_response_at, resolved_at"
                     " FROM post_status WHERE post_id = ?", [post_id]).fetchone()
    if row is None:
        return Handling("new", None, None, None, None, None)
    return Handling(str(row[0]), row[1], row[2], row[3], row[4], row[5])


def forget_first_response(db: Db, post_id: int, since: datetime, until: datetime) -> bool:
    """Clear a first response stamped in [since, until] of a post that is unanswered again
    (an undone "replied" or "handled"); True when one was cleared. A post answered before, or
    answered now, keeps its stamp: the verb never leaves an answered post without one."""
    with immediate(db):
        done = db.execute(
            "UPDATE post_status SET first_response_at = NULL WHERE post_id = ?"
            " AND first_response_at >= ? AND first_response_at <= ? AND status IN (?, ?)",
            [post_id, to_iso(since), to_iso(until), *UNANSWERED])
    return bool(done.rowcount)


def overdue_posts(db: Db, now: datetime, brands: Iterable[str], target: timedelta,
                  brand_targets: Mapping[str, timedelta], stale_after: timedelta
                  ) -> dict[str, int]:
    """Per brand: queue posts nobody has answered (new or assigned) for longer than the
    brand's first-response target, leaving out stale ones (past ``stale_after`` a post sinks
    in the queue: counting years of never-worked history would keep an alert firing for ever).
    One range read of the queue's index per brand; every brand asked for is in the answer."""
    oldest = to_iso(now - stale_after)
    counts: dict[str, int] = {}
    for brand in brands:
        newest = to_iso(now - brand_targets.get(brand, target))
        row = db.execute(
            "SELECT count(*) FROM triage WHERE created_at >= ? AND created_at < ?"
            " AND brand = ? AND status IN (?, ?)", [oldest, newest, brand, *UNANSWERED]
        ).fetchone()
        counts[brand] = int(row[0])
    return counts


def awaiting_count(db: Db) -> int:
    """Replies waiting for an admin's approval (the admins' nav link shows it)."""
    return int(db.execute("SELECT count(*) FROM replies WHERE status = ?",
                          [AWAITING]).fetchone()[0])


@dataclass(frozen=True)
class Excerpt:
    """What the approvals page shows of the post a reply answers."""

    post_id: int
    platform: str
    brand: str | None
    author: str | None
    text: str
    url: str | None


def excerpts(db: Db, post_ids: Iterable[int], length: int = 280) -> dict[int, Excerpt]:
    """The posts, by id, with their text cut to ``length`` characters (the page links the
    whole post); ids of posts that no longer exist are left out."""
    ids = sorted(set(post_ids))
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    rows = db.execute(f"SELECT id, platform, brand, author, text, url FROM posts"  # noqa: S608 (placeholders)
                      f" WHERE id IN ({marks})", ids).fetchall()
    return {int(r[0]): Excerpt(int(r[0]), str(r[1]), r[2], r[3], _cut(str(r[4] or ""), length),
                               r[5]) for r in rows}


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length - 1].rstrip() + "…"
