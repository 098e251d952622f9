"""A fake Reddit API for tests: real HTTP on 127.0.0.1, an ephemeral port, documented shapes.

praw takes both hosts as settings (``reddit_url`` for tokens, ``oauth_url`` for the API), so the
Reddit source points both at :attr:`FakeReddit.base_url` and the real praw, prawcore and
``requests`` stack talks HTTP to this server; nothing of ours is mocked::

    with FakeReddit(page_size=2) as reddit:
        reddit.add(submission("abc1", "python", "acme cloud is down", created_utc=T0))
        reddit.enqueue(429, {"message": "Too Many Requests", "error": 429},
                       headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "42"})

What it serves (shapes from Reddit's API reference, www.reddit.com/dev/api, "listings"):

- ``POST /api/v1/access_token`` (client credentials: HTTP Basic ``client_id:client_secret``,
  form ``grant_type=client_credentials``) answers ``{"access_token", "token_type": "bearer",
  "expires_in": 86400, "scope": "*"}``; other credentials get ``401 {"message":
  "Unauthorized", "error": 401}``;
- with ``Authorization: bearer <token>``: ``GET /search``, ``/r/{a+b}/search`` (``restrict_sr``
  limits it to those subreddits), ``/r/{a+b}/new`` (submissions), ``/r/{a+b}/comments``
  (comments); a wrong token gets 401 with ``www-authenticate: Bearer realm="reddit",
  error="invalid_token"``, unknown paths 404;
- a Listing ``{"kind": "Listing", "data": {"after", "before": null, "dist", "modhash": null,
  "geo_filter": "", "children": [{"kind": "t3" | "t1", "data": {...}}]}}``, newest first;
  ``limit`` 1–100 (default 25; ``page_size`` caps it further so tests paginate with few
  items); ``after`` continues after that fullname; like Reddit, a listing ends after
  ``listing_cap`` items (about 1,000);
- search is naive: an item matches when its title or text contains any word of ``q`` (operators,
  quotes and parentheses ignored). Over-matching is fine: the source's caller filters locally;
- every API answer carries ``x-ratelimit-used/-remaining/-reset`` (reset in seconds);
- :meth:`enqueue` scripts the next API answers (any status, JSON or raw body, headers, delay).

Writing as a user (the reply writer), reference: www.reddit.com/dev/api#POST_api_comment:

- the token endpoint also grants user tokens: ``grant_type=password`` (a "script" app: the
  account's ``username`` and ``password``) and ``grant_type=refresh_token``; the token carries
  :attr:`FakeReddit.scopes` (``{"*"}``: every scope, as a script app gets);
- ``POST /api/comment`` (form ``thing_id``, ``text``, ``api_type=json``) needs the ``submit``
  scope (else 403 with ``www-authenticate: Bearer realm="reddit", error="insufficient_scope"``)
  and answers ``{"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": {...}}]}}}``.
  Refusals come as Reddit sends them, HTTP 200 with ``json.errors`` ``[[code, message, field]]``:
  ``NO_THING_ID`` (no such thing), ``DELETED_COMMENT`` / ``DELETED_LINK`` (:meth:`delete`),
  ``THREAD_LOCKED`` (``locked``), ``TOO_OLD`` (``archived``), ``NO_TEXT``, ``TOO_LONG`` (over
  10,000 characters); the spam limit is ``RATELIMIT`` (:func:`ratelimit_error`, to enqueue).
  Reddit has no duplicate check for comments: the same text twice makes two comments;
- ``GET /user/{name}/comments`` (``sort=new``, ``limit``, ``after``) needs ``history``: the
  account's comments, newest first, ``raw_json=1`` bodies;
- :attr:`FakeReddit.comments` holds the comments created, oldest first.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import FakeHTTPServer, RecordedRequest

USERNAME = "acme_support"
PASSWORD = "reddit-account-pa55word"
REFRESH_TOKEN = "fake-refresh-token-7777777777"
USER_TOKEN = "fake-user-access-token-4242424242"
CLIENT_ID = "fake-client-id-123"
CLIENT_SECRET = "fAkE-cLiEnT-sEcReT-9f8e7d6c"
ACCESS_TOKEN = "fake-access-token-0123456789"
TOKEN_PATH = "/api/v1/access_token"
_USER_COMMENTS = re.compile(r"^/user/(?P<name>[A-Za-z0-9_-]+)/comments/?$")
_COMMENT_PATHS = ("/api/comment", "/api/comment/")
MAX_COMMENT = 10_000
_PATH = re.compile(r"^/(?:r/(?P<subs>[A-Za-z0-9_+]+)/)?(?P<what>search|new|comments)/?$")
_OPERATORS = {"AND", "OR", "NOT"}


def submission(
    id36: str, subreddit: str, title: str, *, created_utc: float, selftext: str = "",
    author: str | None = "ann", **extra: Any,
) -> dict[str, Any]:
    """A ``t3`` thing with the fields Reddit's listings carry (a useful subset)."""
    permalink = f"/r/{subreddit}/comments/{id36}/{_slug(title)}/"
    data = {
        "id": id36, "name": f"t3_{id36}", "title": title, "selftext": selftext,
        "author": author, "author_fullname": "t2_fake" if author else None,
        "subreddit": subreddit, "subreddit_name_prefixed": f"r/{subreddit}",
        "subreddit_id": "t5_fake", "permalink": permalink,
        "url": f"https://www.reddit.com{permalink}", "domain": f"self.{subreddit}",
        "is_self": True, "created_utc": created_utc, "created": created_utc, "score": 1,
        "num_comments": 0, "over_18": False, "removed_by_category": None,
        "link_flair_text": None, "edited": False,
    }
    return {"kind": "t3", "data": {**data, **extra}}


