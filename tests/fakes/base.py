"""The shared skeleton of the fake HTTP servers in ``tests/fakes``.

Every fake is a real HTTP server on ``127.0.0.1`` with an ephemeral port, so the code under test
runs its real client (httpx, urllib, slack_sdk) and only the far end is fake. What they all need
lives here, once:

- a :class:`~http.server.ThreadingHTTPServer` served from a daemon thread, with
  :meth:`FakeHTTPServer.start`/:meth:`~FakeHTTPServer.stop` and use as a context manager;
- :attr:`~FakeHTTPServer.port` and :attr:`~FakeHTTPServer.base_url`;
- a handler that reads the body, hands the request to :meth:`FakeHTTPServer.handle` and writes
  the answer back, staying quiet (no access log, no traceback for clients that hung up);
- a lock, a FIFO of scripted answers (``_script``; each fake decides what an entry holds and
  when to use it) and the list of recorded requests with :attr:`~FakeHTTPServer.requests`,
  :meth:`~FakeHTTPServer.wait_for_requests` and :meth:`~FakeHTTPServer.reset`;
- :class:`RecordedRequest`, the one record of a request every fake keeps, so that a test reads
  ``requests[0].path``, ``.query``, ``.headers`` or ``.json`` the same way whichever fake it
  talks to (a fake with something of its own to add records a small subclass).

A subclass implements :meth:`FakeHTTPServer.handle` (the platform's behaviour: routing,
validation, its own scripted extras) and calls :meth:`FakeHTTPServer._record` for each request.
It answers with anything that has ``status``, ``body``, ``headers`` and ``delay`` — usually a
:class:`ScriptedResponse`. ``status`` :data:`HANG_UP` closes the connection without any answer,
as when a server or proxy drops it mid-request: the client cannot know what happened. A ``delay``
holds the answer back to make clients time out; :meth:`FakeHTTPServer.stop` interrupts it.
``status`` :data:`RESET` resets the connection (TCP RST) without answering.
:attr:`FakeHTTPServer.latency` (seconds, 0 unless set) holds back every answer, as a remote that
takes its time does (each request in a thread of its own, so slow answers overlap).

Fault injection (off unless set): :attr:`FakeHTTPServer.faults`, a callable given each request's
method and path, may return a :class:`Fault`. One that has not ``acted`` is answered at once and the
fake never sees the request (nothing happens, nothing is recorded); one that ``acted`` lets the fake
handle the request for real (the ticket is created) and then replaces its answer, e.g. with
:data:`HANG_UP` or a delay past the client's timeout: the answer is lost.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self
from urllib.parse import parse_qs, urlsplit

HANG_UP = 0  # scripted status: close the connection without answering
RESET = -1  # scripted status: reset the connection (TCP RST) without answering
HANG = 3600.0  # a scripted delay: accept the request, never answer (until the fake stops)


class Answer(Protocol):
    """What :meth:`FakeHTTPServer.handle` returns."""

    @property
    def status(self) -> int: ...
    @property
    def body(self) -> Any: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def delay(self) -> float: ...


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer: status, body (see :meth:`FakeHTTPServer.encode`), extra headers, and seconds
    to wait before answering. ``drip`` > 0 sends the status line and headers at once, then the
    body one byte every ``drip`` seconds: a server that is slow but never silent long enough
    for a client's read timeout (:data:`HANG` never answers at all)."""

    status: int = 200
    body: Any = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = field(default=0.0, kw_only=True)


@dataclass(frozen=True)
class Fault(ScriptedResponse):
    """An injected failure (see :attr:`FakeHTTPServer.faults`), answered instead of the fake.

    ``acted``: the fake handles the request first and only its answer is replaced (lost or
    late); otherwise the request never reaches the fake. ``kind`` names it for counting.
    """

    kind: str = ""
    acted: bool = False


def parse_json(body: bytes) -> Any:
    """The request body as JSON; None when empty or unparsable (fakes record, not reject, it)."""
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RecordedRequest:
    """One request a fake received, as it arrived; what is derived from it is a property.

    ``path`` is without the query string (``target`` is both, as sent), ``query_string`` is the
    raw query, ``headers`` have lower-case names and ``body`` is the raw request body.
    """

    method: str
    path: str
    query_string: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def target(self) -> str:
        """The request target as sent: the path and, if any, ``?`` and the query string."""
        return f"{self.path}?{self.query_string}" if self.query_string else self.path

    @cached_property
    def query_lists(self) -> dict[str, list[str]]:
        """Every value of each query parameter, in order (blank values kept)."""
        return parse_qs(self.query_string, keep_blank_values=True)

    @cached_property
    def query(self) -> dict[str, str]:
        """Each query parameter's last value (blank values kept)."""
        return {name: values[-1] for name, values in self.query_lists.items()}

    @cached_property
    def json(self) -> Any:
        """The body as JSON; None when empty or unparsable (see :func:`parse_json`)."""
        return parse_json(self.body)

    @cached_property
    def form(self) -> dict[str, str]:
        """The body as a URL-encoded form: each field's last value."""
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[-1] for name, values in fields.items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping must not keep the test process alive
    fake: FakeHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and hung up is expected here; stay quiet about it."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - name required by BaseHTTPRequestHandler
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        fake = self.server.fake
        if self.command not in fake.methods:  # as before the base: methods a fake never had
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        fault = fake.faults(self.command, parts.path) if fake.faults is not None else None
        answer: Answer = fault if fault is not None and not fault.acted else \
            fake.handle(self.command, parts.path, parts.query, headers, body)
        answer = fault or answer  # an acted fault: the fake did the work, the answer is lost
        delay = answer.delay + fake.latency
        if delay and fake._stopping.wait(delay):
            return  # the fake is shutting down: drop the answer
        if answer.status in (HANG_UP, RESET):
            if answer.status == RESET:  # linger 0: close() sends RST instead of FIN
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()  # now: the server's own shutdown would send FIN first
            self.close_connection = True
            return
        payload, content_type = fake.encode(answer.body)
        self.send_response(answer.status)
        if not any(name.lower() == "content-type" for name in answer.headers):
            self.send_header("Content-Type", content_type)
        bodyless = answer.status in (204, 304)  # these never carry a body (RFC 9110)
        if not bodyless:
            self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not bodyless:
            self._write(payload, getattr(answer, "drip", 0.0), fake)
        self.close_connection = True

    def _write(self, payload: bytes, drip: float, fake: FakeHTTPServer) -> None:
        """The body at once, or a byte at a time every ``drip`` seconds until the client hangs
        up or the fake stops."""
        if not drip:
            self.wfile.write(payload)
            return
        self.wfile.flush()
        for i in range(len(payload)):
            if fake._stopping.wait(drip):
                return
            try:
                self.wfile.write(payload[i:i + 1])
                self.wfile.flush()
            except OSError:  # the client gave up (its deadline cut the connection)
                return

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        """Silence the default stderr access log (it would print secret paths and tokens)."""


