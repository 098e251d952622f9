"""Discord destination: a channel's webhook, one message (one embed) per alert or report (httpx).

The request. ``POST <webhook_url>?wait=true`` with the JSON of :mod:`alerts.render.discord`:
``{"embeds": [...], "allowed_mentions": {"parse": []}, "username": ...}``. ``wait=true`` makes
Discord answer with the created message, whose ``id`` is returned as the remote id. Every
message carries ``allowed_mentions: {"parse": []}``: whatever a post says, nobody is pinged
(no @everyone, @here, role or user), and the renderer escapes its Markdown besides.

Answers. 2xx with a message id: delivered. 429: :class:`RateLimited` for the ``retry_after``
seconds of Discord's JSON body (else ``Retry-After`` / ``X-RateLimit-Reset-After``), rounded up
to a whole second; dispatch holds the whole destination that long. 400 (a message Discord refuses), 401/403 (a wrong
token), 404 (code 10015, *Unknown Webhook*: deleted, or a wrong URL): permanent, parked with
Discord's own message. 5xx, network errors and timeouts: retried with backoff. Discord has no
idempotency key for webhooks: an answer lost after Discord posted the message means one
duplicate on the retry (as with Slack's incoming webhooks).

Secrets. The URL's last segment *is* the credential (``/api/webhooks/<id>/<token>``): the URL
is registered with :mod:`listener.core.log`'s redaction, masked in httpx's own log records by a
filter on its logger, and never part of an exception: errors name the destination instead.
Every answer is read through the shared capped client (:func:`alerts.sinks._http.sink_client`,
``SINK_MAX_BYTES``); redirects are never followed. ``webhook_url`` must be https on
``discord.com`` / ``discordapp.com`` (and their ``ptb.``/``canary.`` hosts); only tests may
point it at plain http on 127.0.0.1/localhost (a fake server).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, ClassVar, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator

from alerts.render.common import strip_controls
from alerts.render.discord import discord_payload
from alerts.sinks._http import (
    LOCAL_HOSTS,
    RedactFilter,
    has_controls,
    json_object,
    mask_secrets,
    register_secrets,
    request,
    sink_client,
    split_url,
)
from alerts.sinks.base import SinkConfig, error_for_status, retry_after_seconds
from listener.core.errors import DeliveryError, RateLimited
from listener.core.models import AlertMessage, ReportMessage

__all__ = ["DiscordSink", "DiscordSinkConfig"]

DISCORD_HOSTS = frozenset({"discord.com", "discordapp.com", "ptb.discord.com",
                           "canary.discord.com", "ptb.discordapp.com", "canary.discordapp.com"})
REDACTED = "[discord-webhook]"
DEFAULT_WAIT = 5.0  # seconds, when a 429 says nothing usable
UNKNOWN_WEBHOOK = 10015
PERMANENT = frozenset({400, 401, 403, 404, 410})
_WEBHOOK_PATH = re.compile(r"^/api(?:/v\d+)?/webhooks/\d+/[A-Za-z0-9_-]+/?$")
_ADVICE = {
    400: "Discord refused the message (a renderer bug: please report it with this error)",
    401: "the webhook token is wrong; copy the webhook URL again from the channel's settings",
    403: "the webhook may not post here; check the channel's permissions",
    404: "no such webhook (deleted, or a wrong URL); create one and fix webhook_url",
    410: "the webhook is gone; create one and fix webhook_url",
}
_MAYBE_TWICE = ("; Discord may have posted it, so the retry can show a duplicate")


class DiscordSinkConfig(SinkConfig):
    """Posts to one Discord channel through its webhook."""

    # The config loader prints pydantic's messages; never let them echo the URL back.
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["discord"] = Field("discord", description="always 'discord'")
    webhook_url: str = Field(
        repr=False,
        description='the channel webhook URL https://discord.com/api/webhooks/<id>/<token> '
        '(a secret: give it as {"$env": NAME})',
    )
    username: str | None = Field(
        None, description="name the messages are posted under (default: the webhook's own)"
    )
    timeout: float = Field(10, gt=0, le=120, description="seconds to connect and to answer")
    min_interval: float = Field(
        2.0, ge=0, description="seconds between two messages (Discord allows ~30/min/channel)"
    )

    @field_validator("webhook_url")
    @classmethod
    def _discord_url(cls, url: str) -> str:
        """https on a Discord host with a webhook path; plain http only to a local fake.
        Messages name the key and the host, never the URL (its path is the credential)."""
        url = url.strip()
        if has_controls(url):
            raise ValueError("webhook_url must not contain spaces or control characters")
        parts = split_url(url, "webhook_url")
        host = (parts.hostname or "").lower()
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("webhook_url must be the plain webhook URL (no user, query or #)")
        if host in LOCAL_HOSTS and parts.scheme in ("http", "https"):
            return url  # tests: a fake Discord on this machine
        if parts.scheme != "https":
            raise ValueError(f"webhook_url must use https (got '{parts.scheme}://')")
        if host not in DISCORD_HOSTS:
            raise ValueError(f"webhook_url must be a Discord webhook (discord.com), not '{host}'")
        if not _WEBHOOK_PATH.match(parts.path):
            raise ValueError("webhook_url must look like https://discord.com/api/webhooks/<id>/"
                             "<token>")
        return url

    @field_validator("username")
    @classmethod
    def _username(cls, name: str | None) -> str | None:
        """Discord's rules for a webhook's name: 1-80 characters, no 'discord' or 'clyde'."""
        if name is None:
            return None
        name = name.strip()
        if not 1 <= len(name) <= 80 or has_controls(name.replace(" ", "")):
            raise ValueError("username must be 1-80 characters, no control characters")
        if any(word in name.lower() for word in ("discord", "clyde")):
            raise ValueError("username must not contain 'discord' or 'clyde' (Discord refuses it)")
        return name


def _secrets_of(url: str) -> tuple[str, ...]:
    """The URL, its path and its token (the last segment), longest first."""
    parts = httpx.URL(url)
    path = parts.path.rstrip("/")
    token = path.rsplit("/", 1)[-1]
    candidates = (url, url.rstrip("/"), path, token)
    return tuple(c for c in sorted(dict.fromkeys(candidates), key=len, reverse=True)
                 if len(c) > 3)


class DiscordSink:
    """One webhook message per alert or report; returns Discord's message id."""

    # Config first: below ``type`` the name means this ClassVar, not the builtin.
    Config: ClassVar[type[DiscordSinkConfig]] = DiscordSinkConfig
    type: ClassVar[str] = "discord"

    def __init__(self, config: DiscordSinkConfig) -> None:
        self.name = config.name
        self.min_interval = config.min_interval
        self._config = config
        self._host = httpx.URL(config.webhook_url).host or "?"
        self._secrets = _secrets_of(config.webhook_url)
        register_secrets(self._secrets)  # the handler-level filter of listener.core.log
        # httpx logs each request's URL on its own logger: masked before any handler sees it.
        self._filter = RedactFilter(self._secrets, REDACTED)
        logging.getLogger("httpx").addFilter(self._filter)
        self._client = sink_client(
            f"Discord destination '{config.name}'", timeout=config.timeout,
            headers={"User-Agent": "social-listener (discord)"},
        )

    def __repr__(self) -> str:
        return f"DiscordSink(name={self.name!r}, host={self._host!r})"

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """One POST; the created message's id, else RateLimited / DeliveryError."""
        where = self._where(message)
        response = request(
            self._client, "POST", self._config.webhook_url, where=where, service="Discord",
            action="the webhook", timeout=self._config.timeout, maybe_done=_MAYBE_TWICE,
            params={"wait": "true"}, json=discord_payload(message, self._config.username),
        )
        status = response.status_code
        if status == 204:  # delivered, without the message (a proxy that drops ?wait=true)
            return None
        if 200 <= status < 300:
            message_id = json_object(response).get("id")
            if isinstance(message_id, str | int) and not isinstance(message_id, bool):
                return strip_controls(str(message_id))[:100] or None
            raise DeliveryError(
                f"{where}: HTTP {status} without a message id; is webhook_url a Discord "
                "webhook?", status=status, retryable=True,
                body_snippet=self._said(response),
            )
        raise self._answer_error(response, where)

    def check(self) -> str:
        """``listener doctor``: GET the webhook (its name and channel); nothing is posted."""
        where = f"Discord destination '{self.name}'"
        response = request(self._client, "GET", self._config.webhook_url, where=where,
                           service="Discord", action="the webhook",
                           timeout=self._config.timeout)
        if response.status_code != 200:
            raise self._answer_error(response, where)
        body = json_object(response)
        name = strip_controls(str(body.get("name") or "?"))[:80]
        channel = strip_controls(str(body.get("channel_id") or "?"))[:30]
        return f"webhook '{name}' on {self._host} posts to channel {channel}"

    def close(self) -> None:
        logging.getLogger("httpx").removeFilter(self._filter)
        self._client.close()

    def _answer_error(self, response: httpx.Response, where: str) -> Exception:
        """429 waits; permanent 4xx park with Discord's message; anything else retries."""
        status = response.status_code
        body = json_object(response)
        if status == 429 or (status == 503 and "retry-after" in response.headers):
            wait = _retry_after(body, response.headers)
            scope = " (global)" if body.get("global") is True else ""
            return RateLimited(f"{where}: rate-limited by Discord{scope} (HTTP {status}); "
                               f"retry in {wait:g}s", wait)
        said = self._said(response)
        retryable = error_for_status(status, said, permanent=PERMANENT).retryable
        if 300 <= status < 400:
            advice = "Discord redirected (not followed); check webhook_url"
        elif retryable:
            advice = "Discord or the network failed; dispatch will retry"
        elif status == 404 and body.get("code") == UNKNOWN_WEBHOOK:
            advice = "unknown webhook (deleted, or a wrong URL); create one and fix webhook_url"
        else:
            advice = _ADVICE.get(status, "Discord refused the message; see its answer")
        detail = f": {said}" if said else ""
        return DeliveryError(f"{where}: HTTP {status}{detail} — {advice}", status=status,
                             body_snippet=said, retryable=retryable)

    def _said(self, response: httpx.Response) -> str:
        """Discord's ``message`` and ``code`` (else the start of the body), one clean line with
        the webhook URL masked."""
        body = json_object(response)
        message, code = body.get("message"), body.get("code")
        if isinstance(message, str):
            text = f"{message} (code {code})" if isinstance(code, int) else message
        else:
            text = response.content[:300].decode("utf-8", "replace")
        text = strip_controls(" ".join(text.split()))[:300]
        return mask_secrets(text, self._secrets, REDACTED)

    def _where(self, message: AlertMessage | ReportMessage) -> str:
        return f"Discord destination '{self.name}' (alert {message.alert_id})"


def _retry_after(body: dict[str, Any], headers: httpx.Headers) -> float:
    """Discord's JSON ``retry_after`` (seconds, a float), else its headers, else a default;
    rounded up to a whole second: dispatch keeps the time it may retry to the second, and a
    wait cut short is one more 429."""
    stated = body.get("retry_after")
    if isinstance(stated, int | float) and not isinstance(stated, bool) and stated >= 0:
        return float(math.ceil(stated))
    for header in ("retry-after", "x-ratelimit-reset-after"):
        if header in headers:
            return float(math.ceil(retry_after_seconds(headers[header], DEFAULT_WAIT)))
    return DEFAULT_WAIT
