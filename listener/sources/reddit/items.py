"""What Reddit's answers mean, and the per-stream cursor: no HTTP here, and no praw import at
module level (only :func:`api_error` imports it, once the source has checked it is installed).

Kept apart from :mod:`listener.sources.reddit` so every rule (what a listing looks like, which
items are removed, when a walk has reached what the last poll saw, which error is which) can be
tested on plain values.

A *stream* is one newest-first listing we poll: a brand's search, or one subreddit's new
submissions or new comments. Reddit listings stop at about 1,000 items and praw's
``stream_generator`` only remembers items in memory, so each stream keeps its own high-water mark
in the cursor (:class:`StreamState`) and each poll is one :class:`Cycle` over it.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from listener.core.errors import ListenerError, RateLimited, SourceError
from listener.core.httpguard import refusal_in
from listener.core.models import Post
from listener.sources.cursor import CursorLayout, SeenIds
from listener.sources.http import raise_for_status, retry_after

log = logging.getLogger(__name__)

PERMALINK_ROOT = "https://www.reddit.com"
"""Public links always point at reddit.com, whatever API host (``base_url``) is configured."""

SEEN_LIMIT = 500
"""Most fullnames remembered per stream for the overlap; older ones fall back on the time mark."""

_CURSOR = CursorLayout(
    version=1, section="streams", log=log,
    not_understood="source '%s': cursor not understood; every stream starts afresh",
    bad_entry="source '%s': bad cursor entry for %s; it starts afresh",
)

OVERLAP_SECONDS = 60.0
"""How far behind the newest saved item a walk still looks for items it has not seen: search
indexes new posts with a delay, so an item can appear after newer ones were already seen."""

REMOVED_BODIES = frozenset({"[removed]", "[deleted]"})
KINDS = ("t3", "t1")  # submission, comment


class ItemError(ValueError):
    """One listing child cannot become a Post; ``str(error)`` is the ``Rejected.reason``."""


class ShapeError(ValueError):
    """A whole response is not a Listing; the source turns it into a SourceError."""


def parse_listing(payload: Any) -> tuple[list[Any], str | None]:
    """The children and the ``after`` token of a ``{"kind": "Listing", "data": {...}}`` answer."""
    if not isinstance(payload, dict) or payload.get("kind") != "Listing":
        raise ShapeError(f"expected a Listing object, got {_describe(payload)}")
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("children"), list):
        raise ShapeError("the Listing has no data.children array")
    after = data.get("after")
    if after is not None and not isinstance(after, str):
        raise ShapeError(f"the Listing's data.after is {_describe(after)}, not a fullname")
    return data["children"], after or None


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with kind {value.get('kind')!r}"
    return type(value).__name__


@dataclass(frozen=True)
class Thing:
    """The identity of one listing child, enough to place it in a stream."""

    kind: str
    fullname: str
    created_utc: float
    data: dict[str, Any]


def identify(child: Any) -> Thing:
    """Kind, fullname and creation time of a child; raises ItemError if any is missing."""
    if not isinstance(child, dict) or not isinstance(child.get("data"), dict):
        raise ItemError("listing child is not a {kind, data} object")
    kind, data = child.get("kind"), child["data"]
    if kind not in KINDS:
        raise ItemError(f"unexpected kind {kind!r} (want t3 submissions or t1 comments)")
    name = data.get("name")
    if not isinstance(name, str) or not name.startswith(f"{kind}_"):
        ident = data.get("id")
        if not isinstance(ident, str) or not ident.isalnum():
            raise ItemError("item has neither a fullname ('name') nor an id")
        name = f"{kind}_{ident}"
    created = data.get("created_utc")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise ItemError(f"{name}: 'created_utc' is {created!r}, not a Unix time")
    if not math.isfinite(created) or not 0 <= created < 32503680000:  # before year 3000
        raise ItemError(f"{name}: 'created_utc' {created!r} is out of range")
    return Thing(kind, name, float(created), data)


def removed_reason(thing: Thing) -> str | None:
    """Why the item is gone (removed by moderators, deleted by its author), or None."""
    data = thing.data
    if data.get("removed_by_category"):
        return f"removed ({data['removed_by_category']})"
    body = data.get("selftext" if thing.kind == "t3" else "body")
    if isinstance(body, str) and body.strip() in REMOVED_BODIES:
        return f"{'deleted' if body.strip() == '[deleted]' else 'removed'} body"
    if thing.kind == "t3" and data.get("author") in (None, "[deleted]") and not body:
        if data.get("title") in ("[deleted by user]", "[removed]", "[deleted]"):
            return "deleted by its author"
    return None


def to_post(thing: Thing, source: str, brand: str | None) -> Post:
    """The normalised Post of a live item; raises ItemError when a required field is bad."""
    data = thing.data
    if thing.kind == "t3":
        title = _text(data, "title", required=True)
        body = _text(data, "selftext")
        text = f"{title}\n\n{body}" if body else title
    else:
        text = _text(data, "body", required=True)
    author = data.get("author")
    return Post(  # no author_followers: listings lack it (one more request per author)
        platform="reddit", platform_id=thing.fullname, text=text,
        created_at=datetime.fromtimestamp(thing.created_utc, UTC), source=source,
        url=permalink_of(thing),
        author=author if isinstance(author, str) and author != "[deleted]" else None,
        lang=None, kind="mention", brand=brand, raw=_raw(thing), thread=thread_of(thing),
    )


def thread_of(thing: Thing) -> str | None:
    """The submission a post belongs to: its own fullname, or a comment's ``link_id``."""
    link = thing.fullname if thing.kind == "t3" else thing.data.get("link_id")
    return link if isinstance(link, str) and link.startswith("t3_") else None


