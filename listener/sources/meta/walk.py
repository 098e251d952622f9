"""The cursor of the Meta sources and the walk over one thread's items, page by page.

A *thread* is what one cursor entry follows: the comments of one Facebook Page post, the
comments of one Instagram media, the media an Instagram account is tagged in. Each is an edge
read with Graph's ``after`` cursors, and each has a :class:`ThreadState`::

    {"version": 1, "threads": {
        "1234_5678": {"since": "2026-11-20T11:55:00Z", "seen": ["1234_5678_91", ...]},
        "media:1789": {"since": "…", "seen": [...], "count": 12,
                       "pending": {"after": "QVFI…", "newest": "…", "seen": [...], "count": 14}}}}

``since`` is the newest item time a finished cycle collected (or, on the very first poll, the
start of ``initial_lookback``); a cycle collects the items from ``since - overlap`` on whose ids
are not in ``seen`` (the ids read by recent cycles, newest first, at most :data:`SEEN_MAX`).

A cycle reads pages until the edge ends, or, on an edge read newest first, until a page reaches
items older than ``since - overlap``. When it stops at ``max_pages`` with more to read,
``pending`` keeps Graph's ``after`` cursor, the newest time and the ids read so far: the next
poll goes on from there, and ``since`` moves only when the cycle is complete, so a burst longer
than one poll leaves no gap. Graph's paging guide warns that a stored cursor may stop working
if items are deleted; Graph then refuses it as an invalid parameter, and that cycle starts again
from the top, its ids still skipped. Only a cycle's last page carries the cursor (with every
thread's state); its middle pages carry none, and a cycle that found nothing new ends with an
empty page without one (each page of a poll has its own ``page_deadline``: a Page with many
quiet posts must not add all their requests up against one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from listener.core.models import Page, Post, Rejected, to_iso
from listener.sources.cursor import CursorLayout, SeenIds
from listener.sources.meta.graph import GraphClient, GraphInvalid, GraphMissing, graph_time

log = logging.getLogger("listener.sources.meta")

SEEN_MAX = 1000
"""Ids remembered per thread: far more than one overlap window of comments."""
CURSOR = CursorLayout(
    version=1, section="threads", log=log,
    not_understood="source %s: cursor not understood; reading every post afresh",
    bad_entry="source %s: bad cursor entry for %s; reading it afresh",
)

Item = tuple[str, datetime, Post | None]
"""One item read: its id, its time, and the post to store (None: nothing to store, e.g. a
comment without text)."""
Convert = Callable[[list[Any], int], tuple[list[Item], list[Rejected]]]
"""A page's raw items (and its number) → the items read and the ones rejected."""


@dataclass(frozen=True)
class Pending:
    """A cycle stopped at ``max_pages``: where it goes on."""

    after: str
    newest: datetime | None
    seen: SeenIds
    count: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "newest": to_iso(self.newest) if self.newest else None,
                "seen": self.seen.to_json(), "count": self.count}

    @classmethod
    def from_json(cls, data: Any) -> Pending | None:
        if not isinstance(data, dict) or not isinstance(data.get("after"), str):
            return None
        newest, seen, count = data.get("newest"), SeenIds.from_json(data.get("seen")), \
            data.get("count")
        when = graph_time(newest)
        if seen is None or (newest is not None and when is None) or not _count_ok(count):
            return None
        return cls(data["after"], when, seen, count)


@dataclass(frozen=True)
class ThreadState:
    """One thread's cursor entry (see the module docstring)."""

    since: datetime | None = None
    seen: SeenIds = field(default_factory=SeenIds)
    count: int | None = None  # Instagram media: comments_count when the last cycle began
    pending: Pending | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"since": to_iso(self.since) if self.since else None,
                                "seen": self.seen.to_json()}
        if self.count is not None:
            data["count"] = self.count
        if self.pending is not None:
            data["pending"] = self.pending.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> ThreadState | None:
        if not isinstance(data, dict):
            return None
        since, seen, count = graph_time(data.get("since")), SeenIds.from_json(data.get("seen")),\
            data.get("count")
        if seen is None or (data.get("since") is not None and since is None) \
                or not _count_ok(count):
            return None
        pending = None
        if data.get("pending") is not None:
            pending = Pending.from_json(data["pending"])
            if pending is None:
                return None
        return cls(since, seen, count, pending)


def _count_ok(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 0)


