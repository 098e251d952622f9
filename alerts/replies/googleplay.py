"""Replies on Google Play: the developer reply to a review, through the Play Developer API.

What it answers. The googleplay source stores a review by its ``reviewId`` (``platform_id``) and
keeps the app's package name in ``raw["app_id"]``. The collector reads Play's public web RPC
without credentials; answering needs the Google Play Developer API (androidpublisher v3, "Reply
to Reviews"), over httpx as the collectors and sinks speak HTTP::

    POST {base_url}/androidpublisher/v3/applications/{packageName}/reviews/{reviewId}:reply
         {"replyText": "…"}   →  200 {"result": {"replyText": "…", "lastEdited": {…}}}
    GET  {base_url}/androidpublisher/v3/applications/{packageName}/reviews/{reviewId}
         →  200 {"reviewId", "authorName", "comments": [{"userComment": {…}},
                                                         {"developerComment": {"text", …}}]}

Credentials. A service account's JSON key (``service_account_json`` through ``{"$env": NAME}``,
or ``service_account_file``), exchanged for an access token with OAuth 2.0's JWT bearer grant
(RFC 7523): an RS256-signed assertion ``{iss: client_email, scope, aud: token_url, iat, exp}``
posted to ``token_url``. The token lasts an hour; it is kept and renewed a minute before its end,
or at once when the API refuses it (401). The scope is
``https://www.googleapis.com/auth/androidpublisher``, and the service account must be invited in
Play Console (Users and permissions) with the "Reply to reviews" permission for the app. The key,
every assertion and every access token are registered secrets (redacted from logs).

Never twice. Play keeps ONE developer reply per review, and ``reviews.reply`` creates or
*replaces* it: a repeat can never make a second reply, only rewrite the same one. Before a retry
the sender asks :meth:`GooglePlayWriter.find`, which reads the review and recognises this reply
by its text (HTML tags removed, as Play removes them, and white space collapsed): Play's reply
has no id of its own, so text is all there is to tell this reply from another one. Another reply
to the same review (another text) has replaced ours if it is there: find() answers None for it,
and sending ours again replaces it in turn — Play's one-reply rule, not a duplicate. The remote
id recorded is the review id (the reply is "the developer reply of that review"), the link the
review's own page.

Which review. Google documents the API's ``reviewId`` only as "Unique identifier for this review"
(reference, ``reviews`` resource); nothing says it is the id the store page — and so
google-play-scraper — gives a review (the scraper's are UUIDs or ``gp:AOqpTO…`` strings, as the
store page served them). So an id the API answers 404 to is looked up before anything is
parked: ``reviews.list`` (newest first, 100 a page, at most :data:`LIST_PAGES` pages) for the
one review whose ``authorName`` is the post's author, whose ``userComment.text`` (or
``originalText``) is the post's text (``raw["content"]``; HTML removed, white space collapsed)
and, where ``raw["at"]`` keeps the review's time, whose ``lastModified`` is within a day of it.
The text is required: Play's author names are not unique ("A Google user"). Exactly one match:
its id is used (and kept in memory for the process's life; nothing new is stored: a retry in
another process looks it up again). None, several, or no text to go by: the reply is parked,
not retried ("the review could not be found in the Play Developer API: …"). Google documents
that ``reviews.list`` returns only reviews with text written or edited in the last week, so
only a reply sent within about a week of the review can be resolved this way.

Notification. Play tells the reviewer about a developer reply itself (and shows it under the
review); there is no handle to mention.

Limits. 350 characters (Play refuses longer replies; refused here before any request, never cut).
Quota: the "Reply to Reviews" API shares a per-minute bucket per Cloud project; a 429
(``RESOURCE_EXHAUSTED``) waits for ``Retry-After``, else the error's ``google.rpc.RetryInfo``
``retryDelay``, else 60 s. Only production reviews that carry text are reachable through the API;
a review the author deleted answers 404 (parked, not retried).
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import httpx
from pydantic import ConfigDict, Field, field_validator, model_validator

from alerts.replies.base import AccountConfig, Outgoing, Sent
from alerts.replies.jws import compact
from alerts.sinks._http import (
    has_controls,
    https_base_url,
    https_or_local,
    json_object,
    request,
    sink_client,
    split_url,
)
from alerts.sinks.base import error_for_status, retry_after_seconds
from listener.core.errors import DeliveryError, MissingDependency, RateLimited
from listener.core.log import register_secret, register_short_lived_secret

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
PERMISSION = "Reply to reviews"
REVIEW = "/androidpublisher/v3/applications/{package}/reviews/{review}"
REVIEWS = "/androidpublisher/v3/applications/{package}/reviews"
LIST_SIZE = 100
LIST_PAGES = 10  # reviews.list holds one week of reviews: 1,000 is a busy app's week
SAME_TIME = 86400.0  # seconds between the collected time and lastModified still "the same"
KEPT_IDS = 1024
NOT_FOUND = "the review could not be found in the Play Developer API"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_SECONDS = 3600  # Google's longest assertion and token lifetime
RENEW_BEFORE = 60.0  # seconds before its end a token is replaced
DEFAULT_WAIT = 60.0  # a 429 that says nothing of when: Play's quotas are per minute
_PACKAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
_TAGS = re.compile(r"<[^>]*>")
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_AGAIN = "; the retry first reads the review, so the reply is not written twice"


def _service_account(text: str) -> dict[str, str]:
    """The key file's fields this writer uses; ValueError (never quoting the key) otherwise."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("the service account key is not JSON: give the key file's whole "
                         "content (or service_account_file)") from None
    if not isinstance(data, dict):
        raise ValueError("the service account key is not a JSON object")
    fields = {k: data.get(k) for k in ("client_email", "private_key", "private_key_id")}
    if not isinstance(fields["client_email"], str) or "@" not in fields["client_email"]:
        raise ValueError("the service account key has no client_email")
    if not isinstance(fields["private_key"], str) or "PRIVATE KEY-----" not in \
            fields["private_key"]:
        raise ValueError("the service account key has no PEM private_key")
    return {k: v for k, v in fields.items() if isinstance(v, str)}


