"""The comment walk of a channel or a video: new threads down to the mark, their replies, the
watched threads re-counted for new replies, and the same threads paged back for a backfill."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from listener.core.errors import SourceError
from listener.core.models import Clock, Page, Post, Rejected, parse_iso_or_none
from listener.sources.cursor import SeenIds
from listener.sources.youtube.api import BATCH, BadPageToken, Unavailable, YouTubeApi
from listener.sources.youtube.config import YouTubeSourceConfig
from listener.sources.youtube.items import CommentState, Watched, comment_post, iso, read_comment
from listener.sources.youtube.streams import Skip, Stream

log = logging.getLogger("listener.sources.youtube")  # the package's, as api.py and items.py


@dataclass
class _Read:
    """What one page of comment threads gave."""

    posts: list[Post] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # thread and reply ids collected
    threads: list[Watched] = field(default_factory=list)  # new threads, newest first
    newest: datetime | None = None
    reached: bool = False  # a thread older than the floor: the rest is older still


class CommentWalk:
    """Reads the comment threads and replies of channels and videos for one source."""

    def __init__(self, api: YouTubeApi, config: YouTubeSourceConfig, name: str, clock: Clock,
                 dump: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.api, self.config, self.name, self.clock, self.dump = api, config, name, clock, dump

    def poll(self, stream: Stream, states: dict[str, Any], yielded: set[str],
             fresh_ids: set[str]) -> Iterator[Page]:
        """New threads of a channel or video, newest first down to the mark; ``fresh_ids``
        gets the threads read (their reply counts are current)."""
        state: CommentState = states.get(stream.key) or CommentState()
        now = self.clock()
        floor = parse_iso_or_none(state.mark) or now - timedelta(seconds=self.config.initial_lookback)
        pending = state.pending
        token = pending["page_token"] if pending else None
        newest = parse_iso_or_none(pending["newest"]) if pending else None
        skip = Skip(state.seen, yielded)
        ids: list[str] = []
        fresh: list[Watched] = []
        number = 0
        while number < self.config.max_pages:
            number += 1
            try:
                body = self.api.comment_threads(stream.label, token, self.config.page_size,
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
                yield Page([], self.dump(states))  # keeps the quota spent
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
                yield Page(read.posts, self.dump(states), read.rejected)
                continue
            states[stream.key] = self._next_comment_state(stream, state, ids, fresh, newest,
                                                          floor, None if done else token)
            yield Page(read.posts, self.dump(states), read.rejected)
            return
        # every page this poll allowed went to a refused page token: read afresh next poll
        states[stream.key] = CommentState(state.mark, state.seen, state.watched)
        yield Page([], self.dump(states))

    def _next_comment_state(self, stream: Stream, state: CommentState, ids: list[str],
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

    def _threads(self, items: list[Any], stream: Stream, where: str, floor: datetime,
                 skip: Skip) -> _Read:
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

    def _replies(self, items: list[Any], stream: Stream, video: str | None, thread: str,
                 after: datetime, skip: Skip, read: _Read) -> datetime:
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

    def _all_replies(self, stream: Stream, thread: str) -> list[Any]:
        """Every reply of ``thread`` (``comments.list``, at most ``max_pages`` pages); none when
        the thread is gone."""
        items: list[Any] = []
        token: str | None = None
        for _ in range(self.config.max_pages):
            try:
                body = self.api.replies(f"{stream.label} thread {thread}", thread, token,
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

    def recheck(self, stream: Stream, states: dict[str, Any], yielded: set[str],
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
            skip = Skip(state.seen, yielded)
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
            yield Page(read.posts, self.dump(states), read.rejected)

    def _watched_threads(self, stream: Stream, batch: list[Watched]) -> list[Any]:
        """The threads of ``batch`` that still exist. YouTube leaves deleted ones out of the
        answer, or (documented as 404 ``commentThreadNotFound``) refuses the whole request:
        then each is asked for alone, and those refused are gone."""
        what = f"{stream.label} watched threads"
        try:
            return list(self.api.threads_by_id(what, [w.thread for w in batch])["items"])
        except Unavailable:
            if len(batch) == 1:
                return []
        items: list[Any] = []
        for watched in batch:
            try:
                items += self.api.threads_by_id(what, [watched.thread])["items"]
            except Unavailable:
                log.debug("source %s: %s: thread %s is gone", self.name, stream.label,
                          watched.thread)
        return items

    def backfill(self, stream: Stream, since: datetime, yielded: set[str]) -> Iterator[Page]:
        """Threads (with their replies) paged back to threads posted at ``since``, at most
        ``backfill_max_pages`` pages. Pages carry ``cursor=None``."""
        skip = Skip(SeenIds(), yielded)
        token: str | None = None
        for number in range(1, self.config.backfill_max_pages + 1):
            try:
                body = self.api.comment_threads(stream.label, token, self.config.page_size,
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
