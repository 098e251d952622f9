"""Stack Exchange sites (Stack Overflow, Super User, Server Fault, …): new questions and answers
about the brands, through the Stack Exchange API 2.3 (https://api.stackexchange.com/docs).

Why httpx and not a client library: StackAPI (0.3.1, 2024), the one maintained Python client,
sleeps *inside* its calls when an answer carries ``backoff`` and hands back only the items, so
the common wrapper (``has_more``, ``quota_remaining``, ``backoff``, ``error_id``) is hidden from
us. A collector must never sleep in a poll: it pauses only its own source, persisted so that a
restart honours it, and it must see the quota to stop before it is spent. StackAPI also talks
through its own ``requests`` session, around the network guard. The API is a handful of GET
requests with a JSON wrapper, so this module sends them with httpx through
:func:`listener.core.httpguard.guarded_client` (SSRF guard, answer cap, no redirects followed).

Request streams, one cursor entry each (all on one ``site``):

- ``tag:<name>``, one per entry of ``tags``: ``GET /2.3/questions?tagged=<name>`` (the API ANDs
  several tags in one ``tagged``; a brand's tags are alternatives, hence one stream per tag);
- ``search:<q>`` (``search: true``), one per simple query of the brands:
  ``GET /2.3/search/advanced?q=<q>``. ``q`` is free text whose words are ANDed and which has no
  OR, so every brand query is split into its DNF branches
  (:func:`listener.core.query.to_simple_queries`); the collect stage applies the full query
  (negations included) to what comes back;
- ``answers`` (``answers: true``): ``GET /2.3/answers``, every new answer on the site; the collect
  stage keeps the ones that mention a brand.

Every request asks for ``sort=creation&order=desc`` with ``filter`` (default ``withbody``: the
default fields plus ``body``), ``pagesize`` and ``fromdate`` = the stream's mark − ``overlap``
(the search index lags a little behind the site; items searched again are recognised by their
ids in ``seen``). Paging is by creation date, not by page number: the next request of a walk
asks for ``todate`` = the oldest creation date reached (+1 s, so that it is covered whether the
API reads ``todate`` as inclusive or not; repeats are skipped by id) and ``page=1``. A post
deleted between two requests therefore cannot shift an unseen one off a page. (Only when one
answer holds nothing older than its bound, a second with more posts than a page, is the next
``page`` of the same request asked for.) A walk ends when
``has_more`` is false; after ``max_pages`` requests it stops with ``upto`` (the oldest second
reached) and ``high`` (the mark to adopt) saved, and the next polls walk on from there before the
mark moves, so nothing is skipped. Every page carries the whole cursor (every stream's entry),
so a restart goes on after the last stored page.

Rate limits, all of them a pause of this source only (:class:`RateLimited`, recorded by the
collect stage in the database, so a restart honours it):

- ``backoff`` in an answer: the page is stored, then the source pauses that many seconds
  (the API demands it per method; pausing the whole source is the simple, safe reading);
- ``quota_remaining`` at or under ``quota_reserve``: the page is stored, then the source pauses
  until the next UTC midnight (10,000 requests a day with a ``key``, 300 without);
- ``error_id`` 502 ``throttle_violation`` (the API answers errors with HTTP 400 and the
  wrapper's ``error_id``/``error_name``/``error_message``): paused for the seconds its message
  names ("more requests available in 3600 seconds"), 60 s when it names none;
- HTTP 429 (a proxy in between): its ``Retry-After``, 60 s without one.

Other errors (400 ``bad_parameter``, 401-406 token and key errors, 404 ``no_method``, 5xx,
500 ``internal_error``, 503 ``temporarily_unavailable``, a body that is not the wrapper) fail the
poll with :class:`SourceError` and leave the cursor where it was. A malformed single item is a
``Page.rejected`` entry. The API does not return deleted posts at all; a post whose owner's
account is gone (``user_type: does_not_exist``) is kept with no author.

Post fields: platform ``stackexchange``; platform_id ``<site>:q<question_id>`` or
``<site>:a<answer_id>`` (ids are per site); text: the title (HTML entities decoded: the API
escapes titles) and the body as plain text; author ``owner.display_name``; author_followers
``owner.reputation``; url ``link`` (answers: the site's ``/a/<id>`` short link when the filter
has no ``link``); created_at ``creation_date``; thread ``<site>:q<question_id>``; language left to
the pipeline (the API gives none).

``key`` (an app key from stackapps.com) and ``access_token`` travel as URL parameters, as the API
wants them; both are registered as secrets, and httpx's own request log line is redacted at its
logger, so neither reaches a log. Error messages never show a request URL.

Cursor (JSON; every page carries all of it)::

    {"version": 1,
     "streams": {"search:acme": {"since": 1714567890, "seen": ["stackoverflow:q7812", ...]},
                 "tag:acme-sdk": {"since": 1714500000, "seen": [...],
                                  "upto": 1714560000, "high": 1714567000}}}
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, model_validator

from listener.core.errors import ConfigError, RateLimited, SourceError
from listener.core.httpguard import GuardSettings, guarded_client, source_policy
from listener.core.log import RedactingFilter, register_secret
from listener.core.models import Page, Post, Rejected
from listener.core.query import to_simple_queries
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.cursor import CursorLayout, SeenIds
from listener.sources.html_text import html_to_text
from listener.sources.http import DEFAULT_WAIT, USER_AGENT, raise_for_status, unanswered

log = logging.getLogger(__name__)

PLATFORM = "stackexchange"
API = "/2.3"
PATHS = {"tag": f"{API}/questions", "search": f"{API}/search/advanced",
         "answers": f"{API}/answers"}
INFO_PATH = f"{API}/info"
MAX_PAGE_SIZE = 100  # the API's largest pagesize
MAX_BACKFILL_PAGES = 1000  # backfill: at most this many requests per stream
_THROTTLE_SECONDS = re.compile(r"(\d+)\s*seconds?", re.IGNORECASE)
_CREDENTIAL_ERRORS = {401, 402, 403, 405, 406}  # access_token_required … access_token_compromised
_RETRIED_ERRORS = {500, 503, 504}  # internal_error, temporarily_unavailable: the next poll retries
_SITE_DOMAINS = {"stackoverflow": "stackoverflow.com", "superuser": "superuser.com",
                 "serverfault": "serverfault.com", "askubuntu": "askubuntu.com",
                 "stackapps": "stackapps.com"}
_CURSOR = CursorLayout(
    version=1, section="streams", log=log,
    not_understood="source %s: cursor not understood; starting over",
    bad_entry="source %s: bad cursor entry for %r; starting it over",
)
_REDACT_HTTPX = RedactingFilter()
"""On httpx's logger: its INFO line ``HTTP Request: GET <url>`` carries ``key=`` and
``access_token=``; masked before any handler (ours, pytest's, a user's) sees the record."""


class StackExchangeSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: stackexchange`` source."""

    base_url: str = Field(
        "https://api.stackexchange.com",
        description="Stack Exchange API root; change only for a proxy or a test server",
    )
    site: str = Field(
        "stackoverflow", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$",
        description="the site to read, by its API name (api_site_parameter): stackoverflow, "
        "superuser, serverfault, askubuntu, math, …",
    )
    tags: list[str] = Field(
        default_factory=list, description="tags whose new questions are read (one request "
        "stream per tag); the brands' queries still decide which are kept",
    )
    search: bool = Field(
        True, description="search the site's questions with the brands' queries "
        "(/search/advanced; one request stream per OR branch)",
    )
    answers: bool = Field(
        False, description="also read every new answer on the site (one more request stream; "
        "the brands' queries decide which are kept)",
    )
    key: str | None = Field(
        None, repr=False, description="app key from stackapps.com, set as {\"$env\": NAME}: raises the "
        "daily quota from 300 to 10,000 requests",
    )
    access_token: str | None = Field(
        None, repr=False, description="OAuth access token (optional, needs key), set as {\"$env\": NAME}: "
        "requests count against the user's own quota instead of this machine's address",
    )
    quota_reserve: int = Field(
        10, ge=0, description="requests of the daily quota left unused: once quota_remaining "
        "falls to this, the source pauses until the next UTC midnight",
    )
    max_pages: int = Field(
        5, ge=1, le=100, description="requests per stream per poll; a longer backlog is caught "
        "up over the next polls",
    )
    page_size: int = Field(
        MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="items per request (pagesize, at "
        "most 100)",
    )
    filter: str = Field(
        "withbody", min_length=1, description="API filter of every request; it must include "
        "the posts' body (the built-in withbody does)",
    )
    overlap: int = Field(
        300, ge=0, description="seconds searched again behind the newest item already collected, "
        "because the search index lags behind the site; repeats are recognised and skipped",
    )
    initial_lookback: int = Field(
        86400, ge=0, description="seconds of history the first poll fetches (no cursor yet); "
        "`listener backfill` reaches further",
    )

    @model_validator(mode="after")
    def _check(self) -> StackExchangeSourceConfig:
        bad = [t for t in self.tags if not t or ";" in t or t != "".join(t.split())]
        if bad:
            raise ValueError(f"tags must be single tags without spaces or ';' (one stream "
                             f"each), not {bad!r}")
        if self.access_token and not self.key:
            raise ValueError("access_token needs key too: the API refuses an access token "
                             "sent without its application's key (key_required)")
        return self


