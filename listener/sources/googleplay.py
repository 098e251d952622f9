"""Google Play reviews through google-play-scraper (no credentials; Play's web batchexecute RPC).

``reviews(app_id, lang, country, sort=NEWEST, count, continuation_token)`` returns one page of
review dicts, newest first, and a continuation token. The token only pages within one poll; what
persists is one watermark per (app, lang, country) (see ``listener.sources.reviews.Watermark``)::

    {"version": 1,
     "apps": {"com.acme.app:en:us": {"newest_at": "2024-05-01T09:00:00Z", "newest_id": "gp:AOq…",
                                     "seen": ["gp:AOq…", ...]}}}

A poll reads up to ``max_pages`` pages per app and stops after the page holding a review an
earlier cycle stored; the watermark moves only on the walk's last page.

Transport. The library hard-codes ``https://play.google.com``, calls ``urllib.request.urlopen``
without a timeout, retries every failure three times, sleeps 5-15 s on Play's rate-limit answer
and, worst, swallows every error inside ``reviews()`` (a 500, a timeout and malformed data all look
like "no reviews"). So each page runs with :class:`_PlayTransport` in place of the library's
``urlopen`` (the one patched global, ``google_play_scraper.utils.request.urlopen``): it sends the
request to ``base_url`` with ``ctx.http_timeout``, maps 429/5xx/timeouts/bad envelopes to our
exceptions, and after the first failure refuses the library's retries without touching the
network. The patch is process-wide, so a module lock serialises pages of every Google Play source
(one page at a time across threads; held only for one page's requests, never across a yield).

Every hop (urllib follows redirects) goes through :mod:`listener.core.httpguard`: a redirect to a
private, loopback or link-local address is refused, and an answer over ``max_bytes`` fails the
poll without being read whole.

Importing the library also sets ``ssl._create_default_https_context`` to the *unverified*
context, turning off certificate checks for every urllib caller in the process (Slack webhooks
included); the constructor puts the verifying default back, and the transport verifies anyway.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from typing import Any, ClassVar
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.response import addinfourl

from pydantic import BaseModel, ConfigDict, Field

from listener.core.errors import ListenerError, MissingDependency, RateLimited, SourceError
from listener.core.httpguard import (
    GuardedRedirectHandler,
    GuardSettings,
    Origin,
    Policy,
    read_capped,
    source_policy,
)
from listener.core.models import Clock, Page, Post, Rejected, to_iso
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.http import DEFAULT_WAIT, raise_for_status
from listener.sources.reviews import ReviewWalk, Watermark, backfill_page, dump_marks, load_marks

log = logging.getLogger(__name__)

PLAY_HOST = "play.google.com"
BACKFILL_MAX_PAGES = 200
_LIBRARY_LOCK = threading.Lock()  # guards the patched google_play_scraper urlopen
_XSSI_PREFIX = ")]}'"
_GATEWAY_ERROR = "PlayGatewayError"  # Play's "rate exceeded" marker inside a 200 answer


class GooglePlayApp(BaseModel):
    """One app in one language and country."""

    model_config = ConfigDict(extra="forbid")

    app_id: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$",
        description="package name, the id= of the app's play.google.com URL (com.example.app)",
    )
    lang: str = Field("en", min_length=2, description="review language (Play's hl parameter)")
    country: str = Field("us", min_length=2, description="country (Play's gl parameter)")


class GooglePlaySourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: googleplay`` source."""

    apps: list[GooglePlayApp] = Field(
        min_length=1, description="apps to watch: [{app_id, lang (default en), country (us)}]"
    )
    per_page: int = Field(100, ge=1, le=4500, description="reviews asked for per request")
    max_pages: int = Field(5, ge=1, description="pages read per app and poll at most")
    base_url: str = Field(
        "https://play.google.com",
        description="Play host; change only for a proxy or a test server",
    )


class _Aborted(Exception):
    """Raised into the library once a request failed, so its retries end without network."""


