"""A fake Zendesk Ticketing API for tests: real HTTP on 127.0.0.1, an ephemeral port.

Tests point the real sink (httpx) at it with ``base_url=fake.base_url``; nothing of ours is
mocked. It serves what developer.zendesk.com documents for the two endpoints the sink uses:

- ``POST /api/v2/tickets.json`` with ``{"ticket": {...}}``: ``201 Created``, a ``Location`` header
  and ``{"ticket": {...}}``. Basic auth must be ``{email}/token:{api_token}`` (else ``401
  {"error": "Couldn't authenticate you"}``). Validation errors answer ``422 {"error":
  "RecordInvalid", "description": "Record validation errors", "details": {field: [{"description",
  "error"}]}}``: no comment body, an unknown priority, a group id the account lacks, a new
  requester without name and email.
- ``Idempotency-Key``: a first use answers ``x-idempotency-lookup: miss``; the same key with the
  same body replays the stored answer with ``hit`` and creates nothing; the same key with another
  body answers ``400 {"error": "IdempotentRequestError", ...}``. :meth:`expire_keys` forgets
  them (Zendesk keeps them two hours).
- ``GET /api/v2/tickets.json?external_id=X``: ``{"tickets": [...], "next_page": null,
  "previous_page": null, "count": n}``.
- anything else: ``404 {"error": "InvalidEndpoint", "description": "Not found"}``.

Scripting: :meth:`enqueue` queues an answer for the next request of a method, used once, in
order. ``create=True`` makes the fake create the ticket for real and *then* give the scripted
answer (a delay past the client's timeout, or :data:`HANG_UP`): the ambiguous failure where the
client cannot know that the ticket exists. Every request is recorded.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TICKETS = "/api/v2/tickets.json"
HANG_UP = 0  # scripted status: close the connection without answering
PRIORITIES = ("urgent", "high", "normal", "low")


@dataclass(frozen=True)
class Answer:
    """One answer: status, JSON (or text) body, headers, seconds to wait first."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    create: bool = False  # create the ticket, then answer this (ambiguous failure)


@dataclass(frozen=True)
class RecordedRequest:
    """What the fake received. ``headers`` keys are lower-case; ``json`` is None if unparsable."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any


def invalid(field_name: str, description: str, error: str = "InvalidValue") -> Answer:
    """Zendesk's 422 body for one field."""
    details = {field_name: [{"description": description, "error": error}]}
    return Answer(422, {"error": "RecordInvalid", "description": "Record validation errors",
                        "details": details})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeZendesk

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and hung up is expected here; stay quiet about it."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - name required by BaseHTTPRequestHandler
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.server.fake._handle("POST", self.path, self.headers,
                                              self.rfile.read(length) if length else b""))

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
        """Silence the default stderr access log."""