@dataclass(frozen=True)
class _Stream:
    """One request stream: its cursor key, endpoint, parameter and brand."""

    key: str
    kind: Literal["tag", "search", "answers"]
    value: str | None = None  # the tag, or the search text
    brand: str | None = None  # None: several brands share it, or none (tags, answers)

    @property
    def path(self) -> str:
        return PATHS[self.kind]

    def params(self) -> dict[str, str]:
        if self.kind == "tag":
            return {"tagged": self.value or ""}
        if self.kind == "search":
            return {"q": self.value or ""}
        return {}


@dataclass
class _State:
    """Cursor entry of one stream."""

    since: int
    seen: SeenIds = field(default_factory=SeenIds)
    upto: int | None = None  # catching up: the next walk ends here (inclusive)
    high: int | None = None  # catching up: the mark to adopt once the gap is closed
    page: int = 1  # catching up inside one crowded second: the page of it to ask for next

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"since": self.since, "seen": self.seen.to_json()}
        if self.upto is not None:
            data.update(upto=self.upto, high=self.high)
            if self.page > 1:
                data["page"] = self.page
        return data

    @classmethod
    def from_json(cls, data: Any) -> _State | None:
        if not isinstance(data, dict):
            return None
        since, upto, high, page = (data.get(k) for k in ("since", "upto", "high", "page"))
        others = [v for v in (upto, high, page) if v is not None]
        if type(since) is not int or not all(type(v) is int for v in others) \
                or (upto is None) != (high is None) or (page is not None and page < 1):
            return None
        seen = SeenIds.from_json(data.get("seen"))
        return None if seen is None else cls(since, seen, upto, high, page or 1)


