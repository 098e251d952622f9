"""Bluesky times, post views and cursors: the pure parts of the Bluesky source, kept apart so
the source module reads as the polling logic only."""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from typing import Any

from listener.core.models import parse_iso_or_none
from listener.sources.cursor import CursorLayout

log = logging.getLogger("listener.sources.bluesky")

SEEN_MAX = 500  # URIs remembered per stream to skip the overlap window
_CURSOR = CursorLayout(
    version=1, section="streams", log=log,
    not_understood="source %s: cursor not understood; starting every query afresh",
    bad_entry="source %s: bad cursor entry for %s; starting it afresh",
)
_REMOVED = frozenset({"!takedown", "!hide", "!suspend"})


def ms_iso(dt: datetime) -> str:
    """``2026-11-20T12:00:01.250Z``: the millisecond form Bluesky uses for ``sortAt``."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def bounded(seen: dict[str, str], since: datetime | None) -> dict[str, str]:
    """The newest SEEN_MAX entries, none older than ``since``."""
    dated = [(when, uri, text) for uri, text in seen.items()
             if (when := parse_iso_or_none(text)) is not None]
    kept = [entry for entry in dated if since is None or entry[0] >= since]
    return {uri: text for _, uri, text in sorted(kept, reverse=True)[:SEEN_MAX]}


def removed(view: Any) -> bool:
    labels = [*(view.labels or []), *(view.author.labels or [])]
    return any(getattr(label, "val", None) in _REMOVED for label in labels)


def raw_post(item: dict[str, Any]) -> dict[str, Any]:
    """The useful part of the postView, as served (no session data is ever in it)."""
    author, record = item.get("author") or {}, item.get("record") or {}
    return {
        "uri": item.get("uri"), "cid": item.get("cid"),
        "author": {k: author.get(k) for k in ("did", "handle", "displayName")},
        "record": {k: record.get(k) for k in ("text", "createdAt", "langs")},
        **{k: item.get(k) for k in ("indexedAt", "likeCount", "repostCount", "replyCount",
                                    "quoteCount")},
    }


def thread_of(record: Any, uri: str) -> str:
    """The conversation a post belongs to: the root post of the thread it replies in (an
    ``at://`` URI, like every post's id), else its own URI."""
    root = getattr(getattr(record, "reply", None), "root", None)
    root_uri = getattr(root, "uri", None)
    return root_uri if isinstance(root_uri, str) and root_uri.startswith("at://") else uri


def valid_state(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("seen", {}), dict):
        return False
    if value.get("since") is not None and parse_iso_or_none(value.get("since")) is None:
        return False
    pending = value.get("pending")
    return pending is None or (isinstance(pending, dict) and parse_iso_or_none(pending.get("until"))
                               is not None and parse_iso_or_none(pending.get("newest")) is not None)


def load_cursor(cursor: Any, keys: set[str], source: str) -> dict[str, dict[str, Any]]:
    """Per-stream states for the brand queries configured now (others are dropped), in the
    order they were saved."""
    states = {}
    for key, value in _CURSOR.entries(cursor, source).items():
        if key in keys and valid_state(value):
            states[key] = copy.deepcopy(value)
        elif key in keys:
            log.warning(_CURSOR.bad_entry, source, key)
    return states


def dump_cursor(states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return _CURSOR.dump(copy.deepcopy(states))
