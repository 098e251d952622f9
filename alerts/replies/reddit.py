"""Replies on Reddit: a comment under the submission or comment the customer wrote, through
praw (the library the Reddit source uses), as the brand's Reddit account.

Log-in. A Reddit app's ``client_id`` and ``client_secret`` plus the account: either its
``username`` and ``password`` (a "script" app, which only its developers' accounts may use), or
a ``refresh_token`` granted to the app with the scopes ``submit`` (to comment) and ``history``
(to read the account's own comments back, see below); ``username`` is always given (it names
whose comments to read). Secrets are registered for redaction. Reddit wants a descriptive
``user_agent`` naming the account. Since late 2025 new API apps need Reddit's approval under its
Responsible Builder Policy.

What a reply is. The post's id is its fullname: ``t3_…`` (a submission) or ``t1_…`` (a
comment); ``POST /api/comment`` with ``thing_id`` and ``text`` (Markdown) makes the comment,
and Reddit tells the author in their inbox by itself: no ``u/`` mention is added. The comment's
fullname is the remote id and its permalink on www.reddit.com the link.

Exactly once. Reddit takes no idempotency key and refuses no duplicate, so
:meth:`RedditWriter.find` reads the account's own comments, newest first
(``GET /user/<username>/comments?sort=new``, up to :data:`LOOKED_AT`, stopping at comments
older than the post), and takes the one whose ``parent_id`` is this post and whose text is this
reply's (compared after Reddit's HTML escapes, line endings and surrounding blanks); another
reply to the same post with other text is not it. What it cannot tell apart: two replies
with the very same text to the very same post, or more than :data:`LOOKED_AT` comments by the
account since the lost attempt. prawcore's own retries are turned off (it would repeat a POST
whose answer was lost: a second comment); the outbox retries, asking :meth:`find` first. A
comment in a quarantined subreddit is created without being returned (praw says so): the
writer then looks for it at once.

Limits: 10,000 characters (Reddit's ``TOO_LONG``); a longer text is refused before any
request, never truncated.

Errors. Reddit refuses most things with HTTP 200 and ``json.errors``: ``RATELIMIT`` ("take a
break for 9 minutes", the account's spam limit) → :class:`RateLimited` for that long;
``DELETED_COMMENT``, ``DELETED_LINK``, ``NO_THING_ID`` (the post is gone), ``THREAD_LOCKED``,
``TOO_OLD`` (archived), ``TOO_LONG`` and the others → not retried. HTTP 429 →
:class:`RateLimited` (``Retry-After``, else ``X-Ratelimit-Reset`` seconds), and once an answer
says the request budget is spent the writer waits for its reset instead of letting prawcore
sleep. 403 ``insufficient_scope`` → not retried, naming the scope; another 403 (a locked
thread, a ban from the subreddit, a suspended account) → not retried; a refused token request
(wrong secret, password or revoked refresh token) → not retried; a 401 on the API (an access
token that expired) is retried at once with a fresh one; 5xx and network failures are retried.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from alerts.replies.base import AccountConfig, Outgoing, Sent
from alerts.sinks._http import https_base_url
from alerts.sinks.base import error_for_status
from listener.core.errors import DeliveryError, MissingDependency, RateLimited
from listener.core.log import redact, register_secret

MAX_CHARS = 10_000
LOOKED_AT = 300  # the account's newest comments find() reads (three pages)
PERMALINK_ROOT = "https://www.reddit.com"
DEFAULT_USER_AGENT = "python:social-listener:0.1 (replies; self-hosted social listening)"
_FULLNAME = re.compile(r"^t[13]_[a-z0-9]{1,13}$")
_WAIT = re.compile(r"([0-9]{1,4}) (milliseconds?|seconds?|minutes?|hours?)")
_GONE = {
    "DELETED_COMMENT": "the comment was deleted",
    "DELETED_LINK": "the submission was deleted",
    "NO_THING_ID": "the post no longer exists on Reddit",
    "THREAD_LOCKED": "the thread is locked",
    "TOO_OLD": "the thread is archived (too old to reply to)",
}


class RedditAccountConfig(AccountConfig):
    """A ``type: reddit`` reply account: an app's id and secret, the account's log-in."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo credentials back

    type: Literal["reddit"] = Field("reddit", description="always 'reddit'")
    client_id: str = Field(min_length=1, repr=False,
                           description='id of your Reddit app, given as {"$env": NAME}')
    client_secret: str = Field(min_length=1, repr=False,
                               description='secret of your Reddit app, given as {"$env": NAME}')
    username: str = Field(pattern=r"^[A-Za-z0-9_-]{3,20}$",
                          description="the Reddit account that replies (without u/)")
    password: str | None = Field(
        None, repr=False, description='the account\'s password, for a "script" app '
        '({"$env": NAME}); or give refresh_token')
    refresh_token: str | None = Field(
        None, repr=False, description="a refresh token granted to the app with the scopes "
        'submit and history ({"$env": NAME}); or give password')
    user_agent: str = Field(
        DEFAULT_USER_AGENT, min_length=7,
        description="Reddit requires a unique, descriptive one: "
        "'<platform>:<app id>:<version> (by /u/<your reddit username>)'")
    base_url: str = Field("https://www.reddit.com",
                          description="where OAuth tokens are requested; proxies and tests")
    oauth_url: str = Field("https://oauth.reddit.com",
                           description="API root for comments; proxies and tests")

    @field_validator("base_url", "oauth_url")
    @classmethod
    def _https(cls, value: str, info: Any) -> str:
        """Secrets travel to both: https only (http for 127.0.0.1/localhost tests)."""
        return https_base_url(value, str(info.field_name))

    @model_validator(mode="after")
    def _one_login(self) -> RedditAccountConfig:
        if (self.password is None) == (self.refresh_token is None):
            raise ValueError("give exactly one of password (a script app) and refresh_token")
        return self


