"""Instagram: comments on the brand's professional account's media, and the media it is tagged
in, through the Instagram Graph API (Instagram API with Facebook Login; see :mod:`.graph`).

A poll lists the account's ``lookback_media`` most recent media (``GET /{ig-user-id}/media``
with ``comments_count``) and reads the comments of each media whose ``comments_count`` changed
since its last complete cycle (``GET /{ig-media-id}/comments``, replies through the
``replies{…}`` field): a media nobody commented on costs no request. Meta documents no order for
this edge, and a new reply sits under its (perhaps old) comment, so such a cycle reads every page
(``max_pages`` per media and poll, then a pending resume) and collects the comments and replies
newer than the media's mark minus ``overlap`` that it has not seen (:mod:`.walk`). The count
taken is the one listed when the cycle began, so a comment added meanwhile starts another.
With ``tags`` true, ``GET /{ig-user-id}/tags`` (the media the account is tagged in, newest first)
is read too: each tagged media is a post of its own, its caption the text.

Everything here is about the brand whether or not it is named, as an app's reviews are: the
source does not search (``searches = False``), every item is kept and tagged with ``brand``;
``brands:`` on the source makes the collect stage keep only what those brands' queries accept.

Left out, because Meta only serves them to webhooks: ``@mentions`` of the account in other
people's captions and comments (``mentioned_media`` / ``mentioned_comment`` take the media or
comment id that the ``mentions`` webhook delivers; there is no listing to poll), and comments on
ads (another comment type, read through the Marketing API). A comment's replies beyond the first
page of the ``replies`` field are not read. An unchanged ``comments_count`` after one comment
was deleted and another added between two polls hides the new one until the count moves again.

Fields: ``author`` is the commenter's ``username`` (``instagram_manage_comments`` is needed for
it); ``author_followers`` is None: Graph shows a follower count only for professional accounts
through business discovery, one extra request per author, and never for commenters' personal
accounts. No language is given (the pipeline detects it). A comment's URL is its media's
``permalink`` with ``?comment_id=``. A media deleted between the listing and its comments (Graph
error 100/33) is skipped, not the poll failed; deleted comments are no longer listed.

Token: a User or system-user token of someone who manages the account, with
``instagram_basic``, ``instagram_manage_comments`` and ``pages_read_engagement``
(``pages_show_list`` to find the account). Instagram calls are subject to business-use-case
rate limits (``x-business-use-case-usage``); the source pauses itself at ``usage_threshold``.
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
from listener.sources.meta.graph import GraphClient, GraphMissing, GraphSettings, graph_time
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

PLATFORM = "instagram"
PERMISSIONS = "instagram_basic, instagram_manage_comments and pages_read_engagement"
MEDIA_FIELDS = "id,caption,timestamp,permalink,comments_count"
TAG_FIELDS = "id,caption,timestamp,permalink,username"
REPLY_FIELDS = "id,text,timestamp,username,like_count"
COMMENT_FIELDS = f"id,text,timestamp,username,like_count,replies{{{REPLY_FIELDS}}}"
TAGS = "tags"  # the cursor entry of the tagged media
BACKFILL_MAX_PAGES = 1000


class InstagramSourceConfig(GraphSettings):
    """Keys of a ``type: instagram`` source."""

    account_id: str = Field(
        pattern=r"^[0-9]{1,25}$",
        description="the Instagram professional account's id (ig-user-id: GET /{page-id}"
        "?fields=instagram_business_account), not its @username",
    )
    lookback_media: int = Field(
        10, ge=1, le=100,
        description="how many of the account's most recent media have their comments read",
    )
    tags: bool = Field(
        True, description="also collect media other accounts tagged the account in",
    )


class InstagramSource:
    """Comments on the recent media of one Instagram professional account, and its tags."""

    Config: ClassVar[type[SourceConfig]] = InstagramSourceConfig
    type: ClassVar[str] = "instagram"
    searches: ClassVar[bool] = False  # comments on the brand's own account are all relevant

    def __init__(self, config: InstagramSourceConfig, ctx: SourceContext) -> None:
        self.config, self.ctx, self.name = config, ctx, config.name
        self.graph = GraphClient(config, ctx, "Instagram", PERMISSIONS)

    def close(self) -> None:
        self.graph.close()

    # -- the entry points --------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New comments on the recent media (those whose count moved), then new tags."""
        states = load_states(cursor, self.name)
        first = cursor is None
        media = self._media()
        keys = {_key(m) for m in media} | ({TAGS} if self.config.tags else set())
        walker = Walker(self.graph, self.name, self.config.max_pages, self.config.overlap,
                        {k: v for k, v in states.items() if k in keys})
        floor = self.ctx.clock() - timedelta(seconds=self.config.initial_lookback) \
            if first else None
        saved = False
        for item in media:
            state = walker.states.get(_key(item)) or ThreadState(since=floor)
            count = item.get("comments_count")
            count = count if type(count) is int and count >= 0 else None
            if state.pending is None and count is not None and count == state.count:
                continue  # nobody commented since the last complete cycle
            if state.pending is None and count == 0:
                walker.states[_key(item)] = ThreadState(state.since, state.seen, 0)
                continue
            thread = Thread(_key(item), f"{item['id']}/comments",
                            {"fields": COMMENT_FIELDS, "limit": self.config.page_size},
                            newest_first=False, count=count, label=f"media {item['id']}")
            for page in walker.walk(thread, state, self._comments(item)):
                saved = saved or page.cursor is not None
                yield page
        if self.config.tags:
            state = walker.states.get(TAGS) or ThreadState(since=floor)
            for page in walker.walk(self._tags_thread(), state, self._tagged()):
                saved = saved or page.cursor is not None
                yield page
        if not saved and walker.cursor() != cursor:
            yield Page([], walker.cursor())

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Comments made since ``since`` on the media published since then (plus the recent
        ``lookback_media``), and the media tagged since then. Pages carry ``cursor=None``."""
        media: dict[str, dict[str, Any]] = {}
        params = {"fields": MEDIA_FIELDS, "limit": self.config.page_size}
        for listing in self.graph.pages(f"{self.config.account_id}/media", params,
                                        BACKFILL_MAX_PAGES):
            dated = [(m, graph_time(m.get("timestamp"))) for m in self._valid(listing.items)]
            media.update((m["id"], m) for m, at in dated if at is None or at >= since)
            if any(at is not None and at < since for _, at in dated):
                break  # newest first: the rest is older
        for item in self._media():
            media.setdefault(item["id"], item)
        walker = Walker(self.graph, self.name, BACKFILL_MAX_PAGES, 0, {})
        for item in media.values():
            thread = Thread(_key(item), f"{item['id']}/comments",
                            {"fields": COMMENT_FIELDS, "limit": self.config.page_size},
                            newest_first=False, label=f"media {item['id']}")
            for page in walker.walk(thread, ThreadState(since=since), self._comments(item)):
                yield Page(page.posts, None, page.rejected)
        if self.config.tags:
            for page in walker.walk(self._tags_thread(), ThreadState(since=since),
                                    self._tagged()):
                yield Page(page.posts, None, page.rejected)

    def check(self) -> str:
        """``listener doctor``: reads the account's username with the token (one request)."""
        body = self.graph.get(self.config.account_id, {"fields": "id,username"})
        return (f"token accepted; Instagram account @{body.get('username')} ({body.get('id')}) "
                f"readable with Graph {self.config.graph_version}")

    # -- listings ----------------------------------------------------------------------------

    def _media(self) -> list[dict[str, Any]]:
        try:
            listing = self.graph.listing(f"{self.config.account_id}/media",
                                         {"fields": MEDIA_FIELDS,
                                          "limit": self.config.lookback_media})
        except GraphMissing as exc:
            raise SourceError(f"{exc}; check account_id (the ig-user-id of the professional "
                              "account, not its @username)") from exc
        return self._valid(listing.items)

    def _valid(self, items: list[Any]) -> list[dict[str, Any]]:
        valid = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                valid.append(item)
            else:
                log.warning("source %s: a media without an id was skipped: %.100r",
                            self.name, item)
        return valid

    def _tags_thread(self) -> Thread:
        return Thread(TAGS, f"{self.config.account_id}/tags",
                      {"fields": TAG_FIELDS, "limit": self.config.page_size},
                      newest_first=True, label="tagged media")

    # -- items to posts ----------------------------------------------------------------------

    def _comments(self, media: dict[str, Any]) -> Convert:
        permalink = text_or_none(media.get("permalink"))

        def convert(items: list[Any], number: int) -> tuple[list[Item], list[Rejected]]:
            out: list[Item] = []
            rejected: list[Rejected] = []
            for index, item in enumerate(items):
                where = f"instagram media {media['id']} comments page {number} item {index}"
                try:
                    out.append(self._comment(item, media, permalink, None))
                except (TypeError, ValueError) as exc:
                    rejected.append(Rejected(where, str(exc)))
                    continue
                parent = out[-1][0]
                replies = item.get("replies")
                data = replies.get("data") if isinstance(replies, dict) else None
                for number_r, reply in enumerate(data if isinstance(data, list) else []):
                    try:
                        out.append(self._comment(reply, media, permalink, parent))
                    except (TypeError, ValueError) as exc:
                        rejected.append(Rejected(f"{where} reply {number_r}", str(exc)))
            return out, rejected

        return convert

    def _comment(self, item: Any, media: dict[str, Any], permalink: str | None,
                 parent: str | None) -> Item:
        comment_id, at = item_id_and_time(item, "timestamp")
        text = check_text(item.get("text"), "text")
        username = text_or_none(item.get("username"))
        url = f"{permalink}{'&' if '?' in permalink else '?'}comment_id={comment_id}" \
            if permalink else None
        if not text:
            return comment_id, at, None
        return comment_id, at, Post(
            platform=PLATFORM, platform_id=comment_id, text=text, created_at=at,
            source=self.name, url=url, author=username, author_followers=None, lang=None,
            kind="mention", brand=self.config.brand, thread=media["id"],
            raw={"id": comment_id, "media_id": media["id"], "media_url": permalink,
                 "parent_id": parent, "like_count": item.get("like_count"),
                 "kind": "reply" if parent else "comment"},
        )

    def _tagged(self) -> Convert:
        def convert(items: list[Any], number: int) -> tuple[list[Item], list[Rejected]]:
            out: list[Item] = []
            rejected: list[Rejected] = []
            for index, item in enumerate(items):
                try:
                    media_id, at = item_id_and_time(item, "timestamp")
                    text = check_text(item.get("caption"), "caption")
                except (TypeError, ValueError) as exc:
                    rejected.append(Rejected(f"instagram tags page {number} item {index}",
                                             str(exc)))
                    continue
                out.append((media_id, at, None if not text else Post(
                    platform=PLATFORM, platform_id=media_id, text=text, created_at=at,
                    source=self.name, url=text_or_none(item.get("permalink")),
                    author=text_or_none(item.get("username")), author_followers=None,
                    kind="mention", brand=self.config.brand, thread=media_id,
                    raw={"id": media_id, "kind": "tag"})))
            return out, rejected

        return convert


def _key(media: dict[str, Any]) -> str:
    return f"media:{media['id']}"
