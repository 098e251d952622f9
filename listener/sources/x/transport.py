"""What tweepy does not do for us: a timeout, a configurable host, quiet logs, our exceptions.

tweepy's ``Client`` sends every request to the fixed host ``https://api.twitter.com`` through its
own ``requests.Session`` and passes **no timeout**, so a half-open connection would hang a collect
job for ever. :class:`XTransport` is a ``requests`` HTTP adapter mounted on that session for every
``http://`` and ``https://`` URL (so a redirect cannot escape it). For each request it

- applies the configured timeout (connect and read) when none was given, and
- rewrites scheme + host of ``https://api.twitter.com/...`` URLs to the configured ``base_url``
  (a proxy, a compatible gateway, or the fake server in tests), keeping path and query; the
  environment's proxy settings are then chosen for the new URL (so ``NO_PROXY`` applies to it);
- then, as a :class:`~listener.sources.guard_requests.GuardedAdapter`, refuses a hop to a
  private address (tweepy's session follows redirects) and reads at most ``max_bytes``.

tweepy logs the ``Authorization: Bearer`` header at DEBUG on ``tweepy.client``;
:func:`redact_tweepy_logs` installs a filter on that logger, so the token is masked before any
handler (ours, pytest's, a user's) sees the record. :func:`call_x` maps tweepy and requests
exceptions to :class:`SourceError` / :class:`RateLimited`, and :func:`parse_response` with the
field helpers below it reads X's answers (shape checks, plain text, language codes, and a post's
time, from its snowflake id when ``created_at`` is missing).
"""

from __future__ import annotations

import calendar
import html
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from listener.core.errors import RateLimited, SourceError
from listener.core.httpguard import Policy
from listener.core.models import parse_iso
from listener.sources.guard_requests import GuardedAdapter, mount
from listener.sources.http import raise_for_status, retry_after

log = logging.getLogger(__name__)

X_API_URL = "https://api.twitter.com"
"""The host tweepy hard-codes; requests to it are redirected to ``base_url``."""

_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+", re.IGNORECASE)


class XBadRequest(SourceError):
    """HTTP 400: X refused the request itself (query syntax, a parameter, a stale token)."""


class XTransport(GuardedAdapter):
    """A requests adapter that adds a timeout and sends tweepy's requests to ``base_url``.

    It also keeps the last response it saw (status and headers are all we use), so an error
    tweepy raised while *reading* a response (a garbled rate-limit header, say) can still be
    mapped by status.
    """

    def __init__(self, base_url: str, timeout: float, policy: Policy) -> None:
        super().__init__(policy)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.last_response: requests.Response | None = None

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        url = request.url or ""
        if self.base_url != X_API_URL and url.startswith(X_API_URL + "/"):
            request.url = self.base_url + url[len(X_API_URL) :]
            kwargs["proxies"] = requests.utils.get_environ_proxies(request.url)
        self.last_response = None
        response = super().send(request, **kwargs)
        self.last_response = response
        return response


def install_transport(
    session: requests.Session, base_url: str, timeout: float, policy: Policy
) -> XTransport:
    """Mount one :class:`XTransport` for every URL of ``session``; returns it."""
    transport = XTransport(base_url, timeout, policy)
    mount(session, transport)
    return transport


class _BearerFilter(logging.Filter):
    """Masks ``Bearer <token>`` in records of the logger it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _BEARER.sub(r"\1***", message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _BearerFilter()


def redact_tweepy_logs() -> None:
    """Mask bearer tokens in tweepy's own DEBUG lines (idempotent: one shared filter)."""
    logging.getLogger("tweepy.client").addFilter(_FILTER)


