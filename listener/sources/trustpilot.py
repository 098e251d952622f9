"""Trustpilot service reviews of your business units, through Trustpilot's public API (API key).

``GET {base_url}/v1/business-units/{id}/reviews`` with the key in the ``apikey`` header answers
``{"reviews": [...], "links": [...]}``: newest first with ``orderBy=createdat.desc``, offset
pages (``page`` from 1, ``perPage`` 1-100), an empty list past the end; the optional ``stars`` and
``language`` filters are sent as repeated parameters. A business unit given by its domain
(``domains``) is looked up once per process with ``GET /v1/business-units/find?name=<domain>``.
A review becomes a ``review`` post: text ``title`` + blank line + ``text``, ``rating`` its stars,
``author`` the consumer's ``displayName``, ``lang`` the review's ``language``, ``url`` its public
page ``https://www.trustpilot.com/reviews/{id}``, and whether (and what) the company replied in
``raw`` (``replied``, ``company_reply``). ``author_followers`` stays empty: the API gives the
consumer's ``numberOfReviews`` (kept in ``raw``), which is not an audience.

Why httpx and not a client library: no maintained Python client covers the current API (the
``trustpilot`` package on PyPI was last released in 2023 and mostly wraps OAuth flows this
read-only source does not need); two GET endpoints with an API key are plain HTTP, sent through
:func:`listener.core.httpguard.guarded_client` like every other source (SSRF guard, answer cap).

Cursor, one entry per business unit (its id)::

    {"version": 1,
     "units": {"507f191e810c19729de860ea": {
         "newest_at": "2026-11-20T11:55:00Z", "newest_id": "6737…", "seen": ["6737…", ...],
         "resume": 480, "high_at": "2026-11-20T12:10:00Z", "high_id": "6738…",
         "filters": "stars=1,2;language=*"}}}

A poll walks a unit's reviews newest first and stops after the page that goes below the mark
(a review older than ``newest_at``, or one already stored and not newer), or at the end of the
list; the whole page is read, so a review published late next to known ones is still taken.
The mark moves only on the last page of the walk. When ``max_pages`` ends a walk before the
mark, ``resume`` keeps how many reviews from the top were read and ``high_*`` the newest
review of the walk: the next poll reads on from there down to the old mark (new reviews
arriving meanwhile only push the list down: what comes again is recognised by ``seen``), then
adopts ``high_*``. ``filters`` are the ``stars``/``languages`` that offset was counted under:
when they changed since, the walk starts again from the top, down to the same mark. A unit's
very first poll stops at ``max_pages`` for good: what lies further back is history
(``listener backfill``).

Offset pages shift when a review is deleted between two requests: everything below moves up one
place, and the review that moved across the page boundary would never be read. So each request
after the first starts ``overlap`` reviews before where the previous one ended (its
``page``/``perPage`` chosen so that one offset page does: :func:`window`); what is read twice is
skipped by id. A review that is gone is simply absent; one the API still lists but no longer
shows (``status`` other than ``active``, or no title and no text) is skipped.

Rate limits: Trustpilot asks clients to stay under 833 calls per 5 minutes and 10,000 an hour
and answers 429 beyond; no reset header is documented, so the source pauses for Retry-After
when one is sent, else 60 s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field, field_validator, model_validator

from listener.core.errors import ConfigError, SourceError
from listener.core.httpguard import GuardSettings, guarded_client, source_policy
from listener.core.log import register_secret
from listener.core.models import Page, Post, Rejected, parse_iso, to_iso
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.cursor import CursorLayout, SeenIds
from listener.sources.http import USER_AGENT, raise_for_status, unanswered
from listener.sources.reviews import backfill_page

log = logging.getLogger(__name__)

PLATFORM = "trustpilot"
API_URL = "https://api.trustpilot.com"
REVIEW_URL = "https://www.trustpilot.com/reviews/{}"
MAX_PER_PAGE = 100  # the API's perPage limit
SEEN_LIMIT = 2000
"""Review ids remembered per business unit: four times what a poll reads by default (5 pages of
100). A repeat older than them is still stored once: storage keys posts by platform and id."""
BACKFILL_MAX_PAGES = 1000
"""Pages a backfill reads per business unit at most (100,000 reviews with 100 a page)."""
_CURSOR = CursorLayout(
    version=1, section="units", log=log,
    not_understood="source %s: cursor not understood; reading every business unit again",
    bad_entry="source %s: bad cursor entry for business unit %s; reading it again",
)
_ADVICE = {
    401: "Trustpilot refused the API key: check api_key (the key of your application at "
    "developers.trustpilot.com, given as {\"$env\": TRUSTPILOT_API_KEY})",
    403: "Trustpilot refused access: the API key's plan does not include this endpoint",
}


def _unknown(unit_id: str) -> str:
    return (f"Trustpilot has no business unit {unit_id}; check business_units (or give the "
            "domain under `domains`)")


class TrustpilotSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: trustpilot`` source."""

    api_key: str | None = Field(
        None, repr=False,
        description='API key of your Trustpilot application (sent as the apikey header); give it '
        'as {"$env": TRUSTPILOT_API_KEY}, never in the file',
    )
    business_units: list[str] = Field(
        default_factory=list,
        description="business unit ids whose reviews are read (the id `find` gives for your "
        "domain); use `domains` to have them looked up",
    )
    domains: list[str] = Field(
        default_factory=list,
        description="domains as Trustpilot names them (acme.com), each looked up once per run "
        "with /v1/business-units/find; the same as listing its id in business_units",
    )
    base_url: str = Field(
        API_URL, description="API root; change only for a proxy or a test server",
    )
    page_size: int = Field(
        MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE,
        description="reviews asked for per request (perPage, 1-100)",
    )
    max_pages: int = Field(
        5, ge=1, le=1000,
        description="requests per business unit and poll; a longer backlog is read on at the "
        "next polls without a gap (a unit's first poll reads this many pages, the rest is "
        "history for `listener backfill`)",
    )
    overlap: int = Field(
        5, ge=0, le=50,
        description="reviews read again where one request ends and the next begins, so that "
        "reviews deleted meanwhile (the list moves up) make no review slip past unread; repeats "
        "are skipped",
    )
    stars: list[int] | None = Field(
        None, description="only reviews with these star ratings (1-5), e.g. [1, 2]; default all",
    )
    languages: list[str] | None = Field(
        None, description="only reviews in these languages (ISO 639-1 codes, e.g. [en, de]); "
        "default all",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
            raise ValueError("base_url must be an http(s) URL such as https://api.trustpilot.com")
        return value.rstrip("/")

    @field_validator("business_units")
    @classmethod
    def _unit_ids(cls, value: list[str]) -> list[str]:
        for unit in value:
            if not unit or not unit.isascii() or not unit.replace("-", "").isalnum():
                raise ValueError(f"{unit!r} is not a business unit id (letters and digits, "
                                 "like 507f191e810c19729de860ea); put domains under `domains`")
        return list(dict.fromkeys(value))

    @field_validator("domains")
    @classmethod
    def _domain_names(cls, value: list[str]) -> list[str]:
        names = [v.strip().lower() for v in value]
        for name in names:
            if not name or any(c in name for c in "/?#@ ") or "." not in name:
                raise ValueError(f"{name!r} is not a domain such as acme.com")
        return list(dict.fromkeys(names))

    @field_validator("stars")
    @classmethod
    def _star_values(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(not 1 <= s <= 5 for s in value)):
            raise ValueError("stars must list ratings from 1 to 5")
        return sorted(set(value)) if value else value

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or any(
                not 2 <= len(v) <= 8 or not v.replace("-", "").isalpha() for v in value)):
            raise ValueError("languages must list language codes such as en or pt-BR")
        return value

    @model_validator(mode="after")
    def _something_to_read(self) -> TrustpilotSourceConfig:
        if not self.business_units and not self.domains:
            raise ValueError("name at least one business unit: business_units (ids) or domains")
        if self.overlap >= self.page_size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than page_size "
                             f"({self.page_size})")
        return self


