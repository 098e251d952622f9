"""Hacker News stories and comments through the Algolia HN Search API (no key needed).

``GET /api/v1/search_by_date`` answers newest first. Algolia has no OR, so every brand query is
split into its DNF branches (:func:`listener.core.query.to_simple_queries`) and each branch is one
request stream; the collect stage applies the full query (negations included) locally.

Per query the cursor keeps a high-water mark of ``created_at_i`` (Unix seconds) and the recent
objectIDs already collected. A poll asks for ``created_at_i >= since - overlap`` (the index can
lag behind HN by a little, so a few minutes are searched again; their ids are in ``seen``) and
pages through the answer, at most ``max_pages`` pages. The new mark is saved only on the last
page of a cycle. Algolia serves at most 1,000 hits per query, so when a cycle stops before the
end (a burst, or a long outage) the cursor instead remembers the oldest second reached
(``upto``) and the mark it will adopt (``high``); the next polls walk further back, window by
window, until the gap is closed, and only then move ``since``. No hit is ever skipped.

Cursor (JSON; every page that carries one carries all of it)::

    {"version": 1,
     "queries": {"acme cloud": {"since": 1714567890, "seen": ["40211234", ...]},
                 "acme outage": {"since": 1714500000, "seen": [...],
                                 "upto": 1714560000, "high": 1714567000}}}
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from listener.core.errors import ConfigError, MissingDependency, SourceError
from listener.core.httpguard import GuardSettings, guarded_client, source_policy
from listener.core.models import Page, Post, Rejected
from listener.core.query import to_simple_queries
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.cursor import CursorLayout, SeenIds
from listener.sources.html_text import html_to_text
from listener.sources.http import USER_AGENT, raise_for_status, unanswered

try:
    import httpx
except ImportError:  # checked in the constructor, so `listener sources` can say what to install
    httpx = None

log = logging.getLogger(__name__)

PLATFORM = "hackernews"
SEARCH_PATH = "/api/v1/search_by_date"
ITEM_URL = "https://news.ycombinator.com/item?id={}"
ALGOLIA_HIT_LIMIT = 1000  # hits one query can page through (Algolia's paginationLimitedTo)
MAX_BACKFILL_WINDOWS = 200  # backfill: at most this many windows of max_pages pages per query
_TAGS = {"both": "(story,comment)", "stories": "story", "comments": "comment"}
_RAW_KEYS = (
    "objectID", "created_at", "created_at_i", "author", "title", "url", "story_id", "parent_id",
    "story_title", "story_url", "points", "num_comments", "_tags",
)
_CURSOR = CursorLayout(
    version=1, section="queries", log=log,
    not_understood="source %s: cursor not understood; starting over",
    bad_entry="source %s: bad cursor entry for %r; starting it over",
)


class HackerNewsSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: hackernews`` source."""

    base_url: str = Field(
        "https://hn.algolia.com",
        description="HN Search API root; change only for a proxy or a test server",
    )
    tags: Literal["both", "stories", "comments"] = Field(
        "both", description="what to search: stories, comments, or both"
    )
    hits_per_page: int = Field(100, ge=1, le=ALGOLIA_HIT_LIMIT, description="hits per request")
    max_pages: int = Field(
        5, ge=1, description="requests per query per poll; a longer backlog is caught up over "
        "the next polls (hits_per_page x max_pages may not exceed Algolia's 1000)"
    )
    overlap: int = Field(
        300, ge=0, description="seconds searched again behind the newest hit already collected, "
        "because the search index lags behind HN; repeats are recognised and skipped",
    )
    initial_lookback: int = Field(
        86400, ge=0, description="seconds of history the first poll fetches (no cursor yet); "
        "`listener backfill` reaches further",
    )

    @model_validator(mode="after")
    def _within_algolia_limit(self) -> HackerNewsSourceConfig:
        if self.hits_per_page * self.max_pages > ALGOLIA_HIT_LIMIT:
            raise ValueError(
                f"hits_per_page x max_pages is {self.hits_per_page * self.max_pages}, but the "
                f"HN Search API serves at most {ALGOLIA_HIT_LIMIT} hits per query; lower one"
            )
        return self


@dataclass
class _State:
    """Cursor entry of one query string."""

    since: int
    seen: SeenIds = field(default_factory=SeenIds)
    upto: int | None = None  # catching up: the next window ends here (inclusive)
    high: int | None = None  # catching up: the mark to adopt once the gap is closed

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"since": self.since, "seen": self.seen.to_json()}
        if self.upto is not None:
            data.update(upto=self.upto, high=self.high)
        return data

    @classmethod
    def from_json(cls, data: Any) -> _State | None:
        if not isinstance(data, dict):
            return None
        since, upto, high = (data.get(k) for k in ("since", "upto", "high"))
        ints_ok = all(type(v) is int for v in (since, *(v for v in (upto, high) if v is not None)))
        if not ints_ok or (upto is None) != (high is None):
            return None
        seen = SeenIds.from_loose_json(data.get("seen"))
        return None if seen is None else cls(since, seen, upto, high)


