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
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import FakeHTTPServer, RecordedRequest

CLIENT_ID = "fake-client-id-123"
CLIENT_SECRET = "fAkE-cLiEnT-sEcReT-9f8e7d6c"
ACCESS_TOKEN = "fake-access-token-0123456789"
TOKEN_PATH = "/api/v1/access_token"
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
        page_size: int = 100, listing_cap: int = 1000,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
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
        if form.get("grant_type") != "client_credentials":
            return Scripted(200, {"error": "unsupported_grant_type"})
        return Scripted(200, {"access_token": ACCESS_TOKEN, "token_type": "bearer",
                              "expires_in": 86400, "scope": "*"})

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
