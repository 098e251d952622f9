"""Fake Slack servers for tests: an incoming webhook and the Web API, real HTTP on 127.0.0.1.

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
Every request is recorded (base :class:`RecordedRequest`), including ones the fake refused;
:attr:`FakeSlackWebhook.posted` holds what the channel shows (answered 200, late or not).
A ``delay`` holds the answer back to make clients time out; :meth:`stop` interrupts it.

:class:`FakeSlackAPI` is the Web API a bot token talks to (``WebClient(base_url=fake.api_url)``),
with the methods the bot mode uses, answering the shapes docs.slack.dev documents:

- every ``/api/<method>`` call needs ``Authorization: Bearer <token>``, else HTTP 200
  ``{"ok": false, "error": "not_authed"}`` (no header) or ``"invalid_auth"`` (another token);
  errors are always ``{"ok": false, "error": code}`` with HTTP 200; unknown methods answer 404
  ``unknown_method``;
- ``chat.postMessage`` (channel ID or name; text or blocks; optional ``thread_ts``,
  ``metadata``): ``{"ok": true, "channel": ID, "ts": ..., "message": {...}}``, the message
  carrying ``thread_ts`` when it is a reply (:meth:`FakeSlackAPI.replies` lists a thread's
  replies, :meth:`FakeSlackAPI.top_level` what the channel itself shows); it refuses an
  unknown channel (``channel_not_found``), no content (``no_text``), blocks over Slack's limits
  (``invalid_blocks``: more than 50 blocks, a header over 150 characters, a section text over
  3,000, more than 10 fields or one over 2,000; ``msg_blocks_too_long`` past 13,000 characters
  of block JSON, where Slack starts refusing in practice) and malformed metadata
  (``invalid_metadata_format``);
- ``conversations.history`` (channel *ID* only, like Slack): top-level messages newest first,
  ``limit`` of them, metadata only with ``include_all_metadata``; ``conversations.replies``: a
  thread's parent and replies, oldest first (``thread_not_found`` for an unknown ts);
- ``auth.test`` → the workspace and bot user the token belongs to;
- ``files.getUploadURLExternal`` → ``{"upload_url", "file_id"}``; a POST of the bytes to that
  URL (no auth, like Slack's pre-signed URLs) answers ``OK - <length>``;
  ``files.completeUploadExternal`` shares uploaded files (:attr:`FakeSlackAPI.uploads`).

:meth:`FakeSlackAPI.enqueue` queues an answer for the next call of one path (``api_path``), e.g.
HTTP 429 with ``Retry-After``; with ``commit=True`` the call is first carried out for real (the
message is posted) and only its answer is replaced, by a delay or :data:`HANG_UP`: the lost
answer after which the client cannot know that the message exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.base import (
    HANG_UP,
    FakeHTTPServer,
    PathScriptedFake,
    RecordedRequest,
    parse_json,
)
from tests.fakes.base import ScriptedResponse as BaseScriptedResponse

__all__ = ["BOT_TOKEN", "CHANNEL_ID", "DEFAULT_PATH", "HANG_UP", "FakeSlackAPI", "FakeSlackWebhook",
           "ScriptedResponse", "WebCall", "api_path"]

DEFAULT_PATH = "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass(frozen=True)
class ScriptedResponse(BaseScriptedResponse):
    """One answer to give: status, plain-text body, extra headers, seconds to wait first."""

    body: str = "ok"


class FakeSlackWebhook(FakeHTTPServer):
    """A scriptable fake incoming webhook; use as a context manager or call start()/stop()."""

    name = "fake Slack webhook"
    content_type = "text/plain; charset=utf-8"

    def __init__(self, *, path: str = DEFAULT_PATH, delay: float = 0.0) -> None:
        """``delay``: seconds to hold back every answer that has no delay of its own."""
        super().__init__()
        self.path = path
        self.delay = delay
        self._posted: list[Any] = []

    @property
    def url(self) -> str:
        """The webhook URL to configure, e.g. ``http://127.0.0.1:PORT/services/T000/B000/XXX``."""
        return self.base_url + self.path

    @property
    def posted(self) -> list[Any]:
        """The JSON of every message the channel shows: each request answered (or to be
        answered) ``200``, even when that answer is late or lost; duplicates included."""
        with self._lock:
            return list(self._posted)

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
        request = RecordedRequest(method, path, query, headers, body)
        target = request.target  # matched as sent
        with self._lock:
            self._record(request)
            if method != "POST":
                return ScriptedResponse(405, "invalid_method")
            if target != self.path:
                return ScriptedResponse(404, "no_service")
            scripted = self._script.popleft() if self._script else ScriptedResponse()
            if scripted.status == 200:  # Slack posts it, whether or not the answer arrives
                self._posted.append(parse_json(body))
        if not scripted.delay and self.delay:
            scripted = ScriptedResponse(
                scripted.status, scripted.body, scripted.headers, self.delay
            )
        return scripted


