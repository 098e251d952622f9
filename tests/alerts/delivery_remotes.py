"""Each sink type of the delivery fault matrix with its fake remote: settings and counting.

:func:`remote` starts the fake for one sink type and yields a :class:`Remote`: the destination
settings that point the real sink at it (the same keys a config file holds, secrets included),
and what the remote shows afterwards, counted per alert id. Both the in-process matrix
(``tests/alerts/delivery_matrix.py``) and the crash runs (``tests/alerts/delivery_crash.py``)
build their sinks from these settings, so both test the configuration users write.

What counts as one remote object, per type: a Slack message the channel shows (webhook: a
request the fake answered, or was going to answer, ``200 ok``; bot: a stored message, found by
its metadata), a Zendesk ticket (by ``external_id``), a Jira issue (by its ``listener-<id>``
label), a GitHub issue (by the marker its body ends with), an e-mail the SMTP server accepted
(by ``X-Listener-Alert-Id``), and for the webhook every valid delivery the receiver took
(``raw``; the receiver itself dedupes by ``X-Listener-Id``, so it acts on each id once).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alerts.render.jira import LABEL_PREFIX
from tests.fakes.discord import FakeDiscordWebhook
from tests.fakes.github_api import FakeGitHub
from tests.fakes.jira_api import CREATE_PATH, FakeJira
from tests.fakes.slack import BOT_TOKEN, CHANNEL_ID, FakeSlackAPI, FakeSlackWebhook, api_path
from tests.fakes.smtp_server import FakeSMTPServer
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.fakes.zendesk_api import TICKETS, FakeZendesk

SINKS = ("slack-webhook", "slack-bot", "zendesk", "jira", "github", "webhook", "email")
DEDUPED = frozenset({"slack-bot", "zendesk", "jira", "github", "webhook"})
"""Types whose retries cannot duplicate: the remote (or, for the webhook, the receiver) knows
the alert id. Slack webhooks and e-mail may duplicate on an answer lost after the remote acted."""

_SLACK_ALERT = re.compile(r"alert `([0-9a-f]+)`")
_DISCORD_ALERT = re.compile(r"alert ([0-9a-f]+)")
_GITHUB_MARKER = re.compile(r"<!-- listener:([A-Za-z0-9_-]+) -->\s*$")


@dataclass
class Remote:
    """A started fake, the settings of a destination that uses it, and its counters."""

    fake: Any
    settings: dict[str, Any]
    secrets: tuple[str, ...]  # keys of ``settings`` that a config file takes from the environment
    objects: Callable[[], Counter[str]]  # what the remote acted on, per alert id, repeats included
    creates: Callable[[str, str], bool]  # HTTP (method, path): does it create an object?
    busy: Any = ""  # the platform's body for a 429
    deduped: Callable[[], Counter[str]] | None = None  # what the receiver acts on (webhook)

    def effective(self) -> Counter[str]:
        """Objects per alert id as the remote's users see them (a deduping receiver: once)."""
        return self.deduped() if self.deduped is not None else self.objects()


@contextmanager
def remote(kind: str, *, timeout: float) -> Iterator[Remote]:
    """The fake for ``kind`` (one of :data:`SINKS`), started, with ``timeout`` in the settings."""
    fake, made = _BUILDERS[kind]()
    made.settings.update(type=made.settings.get("type", kind), name=kind, timeout=timeout)
    try:
        yield made
    finally:
        fake.stop()


def _slack_webhook() -> tuple[Any, Remote]:
    fake = FakeSlackWebhook().start()

    def objects() -> Counter[str]:
        found = (_SLACK_ALERT.search(json.dumps(p)) for p in fake.posted)
        return Counter(m.group(1) for m in found if m)

    return fake, Remote(fake, {"type": "slack", "webhook_url": fake.url}, ("webhook_url",),
                        objects, lambda method, path: method == "POST", busy="rate_limited")