class GooglePlayAccountConfig(AccountConfig):
    """Keys of a ``type: googleplay`` reply account: one Play developer account's service
    account, answering the reviews of the apps it has "Reply to reviews" for."""

    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["googleplay"] = "googleplay"
    service_account_json: str | None = Field(
        None, repr=False,
        description='the service account\'s JSON key file content, a secret ({"$env": NAME})')
    service_account_file: str | None = Field(
        None, description="instead: the path of the service account's JSON key file")
    base_url: str = Field("https://androidpublisher.googleapis.com",
                          description="the Play Developer API; change only for a proxy or tests")
    token_url: str = Field("https://oauth2.googleapis.com/token",
                           description="Google's OAuth token endpoint (the key's token_uri)")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return https_base_url(value, "base_url")

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        value = value.strip()
        if has_controls(value):
            raise ValueError("token_url must not contain spaces or control characters")
        parts = split_url(value, "token_url")
        if not parts.hostname or parts.username or parts.password or parts.fragment:
            raise ValueError("token_url must be a plain URL such as https://host/token")
        return https_or_local(value, "token_url", parts)

    @field_validator("service_account_json")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None:
            _service_account(value)
        return value

    @model_validator(mode="after")
    def _one_key(self) -> GooglePlayAccountConfig:
        if (self.service_account_json is None) == (self.service_account_file is None):
            raise ValueError("give exactly one of service_account_json and service_account_file")
        return self


