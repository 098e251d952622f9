"""The Discourse cursor's entries (the ``latest`` stream, one per search query), their JSON
layout, and what one cycle of pages saw: kept apart so that the walks in the source module read
as paging logic only, and the cursor's rules (see the source module's docstring) in one place."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from listener.core.models import Post
from listener.sources.cursor import MAX_SEEN, CursorLayout, SeenIds
from listener.sources.discourse.api import SEARCH_PAGE_LIMIT

log = logging.getLogger("listener.sources.discourse")

LATEST = "latest"
CURSOR = CursorLayout(
    version=1, section="streams", log=log,
    not_understood="source %s: cursor not understood; starting over",
    bad_entry="source %s: bad cursor entry for %r; starting it over",
)


@dataclass
class Latest:
    """Cursor entry of the ``latest`` stream."""

    since_id: int | None = None  # None: no cycle finished yet (the first reads initial_lookback)
    before: int | None = None  # pending: page on below this id
    newest: int | None = None  # pending: the cycle's newest id, adopted once it reaches the mark

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"since_id": self.since_id}
        if self.before is not None:
            data["pending"] = {"before": self.before, "newest": self.newest}
        return data

    @classmethod
    def from_json(cls, data: Any) -> Latest | None:
        if not isinstance(data, dict) or not _int_or_none(data.get("since_id")):
            return None
        pending = data.get("pending")
        if pending is None:
            return cls(data.get("since_id"))
        if not isinstance(pending, dict) or type(pending.get("before")) is not int \
                or type(pending.get("newest")) is not int:
            return None
        return cls(data.get("since_id"), pending["before"], pending["newest"])


@dataclass
class Search:
    """Cursor entry of one search query."""

    since: int  # epoch seconds: posts from since - overlap on are searched
    seen: SeenIds = field(default_factory=SeenIds)
    page: int | None = None  # pending: the search page an unfinished cycle goes on with
    high: int | None = None  # pending: the cycle's newest created_at, adopted when it ends
    done: list[int] = field(default_factory=list)  # pending: topics of that page already read

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"since": self.since, "seen": self.seen.to_json()}
        if self.page is not None:
            data["pending"] = {"page": self.page, "high": self.high}
            if self.done:
                data["pending"]["done"] = self.done
        return data

    @classmethod
    def from_json(cls, data: Any) -> Search | None:
        if not isinstance(data, dict) or type(data.get("since")) is not int:
            return None
        seen = SeenIds.from_json(data.get("seen"))
        if seen is None:
            return None
        pending = data.get("pending")
        if pending is None:
            return cls(data["since"], seen)
        if not isinstance(pending, dict) or type(pending.get("page")) is not int \
                or type(pending.get("high")) is not int:
            return None
        done = pending.get("done", [])
        if not isinstance(done, list) or not all(type(t) is int for t in done) \
                or not 1 <= pending["page"] <= SEARCH_PAGE_LIMIT:
            return None
        return cls(data["since"], seen, pending["page"], pending["high"], done)


@dataclass
class Cycle:
    """What one cycle of pages saw, filled in as pages arrive."""

    top: int | None = None  # latest: the newest post id of the cycle
    oldest: int | None = None  # latest: the lowest id paged through
    high: int | None = None  # search: the newest created_at handed out
    ids: list[str] = field(default_factory=list)  # search: ids handed out, newest first
    ended: bool = False  # the cycle reached its mark (or the end of the list)
    page: int = 1  # search: the search page the last handed-out topic came from
    done: list[int] = field(default_factory=list)  # search: that page's topics read so far
    page_done: bool = False  # search: every topic of that page is read

    def topic_read(self, topic_id: int, posts: list[Post], *, last: bool,
                   page_end: bool) -> None:
        """Search: the posts of hit topic ``topic_id`` are handed out next; ``last``: it is
        the last topic of its search page to read, ``page_end``: that page is the last one."""
        for post in posts:
            self.ids.append(str(post.raw["id"]))
            stamp = int(post.created_at.timestamp())
            self.high = stamp if self.high is None else max(self.high, stamp)
        self.done.append(topic_id)
        self.page_done = last
        self.ended = page_end and self.page_done


def newest_ids(seen: SeenIds, more: list[str]) -> SeenIds:
    """``seen`` and ``more`` together, highest post id (the newest) first, the newest
    :data:`~listener.sources.cursor.MAX_SEEN` kept: pages of one cycle come newest first, but a
    resumed cycle's pages are older than what the cursor already holds."""
    ids = {i for i in (*seen, *more) if i.isdigit()}
    return SeenIds(sorted(ids, key=int, reverse=True)[:MAX_SEEN])


def search_key(query: str) -> str:
    return f"search:{query}"


def _int_or_none(value: Any) -> bool:
    return value is None or type(value) is int