class FakeHTTPServer:
    """Base of the fakes; subclasses implement :meth:`handle`.

    Class attributes a subclass may set: ``name`` (for error messages), ``methods`` (the HTTP
    methods it serves; others get 501), ``content_type`` (of answers that set none),
    ``text_type`` and ``json_strings`` (see :meth:`encode`).
    """

    name = "fake HTTP server"
    methods: tuple[str, ...] = ("GET", "POST")
    content_type = "application/json; charset=utf-8"
    text_type: str | None = None
    json_strings = False
    faults: Callable[[str, str], Fault | None] | None = None
    """Set on an instance to inject failures: called with (method, path) for every request."""
    latency = 0.0
    """Set on an instance: seconds every answer waits (after the request was handled)."""

    def __init__(self) -> None:
        # Re-entrant, so that a subclass may call _record() while it holds the lock.
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._script: Any = deque()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- the hook ------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        """Answer one request (called from handler threads).

        ``path`` is without the query string, ``query`` is the raw query string (fakes parse it
        their own way), ``headers`` have lower-case names, ``body`` is the raw request body.
        """
        raise NotImplementedError

    def encode(self, body: Any) -> tuple[bytes, str]:
        """The payload and Content-Type for an answer's body: bytes as they are, a str as UTF-8
        text labelled ``text_type`` if set (sent as a JSON string if ``json_strings``), anything
        else as JSON; the rest labelled ``content_type``."""
        if isinstance(body, bytes):
            return body, self.content_type
        if isinstance(body, str) and not self.json_strings:
            return body.encode("utf-8"), self.text_type or self.content_type
        return json.dumps(body).encode("utf-8"), self.content_type

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, port: int = 0) -> Self:
        """Serve on ``port``; 0 (the default) picks a free one. A test whose remote goes away and
        comes back (connection refused for a while) starts a new fake on the old port."""
        server = _Server(("127.0.0.1", port), _Handler)
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self.name} is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- recording and inspection --------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        """Keep ``request`` (a :class:`RecordedRequest`, or a fake's subclass of it) and wake
        :meth:`wait_for_requests`."""
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()

    @property
    def requests(self) -> list[Any]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Any]:
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


class ChangingFake(FakeHTTPServer):
    """A fake whose data changes while a client reads it: :meth:`after` schedules a change (a
    deletion, a new item) to happen once that many requests were answered, and a subclass's
    :meth:`handle` calls :meth:`_arrive` first, so the request that follows sees it."""

    def __init__(self) -> None:
        super().__init__()
        self._later: list[tuple[int, Callable[[], None]]] = []

    def after(self, requests: int, change: Callable[[], None]) -> None:
        """Run ``change`` once ``requests`` requests have been answered."""
        with self._lock:
            self._later.append((requests, change))

    def _arrive(self, request: RecordedRequest) -> None:
        """Record ``request``, then run the changes due before it is answered."""
        with self._lock:
            number = len(self._requests)
            self._record(request)
            for entry in [e for e in self._later if e[0] <= number]:
                self._later.remove(entry)
                entry[1]()


@dataclass(frozen=True)
class PathScripted(ScriptedResponse):
    """A scripted answer for the next request to ``path`` (None: to any path).

    With ``commit`` the request is first carried out for real (the issue is created) and only
    its answer is replaced, e.g. by a delay or :data:`HANG_UP`: the client cannot know that it
    landed. ``body`` None then keeps the real answer's body.
    """

    body: Any = None
    path: str | None = None
    commit: bool = False


class PathScriptedFake(FakeHTTPServer):
    """A fake whose scripted answers are :class:`PathScripted` (the issue trackers' sinks)."""

    def enqueue(
        self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
        delay: float = 0.0, *, path: str | None = None, commit: bool = False,
    ) -> None:
        """Queue an answer for the next request to ``path`` (FIFO per match)."""
        with self._lock:
            self._script.append(
                PathScripted(status, body, dict(headers or {}), delay, path, commit)
            )

    def _scripted_or(self, path: str, real: Callable[[], ScriptedResponse]) -> Answer:
        """The scripted answer for ``path`` if one is queued, else (or, with ``commit``, after
        running it) ``real()``, the fake's own answer."""
        with self._lock:
            scripted = next((s for s in self._script if s.path in (None, path)), None)
            if scripted is not None:
                self._script.remove(scripted)
                if not scripted.commit:
                    return scripted
            answer = real()
        if scripted is None:
            return answer
        return ScriptedResponse(
            scripted.status, scripted.body or answer.body, scripted.headers, scripted.delay
        )
