"""Mastodon status ids, times, rate-limit resets and cursors: the pure parts of the Mastodon
source, kept apart so the source module reads as the polling logic only."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

from listener.core.models import parse_iso, to_iso
from listener.sources.cursor import CursorLayout
from listener.sources.http import retry_after

log = logging.getLogger("listener.sources.mastodon")
_CURSOR = CursorLayout(
    version=1, section="streams", log=log,
    not_understood="source %s: cursor not understood; starting every stream afresh",
    bad_entry="source %s: bad cursor entries for %s; starting them afresh",  # one line, all keys
)


def id_order(status_id: str) -> tuple[int, str]:
    return len(status_id), status_id


def status_ids(statuses: list[Any]) -> list[str]:
    return [str(s["id"]) for s in statuses if isinstance(s, dict) and s.get("id")]


def next_window(max_id: str | None, lowest: str, offset: int, count: int) -> tuple[str, int]:
    """Where the next page starts: below the lowest id seen; but when a whole page of search
    results sat inside the coarse ``before:`` bound (no progress), the next ``offset`` there."""
    if max_id is not None and id_order(lowest) >= id_order(max_id):
        return max_id, offset + count
    return lowest, 0


def created_at_of(status: dict[str, Any]) -> datetime | None:
    """Mastodon.py parses ``created_at`` (into local time; None when malformed)."""
    value = status.get("created_at")
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def reset_wait(headers: dict[str, str], now: datetime) -> float:
    """Seconds until Mastodon's ``X-RateLimit-Reset`` (an ISO 8601 time), else the shared rules
    (Retry-After first; GoToSocial-style epoch resets)."""
    lower = {k.lower(): v for k, v in headers.items()}
    reset = lower.get("x-ratelimit-reset", "")
    if "retry-after" not in lower and ("-" in reset or "T" in reset):
        try:
            return max(0.0, (parse_iso(reset) - now).total_seconds())
        except ValueError:
            pass
    return retry_after(headers, now)


def raw_status(status: dict[str, Any], status_id: str, created: datetime,
         account: dict[str, Any]) -> dict[str, Any]:
    """The fields worth keeping, as plain JSON (Mastodon.py hands back typed objects)."""
    tags = [str(t.get("name")) for t in status.get("tags") or [] if isinstance(t, dict)]
    counts = ("replies_count", "reblogs_count", "favourites_count", "visibility", "language")
    return {"id": status_id, "uri": str(status["uri"]), "url": status.get("url"),
            "created_at": to_iso(created), "tags": tags, **{k: status.get(k) for k in counts},
            "account": {k: account.get(k) and str(account.get(k)) for k in ("id", "acct")}
            | {"followers_count": account.get("followers_count")}}


def thread_of(status: dict[str, Any], status_id: str) -> str:
    """The status it replies to, else its own id (both local ids of the one instance polled).

    Mastodon names only the direct parent, so a reply threads under the alert about the post it
    answers, not under the conversation's first post: a reply to a reply starts a new thread.
    """
    parent = status.get("in_reply_to_id")
    return str(parent) if parent else status_id


def valid_state(value: Any) -> bool:
    pending = value.get("pending") if isinstance(value, dict) else None
    return isinstance(value, dict) and isinstance(value.get("since_id"), str | None) and (
        pending is None or isinstance(pending, dict)
        and all(isinstance(pending.get(k), str) for k in ("max_id", "newest")))


def load_streams(cursor: Any, keys: set[str], source: str) -> dict[str, dict[str, Any]]:
    """Per-stream states for the streams configured now (others are dropped)."""
    streams = _CURSOR.entries(cursor, source)
    bad = sorted(k for k, v in streams.items() if k in keys and not valid_state(v))
    if bad:
        log.warning(_CURSOR.bad_entry, source, bad)
    return {k: copy.deepcopy(v) for k, v in streams.items() if k in keys and k not in bad}


def dump_cursor(states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return _CURSOR.dump(copy.deepcopy(states))
