"""A fake Discourse forum for tests: real HTTP on 127.0.0.1, an ephemeral port.

The Discourse source talks to it through its real httpx client and the network guard::

    with FakeDiscourse() as forum:
        topic = forum.add_topic("Acme is down", "<p>since this morning</p>", username="ann")
        forum.add_post(topic, "<p>same here</p>", username="bob")
        forum.rate_limit(12)  # the next request: 429, Retry-After 12, wait_seconds 12

What it serves, in the shapes of docs.discourse.org (openapi: posts, search, topics,
categories) and Discourse's controllers:

- ``GET /posts.json?before=<id>``: ``{"latest_posts": [...]}``, public regular posts newest
  first (deleted, hidden, whispers, small actions and posts of deleted topics left out, as
  ``LatestPostsQuery.public_posts`` does unless :attr:`FakeDiscourse.show_everything`), ids
  strictly below ``before``, :attr:`FakeDiscourse.page_size` (50) a page; each post with
  ``raw``, ``topic_title``, ``topic_slug``, ``category_id`` as the serializer adds them;
- ``GET /search.json?q=…&page=N``: full-page search. Every word of ``q`` must start a word of
  the post or its topic title (Discourse's prefix tsquery), "quoted phrases" must appear as
  they are; ``order:latest``, ``after:YYYY-MM-DD`` (posts created after that day's start),
  ``category:``/``categories:`` (slug, name or id, subcategories included); results aggregated
  one post per topic (its newest matching post), newest first, :attr:`search_page_size` (50) a
  page, pages past 10 refused with 400; ``posts`` carry only a ``blurb``, ``topics`` the titles,
  ``grouped_search_result.more_full_page_results`` is true when more follow, else null;
- ``GET /t/{id}.json``: the topic with ``post_stream.posts`` (its first :attr:`chunk` posts) and
  ``post_stream.stream`` (every post id); a deleted or unknown topic is 404;
- ``GET /t/{id}/posts.json?post_ids[]=…``: ``{"post_stream": {"posts": [...]}, "id": …}``;
- ``GET /categories.json?include_subcategories=true``: ``category_list.categories`` with
  ``subcategory_ids`` and ``subcategory_list``;
- ``GET /session/current.json``: ``{"current_user": …}`` for a valid key, 404 without one;
  ``GET /site/basic-info.json``: the title.

With :attr:`FakeDiscourse.api_key` set, a request carrying another ``Api-Key`` (or none with
:attr:`login_required`) is refused 403 ``invalid_access``, as Discourse does. 429s carry
``Retry-After`` and ``{"errors": […], "error_type": "rate_limit", "extras": {"wait_seconds":
N}}``. Scripted answers (:meth:`enqueue`) win, once each, for requests whose path starts with
theirs. Every request is recorded (``requests``).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse

API_KEY = "dk_3f9a1c77e2b84d0c9f6e5a4b3c2d1e0f"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_TOPIC = re.compile(r"^/t/(?P<id>\d+)\.json$")
_TOPIC_POSTS = re.compile(r"^/t/(?P<id>\d+)/posts\.json$")
_QUERY_TOKEN = re.compile(r'"([^"]+)"|(\S+)')
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Scripted(ScriptedResponse):
    """One answer to give once: status, JSON-able body (or raw text/bytes), headers, delay."""

    body: Any = None
    path: str = ""  # answer only requests whose path starts with this


@dataclass
class Topic:
    id: int
    title: str
    slug: str
    category_id: int | None
    created_at: datetime
    deleted: bool = False
    post_ids: list[int] = field(default_factory=list)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def slugify(title: str) -> str:
    return "-".join(_WORD.findall(title.lower()))[:80] or "topic"


class FakeDiscourse(FakeHTTPServer):
    """A scriptable fake Discourse forum; a context manager, or call start()/stop()."""

    name = "fake Discourse"
    methods = ("GET",)

    def __init__(self, *, page_size: int = 50, search_page_size: int = 50, chunk: int = 20,
                 api_key: str | None = None, api_username: str = "system") -> None:
        super().__init__()
        self.page_size, self.search_page_size, self.chunk = page_size, search_page_size, chunk
        self.api_key, self.api_username = api_key, api_username
        self.login_required = False
        self.show_everything = False  # as for staff: deleted/hidden/whispers appear in posts.json
        self.repeat_boundary = False  # posts.json counts `before` inclusively (a repeat per page)
        self.title = "Acme Community"
        self.categories: list[dict[str, Any]] = [
            {"id": 1, "name": "General", "slug": "general", "parent": None},
            {"id": 5, "name": "Support", "slug": "support", "parent": None},
            {"id": 7, "name": "Billing", "slug": "billing", "parent": 5},
        ]
        self.topics: dict[int, Topic] = {}
        self.posts: dict[int, dict[str, Any]] = {}
        self._next_post = 1000
        self._next_topic = 100
        self._script: deque[Scripted] = deque()

    # -- publishing ----------------------------------------------------------------------------

    def add_topic(self, title: str, cooked: str, *, username: str = "ann",
                  created_at: datetime | None = None, category_id: int | None = 1,
                  post_id: int | None = None, **extra: Any) -> int:
        """A new topic and its first post; returns the topic id."""
        with self._lock:
            self._next_topic += 1
            topic = Topic(self._next_topic, title, slugify(title), category_id,
                          created_at or NOW)
            self.topics[topic.id] = topic
        self.add_post(topic.id, cooked, username=username, created_at=created_at,
                      post_id=post_id, **extra)
        return topic.id

    def add_post(self, topic_id: int, cooked: str, *, username: str = "ann",
                 created_at: datetime | None = None, post_id: int | None = None,
                 **extra: Any) -> dict[str, Any]:
        """A new post at the end of the topic (ids increase unless given); returns it."""
        with self._lock:
            topic = self.topics[topic_id]
            if post_id is None:
                self._next_post += 1
                post_id = self._next_post
            else:
                self._next_post = max(self._next_post, post_id)
            created = created_at or NOW
            post = {
                "id": post_id, "name": username.title(), "username": username,
                "avatar_template": f"/user_avatar/forum/{username}/{{size}}/1_2.png",
                "created_at": iso(created), "updated_at": iso(created), "cooked": cooked,
                "post_number": len(topic.post_ids) + 1, "post_type": 1, "reply_count": 0,
                "reply_to_post_number": None, "quote_count": 0, "reads": 1, "score": 0.2,
                "yours": False, "topic_id": topic_id, "topic_slug": topic.slug,
                "display_username": username.title(), "primary_group_name": None,
                "version": 1, "user_id": 10 + len(self.posts), "hidden": False,
                "trust_level": 1, "deleted_at": None, "user_deleted": False,
                "edit_reason": None, "wiki": False, "like_count": 0,
                "raw": re.sub(r"<[^>]+>", "", cooked),
            }
            post.update(extra)
            self.posts[post_id] = post
            topic.post_ids.append(post_id)
            return post

    def delete_topic(self, topic_id: int) -> None:
        with self._lock:
            self.topics[topic_id].deleted = True

    def rate_limit(self, wait: int = 10, *, header: bool = True, path: str = "") -> None:
        """The next request (to ``path``…): 429 as Discourse's RateLimiter answers it."""
        body = {"errors": [f"You’ve performed this action too many times. Please wait {wait} "
                           "seconds before trying again."],
                "error_type": "rate_limit",
                "extras": {"wait_seconds": wait, "time_left": f"{wait} seconds"}}
        headers = {"Retry-After": str(wait),
                   "Discourse-Rate-Limit-Error-Code": "ip_10_secs_limit"} if header else {}
        self.enqueue(429, body, headers=headers, path=path)

    def enqueue(self, status: int, body: Any = None, *, headers: dict[str, str] | None = None,
                delay: float = 0.0, path: str = "") -> None:
        with self._lock:
            self._script.append(Scripted(status, body, headers or {}, delay, path=path))

    # -- serving -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> ScriptedResponse:
        self._record(RecordedRequest(method, path, query, headers, body))
        with self._lock:
            for scripted in list(self._script):
                if path.startswith(scripted.path):
                    self._script.remove(scripted)
                    return scripted
            refused = self._refused(headers)
            if refused is not None:
                return refused
            params = parse_qs(query, keep_blank_values=True)
            return self._route(path, params, headers)

    def _refused(self, headers: dict[str, str]) -> ScriptedResponse | None:
        key = headers.get("api-key")
        if (key is not None and key != self.api_key) or (key is None and self.login_required) \
                or (key is not None and headers.get("api-username") != self.api_username):
            return ScriptedResponse(403, {
                "errors": ["You are not permitted to view the requested resource. The API "
                           "username or key is invalid."], "error_type": "invalid_access"})
        return None

    def _route(self, path: str, params: dict[str, list[str]],
               headers: dict[str, str]) -> ScriptedResponse:
        if path == "/posts.json":
            return self._latest(params)
        if path == "/search.json":
            return self._search(params)
        if path == "/categories.json":
            return ScriptedResponse(200, {"category_list": {"categories": self._category_tree()}})
        if path == "/session/current.json":
            if "api-key" not in headers:
                return _not_found()
            return ScriptedResponse(200, {"current_user": {"id": 1, "username": self.api_username,
                                                           "admin": True}})
        if path == "/site/basic-info.json":
            return ScriptedResponse(200, {"title": self.title, "description": "a forum"})
        match = _TOPIC.match(path)
        if match:
            return self._topic(int(match["id"]))
        match = _TOPIC_POSTS.match(path)
        if match:
            return self._topic_posts(int(match["id"]), params.get("post_ids[]", []))
        return _not_found()

    def _visible(self, post: dict[str, Any]) -> bool:
        topic = self.topics[post["topic_id"]]
        if self.show_everything:
            return True
        return (not topic.deleted and post["post_type"] == 1 and not post["hidden"]
                and not post["deleted_at"])

    def _serialized(self, post: dict[str, Any], *, with_topic: bool) -> dict[str, Any]:
        data = dict(post)
        if with_topic:
            topic = self.topics[post["topic_id"]]
            data.update(topic_title=topic.title, topic_html_title=topic.title,
                        category_id=topic.category_id)
        return data

    def _latest(self, params: dict[str, list[str]]) -> ScriptedResponse:
        before = params.get("before", [""])[-1]
        limit = int(before) if before.isdigit() and int(before) > 0 else None
        chosen = sorted((p for p in self.posts.values() if self._visible(p)
                         and (limit is None or p["id"] < limit
                              or (self.repeat_boundary and p["id"] == limit))),
                        key=lambda p: p["id"], reverse=True)[:self.page_size]
        return ScriptedResponse(200, {"latest_posts": [self._serialized(p, with_topic=True)
                                                       for p in chosen]})

    def _search(self, params: dict[str, list[str]]) -> ScriptedResponse:
        q = params.get("q", [""])[-1]
        page_text = params.get("page", ["1"])[-1]
        if not page_text.isdigit():
            return ScriptedResponse(400, {"errors": ["page is invalid"],
                                          "error_type": "invalid_parameters"})
        page = max(int(page_text), 1)
        if page > 10:
            return ScriptedResponse(400, {"errors": ["page parameter must not be greater than "
                                                     "10"], "error_type": "invalid_parameters"})
        words, phrases, after, cats = [], [], None, None
        for phrase, word in _QUERY_TOKEN.findall(q):
            if phrase:
                phrases.append(phrase.lower())
            elif word.startswith("after:"):
                after = datetime.fromisoformat(word[6:]).replace(tzinfo=UTC)
            elif word.startswith(("category:", "categories:")):
                cats = self._category_ids(word.split(":", 1)[1].split(","))
            elif word.startswith("order:"):
                continue
            else:
                words.append(word.lower())
        best: dict[int, dict[str, Any]] = {}
        for post in self.posts.values():
            topic = self.topics[post["topic_id"]]
            if topic.deleted or post["post_type"] != 1 or post["hidden"] or post["deleted_at"]:
                continue
            if after is not None and datetime.fromisoformat(
                    post["created_at"].replace("Z", "+00:00")) <= after:
                continue
            if cats is not None and topic.category_id not in cats:
                continue
            text = f"{topic.title} {post['raw']}".lower()
            tokens = _WORD.findall(text)
            if not all(any(t.startswith(w.strip("@#")) for t in tokens) for w in words):
                continue
            if not all(p in text for p in phrases):
                continue
            held = best.get(topic.id)
            if held is None or post["post_number"] > held["post_number"]:
                best[topic.id] = post
        ordered = sorted(best.values(), key=lambda p: (p["created_at"], p["id"]), reverse=True)
        size = self.search_page_size
        chosen = ordered[(page - 1) * size:page * size]
        more = len(ordered) > page * size
        return ScriptedResponse(200, {
            "posts": [{"id": p["id"], "name": p["name"], "username": p["username"],
                       "avatar_template": p["avatar_template"], "created_at": p["created_at"],
                       "like_count": 0, "blurb": p["raw"][:200], "post_number": p["post_number"],
                       "topic_title_headline": self.topics[p["topic_id"]].title,
                       "topic_id": p["topic_id"]} for p in chosen],
            "topics": [self._topic_summary(self.topics[p["topic_id"]]) for p in chosen],
            "users": [], "categories": [], "tags": [], "groups": [],
            "grouped_search_result": {
                "more_posts": None, "more_users": None, "more_categories": None, "term": q,
                "search_log_id": 1, "more_full_page_results": True if more else None,
                "can_create_topic": False, "error": None,
                "post_ids": [p["id"] for p in chosen], "user_ids": [], "category_ids": [],
                "tag_ids": [], "group_ids": []},
        })

    def _topic_summary(self, topic: Topic) -> dict[str, Any]:
        return {"id": topic.id, "title": topic.title, "fancy_title": topic.title,
                "slug": topic.slug, "posts_count": len(topic.post_ids),
                "created_at": iso(topic.created_at), "category_id": topic.category_id,
                "visible": True, "closed": False, "archived": False}

    def _topic(self, topic_id: int) -> ScriptedResponse:
        topic = self.topics.get(topic_id)
        if topic is None or topic.deleted:
            return _not_found()
        visible = [i for i in topic.post_ids if self._visible(self.posts[i])]
        posts = [self._serialized(self.posts[i], with_topic=False) for i in visible[:self.chunk]]
        return ScriptedResponse(200, {
            **self._topic_summary(topic),
            "post_stream": {"posts": posts, "stream": visible},
            "details": {"created_by": {"username": self.posts[topic.post_ids[0]]["username"]}},
        })

    def _topic_posts(self, topic_id: int, wanted: list[str]) -> ScriptedResponse:
        topic = self.topics.get(topic_id)
        if topic is None or topic.deleted:
            return _not_found()
        ids = {int(i) for i in wanted if i.isdigit()}
        posts = [self._serialized(self.posts[i], with_topic=False) for i in topic.post_ids
                 if i in ids and self._visible(self.posts[i])]
        return ScriptedResponse(200, {"post_stream": {"posts": posts}, "id": topic_id})

    def _category_ids(self, names: list[str]) -> set[int]:
        found: set[int] = set()
        for name in names:
            for cat in self.categories:
                if name.lower() in (cat["slug"], cat["name"].lower(), str(cat["id"])):
                    found.add(cat["id"])
                    found |= {c["id"] for c in self.categories if c["parent"] == cat["id"]}
        return found

    def _category_tree(self) -> list[dict[str, Any]]:
        def node(cat: dict[str, Any]) -> dict[str, Any]:
            subs = [c for c in self.categories if c["parent"] == cat["id"]]
            data = {"id": cat["id"], "name": cat["name"], "slug": cat["slug"],
                    "subcategory_ids": [c["id"] for c in subs]}
            if subs:
                data["subcategory_list"] = [node(c) for c in subs]
            return data
        return [node(c) for c in self.categories if c["parent"] is None]


def _not_found() -> ScriptedResponse:
    return ScriptedResponse(404, {"errors": ["The requested URL or resource could not be "
                                             "found."], "error_type": "not_found"})


def minutes_ago(minutes: float, now: datetime = NOW) -> datetime:
    return now - timedelta(minutes=minutes)
