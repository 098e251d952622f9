"""Bluesky: ``app.bsky.feed.searchPosts`` for every brand query, through the atproto client.

Bluesky search has no OR, so each brand's query becomes one simple AND-query per DNF branch
(``to_simple_queries``), and each of those is a stream with its own cursor, searched with
``sort=latest`` (newest first) and paged with the API's ``cursor`` within a poll.

Without credentials the source searches the public AppView (``base_url``, default
https://public.api.bsky.app). Some AppViews answer search only to logged-in clients; with
``handle`` + ``app_password`` the source logs in at ``login_url`` (default https://bsky.social)
once per process (the session refreshes itself) and searches through the account's PDS, which
proxies ``app.bsky`` calls to the AppView. Use an app password, never the account password.
createSession is rate-limited per account (about 30 per 5 minutes, 300 a day): with cron, keep
``run --once`` at least a few minutes apart, or use the daemon.

Time: search filters on ``sortAt``, the earlier of the record's (client-chosen) ``createdAt`` and
``indexedAt``. So the high-water mark is the newest sortAt seen (a post dated in the future cannot
push it past real time), ``created_at`` of a post is its sortAt, and each poll asks for
``since = high-water - overlap_seconds`` (since is inclusive, and posts can be indexed a little
late) while a bounded set of recently seen URIs keeps the overlap from yielding posts again.

Cursor (JSON; every page that carries one carries all streams)::

    {"version": 1, "streams": {"acme:\\"acme cloud\\"": {
        "since": "2026-11-20T12:00:01.250Z", "seen": {"at://did:plc:…/app.bsky.feed.post/3l…":
        "2026-11-20T12:00:01.250Z"},
        "pending": {"until": "2026-11-20T11:40:03Z", "newest": "…", "seen": {…}}}}}

``since`` moves only on the last page of a stream's cycle. When a poll stops at ``max_pages`` with
more results left, ``pending`` keeps an ``until`` bound below what was read and the cycle's newest
time; the next poll reads on below it down to ``since`` before moving the mark, so a burst larger
than one poll leaves no gap. A stream's first poll takes the latest ``max_pages`` pages only.
A brand's languages are not sent as ``lang`` (the server would drop posts without ``langs``,
which the local filter keeps). Posts taken down or hidden by moderation (labels ``!takedown``,
``!hide``, ``!suspend`` on the post or its author) are skipped. A reply's ``thread`` is the root
post of its thread (``record.reply.root``), so its alert is threaded under the root's in Slack.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from listener.core.httpguard import GuardSettings, httpx_options, source_policy
from listener.core.log import register_secret
from listener.core.models import Page, Post, Rejected, parse_iso_or_none, to_iso
from listener.core.query import to_simple_queries
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.bluesky.items import (
    bounded,
    dump_cursor,
    load_cursor,
    ms_iso,
    raw_post,
    removed,
    thread_of,
)
from listener.sources.http import USER_AGENT, raise_for_status

log = logging.getLogger(__name__)

PLATFORM = "bluesky"
_POST = "app.bsky.feed.post"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, not {value!r}")
    return value.rstrip("/")


class BlueskySourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: bluesky`` source."""

    base_url: str = Field(
        "https://public.api.bsky.app",
        description="AppView searched without login (ignored when handle/app_password are set)",
    )
    login_url: str = Field(
        "https://bsky.social",
        description="where to log in when handle and app_password are set; searches then go "
        "through the account's PDS",
    )
    handle: str | None = Field(
        None, description="account handle to log in with, e.g. brand.bsky.social (optional)"
    )
    app_password: str | None = Field(
        None, description="an app password of that account (Settings > Privacy and security > "
        "App passwords), set as {\"$env\": NAME}; never the account password",
    )
    max_pages: int = Field(5, ge=1, le=100, description="pages per brand query per poll")
    page_size: int = Field(100, ge=1, le=100, description="posts per request (Bluesky max 100)")
    overlap_seconds: float = Field(
        120, ge=0, le=86400,
        description="re-ask this far behind the newest post seen, for posts indexed late",
    )
    backfill_max_pages: int = Field(100, ge=1, description="pages per brand query when backfilling")

    _urls = field_validator("base_url", "login_url")(_http_url)


