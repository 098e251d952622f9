"""The YouTube Data API v3 calls the source makes, their quota cost, and their failures.

Every call goes through :meth:`YouTubeApi.call`: the daily quota is checked and spent first
(:class:`Quota`), then googleapiclient runs the request over :class:`GuardedHttp` with no
retries of its own (the next poll retries), and a failure is read from the last HTTP answer:

- 403 ``quotaExceeded`` / ``dailyLimitExceeded``: the project's daily quota is gone; the source
  pauses until it resets, at midnight Pacific Time (:func:`next_reset`);
- 429, or 403 ``rateLimitExceeded`` / ``userRateLimitExceeded``: too fast; a short pause
  (``Retry-After`` when sent, else a minute);
- 403 ``commentsDisabled``, 404 ``videoNotFound`` / ``commentThreadNotFound`` /
  ``commentNotFound`` / ``channelNotFound``: :class:`Unavailable`, so that the one video, thread
  or channel is skipped and the rest of the poll goes on;
- 400 about a page token: :class:`BadPageToken` (a saved token that expired);
- anything else: :class:`~listener.core.errors.SourceError` (5xx, a refused key, a redirect)
  through the shared status map, or RateLimited for a 503 with ``Retry-After``.

Errors come as ``{"error": {"code", "message", "errors": [{"reason", "domain", "message"}]}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from listener.core.errors import RateLimited, SourceError
from listener.core.log import redact
from listener.core.models import Clock
from listener.sources.http import raise_for_status, retry_after
from listener.sources.youtube.transport import Answer, GuardedHttp

log = logging.getLogger("listener.sources.youtube")

PACIFIC = ZoneInfo("America/Los_Angeles")
SEARCH_COST = 100
"""Units of one ``search.list`` call; every other call made here costs 1."""
BATCH = 50
"""Ids one ``videos.list`` / ``channels.list`` / ``commentThreads.list(id=…)`` call takes."""
_QUOTA_GONE = frozenset({"quotaExceeded", "dailyLimitExceeded", "dailyLimitExceededUnreg"})
_TOO_FAST = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_UNAVAILABLE = frozenset({"commentsDisabled", "videoNotFound", "commentThreadNotFound",
                          "commentNotFound", "channelNotFound"})
_BAD_KEY = frozenset({"keyInvalid", "keyExpired"})
_NOT_ALLOWED = frozenset({"accessNotConfigured", "ipRefererBlocked", "forbidden",
                          "SERVICE_DISABLED", "API_KEY_SERVICE_BLOCKED",
                          "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED"})


def pacific_day(now: datetime) -> str:
    """The quota day ``now`` falls in: the date in Pacific Time."""
    return now.astimezone(PACIFIC).date().isoformat()


def next_reset(now: datetime) -> datetime:
    """The next midnight Pacific Time (the quota's reset), in UTC."""
    tomorrow = now.astimezone(PACIFIC).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=PACIFIC).astimezone(UTC)