def comment(
    id36: str, subreddit: str, body: str, *, created_utc: float, link_id: str = "t3_post1",
    link_title: str = "a thread", author: str | None = "bob", **extra: Any,
) -> dict[str, Any]:
    """A ``t1`` thing as the ``/comments`` listing returns it (with its submission's title)."""
    post = link_id.removeprefix("t3_")
    data = {
        "id": id36, "name": f"t1_{id36}", "body": body, "author": author,
        "subreddit": subreddit, "subreddit_id": "t5_fake", "link_id": link_id,
        "parent_id": link_id, "link_title": link_title,
        "link_permalink": f"https://www.reddit.com/r/{subreddit}/comments/{post}/thread/",
        "permalink": f"/r/{subreddit}/comments/{post}/thread/{id36}/",
        "created_utc": created_utc, "created": created_utc, "score": 1, "edited": False,
    }
    return {"kind": "t1", "data": {**data, **extra}}


def listing(children: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
    """A Listing wrapper, for scripted answers."""
    return {"kind": "Listing", "data": {"after": after, "before": None, "dist": len(children),
                                        "modhash": None, "geo_filter": "",
                                        "children": children}}


def ratelimit_error(minutes: int = 9) -> dict[str, Any]:
    """The answer Reddit gives an account that comments too often (HTTP 200)."""
    message = (f"Looks like you've been doing that a lot. Take a break for {minutes} minutes "
               "before trying again.")
    return {"json": {"errors": [["RATELIMIT", message, "ratelimit"]]}}


def _api_errors(*errors: tuple[str, str, str]) -> dict[str, Any]:
    return {"json": {"errors": [list(e) for e in errors]}}


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:50] or "post"


