"""The outbox's due alerts as the messages dispatch hands to sinks.

:func:`storage.outbox.due` reads due alerts as rows joined with their post and score; here they
become domain objects, so dispatch never turns rows back into posts: every alert of one post (or
one report) for one destination is ONE :class:`Delivery` — one message naming every rule that
matched — and a post alert learns the remote id of the first alert about its conversation
(threads), a report alert its report and example posts (:func:`storage.reports.message_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from listener.core.models import AlertMessage, ReportMessage
from storage import outbox, reports
from storage.db import post_from_row, score_from_row
from storage.engine import Db

_RANK = {"low": 0, "normal": 1, "high": 2}


@dataclass(frozen=True)
class Delivery:
    """One message's worth of due alerts: every alert of one post (or one report) for one
    destination. Its message is built when it is sent (:func:`message`), not when it is read:
    a follow-up due in the same pass as the first alert of its conversation must see where
    that first alert landed, to reply under it."""

    destination: str
    alert_ids: tuple[str, ...]
    about: str  # what the alerts are about, for log lines: "post x:123" or "report <id>"
    post_key: tuple[str, str] | None  # (platform, platform id); None for a report
    collected_at: str | None  # when the post was collected (delivery latency); None: report
    rows: tuple[dict[str, Any], ...] = field(repr=False)


def due(db: Db, now: datetime, limit: int, destination: str | None = None,
        free_for: str | None = None) -> list[Delivery]:
    """Up to ``limit`` due deliveries, most important first (:func:`storage.outbox.due`; with
    ``free_for``, only those no other worker holds)."""
    rows = outbox.due(db, now, limit, destination, free_for)
    return [_delivery(group) for group in _groups(rows)]


def _groups(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Due alert rows grouped by (post or report, destination), in the order they came."""
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for row in rows:
        subject = ("report", row["report_id"]) if row.get("report_id") else ("post", row["id"])
        groups.setdefault((subject, row["destination"]), []).append(row)
    return list(groups.values())


def _delivery(rows: list[dict[str, Any]]) -> Delivery:
    first = rows[0]
    ids = tuple(r["alert_id"] for r in rows)
    if first.get("report_id"):
        return Delivery(first["destination"], ids, f"report {first['report_id']}", None, None,
                        tuple(rows))
    key = (first["platform"], first["platform_id"])
    return Delivery(first["destination"], ids, f"post {key[0]}:{key[1]}", key,
                    first.get("collected_at"), tuple(rows))


def message(db: Db, delivery: Delivery) -> AlertMessage | ReportMessage:
    """The one message for ``delivery``, naming every rule that matched.

    Its id is the first alert's id, so it is stable across retries (idempotency keys). A post
    alert learns the remote id of the first alert delivered about its conversation (threads).
    """
    rows = delivery.rows
    first = rows[0]
    if first.get("report_id"):
        return reports.message_for(db, first)
    post = post_from_row(first)
    reply_to = (outbox.thread_parent(db, first["destination"], post.platform, post.thread)
                if post.thread else None)
    return AlertMessage(
        alert_id=first["alert_id"], rules=tuple(r["rule"] for r in rows),
        destination=first["destination"], post=post, score=score_from_row(first),
        priority=max((r["priority"] or "normal" for r in rows), key=lambda p: _RANK.get(p, 1)),
        attempt=max(int(r["attempts"] or 0) for r in rows) + 1, reply_to=reply_to,
    )
