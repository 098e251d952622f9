"""A fake webhook receiver for tests: real HTTP on 127.0.0.1, an ephemeral port.

It behaves like the receiver that alerts/sinks/webhook.py documents, and checks what the sink
sends *independently*: the signature is recomputed here from the raw bytes received, with this
module's own code, so a bug in the sink's signing cannot hide behind a shared helper.

- ``POST <path>``: needs ``X-Listener-Id``, ``X-Listener-Timestamp`` (unix seconds, within
  ``tolerance`` of the receiver's clock) and ``X-Listener-Signature: sha256=<hex>`` (HMAC-SHA256
  with ``secret`` over ``<timestamp>.<raw body>``); a missing, stale or wrong one answers
  ``401 {"error": ...}``. A valid delivery answers ``200 {"id": "evt_N"}``; the same
  ``X-Listener-Id`` again answers the first receipt with ``"duplicate": true`` and is not counted
  again (:attr:`deliveries` holds each alert once).
- any other path: ``404``; any other method: ``405``.

Scripting: :meth:`enqueue` queues an answer (status, body, headers, delay) used once, in order.
``accept=True`` makes the receiver accept the delivery first and then give the scripted answer (a
delay past the client's timeout, or :data:`HANG_UP`): the sender cannot know it arrived.
Every request is recorded with the verification result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_PATH = "/hooks/listener/tok_9f8e7d6c5b4a"
HANG_UP = 0  # scripted status: close the connection without answering


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # JSON-encoded unless a str
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    accept: bool = False  # accept the delivery, then answer this (ambiguous failure)


@dataclass(frozen=True)
class RecordedRequest:
    """What arrived; ``verdict`` is "ok" or why the signature check failed."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    verdict: str


def verify(secret: bytes, headers: dict[str, str], body: bytes, now: float,
           tolerance: float) -> str:
    """The receiver's check, written from the documented scheme: "ok" or the reason it fails."""
    stamp, given = headers.get("x-listener-timestamp"), headers.get("x-listener-signature")
    if not headers.get("x-listener-id") or not stamp or not given:
        return "missing header"
    if not stamp.isdigit():
        return "bad timestamp"
    if abs(now - int(stamp)) > tolerance:
        return "stale timestamp"
    expected = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"sha256={expected}".encode(), given.encode()):
        return "bad signature"
    return "ok"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeWebhookReceiver

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

    def _answer(self, answer: Answer) -> None:
        if answer.delay and self.server.fake._stopping.wait(answer.delay):
            return
        if answer.status == HANG_UP:
            self.close_connection = True
            return
        is_text = isinstance(answer.body, str)
        payload = (answer.body if is_text else json.dumps(answer.body)).encode()
        self.send_response(answer.status)
        kind = "text/plain" if is_text else "application/json"
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default stderr access log (it would print the secret path)."""


class FakeWebhookReceiver:
    """A scriptable receiver; use as a context manager or call start()/stop()."""

    def __init__(self, secret: str = "whsec-test-0123456789abcdef", *, path: str = DEFAULT_PATH,
                 tolerance: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.secret, self.path, self.tolerance, self.clock = secret, path, tolerance, clock
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._script: deque[Answer] = deque()
        self._receipts: dict[str, str] = {}
        self._deliveries: list[Any] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeWebhookReceiver:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeWebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake receiver is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def enqueue(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
                delay: float = 0.0, *, accept: bool = False) -> None:
        with self._lock:
            self._script.append(Answer(status, body, dict(headers or {}), delay, accept))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def deliveries(self) -> list[Any]:
        """The JSON of each accepted alert, once per X-Listener-Id."""
        with self._lock:
            return list(self._deliveries)

    def _handle(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        lowered = {name.lower(): value for name, value in headers.items()}
        verdict = verify(self.secret.encode(), lowered, body, self.clock(), self.tolerance)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        with self._lock:
            self._requests.append(RecordedRequest(method, path, lowered, body, parsed, verdict))
            scripted = self._script.popleft() if self._script else None
            if scripted is not None and not scripted.accept:
                return scripted
            if method != "POST":
                return Answer(405, {"error": "method not allowed"})
            if path != self.path:
                return Answer(404, {"error": "not found"})
            if verdict != "ok":
                return Answer(401, {"error": verdict})
            answer = self._accept(lowered["x-listener-id"], parsed)
        return scripted or answer

    def _accept(self, alert_id: str, parsed: Any) -> Answer:
        if alert_id in self._receipts:
            return Answer(200, {"id": self._receipts[alert_id], "duplicate": True})
        receipt = f"evt_{len(self._receipts) + 1}"
        self._receipts[alert_id] = receipt
        self._deliveries.append(parsed)
        return Answer(200, {"id": receipt})