def window(end: int, overlap: int, size: int) -> tuple[int, int]:
    """``(perPage, page)`` of the request that reads on after ``end`` reviews from the top.

    The API serves offset pages: page ``p`` of ``perPage`` ``n`` holds reviews ``(p-1)n`` to
    ``pn - 1``. The window returned starts at least ``overlap`` reviews before ``end`` and reaches
    as far past it as any ``perPage`` up to ``size`` allows (the smaller overlap is taken only when
    no page size gives the full one; at 0 the aligned page of ``size`` always does).
    """
    if end <= 0:
        return size, 1
    for want in range(min(overlap, end), -1, -1):
        best: tuple[int, int, int] | None = None  # (stop, perPage, page)
        for per_page in range(size, want, -1):
            start = (end - want) // per_page * per_page
            stop = start + per_page
            if stop > end and (best is None or stop > best[0]):
                best = (stop, per_page, start // per_page + 1)
        if best is not None:
            return best[1], best[2]
    return size, end // size + 1  # not reached: want 0 with per_page == size always fits


@dataclass(frozen=True)
class _Unit:
    """One business unit to read: its id, and the domain it was found by (if any)."""

    id: str
    domain: str | None = None
    name: str | None = None  # displayName, when the lookup gave it


@dataclass
class _State:
    """The cursor entry of one business unit (see the module docstring)."""

    newest_at: datetime | None = None
    newest_id: str | None = None
    seen: SeenIds = field(default_factory=SeenIds)
    resume: int | None = None  # reviews from the top already read by a walk cut short
    high_at: datetime | None = None  # that walk's newest review, adopted when it is complete
    high_id: str | None = None
    filters: str | None = None  # the filters ``resume`` was counted under (see _filters)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "newest_at": to_iso(self.newest_at) if self.newest_at else None,
            "newest_id": self.newest_id, "seen": self.seen.to_json(),
        }
        if self.resume is not None:
            data.update(resume=self.resume,
                        high_at=to_iso(self.high_at) if self.high_at else None,
                        high_id=self.high_id, filters=self.filters)
        return data

    @classmethod
    def from_json(cls, data: Any) -> _State | None:
        if not isinstance(data, dict):
            return None
        seen = SeenIds.from_json(data.get("seen"))
        resume = data.get("resume")
        ids = (data.get("newest_id"), data.get("high_id"), data.get("filters"))
        if seen is None or any(v is not None and not isinstance(v, str) for v in ids):
            return None
        if resume is not None and (type(resume) is not int or resume < 0):
            return None
        try:
            newest_at, high_at = (parse_iso(v) if v is not None else None
                                  for v in (data.get("newest_at"), data.get("high_at")))
        except (TypeError, ValueError, AttributeError):
            return None
        return cls(newest_at, ids[0], seen, resume, high_at, ids[1], ids[2])


