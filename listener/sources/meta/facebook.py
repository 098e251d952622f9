"""Facebook: comments on the brand's own Page posts, through the Graph API (see :mod:`.graph`).

A poll lists the Page's ``lookback_posts`` most recent posts (``GET /{page-id}/posts``, newest
first) and reads each post's comments with ``GET /{post-id}/comments?filter=stream&order=
reverse_chronological``: every comment and reply, newest first, so a cycle stops at the first
page that reaches comments older than the post's mark (:mod:`.walk`: per post the newest comment
time plus the recent ids, ``max_pages`` per post and poll with a pending resume). A post that
leaves the most recent ``lookback_posts`` is no longer read and its cursor entry is dropped.

Comments on the brand's own Page are about the brand whether they name it or not, as an app's
reviews are: the source does not search (``searches = False``), every comment is kept and
tagged with ``brand``. With ``brands:`` set on the source, the collect stage keeps only the
comments those brands' queries accept. Visitor posts (``/{page-id}/visitor_posts``) are read
too, as posts of their own, when ``visitor_posts`` is true, and their comments like any post's.

Fields: ``from`` (the commenter) is only returned where the Page token may show it (Meta hides
users who did not grant it; ``pages_read_user_content`` is needed): without it ``author`` is
None. Graph gives no follower counts for commenters: ``author_followers`` stays None, and no
language either (the pipeline detects it). A comment's URL is its ``permalink_url``, else the
post's permalink with ``?comment_id=``. Deleted comments are simply no longer listed; a post
deleted between the listing and its comments (Graph error 100/33) is skipped, not the poll
failed. Comments with no text (a sticker or photo only) are skipped.

Token: a Page access token (long-lived, from a system user ideally) with ``pages_read_engagement``
and ``pages_read_user_content`` (``pages_show_list`` to find it). Page tokens are subject to
Meta's business-use-case rate limits, reported in ``x-business-use-case-usage``; the source
pauses itself at ``usage_threshold`` percent (:mod:`.graph`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from listener.core.errors import SourceError
from listener.core.models import Page, Post, Rejected
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.meta.graph import GraphClient, GraphMissing, GraphSettings
from listener.sources.meta.walk import (
    Convert,
    Item,
    Thread,
    ThreadState,
    Walker,
    check_text,
    item_id_and_time,
    load_states,
    text_or_none,
)

log = logging.getLogger("listener.sources.meta")

PLATFORM = "facebook"
PERMISSIONS = "pages_read_engagement and pages_read_user_content (a Page access token)"
POST_FIELDS = "id,message,created_time,permalink_url"
VISITOR_FIELDS = "id,message,created_time,permalink_url,from{id,name}"
COMMENT_FIELDS = "id,message,created_time,from{id,name},permalink_url,parent{id}"
VISITORS = "visitors"  # the cursor entry of the visitor posts themselves
BACKFILL_MAX_PAGES = 1000  # pages per post (and of posts) a backfill reads at most


class FacebookSourceConfig(GraphSettings):
    """Keys of a ``type: facebook`` source."""

    page_id: str = Field(
        pattern=r"^[0-9]{1,25}$",
        description="numeric id of the brand's Facebook Page (Page > About > Page transparency, "
        "or GET /me with the Page token)",
    )
    lookback_posts: int = Field(
        10, ge=1, le=100,
        description="how many of the Page's most recent posts have their comments read each poll",
    )
    visitor_posts: bool = Field(
        False, description="also collect posts visitors wrote on the Page (and their comments)",
    )


class FacebookSource:
    """Comments on the recent posts of one Facebook Page."""

    Config: ClassVar[type[SourceConfig]] = FacebookSourceConfig
    type: ClassVar[str] = "facebook"
    searches: ClassVar[bool] = False  # comments on the brand's own Page are all relevant

    def __init__(self, config: FacebookSourceConfig, ctx: SourceContext) -> None:
        self.config, self.ctx, self.name = config, ctx, config.name
        self.graph = GraphClient(config, ctx, "Facebook", PERMISSIONS)

    def close(self) -> None:
        self.graph.close()

    # -- the entry points --------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New comments on each recent post; a post's mark moves with its cycle's last page."""
        states = load_states(cursor, self.name)
        first = cursor is None
        posts = self._recent(f"{self.config.page_id}/posts", POST_FIELDS)
        visitors = self._recent(f"{self.config.page_id}/visitor_posts", VISITOR_FIELDS) \
            if self.config.visitor_posts else []
        listed = {p["id"] for p in posts + visitors} | ({VISITORS} if visitors else set())
        walker = Walker(self.graph, self.name, self.config.max_pages, self.config.overlap,
                        {k: v for k, v in states.items() if k in listed})
        floor = self.ctx.clock() - timedelta(seconds=self.config.initial_lookback) if first else None
        saved = False
        if visitors:
            before = walker.states.get(VISITORS)
            page = self._visitor_page(visitors, walker, floor)
            if page.posts or page.rejected or walker.states[VISITORS] != before:
                saved = True
                yield page
        for post in posts + visitors:
            state = walker.states.get(post["id"]) or ThreadState(since=floor)
            for page in walker.walk(self._thread(post), state, self._converter(post)):
                saved = saved or page.cursor is not None
                yield page
        if not saved and walker.cursor() != cursor:
            yield Page([], walker.cursor())

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Comments made since ``since`` on the posts published since then (plus the recent
        ``lookback_posts``): Graph lists a Page's posts back to its creation, but comments can
        only be reached through their post. Pages carry ``cursor=None``."""
        params = {"fields": POST_FIELDS, "limit": self.config.page_size,
                  "since": int(since.timestamp())}
        posts: dict[str, dict[str, Any]] = {}
        for listing in self.graph.pages(f"{self.config.page_id}/posts", params,
                                        BACKFILL_MAX_PAGES):
            posts.update((p["id"], p) for p in self._valid_posts(listing.items))
        for post in self._recent(f"{self.config.page_id}/posts", POST_FIELDS):
            posts.setdefault(post["id"], post)
        walker = Walker(self.graph, self.name, BACKFILL_MAX_PAGES, 0, {})
        for post in posts.values():
            for page in walker.walk(self._thread(post), ThreadState(since=since),
                                    self._converter(post)):
                yield Page(page.posts, None, page.rejected)

    def check(self) -> str:
        """``listener doctor``: reads the Page's name with the token (one request)."""
        body = self.graph.get(self.config.page_id, {"fields": "id,name"})
        return (f"token accepted; Page {body.get('name')!r} ({body.get('id')}) readable with "
                f"Graph {self.config.graph_version}")

    # -- posts ---------------------------------------------------------------------------------

    def _recent(self, path: str, fields: str) -> list[dict[str, Any]]:
        """The most recent ``lookback_posts`` posts of an edge of the Page, newest first."""
        try:
            listing = self.graph.listing(path, {"fields": fields,
                                                "limit": self.config.lookback_posts})
        except GraphMissing as exc:
            raise SourceError(f"{exc}; check page_id (the numeric id of the Page the token "
                              "belongs to)") from exc
        return self._valid_posts(listing.items)

    def _valid_posts(self, items: list[Any]) -> list[dict[str, Any]]:
        valid = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                valid.append(item)
            else:
                log.warning("source %s: a Page post without an id was skipped: %.100r",
                            self.name, item)
        return valid

    def _thread(self, post: dict[str, Any]) -> Thread:
        params = {"filter": "stream", "order": "reverse_chronological",
                  "fields": COMMENT_FIELDS, "limit": self.config.page_size}
        return Thread(post["id"], f"{post['id']}/comments", params, newest_first=True,
                      label=f"post {post['id']}")

    def _visitor_page(self, visitors: list[dict[str, Any]], walker: Walker,
                      floor: datetime | None) -> Page:
        """The visitor posts themselves, as one page; their ids are kept under ``visitors``."""
        state = walker.states.get(VISITORS) or ThreadState(since=floor)
        convert = self._visitor_converter()
        items, rejected = convert(visitors, 0)
        posts = []
        for item_id, at, post in items:
            if item_id in state.seen or post is None:
                continue
            if state.since is not None and at < state.since - timedelta(seconds=self.config.overlap):
                continue
            posts.append(post)
        newest = max((at for _, at, _ in items), default=None)
        since = max((t for t in (state.since, newest) if t is not None), default=None)
        walker.states[VISITORS] = ThreadState(since, state.seen.merged(i for i, _, _ in items))
        return Page(posts, walker.cursor(), rejected)

    # -- items to posts ----------------------------------------------------------------------

    def _converter(self, post: dict[str, Any]) -> Convert:
        permalink = text_or_none(post.get("permalink_url"))

        def convert(items: list[Any], number: int) -> tuple[list[Item], list[Rejected]]:
            out: list[Item] = []
            rejected: list[Rejected] = []
            for index, item in enumerate(items):
                where = f"facebook post {post['id']} comments page {number} item {index}"
                try:
                    out.append(self._comment(item, post, permalink))
                except (TypeError, ValueError) as exc:
                    rejected.append(Rejected(where, str(exc)))
            return out, rejected

        return convert

    def _comment(self, item: Any, post: dict[str, Any], permalink: str | None) -> Item:
        comment_id, at = item_id_and_time(item, "created_time")
        text = check_text(item.get("message"), "message")
        author = item.get("from")
        name = author.get("name") if isinstance(author, dict) else None
        parent = item.get("parent")
        url = text_or_none(item.get("permalink_url"))
        if url is None and permalink:
            joiner = "&" if "?" in permalink else "?"
            url = f"{permalink}{joiner}comment_id={comment_id.rsplit('_', 1)[-1]}"
        if not text:
            log.debug("source %s: facebook comment %s has no text (sticker or photo); skipped",
                      self.name, comment_id)
            return comment_id, at, None
        return comment_id, at, Post(
            platform=PLATFORM, platform_id=comment_id, text=text, created_at=at,
            source=self.name, url=url, author=name if isinstance(name, str) else None,
            author_followers=None, lang=None, kind="mention", brand=self.config.brand,
            thread=post["id"],
            raw={"id": comment_id, "post_id": post["id"], "post_url": post.get("permalink_url"),
                 "from_id": author.get("id") if isinstance(author, dict) else None,
                 "parent_id": parent.get("id") if isinstance(parent, dict) else None,
                 "kind": "comment"},
        )

    def _visitor_converter(self) -> Convert:
        def convert(items: list[Any], number: int) -> tuple[list[Item], list[Rejected]]:
            out: list[Item] = []
            rejected: list[Rejected] = []
            for index, item in enumerate(items):
                try:
                    post_id, at = item_id_and_time(item, "created_time")
                    text = check_text(item.get("message"), "message")
                except (TypeError, ValueError) as exc:
                    rejected.append(Rejected(f"facebook visitor post {index}", str(exc)))
                    continue
                author = item.get("from")
                name = author.get("name") if isinstance(author, dict) else None
                out.append((post_id, at, None if not text else Post(
                    platform=PLATFORM, platform_id=post_id, text=text, created_at=at,
                    source=self.name, url=text_or_none(item.get("permalink_url")),
                    author=name if isinstance(name, str) else None, kind="mention",
                    brand=self.config.brand, thread=post_id,
                    raw={"id": post_id, "kind": "visitor_post",
                         "from_id": author.get("id") if isinstance(author, dict) else None})))
            return out, rejected

        return convert
