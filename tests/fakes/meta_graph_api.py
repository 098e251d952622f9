"""A fake Meta Graph API (Facebook Pages and Instagram): real HTTP on 127.0.0.1, an ephemeral port.

The real sources (httpx through the network guard) talk to it (``FakeGraph.base_url``); nothing
of ours is mocked. What it serves, in the shapes of Meta's Graph API reference, under
``/{version}/…`` (any ``vNN.N``; :attr:`FakeGraph.versions` records those asked for):

- ``GET /{page-id}/posts`` and ``/{page-id}/visitor_posts``: the Page's posts, newest first by
  ``created_time``; ``since`` / ``until`` (Unix seconds) filter them;
- ``GET /{post-id}/comments``: ``filter=toplevel`` (default: top-level comments) or ``stream``
  (every comment and reply, flat); ``order=chronological`` (default) or ``reverse_chronological``;
- ``GET /{ig-user-id}/media`` (newest first; ``comments_count`` counts replies too),
  ``GET /{ig-user-id}/tags`` (media the account is tagged in, newest first) and
  ``GET /{ig-media-id}/comments`` (top-level comments, newest first unless
  :attr:`FakeGraph.ig_oldest_first`, each with a ``replies`` edge field, oldest first);
- ``GET /{id}``: any object's fields (``?fields=id,name``);
- ``fields``: only the fields asked for, nested ones too (``from{id,name}``,
  ``replies{id,text}``); ``from`` is left out for commenters who did not allow it
  (``author=None``), as Graph leaves it out;
- ``limit`` (default 25, at most 100) and cursor paging: ``{"data": [...], "paging":
  {"cursors": {"before", "after"}, "next"}}``; ``next`` is there only when more follows and, as
  Graph's, holds ``access_token=…``; ``after`` is the id of the page's last item (base64), so a
  page stays in place when newer items arrive; an ``after`` whose item was deleted is refused
  as Graph refuses a bad parameter (code 100);
- the token in ``Authorization: Bearer`` or ``access_token``; none → code 104, another → code 190
  (``OAuthException``, HTTP 400); an unknown id → code 100 subcode 33 (``GraphMethodException``);
- every answer carries ``x-app-usage`` (:attr:`FakeGraph.app_usage`) and, when set,
  ``x-business-use-case-usage`` (:attr:`FakeGraph.buc_usage`).

Scripting: :meth:`FakeGraph.enqueue` queues a raw answer for the next request whose path ends
with ``path`` (any path when empty), used once, before the normal answer;
:func:`graph_error` builds Graph's error body. Every request is recorded
(:meth:`FakeGraph.requests_to`).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse

TOKEN = "EAAGfake0PageToken0x7Yq2Lm9Vn4Ws8Dk3Hj6Rt1Zp5Bc"
VERSION = "v26.0"
_PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)(?:/([a-z_]+))?$")
_ids = itertools.count(1)


def graph_time(dt: datetime) -> str:
    """Graph's time format: ``2026-11-20T11:50:00+0000``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def graph_error(code: int, message: str, *, subcode: int | None = None,
                kind: str = "OAuthException") -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code,
                             "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@dataclass(frozen=True)
class Scripted(ScriptedResponse):
    body: Any = None
    path: str = ""


def _fields(spec: str) -> dict[str, dict[str, Any] | None]:
    """``id,from{id,name}`` → ``{"id": None, "from": {"id": None, "name": None}}``."""
    out: dict[str, dict[str, Any] | None] = {}
    depth, start = 0, 0
    parts = []
    for i, char in enumerate(spec):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    parts.append(spec[start:])
    for part in filter(None, (p.strip() for p in parts)):
        if "{" in part:
            name, inner = part.split("{", 1)
            out[name.split(".")[0]] = _fields(inner.rsplit("}", 1)[0])
        else:
            out[part.split(".")[0]] = None
    return out


