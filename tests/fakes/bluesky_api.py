"""A fake Bluesky XRPC service for tests: real HTTP on 127.0.0.1, an ephemeral port.

The real ``atproto`` client (httpx underneath) talks to it (``FakeBluesky.base_url``), so request
building, sessions, error mapping and response parsing are all the library's own::

    with FakeBluesky(handle="brand.bsky.social", password="app-pass") as server:
        server.add_post("acme cloud is down", created_at=...)
        server.enqueue(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                       headers={"ratelimit-reset": "1795000000"})

What it serves, in the lexicons' shapes (app.bsky.feed.searchPosts, app.bsky.feed.defs#postView,
com.atproto.server.createSession / refreshSession):
- ``GET /xrpc/app.bsky.feed.searchPosts``: posts whose text holds every word (or "quoted phrase")
  of ``q``, ``sort=latest`` (newest ``sortAt`` first; sortAt = the earlier of createdAt and
  indexedAt), ``since`` inclusive and ``until`` exclusive on sortAt, ``lang``, ``limit`` (default
  25, max 100) and an opaque ``cursor``; answers ``{cursor?, hitsTotal, posts}``. With
  ``require_auth`` it answers 401 ``AuthenticationRequired`` unless a session token is sent.
- ``POST /xrpc/com.atproto.server.createSession``: ``{identifier, password}`` → a session whose
  ``didDoc`` names this server as the account's PDS; wrong credentials → 401.
- ``POST /xrpc/com.atproto.server.refreshSession``: a new session for a valid refresh token.
Every answer carries ``ratelimit-limit/-remaining/-reset`` (reset = Unix time) and
``ratelimit-policy``. Scripted answers (:meth:`FakeBluesky.enqueue`) take precedence, once each,
for matching paths; status ``0`` (:data:`HANG_UP`) closes the connection without answering.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import HANG_UP, FakeHTTPServer, RecordedRequest, ScriptedResponse

__all__ = ["CREATE_SESSION", "HANG_UP", "REFRESH_SESSION", "SEARCH", "FakeBluesky", "Scripted",
           "iso_ms"]

SEARCH = "/xrpc/app.bsky.feed.searchPosts"
CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH_SESSION = "/xrpc/com.atproto.server.refreshSession"


@dataclass(frozen=True)
class Scripted(ScriptedResponse):
    """One answer: status, body (JSON-able, or bytes sent as is), headers, delay, path prefix."""

    body: Any = None
    path: str = ""


def iso_ms(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _sort_at(post: dict[str, Any]) -> datetime:
    """The earlier of createdAt and indexedAt; indexedAt alone when createdAt is garbage."""
    indexed = _when(post["indexedAt"])
    try:
        return min(_when(post["record"]["createdAt"]), indexed)
    except (KeyError, TypeError, ValueError):
        return indexed


def _jwt(subject: str, scope: str) -> str:
    """An unsigned-looking JWT: the client only decodes the payload for its ``exp``."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    now = int(time.time())
    payload = {"scope": scope, "sub": subject, "iat": now, "exp": now + 7200,
               "aud": "did:web:fake.example", "jti": f"{now}-{threading.get_ident()}"}
    return f"{part({'alg': 'HS256', 'typ': 'at+jwt'})}.{part(payload)}.c2ln"