class RedditWriter:
    """Comments as one Reddit account; one praw ``Reddit`` per writer (praw is not
    thread-safe: a lock keeps one request at a time)."""

    Config: ClassVar[type[AccountConfig]] = RedditAccountConfig
    type: ClassVar[str] = "reddit"
    max_chars: ClassVar[int] = MAX_CHARS

    def __init__(self, config: RedditAccountConfig, timeout: float) -> None:
        try:
            import praw
            import prawcore
        except ImportError:
            raise MissingDependency("praw", "reddit") from None
        self.config, self.name, self.timeout = config, config.name, timeout
        self._core: Any = prawcore.exceptions
        self._api_exception: Any = praw.exceptions.RedditAPIException
        for secret in (config.client_secret, config.password, config.refresh_token):
            register_secret(secret)
        self._remaining: float | None = None
        self._reset_at = 0.0
        self._http = _session(timeout, self._note)
        login: dict[str, Any] = (
            {"username": config.username, "password": config.password, "refresh_token": None}
            if config.password is not None else
            {"username": None, "password": None, "refresh_token": config.refresh_token})
        self._reddit: Any = praw.Reddit(
            "DEFAULT",  # praw.ini's defaults only, whatever praw_site says
            client_id=config.client_id, client_secret=config.client_secret,
            user_agent=config.user_agent, reddit_url=config.base_url,
            oauth_url=config.oauth_url, check_for_updates=False, check_for_async=False,
            ratelimit_seconds=0,  # a RATELIMIT answer is ours to schedule, not praw's to sleep
            requestor_kwargs={"session": self._http}, **login,
        )
        _no_retries(self._reddit)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedditWriter(name={self.name!r}, username={self.config.username!r})"

    # -- the contract ------------------------------------------------------------------------

    def send(self, reply: Outgoing) -> Sent:
        where = f"reply account {self.name}"
        if not reply.text.strip():
            raise DeliveryError(f"{where}: the reply is empty", retryable=False)
        if len(reply.text) > MAX_CHARS:
            raise DeliveryError(f"{where}: the reply is {len(reply.text)} characters long; "
                                f"Reddit takes at most {MAX_CHARS}: shorten it", retryable=False)
        if not _FULLNAME.match(reply.platform_id):
            raise DeliveryError(f"{where}: {reply.platform_id!r} is not the fullname of a "
                                "Reddit submission or comment", retryable=False)
        kind, ident = reply.platform_id.split("_", 1)
        with self._lock:
            thing = (self._reddit.submission(ident) if kind == "t3"
                     else self._reddit.comment(ident))
            created = self._call(lambda: thing.reply(reply.text), "post the reply", "submit")
            if created is None:  # quarantined subreddit: created, not returned (praw's docs)
                found = self._find(reply)
                if found is not None:
                    return found
                raise DeliveryError(f"{where}: Reddit created the comment without returning "
                                    "it; the next attempt looks for it", retryable=True)
            return Sent(str(created.fullname), _link(created.permalink))

    def find(self, reply: Outgoing) -> Sent | None:
        with self._lock:
            return self._find(reply)

    def close(self) -> None:
        self._http.close()

    # -- requests ----------------------------------------------------------------------------

    def _find(self, reply: Outgoing) -> Sent | None:
        """This reply among the account's newest comments, or None."""
        born = reply.raw.get("created_utc")
        oldest = float(born) if isinstance(born, int | float) else None
        wanted = _same_text(reply.text)

        def look() -> Sent | None:
            redditor = self._reddit.redditor(self.config.username)
            for comment in redditor.comments.new(limit=LOOKED_AT):
                if oldest is not None and float(comment.created_utc) < oldest:
                    return None  # older than the post: no reply to it from here on
                if comment.parent_id == reply.platform_id and _same_text(comment.body) == wanted:
                    return Sent(str(comment.fullname), _link(comment.permalink))
            return None

        found: Sent | None = self._call(look, "look for an earlier attempt", "history")
        return found

    def _call(self, call: Any, action: str, scope: str) -> Any:
        """One praw call under the account's request budget; our exceptions. A 401 on the API
        (the access token expired or was revoked) happens before Reddit acts: prawcore dropped
        the token, so the call is made once more with a fresh one."""
        for tries_left in (1, 0):
            wait = self._reset_at - time.monotonic()
            if self._remaining is not None and self._remaining < 1 and wait > 0:
                raise RateLimited(f"reply account {self.name}: Reddit's request budget is "
                                  f"spent until its window resets in {wait:.0f} s", wait)
            try:
                return call()
            except self._core.InvalidToken:
                if tries_left:
                    continue
                raise DeliveryError(f"reply account {self.name}: Reddit refused the access "
                                    "token twice (HTTP 401); check the app's credentials",
                                    status=401, retryable=False) from None
            except Exception as exc:
                error = self._error(exc, action, scope)
                if error is None:
                    raise
                raise error from None
        raise AssertionError("unreachable")

    def _note(self, headers: Mapping[str, str]) -> None:
        """The budget from an answer's ``X-Ratelimit-Remaining`` / ``-Reset`` (seconds)."""
        try:
            remaining = float(headers["x-ratelimit-remaining"])
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return
        self._remaining, self._reset_at = remaining, time.monotonic() + max(0.0, reset)

    def _error(self, exc: Exception, action: str,
               scope: str) -> DeliveryError | RateLimited | None:
        """praw's or prawcore's exception → ours (None: not theirs); never the cause's text
        with a credential in it."""
        where = f"reply account {self.name}: Reddit {action}"
        core = self._core
        if isinstance(exc, DeliveryError | RateLimited):
            return exc
        if isinstance(exc, self._api_exception):
            return _api_error(where, exc.items)
        if isinstance(exc, core.TooManyRequests):
            return RateLimited(f"{where}: rate-limited (HTTP 429)", _wait(exc.response.headers))
        if isinstance(exc, core.InsufficientScope):
            return DeliveryError(
                f"{where}: HTTP 403 insufficient_scope: the refresh token lacks the '{scope}' "
                "scope; grant the app the scopes submit and history and use the new token",
                status=403, retryable=False)
        if isinstance(exc, core.OAuthException):
            return DeliveryError(f"{where}: Reddit refused the log-in ({exc.error}): check "
                                 "username and password, or the refresh_token (revoked?)",
                                 retryable=False)
        if isinstance(exc, core.RequestException):
            cause = exc.original_exception
            return DeliveryError(f"{where}: could not reach Reddit ({type(cause).__name__}: "
                                 f"{redact(str(cause))[:200]}); retried", retryable=True)
        if isinstance(exc, core.BadJSON):
            return DeliveryError(f"{where}: Reddit answered malformed JSON; retried",
                                 retryable=True)
        if isinstance(exc, core.ResponseException):
            response = exc.response
            status = int(response.status_code)
            path = str(getattr(response, "url", "")).split("?")[0]
            if status == 401 and path.endswith("/api/v1/access_token"):
                return DeliveryError(f"{where}: Reddit refused the app's credentials (HTTP "
                                     "401): check client_id and client_secret (Reddit must "
                                     "have approved the app)", status=401, retryable=False)
            if status == 403:
                return DeliveryError(f"{where}: HTTP 403: the thread is locked, or the account "
                                     "is banned from the subreddit or suspended",
                                     status=403, retryable=False)
            if status == 404:
                return DeliveryError(f"{where}: HTTP 404: the post no longer exists",
                                     status=404, retryable=False)
            mapped = error_for_status(status, "")
            return DeliveryError(f"{where}: HTTP {status}", status=status,
                                 retryable=mapped.retryable)
        if isinstance(exc, core.PrawcoreException):
            return DeliveryError(f"{where}: the request failed ({type(exc).__name__}); retried",
                                 retryable=True)
        return None