def call_x(
    source: str, transport: XTransport, now: datetime, cap_reset_day: int, call: Callable[[], Any]
) -> dict[str, Any]:
    """Run one tweepy call; return its JSON object or raise SourceError / RateLimited."""
    import tweepy

    try:
        body = call()
    except tweepy.HTTPException as exc:
        raise _http_error(source, exc.response, now, cap_reset_day) from exc
    except requests.Timeout as exc:
        raise SourceError(
            f"source {source}: X did not answer within {transport.timeout:g} s; "
            "the next poll retries (check the network or base_url)"
        ) from exc
    except requests.JSONDecodeError as exc:
        raise SourceError(f"source {source}: X answered with malformed JSON") from exc
    except requests.RequestException as exc:
        raise SourceError(
            f"source {source}: cannot reach {host_of(transport.base_url)} "
            f"({type(exc).__name__}); the next poll retries"
        ) from exc
    except (ValueError, TypeError, AttributeError) as exc:
        # tweepy choked on an error answer (int() of a garbled x-rate-limit-reset header, a
        # JSON error body that is not an object): map it by the status the transport saw
        response = transport.last_response
        if response is not None and not 200 <= response.status_code < 300:
            raise _http_error(source, response, now, cap_reset_day) from exc
        if isinstance(exc, ValueError):
            raise SourceError(f"source {source}: X answered something unreadable") from exc
        raise
    if not isinstance(body, dict):
        raise SourceError(
            f"source {source}: X answered a JSON {type(body).__name__}, not an object"
        )
    return body


def _http_error(
    source: str, response: requests.Response, now: datetime, cap_reset_day: int
) -> Exception:
    """The exception for an unsuccessful answer: X's own cases first, then the shared map."""
    status, headers = response.status_code, response.headers
    body = _text(response)
    snippet = " ".join(body.split())[:200]
    if status == 429 and ("UsageCapExceeded" in body or "usage-capped" in body):
        until = usage_cap_reset(headers, body, now, cap_reset_day)
        return RateLimited(
            f"source {source}: the X project's monthly post cap is exhausted (HTTP 429 "
            f"UsageCapExceeded); waiting for the rate-limit window does not help, so this source "
            f"pauses until {until:%Y-%m-%d %H:%M} UTC. Upgrade the plan or lower the volume "
            "(fewer brands, narrower queries); usage is shown in the X developer portal",
            max(0.0, (until - now).total_seconds()),
        )
    if status == 401:
        return SourceError(
            f"source {source}: X refused the bearer token (HTTP 401): check the bearer_token "
            "setting (e.g. the X_BEARER_TOKEN environment variable) and regenerate it if revoked"
        )
    if status == 403:
        return SourceError(
            f"source {source}: X answered 403: your access tier has no recent search (or the "
            f"app is suspended); check the project's access in the developer portal: {snippet}"
        )
    try:
        raise_for_status(source, status, headers, body, now)
    except SourceError as exc:
        return XBadRequest(str(exc)) if status == 400 else exc
    except RateLimited as exc:
        return exc
    return SourceError(f"source {source}: unexpected HTTP {status} from X: {snippet}")


def usage_cap_reset(
    headers: Mapping[str, str], body: str, now: datetime, reset_day: int = 1
) -> datetime:
    """When the monthly cap lifts: a ``Retry-After`` header or a ``reset``-like body field if X
    ever sends one (today it documents none), else ``reset_day`` of the next month, 00:00 UTC.

    The ``x-rate-limit-reset`` header is deliberately ignored here: it is the 15-minute window's
    reset, and the cap does not lift with it.
    """
    if any(name.lower() == "retry-after" for name in headers):
        return datetime.fromtimestamp(now.timestamp() + retry_after(headers, now), UTC)
    found = _body_reset(body)
    if found is not None and found > now:
        return found
    this_month = _cap_day(now.year, now.month, reset_day)
    if this_month.date() > now.date():  # this month's reset day is still ahead
        return this_month
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return _cap_day(year, month, reset_day)


def _cap_day(year: int, month: int, day: int) -> datetime:
    """00:00 UTC of ``day`` in that month, or of its last day in shorter months."""
    return datetime(year, month, min(day, calendar.monthrange(year, month)[1]), tzinfo=UTC)


def _body_reset(body: str) -> datetime | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("reset", "reset_at", "resets_at", "reset_time"):
        value = data.get(key)
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return datetime.fromtimestamp(float(value), UTC)
            if isinstance(value, str) and value:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except (ValueError, OverflowError, OSError):
            continue
    return None


def _text(response: requests.Response) -> str:
    try:
        return response.content.decode("utf-8", "replace")
    except (requests.RequestException, RuntimeError):
        return ""


def host_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL for messages: never user info, a path or a query."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


# -- reading X's answers ------------------------------------------------------------------

NO_LANGUAGE = {"und", "zxx", "art"}  # X's codes for "no/unknown language"; q.. codes too