# -- the Web API ---------------------------------------------------------------------------------

BOT_TOKEN = "xoxb-1111-2222-FAKEFAKEFAKEFAKE"
CHANNEL_ID = "C0FAKE00001"
BLOCKS_MAX, HEADER_MAX, SECTION_MAX, FIELDS_MAX, FIELD_MAX = 50, 150, 3000, 10, 2000
BLOCKS_CHARS_MAX = 13_000


def api_path(method: str) -> str:
    """``chat.postMessage`` → ``/api/chat.postMessage``, the path :meth:`enqueue` takes."""
    return f"/api/{method}"


@dataclass(frozen=True)
class WebCall(RecordedRequest):
    """One request to the fake Web API: ``params`` merges the query, form and JSON body."""

    @cached_property
    def params(self) -> dict[str, Any]:
        """The call's arguments (none for the bytes posted to an upload URL)."""
        if self.path.startswith("/upload/"):
            return {}
        return _params(self.query_string, self.headers, self.body)

    @property
    def api(self) -> str:
        return self.path.removeprefix("/api/")


def _params(query: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if headers.get("content-type", "").startswith("application/json"):
        parsed = parse_json(body)
        params.update(parsed if isinstance(parsed, dict) else {})
    elif body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _error(code: str, status: int = 200) -> ScriptedResponse:
    return ScriptedResponse(status, json.dumps({"ok": False, "error": code}))


def _ok(**fields: Any) -> ScriptedResponse:
    return ScriptedResponse(200, json.dumps({"ok": True, **fields}))


def blocks_problem(blocks: Any) -> str | None:
    """The error code Slack answers for blocks over its limits, or None."""
    if not isinstance(blocks, list) or len(blocks) > BLOCKS_MAX:
        return "invalid_blocks"
    for block in blocks:
        text = (block.get("text") or {}).get("text", "") if isinstance(block, dict) else None
        fields = block.get("fields") or [] if isinstance(block, dict) else None
        if text is None or fields is None:
            return "invalid_blocks"
        if (block.get("type") == "header" and len(text) > HEADER_MAX) or len(text) > SECTION_MAX:
            return "invalid_blocks"
        if len(fields) > FIELDS_MAX or any(len(f.get("text", "")) > FIELD_MAX for f in fields):
            return "invalid_blocks"
    if len(json.dumps(blocks, ensure_ascii=False)) > BLOCKS_CHARS_MAX:
        return "msg_blocks_too_long"
    return None


class FakeSlackAPI(PathScriptedFake):
    """A scriptable fake of the Slack Web API's messaging and file-upload methods."""

    name = "fake Slack Web API"
    methods = ("GET", "POST")

    def __init__(self, *, token: str = BOT_TOKEN, channels: dict[str, str] | None = None) -> None:
        """``channels``: channel ID → name (default ``C0FAKE00001`` → ``support``)."""
        super().__init__()
        self.token = token
        self.channels = dict(channels or {CHANNEL_ID: "support"})
        self.messages: list[dict[str, Any]] = []  # every posted message, oldest first
        self.files: dict[str, dict[str, Any]] = {}  # file id → {filename, length, data}
        self.uploads: list[dict[str, Any]] = []  # completed uploads: file, channel_id, thread_ts

    @property
    def api_url(self) -> str:
        """The ``base_url`` to configure: ``http://127.0.0.1:PORT/api``."""
        return self.base_url + "/api"

    def calls(self, method: str) -> list[WebCall]:
        """The recorded calls of one API method, e.g. ``"chat.postMessage"``."""
        return [r for r in self.requests if r.path == api_path(method)]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        """The replies in the thread of message ``ts``, oldest first (not the parent)."""
        with self._lock:
            return [m for m in self.messages if m.get("thread_ts") == ts and m["ts"] != ts]

    def top_level(self) -> list[dict[str, Any]]:
        """The messages the channel shows (no thread replies), oldest first."""
        with self._lock:
            return [m for m in self.messages if m.get("thread_ts") in (None, m["ts"])]

    def post_message(self, channel: str = CHANNEL_ID, **fields: Any) -> str:
        """Put a message in a channel directly (someone else talking); returns its ts."""
        return self._store(channel, {"text": "hello", **fields})["ts"]

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Any:
        call = WebCall(method, path, query, headers, body)
        params = call.params
        with self._lock:
            self._record(call)
            return self._scripted_or(path, lambda: self._answer(path, headers, params, body))

    # -- behaviour (called with the lock held) ---------------------------------------------------

    def _answer(
        self, path: str, headers: dict[str, str], params: dict[str, Any], body: bytes
    ) -> ScriptedResponse:
        if path.startswith("/upload/"):
            return self._upload(path.removeprefix("/upload/"), body)
        handler = {
            "chat.postMessage": self._post,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete,
            "auth.test": self._auth_test,
        }.get(path.removeprefix("/api/"))
        if handler is None:
            return _error("unknown_method", 404)
        auth = headers.get("authorization")
        if not auth:
            return _error("not_authed")
        if auth != f"Bearer {self.token}":
            return _error("invalid_auth")
        return handler(params)

    def _channel_id(self, value: Any, *, names: bool) -> str | None:
        if value in self.channels:
            return str(value)
        if names and isinstance(value, str):
            return next((i for i, n in self.channels.items() if n == value.lstrip("#")), None)
        return None

    def _store(self, channel: str, fields: dict[str, Any]) -> dict[str, Any]:
        number = len(self.messages) + 1
        message = {"type": "message", "ts": f"{1767225600 + number}.{number:06d}",
                   "channel": channel, **fields}
        self.messages.append(message)
        return message

    def _post(self, params: dict[str, Any]) -> ScriptedResponse:
        channel = self._channel_id(params.get("channel"), names=True)
        if channel is None:
            return _error("channel_not_found")
        blocks, text = params.get("blocks"), params.get("text")
        if not text and not blocks:
            return _error("no_text")
        problem = blocks_problem(blocks) if blocks is not None else None
        meta = params.get("metadata")
        if meta is not None and not (isinstance(meta, dict) and isinstance(
                meta.get("event_type"), str) and isinstance(meta.get("event_payload"), dict)):
            problem = problem or "invalid_metadata_format"
        if problem:
            return _error(problem)
        fields = {"subtype": "bot_message", "bot_id": "B0FAKE", "text": text or "",
                  "blocks": blocks or [], "metadata": meta, "thread_ts": params.get("thread_ts")}
        stored = self._store(channel, {k: v for k, v in fields.items() if v is not None})
        shown = {k: v for k, v in stored.items() if k not in ("channel", "metadata")}
        return _ok(channel=channel, ts=stored["ts"], message=shown)

    def _visible(self, message: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        hidden = {"channel"} | (set() if _truthy(params.get("include_all_metadata"))
                                else {"metadata"})
        return {k: v for k, v in message.items() if k not in hidden}

    def _history(self, params: dict[str, Any]) -> ScriptedResponse:
        channel = self._channel_id(params.get("channel"), names=False)
        if channel is None:
            return _error("channel_not_found")
        limit = int(params.get("limit") or 100)
        top = [m for m in reversed(self.messages) if m["channel"] == channel
               and m.get("thread_ts") in (None, m["ts"])]
        shown = [self._visible(m, params) for m in top[:limit]]
        return _ok(messages=shown, has_more=len(top) > limit, pin_count=0)

    def _replies(self, params: dict[str, Any]) -> ScriptedResponse:
        channel = self._channel_id(params.get("channel"), names=False)
        if channel is None:
            return _error("channel_not_found")
        ts, limit = params.get("ts"), int(params.get("limit") or 100)
        thread = [m for m in self.messages if m["channel"] == channel
                  and (m["ts"] == ts or m.get("thread_ts") == ts)]
        if not thread:
            return _error("thread_not_found")
        shown = [self._visible(m, params) for m in thread[:limit]]
        return _ok(messages=shown, has_more=len(thread) > limit)

    def _auth_test(self, params: dict[str, Any]) -> ScriptedResponse:
        return _ok(url="https://fake.slack.com/", team="Fake Workspace", user="listener",
                   team_id="T0FAKE", user_id="U0FAKE", bot_id="B0FAKE")

    def _upload_url(self, params: dict[str, Any]) -> ScriptedResponse:
        if not params.get("filename") or not str(params.get("length", "")).isdigit():
            return _error("invalid_arguments")
        file_id = f"F0FAKE{len(self.files) + 1:05d}"
        self.files[file_id] = {"filename": params["filename"], "length": int(params["length"]),
                               "data": None}
        return _ok(upload_url=f"{self.base_url}/upload/{file_id}", file_id=file_id)

    def _upload(self, file_id: str, body: bytes) -> ScriptedResponse:
        if file_id not in self.files:
            return ScriptedResponse(404, "not found")
        self.files[file_id]["data"] = body
        return ScriptedResponse(200, f"OK - {len(body)}", {"Content-Type": "text/plain"})

    def _complete(self, params: dict[str, Any]) -> ScriptedResponse:
        try:
            files = json.loads(params.get("files") or "")
        except ValueError:
            return _error("invalid_arguments")
        if not files or any(self.files.get(f.get("id"), {}).get("data") is None for f in files):
            return _error("file_not_found")
        channel = params.get("channel_id")
        if channel is not None and self._channel_id(channel, names=False) is None:
            return _error("channel_not_found")
        for item in files:
            self.uploads.append({"file": item["id"], "title": item.get("title"),
                                 "channel_id": channel, "thread_ts": params.get("thread_ts"),
                                 "data": self.files[item["id"]]["data"]})
        return _ok(files=[{"id": f["id"], "title": f.get("title")} for f in files])