_SUBREDDIT = re.compile(r"^[A-Za-z0-9_]{2,21}$")
_ID36 = re.compile(r"^[a-z0-9]+$")


def permalink_of(thing: Thing) -> str | None:
    """The item's link on reddit.com: its ``permalink``, else one built from its ids.

    Listings give ``permalink`` as a path. Without it, a submission is
    ``/r/{sub}/comments/{id}/`` and a comment ``/r/{sub}/comments/{link}/comment/{id}/``, where
    ``link`` is ``link_id`` without ``t3_``. Reddit's router reads
    ``/comments/:article/:title/:comment`` and ignores the title slug, so any slug resolves;
    ``comment`` is the one Reddit's own "share" links use today (``_`` works as well). Without a
    usable subreddit the ``/r/{sub}`` part is left out, which Reddit also routes. None when the
    ids needed are missing.
    """
    given = thing.data.get("permalink")
    if isinstance(given, str) and given.startswith("/"):
        return PERMALINK_ROOT + given
    ident = thing.fullname.removeprefix(f"{thing.kind}_")
    sub = thing.data.get("subreddit")
    root = f"{PERMALINK_ROOT}/r/{sub}" if isinstance(sub, str) and _SUBREDDIT.match(sub) \
        else PERMALINK_ROOT
    if not _ID36.match(ident):
        return None
    if thing.kind == "t3":
        return f"{root}/comments/{ident}/"
    link = thing.data.get("link_id")
    post = link.removeprefix("t3_") if isinstance(link, str) and link.startswith("t3_") else ""
    if not _ID36.match(post):
        return None
    return f"{root}/comments/{post}/comment/{ident}/"