def parse_response(
    body: dict[str, Any], source: str, label: str
) -> tuple[list[Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """``data``, ``includes.users`` by id and ``meta``; a wrong-shaped answer raises."""
    data, meta = body.get("data", []), body.get("meta", {})
    includes, errors = body.get("includes", {}), body.get("errors", [])
    users = includes.get("users", []) if isinstance(includes, dict) else None
    if not (isinstance(data, list) and isinstance(meta, dict) and isinstance(users, list)
            and isinstance(errors, list)):
        raise SourceError(f"source {source}: X answered an unexpected shape for {label}")
    if "data" not in body and "meta" not in body and errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        detail = " ".join(str(first.get("detail") or first.get("message") or first).split())
        raise SourceError(f"source {source}: X refused {label}: {detail[:200]}")
    for key in ("next_token", "newest_id"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise SourceError(f"source {source}: X answered a non-string meta.{key}")
    for error in errors:  # partial errors: deleted, withheld or protected posts and users
        if isinstance(error, dict):
            log.debug("x %s: skipped, %s: %s", error.get("resource_id") or error.get("value"),
                      error.get("title"), error.get("detail"))
    by_id = {u["id"]: u for u in users if isinstance(u, dict) and isinstance(u.get("id"), str)}
    return data, by_id, meta


def post_id_of(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) and value.isdigit() else None


TWITTER_EPOCH_MS = 1288834974657
"""Snowflake's epoch, 2010-11-04T01:42:54.657Z: ``id >> 22`` is milliseconds since it."""

FIRST_SNOWFLAKE_DAY = datetime(2010, 11, 5, tzinfo=UTC)
"""X switched to snowflake ids on 2010-11-04. Older ids were small sequential numbers that, read as
snowflakes, all land within seconds of the epoch on that day; so only a time from the next day on
is taken as real (recent search never returns posts that old anyway)."""

_ID_LIMIT = 1 << 63  # snowflakes are 63 bits (the sign bit is unused): anything larger is not one


def snowflake_time(post_id: str) -> datetime | None:
    """When X created the object with this id, read from the snowflake (millisecond precision);
    None for an id that is not a snowflake (pre-2010 sequential ids, out-of-range numbers)."""
    number = int(post_id) if post_id.isdigit() else -1
    if not 0 < number < _ID_LIMIT:
        return None
    moment = datetime.fromtimestamp(((number >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)
    return moment if moment >= FIRST_SNOWFLAKE_DAY else None


def created_at_of(item: dict[str, Any], post_id: str) -> datetime | None:
    """A post's time: its ``created_at``, else (missing or unreadable) the time in its id.

    X sends ``created_at`` only when ``tweet.fields`` asks for it, and gateways or archives in
    between may drop it; the id still carries the creation time to the millisecond, so such a
    post is kept instead of rejected. None when neither gives a time.
    """
    value = item.get("created_at")
    try:
        return parse_iso(value)
    except (TypeError, ValueError, AttributeError, OverflowError):
        found = snowflake_time(post_id)
        if found is not None:
            log.debug("x %s: created_at %r unusable; dated from the id", post_id, value)
        return found


def max_id(data: list[Any]) -> str | None:
    ids = [i for i in (post_id_of(item) for item in data) if i is not None]
    return max(ids, key=int) if ids else None


def text_of(item: dict[str, Any]) -> str | None:
    """Plain text: the full note for long posts; X escapes ``& < >`` as HTML entities."""
    note = item.get("note_tweet")
    text = note.get("text") if isinstance(note, dict) else None
    text = text if isinstance(text, str) else item.get("text")
    return html.unescape(text) if isinstance(text, str) else None


def is_retweet(item: dict[str, Any]) -> bool:
    refs = item.get("referenced_tweets")
    return isinstance(refs, list) and any(
        isinstance(r, dict) and r.get("type") == "retweeted" for r in refs
    )


def lang_of(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    code = value.lower()
    return None if code in NO_LANGUAGE or (len(code) == 3 and code.startswith("q")) else code


def followers_of(user: dict[str, Any] | None) -> int | None:
    metrics = user.get("public_metrics") if user else None
    count = metrics.get("followers_count") if isinstance(metrics, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def conversation_of(item: dict[str, Any]) -> str | None:
    """The thread a post belongs to: its ``conversation_id`` (the id of the conversation's first
    post, its own id for a post that starts one); None when X sent none (the field must be
    asked for in ``tweet.fields``)."""
    value = item.get("conversation_id")
    return value if isinstance(value, str) and value.isdigit() else None
