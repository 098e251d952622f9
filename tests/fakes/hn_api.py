"""A fake Algolia HN Search API for tests: real HTTP on 127.0.0.1, an ephemeral port.

Tests point the real source (httpx) at it with ``base_url=fake.base_url``; nothing of ours is
mocked. It answers ``GET /api/v1/search_by_date`` the way hn.algolia.com/api documents it:

- ``query``: every word (or "quoted phrase") must occur, case-insensitively, in the hit's
  title, url, author, story_text or comment_text (Algolia matches more loosely; enough here);
- ``tags``: comma = AND, ``(a,b)`` = OR, matched against each hit's ``_tags``;
- ``numericFilters``: comma-separated ``field<op>number`` (``<``, ``<=``, ``=``, ``>=``, ``>``);
- newest first (``created_at_i`` descending), ``hitsPerPage`` (default 20) and ``page`` from 0;
- at most 1,000 hits per query can be paged through (Algolia's paginationLimitedTo): later pages
  are empty and carry Algolia's ``message``;
- the body: ``hits``, ``nbHits``, ``page``, ``nbPages``, ``hitsPerPage``, ``exhaustiveNbHits``,
  ``exhaustive``, ``query``, ``params``, ``processingTimeMS``.

Scripting: :meth:`FakeHNSearch.enqueue` queues a raw answer (status, body, headers, delay) used
once, in order, before the normal search; :meth:`FakeHNSearch.add_after` makes hits appear only
after some requests (new items arriving between pages). Every request is recorded.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse

SEARCH_PATH = "/api/v1/search_by_date"
PAGINATION_LIMIT = 1000
_NUMERIC = re.compile(r"^\s*(\w+)\s*(<=|>=|<|>|=)\s*(-?\d+(?:\.\d+)?)\s*$")
_WORDS = re.compile(r'"([^"]*)"|(\S+)')


def story(
    object_id: int | str, created_at_i: int, title: str | None, *, author: str | None = "pg",
    url: str | None = None, story_text: str | None = None, points: int = 1,
    num_comments: int = 0,
) -> dict[str, Any]:
    """A story hit as the API returns it."""
    return {
        "created_at": _iso(created_at_i), "title": title, "url": url, "author": author,
        "points": points, "story_text": story_text, "comment_text": None,
        "num_comments": num_comments, "story_id": None, "story_title": None, "story_url": None,
        "parent_id": None, "created_at_i": created_at_i,
        "_tags": ["story", f"author_{author}", f"story_{object_id}"],
        "objectID": str(object_id), "_highlightResult": _highlight(author),
    }


def comment(
    object_id: int | str, created_at_i: int, comment_text: str | None, *,
    author: str | None = "dang", story_id: int = 1, parent_id: int | None = None,
    story_title: str = "A story",
) -> dict[str, Any]:
    """A comment hit as the API returns it (``comment_text`` is HTML)."""
    return {
        "created_at": _iso(created_at_i), "title": None, "url": None, "author": author,
        "points": None, "story_text": None, "comment_text": comment_text, "num_comments": None,
        "story_id": story_id, "story_title": story_title, "story_url": None,
        "parent_id": parent_id or story_id, "created_at_i": created_at_i,
        "_tags": ["comment", f"author_{author}", f"story_{story_id}"],
        "objectID": str(object_id), "_highlightResult": _highlight(author),
    }


def _iso(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _highlight(author: str | None) -> dict[str, Any]:
    return {"author": {"value": author or "", "matchLevel": "none", "matchedWords": []}}


class FakeHNSearch(FakeHTTPServer):
    """The fake API; use as a context manager, add hits, point ``base_url`` at it."""

    name = "fake HN Search API"
    methods = ("GET",)

    def __init__(self) -> None:
        super().__init__()
        self._hits: list[dict[str, Any]] = []
        self._later: list[tuple[int, list[dict[str, Any]]]] = []

    # -- scripting and inspection --------------------------------------------------------------

    def add(self, *hits: dict[str, Any]) -> None:
        """Index these hits now."""
        with self._lock:
            self._hits.extend(hits)

    def add_after(self, requests: int, *hits: dict[str, Any]) -> None:
        """Index these hits once ``requests`` requests have been answered."""
        with self._lock:
            self._later.append((requests, list(hits)))

    def enqueue(self, status: int = 200, body: str | bytes = "",
                headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        """Answer the next request with exactly this (FIFO), instead of searching."""
        with self._lock:
            self._script.append(ScriptedResponse(status, body, dict(headers or {}), delay))

    # -- called from handler threads -----------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        params = request.query
        with self._lock:
            number = len(self._requests)
            self._record(request)
            for after, hits in [entry for entry in self._later if entry[0] <= number]:
                self._hits.extend(hits)
                self._later.remove((after, hits))
            if self._script:
                return self._script.popleft()
            if path != SEARCH_PATH:
                return ScriptedResponse(404, json.dumps({"message": "Not Found", "status": 404}))
            try:
                return ScriptedResponse(200, json.dumps(self._search(params)))
            except ValueError as exc:  # Algolia answers a bad parameter with 400 and a message
                return ScriptedResponse(400, json.dumps({"message": str(exc), "status": 400}))

    def _search(self, params: dict[str, str]) -> dict[str, Any]:
        query = params.get("query", "")
        matching = [
            hit for hit in self._hits
            if _matches_query(hit, query) and _matches_tags(hit, params.get("tags", ""))
            and _matches_numeric(hit, params.get("numericFilters", ""))
        ]
        matching.sort(key=lambda h: (h["created_at_i"], int(h["objectID"])), reverse=True)
        per_page, page = int(params.get("hitsPerPage", 20)), int(params.get("page", 0))
        reachable = min(len(matching), PAGINATION_LIMIT)
        answer: dict[str, Any] = {
            "hits": [], "nbHits": len(matching), "page": page,
            "nbPages": math.ceil(reachable / per_page), "hitsPerPage": per_page,
            "exhaustiveNbHits": True, "exhaustiveTypo": True,
            "exhaustive": {"nbHits": True, "typo": True}, "query": query,
            "params": urlencode(params), "processingTimeMS": 1,
        }
        start = page * per_page
        if start >= PAGINATION_LIMIT:
            answer["message"] = (
                f"you can only fetch the {PAGINATION_LIMIT} hits for this query. You can extend "
                "the number of hits returned via the paginationLimitedTo index parameter or use "
                "the browse method."
            )
            return answer
        answer["hits"] = matching[start:min(start + per_page, reachable)]
        return answer


def _matches_query(hit: dict[str, Any], query: str) -> bool:
    fields = ("title", "url", "author", "story_text", "comment_text")
    haystack = " ".join(str(hit.get(f) or "") for f in fields).lower()
    needles = [m.group(1) or m.group(2) for m in _WORDS.finditer(query)]
    return all(needle.lower() in haystack for needle in needles if needle)


def _matches_tags(hit: dict[str, Any], tags: str) -> bool:
    own = set(hit.get("_tags") or [])
    for group in re.findall(r"\([^)]*\)|[^,()]+", tags):
        options = {t.strip() for t in group.strip("()").split(",") if t.strip()}
        if options and not options & own:
            return False
    return True


def _matches_numeric(hit: dict[str, Any], filters: str) -> bool:
    for condition in filter(None, (f.strip() for f in filters.split(","))):
        match = _NUMERIC.match(condition)
        if not match:
            raise ValueError(f"bad numeric filter {condition!r}")
        name, op, number = match.group(1), match.group(2), float(match.group(3))
        value = hit.get(name)
        if value is None:
            return False
        ok = {"<": value < number, "<=": value <= number, "=": value == number,
              ">=": value >= number, ">": value > number}[op]
        if not ok:
            return False
    return True