def _api_error(where: str, items: Any) -> DeliveryError | RateLimited:
    """Reddit's ``json.errors``: RATELIMIT waits, the rest is final."""
    said = "; ".join(f"{item.error_type}: {item.message}" for item in items)
    for item in items:
        if item.error_type == "RATELIMIT":
            return RateLimited(f"{where}: Reddit's spam limit for this account ({item.message})",
                               _spam_wait(item.message or ""))
    first = items[0].error_type if items else ""
    why = _GONE.get(first)
    advice = f"{why}; nothing to reply to" if why else "Reddit refused the comment"
    return DeliveryError(f"{where}: {said} — {advice}", status=404 if first in _GONE else 400,
                         body_snippet=said, retryable=False)


def _spam_wait(message: str) -> float:
    """Seconds in "Take a break for 9 minutes before trying again"; a minute when unsaid."""
    found = _WAIT.search(message)
    if found is None:
        return 60.0
    amount, unit = int(found.group(1)), found.group(2)
    if unit.startswith("millisecond"):
        return 1.0
    scale = 60.0 if unit.startswith("minute") else 3600.0 if unit.startswith("hour") else 1.0
    return max(1.0, amount * scale)


def _wait(headers: Mapping[str, str]) -> float:
    """Seconds after a 429: ``Retry-After``, else ``X-Ratelimit-Reset`` (seconds too)."""
    for name in ("retry-after", "x-ratelimit-reset"):
        try:
            return max(1.0, float(headers[name]))
        except (KeyError, ValueError):
            continue
    return 60.0


