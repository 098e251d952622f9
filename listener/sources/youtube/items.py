"""YouTube comments and videos as posts, the brand query in YouTube's search syntax, and the
cursor's entries: the pure parts of the YouTube source."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from listener.core.language import platform_language
from listener.core.models import Post, Rejected, parse_iso_or_none, to_iso
from listener.core.query import (
    And,
    Node,
    Not,
    QueryError,
    Term,
    dnf,
    positive_terms,
    render_boolean,
    without_prefixes,
)
from listener.sources.cursor import CursorLayout, SeenIds

log = logging.getLogger("listener.sources.youtube")

PLATFORM = "youtube"
WATCH_URL = "https://www.youtube.com/watch?v={}"
CURSOR = CursorLayout(
    version=1, section="streams", log=log,
    not_understood="source %s: cursor not understood; starting every channel and search afresh",
    bad_entry="source %s: bad cursor entry for %r; starting it afresh",
)


# -- the brand query -----------------------------------------------------------------------


def youtube_query(node: Node) -> str:
    """The query in YouTube's ``q`` syntax: words, "phrases", ``|`` for OR, ``-`` for NOT.

    YouTube documents ``a|b`` and ``-c`` but no parentheses, and not whether ``|`` binds
    tighter than the implicit AND. So the query is sent as the terms every OR-branch shares,
    then one term of each branch joined by ``|``, then the negations that apply to the whole
    query: ``acme (outage OR down) -giveaway`` → ``acme outage|down -giveaway``. Read either
    way (``acme (outage|down)`` or ``(acme outage)|down``) that finds every match and maybe
    more; the collect stage applies the full query to what comes back. Prefix terms
    (``refund*``) are widened away: YouTube has no wildcard.
    """
    widened = without_prefixes(node)
    if widened is None or not positive_terms(widened):
        raise QueryError("YouTube search needs at least one term without '*' in the query")
    try:
        branches = dnf(widened)
    except QueryError:  # too many branches to list: any positive term of the query
        branches = [(t,) for t in dict.fromkeys(positive_terms(widened))]
    common = [t for t in branches[0] if all(t in b for b in branches)]
    rests = [[t for t in b if t not in common] for b in branches]
    parts = [render_boolean(t) for t in common]
    if rests and all(rests):
        parts.append("|".join(dict.fromkeys(render_boolean(r[0]) for r in rests)))
    parts += [f"-{render_boolean(p.part)}" for p in _global_negations(widened)]
    return " ".join(parts)


def _global_negations(node: Node) -> list[Not]:
    parts = node.parts if isinstance(node, And) else (node,)
    return [p for p in parts if isinstance(p, Not) and isinstance(p.part, Term)]


# -- cursor entries ------------------------------------------------------------------------


@dataclass
class Watched:
    """A recent thread whose replies are re-counted each poll."""

    thread: str
    replies: int  # totalReplyCount when last read
    newest: str  # the newest reply (or the thread) collected: older replies are not new

    def to_json(self) -> list[Any]:
        return [self.thread, self.replies, self.newest]


@dataclass
class CommentState:
    """Cursor entry of one channel or video: comment threads are read newest first down to
    ``mark`` (the newest thread's publishedAt); ``pending`` is a page token to go on from when
    the last poll stopped at ``max_pages`` (with the cycle's ``newest``)."""

    mark: str | None = None
    seen: SeenIds = field(default_factory=SeenIds)
    watched: list[Watched] = field(default_factory=list)
    pending: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mark": self.mark, "seen": self.seen.to_json(),
                                "threads": [w.to_json() for w in self.watched]}
        if self.pending is not None:
            data["pending"] = dict(self.pending)
        return data

    @classmethod
    def from_json(cls, data: Any) -> CommentState | None:
        if not isinstance(data, dict):
            return None
        mark, pending = data.get("mark"), data.get("pending")
        seen = SeenIds.from_json(data.get("seen", []))
        threads = data.get("threads", [])
        if (mark is not None and parse_iso_or_none(mark) is None) or seen is None \
                or not isinstance(threads, list):
            return None
        watched = []
        for item in threads:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                    and type(item[1]) is int and parse_iso_or_none(item[2]) is not None):
                return None
            watched.append(Watched(item[0], item[1], item[2]))
        if pending is not None and not (
                isinstance(pending, dict) and isinstance(pending.get("page_token"), str)
                and parse_iso_or_none(pending.get("newest")) is not None):
            return None
        return cls(mark, seen, watched, pending)


@dataclass
class SearchState:
    """Cursor entry of one brand's video search: videos published after ``mark`` (less the
    overlap) are asked for; ``last`` is when the last search ran (``search_interval``);
    ``pending`` holds a ``before`` bound to go on below, and the cycle's ``newest``."""

    mark: str
    seen: SeenIds = field(default_factory=SeenIds)
    last: str | None = None
    pending: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mark": self.mark, "seen": self.seen.to_json(),
                                "last": self.last}
        if self.pending is not None:
            data["pending"] = dict(self.pending)
        return data

    @classmethod
    def from_json(cls, data: Any) -> SearchState | None:
        if not isinstance(data, dict) or parse_iso_or_none(data.get("mark")) is None:
            return None
        seen, last, pending = SeenIds.from_json(data.get("seen", [])), data.get("last"), \
            data.get("pending")
        if seen is None or (last is not None and parse_iso_or_none(last) is None):
            return None
        if pending is not None and not (
                isinstance(pending, dict) and parse_iso_or_none(pending.get("before")) is not None
                and parse_iso_or_none(pending.get("newest")) is not None):
            return None
        return cls(data["mark"], seen, last, pending)


