"""Replies on Mastodon: a status in reply to the customer's, posted with Mastodon.py.

What it answers. A Mastodon post is stored by its URI (the same status on every instance);
the account's instance has its own local id for it, found with ``GET /api/v2/search`` and
``resolve=true`` (the instance fetches the status if it has not seen it). The reply mentions
the customer (``@user@their.instance``, unless the text already does), so they are notified.

Never twice. ``POST /api/v1/statuses`` carries ``Idempotency-Key: <reply id>``: Mastodon
answers a repeat with the status it already made, for an hour. Past that (a worker down for
longer), :meth:`MastodonWriter.find` reads the account's own recent statuses and recognises
this reply by its parent and its text — so another reply by the same account to the same post
is not mistaken for it.

Scopes: ``write:statuses`` to post, ``read:search`` to resolve the post, ``read:accounts`` and
``read:statuses`` for :meth:`find`. Limits: 500 characters (the instance's default), 300
requests per 5 minutes per account (``X-RateLimit-Reset`` says when it resets).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field

from alerts.replies.base import AccountConfig, Outgoing, Sent
from alerts.sinks.base import error_for_status
from listener.core.errors import DeliveryError, RateLimited
from listener.core.log import register_secret

RECENT = 40  # the account's own statuses find() reads (Mastodon's page maximum)
_TAGS = re.compile(r"<[^>]+>")


class MastodonAccountConfig(AccountConfig):
    """Keys of a ``type: mastodon`` reply account."""

    type: Literal["mastodon"] = "mastodon"
    base_url: str = Field(description="the account's instance, e.g. https://mastodon.social")
    access_token: str = Field(description='the account\'s token ({"$env": NAME}) with scopes '
                              "write:statuses, read:search, read:accounts, read:statuses")
    visibility: Literal["public", "unlisted", "private", "direct"] | None = Field(
        None, description="visibility of replies (default: the account's own default)")


class MastodonWriter:
    Config: ClassVar[type[AccountConfig]] = MastodonAccountConfig
    type: ClassVar[str] = "mastodon"
    max_chars: ClassVar[int] = 500

    def __init__(self, config: MastodonAccountConfig, timeout: float) -> None:
        import mastodon
        import requests

        register_secret(config.access_token)
        self.name = config.name
        self.config = config
        self._m = mastodon
        self._last: tuple[int, dict[str, str]] = (0, {})
        session = requests.Session()
        session.hooks["response"].append(self._remember)
        self._client = mastodon.Mastodon(
            api_base_url=config.base_url, access_token=config.access_token,
            request_timeout=timeout, ratelimit_method="throw", session=session,
            version_check_mode="none")
        self._me: str | None = None

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self._last = (int(response.status_code), dict(response.headers))

    # -- the protocol ---------------------------------------------------------------------

    def send(self, reply: Outgoing) -> Sent:
        text = self._text(reply)
        parent = self._parent(reply)
        status = self._call("post the reply", lambda: self._client.status_post(
            text, in_reply_to_id=parent, idempotency_key=reply.reply_id,
            visibility=self.config.visibility))
        return Sent(str(status["id"]), status.get("url") or status.get("uri"))

    def find(self, reply: Outgoing) -> Sent | None:
        parent = self._parent(reply)
        wanted = _plain_text(self._text(reply))
        me = self._account_id()
        recent = self._call("read the account's statuses", lambda: self._client.account_statuses(
            me, limit=RECENT, exclude_reblogs=True))
        for status in recent or []:
            if (str(status.get("in_reply_to_id")) == parent
                    and _plain_text(_TAGS.sub("", str(status.get("content") or ""))) == wanted):
                return Sent(str(status["id"]), status.get("url") or status.get("uri"))
        return None

    def close(self) -> None:
        self._client.session.close()

    # -- helpers --------------------------------------------------------------------------

    def _text(self, reply: Outgoing) -> str:
        """The reply with the customer mentioned; too long is refused, never cut."""
        handle = self._handle(reply)
        text = reply.text.strip()
        if handle and f"@{handle}".lower() not in text.lower():
            text = f"@{handle} {text}"
        if len(text) > self.max_chars:
            raise DeliveryError(f"the reply is {len(text)} characters with the mention; "
                                f"Mastodon allows {self.max_chars}", retryable=False)
        return text

    def _handle(self, reply: Outgoing) -> str | None:
        """The customer's account as this instance must write it: ``user@host`` unless they
        live on the account's own instance."""
        acct = (reply.author or "").lstrip("@")
        if not acct:
            return None
        if "@" in acct:
            return acct
        home = urlsplit(reply.platform_id).hostname
        mine = urlsplit(self.config.base_url).hostname
        return acct if not home or home == mine else f"{acct}@{home}"

    def _parent(self, reply: Outgoing) -> str:
        """The customer's status's id on this account's instance."""
        found = self._call("find the post", lambda: self._client.search_v2(
            reply.platform_id, resolve=True, result_type="statuses"))
        statuses = (found or {}).get("statuses") or []
        if not statuses:
            raise DeliveryError(f"{self.config.base_url} cannot find the post {reply.platform_id}"
                                " (deleted, or not visible to this account)", retryable=False)
        return str(statuses[0]["id"])

    def _account_id(self) -> str:
        if self._me is None:
            me = self._call("check the account", self._client.account_verify_credentials)
            self._me = str(me["id"])
        return self._me

    def _call(self, what: str, call: Any) -> Any:
        """Mastodon.py's call, its exceptions turned into ours (the answer's status and
        headers read from the last response)."""
        m = self._m
        try:
            return call()
        except m.MastodonNetworkError as exc:
            raise DeliveryError(f"Mastodon {self.name}: cannot {what}: cannot reach "
                                f"{self.config.base_url}", retryable=True) from exc
        except m.MastodonError as exc:
            status, headers = self._last
            raise self._error(what, status, headers, exc) from exc

    def _error(self, what: str, status: int, headers: dict[str, str],
               exc: Exception) -> Exception:
        body = str(exc.args[3]) if len(exc.args) > 3 and exc.args[3] else ""
        where = f"Mastodon {self.name}: cannot {what}"
        if status == 429:
            return RateLimited(f"{where}: rate-limited (HTTP 429)", _reset_wait(headers))
        if status in (401, 403):
            return DeliveryError(f"{where}: HTTP {status}: the token is refused or lacks a scope"
                                 " (write:statuses, read:search, read:accounts, read:statuses)",
                                 status=status, body_snippet=body, retryable=False)
        if status == 422:
            return DeliveryError(f"{where}: HTTP 422: the instance refused the reply ({body})",
                                 status=status, body_snippet=body, retryable=False)
        if status >= 300:
            mapped = error_for_status(status, body)
            return DeliveryError(f"{where}: {mapped}", status=status, body_snippet=body,
                                 retryable=mapped.retryable)
        return DeliveryError(f"{where}: {type(exc).__name__}", retryable=True)


def _reset_wait(headers: dict[str, str]) -> float:
    """Seconds until ``X-RateLimit-Reset`` (an ISO 8601 time); 60 when absent or garbled."""
    value = next((v for k, v in headers.items() if k.lower() == "x-ratelimit-reset"), "")
    try:
        reset = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 60.0
    return max(1.0, (reset - datetime.now(UTC)).total_seconds())


def _plain_text(value: str) -> str:
    """Text compared the way Mastodon renders it back: entities decoded, spaces collapsed."""
    return " ".join(html.unescape(value).split()).casefold()
