"""A fake YouTube Data API v3 for tests: real HTTP on 127.0.0.1, an ephemeral port.

The real google-api-python-client (over the source's guarded httpx transport) talks to it with
``client_options={"api_endpoint": fake.base_url}``, so request building, the ``key`` parameter,
JSON decoding and ``HttpError`` are the library's own::

    with FakeYouTube() as yt:
        yt.add_channel(CHANNEL, "Acme", subscribers=1200)
        yt.add_video("dQw4w9WgXcQ", CHANNEL, "Acme unboxing", published=...)
        yt.add_thread("Ugx1", "dQw4w9WgXcQ", "acme broke again", published=...)

What it serves under ``/youtube/v3``, in the reference's shapes (``kind``, ``etag``,
``pageInfo``, ``nextPageToken``, ``items``), each call counted in :attr:`FakeYouTube.units` at
its documented quota cost (search.list 100, the others 1):

- ``commentThreads``: exactly one of ``allThreadsRelatedToChannelId`` (404 ``channelNotFound``
  for an unknown channel), ``videoId`` (404 ``videoNotFound`` for a missing or deleted video,
  403 ``commentsDisabled``) or ``id`` (comma-separated; missing threads are left out;
  ``maxResults`` with ``id`` is 400 ``incompatibleParameters``); ``order=time`` (threads by
  their top-level comment's publishedAt, newest first; the default), ``maxResults`` 1-100
  (default 20), ``pageToken`` (positional: the next page starts after the last thread of the
  previous one, so threads arriving meanwhile shift nothing; :meth:`FakeYouTube.expire_tokens`
  makes every issued token answer 400 ``invalidPageToken``), ``part`` ``snippet``/``replies``
  (at most :attr:`FakeYouTube.replies_included` replies in a thread, the oldest), ``textFormat``.
- ``comments``: ``parentId`` (404 ``commentNotFound``), replies oldest first, ``maxResults``
  1-100 (default 20), ``pageToken`` (an offset).
- ``search``: ``q`` (words and "phrases" in the title or description, case-insensitive; ``a|b``
  for OR, binding tighter than the implicit AND; ``-x`` for NOT), ``type=video``,
  ``order=date`` (newest first), ``publishedAfter`` / ``publishedBefore`` (both inclusive),
  ``maxResults`` 0-50 (default 5), ``pageToken`` (an offset: a video published meanwhile
  shifts the next page by one, as on YouTube); snippets' descriptions are cut to 160
  characters; at most 500 results per query.
- ``videos`` (``id``, up to 50): deleted or private videos are left out; ``channels`` (``id``,
  up to 50; ``part=statistics`` with ``subscriberCount`` as a string, or
  ``hiddenSubscriberCount``); ``i18nRegions``.

No ``key`` → 403 ``forbidden``; a wrong one → 400 ``keyInvalid`` ("API key not valid").
Past ``daily_quota`` units → 403 ``quotaExceeded``. Errors are
``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}``.
Scripted answers (:meth:`FakeYouTube.enqueue`) come first, once each, for a matching resource;
:meth:`FakeYouTube.add_after` changes the data after some requests (items arriving between
pages); :meth:`FakeYouTube.sent` is the request log per resource.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import ChangingFake, RecordedRequest, ScriptedResponse

KEY = "AIzaSyFakeYouTubeKey-0123456789abcdefgh"
ROOT = "/youtube/v3/"
COSTS = {"search": 100}
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_QUERY_TOKEN = re.compile(r'(?:"[^"]*"|[^\s"])+')
_ALTERNATIVE = re.compile(r'"[^"]*"|[^|]+')


def stamp(when: datetime) -> str:
    """publishedAt as the API writes it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(code: int, reason: str, message: str, domain: str = "youtube.api"
          ) -> dict[str, Any]:
    """A Google API error body."""
    return {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": domain, "reason": reason}],
                      "status": _STATUS.get(code, "UNKNOWN")}}


