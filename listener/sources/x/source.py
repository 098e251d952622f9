"""Posts from X (Twitter) API v2 recent search, one query per brand, plus optional mentions.

Each brand's query is translated to X's syntax (:func:`x_query`), without retweets (a retweet is
not a new post; quote posts are) and narrowed to the brand's language when it has exactly one.
Recent search returns posts newest first, within and across pages, and ``since_id`` is exclusive,
so one poll of one brand is a *cycle*: ask with ``since_id``, follow ``next_token`` with the same
``since_id``, take the new high-water mark from the first page's ``meta.newest_id``, and save it
only on the cycle's last page (middle pages carry ``cursor=None``; advancing early would leave a
gap that can never be filled once the 7-day search window has passed). A cycle is bounded by
``max_pages``; when a cycle stops with pages left, the cursor keeps the old ``since_id`` plus the
``next_token`` and the pending ``newest_id``, and the next poll finishes the cycle first
(``next_token`` does not expire). Only a brand's very first poll stops there for good: what lies
further back is history, which ``listener backfill`` fetches.

With ``mentions_of`` (numeric user ids of your own accounts), ``GET /2/users/:id/mentions`` is
polled the same way; each mention is tagged with the first brand whose query accepts it, else
the source's ``brand``.

A post's time is its ``created_at``; when that is missing or unreadable it is read from the post's
id (a snowflake: ``id >> 22`` is milliseconds since 2010-11-04T01:42:54.657Z), and a post is
rejected only when neither gives a time (``_x_transport.created_at_of``).

Each post's ``thread`` is its ``conversation_id`` (requested in ``tweet.fields``), so alerts
about replies are threaded in Slack under the alert about the conversation's first post.

tweepy's host is fixed and its client has no timeout: ``_x_transport`` mounts an adapter that
sends every request to ``base_url`` with ``ctx.http_timeout``, and masks the bearer token in
tweepy's DEBUG log lines. The cursor's format is described in ``_x_cursor``.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from listener.core.errors import ConfigError, MissingDependency
from listener.core.httpguard import GuardSettings, source_policy
from listener.core.log import register_secret
from listener.core.models import Page, Post, Rejected
from listener.core.query import Brand, Or, to_x
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.http import USER_AGENT
from listener.sources.x.cursor import load_cursor
from listener.sources.x.transport import (
    X_API_URL,
    XBadRequest,
    call_x,
    conversation_of,
    created_at_of,
    followers_of,
    install_transport,
    is_retweet,
    lang_of,
    max_id,
    parse_response,
    post_id_of,
    redact_tweepy_logs,
    text_of,
)

log = logging.getLogger(__name__)

SEARCH_WINDOW = timedelta(days=7)
"""Recent search reaches back 7 days; backfill starts one minute inside that window."""

TWEET_FIELDS = [
    "created_at", "lang", "author_id", "public_metrics", "referenced_tweets", "conversation_id",
    "note_tweet",  # the full text of posts longer than 280 characters
]
USER_FIELDS = ["username", "public_metrics"]

UserId = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v),
    StringConstraints(pattern=r"^[0-9]{1,20}$"),
]


class XSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: x`` source."""

    bearer_token: str | None = Field(
        None,
        repr=False,
        description='app-only bearer token of an X project with recent search; set it as '
        '{"$env": X_BEARER_TOKEN}, never in the file',
    )
    base_url: str = Field(
        X_API_URL,
        description="API root; tweepy's fixed host is rewritten to it (proxies, gateways, tests)",
    )
    max_pages: int = Field(
        10, ge=1, le=1000, description="pages of up to 100 posts per brand per poll"
    )
    backfill_max_pages: int = Field(
        100, ge=1, le=100000, description="pages of up to 100 posts per brand for a backfill"
    )
    max_query_length: int = Field(
        512,
        ge=1,
        le=4096,
        description="longest query X accepts: 512 on self-serve plans, 4096 on Enterprise",
    )
    mentions_of: list[UserId] = Field(
        default_factory=list,
        description="numeric user ids of your own accounts whose mentions are polled too",
    )
    usage_cap_reset_day: int = Field(
        1,
        ge=1,
        le=31,
        description="day of the month (UTC) your project's monthly post cap resets; after "
        "UsageCapExceeded the source pauses until then",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
            raise ValueError("base_url must be an http(s) URL such as https://api.twitter.com")
        return value.rstrip("/")


@dataclass(frozen=True)
class _Feed:
    """One thing polled: a brand's search or one account's mentions."""

    group: str  # "brands" or "mentions": the cursor section
    key: str  # brand name or user id
    brand: Brand | None = None
    query: str | None = None

    @property
    def label(self) -> str:
        return f"search {self.key}" if self.group == "brands" else f"mentions of {self.key}"


def x_query(brand: Brand) -> str:
    """The brand's query in X syntax, without retweets, in its one language if it has one."""
    text = to_x(brand.query)
    if isinstance(brand.query, Or):
        text = f"({text})"  # X's AND binds tighter than OR: keep the filters on every branch
    parts = [text, "-is:retweet"]
    if brand.languages is not None and len(brand.languages) == 1:
        parts.append(f"lang:{next(iter(brand.languages))}")
    return " ".join(parts)


class XSource:
    """Recent search per brand (and optional mentions) through tweepy's v2 ``Client``."""

    type: ClassVar[str] = "x"
    searches: ClassVar[bool] = True
    Config: ClassVar[type[SourceConfig]] = XSourceConfig

    def __init__(self, config: XSourceConfig, ctx: SourceContext) -> None:
        try:
            import tweepy
        except ImportError:
            raise MissingDependency("tweepy", "twitter") from None
        self.config, self.ctx, self.name = config, ctx, config.name
        if not config.bearer_token:
            raise ConfigError(
                f"source '{self.name}': bearer_token is required; set it to "
                '{"$env": X_BEARER_TOKEN} and export the token of your X project',
                key="bearer_token",
            )
        self._feeds = self._build_feeds()
        register_secret(config.bearer_token)
        redact_tweepy_logs()
        self._client = tweepy.Client(
            bearer_token=config.bearer_token, wait_on_rate_limit=False, return_type=dict
        )
        self._client.user_agent = f"{USER_AGENT} {self._client.user_agent}"
        self._transport = install_transport(
            self._client.session, config.base_url, ctx.http_timeout,
            source_policy(config.name, config, [config.base_url]),
        )

    def _build_feeds(self) -> list[_Feed]:
        feeds = []
        for brand in self.ctx.brands:
            query = x_query(brand)
            if len(query) > self.config.max_query_length:
                raise ConfigError(
                    f"source '{self.name}': brand '{brand.name}' becomes an X query of "
                    f"{len(query)} characters, over the {self.config.max_query_length} X "
                    "accepts (512 on self-serve plans, 4096 on Enterprise); shorten the query "
                    "or split the brand",
                    key="max_query_length",
                )
            feeds.append(_Feed("brands", brand.name, brand, query))
        feeds += [_Feed("mentions", user_id) for user_id in dict.fromkeys(self.config.mentions_of)]
        if not feeds:
            raise ConfigError(
                f"source '{self.name}': nothing to poll: no brands to search and no mentions_of",
                key="brands",
            )
        return feeds

    # -- live polling ----------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New posts of every brand (and mentions feed), one cycle each, from ``cursor``."""
        state = load_cursor(cursor, self.name)
        seen: set[str] = set()  # a post found by two brands in one poll is yielded once
        for feed in self._feeds:
            yield from self._cycle(feed, state, seen)

    def _cycle(self, feed: _Feed, state: dict[str, Any], seen: set[str]) -> Iterator[Page]:
        entry = state[feed.group].get(feed.key, {})
        since_id, newest = entry.get("since_id"), entry.get("newest_id")
        token = entry.get("next_token")
        limit = self.config.max_pages
        responses = self._responses(feed, limit, since_id, token)
        try:
            first = next(responses)
        except XBadRequest:
            if token is None:
                raise
            log.warning("source %s: %s: X refused the saved next_token; starting this cycle "
                        "again from since_id %s", self.name, feed.label, since_id)
            newest = token = None
            responses = self._responses(feed, limit, since_id, None)
            first = next(responses)
        for number, data, users, meta in itertools.chain([first], responses):
            newest = newest or meta.get("newest_id") or max_id(data)
            token = meta.get("next_token")
            posts, rejected = self._convert(feed, data, users, seen)
            if token and number < limit:
                yield Page(posts=posts, cursor=None, rejected=rejected)
                continue
            cursor = self._finish(feed, state, since_id, newest, token)
            if posts or rejected or cursor is not None:
                yield Page(posts=posts, cursor=cursor, rejected=rejected)

    def _finish(
        self, feed: _Feed, state: dict[str, Any], since_id: str | None, newest: str | None,
        token: str | None,
    ) -> dict[str, Any] | None:
        """Record the end of a cycle in ``state``; the full cursor, or None if unchanged."""
        if newest is None:
            return None  # nothing seen, nothing pending: the cursor stays
        if token is None:
            entry: dict[str, str] = {"since_id": newest}
        elif since_id is None:
            log.info(
                "source %s: %s: first poll stopped after %d pages; older posts are history "
                "(use `listener backfill`)", self.name, feed.label, self.config.max_pages,
            )
            entry = {"since_id": newest}
        else:
            log.warning(
                "source %s: %s: more than %d pages of new posts; the next poll continues "
                "where this one stopped (poll more often or raise max_pages)",
                self.name, feed.label, self.config.max_pages,
            )
            entry = {"since_id": since_id, "next_token": token, "newest_id": newest}
        if state[feed.group].get(feed.key) == entry:
            return None
        state[feed.group][feed.key] = entry
        return copy.deepcopy(state)

    def check(self) -> str:
        """``listener doctor``: one request of the first feed, over the last minute only.

        It proves the token, the access tier (search needs Basic or above) and the query; the
        one-minute window keeps what it reads off the monthly post cap in all but busy feeds.
        """
        feed = self._feeds[0]
        start = self.ctx.clock() - timedelta(minutes=1)
        body = call_x(
            self.name, self._transport, self.ctx.clock(), self.config.usage_cap_reset_day,
            lambda: self._request(feed, None, None, start),
        )
        data, _users, _meta = parse_response(body, self.name, feed.label)
        return f"token accepted; {feed.label} answered ({len(data)} post(s) in the last minute)"

    # -- history ---------------------------------------------------------------------------

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Posts since ``since``, as far as X allows; pages carry ``cursor=None``.

        Recent search covers only the last 7 days, so ``since`` is moved up to seven days ago
        plus one minute (the margin keeps a slow request inside the window). The mentions
        timeline holds about the 800 most recent mentions and is asked from ``since`` as given.
        """
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        earliest = self.ctx.clock() - SEARCH_WINDOW + timedelta(minutes=1)
        seen: set[str] = set()
        limit = self.config.backfill_max_pages
        for feed in self._feeds:
            start = max(since, earliest) if feed.group == "brands" else since
            for number, data, users, meta in self._responses(feed, limit, start_time=start):
                posts, rejected = self._convert(feed, data, users, seen)
                if posts or rejected:
                    yield Page(posts=posts, cursor=None, rejected=rejected)
                if number == limit and meta.get("next_token"):
                    log.warning("source %s: %s: backfill stopped after backfill_max_pages=%d",
                                self.name, feed.label, limit)

    # -- requests --------------------------------------------------------------------------

    def _responses(
        self, feed: _Feed, limit: int, since_id: str | None = None, token: str | None = None,
        start_time: datetime | None = None,
    ) -> Iterator[tuple[int, list[Any], dict[str, dict[str, Any]], dict[str, Any]]]:
        """``(page number, data, users by id, meta)`` for up to ``limit`` pages."""
        for number in range(1, limit + 1):
            body = call_x(
                self.name, self._transport, self.ctx.clock(), self.config.usage_cap_reset_day,
                lambda token=token: self._request(feed, since_id, token, start_time),
            )
            data, users, meta = parse_response(body, self.name, feed.label)
            yield number, data, users, meta
            token = meta.get("next_token")
            if not token:
                return

    def _request(
        self, feed: _Feed, since_id: str | None, token: str | None, start_time: datetime | None
    ) -> Any:
        common: dict[str, Any] = {
            "since_id": since_id, "start_time": start_time, "max_results": 100,
            "tweet_fields": TWEET_FIELDS, "expansions": ["author_id"], "user_fields": USER_FIELDS,
        }
        if feed.group == "brands":
            return self._client.search_recent_tweets(
                feed.query, next_token=token, sort_order="recency", **common
            )
        return self._client.get_users_mentions(feed.key, pagination_token=token, **common)

    # -- posts -----------------------------------------------------------------------------

    def _convert(
        self, feed: _Feed, data: list[Any], users: dict[str, dict[str, Any]], seen: set[str]
    ) -> tuple[list[Post], list[Rejected]]:
        posts: list[Post] = []
        rejected: list[Rejected] = []
        for index, item in enumerate(data):
            result = self._to_post(feed, item, users)
            if isinstance(result, Rejected):
                where = f"x {feed.label}: post {post_id_of(item) or f'#{index}'}"
                rejected.append(Rejected(where=where, reason=result.reason))
            elif result is not None and result.platform_id not in seen:
                seen.add(result.platform_id)
                posts.append(result)
        return posts, rejected

    def _to_post(
        self, feed: _Feed, item: Any, users: dict[str, dict[str, Any]]
    ) -> Post | Rejected | None:
        """A Post, a Rejected for a malformed item, or None for a retweet (not a new post)."""
        post_id = post_id_of(item)
        if post_id is None:
            return Rejected("", "post without a numeric string 'id'")
        text = text_of(item)
        if text is None:
            return Rejected("", "post without 'text'")
        created_at = created_at_of(item, post_id)
        if created_at is None:
            return Rejected("", f"bad or missing 'created_at' ({item.get('created_at')!r}) "
                            "and an id that is not a snowflake")
        if is_retweet(item):
            log.debug("x %s: retweet skipped", post_id)
            return None
        user = users.get(str(item.get("author_id")))
        author = user.get("username") if user and isinstance(user.get("username"), str) else None
        lang = lang_of(item.get("lang"))
        brand = feed.brand.name if feed.brand else self._brand_of(text, lang, author)
        return Post(
            platform="x", platform_id=post_id, text=text, created_at=created_at,
            source=self.name,
            url=f"https://x.com/{author}/status/{post_id}" if author
            else f"https://x.com/i/web/status/{post_id}",
            author=author, author_followers=followers_of(user), lang=lang, kind="mention",
            brand=brand, raw=dict(item), thread=conversation_of(item) or post_id,
        )

    def _brand_of(self, text: str, lang: str | None, author: str | None) -> str | None:
        """A mention's brand: the first whose query accepts it, else the source's ``brand``."""
        found = next((b for b in self.ctx.brands if b.accepts(text, lang, author)), None)
        return found.name if found else self.config.brand