class Unavailable(Exception):  # noqa: N818 - a signal, not a failure of the poll
    """The video, thread or channel asked about cannot be read (comments disabled, deleted)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class BadPageToken(Exception):  # noqa: N818 - a signal, handled by the caller
    """The page token sent was refused (a token saved by an earlier poll that expired)."""


@dataclass
class Quota:
    """Units this source spent on the current Pacific day, against ``limit``."""

    limit: int
    day: str = ""
    used: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day, "used": self.used}

    def load(self, value: Any, now: datetime) -> None:
        """Take the stored usage (a cursor's ``quota``) unless this process counted more today
        (a poll that failed spent units its cursor never saved)."""
        today = pacific_day(now)
        stored = 0
        if isinstance(value, dict) and value.get("day") == today and type(
                value.get("used")) is int:
            stored = max(0, value["used"])
        mine = self.used if self.day == today else 0
        self.day, self.used = today, max(stored, mine)

    def spend(self, cost: int, now: datetime, owner: str, what: str) -> None:
        """Count ``cost`` units, or raise RateLimited until the reset when they do not fit."""
        today = pacific_day(now)
        if today != self.day:
            self.day, self.used = today, 0
        if self.used + cost > self.limit:
            reset = next_reset(now)
            raise RateLimited(
                f"{owner}: {what} would cost {cost} unit(s) of the YouTube Data API quota and "
                f"{self.used} of daily_quota {self.limit} are spent today (Pacific Time); "
                f"paused until the quota resets at {reset.isoformat()} (raise daily_quota if "
                "the project has more, or poll less: search_interval, fewer channels)",
                max(1.0, (reset - now).total_seconds()))
        self.used += cost

    def exhaust(self) -> None:
        self.used = max(self.used, self.limit)


class YouTubeApi:
    """The googleapiclient service over :class:`GuardedHttp`, with quota and error mapping."""

    def __init__(self, name: str, service: Any, http: GuardedHttp, quota: Quota,
                 clock: Clock) -> None:
        self.name, self.owner = name, f"source {name}"
        self._service, self._http, self.quota, self._clock = service, http, quota, clock

    def close(self) -> None:
        self._http.close()

    # -- the calls -------------------------------------------------------------------------

    def comment_threads(self, what: str, token: str | None, size: int,
                        **filters: str) -> dict[str, Any]:
        """One page of threads (newest first) of a channel or video, replies included."""
        return self.call(what, 1, lambda s: s.commentThreads().list(
            part="snippet,replies", order="time", textFormat="plainText", maxResults=size,
            pageToken=token, **filters), signals=True)

    def threads_by_id(self, what: str, ids: list[str]) -> dict[str, Any]:
        """Threads by id (up to :data:`BATCH`): deleted ones are missing from the answer."""
        return self.call(what, 1, lambda s: s.commentThreads().list(
            part="snippet", id=",".join(ids), textFormat="plainText"), signals=True)

    def replies(self, what: str, parent: str, token: str | None, size: int) -> dict[str, Any]:
        return self.call(what, 1, lambda s: s.comments().list(
            part="snippet", parentId=parent, textFormat="plainText", maxResults=size,
            pageToken=token), signals=True)

    def search(self, what: str, q: str, after: datetime, before: datetime | None,
               token: str | None, size: int) -> dict[str, Any]:
        return self.call(what, SEARCH_COST, lambda s: s.search().list(
            part="snippet", q=q, type="video", order="date", maxResults=size,
            publishedAfter=_rfc3339(after), pageToken=token,
            publishedBefore=_rfc3339(before) if before is not None else None))

    def videos(self, what: str, ids: list[str]) -> dict[str, Any]:
        """Videos by id (up to :data:`BATCH`): deleted or private ones are missing."""
        return self.call(what, 1, lambda s: s.videos().list(part="snippet", id=",".join(ids)))

    def channels(self, what: str, ids: list[str], part: str = "statistics") -> dict[str, Any]:
        """Channels by id (up to :data:`BATCH`); the answer has no ``items`` when none is."""
        return self.call(what, 1, lambda s: s.channels().list(part=part, id=",".join(ids)))

    def regions(self, what: str) -> dict[str, Any]:
        return self.call(what, 1, lambda s: s.i18nRegions().list(part="snippet", hl="en_US"))

    # -- one call --------------------------------------------------------------------------

    def call(self, what: str, cost: int, build: Callable[[Any], Any],
             signals: bool = False) -> dict[str, Any]:
        """Spend ``cost`` units, run the request, return its JSON object; raise otherwise.

        ``signals``: the caller handles :class:`Unavailable` and :class:`BadPageToken`;
        otherwise they are a :class:`SourceError` like any other refusal."""
        self.quota.spend(cost, self._clock(), self.owner, what)
        request = build(self._service)
        try:
            body = request.execute(num_retries=0)
        except (SourceError, RateLimited):
            raise
        except Exception as exc:  # noqa: BLE001 - googleapiclient raises many kinds; the
            # answer itself says what happened. `from None`: HttpError's text holds the key.
            failure = self._failure(what, exc)
            if not signals and isinstance(failure, Unavailable | BadPageToken):
                failure = SourceError(f"{self.owner}: {what}: {failure}")
            raise failure from None
        if not isinstance(body, dict) or not isinstance(body.setdefault("items", []), list):
            raise SourceError(f"{self.owner}: {what}: the answer is not a YouTube Data API list "
                              "(no 'items' list); check base_url")
        return body

    def _failure(self, what: str, exc: Exception) -> Exception:
        answer = self._http.last
        if answer is None or answer.status < 300:
            return SourceError(f"{self.owner}: {what}: the answer is not the JSON the YouTube "
                               f"Data API sends ({type(exc).__name__}); the next poll retries")
        return self.error_of(what, answer)

    def error_of(self, what: str, answer: Answer) -> Exception:
        """The exception for an unsuccessful answer (see the module docstring)."""
        now = self._clock()
        prefix = f"{self.owner}: {what}"
        reasons, message = error_details(answer.body)
        message = redact(message)  # a server may echo the request, key included
        status = answer.status
        if status in (403, 429) and reasons & _QUOTA_GONE:
            self.quota.exhaust()
            reset = next_reset(now)
            return RateLimited(f"{prefix}: the project's daily YouTube Data API quota is "
                               f"exhausted (HTTP {status} {_first(reasons & _QUOTA_GONE)}); "
                               f"paused until it resets at {reset.isoformat()}",
                               max(1.0, (reset - now).total_seconds()))
        if status == 429 or (status == 403 and reasons & _TOO_FAST):
            wait = retry_after(answer.headers, now)
            return RateLimited(f"{prefix}: rate-limited (HTTP {status} "
                               f"{_first(reasons & _TOO_FAST) or ''}): {message[:200]}".rstrip(),
                               wait)
        if status in (403, 404) and reasons & _UNAVAILABLE:
            return Unavailable(_first(reasons & _UNAVAILABLE), message[:200])
        if status == 400 and ("pagetoken" in " ".join(reasons).lower()
                              or "page token" in message.lower()):
            return BadPageToken(message[:200])
        if reasons & _BAD_KEY or (status == 400 and "api key" in message.lower()):
            return SourceError(f"{prefix}: HTTP {status}: the API key was refused "
                               f"({message[:200]}); check api_key")
        if status == 403 and reasons & _NOT_ALLOWED:
            return SourceError(
                f"{prefix}: HTTP 403 {_first(reasons & _NOT_ALLOWED)}: {message[:200]}; enable "
                "the YouTube Data API v3 in the key's Google Cloud project and check the key's "
                "restrictions (APIs, IP addresses, referrers)")
        body = f"{_first(reasons)}: {message}" if reasons else redact(answer.text)
        try:
            raise_for_status(f"{self.name}: {what}", status, answer.headers, body, now)
        except (SourceError, RateLimited) as mapped:
            return mapped
        return SourceError(f"{prefix}: unexpected HTTP {status}")


def error_details(body: bytes) -> tuple[frozenset[str], str]:
    """The reasons and message of a Google API error body; empty when it is not one."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return frozenset(), ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return frozenset(), ""
    message = error.get("message")
    items = error.get("errors")
    reasons = {str(e["reason"]) for e in items if isinstance(e, dict) and e.get("reason")} \
        if isinstance(items, list) else set()
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:  # google.rpc.ErrorInfo
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            reasons.add(detail["reason"])
    return frozenset(reasons), " ".join(str(message).split()) if message else ""


def _first(reasons: frozenset[str]) -> str:
    return sorted(reasons)[0] if reasons else ""


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
