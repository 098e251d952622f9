"""Replies on X: a post in reply to the customer's, through tweepy's v2 ``Client`` (the library
the X source uses), as the brand's account.

Log-in: OAuth 1.0a user context — the app's API key and secret (``consumer_key``,
``consumer_secret``) and the account's access token and secret, generated in the developer
portal *after* the app's permissions were set to "Read and write" (tokens made before keep
reading only). All four are secrets: registered for redaction, and tweepy's and oauthlib's DEBUG
lines (which name the key and token) pass through the redacting filter of
:mod:`listener.core.log` before any handler sees them. The numeric id of the account is the
access token's prefix (``<user id>-…``, as tweepy itself reads it); ``username`` is optional
and only makes the links read ``x.com/<username>/status/<id>``.

What a reply is: ``POST /2/tweets`` ``{"text", "reply": {"in_reply_to_tweet_id": <post id>}}``.
X threads it under the post and notifies its author, and shows their ``@username`` in front of
the reply by itself: no mention is added to the text. The reply keeps X's default reply
settings (everyone may answer it), so the customer can write back. A post whose author limits
who may reply (``reply_settings``: mentioned users, followers) refuses us unless we were
mentioned: not retried. tweepy's host is fixed; a small ``requests`` adapter sends its
requests to ``base_url`` instead (a proxy, a gateway, the tests' fake) with our timeout.

Exactly once. X takes no idempotency key. :meth:`XWriter.find` reads the account's own posts
newer than the customer's (``GET /2/users/:id/tweets`` with ``since_id`` = the post, newest
first, up to :data:`PAGES` pages of 100) and takes the one that replies to this post
(``referenced_tweets`` ``replied_to``) with this reply's text, compared as X shows it: the
leading ``@mentions`` it adds left out, its HTML escapes undone, links (which it shortens to
t.co) compared as "a link", blanks evened out. Another reply to the same post with other text is
not it; two replies with the very same text to the very same post cannot be told apart (X
would refuse the second as a duplicate anyway). X answers an identical repeat of a recent post
with 403 "duplicate content": that is taken as sent only when :meth:`find` then confirms it;
otherwise the attempt is retried (the timeline may lag a moment) and parked after the outbox's
last attempt, with X's words, for a person to reword.

Limits: 280 characters as X weighs them (twitter-text's rules: most Latin, Greek, Cyrillic
… count 1, other scripts and emoji 2, every link 23); counted here before any request and
refused, never truncated. X's own 400 for a text it finds too long is not retried either.

Errors: 429 → :class:`RateLimited` until ``x-rate-limit-reset`` (epoch seconds), or the 24-hour
per-user/per-app reset when that budget is the one spent; 401 → not retried (the four keys);
403 — the app may not write ("oauth1 app permissions": set "Read and write", regenerate the
access token; OAuth 2.0 would need ``tweet.write``), the post deleted or not visible, replies
limited — not retried; 400 and 404 not retried; 5xx and network failures retried.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator

from alerts.replies.base import AccountConfig, Outgoing, Sent
from alerts.sinks._http import https_base_url
from alerts.sinks.base import error_for_status
from listener.core.errors import DeliveryError, MissingDependency, RateLimited
from listener.core.log import RedactingFilter, redact, register_secret

X_API_URL = "https://api.twitter.com"  # the host tweepy hard-codes
MAX_WEIGHT = 280
URL_WEIGHT = 23  # every link counts as a t.co link
PAGES = 3  # pages of 100 of the account's posts find() reads
USER_AGENT = "social-listener/0.1 (replies)"
TWEET_FIELDS = ["referenced_tweets", "created_at", "conversation_id", "in_reply_to_user_id"]
_LIGHT = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))  # weight 1 (twitter-text v3)
_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_LEADING_MENTIONS = re.compile(r"^(?:@\w{1,15}\s+)+")
_LOGGERS = ("tweepy.client", "requests_oauthlib.oauth1_auth", "oauthlib.oauth1.rfc5849",
            "oauthlib.oauth1.rfc5849.signature", "oauthlib")
_REDACT = RedactingFilter()


class XAccountConfig(AccountConfig):
    """A ``type: x`` reply account: an app's key and secret, the account's access token."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo the keys back

    type: Literal["x"] = Field("x", description="always 'x'")
    consumer_key: str = Field(min_length=1, repr=False,
                              description='the app\'s API key, given as {"$env": NAME}')
    consumer_secret: str = Field(min_length=1, repr=False,
                                 description='the app\'s API key secret ({"$env": NAME})')
    access_token: str = Field(
        min_length=1, repr=False,
        description='the account\'s access token, made after the app got "Read and write" '
        'permissions ({"$env": NAME})')
    access_token_secret: str = Field(min_length=1, repr=False,
                                     description='the access token\'s secret ({"$env": NAME})')
    username: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_]{1,15}$",
        description="the account's username (without @), for links to replies (optional)")
    base_url: str = Field(X_API_URL, description="API root; tweepy's fixed host is rewritten "
                          "to it (proxies, gateways, tests)")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return https_base_url(value, "base_url")