class _PlayTransport(urllib.request.BaseHandler):
    """A urllib handler that sends the library's requests to ``base_url`` and records failures.

    The library cannot report errors (``reviews()`` swallows them), so the first failure is kept
    in :attr:`failure` for the source to raise after the call.
    """

    handler_order = 100

    def __init__(self, base_url: str, timeout: float, source: str, clock: Clock,
                 policy: Policy) -> None:
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.source, self.clock, self.policy = source, clock, policy
        self.failure: ListenerError | None = None
        context = ssl.create_default_context()
        self._inner = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), GuardedRedirectHandler(policy))
        self.opener = urllib.request.OpenerDirector()
        self.opener.add_handler(self)

    def https_open(self, req: urllib.request.Request) -> addinfourl:
        if self.failure is not None:
            raise _Aborted(str(self.failure))
        try:
            status, headers, body = self._send(req)
            body = self._check(status, headers, body)
        except ListenerError as exc:
            self.failure = exc
            raise _Aborted(str(exc)) from exc
        return addinfourl(io.BytesIO(body), headers, req.full_url, status)

    def _send(self, req: urllib.request.Request) -> tuple[int, Message, bytes]:
        if req.host != PLAY_HOST:
            raise SourceError(f"source {self.source}: unexpected request to {req.host}")
        target = urllib.request.Request(
            self.base_url + req.selector, data=req.data, headers=dict(req.header_items()),
            method=req.get_method(),
        )
        where = f"source {self.source}: Google Play"
        try:
            self.policy.target(Origin.of(target.full_url))  # redirects: GuardedRedirectHandler
            with self._inner.open(target, timeout=self.timeout) as response:
                return response.status, response.headers, self._read(response)
        except HTTPError as exc:
            with exc:
                return exc.code, exc.headers, self._read(exc)
        except (TimeoutError, URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, URLError) else exc
            if isinstance(reason, TimeoutError):
                raise SourceError(
                    f"{where}: no answer within {self.timeout:g}s; the next poll retries"
                ) from exc
            raise SourceError(
                f"{where}: {type(reason).__name__}: {reason}; check base_url and the network"
            ) from exc

    def _read(self, response: Any) -> bytes:
        """At most ``max_bytes`` of the answer (the guard's cap)."""
        return read_capped(response, self.policy, Origin.of(response.geturl()))

    def _check(self, status: int, headers: Message, body: bytes) -> bytes:
        """Raise for an error status, Play's rate-limit marker, or an envelope we cannot read.

        Returns the body to hand to the library. The library sleeps and retries whenever the
        marker appears *anywhere*, review text included, so anyone could stall collection by
        writing it in a review: there it is re-escaped (``\\u0050`` decodes to the same "P").
        """
        text = body.decode("utf-8", errors="replace")
        raise_for_status(self.source, status, dict(headers.items()), text, self.clock())
        where = f"source {self.source}: Google Play"
        limited = RateLimited(f"{where}: rate exceeded (PlayGatewayError)", DEFAULT_WAIT)
        head, _, rest = text.partition(_XSSI_PREFIX)
        try:
            if head.strip():
                raise ValueError("no )]}' prefix")
            frame = json.loads(rest)[0]
            if frame[0] != "wrb.fr":
                raise ValueError(f"first frame is {frame[0]!r}")
            if frame[2] is None:
                code = frame[5][0] if isinstance(frame[5], list) and frame[5] else frame[5]
            elif not isinstance(json.loads(frame[2]), list):
                raise ValueError("payload is not a list")
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            if _GATEWAY_ERROR in text:
                raise limited from exc
            raise SourceError(f"{where}: malformed answer ({exc}): {text[:100]!r}") from exc
        if frame[2] is None:
            if _GATEWAY_ERROR in text:
                raise limited
            hint = " (not found: check app_id)" if code == 5 else ""
            raise SourceError(f"{where}: Play answered error code {code}{hint}")
        if _GATEWAY_ERROR in text:
            return text.replace(_GATEWAY_ERROR, "\\u0050" + _GATEWAY_ERROR[1:]).encode()
        return body


def _import_library() -> Any:
    """The library module, or MissingDependency; undoes its TLS-verification side effect."""
    try:
        import google_play_scraper
        import google_play_scraper.utils.request  # noqa: F401 - the module we patch
    except ImportError as exc:
        raise MissingDependency("google-play-scraper", "googleplay") from exc
    if ssl._create_default_https_context is ssl._create_unverified_context:
        ssl._create_default_https_context = ssl.create_default_context
    return google_play_scraper