class FakeBluesky(FakeHTTPServer):
    """A scriptable fake AppView + PDS; a context manager, or call start()/stop().

    The account's handle (constructor argument ``handle``) is kept as :attr:`account_handle`,
    because ``handle`` is the request hook of :class:`FakeHTTPServer`.
    """

    name = "fake Bluesky"
    json_strings = True  # a str body is a JSON string: XRPC answers JSON, never plain text

    def __init__(self, *, handle: str | None = None, password: str | None = None,
                 require_auth: bool = False) -> None:
        super().__init__()
        self.account_handle, self.password = handle, password
        self.require_auth = require_auth
        self.did = "did:plc:fakeaccount000000000000"
        self.posts: list[dict[str, Any]] = []
        self._tokens: set[str] = set()
        self._refresh: set[str] = set()

    # -- data and scripting ------------------------------------------------------------------

    def add_post(
        self, text: str, *, created_at: datetime, indexed_at: datetime | None = None,
        handle: str = "ann.bsky.social", langs: Sequence[str] | None = ("en",),
        labels: Sequence[str] = (), rkey: str | None = None,
    ) -> dict[str, Any]:
        """Store a post and return its postView."""
        with self._lock:
            number = len(self.posts)
            did = f"did:plc:{re.sub(r'[^a-z0-9]', '', handle.lower())[:24]:0<24}"
            uri = f"at://{did}/app.bsky.feed.post/{rkey or f'3l{number:011d}'}"
            record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": text,
                                      "createdAt": iso_ms(created_at)}
            if langs is not None:
                record["langs"] = list(langs)
            view = {
                "uri": uri, "cid": f"bafyreifake{number:020d}",
                "author": {"did": did, "handle": handle, "displayName": handle.split(".")[0],
                           "labels": [], "createdAt": "2023-05-01T00:00:00.000Z"},
                "record": record, "replyCount": 0, "repostCount": 1, "likeCount": 2,
                "quoteCount": 0, "indexedAt": iso_ms(indexed_at or created_at),
                "labels": [{"src": "did:plc:moderation00000000000000", "uri": uri,
                            "val": v, "cts": iso_ms(created_at)} for v in labels],
            }
            self.posts.append(view)
            return view

    def enqueue(self, status: int = 200, body: Any = None, *,
                headers: dict[str, str] | None = None, delay: float = 0.0,
                path: str = SEARCH) -> None:
        """Queue an answer for the next request whose path starts with ``path`` (FIFO)."""
        with self._lock:
            self._script.append(Scripted(status, body, dict(headers or {}), delay, path))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- request handling (handler threads) ---------------------------------------------------

    def handle(
        self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        return ScriptedResponse(*self._answer(method, path, raw_query, headers, body))

    def _answer(self, method: str, path: str, raw_query: str, lowered: dict[str, str],
                body: bytes) -> tuple[int, Any, dict[str, str], float]:
        request = RecordedRequest(method, path, raw_query, lowered, body)
        query, data = request.query, request.json
        with self._lock:
            self._record(request)
            scripted = next((s for s in self._script if path.startswith(s.path)), None)
            if scripted is not None:
                self._script.remove(scripted)
        limits = {"ratelimit-limit": "3000", "ratelimit-remaining": "2999",
                  "ratelimit-reset": str(int(time.time()) + 300), "ratelimit-policy": "3000;w=300"}
        if scripted is not None:
            return scripted.status, scripted.body, {**limits, **scripted.headers}, scripted.delay
        token = lowered.get("authorization", "").removeprefix("Bearer ")
        status, answer = self._route(method, path, query, data, token)
        return status, answer, limits, 0.0

    def _route(self, method: str, path: str, query: dict[str, str], data: Any,
               token: str) -> tuple[int, Any]:
        if path == SEARCH and method == "GET":
            if token and token not in self._tokens:
                return 400, {"error": "ExpiredToken", "message": "Token has expired"}
            if self.require_auth and not token:
                return 401, {"error": "AuthenticationRequired", "message": "Authentication Required"}
            return self._search(query)
        if path == CREATE_SESSION and method == "POST":
            data = data if isinstance(data, dict) else {}
            if (data.get("identifier"), data.get("password")) != (self.account_handle, self.password):
                return 401, {"error": "AuthenticationRequired",
                             "message": "Invalid identifier or password"}
            return 200, self._session()
        if path == REFRESH_SESSION and method == "POST":
            if token not in self._refresh:
                return 400, {"error": "ExpiredToken", "message": "Token has expired"}
            return 200, self._session()
        return 501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}

    def _session(self) -> dict[str, Any]:
        access, refresh = _jwt(self.did, "com.atproto.appPass"), _jwt(self.did, "refresh")
        with self._lock:
            self._tokens.add(access)
            self._refresh.add(refresh)
        did_doc = {
            "@context": ["https://www.w3.org/ns/did/v1"], "id": self.did,
            "alsoKnownAs": [f"at://{self.account_handle}"], "verificationMethod": [],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                         "serviceEndpoint": self.base_url}],
        }
        return {"accessJwt": access, "refreshJwt": refresh, "handle": self.account_handle,
                "did": self.did, "didDoc": did_doc, "active": True}

    def _search(self, query: dict[str, str]) -> tuple[int, Any]:
        q = query.get("q", "")
        if not q.strip():
            return 400, {"error": "InvalidRequest", "message": 'Error: Params must have the property "q"'}
        limit = int(query.get("limit", 25))
        if not 1 <= limit <= 100:
            return 400, {"error": "InvalidRequest", "message": "Error: limit must be <= 100"}
        try:
            since = _when(query["since"]) if "since" in query else None
            until = _when(query["until"]) if "until" in query else None
        except ValueError:
            return 400, {"error": "InvalidRequest", "message": "Error: since/until: invalid datetime"}
        needles = [p or w for p, w in re.findall(r'"([^"]+)"|(\S+)', q.lower())]
        with self._lock:
            found = [p for p in self.posts
                     if all(n in p["record"]["text"].lower() for n in needles)
                     and (since is None or _sort_at(p) >= since)
                     and (until is None or _sort_at(p) < until)
                     and ("lang" not in query or query["lang"] in p["record"].get("langs", []))]
        found.sort(key=_sort_at, reverse=True)
        offset = int(query.get("cursor") or 0)
        page = found[offset:offset + limit]
        answer: dict[str, Any] = {"hitsTotal": len(found), "posts": page}
        if offset + limit < len(found):
            answer["cursor"] = str(offset + limit)
        return 200, answer
