"""A fake Discord webhook for tests: real HTTP on 127.0.0.1, an ephemeral port.

It behaves like Discord's Execute Webhook as documented, and checks what the sink sends with
its own code (not the renderer's), so a renderer bug cannot hide behind a shared helper:

- ``POST /api/webhooks/<id>/<token>``: a JSON body with ``content`` and/or ``embeds``, within
  Discord's limits (content 2000; at most 10 embeds; title 256, description 4096, 25 fields,
  field name 256, value 1024, footer 2048, author name 256; 6000 characters over all embeds),
  a ``username`` without "discord"/"clyde". A body over a limit answers ``400 {"code": 50035,
  "message": "Invalid Form Body", "errors": {...}}`` and posts nothing. A valid one is posted:
  with ``?wait=true`` the answer is ``200`` and the message object (``id``: a snowflake string),
  without it ``204``.
- ``GET`` on the webhook's path: the webhook object (``id``, ``name``, ``channel_id``).
- another id or token: ``404 {"message": "Unknown Webhook", "code": 10015}``.

Scripting: :meth:`FakeDiscordWebhook.enqueue` queues an answer (status, body, headers, delay)
used once, in order, instead of the fake's own; ``posted=True`` posts the message first and then
gives the scripted answer (a lost answer). :func:`rate_limited` builds Discord's 429.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes.base import HANG_UP, FakeHTTPServer, RecordedRequest, ScriptedResponse

__all__ = ["HANG_UP", "TOKEN", "WEBHOOK_ID", "FakeDiscordWebhook", "rate_limited"]

WEBHOOK_ID = "1180000000000000001"
TOKEN = "tok_Zq9X-secret_0123456789abcdefGHIJ"
FIRST_MESSAGE_ID = 1190000000000000000


@dataclass(frozen=True)
class Answer(ScriptedResponse):
    body: Any = None
    posted: bool = False  # post the message first, then answer this (the sender cannot know)


def rate_limited(retry_after: float, *, header: str | None = None,
                 global_: bool = False) -> dict[str, Any]:
    """``enqueue`` arguments for Discord's 429: JSON ``retry_after`` (seconds, a float) and the
    ``X-RateLimit-*`` headers (``Retry-After`` as ``header`` if given)."""
    headers = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset-After": f"{retry_after:g}", "X-RateLimit-Bucket": "abcd"}
    if header is not None:
        headers["Retry-After"] = header
    if global_:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after,
            "global": global_, "code": 0}
    return {"status": 429, "body": body, "headers": headers}


def _len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def limit_errors(payload: Any) -> list[str]:
    """Why Discord would refuse ``payload`` (empty: it would post it)."""
    if not isinstance(payload, dict):
        return ["body: not a JSON object"]
    errors = []
    content, embeds = payload.get("content"), payload.get("embeds") or []
    if not content and not embeds:
        errors.append("content or embeds: one is required")
    if _len(content) > 2000:
        errors.append("content: at most 2000")
    if len(embeds) > 10:
        errors.append("embeds: at most 10")
    total = 0
    for i, embed in enumerate(embeds):
        for key, most in (("title", 256), ("description", 4096)):
            if _len(embed.get(key)) > most:
                errors.append(f"embeds.{i}.{key}: at most {most}")
            total += _len(embed.get(key))
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors.append(f"embeds.{i}.fields: at most 25")
        for j, field in enumerate(fields):
            if not field.get("name") or not field.get("value"):
                errors.append(f"embeds.{i}.fields.{j}: name and value are required")
            if _len(field.get("name")) > 256:
                errors.append(f"embeds.{i}.fields.{j}.name: at most 256")
            if _len(field.get("value")) > 1024:
                errors.append(f"embeds.{i}.fields.{j}.value: at most 1024")
            total += _len(field.get("name")) + _len(field.get("value"))
        footer = (embed.get("footer") or {}).get("text")
        if _len(footer) > 2048:
            errors.append(f"embeds.{i}.footer.text: at most 2048")
        author = (embed.get("author") or {}).get("name")
        if _len(author) > 256:
            errors.append(f"embeds.{i}.author.name: at most 256")
        total += _len(footer) + _len(author)
    if total > 6000:
        errors.append("embeds: at most 6000 characters in all")
    username = payload.get("username")
    if username is not None and (not 1 <= _len(username) <= 80 or any(
            word in str(username).lower() for word in ("discord", "clyde"))):
        errors.append("username: not allowed")
    return errors


class FakeDiscordWebhook(FakeHTTPServer):
    """A scriptable Discord webhook; use as a context manager or call start()/stop()."""

    name = "fake Discord webhook"

    def __init__(self, webhook_id: str = WEBHOOK_ID, token: str = TOKEN) -> None:
        super().__init__()
        self.webhook_id, self.token = webhook_id, token
        self._messages: list[dict[str, Any]] = []

    @property
    def path(self) -> str:
        return f"/api/webhooks/{self.webhook_id}/{self.token}"

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message the channel shows (the request bodies that were posted), oldest first."""
        with self._lock:
            return list(self._messages)

    def enqueue(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
                delay: float = 0.0, *, posted: bool = False) -> None:
        with self._lock:
            self._script.append(Answer(status, body, dict(headers or {}), delay, posted))

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        with self._lock:
            self._record(request)
            scripted = self._script.popleft() if self._script else None
            if scripted is not None and not scripted.posted:
                return scripted
            answer = self._real(request)
        if scripted is None:
            return answer
        return ScriptedResponse(scripted.status, scripted.body if scripted.body is not None
                                else answer.body, scripted.headers, scripted.delay)

    def _real(self, request: RecordedRequest) -> ScriptedResponse:
        if request.path.rstrip("/") != self.path:
            return ScriptedResponse(404, {"message": "Unknown Webhook", "code": 10015})
        if request.method == "GET":
            return ScriptedResponse(200, {"id": self.webhook_id, "type": 1, "name": "listener",
                                          "channel_id": "1170000000000000009",
                                          "guild_id": "1160000000000000007"})
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return ScriptedResponse(400, {"message": "Cannot send an empty message",
                                          "code": 50006})
        errors = limit_errors(request.json)
        if errors:
            return ScriptedResponse(400, {"message": "Invalid Form Body", "code": 50035,
                                          "errors": errors})
        message = {**request.json, "id": str(FIRST_MESSAGE_ID + len(self._messages) + 1),
                   "webhook_id": self.webhook_id, "channel_id": "1170000000000000009"}
        self._messages.append(message)
        if request.query.get("wait") != "true":
            return ScriptedResponse(204, "")
        return ScriptedResponse(200, message)
