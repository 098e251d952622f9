"""A fake Slack incoming-webhook server for tests: real HTTP on 127.0.0.1, an ephemeral port.

Tests point the real ``slack_sdk`` client at it (``FakeSlackWebhook.url``), so everything below
our sink (urllib, sockets, timeouts) is exercised for real, and nothing of ours is mocked::

    with FakeSlackWebhook() as slack:
        slack.enqueue(429, "rate_limited", headers={"Retry-After": "7"})
        sink = SlackSink(SlackSinkConfig(name="t", webhook_url=slack.url))
        ...
        assert slack.requests[0].json["blocks"]

Behaviour, like Slack's (docs.slack.dev, "Sending messages using incoming webhooks"):
- ``POST`` to the webhook path answers ``200`` with the plain-text body ``ok``, unless a scripted
  response is queued (:meth:`FakeSlackWebhook.enqueue`), which is used once, in order;
- ``POST`` to any other path answers ``404 no_service`` (a revoked or mistyped webhook);
- other methods answer ``405``;
- a scripted status of ``0`` (:data:`HANG_UP`) closes the connection without any answer, as when
  Slack (or a proxy) drops it mid-request: the client cannot know whether the post happened.
Every request is recorded (:class:`RecordedRequest`), including ones the fake refused.
A ``delay`` holds the answer back to make clients time out; :meth:`stop` interrupts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes.base import HANG_UP, FakeHTTPServer, parse_json
from tests.fakes.base import ScriptedResponse as BaseScriptedResponse

__all__ = ["DEFAULT_PATH", "HANG_UP", "FakeSlackWebhook", "RecordedRequest", "ScriptedResponse"]

DEFAULT_PATH = "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass(frozen=True)
class ScriptedResponse(BaseScriptedResponse):
    """One answer to give: status, plain-text body, extra headers, seconds to wait first."""

    body: str = "ok"


@dataclass(frozen=True)
class RecordedRequest:
    """What the fake received. ``headers`` keys are lower-case; ``json`` is None if unparsable."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


class FakeSlackWebhook(FakeHTTPServer):
    """A scriptable fake incoming webhook; use as a context manager or call start()/stop()."""

    name = "fake Slack webhook"
    content_type = "text/plain; charset=utf-8"

    def __init__(self, *, path: str = DEFAULT_PATH, delay: float = 0.0) -> None:
        """``delay``: seconds to hold back every answer that has no delay of its own."""
        super().__init__()
        self.path = path
        self.delay = delay

    @property
    def url(self) -> str:
        """The webhook URL to configure, e.g. ``http://127.0.0.1:PORT/services/T000/B000/XXX``."""
        return self.base_url + self.path

    # -- scripting and inspection ----------------------------------------------------------

    def enqueue(
        self,
        status: int = 200,
        body: str = "ok",
        headers: dict[str, str] | None = None,
        delay: float | None = None,
    ) -> None:
        """Queue the answer for the next unanswered webhook request (FIFO; then 200 ``ok``)."""
        response = ScriptedResponse(status, body, dict(headers or {}), delay or 0.0)
        with self._lock:
            self._script.append(response)

    # -- called from handler threads -------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        target = f"{path}?{query}" if query else path  # recorded and matched as sent
        with self._lock:
            self._record(RecordedRequest(method, target, headers, body, parse_json(body)))
            if method != "POST":
                return ScriptedResponse(405, "invalid_method")
            if target != self.path:
                return ScriptedResponse(404, "no_service")
            scripted = self._script.popleft() if self._script else ScriptedResponse()
        if not scripted.delay and self.delay:
            scripted = ScriptedResponse(
                scripted.status, scripted.body, scripted.headers, self.delay
            )
        return scripted