def _slack_bot() -> tuple[Any, Remote]:
    fake = FakeSlackAPI().start()

    def objects() -> Counter[str]:
        metadata = (m.get("metadata") or {} for m in list(fake.messages))
        return Counter(m["event_payload"]["alert_id"] for m in metadata if m)

    settings = {"type": "slack", "token": BOT_TOKEN, "channel": CHANNEL_ID,
                "base_url": fake.api_url}
    return fake, Remote(fake, settings, ("token",), objects,
                        lambda method, path: path == api_path("chat.postMessage"),
                        busy={"ok": False, "error": "ratelimited"})


def _zendesk() -> tuple[Any, Remote]:
    fake = FakeZendesk().start()
    settings = {"base_url": fake.base_url, "email": fake.email, "api_token": fake.token}
    return fake, Remote(fake, settings, ("api_token",),
                        lambda: Counter(t["external_id"] for t in fake.tickets),
                        lambda method, path: method == "POST" and path == TICKETS,
                        busy={"error": "APIRateLimitExceeded"})


def _jira() -> tuple[Any, Remote]:
    fake = FakeJira().start()

    def objects() -> Counter[str]:
        labels = (label for issue in list(fake.issues) for label in issue["fields"]["labels"])
        return Counter(label.removeprefix(LABEL_PREFIX) for label in labels
                       if label.startswith(LABEL_PREFIX))

    settings = {"base_url": fake.base_url, "email": fake.email, "api_token": fake.token,
                "project_key": "SUP"}
    return fake, Remote(fake, settings, ("api_token",), objects,
                        lambda method, path: method == "POST" and path == CREATE_PATH,
                        busy={"errorMessages": ["Rate limit exceeded."], "errors": {}})


def _github() -> tuple[Any, Remote]:
    fake = FakeGitHub().start()

    def objects() -> Counter[str]:
        found = (_GITHUB_MARKER.search(i.get("body") or "") for i in list(fake.issues))
        return Counter(m.group(1) for m in found if m)

    settings = {"base_url": fake.base_url, "token": fake.token, "owner": "acme",
                "repo": "support"}
    return fake, Remote(fake, settings, ("token",), objects,
                        lambda method, path: method == "POST" and path.endswith("/issues"),
                        busy={"message": "You have exceeded a secondary rate limit."})


def _webhook() -> tuple[Any, Remote]:
    fake = FakeWebhookReceiver().start()
    settings = {"url": fake.url, "secret": fake.secret, "allow_insecure_http": True,
                "allow_private_network": True}
    return fake, Remote(fake, settings, ("url", "secret"), lambda: Counter(fake.arrivals),
                        lambda method, path: method == "POST",
                        deduped=lambda: Counter(set(fake.arrivals)))


def _discord() -> tuple[Any, Remote]:
    """Not in :data:`SINKS` (the matrix and crash runs): only the fault suite uses it so far."""
    fake = FakeDiscordWebhook().start()

    def objects() -> Counter[str]:
        found = (_DISCORD_ALERT.search(e.get("footer", {}).get("text", ""))
                 for m in fake.messages for e in m.get("embeds", []))
        return Counter(m.group(1) for m in found if m)

    return fake, Remote(fake, {"webhook_url": fake.url, "min_interval": 0}, ("webhook_url",),
                        objects, lambda method, path: method == "POST",
                        busy={"message": "You are being rate limited.", "retry_after": 1.0})


def _email() -> tuple[Any, Remote]:
    fake = FakeSMTPServer(mode="plain").start()

    def objects() -> Counter[str]:
        return Counter(str(m.message["X-Listener-Alert-Id"]) for m in fake.messages)

    settings = {"host": "127.0.0.1", "port": fake.port, "security": "none",
                "from_address": "listener@acme.example", "to": ["support@acme.example"]}
    return fake, Remote(fake, settings, (), objects, lambda method, path: True)


_BUILDERS: dict[str, Callable[[], tuple[Any, Remote]]] = {
    "slack-webhook": _slack_webhook, "slack-bot": _slack_bot, "zendesk": _zendesk,
    "jira": _jira, "github": _github, "webhook": _webhook, "email": _email,
    "discord": _discord,
}