@dataclass
class _Step:
    """One answer of a walk, converted."""

    posts: list[Post]
    rejected: list[Rejected]
    ids: list[str]  # every item's platform_id, newest first (skipped ones too)
    newest: int | None
    upto: int | None  # where the next request ends; None: the walk is complete
    page: int  # the page of that request (above 1 only inside a crowded second)
    wait: float | None  # a pause the answer asked for (backoff, quota), after this page
    why: str = ""


class StackExchangeSource:
    """New questions (and answers) about the brands on one Stack Exchange site."""

    Config: ClassVar[type[SourceConfig]] = StackExchangeSourceConfig  # before `type` shadows it
    type: ClassVar[str] = "stackexchange"
    searches: ClassVar[bool] = True

    def __init__(self, config: StackExchangeSourceConfig, ctx: SourceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.name = config.name
        self._streams = self._build_streams()
        for secret in (config.key, config.access_token):
            register_secret(secret)
        logging.getLogger("httpx").addFilter(_REDACT_HTTPX)  # one shared filter: idempotent
        self._client = guarded_client(
            source_policy(config.name, config, [config.base_url]),
            base_url=config.base_url, timeout=ctx.http_timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def _build_streams(self) -> list[_Stream]:
        streams = [_Stream(f"tag:{tag}", "tag", tag) for tag in dict.fromkeys(self.config.tags)]
        if self.config.search:
            owners: dict[str, list[str]] = {}
            for brand in self.ctx.brands:
                for query in to_simple_queries(brand.query):
                    owners.setdefault(query, []).append(brand.name)
            streams += [_Stream(f"search:{q}", "search", q,
                                names[0] if len(set(names)) == 1 else None)
                        for q, names in owners.items()]
        if self.config.answers:
            streams.append(_Stream("answers", "answers"))
        if not streams:
            raise ConfigError(
                f"source '{self.name}': nothing to poll: set tags, answers: true, or keep "
                "search: true with `brands:` configured at the top level (or on this source)",
                key="tags",
            )
        return streams

    # -- the entry points -------------------------------------------------------------------

    def check(self) -> str:
        """``listener doctor``: one ``/info`` request of the site, which proves the key and the
        access token (the API refuses either when it is wrong) and reads the day's quota."""
        data = self._get(INFO_PATH, {"filter": "default"})
        remaining, most = data.get("quota_remaining"), data.get("quota_max")
        key = "key accepted" if self.config.key else "no key (300 requests a day)"
        token = "; access token accepted" if self.config.access_token else ""
        return (f"site {self.config.site} answered; {key}{token}; quota {remaining} of {most} "
                "requests left today")

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New items of every stream since the saved marks; ``cursor=None`` looks back
        ``initial_lookback`` seconds."""
        keys = {s.key: s.key for s in self._streams}
        states = _CURSOR.load(cursor, self.name, _State.from_json, keys)  # unconfigured: dropped
        start = max(0, int(self.ctx.clock().timestamp()) - self.config.initial_lookback)
        yielded: set[str] = set()
        for stream in self._streams:
            state = states.get(stream.key) or _State(since=start)
            lower = max(0, state.since - self.config.overlap)
            high = max(state.since, state.high or 0)
            seen = state.seen
            for step in self._walk(stream, lower, state.upto, state.page, state.seen,
                                   yielded, self.config.max_pages):
                seen = seen.merged(step.ids)
                if step.newest is not None:
                    high = max(high, step.newest)
                if step.upto is None:
                    state = _State(since=high, seen=seen)
                else:
                    state = _State(since=state.since, seen=seen, upto=step.upto, high=high,
                                   page=step.page)
                states[stream.key] = state
                yield Page(step.posts, self._dump(states), step.rejected)
                if step.wait is not None:
                    raise RateLimited(step.why, step.wait)
            if state.upto is not None:
                log.info("source %s: %s has more new items than %d requests hold; catching up "
                         "from %d next poll", self.name, stream.key, self.config.max_pages,
                         state.upto)

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Every item of every stream back to ``since``. The API serves a site's whole history
        (Stack Overflow: 2008 on), so any date works, at most ``MAX_BACKFILL_PAGES`` requests
        per stream (mind the daily quota: 10,000 requests with a key)."""
        lower = max(0, int(since.timestamp()))
        yielded: set[str] = set()
        for stream in self._streams:
            step = None
            for step in self._walk(stream, lower, None, 1, (), yielded, MAX_BACKFILL_PAGES):
                yield Page(step.posts, None, step.rejected)
                if step.wait is not None:
                    raise RateLimited(step.why, step.wait)
            if step is not None and step.upto is not None:
                log.warning("source %s: backfill of %s stopped after %d requests", self.name,
                            stream.key, MAX_BACKFILL_PAGES)

    # -- walking a stream ----------------------------------------------------------------------

    def _walk(self, stream: _Stream, lower: int, upto: int | None, page: int,
              seen: Container[str], yielded: set[str], pages: int) -> Iterator[_Step]:
        """Newest first, from ``upto`` (None: now) down to ``lower``, at most ``pages``
        requests; each step says where the next one would end (None: the walk is complete).

        The next request ends at the oldest second reached. When an answer held nothing older
        than its own bound (more items in that second than one answer holds), the next page of
        the same request is asked for instead, so the walk moves on without skipping any."""
        for number in range(pages):
            params: dict[str, Any] = {
                **stream.params(), "sort": "creation", "order": "desc", "page": page,
                "pagesize": self.config.page_size, "fromdate": lower,
            }
            if upto is not None:
                params["todate"] = upto + 1
            data = self._get(stream.path, params)
            done = self._convert(stream, data["items"], number, seen, yielded)
            stamps = [s for s in done.stamps if s is not None]
            following: int | None = None
            next_page = 1
            if data["has_more"] is True and stamps:
                oldest = min(stamps)
                if upto is None or oldest < upto:
                    following = oldest
                else:
                    following, next_page = upto, page + 1
                if following < lower:
                    following = None
            wait, why = self._pause_asked(data)
            yield _Step(done.posts, done.rejected, done.ids, max(stamps) if stamps else None,
                        following, next_page, wait, why)
            if following is None:
                return
            upto, page = following, next_page

    def _pause_asked(self, data: dict[str, Any]) -> tuple[float | None, str]:
        """The pause an answer asks for after its page: ``backoff``, or the quota's reserve
        reached (until the next UTC midnight, when the daily quota starts afresh)."""
        waits: list[tuple[float, str]] = []
        backoff = data.get("backoff")
        if type(backoff) is int and backoff > 0:
            waits.append((float(backoff), f"source {self.name}: the Stack Exchange API asked "
                          f"for a backoff of {backoff} s; paused"))
        remaining = data.get("quota_remaining")
        if type(remaining) is int and remaining <= self.config.quota_reserve:
            now = self.ctx.clock()
            midnight = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1),
                                        datetime.min.time(), UTC)
            waits.append(((midnight - now).total_seconds(),
                          f"source {self.name}: the daily Stack Exchange API quota is down to "
                          f"{remaining} request(s) (quota_reserve {self.config.quota_reserve}; "
                          f"quota_max {data.get('quota_max')}); paused until the next UTC "
                          "midnight"))
        if not waits:
            return None, ""
        return max(waits)

    # -- HTTP ----------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request; the wrapper, or RateLimited / SourceError (the cursor stays)."""
        sent = {"site": self.config.site, "filter": self.config.filter, **params}
        if self.config.key:
            sent["key"] = self.config.key
        if self.config.access_token:
            sent["access_token"] = self.config.access_token
        try:
            response = self._client.get(path, params=sent)
        except httpx.HTTPError as exc:
            raise unanswered(f"source {self.name}", "the Stack Exchange API",
                             self.config.base_url, exc, self.ctx.http_timeout,
                             self._scrub) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error_id") is not None:
            raise self._api_error(response.status_code, data)
        raise_for_status(self.name, response.status_code, response.headers,
                         self._scrub(response.text), self.ctx.clock())
        if (not isinstance(data, dict) or not isinstance(data.get("items"), list)
                or not isinstance(data.get("has_more"), bool)):
            raise SourceError(
                f"source {self.name}: unexpected answer from the Stack Exchange API (not the "
                "common wrapper with an 'items' list and 'has_more'); is base_url the API, and "
                "does the filter keep items and has_more?"
            )
        return data

    def _api_error(self, status: int, data: dict[str, Any]) -> Exception:
        """The wrapper's ``error_id``/``error_name``/``error_message`` as our exception."""
        number, name = data.get("error_id"), data.get("error_name")
        message = self._scrub(" ".join(str(data.get("error_message") or "").split())[:200])
        said = f"source {self.name}: Stack Exchange API error {number} {name} (HTTP {status}): "
        said += message or "no message"
        if number == 502 or name == "throttle_violation":
            found = _THROTTLE_SECONDS.search(message)
            wait = float(found.group(1)) if found else DEFAULT_WAIT
            return RateLimited(f"{said}; paused", wait)
        if number in _CREDENTIAL_ERRORS:
            advice = ("the key or access token was refused; check them in this source's "
                      "environment variables (an access token needs its own app's key)")
        elif number == 400:
            advice = "a parameter was refused; check site, tags, filter and key"
        elif number == 404:
            advice = "no such method; check base_url"
        elif number in _RETRIED_ERRORS:
            advice = "the API failed; the next poll retries"
        else:
            advice = "the next poll retries"
        return SourceError(f"{said}; {advice}")

    def _scrub(self, text: str) -> str:
        """``text`` without the key or access token (an error body may echo a parameter)."""
        for secret in (self.config.key, self.config.access_token):
            if secret:
                text = text.replace(secret, "***")
        return text

    @staticmethod
    def _dump(states: dict[str, _State]) -> dict[str, Any]:
        return _CURSOR.dump({k: s.to_json() for k, s in states.items()})

    # -- items -----------------------------------------------------------------------------------

    def _convert(self, stream: _Stream, items: list[Any], number: int, seen: Container[str],
                 yielded: set[str]) -> _Converted:
        done = _Converted()
        for index, item in enumerate(items):
            where = f"stackexchange {stream.key} request {number + 1} item {index}"
            item_id = _item_id(item, stream.kind)
            stamp = item.get("creation_date") if isinstance(item, dict) else None
            if item_id is None or type(stamp) is not int:
                what = "answer_id" if stream.kind == "answers" else "question_id"
                done.rejected.append(Rejected(where, f"item without a {what} or creation_date"))
                continue
            platform_id = f"{self.config.site}:{item_id}"
            done.ids.append(platform_id)
            done.stamps.append(stamp)
            if platform_id in seen or platform_id in yielded:
                continue
            try:
                post = self._to_post(item, platform_id, stamp, stream)
            except (TypeError, ValueError, OverflowError, OSError) as exc:
                done.rejected.append(Rejected(f"{where} ({platform_id})", str(exc)))
                continue
            if post is not None:
                yielded.add(platform_id)
                done.posts.append(post)
        return done

    def _to_post(self, item: dict[str, Any], platform_id: str, stamp: int, stream: _Stream
                 ) -> Post | None:
        """The item as a Post; None when it has no text at all."""
        is_answer = stream.kind == "answers"
        title = html.unescape(" ".join(_text(item, "title").split()))
        body = html_to_text(_text(item, "body"))
        text = f"{title}\n\n{body}" if title and body else title or body
        if not text:
            log.debug("source %s: %s skipped: no title or body (check the filter)", self.name,
                      platform_id)
            return None
        question_id = item.get("question_id")
        if type(question_id) is not int:
            raise ValueError("'question_id' is not a number")
        author, followers, owner_raw = _owner(item.get("owner"))
        link = _text(item, "link")
        if not link:
            link = f"{site_url(self.config.site)}/" + (
                f"a/{item['answer_id']}" if is_answer else f"q/{question_id}")
        tags = item.get("tags")
        raw: dict[str, Any] = {
            "type": "answer" if is_answer else "question", "site": self.config.site,
            "question_id": question_id, "stream": stream.key, **owner_raw,
            **{k: item[k] for k in ("answer_id", "score", "answer_count", "is_answered",
                                    "is_accepted", "view_count") if item.get(k) is not None},
        }
        if isinstance(tags, list):
            raw["tags"] = [str(t) for t in tags]
        return Post(
            platform=PLATFORM, platform_id=platform_id, text=text,
            created_at=datetime.fromtimestamp(stamp, UTC), source=self.name, url=link,
            author=author, author_followers=followers, kind="mention", brand=stream.brand,
            thread=f"{self.config.site}:q{question_id}", raw=raw,
        )


