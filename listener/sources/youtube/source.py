"""YouTube: comments and replies on channels' videos, and brand mentions in new videos, through
the YouTube Data API v3 with an API key (google-api-python-client, the maintained client).

What is read:

- ``channels``: ``commentThreads.list(allThreadsRelatedToChannelId=…, order=time)``, every
  comment thread on the channel's videos, newest thread first, with the replies the thread
  carries; when ``totalReplyCount`` says there are more, ``comments.list(parentId=…)`` reads
  them all. ``videos``: the same for single videos (``videoId=…``, any channel's). A video with
  comments disabled (403 ``commentsDisabled``) or deleted (404 ``videoNotFound``) is skipped
  with a warning; the poll goes on.
- ``search: true``: ``search.list(type=video, order=date, publishedAfter=…, q=…)`` per brand,
  ``q`` being the brand's query in YouTube's syntax (:func:`~.items.youtube_query`), then
  ``videos.list`` for the full description and language (search snippets are cut short; a video
  deleted or made private in between is missing there and skipped) and ``channels.list`` for
  the uploaders' subscriber counts (``author_followers``; None where the channel hides it).

``searches = True``: the collect stage keeps only posts a brand's query matches, comments
included. To keep every comment of your own channel, give the source ``brands: []`` and
``brand: <name>`` (and ``search: false``): nothing is filtered, everything is tagged that brand.

**New replies on old threads.** ``order=time`` sorts threads by the time their top-level
comment was posted, so a reply to an old thread never brings the thread back to the top. The
source therefore remembers the newest ``watch_threads`` threads per channel or video with their
``totalReplyCount``, asks for them by id each poll (``commentThreads.list(id=…)``: up to 50 a
call, 1 unit) and reads the replies of each thread whose count grew. What it misses: replies on
threads older than those; a reply added while another was deleted between two polls (the count
did not change); comments held for review and approved later (their publish time is older than
the mark); edits.

**Quota.** Every call costs units of the project's daily quota (search.list 100, every other
call here 1; the default quota is 10,000 units), which resets at midnight Pacific Time. The
source counts what it spends per Pacific day in its cursor and, before a call that would pass
``daily_quota``, pauses itself (RateLimited) until that midnight; a 403 ``quotaExceeded`` from
the API (other programs on the same project spend it too) does the same. ``rateLimitExceeded``
and 429 pause briefly. Searches run at most every ``search_interval`` seconds, since each costs
100 units. Units spent by a poll that failed are counted in memory by the running process, not
in the cursor; those of ``listener backfill`` (a process of its own) are not counted at all.

Cursor (JSON; every page carries all of it)::

    {"version": 1,
     "streams": {"channel:UC…": {"mark": "2026-11-20T11:50:00Z", "seen": ["Ugx…", …],
                                 "threads": [["Ugx…", 3, "2026-11-20T11:55:00Z"], …],
                                 "pending": {"page_token": "…", "newest": "…"}},
                 "search:acme": {"mark": "…", "seen": ["dQw4w9WgXcQ", …], "last": "…",
                                 "pending": {"before": "…", "newest": "…"}}},
     "quota": {"day": "2026-11-20", "used": 1234}}

A channel's threads are read newest first, page by page (``pageToken``), down to ``mark`` (the
newest thread's publish time; ``seen`` catches threads of the same second). ``mark`` moves only
on the cycle's last page; a poll that stops at ``max_pages`` with more left keeps the next page
token in ``pending`` and the next poll goes on from it down to ``mark`` before moving it, so a
burst larger than one poll leaves no gap (an expired token is dropped and the walk starts again
from the newest thread: still no gap). Searches work the same way with ``publishedAfter`` =
``mark`` less ``search_overlap`` (videos reach the search index late) and, for a pending walk, a
``publishedBefore`` bound below what was read. A stream's first poll reads back
``initial_lookback`` seconds, at most ``max_pages`` pages.

The API key is sent as the documented ``key`` query parameter over the guarded transport
(:mod:`.transport`); it is registered as a secret and masked in the client libraries' own log
records, and no error message shows a request URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from listener.core.errors import ConfigError, MissingDependency, SourceError
from listener.core.httpguard import GuardSettings, guarded_client, source_policy
from listener.core.log import register_secret
from listener.core.models import Page, Post, Rejected, parse_iso_or_none
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.cursor import SeenIds
from listener.sources.youtube.api import (
    BATCH,
    SEARCH_COST,
    BadPageToken,
    Quota,
    Unavailable,
    YouTubeApi,
)
from listener.sources.youtube.items import (
    CURSOR,
    CommentState,
    SearchState,
    Watched,
    comment_post,
    iso,
    read_comment,
    subscribers,
    video_post,
    youtube_query,
)
from listener.sources.youtube.transport import GuardedHttp, redact_library_logs

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.googleapis.com"
SEARCH_PAGE_MAX = 50  # search.list's maxResults limit
_CHANNEL = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
_VIDEO = re.compile(r"^[A-Za-z0-9_-]{11}$")


class YouTubeSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: youtube`` source."""

    api_key: str = Field(
        repr=False, min_length=1,
        description='YouTube Data API v3 key of a Google Cloud project, set as {"$env": '
        'YOUTUBE_API_KEY}, never in the file (Credentials > Create credentials > API key; '
        'restrict it to the YouTube Data API v3)',
    )
    channels: list[str] = Field(
        default_factory=list,
        description="channel ids (UC…, 24 characters; on the channel page: About > Share "
        "channel > Copy channel ID) whose videos' comments and replies are read",
    )
    videos: list[str] = Field(
        default_factory=list,
        description="video ids (the v= of a watch URL) whose comments and replies are read, "
        "on any channel",
    )
    search: bool = Field(
        False, description="also search new videos' titles and descriptions for each brand's "
        "query (search.list: 100 quota units a call)",
    )
    base_url: str = Field(
        DEFAULT_BASE_URL,
        description="API root; change only for a proxy or a test server",
    )
    daily_quota: int = Field(
        10000, ge=1, description="quota units a day (Pacific Time) this source may spend; it "
        "pauses until midnight Pacific before a call would pass it (the default quota of a "
        "project is 10,000; lower this when other programs share the project)",
    )
    max_pages: int = Field(
        5, ge=1, le=100, description="pages per channel, video or brand search per poll; a "
        "longer backlog is read over the next polls",
    )
    page_size: int = Field(
        100, ge=1, le=100, description="comment threads per request (YouTube max 100); "
        "searches ask for at most 50 (their maximum)",
    )
    watch_threads: int = Field(
        50, ge=0, le=1000, description="newest threads per channel or video re-counted each "
        "poll for new replies (1 quota unit per 50); 0 reads replies of new threads only",
    )
    search_interval: float = Field(
        1800, ge=0, description="seconds between two searches of a brand (each costs 100 "
        "units; the default quota allows about 95 a day)",
    )
    search_overlap: float = Field(
        3600, ge=0, le=7 * 86400, description="seconds searched again behind the newest video "
        "found, for videos that reach the search index late; repeats are skipped",
    )
    initial_lookback: float = Field(
        86400, ge=0, description="seconds of history the first poll reads (no cursor yet); "
        "`listener backfill` reaches further",
    )
    backfill_max_pages: int = Field(
        50, ge=1, le=100000, description="pages per channel, video or brand search when "
        "backfilling",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError(f"must be an http(s) URL such as {DEFAULT_BASE_URL}, not {value!r}")
        return value.rstrip("/")

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not _CHANNEL.match(v)]
        if bad:
            raise ValueError(f"not channel ids (UC followed by 22 letters, digits, - or _; a "
                             f"@handle or a channel URL will not do): {bad}")
        return list(dict.fromkeys(values))

    @field_validator("videos")
    @classmethod
    def _video_ids(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not _VIDEO.match(v)]
        if bad:
            raise ValueError(f"not video ids (11 letters, digits, - or _): {bad}")
        return list(dict.fromkeys(values))