class GooglePlayWriter:
    """Writes (or rewrites) the developer reply of a Google Play review."""

    Config: ClassVar[type[AccountConfig]] = GooglePlayAccountConfig
    type: ClassVar[str] = "googleplay"
    max_chars: ClassVar[int] = 350

    def __init__(self, config: GooglePlayAccountConfig, timeout: float) -> None:
        text = config.service_account_json
        if text is None:
            try:
                text = Path(str(config.service_account_file)).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"reply account {config.name}: cannot read "
                                 f"service_account_file: {exc.strerror}") from None
        register_secret(text)
        try:
            key = _service_account(text)
        except ValueError as exc:
            raise ValueError(f"reply account {config.name}: {exc}") from None
        register_secret(key["private_key"])
        self.name = config.name
        self._config = config
        self._timeout = timeout
        self._email = key["client_email"]
        self._key_id = key.get("private_key_id")
        self._sign = _rs256(key["private_key"], config.name)
        self._client = sink_client(
            f"Google Play reply account '{config.name}'", timeout=timeout,
            base_url=config.base_url,
            headers={"Accept": "application/json", "User-Agent": "social-listener"})
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_until = 0.0  # time.monotonic() at which the token is renewed
        self._found: dict[tuple[str, str], str] = {}  # (package, post's id) → the API's id

    def __repr__(self) -> str:
        return f"GooglePlayWriter(name={self.name!r}, account={self._email!r})"

    # -- the protocol ---------------------------------------------------------------------

    def send(self, reply: Outgoing) -> Sent:
        text = self._text(reply)
        package, given = _target(reply)
        review = self._known(package, given)
        response = self._api(reply, "POST", _path(package, review) + ":reply", "post the reply",
                             json={"replyText": text})
        if response.status_code == 404 and review == given:
            found, why = self._look_up(reply, package, given)
            if found is None:
                raise DeliveryError(f"{self._where(reply)}: cannot post the reply: {NOT_FOUND}: "
                                    f"{why}", status=404, retryable=False)
            review = found
            response = self._api(reply, "POST", _path(package, review) + ":reply",
                                 "post the reply", json={"replyText": text})
        if response.status_code != 200:
            raise self._error(reply, response, "post the reply", package, review)
        result = json_object(response).get("result")
        if not isinstance(result, dict):
            raise DeliveryError(f"{self._where(reply)}: HTTP 200 without a result; is base_url "
                                "the Play Developer API?", status=200,
                                body_snippet=response.text[:300], retryable=True)
        log.info("%s: replied to review %s of %s", self._where(reply), review, package)
        return Sent(review, reply.url)

    def find(self, reply: Outgoing) -> Sent | None:
        wanted = _plain(self._text(reply))
        package, given = _target(reply)
        review = self._known(package, given)
        response = self._api(reply, "GET", _path(package, review), "read the review")
        if response.status_code == 404 and review == given:
            found, _ = self._look_up(reply, package, given)
            if found is None:
                return None  # gone or not to be told: sending says so (and parks the reply)
            review = found
            response = self._api(reply, "GET", _path(package, review), "read the review")
        if response.status_code == 404:
            return None  # gone: sending again says so (and parks the reply)
        if response.status_code != 200:
            raise self._error(reply, response, "read the review", package, review)
        comments = json_object(response).get("comments")
        for comment in comments if isinstance(comments, list) else []:
            developer = comment.get("developerComment") if isinstance(comment, dict) else None
            if isinstance(developer, dict) and _plain(str(developer.get("text") or "")) == wanted:
                log.info("%s: review %s already carries this reply (an earlier attempt)",
                         self._where(reply), review)
                return Sent(review, reply.url)
        return None

    def close(self) -> None:
        self._client.close()

    # -- which review ---------------------------------------------------------------------

    def _known(self, package: str, given: str) -> str:
        """The API's id of the post's review when an earlier look-up found it, else the post's."""
        with self._lock:
            return self._found.get((package, given), given)

    def _look_up(self, reply: Outgoing, package: str, given: str) -> tuple[str | None, str]:
        """The API's id of the review the post is (see the module's docstring), or None and
        why not. Kept for the writer's life when found."""
        text, at = reply.post_text, reply.post_created_at
        if not _plain(text):
            return None, (f"the API does not know review {given} (deleted by its author, or "
                          "not the API's id for it) and the post keeps no text to find it by "
                          "(erased by `listener forget`?)")
        author, wanted = _plain(reply.author or ""), _plain(text)
        matches: list[str] = []
        read = pages = 0
        token: str | None = None
        while pages < LIST_PAGES:
            query = {"maxResults": str(LIST_SIZE), **({"token": token} if token else {})}
            path = f"{REVIEWS.format(package=package)}?{urlencode(query)}"
            response = self._api(reply, "GET", path, "list the app's reviews")
            if response.status_code != 200:
                raise self._error(reply, response, "list the app's reviews", package, given)
            document = json_object(response)
            reviews = document.get("reviews", [])
            pages += 1
            for review in reviews if isinstance(reviews, list) else []:
                read += 1
                found = _review_id_if(review, author, wanted, at)
                if found is not None:
                    matches.append(found)
            paging = document.get("tokenPagination")
            token = paging.get("nextPageToken") if isinstance(paging, dict) else None
            if not isinstance(token, str) or not token:
                break
        if len(matches) == 1:
            log.info("%s: review %s of %s is %s in the Play Developer API", self._where(reply),
                     given, package, matches[0])
            with self._lock:
                if len(self._found) >= KEPT_IDS:
                    del self._found[next(iter(self._found))]
                self._found[(package, given)] = matches[0]
            return matches[0], ""
        by = f"by {reply.author!r} " if author else ""
        if matches:
            return None, (f"{len(matches)} reviews {by}with the post's text; answering one "
                          "could answer a stranger: reply from Play Console")
        return None, (f"the API does not know review {given}, and none of the {read} reviews "
                      f"it lists (those with text of the last week only) is the post's {by}"
                      "— older, edited or deleted")

    # -- requests -------------------------------------------------------------------------

    def _api(self, reply: Outgoing, method: str, path: str, action: str,
             **kwargs: Any) -> httpx.Response:
        """One API request with a valid access token; a token refused (401) that was not
        fresh is replaced once."""
        while True:
            token, fresh = self._access_token(reply)
            response = request(
                self._client, method, path, where=self._where(reply), service="Google Play",
                action=action, timeout=self._timeout,
                maybe_done=_AGAIN if method == "POST" else "",
                headers={"Authorization": f"Bearer {token}"}, **kwargs)
            if response.status_code != 401 or fresh:
                return response
            with self._lock:
                if self._token == token:
                    self._token = None

    def _access_token(self, reply: Outgoing) -> tuple[str, bool]:
        """The kept token, or a new one from ``token_url``; and whether it is new."""
        with self._lock:
            if self._token is not None and time.monotonic() < self._token_until:
                return self._token, False
            now = int(time.time())
            claims = {"iss": self._email, "scope": SCOPE, "aud": self._config.token_url,
                      "iat": now, "exp": now + TOKEN_SECONDS}
            header = {"alg": "RS256", "typ": "JWT"}
            if self._key_id:
                header["kid"] = self._key_id
            assertion = compact(header, claims, self._sign)
            register_short_lived_secret(assertion)
            started = time.monotonic()
            response = request(
                self._client, "POST", self._config.token_url, where=self._where(reply),
                service="Google's OAuth endpoint", action="get an access token",
                timeout=self._timeout, data={"grant_type": GRANT, "assertion": assertion})
            answer = json_object(response)
            token = answer.get("access_token")
            if response.status_code != 200 or not isinstance(token, str) or not token:
                raise self._token_error(reply, response, answer)
            register_short_lived_secret(token)
            lifetime = answer.get("expires_in")
            seconds = float(lifetime) if isinstance(lifetime, int | float) else TOKEN_SECONDS
            self._token = token
            self._token_until = started + max(0.0, seconds - RENEW_BEFORE)
            log.debug("%s: new access token for %s", self._where(reply), self._email)
            return token, True

    # -- answers --------------------------------------------------------------------------

    def _token_error(self, reply: Outgoing, response: httpx.Response,
                     answer: dict[str, Any]) -> Exception:
        status, where = response.status_code, self._where(reply)
        code = str(answer.get("error") or "")
        detail = str(answer.get("error_description") or "")
        said = ": ".join(p for p in (code, detail) if p)
        if status == 429:
            wait = _wait(response, {})
            return RateLimited(f"{where}: Google's OAuth endpoint is rate-limiting (HTTP 429); "
                               f"retry in {wait:g}s", wait)
        if status in (400, 401, 403):
            return DeliveryError(
                f"{where}: Google refused the service account key (HTTP {status}"
                f"{': ' + said if said else ''}): the key was deleted or disabled, the JSON is "
                "not this account's, or this machine's clock is off; fix service_account_json",
                status=status, body_snippet=said, retryable=False)
        if status == 200:
            return DeliveryError(f"{where}: the OAuth answer has no access_token; is token_url "
                                 "Google's token endpoint?", status=status, retryable=True)
        mapped = error_for_status(status, said)
        return DeliveryError(f"{where}: HTTP {status} from Google's OAuth endpoint"
                             f"{': ' + said if said else ''}", status=status, body_snippet=said,
                             retryable=mapped.retryable)

    def _error(self, reply: Outgoing, response: httpx.Response, action: str, package: str,
               review: str) -> Exception:
        """Map the API's answer: 429 waits, what retrying cannot fix parks, the rest retries."""
        status, where = response.status_code, f"{self._where(reply)}: cannot {action}"
        error = json_object(response).get("error")
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or "")[:300]
        said = f" ({message})" if message else ""
        if status == 429:
            wait = _wait(response, error)
            return RateLimited(f"{where}: Google Play quota exhausted (HTTP 429){said}; retry in "
                               f"{wait:g}s", wait)
        if status == 401:
            advice = ("Google refused a new access token: check the service account and that "
                      "the Google Play Android Developer API is enabled in its Cloud project")
        elif status == 403 and _lacks_scope(response, error):
            advice = f"the access token lacks the OAuth scope {SCOPE}"
        elif status == 403 and _reason(error) in {"accessNotConfigured", "SERVICE_DISABLED"}:
            advice = ("the Google Play Android Developer API is not enabled in the service "
                      "account's Cloud project")
        elif status == 403:
            advice = (f"the service account {self._email} may not reply to reviews of "
                      f"{package}: in Play Console (Users and permissions) give it the "
                      f"'{PERMISSION}' permission for the app (OAuth scope {SCOPE})")
        elif status == 404:
            advice = (f"review {review} of {package} is gone (deleted by its author) or out of "
                      "the API's reach (only production reviews with text are)")
        elif status in (400, 422):
            advice = "Google Play refused the reply as written"
        else:
            mapped = error_for_status(status, message)
            return DeliveryError(f"{where}: HTTP {status}{said}", status=status,
                                 body_snippet=message, retryable=mapped.retryable)
        return DeliveryError(f"{where}: HTTP {status}{said}: {advice}", status=status,
                             body_snippet=message, retryable=False)

    # -- helpers --------------------------------------------------------------------------

    def _text(self, reply: Outgoing) -> str:
        """The reply as sent; too long is refused, never cut."""
        text = reply.text.strip()
        if not text:
            raise DeliveryError(f"{self._where(reply)}: the reply is empty", retryable=False)
        if len(text) > self.max_chars:
            raise DeliveryError(f"{self._where(reply)}: the reply is {len(text)} characters; "
                                f"Google Play allows {self.max_chars}: shorten it",
                                retryable=False)
        return text

    def _where(self, reply: Outgoing) -> str:
        return f"Google Play account '{self.name}' (reply {reply.reply_id})"