class FakeGraph(FakeHTTPServer):
    """The fake Graph API; a context manager, add Pages/posts/comments/media, point base_url."""

    name = "fake Meta Graph API"
    methods = ("GET",)

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.objects: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str], list[str]] = {}
        self.app_usage: dict[str, Any] = {"call_count": 2, "total_cputime": 1, "total_time": 1}
        self.buc_usage: dict[str, Any] | None = None
        self.ig_oldest_first = False
        self.versions: list[str] = []

    # -- building the graph ----------------------------------------------------------------

    def _add(self, obj: dict[str, Any], *edges: tuple[str, str]) -> dict[str, Any]:
        with self._lock:
            self.objects[obj["id"]] = obj
            for edge in edges:
                self.edges.setdefault(edge, []).append(obj["id"])
        return obj

    def add_page(self, page_id: str, name: str = "Acme") -> dict[str, Any]:
        return self._add({"id": page_id, "name": name})

    def add_post(self, page_id: str, message: str | None, at: datetime, *,
                 post_id: str | None = None, visitor: str | None = None) -> dict[str, Any]:
        post_id = post_id or f"{page_id}_{next(_ids) + 7000}"
        post: dict[str, Any] = {"id": post_id, "created_time": graph_time(at),
                                "permalink_url": f"https://www.facebook.com/{post_id}"}
        if message is not None:
            post["message"] = message
        if visitor:
            post["from"] = {"id": str(next(_ids) + 9000), "name": visitor}
        return self._add(post, (page_id, "visitor_posts" if visitor else "posts"))

    def add_comment(self, post_id: str, message: str | None, at: datetime, *,
                    author: str | None = "Ann Smith", parent: str | None = None,
                    comment_id: str | None = None) -> dict[str, Any]:
        comment_id = comment_id or f"{post_id.split('_')[-1]}_{next(_ids) + 50000}"
        comment: dict[str, Any] = {
            "id": comment_id, "created_time": graph_time(at),
            "permalink_url": f"https://www.facebook.com/{post_id}?comment_id="
                             f"{comment_id.split('_')[-1]}",
            "_post": post_id,
        }
        if message is not None:
            comment["message"] = message
        if author is not None:
            comment["from"] = {"id": str(next(_ids) + 80000), "name": author}
        if parent is not None:
            comment["parent"] = {"id": parent}
        return self._add(comment, (post_id, "all_comments"),
                         *([(post_id, "comments")] if parent is None else []))

    def add_ig_user(self, user_id: str, username: str = "acme") -> dict[str, Any]:
        return self._add({"id": user_id, "username": username})

    def add_media(self, user_id: str, caption: str, at: datetime, *,
                  media_id: str | None = None) -> dict[str, Any]:
        media_id = media_id or str(17900000000000000 + next(_ids))
        username = self.objects.get(user_id, {}).get("username", "acme")
        return self._add({"id": media_id, "caption": caption, "timestamp": graph_time(at),
                          "permalink": f"https://www.instagram.com/p/C{media_id[-8:]}/",
                          "username": username, "media_type": "IMAGE"},
                         (user_id, "media"))

    def add_tag(self, user_id: str, caption: str, at: datetime, *,
                username: str = "fan.account") -> dict[str, Any]:
        media_id = str(18000000000000000 + next(_ids))
        return self._add({"id": media_id, "caption": caption, "timestamp": graph_time(at),
                          "permalink": f"https://www.instagram.com/p/T{media_id[-8:]}/",
                          "username": username, "media_type": "IMAGE"},
                         (user_id, "tags"))

    def add_ig_comment(self, media_id: str, text: str | None, at: datetime, *,
                       username: str | None = "jane.doe", parent: str | None = None
                       ) -> dict[str, Any]:
        comment_id = str(17850000000000000 + next(_ids))
        comment: dict[str, Any] = {"id": comment_id, "timestamp": graph_time(at),
                                   "like_count": 0, "_media": media_id}
        if text is not None:
            comment["text"] = text
        if username is not None:
            comment["username"] = username
        edge = (parent, "replies") if parent else (media_id, "comments")
        return self._add(comment, edge)

    def delete(self, object_id: str) -> None:
        with self._lock:
            self.objects.pop(object_id, None)
            for ids in self.edges.values():
                if object_id in ids:
                    ids.remove(object_id)

    # -- scripting and inspection ----------------------------------------------------------

    def enqueue(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
                delay: float = 0.0, *, path: str = "") -> None:
        """Answer the next request whose path ends with ``path`` with exactly this, once."""
        with self._lock:
            self._script.append(Scripted(status, body, dict(headers or {}), delay, path=path))

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(suffix)]

    # -- serving -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
               ) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        with self._lock:
            self._record(request)
            scripted = next((s for s in self._script if path.endswith(s.path)), None)
            if scripted is not None:
                self._script.remove(scripted)
                return ScriptedResponse(scripted.status, scripted.body, scripted.headers,
                                        scripted.delay)
            status, answer = self._answer(path, request.query, headers)
        return ScriptedResponse(status, answer, self._usage_headers())

    def _usage_headers(self) -> dict[str, str]:
        headers = {"x-app-usage": json.dumps(self.app_usage), "facebook-api-version": VERSION,
                   "x-fb-trace-id": "AbCdEfGhIjK"}
        if self.buc_usage is not None:
            headers["x-business-use-case-usage"] = json.dumps(self.buc_usage)
        return headers

    def _answer(self, path: str, params: dict[str, str], headers: dict[str, str]
                ) -> tuple[int, Any]:
        bearer = headers.get("authorization", "")
        token = bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") \
            else params.get("access_token")
        if not token:
            return 400, graph_error(104, "An access token is required to request this "
                                    "resource.")
        if token != self.token:
            return 400, graph_error(190, "Invalid OAuth access token - Cannot parse access "
                                    "token")
        match = _PATH.match(path)
        if not match:
            return 400, graph_error(2500, "Unknown path components: " + path)
        version, node, edge = match.groups()
        self.versions.append(version)
        if node not in self.objects:
            return 400, graph_error(
                100, f"Unsupported get request. Object with ID '{node}' does not exist, cannot "
                "be loaded due to missing permissions, or does not support this operation. "
                "Please read the Graph API documentation at "
                "https://developers.facebook.com/docs/graph-api", subcode=33,
                kind="GraphMethodException")
        fields = _fields(params.get("fields", "id"))
        if edge is None:
            return 200, self._project(self.objects[node], fields)
        items = self._edge(node, edge, params)
        if items is None:
            return 400, graph_error(100, f"(#100) Tried accessing nonexisting field ({edge})")
        try:
            limit = min(100, max(1, int(params.get("limit", "25"))))
        except ValueError:
            return 400, graph_error(100, "(#100) Param limit must be a number")
        start = 0
        if params.get("after"):
            try:
                last = base64.b64decode(params["after"]).decode()
            except ValueError:
                last = ""
            ids = [item["id"] for item in items]
            if last not in ids:
                return 400, graph_error(100, "(#100) The after parameter is not a valid cursor",
                                        kind="OAuthException")
            start = ids.index(last) + 1
        chunk = items[start:start + limit]
        answer: dict[str, Any] = {"data": [self._project(i, fields) for i in chunk]}
        if chunk:
            answer["paging"] = {"cursors": {
                "before": base64.b64encode(chunk[0]["id"].encode()).decode(),
                "after": base64.b64encode(chunk[-1]["id"].encode()).decode()}}
            if start + limit < len(items):
                answer["paging"]["next"] = (
                    f"{self.base_url}/{version}/{node}/{edge}?access_token={token}&limit={limit}"
                    f"&after={answer['paging']['cursors']['after']}")
        return 200, answer

    def _edge(self, node: str, edge: str, params: dict[str, str]) -> list[dict[str, Any]] | None:
        def stamp(obj: dict[str, Any]) -> str:
            return str(obj.get("created_time") or obj.get("timestamp"))

        if edge in ("posts", "visitor_posts", "media", "tags"):
            items = [self.objects[i] for i in self.edges.get((node, edge), [])]
            items.sort(key=lambda o: (stamp(o), o["id"]), reverse=True)
            if "since" in params:
                since = datetime.fromtimestamp(int(params["since"]), UTC)
                items = [o for o in items if _parse(stamp(o)) >= since]
            if "until" in params:
                until = datetime.fromtimestamp(int(params["until"]), UTC)
                items = [o for o in items if _parse(stamp(o)) <= until]
            return items
        if edge == "comments":
            if node in self._media_ids():
                items = [self.objects[i] for i in self.edges.get((node, "comments"), [])]
                items.sort(key=lambda o: (stamp(o), o["id"]), reverse=not self.ig_oldest_first)
                return items
            kind = "all_comments" if params.get("filter") == "stream" else "comments"
            items = [self.objects[i] for i in self.edges.get((node, kind), [])]
            items.sort(key=lambda o: (stamp(o), o["id"]),
                       reverse=params.get("order") == "reverse_chronological")
            return items
        if edge == "replies":
            return [self.objects[i] for i in self.edges.get((node, "replies"), [])]
        return None

    def _project(self, obj: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in fields.items():
            if name == "replies":
                replies = [self.objects[i] for i in self.edges.get((obj["id"], "replies"), [])]
                if replies:
                    out["replies"] = {"data": [self._project(r, sub or {"id": None})
                                               for r in replies]}
                continue
            if name == "comments_count" and obj["id"] in self._media_ids():
                top = self.edges.get((obj["id"], "comments"), [])
                out[name] = len(top) + sum(len(self.edges.get((c, "replies"), [])) for c in top)
                continue
            if name not in obj or name.startswith("_"):
                continue
            value = obj[name]
            if isinstance(value, dict) and sub:
                value = {k: v for k, v in value.items() if k in sub}
            out[name] = value
        return out

    def _media_ids(self) -> set[str]:
        return {m for (_, e), ms in self.edges.items() if e == "media" for m in ms}


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