# -- items to posts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Comment:
    """A comment resource, checked: what a post and the cursor need."""

    id: str
    published: datetime
    text: str
    raw: dict[str, Any]


def read_comment(item: Any, where: str) -> Comment | Rejected:
    """A comment resource as :class:`Comment`, or why it cannot be one."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        return Rejected(where, "not a comment resource with an id")
    snippet = item.get("snippet")
    if not isinstance(snippet, dict):
        return Rejected(f"{where} ({item['id']})", "comment without a snippet")
    published = parse_iso_or_none(snippet.get("publishedAt"))
    if published is None:
        return Rejected(f"{where} ({item['id']})",
                        f"missing or bad publishedAt: {str(snippet.get('publishedAt'))[:40]!r}")
    text = snippet.get("textOriginal")
    if not isinstance(text, str):
        text = snippet.get("textDisplay")  # textOriginal is only promised to the author
    if not isinstance(text, str):
        return Rejected(f"{where} ({item['id']})", "comment without textOriginal/textDisplay")
    return Comment(item["id"], published, text.strip(), snippet)


def comment_post(comment: Comment, *, video: str | None, thread: str, source: str,
                 brand: str | None, kind: str) -> Post:
    """A top-level comment or a reply as a post (``kind``: "comment" or "reply")."""
    snippet = comment.raw
    author_channel = snippet.get("authorChannelId")
    channel_id = author_channel.get("value") if isinstance(author_channel, dict) else None
    channel = snippet.get("channelId") if isinstance(snippet.get("channelId"), str) else None
    url: str | None
    if video:
        url = f"{WATCH_URL.format(video)}&lc={comment.id}"
    else:  # a comment about the channel itself (no video)
        url = f"https://www.youtube.com/channel/{channel}" if channel else None
    author = snippet.get("authorDisplayName")
    raw = {"kind": kind, "id": comment.id, "videoId": video, "channelId": channel,
           "authorChannelId": channel_id, "parentId": snippet.get("parentId"),
           "likeCount": snippet.get("likeCount"), "publishedAt": snippet.get("publishedAt"),
           "updatedAt": snippet.get("updatedAt")}
    return Post(
        platform=PLATFORM, platform_id=comment.id, text=comment.text,
        created_at=comment.published, source=source, url=url,
        author=author if isinstance(author, str) and author else None, brand=brand,
        thread=video or thread, kind="mention",
        raw={k: v for k, v in raw.items() if v is not None},
    )


def video_post(video: Any, followers: int | None, *, source: str, brand: str | None
               ) -> Post | Rejected:
    """A video (``videos.list`` item) that mentions a brand, as a post."""
    video_id = video.get("id") if isinstance(video, dict) else None
    snippet = video.get("snippet") if isinstance(video, dict) else None
    where = f"youtube video {video_id}"
    if not isinstance(video_id, str) or not isinstance(snippet, dict):
        return Rejected(where, "not a video resource with an id and a snippet")
    published = parse_iso_or_none(snippet.get("publishedAt"))
    title, description = snippet.get("title"), snippet.get("description") or ""
    if published is None:
        return Rejected(where, f"missing or bad publishedAt: "
                               f"{str(snippet.get('publishedAt'))[:40]!r}")
    if not isinstance(title, str) or not isinstance(description, str):
        return Rejected(where, "title or description is not text")
    text = "\n\n".join(part for part in (title.strip(), description.strip()) if part)
    lang = next((tag for tag in (snippet.get("defaultLanguage"),
                                 snippet.get("defaultAudioLanguage"))
                 if isinstance(tag, str) and platform_language(tag)), None)
    channel_title = snippet.get("channelTitle")
    raw = {"kind": "video", "id": video_id, "channelId": snippet.get("channelId"),
           "channelTitle": channel_title, "publishedAt": snippet.get("publishedAt"),
           "liveBroadcastContent": snippet.get("liveBroadcastContent"),
           "defaultLanguage": snippet.get("defaultLanguage"),
           "defaultAudioLanguage": snippet.get("defaultAudioLanguage"),
           "subscriberCount": followers}
    return Post(
        platform=PLATFORM, platform_id=video_id, text=text, created_at=published,
        source=source, url=WATCH_URL.format(video_id),
        author=channel_title if isinstance(channel_title, str) and channel_title else None,
        author_followers=followers, lang=lang, brand=brand, thread=video_id, kind="mention",
        raw={k: v for k, v in raw.items() if v is not None},
    )


def subscribers(channel: Any) -> tuple[str, int | None] | None:
    """(channel id, subscriber count) of a ``channels.list`` item; None count when hidden."""
    if not isinstance(channel, dict) or not isinstance(channel.get("id"), str):
        return None
    stats = channel.get("statistics")
    if not isinstance(stats, dict) or stats.get("hiddenSubscriberCount") is True:
        return channel["id"], None
    value = stats.get("subscriberCount")  # uint64, sent as a JSON string
    count = int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else \
        value if type(value) is int and value >= 0 else None
    return channel["id"], count


def iso(when: datetime) -> str:
    return to_iso(when)