# -- length ------------------------------------------------------------------------------------


def weighted_length(text: str) -> int:
    """The length X counts (twitter-text v3, approximately): NFC text, a link 23, a character
    in the light ranges 1, anything else 2, an emoji sequence (ZWJ, variation selectors, skin
    tones, a flag's pair) 2 in all."""
    text = unicodedata.normalize("NFC", text)
    total, position = 0, 0
    for link in _LINK.finditer(text):
        total += _weigh(text[position:link.start()]) + URL_WEIGHT
        position = link.end()
    return total + _weigh(text[position:])


def _weigh(text: str) -> int:
    total, glued, flag_open = 0, False, False
    for char in text:
        code = ord(char)
        if glued:  # the character after a zero-width joiner belongs to the emoji before
            glued = False
            continue
        if code == 0x200D:
            glued = True
            continue
        if 0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
            continue
        if 0x1F1E6 <= code <= 0x1F1FF:
            flag_open = not flag_open
            total += 2 if flag_open else 0
            continue
        flag_open = False
        total += 1 if any(low <= code <= high for low, high in _LIGHT) else 2
    return total


def same_text(text: str) -> str:
    """Text as compared with what X shows: leading @mentions, HTML escapes and links evened."""
    text = unicodedata.normalize("NFC", html.unescape(text)).strip()
    text = _LEADING_MENTIONS.sub("", text)
    text = _LINK.sub("<link>", text)
    return " ".join(text.split())


# -- the writer ----------------------------------------------------------------------------------


