"""The review watermark shared by the review sources (App Store, Google Play).

Both read a newest-first list of reviews page by page and keep, per feed (an app in one
storefront or language), a :class:`Watermark`: the newest review stored plus the ids of recent
ones. A walk stops after the page that reaches a review an earlier cycle stored, and the mark
moves only on the walk's last page. The cursor format is the same for both sources::

    {"version": 1,
     "apps": {"<feed key>": {"newest_at": "2024-05-01T09:00:00Z", "newest_id": "1107",
                             "seen": ["1107", "1106", ...]}}}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from listener.core.models import Page, Post, Rejected, parse_iso, to_iso
from listener.sources.cursor import CursorLayout, SeenIds

log = logging.getLogger(__name__)

SEEN_LIMIT = 600
"""Review ids remembered per feed: more than the ~500 the App Store feed can ever show."""

_CURSOR = CursorLayout(
    version=1, section="apps", log=log,
    not_understood="source %s: cursor not understood; reading every feed again",
    bad_entry="source %s: bad cursor entry for %s; reading it again",
)


@dataclass
class Watermark:
    """How far a newest-first review list was stored: the newest review, plus recent ids.

    A review is *covered* when an earlier cycle stored it and it is not newer than the mark;
    everything below a covered review in a newest-first list was covered too. A review edited
    since (newer date, known id) is skipped but does not stop the walk.
    """

    newest_at: datetime | None = None
    newest_id: str | None = None
    seen: SeenIds = field(default_factory=SeenIds)

    def knows(self, review_id: str) -> bool:
        return review_id in self.seen

    def covers(self, review_id: str, at: datetime) -> bool:
        return self.knows(review_id) and self.newest_at is not None and at <= self.newest_at

    def advanced(self, walked: Iterable[tuple[str, datetime]], limit: int) -> Watermark:
        """The mark after a complete walk over ``walked`` (id, date) pairs, newest first."""
        walked = list(walked)
        newest_at, newest_id = self.newest_at, self.newest_id
        for review_id, at in walked:
            if newest_at is None or at > newest_at:
                newest_at, newest_id = at, review_id
        seen = self.seen.merged([review_id for review_id, _ in walked], limit)
        return Watermark(newest_at, newest_id, seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "newest_at": to_iso(self.newest_at) if self.newest_at else None,
            "newest_id": self.newest_id,
            "seen": self.seen.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any) -> Watermark | None:
        """The mark saved by :meth:`to_json`, or None when ``data`` is not one."""
        if not isinstance(data, dict):
            return None
        at, newest_id = data.get("newest_at"), data.get("newest_id")
        seen = SeenIds.from_json(data.get("seen"))
        if seen is None or not (newest_id is None or isinstance(newest_id, str)):
            return None
        try:
            newest_at = parse_iso(at) if at is not None else None
        except (TypeError, ValueError):
            return None
        return cls(newest_at, newest_id, seen)


def load_marks(cursor: Any, source: str) -> dict[str, Watermark]:
    """Per-feed watermarks from a saved cursor; anything unreadable starts that feed afresh."""
    return _CURSOR.load(cursor, source, Watermark.from_json)


def dump_marks(marks: dict[str, Watermark]) -> dict[str, Any]:
    return _CURSOR.dump({k: m.to_json() for k, m in marks.items()})


@dataclass
class ReviewWalk:
    """One newest-first walk over a feed's pages, measured against the feed's watermark."""

    mark: Watermark
    walked: list[tuple[str, datetime]] = field(default_factory=list)
    emitted: set[str] = field(default_factory=set)

    def sort(
        self, items: Iterable[Post | Rejected | None]
    ) -> tuple[list[Post], list[Rejected], bool]:
        """A page's new posts, its rejected items, and whether it reached a covered review.

        ``None`` items (not reviews) are dropped; a review known to the mark or already
        emitted in this walk is not emitted again, but still counts for the next mark.
        """
        posts: list[Post] = []
        rejected: list[Rejected] = []
        covered = False
        for item in items:
            if isinstance(item, Rejected):
                rejected.append(item)
                continue
            if item is None:
                continue
            self.walked.append((item.platform_id, item.created_at))
            covered = covered or self.mark.covers(item.platform_id, item.created_at)
            if not self.mark.knows(item.platform_id) and item.platform_id not in self.emitted:
                self.emitted.add(item.platform_id)
                posts.append(item)
        return posts, rejected, covered

    def advanced(self) -> Watermark:
        """The feed's mark after this walk (call on its last page only)."""
        return self.mark.advanced(self.walked, SEEN_LIMIT)


def backfill_page(items: list[Post | Rejected | None], since: datetime) -> tuple[Page, bool]:
    """A history page of the reviews from ``since`` on, and whether it reached older ones.

    Backfill pages carry ``cursor=None``: history never moves the live watermark. Reaching a
    review older than ``since`` ends the walk of a newest-first list.
    """
    posts = [p for p in items if isinstance(p, Post)]
    page = Page(
        posts=[p for p in posts if p.created_at >= since],
        rejected=[r for r in items if isinstance(r, Rejected)],
    )
    return page, any(p.created_at < since for p in posts)