@dataclass
class _Walk:
    """What one walk down a unit's list has read so far."""

    state: _State
    offset: int = 0  # reviews from the top read so far
    ids: list[str] = field(default_factory=list)  # every review id read, in order
    high: tuple[datetime, str] | None = None  # the newest review read
    reached: bool = False  # went below the mark

    def read(self, review_id: str, at: datetime) -> None:
        self.ids.append(review_id)
        if self.high is None or at > self.high[0]:
            self.high = (at, review_id)
        mark = self.state.newest_at
        if mark is not None and (at < mark or (review_id in self.state.seen and at <= mark)):
            self.reached = True


class TrustpilotSource:
    """Reviews of the configured business units, newest first, from Trustpilot's public API."""

    Config: ClassVar[type[SourceConfig]] = TrustpilotSourceConfig  # before `type` shadows type
    type: ClassVar[str] = "trustpilot"
    searches: ClassVar[bool] = False  # a business unit's reviews are all about the brand

    def __init__(self, config: TrustpilotSourceConfig, ctx: SourceContext) -> None:
        self.config, self.ctx, self.name = config, ctx, config.name
        if not config.api_key:
            raise ConfigError(
                f"source '{self.name}': api_key is required; set it to "
                '{"$env": TRUSTPILOT_API_KEY} and export the API key of your Trustpilot '
                "application", key="api_key",
            )
        register_secret(config.api_key)
        self._api_key: str = config.api_key
        self._found: dict[str, _Unit] = {}  # domain -> business unit, looked up once per process

    # -- the entry points ---------------------------------------------------------------------

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New reviews of every business unit; each unit's state is saved with its walk's last
        page (the cursor it carries holds every unit's)."""
        states = _CURSOR.load(cursor, self.name, _State.from_json)
        emitted: set[str] = set()
        with self._client() as client:
            for unit in self._units(client):
                yield from self._walk(client, unit, states, emitted)

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Reviews back to ``since``, newest first, as deep as the API pages (at most
        ``BACKFILL_MAX_PAGES`` requests per business unit). Pages carry ``cursor=None``."""
        emitted: set[str] = set()
        with self._client() as client:
            for unit in self._units(client):
                offset = 0
                for _ in range(BACKFILL_MAX_PAGES):
                    reviews, start, per_page = self._page(client, unit, offset)
                    items = [self._to_post(r, unit, start + i) for i, r in enumerate(reviews)]
                    fresh = [p if isinstance(p, Post | Rejected) else None for p in items
                             if not (isinstance(p, Post) and p.platform_id in emitted)]
                    emitted.update(p.platform_id for p in fresh if isinstance(p, Post))
                    page, older = backfill_page(fresh, since)
                    yield page
                    offset = start + len(reviews)
                    if older or len(reviews) < per_page:
                        break
                else:
                    log.warning("source %s: backfill of business unit %s stopped after %d "
                                "pages", self.name, unit.id, BACKFILL_MAX_PAGES)

    def check(self) -> str:
        """``listener doctor``: one request proving the key: the first business unit (or the
        lookup of the first domain)."""
        with self._client() as client:
            if self.config.business_units:
                unit_id = self.config.business_units[0]
                data = self._get(client, f"/v1/business-units/{quote(unit_id, safe='')}", {},
                                 f"business unit {unit_id}", missing=_unknown(unit_id))
                name = data.get("displayName")
                return f"API key accepted; business unit {unit_id} ({name}) found"
            unit = self._find(client, self.config.domains[0])
            return f"API key accepted; {unit.domain} is business unit {unit.id} ({unit.name})"

    # -- walking one business unit ------------------------------------------------------------

    def _walk(self, client: httpx.Client, unit: _Unit, states: dict[str, _State],
              emitted: set[str]) -> Iterator[Page]:
        state = states.get(unit.id) or _State()
        resume = state.resume if state.filters == self._filters() else None
        walk = _Walk(state, offset=resume or 0)
        for number in range(1, self.config.max_pages + 1):
            known = {*state.seen, *walk.ids}
            reviews, start, per_page = self._page(client, unit, walk.offset)
            posts: list[Post] = []
            rejected: list[Rejected] = []
            ids_here: list[str] = []
            for index, review in enumerate(reviews):
                item = self._to_post(review, unit, start + index)
                if isinstance(item, Rejected):
                    rejected.append(item)
                    continue
                review_id, at = item if isinstance(item, tuple) else (item.platform_id,
                                                                       item.created_at)
                ids_here.append(review_id)
                walk.read(review_id, at)
                if isinstance(item, Post) and review_id not in state.seen \
                        and review_id not in emitted:
                    emitted.add(review_id)
                    posts.append(item)
            if start < walk.offset and ids_here and not known & set(ids_here):
                log.warning("source %s: business unit %s: no review of the overlap came again "
                            "at offset %d: more reviews were deleted between two requests than "
                            "`overlap` covers, and one may have been skipped", self.name,
                            unit.id, walk.offset)
            walk.offset = start + len(reviews)
            ended = len(reviews) < per_page
            if walk.reached or ended or number == self.config.max_pages:
                states[unit.id] = self._end(unit, walk, ended)
                yield Page(posts=posts, cursor=_CURSOR.dump(
                    {k: s.to_json() for k, s in states.items()}), rejected=rejected)
                return
            yield Page(posts=posts, cursor=None, rejected=rejected)

    def _end(self, unit: _Unit, walk: _Walk, ended: bool) -> _State:
        """The unit's state after a walk: a new mark, or (cut short) where the next goes on."""
        state = walk.state
        seen = state.seen.merged(walk.ids, SEEN_LIMIT) if walk.ids else state.seen
        # the newest of: the old mark, a cut-short walk's pending one, this walk's
        candidates = [(at, rid) for at, rid in ((state.newest_at, state.newest_id),
                                                (state.high_at, state.high_id), walk.high or
                                                (None, None)) if at is not None and rid]
        high = max(candidates, key=lambda c: c[0]) if candidates else (None, None)
        if walk.reached or ended or state.newest_at is None:
            if not (walk.reached or ended):
                log.info("source %s: business unit %s: first poll stopped after %d pages; older "
                         "reviews are history (listener backfill)", self.name, unit.id,
                         self.config.max_pages)
            return _State(high[0], high[1], seen)
        log.warning("source %s: business unit %s: more than %d pages of new reviews since the "
                    "last poll; the next poll reads on from review %d (poll more often or raise "
                    "max_pages)", self.name, unit.id, self.config.max_pages, walk.offset)
        return _State(state.newest_at, state.newest_id, seen, walk.offset, high[0], high[1],
                      self._filters())

    def _filters(self) -> str:
        """The filters that decide which reviews a list holds (and so what an offset means)."""
        stars, languages = self.config.stars, self.config.languages
        return (f"stars={','.join(map(str, stars)) if stars else '*'};"
                f"language={','.join(languages) if languages else '*'}")

    # -- HTTP ---------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        return guarded_client(
            source_policy(self.name, self.config, [self.config.base_url]),
            base_url=self.config.base_url, timeout=self.ctx.http_timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json",
                     "apikey": self._api_key},
        )

    def _units(self, client: httpx.Client) -> list[_Unit]:
        units = [_Unit(unit_id) for unit_id in self.config.business_units]
        for domain in self.config.domains:
            if domain not in self._found:
                self._found[domain] = self._find(client, domain)
            units.append(self._found[domain])
        unique: dict[str, _Unit] = {}
        for unit in units:
            unique.setdefault(unit.id, unit)  # a domain that is also listed by id: read once
        return list(unique.values())

    def _find(self, client: httpx.Client, domain: str) -> _Unit:
        """The business unit Trustpilot knows by ``domain``; SourceError when there is none."""
        data = self._get(
            client, "/v1/business-units/find", {"name": domain}, f"lookup of {domain}",
            missing=f"Trustpilot has no business unit named {domain!r}; check `domains` (the "
            "name in trustpilot.com/review/<name>)",
        )
        unit_id = data.get("id")
        if not isinstance(unit_id, str) or not unit_id:
            raise SourceError(f"source {self.name}: the lookup of {domain} answered no "
                              "business unit id; did the API change?")
        name = data.get("displayName")
        return _Unit(unit_id, domain, name if isinstance(name, str) else None)

    def _page(self, client: httpx.Client, unit: _Unit, offset: int
              ) -> tuple[list[Any], int, int]:
        """The reviews of the window that reads on after ``offset``, its first review's offset
        and the perPage asked for."""
        per_page, number = window(offset, self.config.overlap, self.config.page_size)
        params: dict[str, Any] = {"orderBy": "createdat.desc", "perPage": per_page,
                                  "page": number}
        if self.config.stars:
            params["stars"] = self.config.stars
        if self.config.languages:
            params["language"] = self.config.languages
        data = self._get(client, f"/v1/business-units/{quote(unit.id, safe='')}/reviews", params,
                         f"business unit {unit.id} page {number}", missing=_unknown(unit.id))
        reviews = data.get("reviews")
        if not isinstance(reviews, list):
            raise SourceError(f"source {self.name}: business unit {unit.id}: the answer has no "
                              "'reviews' list; is base_url Trustpilot's API?")
        return reviews, (number - 1) * per_page, per_page

    def _get(self, client: httpx.Client, path: str, params: dict[str, Any], what: str, *,
             missing: str) -> dict[str, Any]:
        """One GET as a JSON object; any failure raises (RateLimited / SourceError, with
        ``missing`` for a 404)."""
        where = f"source {self.name}: Trustpilot {what}"
        try:
            response = client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise unanswered(where, "Trustpilot", self.config.base_url, exc,
                             self.ctx.http_timeout) from None
        if response.status_code == 404:
            raise SourceError(f"{where}: HTTP 404: {missing}")
        if response.status_code in _ADVICE:
            raise SourceError(f"{where}: HTTP {response.status_code}: "
                              f"{_ADVICE[response.status_code]}")
        raise_for_status(self.name, response.status_code, response.headers, response.text,
                         self.ctx.clock())
        try:
            data = response.json()
        except ValueError as exc:
            raise SourceError(f"{where}: the answer is not JSON: {response.text[:100]!r}") \
                from exc
        if not isinstance(data, dict):
            raise SourceError(f"{where}: the answer is a {type(data).__name__}, not an object")
        return data

    # -- records ------------------------------------------------------------------------------

    def _to_post(self, review: Any, unit: _Unit, position: int
                 ) -> Post | Rejected | tuple[str, datetime]:
        """A review as a Post; ``(id, createdAt)`` for one no longer shown (it still counts for
        the walk); Rejected when malformed."""
        where = f"trustpilot:{unit.id}#{position + 1}"
        if not isinstance(review, dict):
            return Rejected(where, f"review is a {type(review).__name__}, not an object")
        review_id, stars = review.get("id"), review.get("stars")
        if not isinstance(review_id, str) or not review_id.strip():
            return Rejected(where, "review without an id")
        where = f"trustpilot:{unit.id}:{review_id}"
        try:
            created_at = parse_iso(review["createdAt"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return Rejected(where, f"review without a valid createdAt: "
                                   f"{review.get('createdAt')!r}")
        if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
            return Rejected(where, f"review without 1-5 stars: {stars!r}")
        title, body = review.get("title"), review.get("text")
        if not isinstance(title, str | None) or not isinstance(body, str | None):
            return Rejected(where, "title or text is not text")
        consumer: dict[str, Any] = review["consumer"] if isinstance(review.get("consumer"),
                                                                   dict) else {}
        status = review.get("status")
        title, body = (title or "").strip(), (body or "").strip()
        if (isinstance(status, str) and status.lower() != "active") or not (title or body):
            log.debug("source %s: %s skipped: no longer shown (status %r)", self.name, where,
                      status)
            return review_id, created_at
        author, language = consumer.get("displayName"), review.get("language")
        reply: dict[str, Any] | None = review["companyReply"] if isinstance(
            review.get("companyReply"), dict) else None
        return Post(
            platform=PLATFORM, platform_id=review_id,
            text=f"{title}\n\n{body}" if title and body else title or body,
            created_at=created_at, source=self.name, url=REVIEW_URL.format(quote(review_id)),
            author=author if isinstance(author, str) and author else None,
            lang=language if isinstance(language, str) and language else None,
            kind="review", rating=float(stars), brand=self.config.brand,
            raw={
                "id": review_id, "business_unit": unit.id, "business_unit_name": unit.name,
                "domain": unit.domain, "title": title, "stars": stars,
                "updated_at": review.get("updatedAt"),
                "experienced_at": review.get("experiencedAt"),
                "is_verified": review.get("isVerified"), "likes": review.get("numberOfLikes"),
                "status": status, "consumer_id": consumer.get("id"),
                "consumer_reviews": consumer.get("numberOfReviews"),
                "consumer_location": consumer.get("displayLocation"),
                "replied": reply is not None,
                "company_reply": ({"text": reply.get("text"), "created_at":
                                   reply.get("createdAt")} if reply is not None else None),
            },
        )