def load_states(cursor: Any, source: str) -> dict[str, ThreadState]:
    return CURSOR.load(cursor, source, ThreadState.from_json)


def dump_states(states: dict[str, ThreadState]) -> dict[str, Any]:
    return CURSOR.dump({key: state.to_json() for key, state in states.items()})


@dataclass(frozen=True)
class Thread:
    """An edge to walk: its cursor key, path and parameters, and how it is ordered."""

    key: str
    path: str
    params: dict[str, Any]
    newest_first: bool  # True: a page reaching items older than the cutoff ends the cycle
    count: int | None = None  # Instagram media: its comments_count now
    label: str = ""


class Walker:
    """Walks threads for one source; ``states`` is the whole cursor, updated as cycles end."""

    def __init__(self, graph: GraphClient, name: str, max_pages: int, overlap: int,
                 states: dict[str, ThreadState]) -> None:
        self.graph, self.name, self.max_pages = graph, name, max_pages
        self.overlap = timedelta(seconds=overlap)
        self.states = states
        self.yielded: set[str] = set()  # ids handed out in this poll (one comment, two threads)

    def cursor(self) -> dict[str, Any]:
        return dump_states(self.states)

    def walk(self, thread: Thread, state: ThreadState, convert: Convert) -> Iterator[Page]:
        """One cycle of ``thread`` (or the rest of a pending one), page by page."""
        pending = state.pending
        after = pending.after if pending else None
        newest = pending.newest if pending else None
        read: list[str] = list(pending.seen) if pending else []
        count = pending.count if pending else thread.count
        cutoff = state.since - self.overlap if state.since else None
        skip = {*state.seen, *read}
        for number in range(self.max_pages):
            try:
                listing = self.graph.listing(thread.path, thread.params, after)
            except GraphMissing:
                log.info("source %s: %s is gone (deleted); skipped", self.name,
                         thread.label or thread.key)
                self.states.pop(thread.key, None)
                return
            except GraphInvalid:
                if number or after is None or pending is None:
                    raise
                log.warning("source %s: Meta refused the stored paging cursor of %s; reading "
                            "it again from the top (items already read are skipped)",
                            self.name, thread.label or thread.key)
                after = None
                listing = self.graph.listing(thread.path, thread.params, None)
            items, rejected = convert(listing.items, number)
            posts: list[Post] = []
            for item_id, at, post in items:
                newest = at if newest is None else max(newest, at)
                if item_id in skip or item_id in self.yielded:
                    continue
                skip.add(item_id)
                read.append(item_id)
                if (cutoff is not None and at < cutoff) or post is None:
                    continue
                self.yielded.add(item_id)
                posts.append(post)
            old = thread.newest_first and cutoff is not None and any(
                at < cutoff for _, at, _ in items)
            if listing.after is None or old:
                since = max((t for t in (state.since, newest) if t is not None), default=None)
                done = ThreadState(since, state.seen.merged(read, SEEN_MAX), count, None)
                if posts or rejected or done != self.states.get(thread.key):
                    self.states[thread.key] = done
                    yield Page(posts, self.cursor(), rejected)
                else:  # nothing to store; still a page, so each gets its own page_deadline
                    yield Page([], None)
                return
            after = listing.after
            if number + 1 == self.max_pages:
                log.warning("source %s: %s has more than %d pages of new items; the next poll "
                            "reads on (raise max_pages or poll more often)", self.name,
                            thread.label or thread.key, self.max_pages)
                self.states[thread.key] = replace(state, pending=Pending(
                    after, newest, SeenIds(read[:SEEN_MAX]), count))
                yield Page(posts, self.cursor(), rejected)
                return
            yield Page(posts, None, rejected)


def check_text(value: Any, key: str) -> str:
    """A text field: '' when absent, the text when a string; raises ValueError otherwise."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{key}' is not text")
    return value.strip()


def item_id_and_time(item: Any, time_key: str) -> tuple[str, datetime]:
    """An item's ``id`` and time; ValueError when it has no usable one (a malformed record)."""
    if not isinstance(item, dict):
        raise ValueError(f"item is a {type(item).__name__}, not an object")
    item_id, at = item.get("id"), graph_time(item.get(time_key))
    if not isinstance(item_id, str | int) or isinstance(item_id, bool) or not str(item_id):
        raise ValueError("item without an id")
    if at is None:
        raise ValueError(f"item {item_id} without a valid {time_key}: {item.get(time_key)!r}")
    return str(item_id), at


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