@dataclass
class FakeComment:
    id: str
    text: str
    published: datetime
    author: str = "@viewer"
    author_channel: str = "UCviewer0000000000000000"
    likes: int = 0
    parent: str | None = None

    def resource(self, video: str | None, channel: str) -> dict[str, Any]:
        snippet: dict[str, Any] = {
            "channelId": channel, "textDisplay": self.text, "textOriginal": self.text,
            "authorDisplayName": self.author,
            "authorProfileImageUrl": "https://yt3.ggpht.example/a.jpg",
            "authorChannelUrl": f"http://www.youtube.com/{self.author}",
            "authorChannelId": {"value": self.author_channel}, "canRate": True,
            "viewerRating": "none", "likeCount": self.likes,
            "publishedAt": stamp(self.published), "updatedAt": stamp(self.published),
        }
        if video:
            snippet["videoId"] = video
        if self.parent:
            snippet["parentId"] = self.parent
        return {"kind": "youtube#comment", "etag": f"e-{self.id}", "id": self.id,
                "snippet": snippet}


@dataclass
class FakeThread:
    id: str
    video: str | None
    channel: str
    top: FakeComment
    replies: list[FakeComment] = field(default_factory=list)
    public: bool = True


@dataclass
class FakeVideo:
    id: str
    channel: str
    title: str
    description: str
    published: datetime
    default_language: str | None = None
    default_audio_language: str | None = None
    comments_disabled: bool = False
    deleted: bool = False


@dataclass
class FakeChannel:
    id: str
    title: str
    subscribers: int | None  # None: hidden


