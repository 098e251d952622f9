"""Mastodon: hashtag timelines and, with a user token, full-text status search on one instance.

Mastodon has no global search: an instance sees its users' posts and what federated to it, so a
source watches one instance (``base_url``) through Mastodon.py:

- ``hashtags``: ``GET /api/v1/timelines/tag/:hashtag``, public on most instances (since 4.5 an
  admin may require login for hashtag feeds: the source then says to set ``access_token``). An
  unknown hashtag (404) is simply empty.
- ``search: true``: ``GET /api/v2/search?type=statuses`` with one simple AND-query per DNF branch
  of each brand's query (no OR in Mastodon search). Mastodon runs full-text status search only
  for a logged-in user and only where the admin enabled Elasticsearch/OpenSearch; anonymously it
  finds no statuses at all. Hence ``search`` requires ``access_token`` (scope ``read:search``).

Both are read newest first, paged with ``max_id`` = the oldest id of the previous page (what the
``Link: rel="next"`` header carries; sent by us because Mastodon.py's ``fetch_next`` drops
``since_id``). Ids compare by (length, text): Mastodon's snowflakes and other servers' fixed-width
ids (GoToSocial ULIDs) both sort by time that way. Search turns ``max_id`` into a ``before:`` date
at one-second precision, so search pages ask for a bound two seconds later and drop what was
seen. Boosts are not new posts; followers-only/direct statuses (an authenticated search can return
them) are not public; suspended accounts' statuses are removed content: all are skipped.
``platform_id`` is the status ``uri`` (ActivityPub id), the same on every instance.

Cursor (JSON; every page that carries one carries all streams)::

    {"version": 1, "streams": {"tag:acme": {"since_id": "113..."},
                               "search:acme:\"acme cloud\"": {"since_id": "113...",
                                   "pending": {"max_id": "112...", "newest": "114..."}}}}

``since_id`` moves only on the last page of a stream's cycle. When a poll stops at ``max_pages``
with more left, ``pending`` keeps where paging stopped and the cycle's newest id; the next poll
pages on from there down to ``since_id`` before moving it, so a burst bigger than one poll leaves
no gap. A stream's first poll takes only the latest ``max_pages`` pages (older: ``backfill``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from listener.core.errors import (
    ConfigError,
    ListenerError,
    MissingDependency,
    RateLimited,
    SourceError,
)
from listener.core.httpguard import GuardSettings, refusal_in, source_policy
from listener.core.log import register_secret
from listener.core.models import Page, Post, Rejected
from listener.core.query import to_simple_queries
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.html_text import html_to_text
from listener.sources.http import USER_AGENT, raise_for_status
from listener.sources.mastodon.items import (
    created_at_of,
    dump_cursor,
    id_order,
    load_streams,
    next_window,
    raw_status,
    reset_wait,
    status_ids,
    thread_of,
)

log = logging.getLogger(__name__)

PLATFORM = "mastodon"
_SEARCH_SLACK = 2000 << 16  # two seconds in snowflake units (milliseconds << 16)
_NOT_PUBLIC = frozenset({"private", "direct"})
_HASHTAG = re.compile(r"^[\w\u00b7\u200c]+$")


class MastodonSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: mastodon`` source."""

    base_url: str = Field(description="the instance to read, e.g. https://mastodon.social (each "
                          "instance sees its users' posts and what federated to it)")
    access_token: str | None = Field(None, description="user access token (scopes read:statuses, "
                                     "read:search) as {\"$env\": NAME}; needed for search, and "
                                     "for hashtags where the instance requires login")
    hashtags: list[str] = Field(default_factory=list,
                                description="hashtags to follow, without '#', e.g. [acme]")
    search: bool = Field(False, description="also search statuses for each brand query (one query "
                         "per OR-branch); needs access_token and full-text search on the instance")
    max_pages: int = Field(5, ge=1, le=100, description="pages per hashtag/query per poll")
    page_size: int = Field(40, ge=1, le=40, description="statuses per request (Mastodon max 40)")
    backfill_max_pages: int = Field(200, ge=1, description="pages per hashtag/query, backfilling")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL such as https://mastodon.social, not {value!r}")
        return value.rstrip("/")

    @field_validator("hashtags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        tags = [value.strip().removeprefix("#") for value in values]
        bad = [tag for tag in tags if not _HASHTAG.match(tag)]
        if bad:
            raise ValueError(f"not hashtags (letters, digits, '_' only): {bad}")
        return list(dict.fromkeys(tag.lower() for tag in tags))


@dataclass(frozen=True)
class _Stream:
    """One thing polled: a hashtag timeline, or one search query of one brand."""

    key: str
    hashtag: str | None = None
    query: str | None = None
    brand: str | None = None

    @property
    def label(self) -> str:
        return f"#{self.hashtag}" if self.hashtag else f"search {self.query!r}"


class MastodonSource:
    """New statuses from hashtag timelines and (optionally) brand searches on one instance."""

    type: ClassVar[str] = "mastodon"
    searches: ClassVar[bool] = True  # posts are kept only if a brand query matches them
    Config: ClassVar[type[SourceConfig]] = MastodonSourceConfig

    def __init__(self, config: MastodonSourceConfig, ctx: SourceContext) -> None:
        try:
            import mastodon
            import requests
        except ImportError as exc:
            raise MissingDependency("Mastodon.py", "mastodon") from exc
        self.config, self.ctx, self.name = config, ctx, config.name
        if config.search and not config.access_token:
            raise ConfigError(
                f"source '{self.name}': search needs access_token: Mastodon answers full-text "
                "status searches only for a logged-in user (create a token with read:search "
                "under Preferences > Development)", key="access_token")
        self._streams = self._build_streams()
        if not self._streams:
            raise ConfigError(f"source '{self.name}': nothing to read: list hashtags, or set "
                              "search: true with brands to search for", key="hashtags")
        register_secret(config.access_token)
        self._m = mastodon
        self._last: tuple[int, dict[str, str]] = (0, {})
        from listener.sources.guard_requests import GuardedAdapter, mount

        session = requests.Session()
        mount(session, GuardedAdapter(source_policy(config.name, config, [config.base_url])))
        session.hooks["response"].append(self._remember)
        self._client = mastodon.Mastodon(
            api_base_url=config.base_url, access_token=config.access_token,
            request_timeout=ctx.http_timeout, ratelimit_method="throw", session=session,
            user_agent=USER_AGENT,
        )
        self._hashtag_feed_checked = False

    def _build_streams(self) -> list[_Stream]:
        streams = [_Stream(f"tag:{tag}", hashtag=tag) for tag in self.config.hashtags]
        if self.config.search:
            for brand in self.ctx.brands:
                streams += [_Stream(f"search:{brand.name}:{q}", query=q, brand=brand.name)
                            for q in to_simple_queries(brand.query)]
        return streams

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """requests hook: keep the last answer's status and headers (Mastodon.py's exceptions
        carry neither the Retry-After nor the X-RateLimit-Reset header)."""
        self._last = (int(response.status_code), dict(response.headers))

    # -- polling ---------------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """Pages of new statuses, stream by stream (hashtags, then brand searches)."""
        states = load_streams(cursor, {s.key for s in self._streams}, self.name)
        for stream in self._streams:
            yield from self._poll(stream, states)

    def _poll(self, stream: _Stream, states: dict[str, dict[str, Any]]) -> Iterator[Page]:
        before = states.get(stream.key, {"since_id": None})
        since = before.get("since_id")
        pending = before.get("pending") or {}
        max_id, newest, offset = pending.get("max_id"), pending.get("newest"), 0
        for number in range(1, self.config.max_pages + 1):
            statuses = self._statuses(stream, max_id, since=since, offset=offset)
            ids = status_ids(statuses)
            posts, rejected = self._convert(statuses, stream, since, max_id)
            newest = max([i for i in (newest, since, *ids) if i], key=id_order, default=None)
            lowest = min(ids, key=id_order) if ids else None
            done = lowest is None or (since is not None and id_order(lowest) <= id_order(since))
            if not done and number < self.config.max_pages:
                yield Page(posts, None, rejected)  # a middle page never moves the cursor
                max_id, offset = next_window(max_id, lowest, offset, len(ids))
                continue
            resume = None if lowest is None else next_window(max_id, lowest, offset, len(ids))[0]
            states[stream.key] = self._next_state(stream, since, newest, resume, done)
            if posts or rejected or states[stream.key] != before:
                yield Page(posts, dump_cursor(states), rejected)
            return

    def _next_state(self, stream: _Stream, since: str | None, newest: str | None,
                    resume: str | None, done: bool) -> dict[str, Any]:
        if done or since is None or resume is None:
            if not done:
                log.info("source %s: first poll of %s read its latest %d pages; older posts are "
                         "left to `listener backfill`", self.name, stream.label, self.config.max_pages)
            return {"since_id": newest or since}
        log.warning("source %s: %s has more than %d pages of new posts; the next poll goes on "
                    "below id %s (raise max_pages or poll more often)", self.name, stream.label,
                    self.config.max_pages, resume)
        return {"since_id": since, "pending": {"max_id": resume, "newest": newest}}

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Statuses back to ``since``, as far as the instance keeps them.

        Hashtag timelines reach back to what the instance has stored (its own users' posts since
        it opened; remote posts only since they federated to it, and media-cache cleanups do not
        remove statuses). Search reaches as far as the instance's search index. Pages carry
        ``cursor=None``: history never moves the live cursor.
        """
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
        for stream in self._streams:
            max_id: str | None = None
            offset = 0
            for _ in range(self.config.backfill_max_pages):
                statuses = self._statuses(stream, max_id, offset=offset)
                ids = status_ids(statuses)
                if not ids:
                    break
                posts, rejected = self._convert(statuses, stream, None, max_id)
                yield Page([p for p in posts if p.created_at >= since], None, rejected)
                times = [created_at_of(s) for s in statuses if isinstance(s, dict)]
                if any(t is not None and t < since for t in times):
                    break
                max_id, offset = next_window(max_id, min(ids, key=id_order), offset, len(ids))

    # -- requests --------------------------------------------------------------------------

    def _statuses(self, stream: _Stream, max_id: str | None, *, since: str | None = None,
                  offset: int = 0) -> list[Any]:
        """One page, newest first, below ``max_id`` (and above ``since`` for hashtags)."""
        self._last = (0, {})
        if stream.hashtag is not None:
            self._check_hashtag_feed()
        elif max_id is not None and max_id.isdigit():
            max_id = str(int(max_id) + _SEARCH_SLACK)  # `before:` is cut to the second
        try:
            if stream.hashtag is not None:
                result = self._client.timeline_hashtag(
                    stream.hashtag, since_id=since, max_id=max_id, limit=self.config.page_size)
            else:
                result = self._client.search_v2(
                    stream.query, resolve=False, result_type="statuses", exclude_unreviewed=False,
                    max_id=max_id, offset=offset or None, limit=self.config.page_size)
                result = result.get("statuses") if isinstance(result, dict) else None
        except self._m.MastodonNotFoundError as exc:
            if stream.hashtag is None:
                raise self._translate(exc, stream) from exc
            log.info("source %s: %s is unknown to %s (404): nothing to read yet", self.name,
                     stream.label, self.config.base_url)
            return []
        except self._m.MastodonError as exc:
            raise self._translate(exc, stream) from exc
        return self._as_list(result, stream)

    def _check_hashtag_feed(self) -> None:
        """Ask the instance (``/api/v2/instance``, cached) whether hashtag feeds are open to us;
        Mastodon.py would only warn and then fail with a bare 401."""
        if self._hashtag_feed_checked:
            return
        with_auth = self.config.access_token is not None
        if not self._client.timeline_is_available("hashtag", with_auth=with_auth):
            advice = ("it requires login for them: set access_token" if not with_auth
                      else "they are disabled there")
            raise SourceError(f"source {self.name}: {self.config.base_url} does not serve "
                              f"hashtag timelines to this client: {advice}")
        self._hashtag_feed_checked = True

    def _as_list(self, value: Any, stream: _Stream) -> list[Any]:
        """The statuses, or SourceError for another shape (Mastodon.py casts a JSON object to a
        list of its keys, hence the check that some item is an object)."""
        if not isinstance(value, list) or (value and not any(isinstance(v, dict) for v in value)):
            raise SourceError(f"source {self.name}: Mastodon {stream.label}: the answer is not a "
                              "list of statuses; check that base_url is a Mastodon-API server")
        return value

    def _translate(self, exc: Exception, stream: _Stream) -> ListenerError:
        """Mastodon.py's exception → ours, using the last answer's status and headers."""
        refused = refusal_in(exc)  # Mastodon.py wraps every request failure in its own
        if isinstance(refused, SourceError):
            return refused
        status, headers = self._last
        what = f"source {self.name}: Mastodon {stream.label}"
        m = self._m
        if isinstance(exc, m.MastodonRatelimitError) and status == 429:
            wait = reset_wait(headers, self.ctx.clock())
            return RateLimited(f"{what}: rate-limited (HTTP 429); waiting for the reset", wait)
        if isinstance(exc, m.MastodonUnauthorizedError):
            scope = "read:statuses and read:search" if self.config.search else "read:statuses"
            return SourceError(f"{what}: HTTP 401: the instance refused the access token, or "
                               f"requires one here; set access_token to a token with {scope}")
        if isinstance(exc, m.MastodonNetworkError):
            return SourceError(f"{what}: cannot reach {self.config.base_url} (timeout or "
                               f"connection failure: {type(exc.__context__).__name__}); "
                               "the next poll retries")
        if isinstance(exc, m.MastodonAPIError) and status >= 300:
            body = str(exc.args[3]) if len(exc.args) > 3 and exc.args[3] else ""
            try:
                raise_for_status(self.name, status, headers, body, self.ctx.clock())
            except (SourceError, RateLimited) as mapped:
                return mapped
        if isinstance(exc, m.MastodonAPIError):
            return SourceError(f"{what}: the answer is not the JSON Mastodon documents; check "
                               "that base_url is a Mastodon-API server")
        return SourceError(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")

    # -- statuses to posts -----------------------------------------------------------------

    def _convert(self, statuses: list[Any], stream: _Stream, since: str | None,
                 max_id: str | None) -> tuple[list[Post], list[Rejected]]:
        posts: list[Post] = []
        rejected: list[Rejected] = []
        for number, status in enumerate(statuses):
            if not isinstance(status, dict) or not status.get("id"):
                rejected.append(Rejected(f"mastodon {stream.key} item {number}",
                                         "not a status object with an id"))
                continue
            status_id = str(status["id"])
            if (since and id_order(status_id) <= id_order(since)) or (
                    max_id and id_order(status_id) >= id_order(max_id)):
                continue  # seen in an earlier poll or page (search bounds are coarse)
            item = self._to_post(status, status_id, stream)
            if isinstance(item, Post):
                posts.append(item)
            elif item is not None:
                rejected.append(item)
        return posts, rejected

    def _to_post(self, status: dict[str, Any], status_id: str, stream: _Stream) -> Post | Rejected | None:
        where = f"mastodon {stream.key} status {status_id}"
        account = status.get("account")
        if status.get("reblog"):
            log.debug("mastodon %s: a boost, not a new post; skipped", status_id)
            return None
        if status.get("visibility") in _NOT_PUBLIC or (
                isinstance(account, dict) and account.get("suspended")):
            log.debug("mastodon %s: not public or account suspended; skipped", status_id)
            return None
        created = created_at_of(status)
        uri, content = status.get("uri"), status.get("content")
        if not isinstance(account, dict) or not account.get("acct"):
            return Rejected(where, "status has no account.acct")
        if created is None:
            return Rejected(where, f"missing or bad created_at: {status.get('created_at')!r}")
        if not isinstance(uri, str) or not uri or not isinstance(content, str):
            return Rejected(where, "status lacks its uri or content")
        text = html_to_text(content)
        spoiler = str(status.get("spoiler_text") or "").strip()
        text = f"{spoiler}\n\n{text}".strip() if spoiler else text
        if not text:
            log.debug("mastodon %s: no text (media only); skipped", status_id)
            return None
        followers = account.get("followers_count")
        return Post(
            platform=PLATFORM, platform_id=uri, text=text, created_at=created, source=self.name,
            url=status.get("url") or uri, author=str(account["acct"]),
            author_followers=followers if type(followers) is int and followers >= 0 else None,
            lang=status.get("language") or None, brand=stream.brand,
            raw=raw_status(status, status_id, created, account),
            thread=thread_of(status, status_id),
        )
