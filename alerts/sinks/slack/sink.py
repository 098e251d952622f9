"""Slack destination: an incoming webhook, or a bot token with chat.postMessage (``slack_bot``).

Two modes, exactly one per destination (the config insists):

- ``webhook_url``: one POST per alert through slack_sdk's ``WebhookClient``. Webhooks return no
  message id, cannot thread and cannot be searched, and Slack has no idempotency key: if the
  process dies, or the answer is lost, after Slack accepted a message but before dispatch records
  it, that message is posted again on the retry. A short ``timeout`` keeps that window small
  without cutting off a slow but working Slack. A report's chart cannot be attached, and an
  incident's update (``reply_to`` set) cannot go into its first message's thread: it is posted
  as a message of its own, whose title says it is an update.
- ``token`` + ``channel``: :class:`alerts.sinks.slack.bot.SlackBot` posts through
  ``chat.postMessage``, returns the message ``ts``, threads follow-ups of a conversation, uploads
  report charts and, on a retry, looks for the earlier message by its metadata before posting
  again (see that module for the window that remains).

Secrets: a webhook URL's path *is* the credential, and the bot token is one. Neither appears in
an exception, a log line or a repr: exceptions name the destination instead, and the client
logs through a per-destination logger whose filter masks the secret before any handler sees it.
Retries belong to dispatch (backoff, Retry-After, a record of every attempt), so the clients get
``retry_handlers=[]``: one HTTP request per call. Both clients read at most ``SINK_MAX_BYTES`` of
any answer, like every other HTTP sink (:mod:`alerts.sinks.slack.transport`): a larger one fails the
attempt with a retryable error.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar
from urllib.parse import urlsplit

from alerts.render.slack import CHART_NOT_ATTACHED, slack_payload
from alerts.sinks._http import (
    RedactFilter,
    register_secrets,
)
from alerts.sinks.slack.bot import SlackBot
from alerts.sinks.slack.config import SlackSinkConfig
from alerts.sinks.slack.errors import network_error, webhook_error
from listener.core.errors import MissingDependency
from listener.core.models import AlertMessage, ReportMessage

_MAYBE_TWICE = "; Slack may have posted it, so the retry can show a duplicate"
_QUIET = ("Failed to send a request", "Failed to decode Slack API response")


class _RedactFilter(RedactFilter):
    """Masks the secret in records of the client logger.

    The library's own error lines on a failed request are lowered to DEBUG: we raise an error
    that dispatch logs with context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        if record.levelno >= logging.ERROR and record.getMessage().startswith(_QUIET):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _secrets_of(url: str) -> tuple[str, ...]:
    """The full URL, then its path+query (what urllib and proxies log), longest first."""
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    candidates = [url, tail, parts.path] if len(parts.path) > 1 else [url]
    return tuple(dict.fromkeys(c for c in candidates if c))


class SlackSink:
    """Posts each alert or report as Block Kit, through a webhook or with a bot token."""

    # Config first: below ``type`` the name means this ClassVar, not the builtin.
    Config: ClassVar[type[SlackSinkConfig]] = SlackSinkConfig
    type: ClassVar[str] = "slack"

    def __init__(self, config: SlackSinkConfig) -> None:
        try:
            from alerts.sinks.slack.transport import webhook_client
        except ImportError as exc:  # optional extra
            raise MissingDependency("slack_sdk", "slack") from exc
        self.name = config.name
        self.min_interval = config.min_interval
        self._timeout = config.timeout
        self._secrets: tuple[str, ...]
        if config.token is not None:
            url, self._secrets, mask = config.base_url, (config.token,), "[slack-token]"
        else:
            url = config.webhook_url or ""
            self._secrets, mask = _secrets_of(url), "[webhook-url]"
        self._host = urlsplit(url).hostname or "?"
        register_secrets(self._secrets)  # for the handler-level filter of listener.core.log as well
        self._logger = logging.getLogger(f"{__name__}.client.{self.name}")
        self._filter = _RedactFilter(self._secrets, mask)
        self._logger.addFilter(self._filter)
        self._bot: SlackBot | None = None
        self._webhook: Any = None
        if config.token is not None:
            self._bot = SlackBot(config, self._logger)
        else:
            self._webhook = webhook_client(
                f"Slack destination '{self.name}'", url, timeout=config.timeout,
                retry_handlers=[], logger=self._logger,
            )

    def __repr__(self) -> str:
        mode = f"channel={self._bot.channel!r}" if self._bot else "mode='webhook'"
        return f"SlackSink(name={self.name!r}, host={self._host!r}, {mode})"

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """Bot token: the message ``ts``. Webhook: None on ``200 ok``. Else RateLimited or
        DeliveryError."""
        if self._bot is not None:
            return self._bot.send(message)
        self._send_webhook(message)
        return None

    def check(self) -> str | None:
        """``listener doctor``: a bot token is verified without posting; a webhook cannot be."""
        return self._bot.check() if self._bot is not None else None

    def close(self) -> None:
        """Detach the redacting filter; the clients hold no open connection between sends."""
        self._logger.removeFilter(self._filter)

    def _send_webhook(self, message: AlertMessage | ReportMessage) -> None:
        """One POST. A failure is raised outside the ``except`` block, so it carries neither
        cause nor context: those can hold the URL (HTTPError.url, frames)."""
        where = f"Slack destination '{self.name}' (alert {message.alert_id})"
        failure: Exception | None = None
        try:
            response = self._webhook.send_dict(slack_payload(message, CHART_NOT_ATTACHED))
        except Exception as exc:
            failure = network_error(exc, where, self._timeout, self._secrets, _MAYBE_TWICE)
            if failure is exc:
                raise  # not a delivery failure but a bug: keep the original traceback
        if failure is not None:
            raise failure
        body = response.body if isinstance(response.body, str) else ""
        if response.status_code == 200 and body.strip() == "ok":
            return None
        raise webhook_error(where, response.status_code, body, response.headers, self._secrets)

