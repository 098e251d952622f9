"""Slack destination: post alerts through an incoming webhook (slack_sdk's ``WebhookClient``).

A webhook URL's path *is* the credential, so it never appears in an exception, a log line or a
repr: exceptions name the destination instead, and the client logs through a per-destination
logger whose filter redacts the URL before any handler sees the record.

Retries belong to dispatch (with backoff, Retry-After and a record of every attempt), so the
client gets ``retry_handlers=[]``: one HTTP request per ``send``. Slack has no idempotency key;
a timeout after Slack received the request can still duplicate the alert on retry, and a short
``timeout`` keeps that window small without cutting off a slow but working Slack.
"""

from __future__ import annotations

import http.client
import logging
import re
from typing import Any, ClassVar, Literal
from urllib.error import URLError
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator

from alerts.render import slack_message
from alerts.sinks._http import (
    RedactFilter,
    has_controls,
    https_or_local,
    mask_secrets,
    register_secrets,
    split_url,
)
from alerts.sinks.base import SinkConfig, error_for_status, retry_after_seconds
from listener.errors import DeliveryError, MissingDependency, RateLimited
from listener.models import AlertMessage

REDACTED = "[webhook-url]"

# Slack's webhook error codes that retrying cannot fix, with what the operator should do.
# (docs.slack.dev "Sending messages using incoming webhooks", changelog 2016-05-17.)
_REBUILD = "create a new incoming webhook in the Slack app settings and update webhook_url"
_RENDER_BUG = "listener rendered a message Slack refuses; please report it with the alert id"
PERMANENT_CODES: dict[str, str] = {
    "invalid_payload": _RENDER_BUG,
    "invalid_blocks": _RENDER_BUG,
    "invalid_blocks_format": _RENDER_BUG,
    "msg_blocks_too_long": _RENDER_BUG,
    "too_many_attachments": _RENDER_BUG,
    "missing_text_or_fallback_or_attachments": _RENDER_BUG,
    "user_not_found": f"the webhook's user no longer exists; {_REBUILD}",
    "action_prohibited": (
        "a workspace admin restricts this webhook; ask them, or use another channel"
    ),
    "posting_to_general_channel_denied": (
        "only admins may post in this channel; pick another channel for the webhook"
    ),
    "channel_not_found": f"the webhook's channel was deleted or is no longer reachable; {_REBUILD}",
    "channel_is_archived": f"the webhook's channel is archived; unarchive it, or {_REBUILD}",
    "no_service": f"the webhook was removed or disabled; {_REBUILD}",
    "no_active_hooks": f"the webhook was deactivated; {_REBUILD}",
    "no_team": f"the webhook's workspace no longer exists; {_REBUILD}",
    "invalid_token": (
        "the webhook URL is invalid or was revoked; copy it again from the Slack app settings "
        "into its environment variable"
    ),
    "team_disabled": "the Slack workspace is disabled; nothing will post until it is restored",
}
_CODE = re.compile(r"^[a-z][a-z0-9_]{1,60}$")


class SlackSinkConfig(SinkConfig):
    """An incoming webhook. (A later ``token`` + ``channel`` mode will use chat.postMessage and
    return the message ``ts``; a model validator will then require exactly one of the two.)"""

    # The config loader prints pydantic's messages; never let them echo the secret URL back.
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["slack"] = Field("slack", description="always 'slack'")
    webhook_url: str = Field(
        repr=False,
        description='incoming-webhook URL (a secret: give it as {"$env": NAME}); https only',
    )
    timeout: float = Field(
        10, gt=0, le=120, description="seconds to wait for Slack to connect and to answer"
    )
    min_interval: float = Field(
        1.0, ge=0, description="seconds between two alerts (Slack allows ~1 message/s/channel)"
    )

    @field_validator("webhook_url")
    @classmethod
    def _https_only(cls, url: str) -> str:
        """The URL carries the credential: plain http would send it in clear over the network."""
        url = url.strip()
        if has_controls(url):
            raise ValueError("webhook_url must not contain spaces or control characters")
        parts = split_url(url, "webhook_url")
        if not parts.hostname:
            raise ValueError("webhook_url must be a full URL such as https://hooks.slack.com/…")
        return https_or_local(url, "webhook_url", parts)


