"""A fake Mastodon instance for tests: real HTTP on 127.0.0.1, an ephemeral port.

The real ``Mastodon.py`` client talks to it (``FakeMastodon.base_url``), so requests, sockets,
timeouts and Mastodon.py's own parsing, error mapping and rate-limit header handling all run::

    with FakeMastodon() as server:
        server.add_status("acme cloud is down #acme", tags=["acme"])
        server.enqueue(429, {"error": "Too many requests"}, path="/api/v1/timelines",
                       headers={"X-RateLimit-Reset": "2026-11-20T12:01:30.000Z"})

What it serves, in the shapes of docs.joinmastodon.org (methods/timelines, methods/search,
methods/instance, entities/Status, entities/Account):
- ``GET /api/v1/instance`` and ``/api/v2/instance``: the version, ``api_versions`` and
  ``configuration.timelines_access`` (Mastodon.py reads them for version and feed checks);
- ``GET /api/v1/timelines/tag/:hashtag``: statuses carrying the tag, newest first, honouring
  ``since_id`` / ``max_id`` / ``min_id`` / ``limit`` (default 20, max 40), with a ``Link`` header
  (``rel="next"`` with ``max_id``, ``rel="prev"`` with ``min_id``); an unknown tag is ``404
  {"error": "Record not found"}``;
- ``GET /api/v2/search?type=statuses``: like Mastodon's full-text search, statuses only for an
  authenticated user, every word (or "quoted phrase") of ``q`` required, newest first;
  ``min_id`` / ``max_id`` become ``after:`` / ``before:`` bounds on ``created_at`` at one-second
  precision, as Mastodon's StatusesSearchService does; ``offset`` and ``limit`` (max 40).
- replies (issue 18; methods/statuses, methods/accounts): ``POST /api/v1/statuses`` (form or
  JSON ``status``, ``in_reply_to_id``, ``visibility``) as the token's account, honouring
  ``Idempotency-Key`` (a repeat returns the status the key made), ``422`` past
  :attr:`FakeMastodon.max_chars`, ``404`` for an unknown ``in_reply_to_id``, ``403`` when
  :attr:`FakeMastodon.scopes` lacks ``write:statuses``; ``GET /api/v1/accounts/verify_credentials``
  and ``GET /api/v1/accounts/:id/statuses`` (newest first, ``limit`` up to 40); a search with
  ``resolve=true`` whose ``q`` is a status URI finds that status;
Every answer carries ``X-RateLimit-Limit/-Remaining/-Reset`` (reset is an ISO 8601 time).
Scripted answers (:meth:`FakeMastodon.enqueue`) take precedence, once each, for matching paths;
status ``0`` (:data:`HANG_UP`) closes the connection without answering. Every request is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape as html_escape
from typing import Any
from urllib.parse import quote

from tests.fakes.base import HANG_UP, FakeHTTPServer, RecordedRequest, ScriptedResponse

__all__ = ["HANG_UP", "HOST", "FakeMastodon", "Scripted", "snowflake"]

HOST = "mastodon.example"  # the instance name inside status URIs (not the fake's address)
_TAG_PATH = re.compile(r"^/api/v1/timelines/tag/(?P<tag>[^/?]+)$")
_ACCOUNT_STATUSES = re.compile(r"^/api/v1/accounts/(?P<id>\d+)/statuses$")


@dataclass(frozen=True)
class Scripted(ScriptedResponse):
    """One answer to give: status, JSON-able body (or raw text), extra headers, delay."""

    body: Any = None
    path: str = ""  # answer only requests whose path starts with this


def snowflake(created_at: datetime, sequence: int = 0) -> str:
    """A Mastodon id: milliseconds since the epoch in the high bits, a sequence in the low 16."""
    return str((int(created_at.timestamp() * 1000) << 16) | (sequence & 0xFFFF))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html).lower()


class FakeMastodon(FakeHTTPServer):
    """A scriptable fake Mastodon instance; a context manager, or call start()/stop()."""

    name = "fake Mastodon"
    methods = ("GET", "POST")
    json_strings = True  # a str body is a JSON string, as Mastodon never answers plain text

    def __init__(self, *, access_token: str | None = None, version: str = "4.3.0") -> None:
        """``access_token``: the only token accepted; a request with another one gets 401."""
        super().__init__()
        self.access_token = access_token
        self.version = version
        self.hashtag_access = "public"  # timelines_access.hashtag_feeds: public|authenticated|...
        self.statuses: list[dict[str, Any]] = []
        self.known_tags: set[str] = set()
        self._sequence = 0
        # the token's account and what it may do (replies); statuses it posted are in statuses
        self.scopes = {"read", "write:statuses"}
        self.max_chars = 500
        self.me = {"id": "9000", "username": "acmesupport", "acct": "acmesupport"}
        self.idempotency: dict[str, dict[str, Any]] = {}

    # -- data and scripting ------------------------------------------------------------------

    def add_status(
        self, content: str, *, tags: Sequence[str] = (), created_at: datetime | None = None,
        acct: str = "ann", followers: int = 10, language: str | None = "en",
        visibility: str = "public", reblog: dict[str, Any] | None = None,
        suspended: bool = False, spoiler_text: str = "",
    ) -> dict[str, Any]:
        """Store a status (content is HTML, as Mastodon serves it) and return its entity."""
        with self._lock:
            self._sequence += 1
            when = created_at or datetime.now(UTC)
            status_id = snowflake(when, self._sequence)
            username = acct.split("@")[0]
            domain = acct.split("@")[1] if "@" in acct else HOST
            account = {
                "id": str(100 + len({s["account"]["acct"] for s in self.statuses})),
                "username": username, "acct": acct, "display_name": username.title(),
                "locked": False, "bot": False, "group": False, "discoverable": True,
                "created_at": "2020-01-01T00:00:00.000Z", "note": "<p></p>",
                "url": f"https://{domain}/@{username}", "avatar": "", "header": "",
                "followers_count": followers, "following_count": 3, "statuses_count": 42,
                "last_status_at": when.strftime("%Y-%m-%d"), "emojis": [], "fields": [],
            }
            if suspended:
                account["suspended"] = True
            status = {
                "id": status_id, "created_at": _iso(when), "in_reply_to_id": None,
                "in_reply_to_account_id": None, "sensitive": bool(spoiler_text),
                "spoiler_text": spoiler_text, "visibility": visibility, "language": language,
                "uri": f"https://{domain}/users/{username}/statuses/{status_id}",
                "url": f"https://{domain}/@{username}/{status_id}", "replies_count": 0,
                "reblogs_count": 0, "favourites_count": 0, "edited_at": None,
                "content": content, "reblog": reblog, "application": None, "account": account,
                "media_attachments": [], "mentions": [], "emojis": [], "card": None,
                "poll": None, "tags": [
                    {"name": t.lower(), "url": f"https://{HOST}/tags/{t.lower()}"} for t in tags
                ],
            }
            self.statuses.append(status)
            self.known_tags.update(t.lower() for t in tags)
            return status

    def enqueue(
        self, status: int = 200, body: Any = None, *, headers: dict[str, str] | None = None,
        delay: float = 0.0, path: str = "",
    ) -> None:
        """Queue an answer for the next request whose path starts with ``path`` (FIFO)."""
        with self._lock:
            self._script.append(Scripted(status, body, dict(headers or {}), delay, path))

    def requests_to(self, prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    # -- request handling (handler threads) ---------------------------------------------------

    def handle(
        self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        return ScriptedResponse(*self._answer(method, path, raw_query, headers, body))

    def _answer(
        self, method: str, path: str, raw_query: str, lowered: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict, float]:
        request = RecordedRequest(method, path, raw_query, lowered, body)
        query = request.query
        with self._lock:
            self._record(request)
            scripted = next((s for s in self._script if path.startswith(s.path)), None)
            if scripted is not None:
                self._script.remove(scripted)
        limits = self._rate_headers()
        if scripted is not None:
            return scripted.status, scripted.body, {**limits, **scripted.headers}, scripted.delay
        token = lowered.get("authorization", "").removeprefix("Bearer ") or None
        if token is not None and token != self.access_token:
            return 401, {"error": "The access token is invalid"}, limits, 0.0
        if method == "POST":
            status, body, extra = self._post(path, request, authed=token is not None)
        else:
            status, body, extra = self._route(path, query, authed=token is not None)
        return status, body, {**limits, **extra}, 0.0

    # -- replies ---------------------------------------------------------------------------

    def posted(self) -> list[dict[str, Any]]:
        """The statuses the token's account created (each reply once, however often asked)."""
        with self._lock:
            return [s for s in self.statuses if s["account"]["id"] == self.me["id"]]

    def _post(self, path: str, request: RecordedRequest, *, authed: bool
              ) -> tuple[int, Any, dict]:
        if path != "/api/v1/statuses":
            return 404, {"error": "Record not found"}, {}
        if not authed:
            return 401, {"error": "The access token is invalid"}, {}
        if "write:statuses" not in self.scopes and "write" not in self.scopes:
            return 403, {"error": "This action is outside the authorized scopes"}, {}
        fields = request.json if isinstance(request.json, dict) else request.form
        key = request.headers.get("idempotency-key")
        with self._lock:
            if key and key in self.idempotency:
                return 200, self.idempotency[key], {}
        text, parent = str(fields.get("status") or ""), fields.get("in_reply_to_id")
        if not text.strip():
            return 422, {"error": "Validation failed: Text can't be blank"}, {}
        if len(text) > self.max_chars:
            return 422, {"error": f"Validation failed: Text character limit of "
                                  f"{self.max_chars} exceeded"}, {}
        with self._lock:
            known = {s["id"] for s in self.statuses}
        if parent is not None and str(parent) not in known:
            return 404, {"error": "Record not found"}, {}
        status = self.add_status(html_escape(text), acct=self.me["acct"], followers=5)
        with self._lock:
            status["account"]["id"] = self.me["id"]
            status["in_reply_to_id"] = str(parent) if parent is not None else None
            status["visibility"] = str(fields.get("visibility") or "public")
            if key:
                self.idempotency[key] = status
        return 200, status, {}

    def _account_statuses(self, account_id: str, query: dict[str, str]) -> tuple[int, Any, dict]:
        with self._lock:
            mine = [s for s in self.statuses if s["account"]["id"] == account_id]
        mine.sort(key=lambda s: int(s["id"]), reverse=True)
        return 200, mine[:min(int(query.get("limit", 20)), 40)], {}

    def _rate_headers(self) -> dict[str, str]:
        reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        return {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299",
                "X-RateLimit-Reset": _iso(reset)}

    def _route(self, path: str, query: dict[str, str], *, authed: bool) -> tuple[int, Any, dict]:
        if path.rstrip("/") == "/api/v1/instance":
            return 200, {"uri": HOST, "title": "Fake", "version": self.version}, {}
        if path.rstrip("/") == "/api/v2/instance":
            return 200, self._instance_v2(), {}
        if path == "/api/v2/search":
            return self._search(query, authed=authed)
        if path == "/api/v1/accounts/verify_credentials":
            return (200, self.me, {}) if authed else (401, {"error": "invalid token"}, {})
        match = _ACCOUNT_STATUSES.match(path)
        if match:
            return self._account_statuses(match["id"], query)
        match = _TAG_PATH.match(path)
        if match:
            return self._tag(match["tag"].lower(), query, authed=authed)
        return 404, {"error": "Record not found"}, {}

    def _instance_v2(self) -> dict[str, Any]:
        feeds = {"local": self.hashtag_access, "remote": self.hashtag_access}
        public = {"local": "public", "remote": "public"}
        return {
            "domain": HOST, "title": "Fake", "version": self.version,
            "api_versions": {"mastodon": 2},
            "configuration": {"timelines_access": {
                "live_feeds": public, "hashtag_feeds": feeds, "trending_link_feeds": public,
            }},
        }

    def _tag(self, tag: str, query: dict[str, str], *, authed: bool) -> tuple[int, Any, dict]:
        if tag not in self.known_tags:
            return 404, {"error": "Record not found"}, {}
        if self.hashtag_access != "public" and not authed:
            return 401, {"error": "This method requires an authenticated user"}, {}
        with self._lock:
            found = [s for s in self.statuses if tag in {t["name"] for t in s["tags"]}]
        page = _window(found, query)
        return 200, page, self._links(f"/api/v1/timelines/tag/{quote(tag)}", page)

    def _links(self, path: str, page: list[dict[str, Any]]) -> dict[str, str]:
        if not page:
            return {}
        base = f"{self.base_url}{path}"
        return {"Link": f'<{base}?max_id={page[-1]["id"]}>; rel="next", '
                        f'<{base}?min_id={page[0]["id"]}>; rel="prev"'}

    def _search(self, query: dict[str, str], *, authed: bool) -> tuple[int, Any, dict]:
        if ("offset" in query or query.get("resolve") in ("1", "true")) and not authed:
            return 401, {"error": "The access token is invalid"}, {}
        empty: dict[str, Any] = {"accounts": [], "statuses": [], "hashtags": []}
        if not authed or query.get("type", "statuses") != "statuses":
            return 200, empty, {}
        if query.get("resolve") in ("1", "true") and query.get("q", "").startswith("https://"):
            with self._lock:  # a status URI: the instance resolves it (methods/search)
                hit = [s for s in self.statuses if s["uri"] == query["q"]]
            return 200, {**empty, "statuses": hit}, {}
        needles = [p or w for p, w in re.findall(r'"([^"]+)"|(\S+)', query.get("q", "").lower())]
        with self._lock:
            found = [s for s in self.statuses if all(n in _plain(s["content"]) for n in needles)]
        found.sort(key=lambda s: int(s["id"]), reverse=True)
        if "max_id" in query:
            found = [s for s in found if _ms(s) < _second(query["max_id"])]
        if "min_id" in query:
            found = [s for s in found if _ms(s) > _second(query["min_id"])]
        offset = int(query.get("offset", 0))
        limit = min(int(query.get("limit", 20)), 40)
        return 200, {**empty, "statuses": found[offset:offset + limit]}, {}


def _ms(status: dict[str, Any]) -> int:
    return int(status["id"]) >> 16


def _second(snowflake_id: str) -> int:
    """The id's time truncated to the second (Mastodon renders it with ``iso8601``), in ms."""
    return (int(snowflake_id) >> 16) // 1000 * 1000


def _window(found: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """Mastodon's id window: since_id/max_id bound it, min_id pages forward from an id."""
    ordered = sorted(found, key=lambda s: int(s["id"]), reverse=True)
    if "max_id" in query:
        ordered = [s for s in ordered if int(s["id"]) < int(query["max_id"])]
    if "since_id" in query:
        ordered = [s for s in ordered if int(s["id"]) > int(query["since_id"])]
    limit = min(int(query.get("limit", 20)), 40)
    if "min_id" in query:
        newer = [s for s in ordered if int(s["id"]) > int(query["min_id"])]
        return newer[-limit:]  # the oldest ones just above min_id, still newest first
    return ordered[:limit]
