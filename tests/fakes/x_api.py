"""A fake X API v2 for tests: real HTTP on 127.0.0.1, an ephemeral port, documented shapes.

tweepy's host is fixed (``https://api.twitter.com``); the X source rewrites it to its
``base_url``, which tests set to :attr:`FakeXApi.base_url`. So the real tweepy client and the real
``requests`` stack talk HTTP to this server, and nothing of ours is mocked::

    with FakeXApi() as x:
        x.add_user("11", "ann", followers=120)
        x.add_tweet("1790000000000000001", "acme cloud is down", author_id="11")
        x.enqueue(429, {"title": "Too Many Requests"}, headers={"x-rate-limit-reset": "..."})

What it serves (shapes from the X API v2 reference, "GET /2/tweets/search/recent" and
"GET /2/users/:id/mentions"):

- ``{"data": [Tweet], "includes": {"users": [User]}, "meta": {"newest_id", "oldest_id",
  "result_count", "next_token"}, "errors": [Problem]}``; ``data``/``includes`` are left out when
  empty, ``meta`` is then ``{"result_count": 0}``;
- posts newest first; ``since_id`` exclusive; ``start_time`` inclusive; ``max_results``
  10–100 (default 10; ``page_size`` caps it further so tests paginate with few posts);
  ``next_token`` (search) / ``pagination_token`` (mentions) continue after the previous page,
  so posts added meanwhile never shift pages;
- a Tweet has ``id``, ``text``, ``edit_history_tweet_ids`` and the requested ``tweet.fields``
  (``created_at=None`` leaves ``created_at`` out even when asked for, as a gateway that drops it
  would; ``start_time`` then goes by the time in the snowflake id, which is what X itself has);
  a User ``id``, ``name``, ``username`` and the requested ``user.fields``; users are included
  only with ``expansions=author_id`` and only when known (:meth:`add_user`);
- a deleted post (:meth:`delete`) is left out of ``data`` and reported in ``errors`` as a
  ``resource-not-found`` problem, the way X reports unavailable resources in a 200 answer;
- a search finds a post when the post lists the query in ``queries`` (``None``: every query);
  ``mentions`` finds posts that list the user id in ``mentions``;
- a wrong bearer token gets 401, other paths 404, a missing query 400; every answer carries
  ``x-rate-limit-limit/-remaining/-reset`` (epoch seconds: :attr:`FakeXApi.reset_at`);
- :meth:`enqueue` scripts the next answers (any status, raw or JSON body, headers, a delay).

Writing as the brand's account (the reply writer; OAuth 1.0a user context: an ``OAuth``
Authorization header naming :attr:`FakeXApi.consumer_key` and :attr:`FakeXApi.access_token`,
whose signature is not checked), shapes from "POST /2/tweets" and "GET /2/users/:id/tweets":

- ``POST /2/tweets`` ``{"text", "reply": {"in_reply_to_tweet_id"}}`` → 201 ``{"data": {"id",
  "text", "edit_history_tweet_ids"}}``. Refusals as X words them, each a problem object
  ``{"title", "detail", "type", "status"}``: 403 ``oauth1-permissions`` when the app may not
  write (``write_access = False``: a read-only app, or tokens made before it got "Read and
  write"); 403 "You attempted to reply to a Tweet that is deleted or not visible to you." for a
  post that is gone (X answers 403, not 404); 403 "Reply to this conversation is not allowed…"
  when the post's ``reply_settings`` shut us out; 403 "You are not allowed to create a Tweet
  with duplicate content." when the account already posted this very text; 400 for a text over
  280 characters. Every answer carries ``x-rate-limit-*`` and, on creates, the per-user
  ``x-user-limit-24hour-limit/-remaining/-reset``.
- what X stores of a reply is what lookups show: the text with the replied-to author's
  ``@username`` in front, ``& < >`` escaped and links as ``https://t.co/…``; ``author_id`` is
  the account, ``referenced_tweets`` ``[{"type": "replied_to", "id"}]``, ``in_reply_to_user_id``
  and the parent's ``conversation_id``;
- ``GET /2/users/:id/tweets`` (``since_id``, ``max_results``, ``pagination_token``,
  ``tweet.fields``, ``exclude``): the user's posts newest first; ``GET /2/users/me``;
- :attr:`FakeXApi.created` holds the posts created, oldest first.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse

TOKEN = "AAAAAAAAAAAAAAAAAAAAAFakeBearer%2FToken0123456789abcdefXYZ"
SEARCH_PATH = "/2/tweets/search/recent"
TWEETS_PATH = "/2/tweets"
ME_PATH = "/2/users/me"
USER_ID = "1512345678901234567"
USERNAME = "acme_support"
CONSUMER_KEY = "fakeConsumerKey0123456789"
CONSUMER_SECRET = "fakeConsumerSecret0123456789abcdefghijklmnopq"
ACCESS_TOKEN = f"{USER_ID}-fakeAccessToken0123456789abcdef"
ACCESS_TOKEN_SECRET = "fakeAccessTokenSecret0123456789abcdefghijk"
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
NOT_VISIBLE = "You attempted to reply to a Tweet that is deleted or not visible to you."
REPLY_LIMITED = ("Reply to this conversation is not allowed because you have not been mentioned "
                 "or otherwise engaged by the author of the post you are replying to.")
_TIMELINE = re.compile(r"^/2/users/(?P<id>[0-9]{1,20})/tweets$")
_LINK = re.compile(r"https?://\S+")


@dataclass
class FakeTweet:
    id: str
    text: str
    author_id: str | None
    created_at: str | None
    lang: str = "en"
    queries: frozenset[str] | None = None
    mentions: tuple[str, ...] = ()
    referenced_tweets: list[dict[str, str]] | None = None
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, fields: set[str]) -> dict[str, Any]:
        shown = {k: v for k, v in self.extra.items() if not k.startswith("_")}
        item: dict[str, Any] = {"id": self.id, "text": self.text,
                                "edit_history_tweet_ids": [self.id]}
        optional = {
            "created_at": self.created_at, "lang": self.lang, "author_id": self.author_id,
            "conversation_id": self.id, "referenced_tweets": self.referenced_tweets,
            "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 3,
                               "quote_count": 0, "bookmark_count": 0, "impression_count": 40},
            **shown,
        }
        item.update({k: v for k, v in optional.items() if k in fields and v is not None})
        return item


class FakeXApi(FakeHTTPServer):
    """A scriptable fake of the X API v2 search and mentions endpoints."""

    name = "fake X API"

    def __init__(self, *, token: str = TOKEN, page_size: int = 100, reset_at: int = 1715173200):
        self.token = token
        self.page_size = page_size
        self.reset_at = reset_at
        self.remaining = 450
        super().__init__()
        self._tweets: dict[str, FakeTweet] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self.consumer_key, self.access_token = CONSUMER_KEY, ACCESS_TOKEN
        self.user_id, self.username = USER_ID, USERNAME
        self.write_access = True  # False: the app's tokens are read-only
        self.created: list[FakeTweet] = []  # posts created through POST /2/tweets
        self._tokens: dict[str, int] = {}  # next_token -> exclusive upper bound on ids

    # -- lifecycle -------------------------------------------------------------------------

    # -- scripting -------------------------------------------------------------------------

    def add_user(self, user_id: str, username: str, followers: int = 0) -> None:
        with self._lock:
            self._users[user_id] = {
                "id": user_id, "name": username.title(), "username": username,
                "public_metrics": {"followers_count": followers, "following_count": 1,
                                   "tweet_count": 10, "listed_count": 0, "like_count": 0},
            }

    def add_tweet(
        self, tweet_id: str, text: str, *, author_id: str | None = "11",
        created_at: str | None = "2024-05-08T11:00:00.000Z", lang: str = "en",
        queries: set[str] | None = None, mentions: tuple[str, ...] = (),
        referenced_tweets: list[dict[str, str]] | None = None, **extra: Any,
    ) -> None:
        with self._lock:
            self._tweets[tweet_id] = FakeTweet(
                tweet_id, text, author_id, created_at, lang,
                frozenset(queries) if queries is not None else None, mentions,
                referenced_tweets, extra=extra,
            )

    def delete(self, tweet_id: str) -> None:
        with self._lock:
            self._tweets[tweet_id].deleted = True

    def enqueue(
        self, status: int, body: str | dict[str, Any] | list[Any] = "",
        headers: dict[str, str] | None = None, delay: float = 0.0,
    ) -> None:
        """Answer the next request with this (FIFO; then the normal behaviour)."""
        text = body if isinstance(body, str) else json.dumps(body)
        with self._lock:
            self._script.append(ScriptedResponse(status, text, dict(headers or {}), delay))

    # -- serving ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        params, lowered = request.query, headers
        with self._lock:
            self._record(request)
            self.remaining = max(0, self.remaining - 1)
            limits = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": str(self.remaining),
                      "x-rate-limit-reset": str(self.reset_at)}
            if self._script:
                scripted = self._script.popleft()
                return ScriptedResponse(scripted.status, scripted.body,
                                        {**limits, **scripted.headers}, scripted.delay)
            if lowered.get("authorization", "").startswith("OAuth "):
                status, body = self._as_user(method, path, params, lowered, request.json)
                if method == "POST" and path == TWEETS_PATH:
                    limits.update({"x-user-limit-24hour-limit": "17",
                                   "x-user-limit-24hour-remaining": "16",
                                   "x-user-limit-24hour-reset": str(self.reset_at + 86400)})
            else:
                status, body = self._route(method, path, params, lowered)
        return ScriptedResponse(status, json.dumps(body), limits)

    # -- as the brand's account (the reply writer) ------------------------------------------

    def _as_user(
        self, method: str, path: str, params: dict[str, str], headers: dict[str, str],
        data: Any,
    ) -> tuple[int, dict[str, Any]]:
        auth = headers["authorization"]
        if f'oauth_consumer_key="{self.consumer_key}"' not in auth or \
                f'oauth_token="{self.access_token}"' not in auth or "oauth_signature=" not in auth:
            return 401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                         "detail": "Unauthorized"}
        if method == "POST" and path == TWEETS_PATH:
            return self._create(data if isinstance(data, dict) else {})
        if method == "GET" and path == ME_PATH:
            return 200, {"data": {"id": self.user_id, "name": "Acme Support",
                                  "username": self.username}}
        timeline = _TIMELINE.match(path)
        if method == "GET" and timeline is not None:
            user = timeline["id"]
            return self._page(params, lambda t: t.author_id == user and not (
                "retweets" in params.get("exclude", "") and t.referenced_tweets and any(
                    r.get("type") == "retweeted" for r in t.referenced_tweets)),
                params.get("pagination_token"))
        return 404, {"title": "Not Found Error", "type": "about:blank", "status": 404,
                     "detail": "Sorry, that page does not exist"}

    def _create(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not self.write_access:
            return 403, _forbidden("Your client app is not configured with the appropriate "
                                   "oauth1 app permissions for this endpoint.",
                                   "https://api.twitter.com/2/problems/oauth1-permissions")
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, _invalid("text", "text must not be empty")
        if len(text) > 280:
            return 400, _invalid("text", "Your Tweet text is too long.")
        reply = data.get("reply") or {}
        parent = self._tweets.get(str(reply.get("in_reply_to_tweet_id")))
        if reply and (parent is None or parent.deleted):
            return 403, _forbidden(NOT_VISIBLE)
        if parent is not None and parent.extra.get("reply_settings", "everyone") != "everyone" \
                and self.user_id not in parent.mentions:
            return 403, _forbidden(REPLY_LIMITED)
        stored = _as_stored(text)
        if any(t.author_id == self.user_id and _as_stored(t.extra["_sent"]) == stored
               for t in self.created):
            return 403, _forbidden(DUPLICATE)
        tweet_id = self._snowflake()
        extra: dict[str, Any] = {"_sent": text}
        shown = stored
        if parent is not None:
            author = self._users.get(str(parent.author_id), {}).get("username")
            shown = f"@{author} {stored}" if author else stored
            extra.update(conversation_id=parent.extra.get("conversation_id", parent.id),
                         in_reply_to_user_id=parent.author_id)
        tweet = FakeTweet(
            tweet_id, shown, self.user_id, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            referenced_tweets=[{"type": "replied_to", "id": parent.id}] if parent else None,
            extra=extra,
        )
        self._tweets[tweet_id] = tweet
        self.created.append(tweet)
        return 201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}}

    def _snowflake(self) -> str:
        """A new id, later than any post so far (X's ids grow with time)."""
        now = (int(time.time() * 1000) - 1288834974657) << 22
        newest = max((int(t) for t in self._tweets), default=0)
        return str(max(now, newest + 1))

    def _route(
        self, method: str, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                         "detail": "Unauthorized"}
        segments = path.strip("/").split("/")
        if method == "GET" and path == SEARCH_PATH:
            if not params.get("query"):
                return 400, _invalid("query", "The `query` query parameter can not be empty")
            return self._page(params, lambda t: t.queries is None or params["query"] in t.queries,
                              params.get("next_token"))
        if method == "GET" and len(segments) == 4 and segments[:2] == ["2", "users"] \
                and segments[3] == "mentions":
            user_id = segments[2]
            return self._page(params, lambda t: user_id in t.mentions,
                              params.get("pagination_token"))
        return 404, {"title": "Not Found Error", "type": "about:blank", "status": 404,
                     "detail": "Sorry, that page does not exist"}

    def _page(self, params: dict[str, str], found: Any, token: str | None) -> tuple[int, dict]:
        size = int(params.get("max_results", "10"))
        if not 10 <= size <= 100:
            return 400, _invalid("max_results", "must be between 10 and 100")
        if token is not None and token not in self._tokens:
            return 400, _invalid("next_token", "Invalid pagination token")
        since = int(params.get("since_id") or 0)
        until = self._tokens[token] if token else None
        start = params.get("start_time")
        candidates = sorted(
            (t for t in self._tweets.values()
             if found(t) and int(t.id) > since and (until is None or int(t.id) < until)
             and (start is None or _created(t) >= _when(start))),
            key=lambda t: int(t.id), reverse=True,
        )
        page, rest = candidates[: min(size, self.page_size)], candidates[min(size, self.page_size):]
        fields = set(params.get("tweet.fields", "").split(","))
        data = [t.to_json(fields) for t in page if not t.deleted]
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
            users = self._includes(data, params)
            if users:
                body["includes"] = {"users": users}
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta.update(newest_id=data[0]["id"], oldest_id=data[-1]["id"])
        if rest:
            next_token = f"b26v89c19zqg8o3f{len(self._tokens):06d}"
            self._tokens[next_token] = int(page[-1].id)
            meta["next_token"] = next_token
        body["meta"] = meta
        errors = [_not_found(t.id) for t in page if t.deleted]
        if errors:
            body["errors"] = errors
        return 200, body

    def _includes(self, data: list[dict[str, Any]], params: dict[str, str]) -> list[dict]:
        if "author_id" not in params.get("expansions", "").split(","):
            return []
        fields = set(params.get("user.fields", "").split(","))
        ids = dict.fromkeys(t["author_id"] for t in data if t.get("author_id"))
        users = [self._users[i] for i in ids if i in self._users]
        keep = {"id", "name", "username"} | fields
        return [{k: v for k, v in u.items() if k in keep} for u in users]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _created(tweet: FakeTweet) -> datetime:
    """When the post was made: its created_at, else the time in its snowflake id."""
    if tweet.created_at is not None:
        return _when(tweet.created_at)
    return datetime.fromtimestamp(((int(tweet.id) >> 22) + 1288834974657) / 1000, UTC)


def _invalid(parameter: str, message: str) -> dict[str, Any]:
    return {"errors": [{"parameters": {parameter: []}, "message": message}],
            "title": "Invalid Request", "detail": "One or more parameters to your request was "
            "invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}


def _not_found(tweet_id: str) -> dict[str, Any]:
    return {"value": tweet_id, "detail": f"Could not find tweet with id: [{tweet_id}].",
            "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
            "resource_id": tweet_id,
            "type": "https://api.twitter.com/2/problems/resource-not-found"}


def _forbidden(detail: str, kind: str = "about:blank") -> dict[str, Any]:
    return {"title": "Forbidden", "type": kind, "status": 403, "detail": detail}


def _as_stored(text: str) -> str:
    """A post's text as X keeps and shows it: ``& < >`` escaped, links shortened to t.co."""
    return _LINK.sub("https://t.co/AbCdEfGhIj", html.escape(text, quote=False))
