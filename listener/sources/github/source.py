"""GitHub: new issues, pull requests, issue comments and discussions that mention the brands.

Two ways to read, each a set of *streams* newest first, each stream with its own cursor entry:

- ``repos``: every new item of these repositories, read in full and filtered by the brands'
  queries locally (the collect stage): ``GET /repos/{o}/{r}/issues?state=all&sort=created``
  (issues and pull requests), ``GET /repos/{o}/{r}/issues/comments?sort=created`` (every issue and
  pull-request comment of the repository) and, through GraphQL, ``repository.discussions``
  ordered by ``CREATED_AT``. The REST listings take ``since`` (which filters on *updated* time:
  everything created since the mark was also updated since, so nothing is lost) and are paged
  with ``page`` until an item older than the mark comes; discussions are paged with GraphQL's
  ``after`` cursor.
- ``search: true``: all of GitHub, through ``GET /search/issues`` (one stream for ``is:issue``,
  one for ``is:pr``) and GraphQL ``search(type: DISCUSSION)``, with each brand query and
  ``in:title,body created:>=<mark - overlap>``, sorted by creation, newest first.

Query translation. GitHub search has implicit AND and ``"phrases"``; ``OR``, ``NOT`` and
parentheses are limited (five operators, legacy search groups no terms), and ``-word`` only
excludes qualifiers. So each brand query is split into its DNF branches
(:func:`~listener.core.query.to_simple_queries`): one plain AND-search per branch, each at most
256 characters (a longer one is a ConfigError); negations are applied locally, as is the whole
query, by the collect stage.

What is left out: comments in search mode (GitHub's issue search matches comment text but answers
with the issue, so only the issue's own title and body are read: ``in:title,body``); comments on
discussions; pull-request review comments (comments on diff lines, another API); the author's
follower count of issues, pull requests and comments (the REST items do not carry it, and
fetching each author's profile costs one request per author); discussions' authors come with it
from GraphQL.

Cursor. Per stream the mark ``since`` (newest creation time read) and the ids read recently
(``seen``). A poll reads from ``since - overlap`` (the search index lags behind GitHub; repeats
are in ``seen``) for at most ``max_pages`` pages. When it stops before the end, ``pending``
keeps where to go on (the page or GraphQL cursor, the window's upper bound ``upto`` and the
mark to adopt once the gap is closed, ``high``); the next polls read on and only then move
``since``. A listing resumed by page number first reads the page before again, since an item
deleted in between shifts the listing up by one. Search answers at most 1,000 results per query:
when a window holds more, the walk narrows it (``created:<mark>..<oldest time read>``) and goes
on from page 1 inside it, so nothing past the 1,000th result is lost.

Library. This module talks to GitHub with httpx through :func:`guarded_client`. PyGithub 2.x makes
its ``requests`` session inside private connection classes, one per host; the only way to mount
our guard adapter there is ``Requester.injectConnectionClasses``, a process-wide switch that also
turns off connection reuse for every PyGithub user, and PyGithub sleeps by itself (0.25 s
between requests by default, 2 s on every 202). githubkit is built on httpx2 (httpx only as a
deprecated fallback) and installs large generated schema packages; our guard is an httpx
transport. Neither carries the SSRF guard, the answer cap and the no-sleep rate-limit handling
cleanly; the REST and GraphQL calls needed here are few and documented.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints, field_validator

from listener.core.errors import ConfigError, SourceError
from listener.core.httpguard import GuardSettings, source_policy
from listener.core.log import register_secret
from listener.core.models import Page, Post, Rejected, as_utc, parse_iso_or_none, to_iso
from listener.core.query import to_simple_queries
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.cursor import MAX_SEEN, CursorLayout, SeenIds
from listener.sources.github.api import REPO_DISCUSSIONS, SEARCH_DISCUSSIONS, GitHubApi
from listener.sources.github.items import Item, comment_item, discussion_item, issue_item

log = logging.getLogger(__name__)

SEARCH_LIMIT = 1000
"""Results GitHub serves per search query (REST and GraphQL); more need a narrower window."""
MAX_QUERY_LENGTH = 256
"""Longest search text GitHub accepts, qualifiers not counted."""
_CURSOR = CursorLayout(
    version=1, section="streams", log=log,
    not_understood="source %s: cursor not understood; starting over",
    bad_entry="source %s: bad cursor entry for %r; starting it over",
)

Repo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
Kind = Literal["issues", "pull_requests", "discussions", "comments"]
KINDS: tuple[Kind, ...] = ("issues", "pull_requests", "discussions", "comments")


class GitHubSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: github`` source."""

    token: str | None = Field(
        None, repr=False,
        description='a GitHub token that can read the repositories (fine-grained: issues, pull '
        'requests, discussions: read-only; classic: public_repo or repo); set it as '
        '{"$env": GITHUB_TOKEN}, never in the file',
    )
    repos: list[Repo] = Field(
        default_factory=list,
        description='repositories ("owner/name") whose every new issue, pull request, comment '
        "and discussion is read; the brands' queries keep those that mention them",
    )
    search: bool = Field(
        False, description="also search all of GitHub with the brands' queries (new issues, pull "
        "requests and discussions whose title or body matches)",
    )
    kinds: list[Kind] = Field(
        default_factory=lambda: list[Kind](KINDS),
        description="what to read: issues, pull_requests, discussions, comments (comments are "
        "read from repos only)",
    )
    base_url: str = Field(
        "https://api.github.com",
        description="REST API root; GitHub Enterprise Server: https://HOST/api/v3 (GraphQL is "
        "then https://HOST/api/graphql)",
    )
    max_pages: int = Field(
        5, ge=1, le=100, description="pages per stream (a repository listing or one search) per "
        "poll; a longer backlog is caught up over the next polls, without a gap",
    )
    page_size: int = Field(100, ge=1, le=100, description="items per request (GitHub's max 100)")
    overlap: int = Field(
        600, ge=0, le=86400, description="seconds read again behind the newest item already "
        "collected, because GitHub's search index lags; repeats are recognised and skipped",
    )
    initial_lookback: int = Field(
        86400, ge=0, description="seconds of history the first poll reads (no cursor yet); "
        "`listener backfill` reaches further",
    )
    backfill_max_pages: int = Field(
        100, ge=1, description="pages per stream at most for `listener backfill`"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or "?" in value:
            raise ValueError("base_url must be an http(s) URL such as https://api.github.com")
        return value.rstrip("/")

    @field_validator("kinds")
    @classmethod
    def _some_kinds(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"name at least one of {', '.join(KINDS)}")
        return list(dict.fromkeys(value))


@dataclass(frozen=True)
class _Stream:
    """One thing read newest first: a repository listing or one search."""

    key: str  # its cursor entry
    what: Literal["issues", "comments", "discussions", "search", "search_discussions"]
    repo: str | None = None
    query: str | None = None  # a search's simple query
    qualifier: str = ""  # is:issue / is:pr
    brand: str | None = None  # the brand whose query this is (None: several, or a listing)

    @property
    def rest(self) -> bool:
        return self.what in ("issues", "comments", "search")

    @property
    def searched(self) -> bool:
        return self.what in ("search", "search_discussions")

    @property
    def first(self) -> int | None:
        """The first page's token: page 1 (REST) or no GraphQL cursor."""
        return 1 if self.rest else None


@dataclass
class _Pending:
    """A cycle stopped before the end: where the next poll goes on."""

    token: int | str | None  # the page (REST) or GraphQL cursor to read next
    read: int  # results already read in the current search window
    upto: datetime | None  # search: the window's upper bound (inclusive)
    high: datetime | None  # the mark to adopt once the gap is closed
    seen: SeenIds  # ids read lately in this catch-up (a re-read page's are skipped)

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "read": self.read,
                "upto": to_iso(self.upto) if self.upto else None,
                "high": to_iso(self.high) if self.high else None, "seen": self.seen.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> _Pending | None:
        if not isinstance(data, dict):
            return None
        token, read = data.get("token"), data.get("read", 0)
        if not (token is None or isinstance(token, str) or type(token) is int) \
                or type(read) is not int:
            return None
        upto, high = parse_iso_or_none(data.get("upto")), parse_iso_or_none(data.get("high"))
        seen = SeenIds.from_json(data.get("seen", []))
        if seen is None or (data.get("upto") is not None and upto is None) or (
                data.get("high") is not None and high is None):
            return None
        return cls(token, read, upto, high, seen)


@dataclass
class _State:
    """Cursor entry of one stream."""

    since: datetime
    seen: SeenIds = field(default_factory=SeenIds)
    pending: _Pending | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"since": to_iso(self.since), "seen": self.seen.to_json()}
        if self.pending is not None:
            data["pending"] = self.pending.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> _State | None:
        if not isinstance(data, dict):
            return None
        since = parse_iso_or_none(data.get("since"))
        seen = SeenIds.from_json(data.get("seen", []))
        pending = _Pending.from_json(data["pending"]) if "pending" in data else None
        if since is None or seen is None or ("pending" in data and pending is None):
            return None
        return cls(since, seen, pending)


