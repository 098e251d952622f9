"""What every HTTP collector needs: one status → exception map and rate-limit header parsing.

Collectors raise, never return partial garbage: ``RateLimited`` pauses only that source (the
collect stage records when it may run again), ``SourceError`` fails this poll and leaves the
cursor where it was.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from listener.core.errors import RateLimited, SourceError

DEFAULT_WAIT = 60.0
USER_AGENT = "social-listener/0.1 (+self-hosted; https://pypi.org/project/social-listener/)"

_ADVICE = {
    400: "the request was refused as malformed; check this source's settings (query syntax)",
    401: "the credentials were refused; check the token/keys in this source's environment "
    "variables",
    403: "access denied: the credentials lack permission or the access tier has no search",
    404: "not found: check the configured id, handle, subreddit or base_url",
    410: "the resource is gone",
}


def retry_after(headers: Mapping[str, str], now: datetime, default: float = DEFAULT_WAIT) -> float:
    """Seconds to wait, from Retry-After (seconds or HTTP date) or a reset header (epoch).

    Knows ``Retry-After``, X's ``x-rate-limit-reset`` and Reddit's ``x-ratelimit-reset``
    (seconds until reset), GitHub-style ``x-ratelimit-reset`` epochs; falls back to ``default``.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    value = lower.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                parsed = None  # garbage: fall through to reset headers or the default
            if parsed is not None:
                when = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
                return max(0.0, (when - now).total_seconds())
    for name in ("x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset"):
        raw = lower.get(name)
        if raw:
            try:
                number = float(raw)
            except ValueError:
                continue
            # small numbers are "seconds from now" (Reddit), large ones are epoch times (X)
            return max(0.0, number if number < 10**8 else number - now.timestamp())
    return default


def raise_for_status(
    source: str, status: int, headers: Mapping[str, str], body: str, now: datetime
) -> None:
    """Map an unsuccessful answer to RateLimited or SourceError; 2xx returns quietly."""
    if 200 <= status < 300:
        return
    snippet = " ".join(body.split())[:200]
    if status == 429:
        wait = retry_after(headers, now)
        raise RateLimited(f"source {source}: rate-limited (HTTP 429): {snippet}", wait)
    if status == 503 and any(k.lower() == "retry-after" for k in headers):
        raise RateLimited(f"source {source}: unavailable (HTTP 503)", retry_after(headers, now))
    advice = _ADVICE.get(status, "the platform failed; the next poll retries")
    raise SourceError(f"source {source}: HTTP {status}: {advice}: {snippet}")


def unanswered(owner: str, service: str, target: str, exc: Exception, timeout: float,
               scrub: Callable[[str], str] = str) -> SourceError:
    """The error of a request that got no answer (httpx's transport errors), the same for
    every HTTP collector: a timeout says how long was waited, anything else what could not be
    reached and why. ``owner`` starts the message ("source hn"), ``service`` names what was
    asked ("the HN Search API"), ``target`` where it lives (base_url); ``scrub`` takes out
    what the library's text may echo (a URL carrying a key). Raise it ``from None``: the
    library's exception, chained, would print that text again in a traceback."""
    name = type(exc).__name__
    if _is_timeout(exc):
        return SourceError(f"{owner}: {service} did not answer within {timeout:g}s ({name}); "
                           "the next poll retries")
    return SourceError(f"{owner}: cannot reach {target} ({name}: {scrub(str(exc))}); check "
                       "the network or base_url")


def _is_timeout(exc: Exception) -> bool:
    import httpx  # a core dependency; imported here so this module stays import-light

    return isinstance(exc, httpx.TimeoutException)