def _same_text(text: str) -> str:
    """Text as compared: Reddit's HTML escapes undone, line endings and blanks evened out."""
    lines = html.unescape(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def _link(permalink: Any) -> str | None:
    return PERMALINK_ROOT + permalink if isinstance(permalink, str) and \
        permalink.startswith("/") else None


def _session(timeout: float, note: Any) -> Any:
    """A ``requests.Session`` that puts our timeout on every call (prawcore passes 16 s
    otherwise) and reports every answer's rate-limit headers."""
    import requests

    class _Session(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = timeout
            response = super().request(method, url, *args, **kwargs)
            note(response.headers)
            return response

    return _Session()


def _no_retries(reddit: Any) -> None:
    """prawcore retries a request after a dropped connection or a 5xx, a POST included: a
    comment whose answer was lost would be posted twice. Off (prawcore has no public switch:
    its sessions take the strategy class as an attribute); the outbox retries instead."""
    from prawcore.sessions import FiniteRetryStrategy

    class Once(FiniteRetryStrategy):
        DEFAULT_RETRIES = 0

        def __init__(self, retries: int = 0) -> None:
            super().__init__(retries=retries)

    for name in ("_core", "_read_only_core", "_authorized_core"):
        core = getattr(reddit, name, None)
        if core is not None and hasattr(core, "_retry_strategy_class"):
            core._retry_strategy_class = Once