@dataclass(frozen=True)
class _Stream:
    key: str
    query: str
    brand: str


class BlueskySource:
    """New Bluesky posts matching the brands' queries."""

    type: ClassVar[str] = "bluesky"
    searches: ClassVar[bool] = True
    Config: ClassVar[type[SourceConfig]] = BlueskySourceConfig

    def __init__(self, config: BlueskySourceConfig, ctx: SourceContext) -> None:
        try:
            import atproto
            from atproto import exceptions, models
        except ImportError as exc:
            raise MissingDependency("atproto", "bluesky") from exc
        self.config, self.ctx, self.name = config, ctx, config.name
        if bool(config.handle) != bool(config.app_password):
            missing = "app_password" if config.handle else "handle"
            raise ConfigError(f"source '{self.name}': set both handle and app_password to log "
                              f"in, or neither to search anonymously; {missing} is missing",
                              key=missing)
        self._streams = [
            _Stream(f"{brand.name}:{query}", query, brand.name)
            for brand in ctx.brands for query in to_simple_queries(brand.query)
        ]
        if not self._streams:
            raise ConfigError(f"source '{self.name}': no brands to search for; add brands "
                              "(top-level `brands`, or this source's `brands`)", key="brands")
        self._exc, self._models = exceptions, models
        # kwargs go to httpx.Client: every request and redirect hop through the guard
        policy = source_policy(config.name, config, [config.base_url, config.login_url])
        request = atproto.Request(timeout=ctx.http_timeout, **httpx_options(policy))
        request.add_additional_header("User-Agent", USER_AGENT)
        base = config.login_url if config.handle else config.base_url
        self._client = atproto.Client(base_url=base, request=request)
        self._client.on_session_change(_register_session)
        register_secret(config.app_password)
        self._logged_in = False

    # -- polling ---------------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """Pages of new posts, brand query by brand query."""
        states = load_cursor(cursor, {s.key for s in self._streams}, self.name)
        for stream in self._streams:
            yield from self._poll(stream, states)

    def _poll(self, stream: _Stream, states: dict[str, dict[str, Any]]) -> Iterator[Page]:
        before = states.get(stream.key, {"since": None, "seen": {}})
        since, seen = parse_iso_or_none(before.get("since")), dict(before.get("seen") or {})
        pending = before.get("pending") or {}
        newest, fresh = parse_iso_or_none(pending.get("newest")), dict(pending.get("seen") or {})
        params: dict[str, Any] = {"q": stream.query, "sort": "latest",
                                  "limit": self.config.page_size, "until": pending.get("until")}
        if since is not None:
            params["since"] = to_iso(since - timedelta(seconds=self.config.overlap_seconds))
        api_cursor = None
        for number in range(1, self.config.max_pages + 1):
            content = self._search(stream, {**params, "cursor": api_cursor})
            posts, rejected, times = self._convert(content["posts"], stream, {**seen, **fresh})
            fresh.update(times)
            read = [t for t in map(parse_iso_or_none, times.values()) if t]
            newest = max([t for t in (newest, *read) if t], default=None)
            api_cursor = content.get("cursor")
            done = not content["posts"] or not api_cursor
            if not done and number < self.config.max_pages:
                yield Page(posts, None, rejected)  # a middle page never moves the cursor
                continue
            states[stream.key] = self._next_state(stream, since, seen, fresh, newest, done)
            if posts or rejected or states[stream.key] != before:
                yield Page(posts, dump_cursor(states), rejected)
            return

    def _next_state(self, stream: _Stream, since: datetime | None, seen: dict[str, str],
                    fresh: dict[str, str], newest: datetime | None, done: bool) -> dict[str, Any]:
        overlap = timedelta(seconds=self.config.overlap_seconds)
        if done or since is None or not fresh:
            high = max([t for t in (newest, since) if t], default=None)  # never backwards
            window = high - overlap if high else None
            return {"since": ms_iso(high) if high else None,
                    "seen": bounded({**seen, **fresh}, window)}
        oldest = min(t for t in map(parse_iso_or_none, fresh.values()) if t)
        until = to_iso(oldest + timedelta(seconds=1))  # until is exclusive; to_iso truncates
        log.warning("source %s: Bluesky search %r has more than %d pages of new posts; the next "
                    "poll reads on below %s (raise max_pages or poll more often)",
                    self.name, stream.query, self.config.max_pages, until)
        return {"since": ms_iso(since), "seen": seen, "pending": {
            "until": until, "newest": ms_iso(newest), "seen": bounded(fresh, newest - overlap)}}

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Posts back to ``since`` (searched with ``since=``), as deep as the search index and its
        cursor go: the lexicon warns that the cursor "may not necessarily allow scrolling
        through entire result set", and posts indexed before the AppView's current search
        index may be missing. Pages carry ``cursor=None``."""
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
        for stream in self._streams:
            params = {"q": stream.query, "sort": "latest", "since": to_iso(since),
                      "limit": self.config.page_size}
            seen: dict[str, str] = {}
            api_cursor = None
            for _ in range(self.config.backfill_max_pages):
                content = self._search(stream, {**params, "cursor": api_cursor})
                posts, rejected, times = self._convert(content["posts"], stream, seen)
                seen.update(times)
                yield Page(posts, None, rejected)
                api_cursor = content.get("cursor")
                if not content["posts"] or not api_cursor:
                    break

    # -- requests --------------------------------------------------------------------------

    def _login(self) -> None:
        """Log in once per process; the client refreshes the session by itself afterwards."""
        if self._logged_in or not self.config.handle:
            return
        try:
            self._client.login(self.config.handle, self.config.app_password,
                               fetch_bsky_profile=False)
        except self._exc.AtProtocolError as exc:
            raise self._translate(exc, "login", None) from exc
        except ValueError as exc:
            raise SourceError(f"source {self.name}: Bluesky login: the answer is not JSON; "
                              "check login_url") from exc
        self._logged_in = True

    def _search(self, stream: _Stream, params: dict[str, Any]) -> dict[str, Any]:
        """One searchPosts answer as a dict (items are validated one by one later)."""
        self._login()
        model = self._models.AppBskyFeedSearchPosts.Params(
            **{k: v for k, v in params.items() if v is not None})
        try:
            response = self._client.invoke_query("app.bsky.feed.searchPosts", params=model)
        except self._exc.AtProtocolError as exc:
            raise self._translate(exc, f"search {stream.query!r}", stream) from exc
        except ValueError as exc:  # the body said JSON but was not
            raise SourceError(f"source {self.name}: Bluesky search {stream.query!r}: the answer "
                              "is not valid JSON; the next poll retries") from exc
        content = response.content
        if not isinstance(content, dict) or not isinstance(content.get("posts"), list) or not (
                isinstance(content.get("cursor"), str | None)):
            raise SourceError(f"source {self.name}: Bluesky search {stream.query!r}: the answer is "
                              "not a searchPosts result; check base_url")
        return content

    def _translate(self, exc: Exception, what: str, stream: _Stream | None) -> ListenerError:
        """atproto's exception → ours; HTTP answers go through the shared status map."""
        prefix = f"source {self.name}: Bluesky {what}"
        response = getattr(exc, "response", None)
        if isinstance(exc, self._exc.InvokeTimeoutError):
            return SourceError(f"{prefix}: no answer within {self.ctx.http_timeout:g} s; "
                               "the next poll retries")
        if response is None:
            raw = _http_answer_in(exc)
            if raw is not None:  # atproto failed on the answer's body: map the answer itself
                try:
                    raise_for_status(self.name, raw.status_code, raw.headers, raw.text[:200],
                                     self.ctx.clock())
                except (SourceError, RateLimited) as mapped:
                    return mapped
            cause = type(exc.__cause__ or exc).__name__
            return SourceError(f"{prefix}: request failed ({cause}); the next poll retries")
        status, content = response.status_code, response.content
        error, message = getattr(content, "error", None), getattr(content, "message", None)
        if status == 400 and error == "BadQueryString" and stream is not None:
            return SourceError(f"{prefix}: Bluesky refused the query as malformed "
                               f"(BadQueryString: {message}); simplify brand '{stream.brand}''s "
                               "query to plain words and \"phrases\"")
        if status in (401, 403) or error in ("ExpiredToken", "InvalidToken"):
            self._logged_in = False  # log in afresh next poll
            advice = ("check handle and app_password (an app password, not the account "
                      "password)" if self.config.handle else "this AppView requires login for "
                      "search: set handle and app_password")
            return SourceError(f"{prefix}: HTTP {status} {error or ''}: {advice}")
        body = f"{error}: {message}" if error else str(content)[:200]
        try:
            raise_for_status(self.name, status, response.headers, body, self.ctx.clock())
        except (SourceError, RateLimited) as mapped:
            return mapped
        return SourceError(f"{prefix}: unexpected answer HTTP {status}: {body}")

    # -- post views to posts ---------------------------------------------------------------

    def _convert(self, items: list[Any], stream: _Stream, skip: dict[str, str]
                 ) -> tuple[list[Post], list[Rejected], dict[str, str]]:
        """Posts not in ``skip``, rejects, and the sortAt of every valid post in the answer (for
        the seen set, and so that a page of only known posts still shows how far paging got)."""
        posts: list[Post] = []
        rejected: list[Rejected] = []
        times: dict[str, str] = {}
        for number, item in enumerate(items):
            try:
                view = self._models.get_or_create(
                    item, self._models.AppBskyFeedDefs.PostView, strict=True)
            except (self._exc.AtProtocolError, ValueError, TypeError) as exc:
                reason = str(exc).splitlines()[:2]
                rejected.append(Rejected(f"bluesky {stream.key} item {number}",
                                         f"not a postView: {' '.join(reason)[:200]}"))
                continue
            post = self._to_post(view, stream, item)
            if isinstance(post, Rejected):
                rejected.append(post)
                continue
            if post.platform_id in times:
                continue  # twice in one answer
            times[post.platform_id] = ms_iso(post.created_at)
            if post.platform_id in skip:
                continue  # seen in the overlap window or on an earlier page
            if removed(view):
                log.debug("bluesky %s: removed by moderation; skipped", post.platform_id)
            elif not post.text:
                log.debug("bluesky %s: no text (media only); skipped", post.platform_id)
            else:
                posts.append(post)
        return posts, rejected, times

    def _to_post(self, view: Any, stream: _Stream, item: dict[str, Any]) -> Post | Rejected:
        record, uri = view.record, view.uri
        if not isinstance(record, self._models.AppBskyFeedPost.Record):
            return Rejected(f"bluesky {uri}", "record is not an app.bsky.feed.post")
        did, collection, rkey = [*uri.removeprefix("at://").split("/"), "", ""][:3]
        if not uri.startswith("at://") or collection != _POST or not rkey:
            return Rejected(f"bluesky {uri}", "uri is not at://<did>/app.bsky.feed.post/<rkey>")
        created, indexed = parse_iso_or_none(record.created_at), parse_iso_or_none(view.indexed_at)
        if created is None or indexed is None:
            return Rejected(f"bluesky {uri}", f"bad createdAt/indexedAt: {record.created_at!r}")
        handle = view.author.handle
        profile = did if handle in ("", "handle.invalid") else handle
        return Post(
            platform=PLATFORM, platform_id=uri, text=record.text.strip(),
            created_at=min(created, indexed), source=self.name,
            url=f"https://bsky.app/profile/{profile}/post/{rkey}", author=handle,
            lang=(record.langs or [None])[0], brand=stream.brand, raw=raw_post(item),
            thread=thread_of(record, uri),
        )


def _register_session(event: Any, session: Any) -> None:
    """Session tokens are credentials too: redact them from every log line."""
    register_secret(session.access_jwt)
    register_secret(session.refresh_jwt)


def _http_answer_in(exc: BaseException) -> Any:
    """The HTTP answer an atproto error came from, when atproto lost it: a 429 or 503 whose
    body is JSON but not an object makes atproto fail while parsing the body, raising an error
    without the response, so its status and Retry-After would be lost. The answer is still a
    local of atproto's request frame (``response``); None when there is none."""
    import httpx

    for frame, _line in traceback.walk_tb(exc.__traceback__):
        candidate = frame.f_locals.get("response")
        if isinstance(candidate, httpx.Response):
            return candidate
    return None
