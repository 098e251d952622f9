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
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from listener.core.errors import ConfigError, MissingDependency, SourceError
from listener.core.httpguard import guarded_client, source_policy
from listener.core.log import register_secret
from listener.core.models import Page
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.youtube.api import BATCH, SEARCH_COST, Quota, YouTubeApi
from listener.sources.youtube.comments import CommentWalk
from listener.sources.youtube.config import YouTubeSourceConfig
from listener.sources.youtube.items import CURSOR, CommentState, SearchState, youtube_query
from listener.sources.youtube.search import SearchWalk
from listener.sources.youtube.streams import Stream
from listener.sources.youtube.transport import GuardedHttp, redact_library_logs

__all__ = ["YouTubeSource", "YouTubeSourceConfig"]

log = logging.getLogger(__name__)


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
        self._streams = [Stream(f"channel:{c}", "channel", c) for c in config.channels]
        self._streams += [Stream(f"video:{v}", "video", v) for v in config.videos]
        if config.search:
            self._streams += [Stream(f"search:{b.name}", "search", b.name,
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
        self._comments = CommentWalk(self._api, config, self.name, ctx.clock, self._dump)
        self._search = SearchWalk(self._api, config, self.name, ctx.clock, self._dump)

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
                yield from self._search.poll(stream, states, yielded)
            else:
                fresh: set[str] = set()
                yield from self._comments.poll(stream, states, yielded, fresh)
                yield from self._comments.recheck(stream, states, yielded, fresh)

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
                yield from self._search.backfill(stream, since, yielded)
            else:
                yield from self._comments.backfill(stream, since, yielded)

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