@dataclass
class _Converted:
    """One answer's items: posts, rejects, and every id and creation date seen."""

    posts: list[Post] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    stamps: list[int | None] = field(default_factory=list)


def site_url(site: str) -> str:
    """The site's web address from its API name (for links the filter left out)."""
    if "." in site:
        return f"https://{site}"
    return f"https://{_SITE_DOMAINS.get(site, f'{site}.stackexchange.com')}"


def _item_id(item: Any, kind: str) -> str | None:
    """``q<question_id>`` or ``a<answer_id>``; None when the item has no such number."""
    if not isinstance(item, dict):
        return None
    name, prefix = ("answer_id", "a") if kind == "answers" else ("question_id", "q")
    value = item.get(name)
    return f"{prefix}{value}" if type(value) is int and value > 0 else None


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{key}' is not a string")
    return value


def _owner(owner: Any) -> tuple[str | None, int | None, dict[str, Any]]:
    """Author, reputation and raw fields of a ``shallow_user``; a deleted account
    (``user_type: does_not_exist``) has no author."""
    if owner is None:
        return None, None, {}
    if not isinstance(owner, dict):
        raise ValueError("'owner' is not an object")
    kind = owner.get("user_type")
    raw = {k: v for k, v in (("user_type", kind), ("user_id", owner.get("user_id")))
           if v is not None}
    if kind == "does_not_exist":
        return None, None, raw
    name = owner.get("display_name")
    author = html.unescape(name).strip() or None if isinstance(name, str) else None
    reputation = owner.get("reputation")
    return author, reputation if type(reputation) is int else None, raw