@dataclass
class _Sweep:
    """What one cycle of pages saw, filled in as pages arrive."""

    ids: list[str] = field(default_factory=list)  # every hit id, newest first
    newest: int | None = None
    oldest: int | None = None
    final: bool = False  # the page just yielded is the cycle's last
    complete: bool = False  # ... and it reached the end of the results


class HackerNewsSource:
    """Stories and comments matching the brands' queries, from the HN Search API."""

    type: ClassVar[str] = "hackernews"
    searches: ClassVar[bool] = True
    Config: ClassVar[type[SourceConfig]] = HackerNewsSourceConfig

    def __init__(self, config: HackerNewsSourceConfig, ctx: SourceContext) -> None:
        if httpx is None:
            raise MissingDependency("httpx", "hackernews")
        self.config = config
        self.ctx = ctx
        self.name = config.name
        self._client = guarded_client(
            source_policy(config.name, config, [config.base_url]),
            base_url=config.base_url, timeout=ctx.http_timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    # -- the two entry points ----------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New hits per query since the saved marks; ``cursor=None`` looks back
        ``initial_lookback`` seconds."""
        queries = self._queries()
        # a query no longer configured (a brand's query was edited) is forgotten
        stored = _CURSOR.load(cursor, self.name, _State.from_json)
        states = {q: s for q, s in stored.items() if q in queries}
        start = int(self.ctx.clock().timestamp()) - self.config.initial_lookback
        yielded: set[str] = set()
        for query, brand in queries.items():
            state = states.get(query) or _State(since=max(0, start))
            lower = max(0, state.since - self.config.overlap)
            sweep = _Sweep()
            pages = self._sweep(query, brand, lower, state.upto, state.seen, yielded, sweep)
            for posts, rejected in pages:
                cursor_out = None
                if sweep.final:
                    states[query] = self._advance(query, state, sweep, lower)
                    cursor_out = self._dump(states)
                yield Page(posts, cursor_out, rejected)

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Every matching hit back to ``since``. The HN Search API indexes all of Hacker News
        (2006 on), so any date works; the walk goes back window by window (Algolia serves 1,000
        hits per query), at most ``MAX_BACKFILL_WINDOWS`` windows per query."""
        lower = max(0, int(since.timestamp()))
        yielded: set[str] = set()
        for query, brand in self._queries().items():
            upto: int | None = None
            for _ in range(MAX_BACKFILL_WINDOWS):
                sweep = _Sweep()
                for posts, rejected in self._sweep(query, brand, lower, upto, set(), yielded,
                                                   sweep):
                    yield Page(posts, None, rejected)
                if sweep.complete or sweep.oldest is None:
                    break
                upto = self._next_upto(query, upto, sweep.oldest)
                if upto < lower:
                    break
            else:
                log.warning("source %s: backfill of %r stopped after %d windows", self.name,
                            query, MAX_BACKFILL_WINDOWS)

    # -- queries and cursor -------------------------------------------------------------------

    def _queries(self) -> dict[str, str | None]:
        """Each simple query → the brand it belongs to (None when several brands share it, so
        the collect stage tries them all)."""
        owners: dict[str, list[str]] = {}
        for brand in self.ctx.brands:
            for query in to_simple_queries(brand.query):
                owners.setdefault(query, []).append(brand.name)
        if not owners:
            raise ConfigError(
                f"source '{self.name}': Hacker News is searched with the brands' queries, and "
                "none is configured; add `brands:` at the top level (or to this source)",
                key="brands",
            )
        return {q: names[0] if len(set(names)) == 1 else None for q, names in owners.items()}

    @staticmethod
    def _dump(states: dict[str, _State]) -> dict[str, Any]:
        return _CURSOR.dump({q: s.to_json() for q, s in states.items()})

    def _advance(self, query: str, state: _State, sweep: _Sweep, lower: int) -> _State:
        """The state after a cycle: a new mark if it reached the end, else a window further back."""
        seen = state.seen.merged(sweep.ids)
        high = max(v for v in (state.since, state.high, sweep.newest) if v is not None)
        if sweep.complete or sweep.oldest is None:
            return _State(since=high, seen=seen)
        upto = self._next_upto(query, state.upto, sweep.oldest)
        if upto < lower:
            return _State(since=high, seen=seen)
        log.info("source %s: %r has more than %d new hits; catching up from %d next poll",
                 self.name, query, self.config.max_pages * self.config.hits_per_page, upto)
        return _State(since=state.since, seen=seen, upto=upto, high=high)

    def _next_upto(self, query: str, upto: int | None, oldest: int) -> int:
        """Where the next window ends; always earlier than the last one, so a walk ends."""
        if upto is not None and oldest >= upto:
            log.warning("source %s: more hits for %r in second %d than one window holds; "
                        "some are skipped", self.name, query, upto)
            return upto - 1
        return oldest

    # -- HTTP -----------------------------------------------------------------------------------

    def _sweep(
        self, query: str, brand: str | None, lower: int, upto: int | None,
        seen: Container[str], yielded: set[str], sweep: _Sweep,
    ) -> Iterator[tuple[list[Post], list[Rejected]]]:
        """One cycle, newest first: posts and rejects per API page. ``sweep`` says, before each
        page is handed out, whether it is the cycle's last and whether the results ended."""
        numeric = f"created_at_i>={lower}" + (f",created_at_i<={upto}" if upto is not None else "")
        for number in range(self.config.max_pages):
            params = {
                "query": query, "tags": _TAGS[self.config.tags], "numericFilters": numeric,
                "hitsPerPage": self.config.hits_per_page, "page": number,
            }
            data = self._get(params)
            posts, rejected = self._page_posts(data["hits"], query, number, brand, seen, yielded,
                                               sweep)
            ended = number + 1 >= data["nbPages"] or len(data["hits"]) < self.config.hits_per_page
            sweep.complete = ended
            sweep.final = ended or number + 1 == self.config.max_pages
            yield posts, rejected
            if ended:
                return

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        """One search request; any failure raises, so the cursor stays where it was."""
        try:
            response = self._client.get(SEARCH_PATH, params=params)
        except httpx.HTTPError as exc:
            raise unanswered(f"source {self.name}", "the HN Search API", self.config.base_url,
                             exc, self.ctx.http_timeout) from None
        raise_for_status(self.name, response.status_code, response.headers, response.text,
                         self.ctx.clock())
        try:
            data = response.json()
        except ValueError as exc:
            raise SourceError(
                f"source {self.name}: the HN Search API answered something that is not JSON: "
                f"{response.text[:100]!r}"
            ) from exc
        if (
            not isinstance(data, dict) or not isinstance(data.get("hits"), list)
            or type(data.get("nbPages")) is not int
        ):
            raise SourceError(
                f"source {self.name}: unexpected answer from the HN Search API (no 'hits' list "
                "or 'nbPages' number); is base_url an HN Search API?"
            )
        return data

    def _page_posts(
        self, hits: list[Any], query: str, number: int, brand: str | None,
        seen: Container[str], yielded: set[str], sweep: _Sweep,
    ) -> tuple[list[Post], list[Rejected]]:
        posts: list[Post] = []
        rejected: list[Rejected] = []
        for index, hit in enumerate(hits):
            where = f"hackernews {query!r} page {number} hit {index}"
            if not isinstance(hit, dict) or not isinstance(hit.get("objectID"), str | int) \
                    or type(hit.get("created_at_i")) is not int:
                rejected.append(Rejected(where, "hit without an objectID or created_at_i"))
                continue
            item_id, stamp = str(hit["objectID"]), hit["created_at_i"]
            sweep.ids.append(item_id)
            sweep.newest = stamp if sweep.newest is None else max(sweep.newest, stamp)
            sweep.oldest = stamp if sweep.oldest is None else min(sweep.oldest, stamp)
            if item_id in seen or item_id in yielded:
                continue
            try:
                post = self._to_post(hit, item_id, stamp, brand)
            except (TypeError, ValueError, OverflowError) as exc:
                rejected.append(Rejected(f"{where} (hackernews {item_id})", str(exc)))
                continue
            if post is not None:
                yielded.add(item_id)
                posts.append(post)
        return posts, rejected

    def _to_post(self, hit: dict[str, Any], item_id: str, stamp: int, brand: str | None
                 ) -> Post | None:
        """The hit as a Post; None for deleted or dead items (no author, no text)."""
        tags = hit.get("_tags") or []
        if not isinstance(tags, list):
            raise ValueError("'_tags' is not a list")
        is_comment = "comment" in tags or (bool(hit.get("comment_text")) and "story" not in tags)
        if is_comment:
            text = html_to_text(_text_field(hit, "comment_text"))
        else:
            title = " ".join(_text_field(hit, "title").split())
            body = html_to_text(_text_field(hit, "story_text"))
            text = f"{title}\n\n{body}" if title and body else title or body
        author = hit.get("author")
        if not text or not author:
            log.debug("source %s: hackernews %s skipped: deleted or dead (no text or author)",
                      self.name, item_id)
            return None
        thread: str | None = item_id  # a story starts a conversation; a comment is in its story's
        if is_comment:
            story = str(hit.get("story_id"))
            thread = story if story.isdigit() else None
        return Post(
            platform=PLATFORM, platform_id=item_id, text=text,
            created_at=datetime.fromtimestamp(stamp, UTC), source=self.name,
            url=ITEM_URL.format(item_id), author=str(author), brand=brand, thread=thread,
            raw={"kind": "comment" if is_comment else "story",
                 **{k: hit[k] for k in _RAW_KEYS if hit.get(k) is not None}},
        )


def _text_field(hit: dict[str, Any], key: str) -> str:
    value = hit.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{key}' is not a string")
    return value