class XWriter:
    """Posts replies as one X account."""

    Config: ClassVar[type[AccountConfig]] = XAccountConfig
    type: ClassVar[str] = "x"
    max_chars: ClassVar[int] = MAX_WEIGHT

    def __init__(self, config: XAccountConfig, timeout: float) -> None:
        try:
            import tweepy  # type: ignore[import-untyped]
        except ImportError:
            raise MissingDependency("tweepy", "twitter") from None
        self.config, self.name, self.timeout = config, config.name, timeout
        self._tweepy: Any = tweepy
        for secret in (config.consumer_key, config.consumer_secret, config.access_token,
                       config.access_token_secret):
            register_secret(secret)
        for name in _LOGGERS:  # their DEBUG lines name the key and token
            logging.getLogger(name).addFilter(_REDACT)
        self._client: Any = tweepy.Client(
            consumer_key=config.consumer_key, consumer_secret=config.consumer_secret,
            access_token=config.access_token, access_token_secret=config.access_token_secret,
            return_type=dict, wait_on_rate_limit=False,
        )
        self._client.user_agent = f"{USER_AGENT} {self._client.user_agent}"
        self._transport = _transport(config.base_url, timeout)
        for prefix in ("https://", "http://"):
            self._client.session.mount(prefix, self._transport)
        prefix = config.access_token.partition("-")[0]
        self._user_id: str | None = prefix if prefix.isdigit() else None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"XWriter(name={self.name!r}, username={self.config.username!r})"

    # -- the contract --------------------------------------------------------------------------

    def send(self, reply: Outgoing) -> Sent:
        where = f"reply account {self.name}"
        if not reply.text.strip():
            raise DeliveryError(f"{where}: the reply is empty", retryable=False)
        weight = weighted_length(reply.text)
        if weight > MAX_WEIGHT:
            raise DeliveryError(f"{where}: the reply counts {weight} characters as X weighs "
                                f"them (links 23, most other scripts and emoji 2); X takes at "
                                f"most {MAX_WEIGHT}: shorten it", retryable=False)
        if not reply.platform_id.isdigit():
            raise DeliveryError(f"{where}: {reply.platform_id!r} is not an X post id",
                                retryable=False)
        with self._lock:
            try:
                body = self._call(lambda: self._client.create_tweet(
                    text=reply.text, in_reply_to_tweet_id=reply.platform_id, user_auth=True),
                    "post the reply")
            except _Duplicate as duplicate:
                found = self._find(reply)
                if found is not None:
                    return found
                raise DeliveryError(
                    f"{where}: X refused the text as a duplicate of a recent post of this "
                    f"account ({duplicate.detail}), and no reply with this text to this post "
                    "was found yet; retried (X's list may lag), parked after the last attempt: "
                    "then reword the reply", status=403, retryable=True) from None
            data = body.get("data") if isinstance(body, dict) else None
            tweet_id = data.get("id") if isinstance(data, dict) else None
            if not isinstance(tweet_id, str) or not tweet_id.isdigit():
                raise DeliveryError(f"{where}: X answered the create without a post id; the "
                                    "next attempt looks for the reply first", retryable=True)
            return Sent(tweet_id, self._url(tweet_id))

    def find(self, reply: Outgoing) -> Sent | None:
        with self._lock:
            return self._find(reply)

    def close(self) -> None:
        self._client.session.close()

    # -- requests ------------------------------------------------------------------------------

    def _find(self, reply: Outgoing) -> Sent | None:
        """This reply among the account's posts newer than the customer's, or None."""
        if not reply.platform_id.isdigit():
            return None
        user_id = self._account_id()
        wanted, token = same_text(reply.text), None
        for _ in range(PAGES):
            body = self._call(lambda token=token: self._client.get_users_tweets(
                user_id, user_auth=True, since_id=reply.platform_id, max_results=100,
                tweet_fields=TWEET_FIELDS, exclude=["retweets"], pagination_token=token),
                "look for an earlier attempt")
            for tweet in body.get("data") or []:
                if not isinstance(tweet, dict):
                    continue
                replied = [r.get("id") for r in tweet.get("referenced_tweets") or []
                           if isinstance(r, dict) and r.get("type") == "replied_to"]
                if reply.platform_id in replied and \
                        same_text(str(tweet.get("text", ""))) == wanted:
                    return Sent(str(tweet["id"]), self._url(str(tweet["id"])))
            meta = body.get("meta")
            token = meta.get("next_token") if isinstance(meta, dict) else None
            if not token:
                return None
        return None

    def _account_id(self) -> str:
        """The account's numeric id: the access token's prefix, else ``GET /2/users/me``."""
        if self._user_id is None:
            body = self._call(lambda: self._client.get_me(user_auth=True), "read the account")
            found = (body.get("data") or {}).get("id")
            if not isinstance(found, str) or not found.isdigit():
                raise DeliveryError(f"reply account {self.name}: X did not say which account "
                                    "the access token is", retryable=True)
            self._user_id = found
        return self._user_id

    def _url(self, tweet_id: str) -> str:
        if self.config.username:
            return f"https://x.com/{self.config.username}/status/{tweet_id}"
        return f"https://x.com/i/web/status/{tweet_id}"

    def _call(self, call: Any, action: str) -> dict[str, Any]:
        """One tweepy call; its JSON object, or our exception (never the cause: it may hold a
        key)."""
        import requests

        tweepy = self._tweepy
        where = f"reply account {self.name}: X {action}"
        self._transport.last = None
        try:
            body = call()
        except tweepy.HTTPException as exc:
            raise _answer_error(where, exc.response, action) from None
        except requests.Timeout:
            raise DeliveryError(f"{where}: no answer within {self.timeout:g} s; retried",
                                retryable=True) from None
        except requests.RequestException as exc:
            raise DeliveryError(f"{where}: could not reach X ({type(exc).__name__}: "
                                f"{redact(str(exc))[:200]}); retried", retryable=True) from None
        except (ValueError, TypeError, AttributeError) as exc:
            # tweepy choked on an answer (a garbled rate-limit header, a body that is not
            # JSON): map it by the status the transport saw
            seen = self._transport.last
            if seen is not None and not 200 <= seen.status_code < 300:
                raise _answer_error(where, seen, action) from None
            raise DeliveryError(f"{where}: X answered something unreadable "
                                f"({type(exc).__name__}); retried", retryable=True) from None
        if not isinstance(body, dict):
            raise DeliveryError(f"{where}: X answered a JSON {type(body).__name__}, not an "
                                "object; retried", retryable=True)
        return body


