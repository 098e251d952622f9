"""Discourse forums: the new posts of one community (``base_url``), all of them or a brand search.

Two modes, one class (``searches = False``: a forum is usually the brand's own community, where
every post is about the brand, like an app's reviews):

- **latest** (default, ``search: false``): ``GET /posts.json``, the forum's public posts newest
  first, 50 a page, paged with ``before=<post id>`` (Discourse answers ids strictly lower). Every
  post is kept and tagged with ``brand``; list ``brands:`` on the source to keep only posts one of
  their queries accepts (the collect stage filters, as for feeds). ``categories`` are applied
  here: posts carry ``category_id`` (a category includes its subcategories; slugs are resolved
  once through ``GET /categories.json?include_subcategories=true``).
- **search** (``search: true``, needs ``brands:`` on the source): ``GET /search.json`` with each
  OR-branch of each brand's query (:func:`listener.core.query.to_simple_queries`: Discourse
  search ANDs its terms, each a prefix match, "quoted phrases" exact; it has no OR and no
  exclusion: ``-word`` is searched as ``word``, the minus being punctuation to PostgreSQL, so
  negations are never sent and the local filter applies them), plus ``order:latest``,
  ``after:<date>`` and ``category:``/``categories:`` for ``categories``. A leading ``@`` or ``#`` is
  dropped from terms sent (Discourse reads them as author and category filters). Full-page search
  answers one post per *topic* (the newest matching one) and only a blurb of it, so a hit
  topic is read (``GET /t/{id}.json``, then ``GET /t/{id}/posts.json?post_ids[]=…`` for posts past
  its first chunk, newest first) and all its posts inside the window are handed out; the collect
  stage keeps those the brands' queries accept. Discourse serves at most 10 search pages (500
  topics) per query: a busier window logs a warning.

Skipped, not customer posts: deleted ones (``deleted_at``, ``user_deleted``: "(post deleted by
author)"), ``hidden`` ones (flagged and hidden by the community), and every ``post_type`` but 1
(2 moderator action, 3 small action such as "closed this topic", 4 whisper); a topic that answers
404/403/410 (deleted, or moved out of sight) is skipped. ``posts.json`` already leaves all of
these out for anyone but staff; they are checked again for staff keys and older versions.

Normalised: text is ``cooked`` (rendered HTML) as plain text, without quoted posts and link
previews (``<aside class="quote|onebox">``: others' words), ``raw`` where cooked is empty; a
topic's first post starts with the topic title. ``url`` ``{base_url}/t/{slug}/{topic}/{number}``,
``thread`` the topic id, ``author`` the username. ``author_followers`` stays None: Discourse has no
followers (trust level is not reach). ``lang`` is the post's ``locale`` where the site localises
content, else None (detected later). ``platform_id`` is ``<host[/path]>/p/<post id>`` (Discourse's
own short link), as post ids are only unique within one forum.

Cursor (JSON; each page carries all streams)::

    {"version": 1, "streams": {
        "latest": {"since_id": 4811, "pending": {"before": 4702, "newest": 4901}},
        "search:acme category:support": {"since": 1714567890, "seen": ["4811", ...],
                                         "pending": {"page": 3, "high": 1714570000,
                                                     "done": [912, 887]}}}}

``latest``: everything up to ``since_id`` is collected. A poll pages down from the newest post
to ``since_id`` (the first poll: back ``initial_lookback`` seconds); every page carries the
cursor, with ``pending`` (where to page on, and the newest id of the cycle) until the cycle
reaches the mark, so a burst larger than ``max_pages`` pages, a crash or a failed page leave no
gap and nothing twice. ``search:…``: posts created since ``since - overlap`` are searched (the
search index lags behind new posts), ``seen`` (post ids) skips those already handed out. Each
hit topic is a page of its own, so ``pending`` names the search page an unfinished cycle goes on
with and the topics of it already read (``done``): a rate limit after 30 topic reads costs no
read twice. ``since`` moves to the newest post handed out once a cycle ends.

Rate limits: Discourse answers 429 with ``Retry-After`` and a JSON body
``{"error_type": "rate_limit", "extras": {"wait_seconds": N}}`` (search answers a bare 429): the
source pauses for that long (60 s when neither says). Discourse's defaults allow 60 requests a
minute per admin API key and 200 per IP address; search has tighter limits of its own.

Credentials: public forums need none. An API key (Admin → API → keys, read-only scope is
enough) is sent as ``Api-Key`` / ``Api-Username`` headers, never in URLs, and is redacted from
logs; it reads what that user may read (private categories).

Why httpx and not pydiscourse (1.7): pydiscourse calls ``requests.request`` itself, a new
session per call with no way to pass one in, so our network guard (SSRF checks on every hop,
the answer-size cap) cannot be applied; it also sleeps inside the call on a 429 (up to three
times), which would stall the whole daemon instead of pausing this source, and logs every answer
body at DEBUG. The few read-only JSON endpoints used here are plain GETs through
:func:`listener.core.httpguard.guarded_client`.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Container, Iterator
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from listener.core.errors import ConfigError, SourceError
from listener.core.httpguard import GuardSettings
from listener.core.log import register_secret
from listener.core.models import Page, Post, Rejected
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.discourse.api import (
    SEARCH_PAGE_LIMIT,
    SKIPPED_TOPIC,
    TOPIC_CHUNK,
    DiscourseApi,
)
from listener.sources.discourse.categories import category_ids, category_tree
from listener.sources.discourse.cursor import (
    CURSOR,
    LATEST,
    Cycle,
    Latest,
    Search,
    newest_ids,
    search_key,
)
from listener.sources.discourse.items import Forum, Topic, as_str, created_at, created_stamp
from listener.sources.discourse.search import hit_topics, search_strings, search_terms

log = logging.getLogger("listener.sources.discourse")

Pages = Iterator[tuple[list[Post], list[Rejected]]]


class DiscourseSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: discourse`` source."""

    base_url: str = Field(description="the forum's address, e.g. https://community.acme.com (a "
                          "subfolder install with its path)")
    api_key: str | None = Field(None, repr=False, description="API key as {\"$env\": NAME} (Admin → API; a "
                                "read-only key is enough); none reads what anonymous visitors see")
    api_username: str | None = Field(None, description="the user the API key acts as (e.g. "
                                     "system); required with api_key")
    categories: list[str] = Field(
        default_factory=list, description="only posts in these categories (slugs, names or "
        "ids; subcategories included); empty: the whole forum")
    search: bool = Field(False, description="search the forum for the brands listed in this "
                         "source's `brands:` (one search per OR-branch) instead of reading every "
                         "new post")
    max_pages: int = Field(5, ge=1, le=100, description="pages per poll (50 posts, or 50 search "
                           "hits per query); a longer backlog is read over the next polls, no gap")
    backfill_max_pages: int = Field(200, ge=1, description="pages `listener backfill` reads (per "
                                    "query when searching; Discourse serves 10 search pages)")
    initial_lookback: int = Field(86400, ge=0, description="seconds of history the first poll "
                                  "reads (no cursor yet); `listener backfill` reaches further")
    overlap: int = Field(600, ge=0, description="search: seconds searched again behind the "
                         "newest post collected (the search index lags); repeats are skipped")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL such as https://community.acme.com, "
                             f"not {value!r}")
        return value.strip().rstrip("/")

    @field_validator("categories", mode="before")
    @classmethod
    def _category_names(cls, values: Any) -> Any:
        if isinstance(values, list):
            return [str(v).strip() for v in values if str(v).strip()]
        return values

    @model_validator(mode="after")
    def _key_with_user(self) -> DiscourseSourceConfig:
        if self.api_key and not self.api_username:
            raise ValueError("api_key needs api_username (the user the key acts as, e.g. system)")
        return self


