"""Posts and comments from Reddit through praw, app-only (client credentials), read-only.

Each of these is one newest-first *stream* with its own cursor entry:
``search`` (default on): one ``sort=new`` search per brand with the query translated by
:func:`listener.core.query.to_reddit`, over all of Reddit (``/search``) or only the ``subreddits``
(``/r/a+b/search?restrict_sr=true``), submissions only; ``submissions``: each subreddit's
``/r/<name>/new``; ``comments``: each subreddit's ``/r/<name>/comments``.

Listings stop at about 1,000 items and praw's ``stream_generator`` dedups only in memory, so it
is not used. Each stream saves the newest fullname and ``created_utc`` it saw plus up to 500
fullnames near that mark (search indexes late, so a walk looks ``OVERLAP_SECONDS`` behind it).
A poll walks pages newest to older until it reaches the mark or ``max_pages``; the new mark goes
on the stream's last page only. A walk cut short keeps the old mark and saves where to go on
(the next poll fills that gap first), except a stream's very first poll: what lies beyond it is
history (``listener backfill``).

Access: a "script" or "web" app from https://www.reddit.com/prefs/apps, id and secret given as
``{"$env": ...}``. Since late 2025 new API apps must be approved under Reddit's Responsible
Builder Policy; until then the token request is refused (401/403). Reddit requires a
descriptive ``user_agent`` naming your Reddit account.

Rate limits: ~100 requests a minute per client over 10 minutes. prawcore paces itself (sleeps
of up to 10 s) and retries 5xx and connection errors twice (sleeping a few seconds); it does not
retry 429, which becomes ``RateLimited`` with Reddit's ``X-Ratelimit-Reset`` seconds. Once an
answer says the budget is used up, the source raises ``RateLimited`` instead of letting prawcore
sleep until the reset. Every request runs under ``ctx.http_timeout``.

praw is not thread-safe: each source instance builds its own ``praw.Reddit``, never shared (the
scheduler runs one poll of a source at a time).

Cursor (JSON; the page that ends a stream's poll carries all of it; ``resume`` only while a walk
is unfinished)::

    {"version": 1, "streams": {
        "search:acme": {"scope": "r/a+b/search?q=...", "newest": "t3_1abcd2",
                        "created_utc": 1767225600.0, "seen": ["t3_1abcd2", "t3_1abcc9"],
                        "resume": {"after": "t3_1ab000", "newest": "t3_1abd00", ...}},
        "new:python": {...}, "comments:python": {...}}}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from listener.core.errors import ConfigError, MissingDependency, RateLimited, SourceError
from listener.core.httpguard import GuardSettings, source_policy
from listener.core.log import register_secret
from listener.core.models import Page, Post, Rejected
from listener.core.query import to_reddit
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.reddit.http import RateBudget, http_session, no_retries
from listener.sources.reddit.items import (
    Cycle,
    Floor,
    ItemError,
    ShapeError,
    StreamState,
    Thing,
    api_error,
    dump_cursor,
    identify,
    load_cursor,
    parse_listing,
    removed_reason,
    to_post,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Reddit's maximum `limit`
BACKFILL_MAX_PAGES = 12  # listings end after ~1,000 items (10 pages); a little slack
MAX_QUERY_LENGTH = 512  # longest `q` Reddit's search accepts
DEFAULT_USER_AGENT = "python:social-listener:0.1 (self-hosted social listening daemon)"
_SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

class RedditSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: reddit`` source."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo credentials back

    client_id: str | None = Field(
        None, repr=False,
        description='id of your Reddit app (https://www.reddit.com/prefs/apps); give it as '
        '{"$env": REDDIT_CLIENT_ID}',
    )
    client_secret: str | None = Field(
        None, repr=False,
        description='secret of your Reddit app; give it as {"$env": REDDIT_CLIENT_SECRET}',
    )
    user_agent: str = Field(
        DEFAULT_USER_AGENT, min_length=7,
        description="Reddit requires a unique, descriptive one: "
        "'<platform>:<app id>:<version> (by /u/<your reddit username>)'",
    )
    base_url: str = Field(
        "https://www.reddit.com",
        description="where OAuth tokens are requested (/api/v1/access_token); proxies and tests",
    )
    oauth_url: str = Field(
        "https://oauth.reddit.com", description="API root for listings and search; proxies, tests"
    )
    subreddits: list[str] = Field(
        default_factory=list,
        description="subreddit names (without r/); search is restricted to them when given, "
        "empty searches all of Reddit; submissions and comments need at least one",
    )
    search: bool = Field(True, description="search each brand's query, newest first")
    submissions: bool = Field(False, description="poll every new submission of the subreddits")
    comments: bool = Field(False, description="poll every new comment of the subreddits")
    max_pages: int = Field(
        5, ge=1, le=10,
        description="pages of 100 items per stream and poll (listings end at ~1,000 items)",
    )

    @field_validator("base_url", "oauth_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        """https only: the app secret travels in the token request (http for localhost tests)."""
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
        if parts.scheme == "https" and host or parts.scheme == "http" and host in _LOCAL_HOSTS:
            return value.strip().rstrip("/")
        raise ValueError("must be an https URL such as https://oauth.reddit.com "
                         "(http only for localhost)")

    @field_validator("subreddits")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        clean: dict[str, str] = {}
        for name in names:
            bare = re.sub(r"^/?r/", "", name.strip()).strip("/")
            if not _SUBREDDIT.match(bare):
                raise ValueError(f"{name!r} is not a subreddit name (letters, digits, _)")
            clean.setdefault(bare.lower(), bare)
        return list(clean.values())

    @model_validator(mode="after")
    def _something_to_poll(self) -> RedditSourceConfig:
        if (self.submissions or self.comments) and not self.subreddits:
            raise ValueError("submissions and comments need `subreddits`")
        if not (self.search or self.submissions or self.comments):
            raise ValueError("enable at least one of search, submissions, comments")
        return self


@dataclass(frozen=True)
class _Stream:
    """One newest-first listing: its cursor key, request path and parameters, brand."""

    key: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    brand: str | None = None

    @property
    def scope(self) -> str:
        return f"{self.path}?{urlencode(self.params)}" if self.params else self.path


class RedditSource:
    """Brand searches and subreddit listings through one praw ``Reddit`` per instance."""

    type: ClassVar[str] = "reddit"
    searches: ClassVar[bool] = True
    Config: ClassVar[type[SourceConfig]] = RedditSourceConfig

    def __init__(self, config: RedditSourceConfig, ctx: SourceContext) -> None:
        try:
            import praw
            import prawcore  # noqa: F401 - its exceptions are mapped by api_error
        except ImportError:
            raise MissingDependency("praw", "reddit") from None
        self.config, self.ctx, self.name = config, ctx, config.name
        for key in ("client_id", "client_secret"):
            if not getattr(config, key):
                raise ConfigError(
                    f"source '{self.name}': {key} is required; set it to "
                    f'{{"$env": REDDIT_{key.upper()}}} and export your Reddit app\'s value',
                    key=key,
                )
        register_secret(config.client_secret)
        self._streams = self._build_streams()
        self._budget = RateBudget()
        self._http = http_session(ctx.http_timeout, self._budget.note, ctx.clock,
                                  source_policy(config.name, config,
                                                [config.base_url, config.oauth_url]))
        self._reddit = praw.Reddit(
            "DEFAULT",  # praw.ini's defaults only, whatever the praw_site variable says
            client_id=config.client_id,
            client_secret=config.client_secret,
            user_agent=config.user_agent,
            reddit_url=config.base_url,
            oauth_url=config.oauth_url,
            username=None,  # app-only: praw_username/praw_password/... in the environment
            password=None,  # must not turn this into a logged-in client
            refresh_token=None,
            check_for_updates=False,  # no PyPI call at start-up
            check_for_async=False,
            requestor_kwargs={"session": self._http},
        )
        no_retries(self._reddit)

    def _build_streams(self) -> list[_Stream]:
        cfg, streams = self.config, []
        multi = "+".join(cfg.subreddits)
        if cfg.search:
            path = f"r/{multi}/search" if multi else "search"
            for brand in self.ctx.brands:
                query = to_reddit(brand.query)
                if len(query) > MAX_QUERY_LENGTH:
                    raise ConfigError(
                        f"source '{self.name}': brand '{brand.name}' becomes a Reddit query of "
                        f"{len(query)} characters, over the {MAX_QUERY_LENGTH} Reddit accepts; "
                        "shorten the query or split the brand", key="brands",
                    )
                params = [("q", query), ("sort", "new"), ("t", "all"), ("type", "link")]
                params += [("restrict_sr", "true")] if multi else []
                streams.append(_Stream(f"search:{brand.name}", path, tuple(params), brand.name))
        for name in cfg.subreddits:
            if cfg.submissions:
                streams.append(_Stream(f"new:{name.lower()}", f"r/{name}/new"))
            if cfg.comments:
                streams.append(_Stream(f"comments:{name.lower()}", f"r/{name}/comments"))
        if not streams:
            raise ConfigError(
                f"source '{self.name}': nothing to poll: no brands to search, and neither "
                "submissions nor comments is enabled", key="brands",
            )
        return streams

    def close(self) -> None:
        """Release the HTTP connections (the daemon keeps a source for its whole life)."""
        self._http.close()

    def check(self) -> str:
        """``listener doctor``: an app-only token, then one page of the first stream."""
        stream = self._streams[0]
        children, _after = self._listing(stream, None)
        return f"app-only token granted; {stream.key} answered ({len(children)} item(s))"

    # -- live polling ----------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New items of every stream since ``cursor``, stream by stream."""
        states = load_cursor(cursor, self.name)
        yielded: set[str] = set()  # found by two streams in one poll: yielded once
        for stream in self._streams:
            yield from self._poll(stream, states, yielded)

    def _poll(
        self, stream: _Stream, states: dict[str, StreamState], yielded: set[str]
    ) -> Iterator[Page]:
        cycle = Cycle(stream.scope, states.get(stream.key))
        after = cycle.after
        for number in range(1, self.config.max_pages + 1):
            children, after = self._listing(stream, after)
            posts, rejected = self._convert(stream, children, cycle.sort, yielded)
            if after is not None and not cycle.reached and number < self.config.max_pages:
                if posts or rejected:
                    yield Page(posts=posts, cursor=None, rejected=rejected)
                continue
            state = self._end(stream, cycle, after)
            changed = states.get(stream.key) != state
            states[stream.key] = state
            cursor = dump_cursor(states, [s.key for s in self._streams]) if changed else None
            if posts or rejected or cursor is not None:
                yield Page(posts=posts, cursor=cursor, rejected=rejected)
            return

    def _end(self, stream: _Stream, cycle: Cycle, after: str | None) -> StreamState:
        """The stream's next state: a new mark, or (cut short) the old one plus where to go on."""
        if after is None or cycle.reached:
            return cycle.finish()
        if cycle.fresh:
            log.info("source %s: %s: first poll stopped after %d pages; older items are history "
                     "(listener backfill)", self.name, stream.key, self.config.max_pages)
            return cycle.finish()
        log.warning("source %s: %s: more than %d pages of new items since the last poll; the "
                    "next poll goes on from %s (poll more often or raise max_pages)",
                    self.name, stream.key, self.config.max_pages, after)
        return cycle.pause(after)

    # -- history ---------------------------------------------------------------------------

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Every stream paged newest to older until an item is older than ``since``.

        Reddit listings, search included, end after about 1,000 items, so a busy search or
        subreddit cannot be followed back far: weeks for a quiet brand, hours for a busy
        subreddit. Pages carry ``cursor=None``: history never moves the live cursor.
        """
        floor = (since if since.tzinfo else since.replace(tzinfo=UTC)).timestamp()
        yielded: set[str] = set()
        for stream in self._streams:
            walk, after = Floor(floor), None
            for _ in range(BACKFILL_MAX_PAGES):
                children, after = self._listing(stream, after)
                posts, rejected = self._convert(stream, children, walk.sort, yielded)
                if posts or rejected:
                    yield Page(posts=posts, cursor=None, rejected=rejected)
                if after is None or walk.reached:
                    break

    # -- one page --------------------------------------------------------------------------

    def _listing(self, stream: _Stream, after: str | None) -> tuple[list[Any], str | None]:
        params = dict(stream.params, limit=str(PAGE_SIZE))
        if after:
            params["after"] = after
        payload = self._request(stream.path, params)
        try:
            return parse_listing(payload)
        except ShapeError as exc:
            raise SourceError(
                f"source {self.name}: Reddit answered {stream.path} with something other than "
                f"a listing ({exc}); check oauth_url, the next poll retries"
            ) from None

    def _request(self, path: str, params: dict[str, str]) -> Any:
        wait = self._budget.wait(self.ctx.clock())
        if wait > 0:
            raise RateLimited(
                f"source {self.name}: Reddit's request budget is used up until its window "
                f"resets in {wait:.0f} s", wait,
            )
        try:
            return self._reddit.request(method="GET", path=path, params=params)
        except Exception as exc:
            error = api_error(exc, self.name, self.ctx.clock())
            if error is None:
                raise
            raise error from exc

    def _convert(
        self, stream: _Stream, children: list[Any], sort: Callable[[Thing], str],
        yielded: set[str],
    ) -> tuple[list[Post], list[Rejected]]:
        """Posts of the items ``sort`` calls new; removed ones skipped, malformed ones rejected."""
        posts: list[Post] = []
        rejected: list[Rejected] = []
        for index, child in enumerate(children):
            try:
                thing = identify(child)
            except ItemError as exc:
                rejected.append(Rejected(f"reddit {stream.key} item {index}", str(exc)))
                continue
            if sort(thing) != "new" or thing.fullname in yielded:
                continue
            why = removed_reason(thing)
            if why is not None:
                log.debug("source %s: reddit %s skipped: %s", self.name, thing.fullname, why)
                continue
            try:
                post = to_post(thing, self.name, stream.brand)
            except ItemError as exc:
                rejected.append(Rejected(f"reddit {stream.key} {thing.fullname}", str(exc)))
                continue
            yielded.add(thing.fullname)
            posts.append(post)
        return posts, rejected