def _text(data: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ItemError(f"'{key}' is {type(value).__name__}, not text")
    if required and not value.strip():
        raise ItemError(f"'{key}' is empty")
    return value.strip()


_RAW_KEYS = (
    "id", "subreddit", "subreddit_id", "permalink", "author_fullname", "score", "num_comments",
    "over_18", "url", "domain", "is_self", "link_flair_text", "link_id", "parent_id",
    "link_title", "link_permalink", "edited",
)


def _raw(thing: Thing) -> dict[str, Any]:
    """A small, JSON-safe copy: what a human needs to find the item again, no bulky media."""
    keep = {k: thing.data[k] for k in _RAW_KEYS if isinstance(thing.data.get(k), str | int | float)}
    return {"kind": thing.kind, "name": thing.fullname, "created_utc": thing.created_utc, **keep}


# -- cursor ---------------------------------------------------------------------------------


@dataclass
class Mark:
    """The newest item of a stream and the fullnames seen near it."""

    newest: str | None = None
    created_utc: float | None = None
    seen: SeenIds = field(default_factory=SeenIds)

    def to_json(self) -> dict[str, Any]:
        return {"newest": self.newest, "created_utc": self.created_utc,
                "seen": self.seen.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Mark | None:
        if not isinstance(data, dict):
            return None
        newest, created = data.get("newest"), data.get("created_utc")
        seen = SeenIds.from_json(data.get("seen"))
        number = isinstance(created, int | float) and not isinstance(created, bool)
        if (newest is None or isinstance(newest, str)) and (created is None or number) and (
            seen is not None
        ):
            return cls(newest, None if created is None else float(created), seen)
        return None


@dataclass
class StreamState:
    """Cursor entry of one stream. ``resume`` is an unfinished cycle: where to go on (``after``)
    and the mark it will save once it reaches ``mark``."""

    scope: str  # request path + query: if the config changes, the stream starts afresh
    mark: Mark = field(default_factory=Mark)
    resume_after: str | None = None
    resume_mark: Mark | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"scope": self.scope, **self.mark.to_json()}
        if self.resume_after is not None and self.resume_mark is not None:
            data["resume"] = {"after": self.resume_after, **self.resume_mark.to_json()}
        return data

    @classmethod
    def from_json(cls, data: Any) -> StreamState | None:
        """The state saved by :meth:`to_json`, or None when the entry is not one."""
        mark = Mark.from_json(data)
        if mark is None or not isinstance(data.get("scope"), str):
            return None
        state = cls(data["scope"], mark)
        resume = data.get("resume")
        if resume is not None:
            resume_mark = Mark.from_json(resume)
            if resume_mark is None or not isinstance(resume.get("after"), str):
                return None
            state.resume_after, state.resume_mark = resume["after"], resume_mark
        return state


class Cycle:
    """One poll of one stream: sorts items into new / already seen / older than the last poll,
    and builds the state to save when the walk ends.

    The walk goes newest to older and has *reached* the previous poll at the first item at or
    older than the saved mark. Items up to :data:`OVERLAP_SECONDS` behind the mark are still new
    unless their fullname was saved. A cycle cut short by ``max_pages`` saves where to go on
    (``resume``) and keeps the old mark, so the next poll fills the gap before moving the mark.
    """

    def __init__(self, scope: str, saved: StreamState | None) -> None:
        self.scope = scope
        self.saved = saved if saved is not None and saved.scope == scope else None
        old = self.saved.mark if self.saved else Mark()
        pending = self.saved.resume_mark if self.saved else None
        self.after = self.saved.resume_after if self.saved else None
        self.mark = old.created_utc
        self.boundary = None if self.mark is None else self.mark - OVERLAP_SECONDS
        self.known = set(old.seen) | set(pending.seen if pending else ())
        self.top = Mark(pending.newest, pending.created_utc, pending.seen) if pending else None
        self.observed: list[tuple[str, float]] = []
        self.reached = False

    @property
    def fresh(self) -> bool:
        """True when nothing was ever seen: the first poll takes what it can and stops there."""
        return self.boundary is None

    def sort(self, thing: Thing) -> str:
        """``"new"``, ``"seen"`` (saved, or twice in this walk) or ``"old"`` (past the overlap).

        Any item at or older than the saved mark means the walk has *reached* the last poll:
        its page is the last one (items of that page inside the overlap are still looked at).
        """
        if self.mark is not None and thing.created_utc <= self.mark:
            self.reached = True
        if thing.fullname in self.known:
            return "seen"
        self.known.add(thing.fullname)
        self.observed.append((thing.fullname, thing.created_utc))
        if self.top is None or thing.created_utc > (self.top.created_utc or -math.inf):
            self.top = Mark(thing.fullname, thing.created_utc,
                            self.top.seen if self.top else SeenIds())
        if self.boundary is not None and thing.created_utc < self.boundary:
            return "old"
        return "new"

    def finish(self) -> StreamState:
        """The state after a complete walk: the new mark and the fullnames near it."""
        old = self.saved.mark if self.saved else Mark()
        return StreamState(self.scope, self._mark_at(self._top(old), old))

    def pause(self, after: str) -> StreamState:
        """The state after a walk cut short: old mark kept, the rest of the walk pending."""
        old = self.saved.mark if self.saved else Mark()
        return StreamState(self.scope, old, after, self._mark_at(self._top(old), Mark()))

    def _top(self, old: Mark) -> Mark:
        """The newest item known: this walk's (or the pending walk's) unless the old mark is."""
        if self.top is None or self.top.created_utc is None:
            return old
        if old.created_utc is not None and self.top.created_utc <= old.created_utc:
            return old
        return self.top

    def _mark_at(self, top: Mark, old: Mark) -> Mark:
        """``top`` with its seen list: every known fullname inside the overlap, newest first."""
        if top.created_utc is None:
            return Mark(top.newest, None)
        floor = top.created_utc - OVERLAP_SECONDS
        recent = [name for name, created in self.observed if created >= floor]
        carried = top.seen
        if old.created_utc is not None and old.created_utc >= floor:
            # the old mark is still inside the overlap: keep what it saw
            carried = SeenIds([*top.seen, *old.seen])
        return Mark(top.newest, top.created_utc, carried.merged(recent, SEEN_LIMIT))


class Floor:
    """Backfill's sorter: items at or after ``since`` are new, each once."""

    def __init__(self, since: float) -> None:
        self.since, self.known, self.reached = since, set[str](), False

    def sort(self, thing: Thing) -> str:
        if thing.fullname in self.known:
            return "seen"
        self.known.add(thing.fullname)
        if thing.created_utc < self.since:
            self.reached = True
            return "old"
        return "new"


def load_cursor(cursor: Any, source: str) -> dict[str, StreamState]:
    """Per-stream states; anything unreadable starts that stream (or all of them) afresh."""
    return _CURSOR.load(cursor, source, StreamState.from_json)


def dump_cursor(states: dict[str, StreamState], keys: list[str]) -> dict[str, Any]:
    """Entries of the configured streams only: a removed brand or subreddit drops out."""
    return _CURSOR.dump({key: states[key].to_json() for key in keys if key in states})


# -- errors --------------------------------------------------------------------------------


_APPROVAL = (
    "check client_id and client_secret (the app's id and secret from "
    "https://www.reddit.com/prefs/apps) in this source's environment variables; since late 2025 "
    "new Reddit API apps must also be approved under Reddit's Responsible Builder Policy "
    "before they may use the API"
)
_ADVICE: dict[int, str] = {
    302: "Reddit redirected the request: a subreddit in `subreddits` does not exist",
    401: f"Reddit refused the app's credentials: {_APPROVAL}",
    403: "Reddit denied access: a subreddit may be private, quarantined or banned, or the app "
    f"has no API access; {_APPROVAL}",
    404: "not found: check `subreddits`, `base_url` and `oauth_url`",
}


def api_error(exc: Exception, source: str, now: datetime) -> ListenerError | None:
    """Our exception for a praw/prawcore one (None: not theirs, let it through).

    praw is imported here only: by then the source has checked that it is installed.
    """
    from praw.exceptions import PRAWException
    from prawcore import exceptions as core

    refused = refusal_in(exc)  # prawcore wraps request failures (original_exception)
    if isinstance(refused, SourceError):
        return refused
    if isinstance(exc, core.TooManyRequests):
        wait = retry_after(exc.response.headers, now)
        return RateLimited(f"source {source}: rate-limited by Reddit (HTTP 429)", wait)
    if isinstance(exc, core.RequestException):
        cause = exc.original_exception
        return SourceError(f"source {source}: could not reach Reddit ({type(cause).__name__}: "
                           f"{cause}); the next poll retries")
    if isinstance(exc, core.OAuthException):
        return SourceError(f"source {source}: Reddit refused the token request ({exc.error}): "
                           f"{_APPROVAL}")
    if isinstance(exc, core.BadJSON):
        return SourceError(f"source {source}: Reddit answered with malformed JSON; "
                           "the next poll retries")
    if isinstance(exc, core.ResponseException):
        response = exc.response
        status, where = response.status_code, urlsplit(response.url).path
        if status in _ADVICE:
            return SourceError(f"source {source}: HTTP {status} at {where}: {_ADVICE[status]}")
        try:
            raise_for_status(source, status, response.headers, response.text, now)
        except ListenerError as mapped:
            return mapped
        return SourceError(f"source {source}: unexpected HTTP {status} at {where}")
    if isinstance(exc, core.PrawcoreException | PRAWException):
        return SourceError(f"source {source}: the Reddit request failed: {exc}")
    return None
