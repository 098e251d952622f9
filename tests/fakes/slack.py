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

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_PATH = "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
HANG_UP = 0  # scripted status: close the connection without answering


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer to give: status, plain-text body, extra headers, seconds to wait first."""

    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """What the fake received. ``headers`` keys are lower-case; ``json`` is None if unparsable."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping must not keep the test process alive
    fake: FakeSlackWebhook

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and hung up is expected here; stay quiet about it."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - name required by BaseHTTPRequestHandler
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._answer(self.server.fake._handle("POST", self.path, self.headers, body))

    def do_GET(self) -> None:  # noqa: N802
        self._answer(self.server.fake._handle("GET", self.path, self.headers, b""))

    def _answer(self, scripted: ScriptedResponse) -> None:
        fake = self.server.fake
        if scripted.delay and fake._stopping.wait(scripted.delay):
            return  # the fake is shutting down: drop the answer
        if scripted.status == HANG_UP:
            self.close_connection = True
            return
        payload = scripted.body.encode("utf-8")
        self.send_response(scripted.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        for name, value in scripted.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        """Silence the default stderr access log (it would print the secret webhook path)."""


class FakeSlackWebhook:
    """A scriptable fake incoming webhook; use as a context manager or call start()/stop()."""

    def __init__(self, *, path: str = DEFAULT_PATH, delay: float = 0.0) -> None:
        """``delay``: seconds to hold back every answer that has no delay of its own."""
        self.path = path
        self.delay = delay
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._script: deque[ScriptedResponse] = deque()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeSlackWebhook:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release delayed handlers and close the listening socket."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeSlackWebhook:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Slack webhook is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived (for clients in other threads)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {len(self._requests)}")
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded requests and queued answers."""
        with self._lock:
            self._requests.clear()
            self._script.clear()

    # -- called from handler threads -------------------------------------------------------

    def _handle(self, method: str, path: str, headers: Any, body: bytes) -> ScriptedResponse:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        lowered = {name.lower(): value for name, value in headers.items()}
        with self._arrived:
            self._requests.append(RecordedRequest(method, path, lowered, body, parsed))
            self._arrived.notify_all()
            if method != "POST":
                return ScriptedResponse(405, "invalid_method")
            if path != self.path:
                return ScriptedResponse(404, "no_service")
            scripted = self._script.popleft() if self._script else ScriptedResponse()
        if not scripted.delay and self.delay:
            scripted = ScriptedResponse(
                scripted.status, scripted.body, scripted.headers, self.delay
            )
        return scripted
