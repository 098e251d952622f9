"""Fakes that misbehave the way an attacker's or a broken server does, for any source or sink.

- :class:`Redirector` answers every request with a redirect to one fixed URL (the cloud metadata
  address, another port on 127.0.0.1): configured as a source's feed or ``base_url``, it shows
  whether the client follows the redirect there.
- :class:`Recorder` answers ``200 {}`` to everything and records it: the redirect target that
  must never be reached (``requests`` stays empty).
- :class:`EndlessBody` answers ``200`` with a body that never ends (no ``Content-Length``, a
  close-delimited stream), counting the bytes it managed to send (:attr:`EndlessBody.sent`)
  until the client hangs up (:attr:`EndlessBody.hung_up`): a client that reads everything
  never returns and grows without bound; a capped one stops after its cap.

All are real HTTP servers on 127.0.0.1 (any path, GET and POST), so each client library runs for
real. The first two use the shared skeleton of :mod:`tests.fakes.base`; the endless one needs its
own handler, because the skeleton always sends a ``Content-Length``. Each keeps what it received
in ``requests`` as the shared :class:`~tests.fakes.base.RecordedRequest`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse

METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


class Redirector(FakeHTTPServer):
    """Redirects every request (``status``, default 302) to ``target``; records each."""

    name = "redirecting fake"
    methods = ("GET", "POST")

    def __init__(self, target: str, status: int = 302) -> None:
        super().__init__()
        self.target, self.status = target, status

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> ScriptedResponse:
        self._record(RecordedRequest(method, path, query, headers, body))
        return ScriptedResponse(self.status, "", {"Location": self.target})


class Recorder(FakeHTTPServer):
    """Answers ``200 {}`` and records each request: a target nothing may reach."""

    name = "recording fake"
    methods = ("GET", "POST")

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> ScriptedResponse:
        self._record(RecordedRequest(method, path, query, headers, body))
        return ScriptedResponse(200, {})


class _EndlessHandler(BaseHTTPRequestHandler):
    server: _EndlessServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - name required by BaseHTTPRequestHandler
        self._stream(b"")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self._stream(self.rfile.read(length) if length else b"")

    def _stream(self, body: bytes) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake.note_request(RecordedRequest(self.command, parts.path, parts.query, headers, body))
        self.send_response(200)
        self.send_header("Content-Type", fake.content_type)
        self.send_header("Connection", "close")  # no Content-Length: the body ends at close
        self.end_headers()
        chunk = fake.chunk
        try:
            while not fake.stopping.is_set() and fake.sent < fake.limit:
                self.wfile.write(chunk)
                fake.count(len(chunk))
        except OSError:  # the client read enough and hung up
            fake.hung_up.set()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Quiet: no access log."""


class _EndlessServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: EndlessBody

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-body is the point of this fake; stay quiet."""


class EndlessBody:
    """A server whose every answer is ``200`` and a body of ``chunk`` repeated until the client
    hangs up (or ``limit`` bytes, a safety stop for a client that never would)."""

    def __init__(self, chunk: bytes = b"[" + b"0," * 32767, limit: int = 2 * 1024**3,
                 content_type: str = "application/json") -> None:
        self.chunk, self.limit, self.content_type = chunk, limit, content_type
        self.sent = 0
        self.requests: list[RecordedRequest] = []
        self.hung_up = threading.Event()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: _EndlessServer | None = None
        self._thread: threading.Thread | None = None

    def note_request(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def count(self, size: int) -> None:
        with self._lock:
            self.sent += size

    def start(self) -> Self:
        server = _EndlessServer(("127.0.0.1", 0), _EndlessHandler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_hung_up(self, timeout: float = 5.0) -> bool:
        """True once the client has closed the connection mid-body."""
        return self.hung_up.wait(timeout)