@dataclass
class _Walk:
    """Where one cycle of a stream is, updated as pages arrive."""

    token: int | str | None
    read: int = 0  # results read in the current search window
    upto: datetime | None = None
    high: datetime | None = None  # newest creation time read
    oldest: datetime | None = None  # oldest creation time read in the current window
    ids: list[str] = field(default_factory=list)  # ids read this cycle, in reading order
    done: bool = False  # the results ended (or reached items older than the mark)


@dataclass(frozen=True)
class _Batch:
    items: list[Any]
    next: int | str | None  # None: no more results


class GitHubSource:
    """New issues, pull requests, comments and discussions mentioning the brands."""

    type: ClassVar[str] = "github"
    searches: ClassVar[bool] = True
    Config: ClassVar[builtins.type[SourceConfig]] = GitHubSourceConfig

    def __init__(self, config: GitHubSourceConfig, ctx: SourceContext) -> None:
        self.config, self.ctx, self.name = config, ctx, config.name
        if not config.token:
            raise ConfigError(
                f"source '{self.name}': token is required; set it to "
                '{"$env": GITHUB_TOKEN} and export a GitHub token that can read the repositories',
                key="token",
            )
        register_secret(config.token)
        self._streams = self._build_streams()
        self._api = GitHubApi(config.name, config.base_url, config.token, ctx.http_timeout,
                              source_policy(config.name, config, [config.base_url]), ctx.clock)

    def close(self) -> None:
        self._api.close()

    # -- what is read ----------------------------------------------------------------------

    def _build_streams(self) -> list[_Stream]:
        kinds = set(self.config.kinds)
        streams: list[_Stream] = []
        for repo in dict.fromkeys(self.config.repos):
            if kinds & {"issues", "pull_requests"}:
                streams.append(_Stream(f"{repo} issues", "issues", repo=repo))
            if "comments" in kinds:
                streams.append(_Stream(f"{repo} comments", "comments", repo=repo))
            if "discussions" in kinds:
                streams.append(_Stream(f"{repo} discussions", "discussions", repo=repo))
        if self.config.search:
            for query, brand in self._queries().items():
                if "issues" in kinds:
                    streams.append(_Stream(f"search is:issue {query}", "search", query=query,
                                           qualifier="is:issue", brand=brand))
                if "pull_requests" in kinds:
                    streams.append(_Stream(f"search is:pr {query}", "search", query=query,
                                           qualifier="is:pr", brand=brand))
                if "discussions" in kinds:
                    streams.append(_Stream(f"search discussions {query}", "search_discussions",
                                           query=query, brand=brand))
        if not streams:
            raise ConfigError(
                f"source '{self.name}': nothing to read: set `repos` (\"owner/name\" of the "
                "repositories to read) and/or `search: true` with kinds that apply (comments "
                "are read from repos only)", key="repos")
        return streams

    def _queries(self) -> dict[str, str | None]:
        """Each simple query → the brand it belongs to (None when several brands share it)."""
        owners: dict[str, list[str]] = {}
        for brand in self.ctx.brands:
            for query in to_simple_queries(brand.query):
                if len(query) > MAX_QUERY_LENGTH:
                    raise ConfigError(
                        f"source '{self.name}': brand '{brand.name}' gives the GitHub search "
                        f"{query[:60]!r}… of {len(query)} characters; GitHub searches at most "
                        f"{MAX_QUERY_LENGTH}: shorten the query", key="brands")
                owners.setdefault(query, []).append(brand.name)
        if not owners:
            raise ConfigError(
                f"source '{self.name}': search: true searches GitHub with the brands' queries, "
                "and none is configured; add `brands:` at the top level (or to this source)",
                key="brands")
        return {q: names[0] if len(set(names)) == 1 else None for q, names in owners.items()}

    # -- the entry points ------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New items of every stream since its mark; ``cursor=None`` looks back
        ``initial_lookback`` seconds."""
        keys = {s.key: s.key for s in self._streams}  # streams no longer configured are dropped
        states = _CURSOR.load(cursor, self.name, _State.from_json, keys)
        start = self.ctx.clock() - timedelta(seconds=self.config.initial_lookback)
        yielded: set[str] = set()  # an item two streams find in one poll is handed out once
        for stream in self._streams:
            state = states.get(stream.key) or _State(since=start)
            yield from self._cycle(stream, state, states, yielded)

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Every item back to ``since``: repository listings and GraphQL discussions reach a
        repository's whole history; searches walk back window by window (1,000 results each).
        At most ``backfill_max_pages`` pages per stream. Pages carry ``cursor=None``."""
        lower = as_utc(since)
        yielded: set[str] = set()
        for stream in self._streams:
            walk = _Walk(token=stream.first)
            for posts, rejected, _last in self._pages(stream, lower, walk, SeenIds(), yielded,
                                                      self.config.backfill_max_pages):
                yield Page(posts, None, rejected)
            if not walk.done:
                log.warning("source %s: backfill of %s stopped after backfill_max_pages=%d",
                            self.name, stream.key, self.config.backfill_max_pages)

    def check(self) -> str:
        """``listener doctor``: one request. With ``repos``, the first repository (proves the
        token and its access to it); else ``/rate_limit`` (proves the token, costs nothing)."""
        if self.config.repos:
            repo = self.config.repos[0]
            data, headers = self._api.get(f"/repos/{repo}", {}, f"repository {repo}", repo)
            if not isinstance(data, dict) or not isinstance(data.get("full_name"), str):
                raise SourceError(f"source {self.name}: GitHub answered /repos/{repo} with no "
                                  "repository; is base_url a GitHub API?")
            seen = f"repository {data['full_name']} readable"
        else:
            data, headers = self._api.get("/rate_limit", {}, "rate limit")
            if not isinstance(data, dict) or not isinstance(data.get("resources"), dict):
                raise SourceError(f"source {self.name}: GitHub answered /rate_limit with no "
                                  "resources; is base_url a GitHub API?")
            seen = "search reachable"
        left, limit = headers.get("x-ratelimit-remaining"), headers.get("x-ratelimit-limit")
        budget = f"; {left}/{limit} requests left this hour" if left and limit else ""
        return f"token accepted; {seen}{budget}"

    # -- one stream's cycle ----------------------------------------------------------------

    def _cycle(self, stream: _Stream, state: _State, states: dict[str, _State],
               yielded: set[str]) -> Iterator[Page]:
        lower = state.since - timedelta(seconds=self.config.overlap)
        pending = state.pending
        budget = self.config.max_pages
        if pending is None:
            walk, skip = _Walk(token=stream.first), state.seen
        else:
            walk = _Walk(token=pending.token, read=pending.read, upto=pending.upto,
                         high=pending.high)
            skip = SeenIds([*state.seen, *pending.seen])
            if stream.what in ("issues", "comments") and isinstance(pending.token, int) \
                    and pending.token > 1:
                walk.token, budget = pending.token - 1, budget + 1  # see the module docstring
        for posts, rejected, last in self._pages(stream, lower, walk, skip, yielded, budget):
            cursor = None
            if last:
                states[stream.key] = self._advance(stream, state, walk)
                cursor = _CURSOR.dump({k: s.to_json() for k, s in states.items()})
            yield Page(posts, cursor, rejected)

    def _advance(self, stream: _Stream, state: _State, walk: _Walk) -> _State:
        if state.pending is None:  # what this cycle read is newer than what was seen before
            seen = state.seen.merged(walk.ids)
        else:  # a catch-up reads below what was seen: its ids go after, the newest stay
            seen = SeenIds(list(dict.fromkeys([*state.seen, *walk.ids]))[:MAX_SEEN])
        if walk.done:
            high = max(t for t in (state.since, walk.high) if t is not None)
            return _State(since=high, seen=seen)
        before = state.pending.seen if state.pending is not None else SeenIds()
        tail = list(dict.fromkeys([*before, *walk.ids]))[-MAX_SEEN:]
        log.warning("source %s: %s has more than %d pages of new items; the next poll reads on "
                    "(raise max_pages or poll more often)", self.name, stream.key,
                    self.config.max_pages)
        return _State(since=state.since, seen=seen, pending=_Pending(
            walk.token, walk.read, walk.upto, walk.high, SeenIds(tail)))

    def _pages(self, stream: _Stream, lower: datetime, walk: _Walk, skip: SeenIds,
               yielded: set[str], budget: int
               ) -> Iterator[tuple[list[Post], list[Rejected], bool]]:
        """Up to ``budget`` answers, newest first, as (posts, rejects, whether it is the cycle's
        last); ``walk`` is up to date when each is handed out."""
        for number in range(budget):
            batch = self._request(stream, lower, walk)
            posts, rejected, below = self._convert(stream, batch.items, lower, walk, skip,
                                                   yielded, number)
            walk.read += len(batch.items)
            if below or batch.next is None or not batch.items:
                walk.done = True
            elif stream.searched and walk.read + self.config.page_size > SEARCH_LIMIT:
                self._narrow(stream, walk)
            else:
                walk.token = batch.next
            yield posts, rejected, walk.done or number + 1 == budget
            if walk.done:
                return

    def _narrow(self, stream: _Stream, walk: _Walk) -> None:
        """The search window is full (1,000 results): go on in the window below what was read."""
        oldest = walk.oldest or walk.upto
        if oldest is None:  # nothing valid read: cannot narrow, end here
            walk.done = True
            return
        if walk.upto is not None and oldest >= walk.upto:
            log.warning("source %s: %s has more than %d results in the second %s; some are "
                        "skipped", self.name, stream.key, SEARCH_LIMIT, to_iso(oldest))
            oldest = walk.upto - timedelta(seconds=1)
        walk.upto, walk.token, walk.read, walk.oldest = oldest, stream.first, 0, None

    # -- requests --------------------------------------------------------------------------

    def _request(self, stream: _Stream, lower: datetime, walk: _Walk) -> _Batch:
        size = self.config.page_size
        if stream.what in ("issues", "comments"):
            path = f"/repos/{stream.repo}/issues" + ("/comments" if stream.what == "comments"
                                                    else "")
            params: dict[str, Any] = {"sort": "created", "direction": "desc",
                                      "since": to_iso(lower), "per_page": size,
                                      "page": walk.token}
            if stream.what == "issues":
                params["state"] = "all"
            data, headers = self._api.get(path, params, stream.key, stream.repo)
            if not isinstance(data, list):
                raise SourceError(f"source {self.name}: GitHub ({stream.key}): the answer is "
                                  "not a list of items; is base_url a GitHub API?")
            return _Batch(data, _next_page(walk.token, len(data), size, headers.get("link")))
        if stream.what == "search":
            query = f"{stream.query} {stream.qualifier} in:title,body {_created(lower, walk)}"
            params = {"q": query, "sort": "created", "order": "desc", "per_page": size,
                      "page": walk.token}
            data, headers = self._api.get("/search/issues", params, stream.key)
            if not isinstance(data, dict) or not isinstance(data.get("items"), list) \
                    or type(data.get("total_count")) is not int:
                raise SourceError(f"source {self.name}: GitHub ({stream.key}): the answer is "
                                  "not a search result (no items, total_count)")
            if data.get("incomplete_results") is True:
                raise SourceError(f"source {self.name}: GitHub ({stream.key}): the search timed "
                                  "out and its results are incomplete; the next poll retries "
                                  "(a simpler brand query searches faster)")
            items = data["items"]
            more = len(items) == size and walk.read + len(items) < data["total_count"]
            return _Batch(items, int(walk.token or 1) + 1 if more else None)
        if stream.what == "discussions":
            owner, name = str(stream.repo).split("/", 1)
            data = self._api.graphql(
                REPO_DISCUSSIONS,
                {"owner": owner, "name": name, "first": size, "after": walk.token},
                stream.key, stream.repo)
            repository = data.get("repository")
            if not isinstance(repository, dict):
                raise SourceError(f"source {self.name}: GitHub GraphQL ({stream.key}): "
                                  f"repository {stream.repo} was not found")
            return self._connection(stream, repository.get("discussions"))
        query = (f"{stream.query} in:title,body {_created(lower, walk)} sort:created-desc")
        data = self._api.graphql(SEARCH_DISCUSSIONS,
                                 {"q": query, "first": size, "after": walk.token}, stream.key)
        return self._connection(stream, data.get("search"))

    def _connection(self, stream: _Stream, connection: Any) -> _Batch:
        """A GraphQL connection's nodes and the cursor after them (None: no more)."""
        info = connection.get("pageInfo") if isinstance(connection, dict) else None
        nodes = connection.get("nodes") if isinstance(connection, dict) else None
        if not isinstance(nodes, list) or not isinstance(info, dict):
            raise SourceError(f"source {self.name}: GitHub GraphQL ({stream.key}): the answer is "
                              "not a connection (no nodes, pageInfo)")
        after = info.get("endCursor")
        more = info.get("hasNextPage") is True and isinstance(after, str) and bool(nodes)
        return _Batch(nodes, after if more else None)

    # -- items to posts --------------------------------------------------------------------

    def _convert(self, stream: _Stream, items: list[Any], lower: datetime, walk: _Walk,
                 skip: SeenIds, yielded: set[str], number: int
                 ) -> tuple[list[Post], list[Rejected], bool]:
        """The new posts of one answer, its rejects, and whether it reached items older than
        the window (a listing's end)."""
        posts: list[Post] = []
        rejected: list[Rejected] = []
        below = False
        wanted = set(self.config.kinds)
        for index, raw in enumerate(items):
            try:
                item = self._item(stream, raw)
            except ValueError as exc:
                rejected.append(Rejected(f"github {stream.key} page {number + 1} item {index}",
                                         str(exc)))
                continue
            if item.created < lower:
                below = True
                continue
            walk.ids.append(item.id)
            walk.high = item.created if walk.high is None else max(walk.high, item.created)
            walk.oldest = item.created if walk.oldest is None else min(walk.oldest, item.created)
            if item.id in skip or item.id in yielded:
                continue
            if item.post is None:
                log.debug("source %s: github %s skipped: no title or body", self.name, item.id)
                continue
            if _KIND_KEYS[item.kind] not in wanted:
                continue
            yielded.add(item.id)
            posts.append(item.post)
        return posts, rejected, below

    def _item(self, stream: _Stream, raw: Any) -> Item:
        if stream.what == "comments":
            return comment_item(raw, self.name, stream.brand)
        if stream.what in ("discussions", "search_discussions"):
            if isinstance(raw, dict) and not raw:
                raise ValueError("a search result that is not a discussion")
            return discussion_item(raw, self.name, stream.brand, stream.repo)
        return issue_item(raw, self.name, stream.brand)


_KIND_KEYS = {"issue": "issues", "pull_request": "pull_requests", "comment": "comments",
              "discussion": "discussions"}


def _github_time(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS+00:00``, the form GitHub's search documents for times."""
    return as_utc(moment).replace(microsecond=0).isoformat()


def _created(lower: datetime, walk: _Walk) -> str:
    if walk.upto is None:
        return f"created:>={_github_time(lower)}"
    return f"created:{_github_time(lower)}..{_github_time(walk.upto)}"


def _next_page(page: Any, count: int, size: int, link: str | None) -> int | None:
    """The next page of a REST listing: what the ``Link`` header says, else a full page hints at
    more (an empty next page ends it)."""
    if link is not None:
        return int(page) + 1 if 'rel="next"' in link else None
    return int(page) + 1 if count >= size else None