class FakeZendesk:
    """A scriptable fake Zendesk account; use as a context manager or call start()/stop()."""

    def __init__(self, *, email: str = "bot@acme.example", token: str = "zd-token-1234567890",
                 subdomain: str = "acme", groups: tuple[int, ...] = (360000000001,)) -> None:
        self.email, self.token, self.subdomain, self.groups = email, token, subdomain, groups
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._script: deque[tuple[str, Answer]] = deque()
        self._tickets: dict[int, dict[str, Any]] = {}
        self._keys: dict[str, tuple[Any, Answer]] = {}
        self._next_id = 35436
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeZendesk:
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

    def __enter__(self) -> FakeZendesk:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Zendesk is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- scripting and inspection ----------------------------------------------------------

    def enqueue(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
                delay: float = 0.0, *, method: str = "POST", create: bool = False) -> None:
        """Queue the answer for the next ``method`` request (FIFO; then the normal behaviour)."""
        with self._lock:
            self._script.append((method, Answer(status, body, dict(headers or {}), delay, create)))

    def expire_keys(self) -> None:
        """Forget every idempotency key, as Zendesk does after two hours."""
        with self._lock:
            self._keys.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def tickets(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(t) for t in self._tickets.values()]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {len(self._requests)}")
            return list(self._requests)

    # -- called from handler threads -------------------------------------------------------

    def _handle(self, method: str, target: str, headers: Any, body: bytes) -> Answer:
        parts = urlsplit(target)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        lowered = {name.lower(): value for name, value in headers.items()}
        with self._arrived:
            self._requests.append(RecordedRequest(method, parts.path, parse_qs(parts.query),
                                                  lowered, body, parsed))
            self._arrived.notify_all()
            scripted = next((a for m, a in self._script if m == method), None)
            if scripted is not None:
                self._script.remove((method, scripted))
                if not scripted.create:
                    return scripted
            if not self._authorized(lowered.get("authorization", "")):
                return Answer(401, {"error": "Couldn't authenticate you"})
            if parts.path != TICKETS or method not in ("GET", "POST"):
                return Answer(404, {"error": "InvalidEndpoint", "description": "Not found"})
            if method == "GET":
                return self._list(parse_qs(parts.query))
            answer = self._create_idempotent(lowered.get("idempotency-key"), parsed)
        if scripted is not None:  # created for real; now fail the way the script says
            return scripted
        return answer

    def _authorized(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        return header == f"Basic {expected}"

    def _list(self, query: dict[str, list[str]]) -> Answer:
        wanted = query.get("external_id", [None])[0]
        found = [t for t in self._tickets.values() if wanted is None or t["external_id"] == wanted]
        return Answer(200, {"tickets": found, "next_page": None, "previous_page": None,
                            "count": len(found)})

    def _create_idempotent(self, key: str | None, body: Any) -> Answer:
        if key is None:
            return self._create(body)
        if key in self._keys:
            first_body, first_answer = self._keys[key]
            if first_body != body:
                return Answer(400, {"error": "IdempotentRequestError", "description":
                                    "Request parameters don't match the given idempotency key"})
            return Answer(first_answer.status, first_answer.body,
                          {**first_answer.headers, "x-idempotency-lookup": "hit"})
        answer = self._create(body)
        if answer.status == 201:
            self._keys[key] = (body, answer)
        return Answer(answer.status, answer.body, {**answer.headers, "x-idempotency-lookup": "miss"})

    def _create(self, body: Any) -> Answer:
        ticket = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket, dict):
            return Answer(400, {"error": "InvalidJSON", "description": "ticket is required"})
        error = self._validate(ticket)
        if error is not None:
            return error
        self._next_id += 1
        ticket_id = self._next_id
        url = f"https://{self.subdomain}.zendesk.com/api/v2/tickets/{ticket_id}.json"
        comment = ticket["comment"]
        record = {
            "url": url, "id": ticket_id, "external_id": ticket.get("external_id"),
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": "2026-11-20T12:00:00Z", "updated_at": "2026-11-20T12:00:00Z",
            "type": ticket.get("type"), "subject": ticket.get("subject"),
            "raw_subject": ticket.get("subject"), "description": comment.get("body"),
            "priority": ticket.get("priority"), "status": "new", "recipient": None,
            "requester_id": 20978392 if "requester" not in ticket else 20978393,
            "submitter_id": 20978392, "assignee_id": None, "organization_id": None,
            "group_id": ticket.get("group_id"), "collaborator_ids": [], "follower_ids": [],
            "has_incidents": False, "is_public": bool(comment.get("public", True)),
            "tags": sorted(set(ticket.get("tags", []))),
            "custom_fields": ticket.get("custom_fields", []),
            "comment": comment, "requester": ticket.get("requester"),  # kept for assertions
        }
        self._tickets[ticket_id] = record
        public = {k: v for k, v in record.items() if k not in ("comment", "requester")}
        return Answer(201, {"ticket": public}, {"Location": url})

    def _validate(self, ticket: dict[str, Any]) -> Answer | None:
        comment = ticket.get("comment")
        if not isinstance(comment, dict) or not comment.get("body"):
            return invalid("base", "Description: cannot be blank", "BlankValue")
        if ticket.get("priority") not in (None, *PRIORITIES):
            return invalid("priority", "Priority: is not valid")
        if "group_id" in ticket and ticket["group_id"] not in self.groups:
            return invalid("group", "Group: is invalid")
        requester = ticket.get("requester")
        if requester is not None and not (requester.get("name") and requester.get("email")):
            return invalid("requester", "Requester: Email: cannot be blank", "BlankValue")
        return None