class FakeYouTube(ChangingFake):
    """The fake API; use as a context manager, add channels, videos and threads."""

    name = "fake YouTube Data API"
    methods = ("GET",)

    def __init__(self, key: str = KEY, daily_quota: int | None = None) -> None:
        super().__init__()
        self.key, self.daily_quota = key, daily_quota
        self.units = 0
        self.replies_included = 5
        self.channels: dict[str, FakeChannel] = {}
        self.videos: dict[str, FakeVideo] = {}
        self.threads: dict[str, FakeThread] = {}
        self._generation = 0

    # -- data ----------------------------------------------------------------------------------

    def add_channel(self, channel_id: str, title: str = "Acme",
                    subscribers: int | None = 1200) -> None:
        with self._lock:
            self.channels[channel_id] = FakeChannel(channel_id, title, subscribers)

    def add_video(self, video_id: str, channel_id: str, title: str, description: str = "", *,
                  published: datetime, default_language: str | None = None,
                  default_audio_language: str | None = None,
                  comments_disabled: bool = False) -> FakeVideo:
        with self._lock:
            if channel_id not in self.channels:
                self.channels[channel_id] = FakeChannel(channel_id, "Channel", 10)
            video = FakeVideo(video_id, channel_id, title, description, published,
                              default_language, default_audio_language, comments_disabled)
            self.videos[video_id] = video
            return video

    def add_thread(self, thread_id: str, video_id: str, text: str, *, published: datetime,
                   author: str = "@viewer", public: bool = True) -> FakeThread:
        """A top-level comment on a video (the video must exist)."""
        with self._lock:
            video = self.videos[video_id]
            thread = FakeThread(thread_id, video_id, video.channel,
                                FakeComment(thread_id, text, published, author), public=public)
            self.threads[thread_id] = thread
            return thread

    def add_reply(self, thread_id: str, reply_id: str, text: str, *, published: datetime,
                  author: str = "@replier") -> None:
        with self._lock:
            thread = self.threads[thread_id]
            thread.replies.append(FakeComment(f"{thread_id}.{reply_id}", text, published,
                                              author, parent=thread_id))
            thread.replies.sort(key=lambda c: c.published)

    def delete_video(self, video_id: str) -> None:
        with self._lock:
            self.videos[video_id].deleted = True

    def delete_thread(self, thread_id: str) -> None:
        with self._lock:
            del self.threads[thread_id]

    def expire_tokens(self) -> None:
        """Every page token issued so far is refused from now on."""
        with self._lock:
            self._generation += 1

    add_after = ChangingFake.after  # the name the Hacker News and Stack Exchange fakes use

    def enqueue(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
                *, resource: str | None = None, delay: float = 0.0) -> None:
        """Answer the next request for ``resource`` ("search", "commentThreads", …; None: any)
        with exactly this, instead of the API's answer."""
        with self._lock:
            self._script.append((resource, ScriptedResponse(status, body, dict(headers or {}),
                                                            delay)))

    def sent(self, resource: str) -> list[RecordedRequest]:
        """The requests received for one resource, oldest first."""
        return [r for r in self.requests if r.path == ROOT + resource]

    # -- called from handler threads -----------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        resource = path.removeprefix(ROOT)
        with self._lock:
            self._arrive(request)
            scripted = next((s for s in self._script if s[0] in (None, resource)), None)
            if scripted is not None:
                self._script.remove(scripted)
                return scripted[1]
            status, answer = self._answer(resource, request.query)
            return ScriptedResponse(status, answer)

    def _answer(self, resource: str, params: dict[str, str]) -> tuple[int, Any]:
        if "key" not in params:
            return 403, error(403, "forbidden", "The request is missing a valid API key.",
                              "global")
        if params["key"] != self.key:
            body = error(400, "badRequest", "API key not valid. Please pass a valid API key.",
                         "global")
            body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                         "reason": "API_KEY_INVALID",
                                         "domain": "googleapis.com"}]
            return 400, body
        routes = {"commentThreads": self._threads, "comments": self._comments,
                  "search": self._search, "videos": self._videos, "channels": self._channels,
                  "i18nRegions": self._regions}
        route = routes.get(resource)
        if route is None:
            return 404, error(404, "notFound", "Not Found", "global")
        if "part" not in params:
            return 400, error(400, "required", "Required parameter: part", "global")
        cost = COSTS.get(resource, 1)
        if self.daily_quota is not None and self.units + cost > self.daily_quota:
            return 403, error(403, "quotaExceeded", "The request cannot be completed because "
                              "you have exceeded your <a href=\"/youtube/v3/getting-started"
                              "#quota\">quota</a>.", "youtube.quota")
        self.units += cost
        try:
            return route(params)
        except _Refused as refused:
            return refused.status, refused.body

    # -- resources -----------------------------------------------------------------------------

    def _threads(self, params: dict[str, str]) -> tuple[int, Any]:
        filters = [k for k in ("allThreadsRelatedToChannelId", "videoId", "id") if k in params]
        if len(filters) != 1:
            raise _Refused(400, "missingRequiredParameter",
                           "Specify exactly one of allThreadsRelatedToChannelId, videoId, id.")
        with_replies = "replies" in params["part"].split(",")
        if "id" in params:
            if "maxResults" in params:
                raise _Refused(400, "incompatibleParameters",
                               "maxResults is not supported in conjunction with id.")
            wanted = params["id"].split(",")
            items = [self._thread_resource(self.threads[i], with_replies)
                     for i in wanted if i in self.threads and self.threads[i].public]
            return 200, self._list("youtube#commentThreadListResponse", items, None)
        if "videoId" in params:
            video = self.videos.get(params["videoId"])
            if video is None or video.deleted:
                raise _Refused(404, "videoNotFound", "The video identified by the videoId "
                               "parameter could not be found.", "youtube.commentThread")
            if video.comments_disabled:
                raise _Refused(403, "commentsDisabled", "The video identified by the videoId "
                               "parameter has disabled comments.", "youtube.commentThread")
            threads = [t for t in self.threads.values() if t.video == video.id]
        else:
            channel = params["allThreadsRelatedToChannelId"]
            if channel not in self.channels:
                raise _Refused(404, "channelNotFound", "The channel identified by the "
                               "allThreadsRelatedToChannelId parameter could not be found.",
                               "youtube.commentThread")
            threads = [t for t in self.threads.values() if t.channel == channel
                       and not (t.video and self.videos[t.video].deleted)]
        if params.get("order", "time") != "time":
            raise _Refused(400, "invalidOrder", "this fake orders by time only")
        threads = [t for t in threads if t.public]
        threads.sort(key=lambda t: (t.top.published, t.id), reverse=True)
        size = self._size(params, 1, 100, 20)
        start = 0
        if params.get("pageToken"):
            position = self._token(params["pageToken"])
            after = (datetime.fromisoformat(position[0]), position[1])
            start = next((i for i, t in enumerate(threads) if (t.top.published, t.id) < after),
                         len(threads))
        page = threads[start:start + size]
        more = start + size < len(threads)
        token = self._issue([page[-1].top.published.isoformat(), page[-1].id]) \
            if more and page else None
        items = [self._thread_resource(t, with_replies) for t in page]
        return 200, self._list("youtube#commentThreadListResponse", items, token)

    def _thread_resource(self, thread: FakeThread, with_replies: bool) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "kind": "youtube#commentThread", "etag": f"e-{thread.id}", "id": thread.id,
            "snippet": {"channelId": thread.channel, "videoId": thread.video,
                        "topLevelComment": thread.top.resource(thread.video, thread.channel),
                        "canReply": True, "totalReplyCount": len(thread.replies),
                        "isPublic": thread.public}}
        if with_replies and thread.replies:
            resource["replies"] = {"comments": [
                r.resource(thread.video, thread.channel)
                for r in thread.replies[:self.replies_included]]}
        return resource

    def _comments(self, params: dict[str, str]) -> tuple[int, Any]:
        parent = params.get("parentId")
        if parent is None:
            raise _Refused(400, "missingRequiredParameter", "this fake serves parentId only")
        thread = self.threads.get(parent)
        if thread is None:
            raise _Refused(404, "commentNotFound", "One or more of the comments identified by "
                           "the parentId parameter could not be found.", "youtube.comment")
        size = self._size(params, 1, 100, 20)
        start = int(self._token(params["pageToken"])) if params.get("pageToken") else 0
        page = thread.replies[start:start + size]
        token = self._issue(start + size) if start + size < len(thread.replies) else None
        return 200, self._list("youtube#commentListResponse",
                               [r.resource(None, thread.channel) for r in page], token)

    def _search(self, params: dict[str, str]) -> tuple[int, Any]:
        if params.get("type") != "video":
            raise _Refused(400, "invalidSearchFilter", "this fake searches videos only")
        after = _time(params.get("publishedAfter"))
        before = _time(params.get("publishedBefore"))
        matches = [v for v in self.videos.values() if not v.deleted
                   and _matches(params.get("q", ""), f"{v.title}\n{v.description}")
                   and (after is None or v.published >= after)
                   and (before is None or v.published <= before)]
        matches.sort(key=lambda v: (v.published, v.id), reverse=True)
        matches = matches[:500]
        size = self._size(params, 0, 50, 5)
        start = int(self._token(params["pageToken"])) if params.get("pageToken") else 0
        page = matches[start:start + size]
        token = self._issue(start + size) if start + size < len(matches) else None
        items = [{"kind": "youtube#searchResult", "etag": f"s-{v.id}",
                  "id": {"kind": "youtube#video", "videoId": v.id},
                  "snippet": {"publishedAt": stamp(v.published), "channelId": v.channel,
                              "title": v.title, "description": v.description[:160],
                              "thumbnails": {}, "channelTitle": self.channels[v.channel].title,
                              "liveBroadcastContent": "none",
                              "publishTime": stamp(v.published)}} for v in page]
        answer = self._list("youtube#searchListResponse", items, token, total=len(matches))
        answer["regionCode"] = "US"
        return 200, answer

    def _videos(self, params: dict[str, str]) -> tuple[int, Any]:
        wanted = params.get("id", "").split(",")
        if len(wanted) > 50:
            raise _Refused(400, "invalidParameter", "at most 50 ids")
        if "maxResults" in params:
            raise _Refused(400, "incompatibleParameters",
                           "maxResults is not supported in conjunction with id.")
        items = []
        for video_id in wanted:
            video = self.videos.get(video_id)
            if video is None or video.deleted:
                continue
            snippet: dict[str, Any] = {
                "publishedAt": stamp(video.published), "channelId": video.channel,
                "title": video.title, "description": video.description, "thumbnails": {},
                "channelTitle": self.channels[video.channel].title, "categoryId": "28",
                "liveBroadcastContent": "none",
                "localized": {"title": video.title, "description": video.description}}
            if video.default_language:
                snippet["defaultLanguage"] = video.default_language
            if video.default_audio_language:
                snippet["defaultAudioLanguage"] = video.default_audio_language
            items.append({"kind": "youtube#video", "etag": f"v-{video.id}", "id": video.id,
                          "snippet": snippet})
        return 200, self._list("youtube#videoListResponse", items, None)

    def _channels(self, params: dict[str, str]) -> tuple[int, Any]:
        wanted = params.get("id", "").split(",")
        if len(wanted) > 50:
            raise _Refused(400, "invalidParameter", "at most 50 ids")
        parts = params["part"].split(",")
        items = []
        for channel_id in wanted:
            channel = self.channels.get(channel_id)
            if channel is None:
                continue
            item: dict[str, Any] = {"kind": "youtube#channel", "etag": f"c-{channel.id}",
                                    "id": channel.id}
            if "statistics" in parts:
                hidden = channel.subscribers is None
                stats: dict[str, Any] = {"viewCount": "1000", "hiddenSubscriberCount": hidden,
                                         "videoCount": "12"}
                if not hidden:
                    stats["subscriberCount"] = str(channel.subscribers)
                item["statistics"] = stats
            items.append(item)
        answer = self._list("youtube#channelListResponse", items, None)
        if not items:
            del answer["items"]  # as YouTube answers when no id matches
        return 200, answer

    def _regions(self, params: dict[str, str]) -> tuple[int, Any]:
        items = [{"kind": "youtube#i18nRegion", "etag": "r-us", "id": "US",
                  "snippet": {"gl": "US", "name": "United States"}}]
        return 200, {"kind": "youtube#i18nRegionListResponse", "etag": "r", "items": items}

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _list(kind: str, items: list[Any], token: str | None, total: int | None = None
              ) -> dict[str, Any]:
        answer: dict[str, Any] = {"kind": kind, "etag": "etag", "pageInfo": {
            "totalResults": len(items) if total is None else total,
            "resultsPerPage": len(items)}, "items": items}
        if token:
            answer["nextPageToken"] = token
        return answer

    @staticmethod
    def _size(params: dict[str, str], low: int, high: int, default: int) -> int:
        raw = params.get("maxResults")
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise _Refused(400, "invalidMaxResults", f"maxResults must be {low} to {high}")
        return int(raw)

    def _issue(self, position: Any) -> str:
        data = json.dumps({"g": self._generation, "p": position}).encode()
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    def _token(self, token: str) -> Any:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            valid = data["g"] == self._generation
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            raise _Refused(400, "invalidPageToken", "The request specifies an invalid page "
                           "token.", "youtube.parameter")
        return data["p"]


class _Refused(Exception):  # noqa: N818 - an answer, raised out of a resource handler
    def __init__(self, status: int, reason: str, message: str,
                 domain: str = "youtube.parameter") -> None:
        self.status, self.body = status, error(status, reason, message, domain)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _Refused(400, "invalidPublishedAfter", f"bad time {value!r}") from exc


def _matches(query: str, text: str) -> bool:
    """YouTube's q: words/phrases ANDed; ``a|b`` an OR of its parts; ``-x`` excludes."""
    haystack = text.lower()

    def has(word: str) -> bool:
        words = r"\s+".join(re.escape(w) for w in word.lower().split())
        return bool(words) and re.search(rf"(?<!\w){words}(?!\w)", haystack) is not None

    for token in _QUERY_TOKEN.findall(query):
        if token.startswith("-") and len(token) > 1:
            if has(token[1:].strip('"')):
                return False
            continue
        options = [o.strip('"') for o in _ALTERNATIVE.findall(token)]
        if not any(has(option) for option in options):
            return False
    return True