@dataclass(frozen=True)
class _Stream:
    """One thing polled: a channel's or a video's comments, or one brand's video search."""

    key: str
    kind: str  # "channel" | "video" | "search"
    ident: str  # channel id, video id or brand name
    query: str | None = None

    @property
    def label(self) -> str:
        return f"search {self.ident!r}" if self.kind == "search" else f"{self.kind} {self.ident}"

    @property
    def filters(self) -> dict[str, str]:
        return ({"allThreadsRelatedToChannelId": self.ident} if self.kind == "channel"
                else {"videoId": self.ident})


@dataclass
class _Read:
    """What one page of comment threads gave."""

    posts: list[Post] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # thread and reply ids collected
    threads: list[Watched] = field(default_factory=list)  # new threads, newest first
    newest: datetime | None = None
    reached: bool = False  # a thread older than the floor: the rest is older still


class YouTubeSource:
    """Comments on channels' and videos' pages, and brand mentions in new videos."""

    Config: ClassVar[type[SourceConfig]] = YouTubeSourceConfig  # before `type` shadows it
    type: ClassVar[str] = "youtube"
    searches: ClassVar[bool] = True

    def __init__(self, config: YouTubeSourceConfig, ctx: SourceContext) -> None:
        try:
            import httpx  # noqa: F401 - the guarded transport
            from googleapiclient.discovery import build  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingDependency("google-api-python-client", "youtube") from exc
        self.config, self.ctx, self.name = config, ctx, config.name
        register_secret(config.api_key)
        redact_library_logs()
        if config.search and not ctx.brands:
            raise ConfigError(f"source '{self.name}': search needs brands to search for; add "
                              "`brands:` at the top level (or to this source)", key="search")
        self._streams = [_Stream(f"channel:{c}", "channel", c) for c in config.channels]
        self._streams += [_Stream(f"video:{v}", "video", v) for v in config.videos]
        if config.search:
            self._streams += [_Stream(f"search:{b.name}", "search", b.name,
                                      youtube_query(b.query)) for b in ctx.brands]
        if not self._streams:
            raise ConfigError(f"source '{self.name}': nothing to read: list channels or videos, "
                              "or set search: true", key="channels")
        http = GuardedHttp(
            guarded_client(source_policy(config.name, config, [config.base_url]),
                           timeout=ctx.http_timeout),
            f"source {self.name}", ctx.http_timeout, config.api_key)
        service = build("youtube", "v3", http=http, developerKey=config.api_key,
                        static_discovery=True, cache_discovery=False, num_retries=0,
                        client_options={"api_endpoint": config.base_url})
        self._api = YouTubeApi(self.name, service, http, Quota(config.daily_quota), ctx.clock)

    def close(self) -> None:
        self._api.close()

    # -- cursor ----------------------------------------------------------------------------

    def _load(self, cursor: Any) -> dict[str, CommentState | SearchState]:
        """The configured streams' entries (others are dropped) and, into the quota, the
        usage of today."""
        entries = CURSOR.entries(cursor, self.name)
        self._api.quota.load(cursor.get("quota") if isinstance(cursor, dict) else None,
                             self.ctx.clock())
        states: dict[str, CommentState | SearchState] = {}
        for stream in self._streams:
            if stream.key not in entries:
                continue
            parse = SearchState.from_json if stream.kind == "search" else CommentState.from_json
            state = parse(entries[stream.key])
            if state is None:
                log.warning(CURSOR.bad_entry, self.name, stream.key)
            else:
                states[stream.key] = state
        return states

    def _dump(self, states: dict[str, CommentState | SearchState]) -> dict[str, Any]:
        return {**CURSOR.dump({k: s.to_json() for k, s in states.items()}),
                "quota": self._api.quota.to_json()}

    # -- polling ---------------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """Pages of new comments, replies and videos, stream by stream. Every page carries
        the cursor (the quota spent so far); a stream's own entry moves on its last page."""
        states = self._load(cursor)
        yielded: set[str] = set()  # found by two streams in one poll: handed out once
        for stream in self._streams:
            if stream.kind == "search":
                yield from self._poll_search(stream, states, yielded)
            else:
                fresh: set[str] = set()
                yield from self._poll_comments(stream, states, yielded, fresh)
                yield from self._recheck(stream, states, yielded, fresh)

    def _poll_comments(self, stream: _Stream, states: dict[str, Any], yielded: set[str],
                       fresh_ids: set[str]) -> Iterator[Page]:
        """New threads of a channel or video, newest first down to the mark; ``fresh_ids``
        gets the threads read (their reply counts are current)."""
        state: CommentState = states.get(stream.key) or CommentState()
        now = self.ctx.clock()
        floor = parse_iso_or_none(state.mark) or now - timedelta(seconds=self.config.initial_lookback)
        pending = state.pending
        token = pending["page_token"] if pending else None
        newest = parse_iso_or_none(pending["newest"]) if pending else None
        skip = _Skip(state.seen, yielded)
        ids: list[str] = []
        fresh: list[Watched] = []
        number = 0
        while number < self.config.max_pages:
            number += 1
            try:
                body = self._api.comment_threads(stream.label, token, self.config.page_size,
                                                 **stream.filters)
            except BadPageToken as exc:
                if pending is None:
                    raise SourceError(f"source {self.name}: {stream.label}: YouTube refused "
                                      f"its own page token ({exc})") from None
                log.warning("source %s: %s: the saved page token was refused (%s); reading "
                            "from the newest thread down to the mark again", self.name,
                            stream.label, exc)
                pending = token = newest = None
                continue
            except Unavailable as exc:
                log.warning("source %s: %s skipped: %s", self.name, stream.label, exc)
                yield Page([], self._dump(states))  # keeps the quota spent
                return
            read = self._threads(body["items"], stream, f"page {number}", floor, skip)
            ids += read.ids
            fresh += read.threads
            fresh_ids.update(w.thread for w in read.threads)
            newest = max((t for t in (newest, read.newest) if t), default=None)
            token = body.get("nextPageToken") if isinstance(body.get("nextPageToken"), str) \
                else None
            done = read.reached or not token or not body["items"]
            if not done and number < self.config.max_pages:
                yield Page(read.posts, self._dump(states), read.rejected)
                continue
            states[stream.key] = self._next_comment_state(stream, state, ids, fresh, newest,
                                                          floor, None if done else token)
            yield Page(read.posts, self._dump(states), read.rejected)
            return
        # every page this poll allowed went to a refused page token: read afresh next poll
        states[stream.key] = CommentState(state.mark, state.seen, state.watched)
        yield Page([], self._dump(states))

    def _next_comment_state(self, stream: _Stream, state: CommentState, ids: list[str],
                            fresh: list[Watched], newest: datetime | None, floor: datetime,
                            token: str | None) -> CommentState:
        seen = state.seen.merged(ids)
        known = {w.thread for w in fresh}
        watched = [*fresh, *(w for w in state.watched if w.thread not in known)]
        watched = watched[:self.config.watch_threads]
        if token is None or state.mark is None:
            if token is not None:
                log.info("source %s: first poll of %s read its latest %d pages; older comments "
                         "are left to `listener backfill`", self.name, stream.label,
                         self.config.max_pages)
            high = max((t for t in (newest, floor) if t), default=floor)
            return CommentState(iso(high), seen, watched)
        log.warning("source %s: %s has more than %d pages of new comment threads; the next "
                    "poll goes on from where this one stopped (raise max_pages or poll more "
                    "often)", self.name, stream.label, self.config.max_pages)
        return CommentState(state.mark, seen, watched,
                            {"page_token": token, "newest": iso(newest or floor)})

    def _threads(self, items: list[Any], stream: _Stream, where: str, floor: datetime,
                 skip: _Skip) -> _Read:
        """One page of threads as posts: each new thread's top comment and its replies."""
        read = _Read()
        for index, item in enumerate(items):
            place = f"youtube {stream.label} {where} item {index}"
            snippet = item.get("snippet") if isinstance(item, dict) else None
            thread_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(thread_id, str) or not isinstance(snippet, dict):
                read.rejected.append(Rejected(place, "not a commentThread with an id and "
                                                     "a snippet"))
                continue
            top = read_comment(snippet.get("topLevelComment"), f"{place} ({thread_id})")
            if isinstance(top, Rejected):
                read.rejected.append(top)
                continue
            if top.published < floor:
                read.reached = True  # newest first: everything after is older
                continue
            read.newest = max((t for t in (read.newest, top.published) if t), default=None)
            if thread_id in skip or snippet.get("isPublic") is False:
                continue  # collected by an earlier poll or page; or not public
            video = snippet.get("videoId") if isinstance(snippet.get("videoId"), str) else None
            read.ids.append(thread_id)
            skip.add(thread_id)
            read.posts.append(comment_post(top, video=video, thread=thread_id, source=self.name,
                                           brand=self.config.brand, kind="comment"))
            total = snippet.get("totalReplyCount")
            total = total if type(total) is int and total >= 0 else 0
            replies = item.get("replies")
            included = replies.get("comments") if isinstance(replies, dict) else None
            included = included if isinstance(included, list) else []
            if total > len(included):
                included = self._all_replies(stream, thread_id)
            reply_newest = self._replies(included, stream, video, thread_id, top.published,
                                         skip, read)
            read.threads.append(Watched(thread_id, total, iso(reply_newest)))
        return read

    def _replies(self, items: list[Any], stream: _Stream, video: str | None, thread: str,
                 after: datetime, skip: _Skip, read: _Read) -> datetime:
        """The replies not collected yet and published at or after ``after``, into ``read``;
        returns the newest reply's time (``after`` when there is none)."""
        newest = after
        for index, item in enumerate(items):
            reply = read_comment(item, f"youtube {stream.label} thread {thread} reply {index}")
            if isinstance(reply, Rejected):
                read.rejected.append(reply)
                continue
            newest = max(newest, reply.published)
            if reply.id in skip or reply.published < after:
                continue
            read.ids.append(reply.id)
            skip.add(reply.id)
            read.posts.append(comment_post(reply, video=video, thread=thread, source=self.name,
                                           brand=self.config.brand, kind="reply"))
        return newest

    def _all_replies(self, stream: _Stream, thread: str) -> list[Any]:
        """Every reply of ``thread`` (``comments.list``, at most ``max_pages`` pages); none when
        the thread is gone."""
        items: list[Any] = []
        token: str | None = None
        for _ in range(self.config.max_pages):
            try:
                body = self._api.replies(f"{stream.label} thread {thread}", thread, token,
                                         self.config.page_size)
            except (Unavailable, BadPageToken) as exc:
                log.info("source %s: %s: replies of thread %s not read: %s", self.name,
                         stream.label, thread, exc)
                break
            items += body["items"]
            token = body.get("nextPageToken") if isinstance(body.get("nextPageToken"), str) \
                else None
            if not token or not body["items"]:
                break
        return items

    def _recheck(self, stream: _Stream, states: dict[str, Any], yielded: set[str],
                 fresh: set[str]) -> Iterator[Page]:
        """New replies on the watched threads this poll did not read, 50 threads a call."""
        state: CommentState | None = states.get(stream.key)
        if state is None:
            return
        targets = [w for w in state.watched if w.thread not in fresh]
        for start in range(0, len(targets), BATCH):
            batch = targets[start:start + BATCH]
            found = {i["id"]: i for i in self._watched_threads(stream, batch)
                     if isinstance(i, dict) and isinstance(i.get("id"), str)}
            read = _Read()
            skip = _Skip(state.seen, yielded)
            updated: dict[str, Watched | None] = {}
            for watched in batch:
                item = found.get(watched.thread)
                snippet = item.get("snippet") if item else None
                if not isinstance(snippet, dict):
                    updated[watched.thread] = None  # deleted or hidden: no longer watched
                    continue
                total = snippet.get("totalReplyCount")
                total = total if type(total) is int and total >= 0 else watched.replies
                newest = parse_iso_or_none(watched.newest) or datetime.min.replace(tzinfo=UTC)
                if total > watched.replies:
                    video = snippet.get("videoId")
                    items = self._all_replies(stream, watched.thread)
                    newest = self._replies(items, stream, video if isinstance(video, str)
                                           else None, watched.thread, newest, skip, read)
                updated[watched.thread] = Watched(watched.thread, total, iso(newest))
            kept: list[Watched] = []
            for watched in state.watched:
                current = updated[watched.thread] if watched.thread in updated else watched
                if current is not None:
                    kept.append(current)
            state = CommentState(state.mark, state.seen.merged(read.ids), kept, state.pending)
            states[stream.key] = state
            yield Page(read.posts, self._dump(states), read.rejected)

    def _watched_threads(self, stream: _Stream, batch: list[Watched]) -> list[Any]:
        """The threads of ``batch`` that still exist. YouTube leaves deleted ones out of the
        answer, or (documented as 404 ``commentThreadNotFound``) refuses the whole request:
        then each is asked for alone, and those refused are gone."""
        what = f"{stream.label} watched threads"
        try:
            return list(self._api.threads_by_id(what, [w.thread for w in batch])["items"])
        except Unavailable:
            if len(batch) == 1:
                return []
        items: list[Any] = []
        for watched in batch:
            try:
                items += self._api.threads_by_id(what, [watched.thread])["items"]
            except Unavailable:
                log.debug("source %s: %s: thread %s is gone", self.name, stream.label,
                          watched.thread)
        return items

    def _poll_search(self, stream: _Stream, states: dict[str, Any],
                     yielded: set[str]) -> Iterator[Page]:
        old: SearchState | None = states.get(stream.key)
        now = self.ctx.clock()
        last = parse_iso_or_none(old.last) if old else None
        if last is not None and now < last + timedelta(seconds=self.config.search_interval):
            return  # searched a moment ago: each search costs 100 units
        mark = (parse_iso_or_none(old.mark) if old else None) or \
            now - timedelta(seconds=self.config.initial_lookback)
        after = mark - timedelta(seconds=self.config.search_overlap) if old else mark
        pending = old.pending if old else None
        before = parse_iso_or_none(pending["before"]) if pending else None
        newest = parse_iso_or_none(pending["newest"]) if pending else None
        seen = old.seen if old else SeenIds()
        skip = _Skip(seen, yielded)
        ids: list[str] = []
        oldest: datetime | None = None
        token: str | None = None
        for number in range(1, self.config.max_pages + 1):
            body = self._search(stream, after, before, token)
            hits, rejected, times = self._hits(body["items"], stream, number, skip)
            ids += [h for h in times if h not in ids]
            if times:
                newest = max(t for t in (newest, *times.values()) if t)
                oldest = min(t for t in (oldest, *times.values()) if t)
            posts, more = self._videos(stream, hits, skip)
            token = body.get("nextPageToken") if isinstance(body.get("nextPageToken"), str) \
                else None
            done = not token or not body["items"]
            if not done and number < self.config.max_pages:
                yield Page(posts, self._dump(states), rejected + more)
                continue
            high = max(t for t in (newest, mark) if t)
            if done or old is None or oldest is None:
                if not done:
                    log.info("source %s: first poll of %s read its latest %d pages; older "
                             "videos are left to `listener backfill`", self.name, stream.label,
                             self.config.max_pages)
                states[stream.key] = SearchState(iso(high), seen.merged(ids), iso(now))
            else:
                log.warning("source %s: %s found more than %d pages of new videos; the next "
                            "search goes on below %s (raise max_pages)", self.name,
                            stream.label, self.config.max_pages, iso(oldest))
                states[stream.key] = SearchState(
                    old.mark, seen.merged(ids), iso(now),
                    {"before": iso(oldest), "newest": iso(newest or high)})
            yield Page(posts, self._dump(states), rejected + more)
            return

    def _search(self, stream: _Stream, after: datetime, before: datetime | None,
                token: str | None) -> dict[str, Any]:
        size = min(self.config.page_size, SEARCH_PAGE_MAX)
        return self._api.search(stream.label, stream.query or "", after, before, token, size)

    def _hits(self, items: list[Any], stream: _Stream, number: int, skip: _Skip
              ) -> tuple[list[str], list[Rejected], dict[str, datetime]]:
        """New video ids of a search page, rejects, and every valid hit's publish time."""
        hits: list[str] = []
        rejected: list[Rejected] = []
        times: dict[str, datetime] = {}
        for index, item in enumerate(items):
            ident = item.get("id") if isinstance(item, dict) else None
            snippet = item.get("snippet") if isinstance(item, dict) else None
            video = ident.get("videoId") if isinstance(ident, dict) else None
            published = parse_iso_or_none(snippet.get("publishedAt")) \
                if isinstance(snippet, dict) else None
            if not isinstance(video, str) or not video or published is None:
                rejected.append(Rejected(f"youtube {stream.label} page {number} item {index}",
                                         "search result without a videoId or publishedAt"))
                continue
            times[video] = published
            if video not in skip and video not in hits:
                hits.append(video)
        return hits, rejected, times

    def _videos(self, stream: _Stream, ids: list[str], skip: _Skip
                ) -> tuple[list[Post], list[Rejected]]:
        """The videos as posts (``videos.list``) with their channels' subscriber counts
        (``channels.list``); a video missing from the answer (deleted, private) is skipped."""
        if not ids:
            return [], []
        body = self._api.videos(f"{stream.label} videos", ids)
        found = {v["id"]: v for v in body["items"]
                 if isinstance(v, dict) and isinstance(v.get("id"), str)}
        channels = list(dict.fromkeys(
            c for v in found.values() if isinstance(v.get("snippet"), dict)
            and isinstance(c := v["snippet"].get("channelId"), str)))
        followers: dict[str, int | None] = {}
        if channels:
            answer = self._api.channels(f"{stream.label} channels", channels[:BATCH])
            followers = dict(filter(None, map(subscribers, answer["items"])))
        posts: list[Post] = []
        rejected: list[Rejected] = []
        for video in ids:
            item = found.get(video)
            if item is None:
                log.debug("source %s: video %s is gone (deleted or private); skipped",
                          self.name, video)
                continue
            channel = item["snippet"].get("channelId") if isinstance(item.get("snippet"),
                                                                       dict) else None
            post = video_post(item, followers.get(channel) if isinstance(channel, str) else None,
                              source=self.name, brand=stream.ident)
            if isinstance(post, Rejected):
                rejected.append(post)
            else:
                skip.add(video)
                posts.append(post)
        return posts, rejected

    # -- history and doctor ----------------------------------------------------------------

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Comments and videos back to ``since``. Comment threads are paged back (newest
        first) to threads posted at ``since``, with their replies, at most
        ``backfill_max_pages`` pages per channel or video; searches go back window by window
        (``publishedBefore``: YouTube serves about 500 results per query). The units spent are
        checked against ``daily_quota`` within this run only. Pages carry ``cursor=None``."""
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        yielded: set[str] = set()
        for stream in self._streams:
            if stream.kind == "search":
                yield from self._backfill_search(stream, since, yielded)
                continue
            skip = _Skip(SeenIds(), yielded)
            token: str | None = None
            for number in range(1, self.config.backfill_max_pages + 1):
                try:
                    body = self._api.comment_threads(stream.label, token, self.config.page_size,
                                                     **stream.filters)
                except (Unavailable, BadPageToken) as exc:
                    log.warning("source %s: %s skipped: %s", self.name, stream.label, exc)
                    break
                read = self._threads(body["items"], stream, f"page {number}", since, skip)
                yield Page(read.posts, None, read.rejected)
                token = body.get("nextPageToken") \
                    if isinstance(body.get("nextPageToken"), str) else None
                if read.reached or not token or not body["items"]:
                    break

    def _backfill_search(self, stream: _Stream, since: datetime,
                         yielded: set[str]) -> Iterator[Page]:
        skip = _Skip(SeenIds(), yielded)
        before: datetime | None = None
        pages = 0
        while pages < self.config.backfill_max_pages:
            token: str | None = None
            new = 0
            oldest: datetime | None = None
            while pages < self.config.backfill_max_pages:
                pages += 1
                body = self._search(stream, since, before, token)
                hits, rejected, times = self._hits(body["items"], stream, pages, skip)
                new += len(hits)
                oldest = min((t for t in (oldest, *times.values()) if t), default=None)
                posts, more = self._videos(stream, hits, skip)
                for hit in hits:
                    skip.add(hit)
                yield Page(posts, None, rejected + more)
                token = body.get("nextPageToken") \
                    if isinstance(body.get("nextPageToken"), str) else None
                if not token or not body["items"]:
                    break
            if not new or oldest is None or oldest <= since:
                return
            before = oldest  # the next window: below the oldest video this one reached

    def check(self) -> str:
        """``listener doctor``: one call of 1 unit. With channels, ``channels.list`` proves
        the key and that every listed channel (up to 50) exists; with videos only,
        ``videos.list`` likewise; otherwise ``i18nRegions.list`` proves the key alone."""
        if self.config.channels:
            wanted = self.config.channels[:BATCH]
            body = self._api.channels("doctor channels.list", wanted, part="id")
            missing = set(wanted) - {i.get("id") for i in body["items"] if isinstance(i, dict)}
            if missing:
                raise SourceError(f"source {self.name}: API key accepted, but no such "
                                  f"channel(s): {', '.join(sorted(missing))}; check channels")
            return f"API key accepted; {len(wanted)} channel(s) found"
        if self.config.videos:
            wanted = self.config.videos[:BATCH]
            body = self._api.videos("doctor videos.list", wanted)
            found = {i.get("id") for i in body["items"] if isinstance(i, dict)}
            gone = sorted(set(wanted) - found)
            note = f"; gone (deleted or private): {', '.join(gone)}" if gone else ""
            return f"API key accepted; {len(found & set(wanted))} of {len(wanted)} video(s) " \
                   f"found{note}"
        self._api.regions("doctor i18nRegions.list")
        return (f"API key accepted; brand searches cost {SEARCH_COST} units each, "
                f"daily_quota is {self.config.daily_quota}")


class _Skip:
    """Ids collected already: the cursor's ``seen`` and what this poll handed out."""

    def __init__(self, seen: SeenIds, yielded: set[str]) -> None:
        self._seen, self._yielded = seen, yielded

    def __contains__(self, item: object) -> bool:
        return item in self._seen or item in self._yielded

    def add(self, item: str) -> None:
        self._yielded.add(item)
