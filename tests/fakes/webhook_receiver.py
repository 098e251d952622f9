"""A fake webhook receiver for tests: real HTTP on 127.0.0.1, an ephemeral port.

It behaves like the receiver that alerts/sinks/webhook.py documents, and checks what the sink
sends *independently*: the signature is recomputed here from the raw bytes received, with this
module's own code, so a bug in the sink's signing cannot hide behind a shared helper.

- ``POST <path>``: needs ``X-Listener-Id``, ``X-Listener-Timestamp`` (unix seconds, within
  ``tolerance`` of the receiver's clock) and ``X-Listener-Signature: sha256=<hex>`` (HMAC-SHA256
  with ``secret`` over ``<timestamp>.<raw body>``); a missing, stale or wrong one answers
  ``401 {"error": ...}``. A valid delivery answers ``200 {"id": "evt_N"}``; the same
  ``X-Listener-Id`` again answers the first receipt with ``"duplicate": true`` and is not counted
  again (:attr:`deliveries` holds each alert once; :attr:`arrivals` every valid delivery).
- any other path: ``404``; any other method: ``405``.

Scripting: :meth:`enqueue` queues an answer (status, body, headers, delay) used once, in order.
``accept=True`` makes the receiver accept the delivery first and then give the scripted answer (a
delay past the client's timeout, or :data:`HANG_UP`): the sender cannot know it arrived.
Every request is recorded with the verification result.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.base import HANG_UP, FakeHTTPServer, RecordedRequest, ScriptedResponse

__all__ = ["DEFAULT_PATH", "HANG_UP", "Answer", "FakeWebhookReceiver", "SignedRequest", "verify"]

DEFAULT_PATH = "/hooks/listener/tok_9f8e7d6c5b4a"


@dataclass(frozen=True)
class Answer(ScriptedResponse):
    body: Any = None  # JSON-encoded unless a str
    accept: bool = False  # accept the delivery, then answer this (ambiguous failure)


@dataclass(frozen=True)
class SignedRequest(RecordedRequest):
    """What arrived, and ``verdict``: "ok" or why the signature check failed."""

    verdict: str = ""


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


class FakeWebhookReceiver(FakeHTTPServer):
    """A scriptable receiver; use as a context manager or call start()/stop()."""

    name = "fake receiver"
    text_type = "text/plain; charset=utf-8"  # a str body is plain text, anything else JSON

    def __init__(self, secret: str = "whsec-test-0123456789abcdef", *, path: str = DEFAULT_PATH,
                 tolerance: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.secret, self.path, self.tolerance, self.clock = secret, path, tolerance, clock
        self._receipts: dict[str, str] = {}
        self._deliveries: list[Any] = []
        self._arrivals: list[str] = []
        self._first_arrived: dict[str, float] = {}

    @property
    def first_arrived(self) -> dict[str, float]:
        """When each alert first arrived (``clock()``): how late a destination was served."""
        with self._lock:
            return dict(self._first_arrived)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def enqueue(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
                delay: float = 0.0, *, accept: bool = False) -> None:
        with self._lock:
            self._script.append(Answer(status, body, dict(headers or {}), delay, accept))

    @property
    def deliveries(self) -> list[Any]:
        """The JSON of each accepted alert, once per X-Listener-Id."""
        with self._lock:
            return list(self._deliveries)

    @property
    def arrivals(self) -> list[str]:
        """The X-Listener-Id of every valid delivery, repeats included (what a receiver that
        does not dedupe would act on)."""
        with self._lock:
            return list(self._arrivals)

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        lowered = headers
        verdict = verify(self.secret.encode(), lowered, body, self.clock(), self.tolerance)
        request = SignedRequest(method, path, query, lowered, body, verdict=verdict)
        path, parsed = request.target, request.json  # the target is matched as sent
        with self._lock:
            self._record(request)
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
        self._arrivals.append(alert_id)
        self._first_arrived.setdefault(alert_id, self.clock())
        if alert_id in self._receipts:
            return Answer(200, {"id": self._receipts[alert_id], "duplicate": True})
        receipt = f"evt_{len(self._receipts) + 1}"
        self._receipts[alert_id] = receipt
        self._deliveries.append(parsed)
        return Answer(200, {"id": receipt})
