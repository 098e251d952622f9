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

Writing (the reply writer), on the account's PDS, with a session token:
- ``POST /xrpc/com.atproto.repo.createRecord``: ``{repo, collection, rkey?, validate?, record}``
  → ``{uri, cid, commit: {cid, rev}, validationStatus}``. An ``app.bsky.feed.post`` record is
  validated (text at most 300 graphemes and 3000 bytes, ``createdAt``, a ``reply`` whose
  ``root``/``parent`` are strong refs); a record key must be a TID. A key already taken answers
  what the reference PDS answers today: **500 InternalServerError** (bluesky-social/atproto
  #3718), so a second create never makes a second post. ``write_scope = False`` answers 403
  ``ScopeMissingError`` naming ``repo:app.bsky.feed.post?action=create`` (an OAuth session
  without that permission).
- ``GET /xrpc/com.atproto.repo.getRecord?repo&collection&rkey``: ``{uri, cid, value}``, or 400
  ``RecordNotFound``.
- ``GET /xrpc/app.bsky.feed.getPosts?uris=…``: the postViews of the posts that exist, in order;
  deleted ones (:meth:`FakeBluesky.delete`) are simply left out, as the AppView does.
:attr:`FakeBluesky.records` holds what was created (``{uri: {uri, cid, value}}``);
:meth:`FakeBluesky.requests_to` is the request log per path.
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
from urllib.parse import parse_qs

from tests.fakes.base import HANG_UP, FakeHTTPServer, RecordedRequest, ScriptedResponse

__all__ = ["CREATE_RECORD", "CREATE_SESSION", "GET_POSTS", "GET_RECORD", "HANG_UP",
           "REFRESH_SESSION", "SEARCH", "FakeBluesky", "Scripted", "iso_ms"]

SEARCH = "/xrpc/app.bsky.feed.searchPosts"
CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH_SESSION = "/xrpc/com.atproto.server.refreshSession"
CREATE_RECORD = "/xrpc/com.atproto.repo.createRecord"
GET_RECORD = "/xrpc/com.atproto.repo.getRecord"
GET_POSTS = "/xrpc/app.bsky.feed.getPosts"
POST_COLLECTION = "app.bsky.feed.post"
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


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
        self.records: dict[str, dict[str, Any]] = {}  # created through createRecord, by URI
        self.write_scope = True  # False: the session lacks repo:app.bsky.feed.post?action=create
        self._deleted: set[str] = set()
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

    def delete(self, uri: str) -> None:
        """The post is deleted: getPosts leaves it out, searchPosts no longer finds it."""
        with self._lock:
            self._deleted.add(uri)

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
        status, answer = self._route(method, path, query, data, token, raw_query)
        return status, answer, limits, 0.0

    def _route(self, method: str, path: str, query: dict[str, str], data: Any,
               token: str, raw_query: str = "") -> tuple[int, Any]:
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
        if path in (CREATE_RECORD, GET_RECORD, GET_POSTS):
            if not token:
                return 401, {"error": "AuthenticationRequired", "message": "Authentication Required"}
            if token not in self._tokens:
                return 400, {"error": "ExpiredToken", "message": "Token has expired"}
            if path == CREATE_RECORD and method == "POST":
                return self._create_record(data)
            if path == GET_RECORD and method == "GET":
                return self._get_record(query)
            if path == GET_POSTS and method == "GET":
                return self._get_posts(parse_qs_list(raw_query, "uris"))
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

    # -- writing -------------------------------------------------------------------------------

    def _create_record(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("record"), dict):
            return 400, {"error": "InvalidRequest", "message": "Input must have the property \"record\""}
        if data.get("repo") not in (self.did, self.account_handle):
            return 400, {"error": "InvalidRequest", "message": f"Could not find repo: {data.get('repo')}"}
        if not self.write_scope:
            return 403, {"error": "ScopeMissingError", "message": "Missing required scope "
                         f"\"repo:{POST_COLLECTION}?action=create\""}
        collection, record = data.get("collection"), data["record"]
        if collection != POST_COLLECTION or record.get("$type") != POST_COLLECTION:
            return 400, {"error": "InvalidRequest", "message": "Invalid collection or $type"}
        problem = _post_problem(record)
        if problem:
            return 400, {"error": "InvalidRequest",
                         "message": f"Invalid {POST_COLLECTION} record: {problem}"}
        with self._lock:
            rkey = data.get("rkey") or _next_tid(len(self.records))
            if not _TID.match(rkey):
                return 400, {"error": "InvalidRequest", "message": f"Invalid TID: {rkey}"}
            uri = f"at://{self.did}/{POST_COLLECTION}/{rkey}"
            if uri in self.records:  # what the reference PDS answers today (atproto #3718)
                return 500, {"error": "InternalServerError", "message": "Internal Server Error"}
            cid = f"bafyreiwrite{len(self.records):020d}"
            self.records[uri] = {"uri": uri, "cid": cid, "value": record}
        return 200, {"uri": uri, "cid": cid, "validationStatus": "valid",
                     "commit": {"cid": f"bafyreicommit{len(self.records):018d}",
                                "rev": _next_tid(len(self.records))}}

    def _get_record(self, query: dict[str, str]) -> tuple[int, Any]:
        repo = query.get("repo")
        did = self.did if repo == self.account_handle else repo
        uri = f"at://{did}/{query.get('collection')}/{query.get('rkey')}"
        with self._lock:
            found = self.records.get(uri)
        if found is None:
            return 400, {"error": "RecordNotFound", "message": f"Could not locate record: {uri}"}
        return 200, found

    def _get_posts(self, uris: list[str]) -> tuple[int, Any]:
        if not 1 <= len(uris) <= 25:
            return 400, {"error": "InvalidRequest", "message": "Error: uris must have 1-25 items"}
        with self._lock:
            by_uri = {p["uri"]: p for p in self.posts if p["uri"] not in self._deleted}
        return 200, {"posts": [by_uri[u] for u in uris if u in by_uri]}

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
            found = [p for p in self.posts if p["uri"] not in self._deleted
                     and all(n in p["record"]["text"].lower() for n in needles)
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


def parse_qs_list(query: str, name: str) -> list[str]:
    """Every value of a repeated query parameter (``uris=a&uris=b``)."""
    return parse_qs(query, keep_blank_values=True).get(name, [])


_S32 = "234567abcdefghijklmnopqrstuvwxyz"


def _next_tid(number: int) -> str:
    """A TID the PDS would choose: microseconds since the epoch, then a clock id."""
    value = (int(time.time() * 1_000_000) + number) << 10
    return "".join(_S32[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def _post_problem(record: dict[str, Any]) -> str | None:
    """What the lexicon refuses in an app.bsky.feed.post record, or None."""
    text = record.get("text")
    if not isinstance(text, str):
        return "Record/text must be a string"
    if len(text.encode("utf-8")) > 3000 or len(text) > 300:  # graphemes <= code points
        return "Record/text must not be longer than 300 graphemes"
    if not isinstance(record.get("createdAt"), str):
        return 'Record must have the property "createdAt"'
    reply = record.get("reply")
    if reply is not None:
        for part in ("root", "parent"):
            ref = reply.get(part) if isinstance(reply, dict) else None
            if not isinstance(ref, dict) or not str(ref.get("uri", "")).startswith("at://") \
                    or not isinstance(ref.get("cid"), str):
                return f"Record/reply/{part} must be a strong ref (uri, cid)"
    return None
