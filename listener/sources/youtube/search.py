"""The video search walk of a brand: new videos found by its query down to the mark, read in
full with their uploaders' subscriber counts, and the same searches window by window for a
backfill."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from listener.core.models import Clock, Page, Post, Rejected, parse_iso_or_none
from listener.sources.cursor import SeenIds
from listener.sources.youtube.api import BATCH, YouTubeApi
from listener.sources.youtube.config import YouTubeSourceConfig
from listener.sources.youtube.items import SearchState, iso, subscribers, video_post
from listener.sources.youtube.streams import Skip, Stream

log = logging.getLogger("listener.sources.youtube")  # the package's, as api.py and items.py

SEARCH_PAGE_MAX = 50  # search.list's maxResults limit


class SearchWalk:
    """Searches new videos mentioning a brand for one source."""

    def __init__(self, api: YouTubeApi, config: YouTubeSourceConfig, name: str, clock: Clock,
                 dump: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.api, self.config, self.name, self.clock, self.dump = api, config, name, clock, dump

    def poll(self, stream: Stream, states: dict[str, Any], yielded: set[str]) -> Iterator[Page]:
        """New videos of a brand's search down to the mark, at most every
        ``search_interval`` seconds; the stream's entry moves on its last page."""
        old: SearchState | None = states.get(stream.key)
        now = self.clock()
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
        skip = Skip(seen, yielded)
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
                yield Page(posts, self.dump(states), rejected + more)
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
            yield Page(posts, self.dump(states), rejected + more)
            return

    def _search(self, stream: Stream, after: datetime, before: datetime | None,
                token: str | None) -> dict[str, Any]:
        size = min(self.config.page_size, SEARCH_PAGE_MAX)
        return self.api.search(stream.label, stream.query or "", after, before, token, size)

    def _hits(self, items: list[Any], stream: Stream, number: int, skip: Skip
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

    def _videos(self, stream: Stream, ids: list[str], skip: Skip
                ) -> tuple[list[Post], list[Rejected]]:
        """The videos as posts (``videos.list``) with their channels' subscriber counts
        (``channels.list``); a video missing from the answer (deleted, private) is skipped."""
        if not ids:
            return [], []
        body = self.api.videos(f"{stream.label} videos", ids)
        found = {v["id"]: v for v in body["items"]
                 if isinstance(v, dict) and isinstance(v.get("id"), str)}
        channels = list(dict.fromkeys(
            c for v in found.values() if isinstance(v.get("snippet"), dict)
            and isinstance(c := v["snippet"].get("channelId"), str)))
        followers: dict[str, int | None] = {}
        if channels:
            answer = self.api.channels(f"{stream.label} channels", channels[:BATCH])
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

    def backfill(self, stream: Stream, since: datetime, yielded: set[str]) -> Iterator[Page]:
        """Videos back to ``since``, window by window (``publishedBefore`` below the oldest
        video the last window reached: YouTube serves about 500 results per query)."""
        skip = Skip(SeenIds(), yielded)
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