def _target(reply: Outgoing) -> tuple[str, str]:
    """The app's package and the review id, from what the googleplay source stored."""
    package = reply.raw.get("app_id")
    review = reply.platform_id or str(reply.raw.get("reviewId") or "")
    if not isinstance(package, str) or not _PACKAGE.match(package):
        raise DeliveryError(f"the post {review!r} has no app package in raw.app_id (was it "
                            "collected by a googleplay source?)", retryable=False)
    if not review or "/" in review or any(ord(c) < 0x21 for c in review):
        raise DeliveryError(f"the post's review id {review!r} cannot be a Play review id",
                            retryable=False)
    return package, review


def _path(package: str, review: str) -> str:
    """The review's API path; the id is percent-encoded whole (``gp:…`` ids hold a colon, which
    must not read as the ``:reply`` verb)."""
    return REVIEW.format(package=package, review=quote(review, safe=""))


def _plain(text: str) -> str:
    """Text compared as Play keeps it: HTML tags removed, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(_TAGS.sub("", text)).split())


def _review_id_if(review: Any, author: str, text: str, at: datetime | None) -> str | None:
    """The Review resource's id when it is the post's review (author, text, time), else None."""
    if not isinstance(review, dict) or not isinstance(review.get("reviewId"), str):
        return None
    if author and _plain(str(review.get("authorName") or "")) != author:
        return None
    comments = review.get("comments")
    for comment in comments if isinstance(comments, list) else []:
        user = comment.get("userComment") if isinstance(comment, dict) else None
        if not isinstance(user, dict):
            continue
        said = {_plain(str(user.get(k) or "")) for k in ("text", "originalText")}
        if text not in said:
            continue
        modified = user.get("lastModified")
        seconds = modified.get("seconds") if isinstance(modified, dict) else None
        if at is not None and (not isinstance(seconds, str | int) or not str(seconds).isdigit()
                               or abs(int(seconds) - at.timestamp()) > SAME_TIME):
            continue
        return str(review["reviewId"])
    return None


def _reason(error: dict[str, Any]) -> str:
    """The first ``errors[].reason`` or ``details[].reason`` of a Google API error."""
    for key in ("errors", "details"):
        items = error.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("reason"), str):
                return str(item["reason"])
    return ""


def _lacks_scope(response: httpx.Response, error: dict[str, Any]) -> bool:
    challenge = response.headers.get("WWW-Authenticate", "")
    return "insufficient_scope" in challenge or \
        _reason(error) in {"ACCESS_TOKEN_SCOPE_INSUFFICIENT", "insufficientPermissions"} or \
        "insufficient authentication scopes" in str(error.get("message") or "")


def _wait(response: httpx.Response, error: dict[str, Any]) -> float:
    """Seconds to wait after a 429: Retry-After, else RetryInfo's retryDelay, else 60."""
    header = response.headers.get("Retry-After")
    if header is not None:
        return retry_after_seconds(header, DEFAULT_WAIT)
    details = error.get("details")
    for item in details if isinstance(details, list) else []:
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        match = _DELAY.match(delay) if isinstance(delay, str) else None
        if match:
            return max(1.0, float(match.group(1)))
    return DEFAULT_WAIT


def _rs256(pem: str, account: str) -> Callable[[bytes], bytes]:
    """RSASSA-PKCS1-v1_5 with SHA-256 by the key file's private key."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError as exc:
        raise MissingDependency("cryptography", "googleplay") from exc
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError(f"reply account {account}: the service account's private_key cannot "
                         "be read") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"reply account {account}: the service account's private_key is not "
                         "an RSA key")
    rsa_key = key

    def sign(data: bytes) -> bytes:
        return rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    return sign
