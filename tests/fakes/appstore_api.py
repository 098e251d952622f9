"""A fake of Apple's customer-reviews feed: real HTTP on 127.0.0.1, an ephemeral port.

Tests point ``AppStoreSource`` (``base_url``) at it, so httpx, sockets and timeouts run for real::

    with FakeAppStore() as apple:
        apple.add_reviews("us", "284882215", [review("1", at=...), ...])   # newest first
        apple.enqueue(429, headers={"Retry-After": "30"})
        ...
        assert apple.requests[0].path == "/us/rss/customerreviews/page=1/id=284882215/..."

Behaviour, like Apple's feed (``/{country}/rss/customerreviews/page={n}/id={id}/sortby=mostrecent
/json``): 50 reviews a page, pages 1..10, newest first; ``entry`` is a list, a single object when
the page holds one review, and absent when there are none; ``link`` holds ``self``, ``first``,
``last`` (the last page with reviews), ``previous`` and ``next`` (page-numbered hrefs).
``app_entry=True`` puts the old feeds' app-metadata entry (``im:name``, no rating) first on page 1.
Any other path answers 404. Scripted answers (:meth:`enqueue`: status, raw body, headers, delay)
replace the next feed answers in order. Every request is recorded.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.fakes.base import FakeHTTPServer, RecordedRequest
from tests.fakes.base import ScriptedResponse as Scripted

PAGE_SIZE = 50
MAX_PAGES = 10
REAL_HOST = "https://itunes.apple.com"


def review(
    review_id: str, at: datetime, *, rating: int = 4, title: str = "Title",
    content: str = "Body", author: str = "reviewer", version: str = "1.0",
) -> dict[str, Any]:
    """One feed entry as Apple's JSON feed shapes it (every value under ``label``)."""
    return {
        "author": {
            "uri": {"label": f"https://itunes.apple.com/us/reviews/id{abs(hash(author)) % 10**9}"},
            "name": {"label": author},
            "label": "",
        },
        "updated": {"label": at.isoformat()},
        "im:rating": {"label": str(rating)},
        "im:version": {"label": version},
        "id": {"label": review_id},
        "title": {"label": title},
        "content": {"label": content, "attributes": {"type": "text"}},
        "link": {"attributes": {"rel": "related",
                                "href": "https://itunes.apple.com/us/review?id=1"}},
        "im:voteSum": {"label": "0"},
        "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
        "im:voteCount": {"label": "0"},
    }


def app_entry(app_id: str) -> dict[str, Any]:
    """The app-metadata entry old feeds put first on page 1: not a review."""
    return {
        "im:name": {"label": "Acme"},
        "rights": {"label": "© Acme Inc."},
        "id": {"label": f"https://apps.apple.com/us/app/acme/id{app_id}",
               "attributes": {"im:id": app_id}},
        "im:artist": {"label": "Acme Inc."},
    }


class FakeAppStore(FakeHTTPServer):
    """Scriptable fake feed; a context manager, or start()/stop()."""

    name = "fake App Store"
    methods = ("GET",)

    def __init__(self, *, app_entry: bool = False) -> None:
        self.app_entry = app_entry
        super().__init__()
        self._reviews: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # -- scripting and inspection ----------------------------------------------------------

    def add_reviews(self, country: str, app_id: str, entries: list[dict[str, Any]]) -> None:
        """Put ``entries`` (newest first) on top of the app's existing reviews."""
        with self._lock:
            key = (country, app_id)
            self._reviews[key] = list(entries) + self._reviews.get(key, [])

    def enqueue(
        self, status: int = 200, body: str = "", headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next feed request with this instead of the feed."""
        with self._lock:
            self._script.append(Scripted(status, body, dict(headers or {}), delay))

    # -- serving ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Scripted:
        with self._lock:
            self._record(RecordedRequest(method, path, query, headers, body))
            parts = path.strip("/").split("/")
            shaped = (
                len(parts) == 7 and parts[1:3] == ["rss", "customerreviews"]
                and parts[3].startswith("page=") and parts[3][5:].isdigit()
                and parts[4].startswith("id=") and parts[5].lower() == "sortby=mostrecent"
                and parts[6] == "json"
            )
            if not shaped:
                return Scripted(404, json.dumps({"error": "not found"}))
            if self._script:
                return self._script.popleft()
            country, page, app_id = parts[0], int(parts[3][5:]), parts[4][3:]
            reviews = list(self._reviews.get((country, app_id), []))
        return Scripted(200, json.dumps(self._feed(country, app_id, page, reviews)))

    def _feed(
        self, country: str, app_id: str, page: int, reviews: list[dict[str, Any]]
    ) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        if 1 <= page <= MAX_PAGES:
            entries = reviews[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        if page == 1 and self.app_entry:
            entries = [app_entry(app_id), *entries]
        last = max(1, min(MAX_PAGES, -(-len(reviews) // PAGE_SIZE)))

        def link(rel: str, number: int) -> dict[str, Any]:
            href = (f"{REAL_HOST}/{country}/rss/customerreviews/page={number}/id={app_id}"
                    "/sortby=mostrecent/json")
            return {"attributes": {"rel": rel, "type": "application/json", "href": href}}

        feed: dict[str, Any] = {
            "author": {"name": {"label": "iTunes Store"},
                       "uri": {"label": "http://www.apple.com/us/itunes/"}},
            "updated": {"label": "2024-05-01T12:00:00-07:00"},
            "rights": {"label": "Copyright 2008 Apple Inc."},
            "title": {"label": "iTunes Store: Customer Reviews"},
            "icon": {"label": "http://itunes.apple.com/favicon.ico"},
            "link": [
                {"attributes": {"rel": "alternate", "type": "text/html",
                                "href": f"https://apps.apple.com/WebObjects/MZStore.woa/wa/"
                                        f"viewGrouping?cc={country}&id=1"}},
                link("self", page), link("first", 1), link("last", last),
                link("previous", max(1, page - 1)), link("next", min(last, page + 1)),
            ],
            "id": {"label": f"{REAL_HOST}/{country}/rss/customerreviews/page={page}/id={app_id}"
                            "/sortby=mostrecent/json"},
        }
        if len(entries) == 1:
            feed["entry"] = entries[0]
        elif entries:
            feed["entry"] = entries
        return {"feed": feed}