class _Duplicate(Exception):  # noqa: N818 - a signal inside this module, not an error we raise
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _problem(response: Any) -> tuple[str, str]:
    """X's problem object: its ``detail`` (or first error message) and ``type``."""
    try:
        data = json.loads(response.content.decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    detail = data.get("detail") or ""
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail = f"{detail} {errors[0].get('message') or ''}".strip()
    return redact(" ".join(str(detail).split()))[:300], str(data.get("type") or "")


def _answer_error(where: str, response: Any, action: str) -> Exception:
    """An unsuccessful answer → ours; a duplicate-content 403 → :class:`_Duplicate`."""
    status = int(response.status_code)
    detail, kind = _problem(response)
    said = f": {detail}" if detail else ""
    lowered = detail.lower()
    if status == 429:
        return RateLimited(f"{where}: rate-limited (HTTP 429{said})", _wait(response.headers))
    if status == 401:
        return DeliveryError(f"{where}: HTTP 401{said} — X refused the keys: check "
                             "consumer_key/secret and access_token/secret (regenerated?)",
                             status=401, body_snippet=detail, retryable=False)
    if status == 403 and "duplicate content" in lowered and action == "post the reply":
        return _Duplicate(detail)
    if status == 403 and ("oauth1-permissions" in kind or "permission" in lowered
                          or "client-forbidden" in kind):
        return DeliveryError(
            f"{where}: HTTP 403{said} — the app's access token cannot write: set the app's "
            "permissions to \"Read and write\" (User authentication settings) and regenerate "
            "the access token and secret (with OAuth 2.0 the token needs the tweet.write "
            "scope)", status=403, body_snippet=detail, retryable=False)
    if status == 403 and "deleted or not visible" in lowered:
        return DeliveryError(f"{where}: HTTP 403{said} — the post is gone (deleted, or its "
                             "author is protected or blocks this account); nothing to reply to",
                             status=404, body_snippet=detail, retryable=False)
    if status == 403 and "reply to this conversation is not allowed" in lowered:
        return DeliveryError(f"{where}: HTTP 403{said} — the author limits who may reply, and "
                             "this account may not", status=403, body_snippet=detail,
                             retryable=False)
    if status == 404:
        return DeliveryError(f"{where}: HTTP 404{said} — the post or account no longer "
                             "exists", status=404, body_snippet=detail, retryable=False)
    mapped = error_for_status(status, detail)
    return DeliveryError(f"{where}: HTTP {status}{said}", status=status, body_snippet=detail,
                         retryable=mapped.retryable)


def _wait(headers: Mapping[str, str]) -> float:
    """Seconds until the spent budget resets: ``Retry-After``; else the 24-hour per-user or
    per-app budget's reset when that one is spent; else ``x-rate-limit-reset`` (epoch)."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        return max(1.0, float(lowered["retry-after"]))
    except (KeyError, ValueError):
        pass
    resets = []
    for budget in ("x-user-limit-24hour", "x-app-limit-24hour"):
        if lowered.get(f"{budget}-remaining") == "0" and f"{budget}-reset" in lowered:
            resets.append(lowered[f"{budget}-reset"])
    resets.append(lowered.get("x-rate-limit-reset", ""))
    for reset in resets:
        try:
            return max(1.0, float(reset) - time.time())
        except ValueError:
            continue
    return 900.0  # X's windows are 15 minutes


def _transport(base_url: str, timeout: float) -> Any:
    """A ``requests`` adapter for tweepy's session: our timeout on every request, and
    tweepy's fixed ``https://api.twitter.com`` sent to ``base_url`` (the OAuth signature was
    made for X's URL, as X expects behind a proxy). It keeps the last answer, for mapping one
    that tweepy failed to read. ``requests`` never retries a POST here (no retries mounted)."""
    import requests
    from requests.adapters import HTTPAdapter

    class _Rehost(HTTPAdapter):
        last: Any = None

        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            url = request.url or ""
            if base_url != X_API_URL and url.startswith(X_API_URL + "/"):
                request.url = base_url + url[len(X_API_URL):]
                kwargs["proxies"] = requests.utils.get_environ_proxies(request.url)
            response = super().send(request, **kwargs)
            self.last = response
            return response

    return _Rehost()
