"""What the post page, the overview's response-time card, the approvals page and the metrics
endpoint need of a team's work (issue 18), beyond the verbs of :mod:`storage.inbox` and
:mod:`storage.replies`.

Reads, and one write: :func:`forget_first_response`, which "undo" needs so that a status clicked
by mistake does not count as the customer's first response. :func:`response_times` is :func:`storage.inbox.response_times` with the overview's
brand filter (the same rows, summarised the same way, so the card, its CSV and the metrics agree);
:func:`overdue_posts` counts what the queue highlights as overdue, per brand, for alerting.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from listener.core.models import parse_iso, to_iso
from storage.engine import Db
from storage.inbox import ResponseTimes
from storage.replies import AWAITING
from storage.tx import immediate

GROUPS = ("brand", "agent")
# who a post's response counts for: its brand, or the agent who has it (else who answered it)
_KEYS = {"brand": "coalesce(p.brand, '')", "agent": "coalesce(st.assignee, st.by, '')"}
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


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile as :mod:`storage.inbox` takes it (the value at 90 % of the sorted
    list): one of the observed times, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def response_times(db: Db, start: datetime, end: datetime, by: str,
                   brand: str | None = None) -> list[ResponseTimes]:
    """First-response and resolution times (seconds, from the post's creation: what the
    customer waited) of answered posts created in [start, end), per brand or per agent,
    optionally of one brand's posts (``posts.brand``, as the overview's brand table counts)."""
    if by not in _KEYS:
        raise ValueError(f"by must be one of: {', '.join(GROUPS)}")
    sql = (f"SELECT {_KEYS[by]}, p.created_at, st.first_response_at, st.resolved_at"  # noqa: S608 (one of two constants)
           " FROM post_status st JOIN posts p ON p.id = st.post_id"
           " WHERE st.first_response_at IS NOT NULL AND p.created_at >= ? AND p.created_at < ?")
    params: list[object] = [to_iso(start), to_iso(end)]
    if brand is not None:
        sql += " AND p.brand = ?"
        params.append(brand)
    return summarise(db.execute(sql, params).fetchall())


def summarise(rows: Iterable[Sequence[str | None]]) -> list[ResponseTimes]:
    """(key, created_at, first_response_at, resolved_at) rows → one summary per key, by key."""
    first: dict[str, list[float]] = defaultdict(list)
    done: dict[str, list[float]] = defaultdict(list)
    for name, created, responded, resolved in rows:
        at = parse_iso(str(created))
        first[str(name)].append(max((parse_iso(str(responded)) - at).total_seconds(), 0.0))
        if resolved:
            done[str(name)].append(max((parse_iso(resolved) - at).total_seconds(), 0.0))
    return [ResponseTimes(name, len(first[name]), statistics.median(first[name]),
                          p90(first[name]), len(done[name]),
                          statistics.median(done[name]) if done[name] else None, p90(done[name]))
            for name in sorted(first)]


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