class DiscourseSource:
    """New posts of one Discourse forum: all of them, some categories, or a brand search."""

    type: ClassVar[str] = "discourse"
    searches: ClassVar[bool] = False  # a brand's own forum: everything is kept, tagged `brand`
    Config: ClassVar[builtins.type[SourceConfig]] = DiscourseSourceConfig

    def __init__(self, config: DiscourseSourceConfig, ctx: SourceContext) -> None:
        if config.search and not ctx.brands:
            raise ConfigError(
                f"source '{config.name}': search: true searches the forum for brands' queries; "
                "list them in this source's `brands:` (or drop `search` to read every post)",
                key="brands",
            )
        self.config = config
        self.ctx = ctx
        self.name = config.name
        register_secret(config.api_key)
        self._api = DiscourseApi(config.name, config.base_url, config, ctx,
                                 api_key=config.api_key, api_username=config.api_username)
        self._forum = Forum(config.name, config.base_url, config.brand)
        self._category_ids: frozenset[int] | None = None

    def close(self) -> None:
        self._api.close()

    # -- entry points ---------------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """Posts newer than the saved cursor, page by page, each page with the whole cursor."""
        if self.config.search:
            yield from self._fetch_search(cursor)
        else:
            yield from self._fetch_latest(cursor)

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Posts back to ``since``, at most ``backfill_max_pages`` pages. ``/posts.json`` reaches
        every public post the forum has, so any date works within that many pages of 50;
        search reaches 10 pages (500 topics) per query, Discourse's limit."""
        lower = int(since.timestamp())
        yielded: set[str] = set()
        if not self.config.search:
            cycle = Cycle()
            for posts, rejected in self._latest_pages(None, None, lower,
                                                      self.config.backfill_max_pages, cycle,
                                                      yielded):
                yield Page(posts, None, rejected)
            if not cycle.ended:
                log.warning("source %s: backfill stopped after backfill_max_pages (%d) pages, "
                            "before reaching %s", self.name, self.config.backfill_max_pages,
                            since.isoformat())
            return
        pages = min(self.config.backfill_max_pages, SEARCH_PAGE_LIMIT)
        for query, brand in self._queries().items():
            for posts, rejected in self._search_pages(query, brand, lower, pages, set(),
                                                      yielded, Cycle()):
                yield Page(posts, None, rejected)

    def check(self) -> str:
        """One request: the key's user (``/session/current.json``) or, without a key, the
        site's public basic info."""
        if self.config.api_key:
            data = self._api.get("session/current.json", {}, what="the current user",
                                 gone=frozenset({404}))
            user = (data or {}).get("current_user")
            name = user.get("username") if isinstance(user, dict) else None
            if not isinstance(name, str):
                raise SourceError(f"source {self.name}: the API key was not accepted as a user "
                                  "(no current_user); check api_key and api_username")
            return f"API key accepted for user {name} on {self.config.base_url}"
        data = self._api.get("site/basic-info.json", {}, what="the site's basic info")
        title = data.get("title")
        return (f"forum {title!r} reachable at {self.config.base_url}, read anonymously"
                if isinstance(title, str) else
                f"{self.config.base_url} answered; read anonymously")

    # -- latest ---------------------------------------------------------------------------------

    def _fetch_latest(self, cursor: Any) -> Iterator[Page]:
        state = CURSOR.load(cursor, self.name, Latest.from_json,
                            keys={LATEST: LATEST}).get(LATEST) or Latest()
        floor = (int(self.ctx.clock().timestamp()) - self.config.initial_lookback
                 if state.since_id is None else None)
        cycle = Cycle(top=state.newest)
        yielded: set[str] = set()
        pages = self._latest_pages(state.before, state.since_id, floor, self.config.max_pages,
                                   cycle, yielded)
        for posts, rejected in pages:
            if cycle.ended:
                known = [v for v in (state.since_id, cycle.top) if v is not None]
                after = Latest(max(known) if known else 0)
            else:
                after = Latest(state.since_id, cycle.oldest, cycle.top)
            yield Page(posts, CURSOR.dump({LATEST: after.to_json()}), rejected)

    def _latest_pages(
        self, before: int | None, since_id: int | None, floor: int | None, max_pages: int,
        cycle: Cycle, yielded: set[str],
    ) -> Pages:
        """``/posts.json`` newest first from ``before`` down to ``since_id`` (or, without one,
        to posts older than ``floor``). ``cycle`` says, before each page is handed out, where
        paging stands and whether the mark was reached."""
        wanted = self._categories() if self.config.categories else None
        for number in range(max_pages):
            records = self._latest_records(before)
            if not records:
                cycle.ended = True  # the oldest post of the forum was passed
                yield [], []
                return
            posts, rejected, lowest = self._latest_posts(records, number, since_id, floor,
                                                         wanted, cycle, yielded)
            if before is not None and lowest >= before:
                cycle.ended = True  # nothing below `before` (or it is ignored): paging on loops
                if any(isinstance(r, dict) and type(r.get("id")) is int and r["id"] > before
                       for r in records):
                    log.warning("source %s: /posts.json did not page below id %d; taking it as "
                                "the end of the list", self.name, before)
            before = lowest
            cycle.oldest = lowest
            yield posts, rejected
            if cycle.ended:
                return

    def _latest_records(self, before: int | None) -> list[Any]:
        """One ``/posts.json`` page: the posts below ``before`` (the newest without it)."""
        params = {"before": before} if before is not None else {}
        data = self._api.get("posts.json", params, what="the latest posts")
        records = data.get("latest_posts")
        if not isinstance(records, list):
            raise SourceError(f"source {self.name}: unexpected answer from /posts.json (no "
                              "'latest_posts' list); is base_url a Discourse forum?")
        return records

    def _latest_posts(
        self, records: list[Any], number: int, since_id: int | None, floor: int | None,
        wanted: frozenset[int] | None, cycle: Cycle, yielded: set[str],
    ) -> tuple[list[Post], list[Rejected], int]:
        """Page ``number``'s records as posts (those above ``since_id``, not older than
        ``floor``, in the ``wanted`` categories, not ``yielded`` yet), what does not parse, and
        the page's lowest post id; ``cycle`` learns the newest id and whether the mark was
        reached. A page without one valid id raises: paging could not go on."""
        posts: list[Post] = []
        rejected: list[Rejected] = []
        lowest: int | None = None
        for index, record in enumerate(records):
            where = f"discourse posts.json page {number} post {index}"
            post_id = record.get("id") if isinstance(record, dict) else None
            if type(post_id) is not int:
                rejected.append(Rejected(where, "post without a numeric id"))
                continue
            lowest = post_id if lowest is None else min(lowest, post_id)
            if cycle.top is None or post_id > cycle.top:
                cycle.top = post_id
            if since_id is not None and post_id <= since_id:
                cycle.ended = True
                continue
            try:
                post = self._latest_post(record, floor, wanted, cycle)
            except ValueError as exc:
                rejected.append(Rejected(f"{where} (discourse {post_id})", str(exc)))
                continue
            if post is not None and post.platform_id not in yielded:
                yielded.add(post.platform_id)
                posts.append(post)
        if lowest is None:
            raise SourceError(f"source {self.name}: a /posts.json page without one valid "
                              "post id; cannot page on, the cursor stays")
        return posts, rejected, lowest

    def _latest_post(self, record: dict[str, Any], floor: int | None,
                     wanted: frozenset[int] | None, cycle: Cycle) -> Post | None:
        """The record as a Post; None when it is older than ``floor`` (the cycle then ends),
        outside the ``wanted`` categories or not a customer's post. ValueError: it does not
        parse."""
        created = created_at(record)
        if floor is not None and created.timestamp() < floor:
            cycle.ended = True
            return None
        if wanted is not None and record.get("category_id") not in wanted:
            return None
        return self._forum.to_post(record, None, created)

    # -- search ---------------------------------------------------------------------------------

    def _fetch_search(self, cursor: Any) -> Iterator[Page]:
        queries = self._queries()
        stored = CURSOR.load(cursor, self.name, Search.from_json,
                             keys={search_key(q): q for q in queries})
        states: dict[str, Search] = dict(stored)  # queries no longer configured are dropped
        start = max(0, int(self.ctx.clock().timestamp()) - self.config.initial_lookback)
        yielded: set[str] = set()
        fetched: set[tuple[int, int]] = set()
        for query, brand in queries.items():
            key = search_key(query)
            state = states.get(key) or Search(since=start)
            lower = max(0, state.since - self.config.overlap)
            cycle = Cycle(high=state.high, page=state.page or 1, done=list(state.done))
            pages = self._search_pages(query, brand, lower, self.config.max_pages, state.seen,
                                       yielded, cycle, fetched)
            for posts, rejected in pages:
                seen = newest_ids(state.seen, cycle.ids)
                high = cycle.high if cycle.high is not None else state.since
                if cycle.ended:
                    states[key] = Search(max(state.since, high), seen)
                elif cycle.page_done:
                    states[key] = Search(state.since, seen, cycle.page + 1, high)
                else:  # within a search page: its topics read so far are not read again
                    states[key] = Search(state.since, seen, cycle.page, high, list(cycle.done))
                cursor_out = CURSOR.dump({k: s.to_json() for k, s in states.items()})
                yield Page(posts, cursor_out, rejected)

    def _search_pages(
        self, query: str, brand: str | None, lower: int, max_pages: int,
        seen: Container[str], yielded: set[str], cycle: Cycle,
        fetched: set[tuple[int, int]] | None = None,
    ) -> Pages:
        """Search pages from ``cycle.page`` on, of ``query`` within posts created since
        ``lower``: one page out per hit topic (its posts in that window, not ``seen``), so a
        rate limit in the middle of a search page loses no topic read before it. ``cycle``
        says, before each is handed out, which search page it came from, which of its topics
        are read, whether that page is done and whether the whole cycle is."""
        q, after = search_terms(query, lower)
        fetched = set() if fetched is None else fetched
        first = cycle.page
        for number in range(first, min(first + max_pages, SEARCH_PAGE_LIMIT + 1)):
            hits, more = self._search_hits(q, number)
            todo, rejected, reached = hit_topics(
                hits, lower, f"discourse search {query!r} page {number}")
            page_end = self._last_search_page(query, after, number, reached or not hits or not more)
            done = set(cycle.done) if number == first else set()
            cycle.page, cycle.done = number, [t for t in todo if t in done]
            # read already: on this page before a failure, or this poll (another query)
            units = [t for t in dict.fromkeys(todo)
                     if t not in done and (t, lower) not in fetched]
            cycle.page_done, cycle.ended = not units, page_end and not units
            if not units:
                yield [], rejected
            for position, topic_id in enumerate(units):
                fetched.add((topic_id, lower))
                posts, bad = self._topic_posts(topic_id, lower, brand, seen, yielded)
                cycle.topic_read(topic_id, posts, last=position == len(units) - 1,
                                 page_end=page_end)
                yield posts, (rejected if position == 0 else []) + bad
            if cycle.ended:
                return

    def _search_hits(self, q: str, number: int) -> tuple[list[Any], bool]:
        """Search page ``number`` of ``q``: its hits, and whether Discourse has more pages."""
        data = self._api.get("search.json", {"q": q, "page": number}, what="search")
        hits, topics = data.get("posts"), data.get("topics", [])
        grouped = data.get("grouped_search_result")
        if not isinstance(hits, list) or not isinstance(topics, list) or (
                grouped is not None and not isinstance(grouped, dict)):
            raise SourceError(f"source {self.name}: unexpected answer from /search.json (no "
                              "'posts' list); is base_url a Discourse forum?")
        return hits, bool(grouped.get("more_full_page_results")) if grouped else False

    def _last_search_page(self, query: str, after: str, number: int, end: bool) -> bool:
        """Whether search page ``number`` is the last one to read: ``end`` (no more hits in the
        window), or it is the last page Discourse serves (a warning: older topics are skipped)."""
        if not end and number == SEARCH_PAGE_LIMIT:
            log.warning("source %s: search %r has more than %d pages of topics since %s; "
                        "Discourse serves no more, older ones are skipped", self.name, query,
                        SEARCH_PAGE_LIMIT, after)
            return True
        return end

    def _queries(self) -> dict[str, str | None]:
        """Each search string (one per OR-branch, plus the category filter) → its brand (None
        when several brands share it: the collect stage decides)."""
        return search_strings(self.ctx.brands, self.config.categories)

    # -- topics ---------------------------------------------------------------------------------

    def _topic_posts(
        self, topic_id: int, lower: int, brand: str | None, seen: Container[str],
        yielded: set[str],
    ) -> tuple[list[Post], list[Rejected]]:
        """The topic's posts created since ``lower``, newest first; a topic that is gone is
        skipped. Reads the topic (its first chunk and the ids of every post), then the rest of
        its posts from the newest back, a chunk at a time, until one is older than ``lower``."""
        read = self._topic(topic_id)
        if read is None:
            log.info("source %s: topic %d is gone (deleted or out of sight); skipped",
                     self.name, topic_id)
            return [], []
        topic, records, ids = read
        have = {r.get("id") for r in records if isinstance(r, dict)}
        rest = [i for i in ids if type(i) is int and i not in have]
        while rest:
            chunk, rest = rest[-TOPIC_CHUNK:], rest[:-TOPIC_CHUNK]
            extra = self._topic_chunk(topic_id, chunk)
            records += extra
            stamps = [created_stamp(r) for r in extra]
            if not extra or min((s for s in stamps if s is not None), default=0) < lower:
                break
        return self._window_posts(topic, records, lower, brand, seen, yielded)

    def _topic(self, topic_id: int) -> tuple[Topic, list[Any], list[Any]] | None:
        """``/t/{id}.json``: the topic, its first chunk of posts and the ids of all its posts;
        None when it is gone."""
        data = self._api.get(f"t/{topic_id}.json", {}, what=f"topic {topic_id}",
                             gone=SKIPPED_TOPIC)
        if data is None:
            return None
        stream = data.get("post_stream")
        records = stream.get("posts") if isinstance(stream, dict) else None
        ids = stream.get("stream", []) if isinstance(stream, dict) else None
        if not isinstance(records, list) or not isinstance(ids, list):
            raise SourceError(f"source {self.name}: unexpected answer for topic {topic_id} (no "
                              "'post_stream' with 'posts' and 'stream')")
        category = data.get("category_id")
        topic = Topic(topic_id, as_str(data.get("title")), as_str(data.get("slug")),
                      category if type(category) is int else None)
        return topic, records, ids

    def _topic_chunk(self, topic_id: int, chunk: list[int]) -> list[Any]:
        """The posts ``chunk`` names, from ``/t/{id}/posts.json``; none when the topic is gone."""
        more = self._api.get(f"t/{topic_id}/posts.json", {"post_ids[]": chunk},
                             what=f"posts of topic {topic_id}", gone=SKIPPED_TOPIC)
        got = (more or {}).get("post_stream")
        extra = got.get("posts") if isinstance(got, dict) else None
        if more is not None and not isinstance(extra, list):
            raise SourceError(f"source {self.name}: unexpected answer for posts of topic "
                              f"{topic_id} (no 'post_stream' with 'posts')")
        return extra or []

    def _window_posts(
        self, topic: Topic, records: list[Any], lower: int, brand: str | None,
        seen: Container[str], yielded: set[str],
    ) -> tuple[list[Post], list[Rejected]]:
        """The topic's records created since ``lower`` as posts, newest first, less those
        ``seen`` (by post id) or ``yielded`` (by platform id); and what does not parse."""
        posts: list[Post] = []
        rejected: list[Rejected] = []
        for record in records:
            post_id = record.get("id") if isinstance(record, dict) else None
            where = f"discourse topic {topic.id} post {post_id}"
            if type(post_id) is not int:
                rejected.append(Rejected(where, "post without a numeric id"))
                continue
            try:
                created = created_at(record)
                if created.timestamp() < lower:
                    continue
                post = self._forum.to_post(record, topic, created, brand)
            except ValueError as exc:
                rejected.append(Rejected(where, str(exc)))
                continue
            if post is None or str(post_id) in seen or post.platform_id in yielded:
                continue
            yielded.add(post.platform_id)
            posts.append(post)
        posts.sort(key=lambda p: (p.created_at, p.raw["id"]), reverse=True)
        return posts, rejected

    # -- categories -----------------------------------------------------------------------------

    def _categories(self) -> frozenset[int]:
        """The configured categories and their subcategories, as ids (looked up once)."""
        if self._category_ids is not None:
            return self._category_ids
        data = self._api.get("categories.json", {"include_subcategories": "true"},
                             what="the categories")
        listing = data.get("category_list")
        top = listing.get("categories") if isinstance(listing, dict) else None
        if not isinstance(top, list):
            raise SourceError(f"source {self.name}: unexpected answer from /categories.json (no "
                              "'category_list')")
        wanted, missing = category_ids(category_tree(top), self.config.categories)
        if missing:
            raise SourceError(f"source {self.name}: no category {', '.join(map(repr, missing))} "
                              f"on {self.config.base_url} (or not visible to this user); check "
                              "`categories` (slugs, names or ids)")
        self._category_ids = frozenset(wanted)
        return self._category_ids