class GooglePlaySource:
    """Reviews of the configured apps, per language and country, newest first."""

    type: ClassVar[str] = "googleplay"
    Config: ClassVar[type[SourceConfig]] = GooglePlaySourceConfig
    searches: ClassVar[bool] = False  # reviews of your own apps are all relevant

    def __init__(self, config: GooglePlaySourceConfig, ctx: SourceContext) -> None:
        self._gps = _import_library()
        self.config = config
        self.ctx = ctx
        self.name = config.name

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New reviews of every app; each app's watermark is saved with its walk's last page."""
        marks = load_marks(cursor, self.name)
        for app in self.config.apps:
            yield from self._fetch_app(app, marks)

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Reviews back to ``since``, newest first, as deep as Play pages (often years).

        Bounded by BACKFILL_MAX_PAGES pages of ``per_page`` per app. Pages carry ``cursor=None``.
        """
        for app in self.config.apps:
            token = None
            for _ in range(BACKFILL_MAX_PAGES):
                items, token = self._page(app, token)
                page, older = backfill_page([self._to_post(item, app) for item in items], since)
                yield page
                if not items or token.token is None or older:
                    break

    def _fetch_app(self, app: GooglePlayApp, marks: dict[str, Watermark]) -> Iterator[Page]:
        key = f"{app.app_id}:{app.lang}:{app.country}"
        walk = ReviewWalk(marks.get(key) or Watermark())
        token = None
        for number in range(1, self.config.max_pages + 1):
            items, token = self._page(app, token)
            posts, rejected, covered = walk.sort(self._to_post(item, app) for item in items)
            last = not items or token.token is None or number >= self.config.max_pages
            if covered or last:
                more = items and token.token is not None
                if more and not covered and walk.mark.newest_at:
                    log.warning(
                        "source %s: app %s (%s/%s) had more new reviews than %d pages hold; "
                        "older ones since the last poll are skipped: raise max_pages or poll "
                        "more often", self.name, app.app_id, app.lang, app.country, number,
                    )
                marks[key] = walk.advanced()
                yield Page(posts=posts, cursor=dump_marks(marks), rejected=rejected)
                return
            yield Page(posts=posts, cursor=None, rejected=rejected)

    def _page(self, app: GooglePlayApp, token: Any) -> tuple[list[Any], Any]:
        """One ``reviews()`` call through the transport; raises what the transport recorded."""
        import google_play_scraper.utils.request as request_module
        from google_play_scraper.exceptions import GooglePlayScraperException

        transport = _PlayTransport(
            self.config.base_url, self.ctx.http_timeout, self.name, self.ctx.clock,
            source_policy(self.name, self.config, [self.config.base_url]),
        )
        with _LIBRARY_LOCK:
            original = request_module.urlopen
            request_module.urlopen = transport.opener.open
            try:
                items, token = self._gps.reviews(
                    app.app_id, lang=app.lang, country=app.country, sort=self._gps.Sort.NEWEST,
                    count=self.config.per_page, continuation_token=token,
                )
            except GooglePlayScraperException as exc:  # today swallowed inside reviews()
                raise SourceError(f"source {self.name}: google-play-scraper: {exc}") from exc
            finally:
                request_module.urlopen = original
        if transport.failure is not None:
            raise transport.failure
        if not isinstance(items, list):
            raise SourceError(f"source {self.name}: google-play-scraper returned {type(items)}")
        return items, token

    def _to_post(self, item: Any, app: GooglePlayApp) -> Post | Rejected | None:
        """A review dict as a Post; None for a review without text; Rejected when malformed."""
        review_id = item.get("reviewId") if isinstance(item, dict) else None
        where = f"googleplay:{app.app_id}:{review_id or '?'}"
        if not isinstance(review_id, str) or not review_id:
            return Rejected(where, "review without a reviewId")
        at, score, content = item.get("at"), item.get("score"), item.get("content")
        if not isinstance(at, datetime):
            return Rejected(where, f"review without a valid date: {at!r}")
        if not isinstance(score, int) or not 1 <= score <= 5:
            return Rejected(where, f"review without a 1-5 score: {score!r}")
        if content is None:
            log.debug("googleplay review %s has no text (rating only); skipped", review_id)
            return None
        if not isinstance(content, str):
            return Rejected(where, f"review text is a {type(content).__name__}")
        replied = item.get("repliedAt")
        return Post(
            platform="googleplay",
            platform_id=review_id,
            text=content.strip(),
            # the library builds these with datetime.fromtimestamp: naive *local* time;
            # astimezone reads a naive value as local time, so this is the true instant in UTC
            created_at=at.astimezone(UTC),
            source=self.name,
            url=f"https://{PLAY_HOST}/store/apps/details?id={quote(app.app_id)}"
            f"&reviewId={quote(review_id, safe=':')}",
            author=item.get("userName") if isinstance(item.get("userName"), str) else None,
            lang=app.lang,
            kind="review",
            rating=float(score),
            brand=self.config.brand,
            raw={
                "reviewId": review_id, "app_id": app.app_id, "lang": app.lang,
                "country": app.country, "thumbsUpCount": item.get("thumbsUpCount"),
                "reviewCreatedVersion": item.get("reviewCreatedVersion"),
                "appVersion": item.get("appVersion"), "replyContent": item.get("replyContent"),
                "repliedAt": to_iso(replied.astimezone(UTC))
                if isinstance(replied, datetime) else None,
            },
        )
