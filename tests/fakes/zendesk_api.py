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
- ``PUT /api/v2/tickets/{id}.json`` ("Update Ticket") with ``{"ticket": {"comment": {"body",
  "public"}}}`` adds the comment (the way Zendesk adds comments: the Ticket Comments API has no
  create endpoint) and answers ``200 {"ticket": {...}, "audit": {...}}``; an unknown ticket
  answers ``404 {"error": "RecordNotFound", "description": "Not found"}``, a closed one ``422``
  with ``details.status`` "Status: closed prevents ticket update" (:meth:`close`), a comment
  without a body ``422`` as well. Zendesk keeps no idempotency key for updates: a replayed PUT
  adds a second comment.
- ``GET /api/v2/tickets/{id}/comments.json`` ("List Comments"): the ticket's comments, the first
  one being the description; ``sort_order`` asc (default) or desc; cursor pagination
  (``page[size]``, answering ``meta``/``links``) or offset pagination (``per_page``/``page``,
  answering ``next_page``/``count``), 100 at most per page; ``404`` for an unknown ticket.
- anything else: ``404 {"error": "InvalidEndpoint", "description": "Not found"}``.

Scripting: :meth:`enqueue` queues an answer for the next request of a method, used once, in
order, e.g. ``429`` with ``Retry-After``. ``create=True`` makes the fake carry the request out
for real (create the ticket, add the comment) and *then* give the scripted answer (a delay past
the client's timeout, or :data:`HANG_UP`): the ambiguous failure where the client cannot know
that it landed. Every request is recorded; :meth:`comments` lists what a ticket shows.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.base import HANG_UP, FakeHTTPServer, RecordedRequest, ScriptedResponse

__all__ = ["HANG_UP", "PRIORITIES", "TICKETS", "Answer", "FakeZendesk", "invalid"]

TICKETS = "/api/v2/tickets.json"
PRIORITIES = ("urgent", "high", "normal", "low")
NOW = "2026-11-20T12:00:00Z"
PAGE_MAX = 100
_TICKET = re.compile(r"^/api/v2/tickets/(\d+)(?:\.json)?$")
_COMMENTS = re.compile(r"^/api/v2/tickets/(\d+)/comments(?:\.json)?$")


@dataclass(frozen=True)
class Answer(ScriptedResponse):
    """One answer: status, JSON (or text) body, headers, seconds to wait first."""

    body: Any = None
    create: bool = False  # carry the request out (ticket, comment), then answer this


def invalid(field_name: str, description: str, error: str = "InvalidValue") -> Answer:
    """Zendesk's 422 body for one field."""
    details = {field_name: [{"description": description, "error": error}]}
    return Answer(422, {"error": "RecordInvalid", "description": "Record validation errors",
                        "details": details})


class FakeZendesk(FakeHTTPServer):
    """A scriptable fake Zendesk account; use as a context manager or call start()/stop()."""

    name = "fake Zendesk"
    methods = ("GET", "POST", "PUT")
    text_type = "text/plain; charset=utf-8"  # a str body is plain text, anything else JSON

    def __init__(self, *, email: str = "bot@acme.example", token: str = "zd-token-1234567890",
                 subdomain: str = "acme", groups: tuple[int, ...] = (360000000001,)) -> None:
        self.email, self.token, self.subdomain, self.groups = email, token, subdomain, groups
        super().__init__()
        # Scripted answers are (method, answer) pairs, each used by the next such request.
        self._tickets: dict[int, dict[str, Any]] = {}
        self._keys: dict[str, tuple[Any, Answer]] = {}
        self._comments: dict[int, list[dict[str, Any]]] = {}  # ticket id → comments, oldest first
        self._next_id = 35436
        self._next_comment = 900000

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

    def comments(self, ticket_id: int | str) -> list[dict[str, Any]]:
        """What the ticket shows, oldest first: its description, then each added comment."""
        with self._lock:
            return [dict(c) for c in self._comments.get(int(ticket_id), [])]

    def close(self, ticket_id: int | str) -> None:
        """Close the ticket (closed, not solved): Zendesk refuses every update of it then."""
        with self._lock:
            self._tickets[int(ticket_id)]["status"] = "closed"

    def delete(self, ticket_id: int | str) -> None:
        """Delete the ticket (an agent did): it answers 404 from then on."""
        with self._lock:
            self._tickets.pop(int(ticket_id))
            self._comments.pop(int(ticket_id), None)

    # -- called from handler threads -------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        request = RecordedRequest(method, path, query, headers, body)
        parsed, lowered = request.json, headers
        with self._lock:
            self._record(request)
            scripted = next((a for m, a in self._script if m == method), None)
            if scripted is not None:
                self._script.remove((method, scripted))
                if not scripted.create:
                    return scripted
            if not self._authorized(lowered.get("authorization", "")):
                return Answer(401, {"error": "Couldn't authenticate you"})
            answer = self._route(method, path, parse_qs(query), lowered, parsed)
        if scripted is not None:  # carried out for real; now fail the way the script says
            return scripted
        return answer

    def _route(self, method: str, path: str, query: dict[str, list[str]],
               headers: dict[str, str], body: Any) -> Answer:
        ticket, comments = _TICKET.match(path), _COMMENTS.match(path)
        if path == TICKETS and method == "GET":
            return self._list(query)
        if path == TICKETS and method == "POST":
            return self._create_idempotent(headers.get("idempotency-key"), body)
        if ticket is not None and method == "PUT":
            return self._update(int(ticket.group(1)), body)
        if comments is not None and method == "GET":
            return self._list_comments(int(comments.group(1)), query)
        return Answer(404, {"error": "InvalidEndpoint", "description": "Not found"})

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
        self._comments[ticket_id] = [self._comment(ticket_id, comment)]
        return Answer(201, {"ticket": _public(record)}, {"Location": url})

    def _comment(self, ticket_id: int, comment: dict[str, Any]) -> dict[str, Any]:
        """A comment as List Comments shows it (``body`` as given, ``plain_body`` its text)."""
        self._next_comment += 1
        body = str(comment.get("body") or "")
        return {
            "id": self._next_comment, "type": "Comment", "author_id": 20978392, "body": body,
            "html_body": f"<div class=\"zd-comment\"><p>{body}</p></div>", "plain_body": body,
            "public": bool(comment.get("public", True)), "attachments": [],
            "audit_id": self._next_comment + 1, "created_at": NOW,
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
            "metadata": {"system": {"client": "social-listener"}, "custom": {}},
            "_ticket": ticket_id,
        }

    def _update(self, ticket_id: int, body: Any) -> Answer:
        record = self._tickets.get(ticket_id)
        if record is None:
            return Answer(404, {"error": "RecordNotFound", "description": "Not found"})
        ticket = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket, dict):
            return Answer(400, {"error": "InvalidJSON", "description": "ticket is required"})
        if record["status"] == "closed":
            return invalid("status", "Status: closed prevents ticket update", "ClosedPrevents")
        comment = ticket.get("comment")
        if comment is not None and not (isinstance(comment, dict) and comment.get("body")):
            return invalid("base", "Comment: cannot be blank", "BlankValue")
        events = []
        if comment is not None:
            added = self._comment(ticket_id, comment)
            self._comments[ticket_id].append(added)
            events.append({k: v for k, v in added.items() if not k.startswith("_")})
            record["status"] = "open" if record["status"] == "new" else record["status"]
        record["updated_at"] = NOW
        audit = {"id": self._next_comment + 1, "ticket_id": ticket_id, "created_at": NOW,
                 "author_id": 20978392, "events": events}
        return Answer(200, {"ticket": _public(record), "audit": audit})

    def _list_comments(self, ticket_id: int, query: dict[str, list[str]]) -> Answer:
        if ticket_id not in self._tickets:
            return Answer(404, {"error": "RecordNotFound", "description": "Not found"})
        found = [{k: v for k, v in c.items() if not k.startswith("_")}
                 for c in self._comments[ticket_id]]
        if query.get("sort_order", ["asc"])[0] == "desc":
            found.reverse()
        if "page[size]" in query:  # cursor pagination: the first page is all tests need
            size = min(PAGE_MAX, int(query["page[size]"][0]))
            more = len(found) > size
            return Answer(200, {"comments": found[:size], "meta": {
                "has_more": more, "after_cursor": "xxx" if more else None,
                "before_cursor": None}, "links": {"prev": None, "next": None}})
        per_page = min(PAGE_MAX, int(query.get("per_page", [PAGE_MAX])[0]))
        page = int(query.get("page", [1])[0])
        chosen = found[(page - 1) * per_page: page * per_page]
        more = len(found) > page * per_page
        return Answer(200, {"comments": chosen, "count": len(found), "previous_page": None,
                            "next_page": f"{self.base_url}/api/v2/tickets/{ticket_id}/comments"
                            f".json?page={page + 1}" if more else None})

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


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """A ticket as Zendesk answers it (without what the fake keeps for assertions)."""
    return {k: v for k, v in record.items() if k not in ("comment", "requester")}