@dataclass(frozen=True)
class Scripted:
    status: int = 200
    body: Any = None  # dict/list: JSON; str: sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeReddit(FakeHTTPServer):
    """A scriptable fake Reddit; use as a context manager or call start()/stop()."""

    name = "fake Reddit"
    content_type = "application/json; charset=UTF-8"

    def __init__(
        self, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET,
        page_size: int = 100, listing_cap: int = 1000, username: str = USERNAME,
        password: str = PASSWORD, refresh_token: str = REFRESH_TOKEN,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password, self.refresh_token = username, password, refresh_token
        self.scopes: set[str] = {"*"}  # what a user token may do
        self.comments: list[dict[str, Any]] = []  # created through /api/comment, oldest first
        self.page_size, self.listing_cap = page_size, listing_cap
        self.ratelimit = {"x-ratelimit-used": "1", "x-ratelimit-remaining": "599.0",
                          "x-ratelimit-reset": "300"}
        super().__init__()
        self._things: dict[str, dict[str, Any]] = {}

    # -- content, scripting, inspection ----------------------------------------------------

    def add(self, *things: dict[str, Any]) -> None:
        """Publish things (``submission(...)`` / ``comment(...)``); same fullname replaces."""
        with self._lock:
            for thing in things:
                self._things[thing["data"]["name"]] = thing

    def enqueue(
        self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
        delay: float = 0.0, *, times: int = 1,
    ) -> None:
        """Queue the answer for the next API request(s) (FIFO); tokens are never scripted."""
        with self._lock:
            for _ in range(times):
                self._script.append(Scripted(status, body, dict(headers or {}), delay))

    def delete(self, fullname: str) -> None:
        """The thing is deleted by its author: replies are refused, listings show [deleted]."""
        with self._lock:
            data = self._things[fullname]["data"]
            data["author"] = "[deleted]"
            data["selftext" if fullname.startswith("t3_") else "body"] = "[deleted]"
            data["_deleted"] = True

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/") == path.rstrip("/")]

    @property
    def api_requests(self) -> list[RecordedRequest]:
        """Requests other than token requests."""
        return [r for r in self.requests if r.path != TOKEN_PATH]

    # -- called from handler threads -------------------------------------------------------

    def handle(
        self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> Scripted:
        request = RecordedRequest(method, path, raw_query, headers, body)
        query, lowered = request.query, headers
        form = {} if method == "GET" else request.form  # a GET's form is never read
        with self._lock:
            self._record(request)
            if path == TOKEN_PATH:
                return self._token(method, lowered, form)
            if lowered.get("authorization") == f"bearer {USER_TOKEN}":
                if self._script:
                    scripted = self._script.popleft()
                    return Scripted(scripted.status, scripted.body,
                                    {**self.ratelimit, **scripted.headers}, scripted.delay)
                return self._as_user(method, path, query, form)
            if lowered.get("authorization") != f"bearer {ACCESS_TOKEN}":
                return Scripted(401, {"message": "Unauthorized", "error": 401}, {
                    "www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
            if self._script:
                scripted = self._script.popleft()
                return Scripted(scripted.status, scripted.body,
                                {**self.ratelimit, **scripted.headers}, scripted.delay)
            return self._listing(method, path, query)

    def _token(self, method: str, headers: dict[str, str], form: dict[str, str]) -> Scripted:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if method != "POST" or headers.get("authorization") != f"Basic {expected}":
            return Scripted(401, {"message": "Unauthorized", "error": 401})
        grant = form.get("grant_type")
        if grant in ("password", "refresh_token"):
            if grant == "password" and (form.get("username"), form.get("password")) != (
                    self.username, self.password) or grant == "refresh_token" and form.get(
                    "refresh_token") != self.refresh_token:
                return Scripted(200, {"error": "invalid_grant"})
            return Scripted(200, {"access_token": USER_TOKEN, "token_type": "bearer",
                                  "expires_in": 86400, "scope": " ".join(sorted(self.scopes))})
        if grant != "client_credentials":
            return Scripted(200, {"error": "unsupported_grant_type"})
        return Scripted(200, {"access_token": ACCESS_TOKEN, "token_type": "bearer",
                              "expires_in": 86400, "scope": "*"})

    # -- as the logged-in account (the reply writer) ---------------------------------------

    def _as_user(self, method: str, path: str, query: dict[str, str],
                 form: dict[str, str]) -> Scripted:
        if method == "POST" and path in _COMMENT_PATHS:
            return self._scoped("submit") or self._comment(form)
        match = _USER_COMMENTS.match(path)
        if method == "GET" and match is not None:
            return self._scoped("history") or self._user_comments(match["name"], query)
        return Scripted(404, {"message": "Not Found", "error": 404}, dict(self.ratelimit))

    def _scoped(self, scope: str) -> Scripted | None:
        """403 insufficient_scope when the token lacks ``scope``; None when it has it."""
        if "*" in self.scopes or scope in self.scopes:
            return None
        return Scripted(403, {"message": "Forbidden", "error": 403}, {
            **self.ratelimit,
            "www-authenticate": 'Bearer realm="reddit", error="insufficient_scope"'})

    def _comment(self, form: dict[str, str]) -> Scripted:
        ok = dict(self.ratelimit)
        parent = self._things.get(form.get("thing_id", ""))
        text = form.get("text", "")
        if parent is None:
            return Scripted(200, _api_errors(("NO_THING_ID", "id not specified", "parent")), ok)
        data = parent["data"]
        if data.get("_deleted"):
            code, what = ("DELETED_LINK", "the link you are commenting on has been deleted") \
                if parent["kind"] == "t3" else ("DELETED_COMMENT", "that comment has been deleted")
            return Scripted(200, _api_errors((code, what, "parent")), ok)
        if data.get("locked"):
            return Scripted(200, _api_errors(("THREAD_LOCKED", "Comments are locked.",
                                              "parent")), ok)
        if data.get("archived"):
            return Scripted(200, _api_errors(("TOO_OLD", "that's a piece of history now; it's "
                                              "too late to reply to it", "parent")), ok)
        if not text.strip():
            return Scripted(200, _api_errors(("NO_TEXT", "we need something here", "text")), ok)
        if len(text) > MAX_COMMENT:
            return Scripted(200, _api_errors(("TOO_LONG", f"this is too long (max: "
                                              f"{MAX_COMMENT})", "text")), ok)
        link = parent["data"]["name"] if parent["kind"] == "t3" else data["link_id"]
        thing = comment(f"r{len(self.comments) + 1:05d}", data["subreddit"], text,
                        created_utc=time.time(), link_id=link, author=self.username,
                        parent_id=data["name"], body_html=f"<div class=\"md\"><p>{text}</p></div>",
                        link_title=data.get("title") or data.get("link_title", "a thread"))
        self._things[thing["data"]["name"]] = thing
        self.comments.append(thing)
        return Scripted(200, {"json": {"errors": [], "data": {"things": [thing]}}}, ok)

    def _user_comments(self, name: str, query: dict[str, str]) -> Scripted:
        mine = [t for t in self._things.values()
                if t["kind"] == "t1" and t["data"].get("author") == name]
        mine.sort(key=lambda t: (t["data"]["created_utc"], t["data"]["name"]), reverse=True)
        start = 0
        if query.get("after"):
            names = [t["data"]["name"] for t in mine]
            start = names.index(query["after"]) + 1 if query["after"] in names else len(mine)
        limit = min(int(query.get("limit") or 25), 100, self.page_size)
        page = mine[start:start + limit]
        after = page[-1]["data"]["name"] if page and start + limit < len(mine) else None
        return Scripted(200, listing(page, after), dict(self.ratelimit))

    def _listing(self, method: str, path: str, query: dict[str, str]) -> Scripted:
        match = _PATH.match(path)
        if method != "GET" or match is None:
            return Scripted(404, {"message": "Not Found", "error": 404}, dict(self.ratelimit))
        subs = {s.lower() for s in (match["subs"] or "").split("+") if s}
        what = match["what"]
        if what == "search" and query.get("restrict_sr", "") not in ("1", "true", "on", "True"):
            subs = set()
        kind = "t1" if what == "comments" else "t3"
        items = [t for t in self._things.values() if t["kind"] == kind
                 and (not subs or t["data"]["subreddit"].lower() in subs)
                 and (what != "search" or _matches(query.get("q", ""), t["data"]))]
        items.sort(key=lambda t: (t["data"]["created_utc"], t["data"]["name"]), reverse=True)
        items = items[: self.listing_cap]
        start = 0
        if query.get("after"):
            names = [t["data"]["name"] for t in items]
            start = names.index(query["after"]) + 1 if query["after"] in names else len(items)
        limit = min(int(query.get("limit") or 25), 100, self.page_size)
        page = items[start : start + limit]
        more = start + limit < len(items)
        after = page[-1]["data"]["name"] if page and more else None
        return Scripted(200, listing(page, after), dict(self.ratelimit))


def _matches(q: str, data: dict[str, Any]) -> bool:
    words = [w for w in re.findall(r"[\w@.'-]+", q) if w not in _OPERATORS]
    text = f"{data.get('title', '')} {data.get('selftext', '')}".lower()
    return any(w.lower().lstrip("-") in text for w in words)