class _RedactFilter(RedactFilter):
    """Masks the webhook URL (and its path, the credential) in records of the client logger.

    The library's own error line on a failed request is lowered to DEBUG: we raise a
    DeliveryError that dispatch logs with context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        if record.levelno >= logging.ERROR and record.getMessage().startswith(
            "Failed to send a request"
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    return mask_secrets(text, secrets, REDACTED)


def _secrets_of(url: str) -> tuple[str, ...]:
    """The full URL, then its path+query (what urllib and proxies log), longest first."""
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    candidates = [url, tail, parts.path] if len(parts.path) > 1 else [url]
    return tuple(dict.fromkeys(c for c in candidates if c))


class SlackSink:
    """Posts each alert as Block Kit through an incoming webhook; webhooks return no message id."""

    type: ClassVar[str] = "slack"
    Config: ClassVar[type[SlackSinkConfig]] = SlackSinkConfig

    def __init__(self, config: SlackSinkConfig) -> None:
        try:
            from slack_sdk.webhook import WebhookClient
        except ImportError as exc:  # optional extra
            raise MissingDependency("slack_sdk", "slack") from exc
        self.name = config.name
        self.min_interval = config.min_interval
        self._timeout = config.timeout
        self._host = urlsplit(config.webhook_url).hostname or "?"
        self._secrets = _secrets_of(config.webhook_url)
        register_secrets(self._secrets)  # for the handler-level filter of listener.log as well
        self._logger = logging.getLogger(f"{__name__}.client.{self.name}")
        self._filter = _RedactFilter(self._secrets, REDACTED)
        self._logger.addFilter(self._filter)
        self._client = WebhookClient(
            config.webhook_url, timeout=config.timeout, retry_handlers=[], logger=self._logger
        )

    def __repr__(self) -> str:
        return f"SlackSink(name={self.name!r}, host={self._host!r})"

    def send(self, message: AlertMessage) -> str | None:
        """One POST; returns None on ``200 ok`` or raises RateLimited / DeliveryError."""
        try:
            response = self._client.send_dict(slack_message(message))
        except Exception as exc:
            mapped = self._network_error(exc, message)
            if mapped is exc:
                raise  # not a delivery failure but a bug: keep the original traceback
            # ``from None``: the cause can hold the URL (HTTPError.url, frame locals in reports).
            raise mapped from None
        body = response.body if isinstance(response.body, str) else ""
        if response.status_code == 200 and body.strip() == "ok":
            return None
        raise self._answer_error(response.status_code, body, response.headers, message)

    def close(self) -> None:
        """Detach the redacting filter; the client holds no open connection between sends."""
        self._logger.removeFilter(self._filter)

    def _answer_error(
        self, status: int, body: str, headers: Any, message: AlertMessage
    ) -> RateLimited | DeliveryError:
        """Map Slack's answer to our exceptions: 429 waits, known codes park, 5xx retries."""
        snippet = _redact(body.strip(), self._secrets)[:300]
        where = f"Slack destination '{self.name}' (alert {message.alert_id})"
        if status == 429:
            wait = retry_after_seconds(_header(headers, "Retry-After"))
            return RateLimited(
                f"{where}: rate-limited by Slack (HTTP 429); retry in {wait:g}s", wait
            )
        code = snippet if _CODE.match(snippet) else ""
        retryable = error_for_status(status, snippet).retryable and code not in PERMANENT_CODES
        if 200 <= status < 300:
            retryable, advice = False, "unexpected answer; is webhook_url a Slack incoming webhook?"
        elif 300 <= status < 400:
            advice = "the webhook URL redirects; configure the final https URL"
        elif code in PERMANENT_CODES:
            advice = PERMANENT_CODES[code]
        elif retryable:
            advice = "Slack or the network failed; dispatch will retry"
        else:
            advice = "Slack refused the alert; check the webhook in the Slack app settings"
        label = f"HTTP {status} {code}".rstrip()
        return DeliveryError(
            f"{where}: {label}: {advice}", status=status, body_snippet=snippet, retryable=retryable
        )

    def _network_error(self, exc: Exception, message: AlertMessage) -> Exception:
        """What urllib/http.client raise under WebhookClient, mapped to a retryable DeliveryError.

        ``urlopen`` wraps failures while connecting and sending in ``URLError`` (refused, DNS,
        TLS, connect timeout); a read timeout arrives bare as ``TimeoutError``
        (``socket.timeout``); a dropped connection as ``http.client.HTTPException`` or another
        ``OSError``. Anything else is a bug and is returned unchanged (re-raised as is).
        """
        from slack_sdk.errors import SlackRequestError

        where = f"Slack destination '{self.name}' (alert {message.alert_id})"
        if isinstance(exc, SlackRequestError):  # bad URL or proxy setting: retrying cannot help
            detail = _redact(str(exc), self._secrets)[:200]
            return DeliveryError(
                f"{where}: slack_sdk refused the request: {detail}", retryable=False
            )
        reason: object = exc.reason if isinstance(exc, URLError) else exc
        if isinstance(exc, http.client.InvalidURL):
            return DeliveryError(f"{where}: webhook_url is malformed", retryable=False)
        if isinstance(reason, TimeoutError):
            what = (
                f"no answer within {self._timeout:g}s; Slack may have posted it, "
                "so the retry can show a duplicate"
            )
        elif isinstance(exc, (OSError, http.client.HTTPException)):
            detail = _redact(f"{type(reason).__name__}: {reason}", self._secrets)[:200]
            what = f"could not reach Slack ({detail}); check network, DNS, proxy and TLS"
        else:
            return exc
        return DeliveryError(f"{where}: {what}", retryable=True)


def _header(headers: Any, name: str) -> str | None:
    """Case-insensitive header lookup over whatever mapping the client returned."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return value[0] if isinstance(value, list) and value else value
    return None
