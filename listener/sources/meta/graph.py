"""Meta's Graph API, as both Meta sources use it: one guarded httpx client, errors, throttling.

No Python client for the Graph API is both maintained and healthy: ``facebook-sdk`` last
released in 2018 and is marked unmaintained, and Meta publishes none for Python apart from the
Marketing API's business SDK (ads, not Pages or Instagram comments). So this is plain httpx (a
core dependency: no extra to install) through :func:`listener.core.httpguard.guarded_client`
(SSRF guard, answer cap, no redirects).

The access token travels in an ``Authorization: Bearer`` header, never in a URL, so no URL this
client builds, logs or puts in an error holds it. Graph's answers do: ``paging.next`` echoes the
request with ``access_token=…``; it is never followed, logged nor stored (paging uses
``paging.cursors.after`` with the same parameters).

Errors (``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``), whatever the
HTTP status that carries them:

- codes 4, 17, 32, 613 and 80001-80014 (app, user, Page, custom and business-use-case
  throttling) → :class:`RateLimited`, for ``estimated_time_to_regain_access`` when the
  ``x-business-use-case-usage`` header gives it, else Retry-After, else :data:`BLOCK_WAIT`;
- 190 (and 102): the token expired or was invalidated → :class:`SourceError` saying to renew it;
- 100 with subcode 33 (and 803): the object does not exist (deleted) → :class:`GraphMissing`, a
  SourceError the sources catch to skip that one post or media;
- 10 and 200-299: a permission is missing → SourceError naming the permissions the source needs;
- anything else → SourceError with Meta's message; the next poll retries.

An answer that is not Graph's JSON goes through :func:`listener.sources.http.raise_for_status`
(429 with or without Retry-After, 5xx, an unfollowed 3xx) or fails as malformed.

Throttling headers: ``x-app-usage`` (and the older ``x-page-usage``): ``{"call_count",
"total_cputime", "total_time"}`` in percent; ``x-business-use-case-usage``: ``{"<business
object id>": [{"type", "call_count", "total_cputime", "total_time",
"estimated_time_to_regain_access" (minutes)}, …]}``. When any figure reaches ``usage_threshold``
the answer in hand is still used, and the next request raises RateLimited instead of being sent:
for the regain time if Meta gives one, else :data:`USAGE_WAIT`. So the source pauses before Meta
blocks it, and only that source.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import Field, field_validator

from listener.core.errors import RateLimited, SourceError
from listener.core.httpguard import GuardSettings, guarded_client, source_policy
from listener.core.log import register_secret
from listener.core.models import parse_iso_or_none
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.http import USER_AGENT, raise_for_status, retry_after, unanswered

log = logging.getLogger("listener.sources.meta")

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v26.0"
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
TOKEN_CODES = frozenset({102, 190})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
TRANSIENT_CODES = frozenset({1, 2})
BLOCK_WAIT = 900.0
"""Seconds a source pauses when Meta blocks it without saying for how long (its windows roll
over an hour; a block usually lifts well within it)."""
USAGE_WAIT = 600.0
"""Seconds a source pauses when its usage reached the threshold and Meta gives no regain time."""
_USAGE_FIGURES = ("call_count", "total_cputime", "total_time")
_FLAT_USAGE = ("x-app-usage", "x-page-usage")
_BUC_USAGE = "x-business-use-case-usage"


class GraphMissing(SourceError):
    """The object asked about does not exist (any more): deleted, or never there."""


class GraphInvalid(SourceError):
    """Graph refused a parameter (code 100): a bad setting, or a paging cursor gone stale."""


class GraphSettings(SourceConfig, GuardSettings):
    """Keys both Meta sources have."""

    access_token: str = Field(
        min_length=1, repr=False,
        description='access token, set as {"$env": NAME}, never in the file; sent in an '
        "Authorization header, never in a URL",
    )
    base_url: str = Field(
        DEFAULT_BASE_URL,
        description="Graph API root; change only for a proxy or a test server",
    )
    graph_version: str = Field(
        DEFAULT_VERSION, pattern=r"^v\d{1,3}\.\d{1,3}$",
        description="Graph API version in every request path, e.g. v26.0; Meta retires each "
        "version about two years after its release",
    )
    max_pages: int = Field(
        5, ge=1, le=1000,
        description="pages of comments read per post/media per poll; a longer backlog is read on "
        "over the next polls, nothing is skipped",
    )
    page_size: int = Field(50, ge=1, le=100, description="items per request (`limit`, Meta's "
                           "maximum is 100)")
    usage_threshold: float = Field(
        90, gt=0, le=100,
        description="pause the source (until Meta's regain time, else 10 minutes) once any "
        "usage figure in Meta's x-app-usage / x-business-use-case-usage headers reaches this "
        "percentage, before Meta blocks the token",
    )
    overlap: int = Field(
        300, ge=0, le=86400,
        description="seconds read again behind the newest item already collected (an item Meta "
        "shows late); repeats are recognised and skipped",
    )
    initial_lookback: int = Field(
        7 * 86400, ge=0,
        description="seconds of history the first poll collects (no cursor yet); posts or media "
        "published later are read whole; `listener backfill` reaches further",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, not {value!r}")
        return value.rstrip("/")


@dataclass(frozen=True)
class Listing:
    """One page of an edge: its items and the cursor of the next page (None: the last)."""

    items: list[Any]
    after: str | None


# Graph's ``2026-11-20T11:50:00+0000`` (``created_time`` / ``timestamp``) as UTC; None when
# absent or not a time
graph_time = parse_iso_or_none


def usage_pause(headers: Mapping[str, str], threshold: float) -> tuple[float, str] | None:
    """(seconds to pause, why) when a usage header says ``threshold`` percent is reached."""
    lower = {k.lower(): v for k, v in headers.items()}
    worst: tuple[float, str] | None = None
    regain = 0.0
    for name in _FLAT_USAGE:
        data = _json_header(lower.get(name))
        if isinstance(data, dict):
            worst = _max_usage(worst, data, name)
    buc = _json_header(lower.get(_BUC_USAGE))
    if isinstance(buc, dict):
        for business, entries in buc.items():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                label = f"{_BUC_USAGE} {entry.get('type') or business}"
                worst = _max_usage(worst, entry, label)
                minutes = _number(entry.get("estimated_time_to_regain_access"))
                regain = max(regain, minutes * 60)
    if worst is None or (worst[0] < threshold and not regain):
        return None
    wait = regain or USAGE_WAIT
    return wait, f"{worst[1]} at {worst[0]:g}% (threshold {threshold:g}%)"


def regain_seconds(headers: Mapping[str, str]) -> float:
    """The longest ``estimated_time_to_regain_access`` of the BUC header, in seconds (0: none)."""
    lower = {k.lower(): v for k, v in headers.items()}
    buc = _json_header(lower.get(_BUC_USAGE))
    longest = 0.0
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    longest = max(longest, _number(entry.get("estimated_time_to_regain_access")))
    return longest * 60


def _json_header(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return max(0.0, float(value))


def _max_usage(worst: tuple[float, str] | None, data: dict[str, Any], label: str
               ) -> tuple[float, str] | None:
    for figure in _USAGE_FIGURES:
        value = _number(data.get(figure))
        if worst is None or value > worst[0]:
            worst = (value, f"{label} {figure}")
    return worst


class GraphClient:
    """Requests of one source to the Graph API; every failure raises, nothing partial returns.

    ``platform`` names the API in messages ("Facebook", "Instagram"); ``permissions`` are the
    ones the source's token needs, named when Meta refuses one.
    """

    def __init__(self, settings: GraphSettings, ctx: SourceContext, platform: str,
                 permissions: str) -> None:
        self.settings, self.ctx = settings, ctx
        self.name, self.platform, self.permissions = settings.name, platform, permissions
        register_secret(settings.access_token)
        self._client = guarded_client(
            source_policy(settings.name, settings, [settings.base_url]),
            base_url=settings.base_url, timeout=ctx.http_timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json",
                     "Authorization": f"Bearer {settings.access_token}"},
        )
        self._paused_until: datetime | None = None
        self._paused_why = ""

    def close(self) -> None:
        self._client.close()

    # -- requests --------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /{version}/{path}``: the JSON object Graph answered."""
        self._check_pause()
        where = f"source {self.name}: {self.platform} {path.split('/')[-1]!s}"
        try:
            response = self._client.get(f"/{self.settings.graph_version}/{path}",
                                        params=dict(params))
        except httpx.HTTPError as exc:
            raise unanswered(where, "the Graph API", self.settings.base_url, exc,
                             self.ctx.http_timeout) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise self._graph_error(error, response, path)
        raise_for_status(self.name, response.status_code, response.headers,
                         response.text if body is None else json.dumps(body)[:200],
                         self.ctx.clock())
        if not isinstance(body, dict):
            raise SourceError(f"{where}: the answer is not a JSON object: "
                              f"{response.text[:80]!r}; is base_url the Graph API?")
        self._note_usage(response.headers)
        return body

    def listing(self, path: str, params: Mapping[str, Any], after: str | None = None) -> Listing:
        """One page of an edge (``{"data": [...], "paging": {...}}``), from ``after`` on."""
        body = self.get(path, {**params, **({"after": after} if after else {})})
        data, paging = body.get("data"), body.get("paging", {})
        if not isinstance(data, list) or not isinstance(paging, dict):
            raise SourceError(f"source {self.name}: {self.platform} {path}: the answer has no "
                              "'data' list; did the API change?")
        cursors = paging.get("cursors")
        next_after = cursors.get("after") if isinstance(cursors, dict) else None
        more = bool(paging.get("next")) and isinstance(next_after, str) and bool(next_after)
        return Listing(data, next_after if more else None)

    def pages(self, path: str, params: Mapping[str, Any], limit: int) -> Iterator[Listing]:
        """Up to ``limit`` pages of an edge, in order."""
        after: str | None = None
        for _ in range(limit):
            page = self.listing(path, params, after)
            yield page
            if page.after is None:
                return
            after = page.after

    # -- throttling -------------------------------------------------------------------------

    def _check_pause(self) -> None:
        if self._paused_until is None:
            return
        left = (self._paused_until - self.ctx.clock()).total_seconds()
        if left <= 0:
            self._paused_until = None
            return
        raise RateLimited(f"source {self.name}: {self.platform} usage is near Meta's limit "
                          f"({self._paused_why}); pausing before Meta blocks the token", left)

    def _note_usage(self, headers: Mapping[str, str]) -> None:
        pause = usage_pause(headers, self.settings.usage_threshold)
        if pause is None:
            return
        wait, why = pause
        log.warning("source %s: %s; pausing %.0f s after this answer", self.name, why, wait)
        self._paused_until = self.ctx.clock() + timedelta(seconds=wait)
        self._paused_why = why

    # -- errors -----------------------------------------------------------------------------

    def _graph_error(self, error: dict[str, Any], response: Any, path: str) -> SourceError | \
            RateLimited:
        code, subcode = error.get("code"), error.get("error_subcode")
        message = " ".join(str(error.get("message") or "").split())[:300]
        trace = error.get("fbtrace_id")
        said = f"(#{code}{f'/{subcode}' if subcode else ''}) {message}" + (
            f" [fbtrace_id {trace}]" if isinstance(trace, str) else "")
        prefix = f"source {self.name}: {self.platform} {path}"
        if code in RATE_LIMIT_CODES or response.status_code == 429:
            wait = regain_seconds(response.headers) or retry_after(
                response.headers, self.ctx.clock(), BLOCK_WAIT)
            return RateLimited(f"{prefix}: Meta is throttling this token {said}", wait)
        if code in TOKEN_CODES:
            return SourceError(
                f"{prefix}: the access token was refused {said}: it expired or was invalidated "
                "(password change, app removed, permissions revoked); create a new long-lived "
                "token and put it in this source's environment variable")
        if code in PERMISSION_CODES:
            return SourceError(f"{prefix}: permission denied {said}: the token needs "
                               f"{self.permissions}")
        if (code == 100 and subcode == 33) or code == 803:
            return GraphMissing(f"{prefix}: no such object {said}")
        if code == 100:
            return GraphInvalid(f"{prefix}: Meta refused the request {said}; check this "
                                "source's ids and graph_version")
        if code in TRANSIENT_CODES or response.status_code >= 500:
            return SourceError(f"{prefix}: Meta failed (HTTP {response.status_code}) {said}; "
                               "the next poll retries")
        return SourceError(f"{prefix}: HTTP {response.status_code} {said}")
