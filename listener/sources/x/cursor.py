"""The X source's cursor: what it holds, and reading it back without ever crashing on it.

Cursor (JSON; every page that moves it carries all of it)::

    {"version": 1,
     "brands":   {"acme": {"since_id": "1790000000000000001"}},
     "mentions": {"2244994945": {"since_id": "1790000000000000007"}}}

and, while a cycle is unfinished, an entry is
``{"since_id": old, "next_token": "...", "newest_id": "<the cycle's newest>"}``.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("listener.sources.x")

CURSOR_VERSION = 1


def load_cursor(cursor: Any, source: str) -> dict[str, Any]:
    """The saved state; anything not understood starts over (logged), never crashes."""
    state: dict[str, Any] = {"version": CURSOR_VERSION, "brands": {}, "mentions": {}}
    if cursor is None:
        return state
    if not isinstance(cursor, dict) or cursor.get("version") != CURSOR_VERSION:
        log.warning("source %s: cursor not understood; starting from the newest posts", source)
        return state
    for group in ("brands", "mentions"):
        entries = cursor.get(group)
        for key, entry in (entries.items() if isinstance(entries, dict) else ()):
            if valid_entry(entry):
                state[group][str(key)] = dict(entry)
            else:
                log.warning("source %s: bad cursor entry %s/%s ignored", source, group, key)
    return state


def valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("since_id"), str):
        return False
    pending = {"next_token", "newest_id"} & set(entry)
    return set(entry) <= {"since_id", "next_token", "newest_id"} and (
        not pending or (pending == {"next_token", "newest_id"}
                        and all(isinstance(entry[k], str) for k in pending))
    )
