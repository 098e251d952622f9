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
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.base import HANG_UP, FakeHTTPServer, ScriptedResponse, parse_json

__all__ = ["HANG_UP", "PRIORITIES", "TICKETS", "Answer", "FakeZendesk", "RecordedRequest",
           "invalid"]

TICKETS = "/api/v2/tickets.json"
PRIORITIES = ("urgent", "high", "normal", "low")


@dataclass(frozen=True)
class Answer(ScriptedResponse):
    """One answer: status, JSON (or text) body, headers, seconds to wait first."""

    body: Any = None
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


class FakeZendesk(FakeHTTPServer):
    """A scriptable fake Zendesk account; use as a context manager or call start()/stop()."""

    name = "fake Zendesk"
    text_type = "text/plain; charset=utf-8"  # a str body is plain text, anything else JSON

    def __init__(self, *, email: str = "bot@acme.example", token: str = "zd-token-1234567890",
                 subdomain: str = "acme", groups: tuple[int, ...] = (360000000001,)) -> None:
        self.email, self.token, self.subdomain, self.groups = email, token, subdomain, groups
        super().__init__()
        # Scripted answers are (method, answer) pairs, each used by the next such request.
        self._tickets: dict[int, dict[str, Any]] = {}
        self._keys: dict[str, tuple[Any, Answer]] = {}
        self._next_id = 35436

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
    def tickets(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(t) for t in self._tickets.values()]

    # -- called from handler threads -------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        parsed = parse_json(body)
        lowered = headers
        with self._lock:
            self._record(RecordedRequest(method, path, parse_qs(query), lowered, body, parsed))
            scripted = next((a for m, a in self._script if m == method), None)
            if scripted is not None:
                self._script.remove((method, scripted))
                if not scripted.create:
                    return scripted
            if not self._authorized(lowered.get("authorization", "")):
                return Answer(401, {"error": "Couldn't authenticate you"})
            if path != TICKETS or method not in ("GET", "POST"):
                return Answer(404, {"error": "InvalidEndpoint", "description": "Not found"})
            if method == "GET":
                return self._list(parse_qs(query))
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
