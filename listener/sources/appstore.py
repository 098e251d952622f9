"""Apple App Store customer reviews, from Apple's public customer-reviews feed (no credentials).

``GET {base_url}/{country}/rss/customerreviews/page={n}/id={app_id}/sortby=mostrecent/json``
answers ``{"feed": {"entry": [...], "link": [...]}}``, newest first, 50 reviews a page and at
most 10 pages: only the latest ~500 reviews per app and storefront (country) can ever be read.
``entry`` is a single object when there is one review and is missing when there are none; old
feeds put an app-metadata entry (``im:name``, no ``im:rating``) first on page 1, which is skipped.

Cursor, one watermark per (app, country), see :class:`Watermark`::

    {"version": 1,
     "apps": {"us:284882215": {"newest_at": "2024-05-01T09:00:00Z", "newest_id": "1107",
                               "seen": ["1107", "1106", ...]}}}

A poll walks an app's pages newest first and stops after the page holding a review that the
previous cycle already stored (or at ``max_pages``, or the feed's last page). The whole page is
still read, so a review Apple publishes late (moderation keeps its older date) is picked up when
it lands next to known ones. The app's watermark moves only on the last page of its walk.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from listener.core.errors import MissingDependency, SourceError
from listener.core.httpguard import GuardSettings, guarded_client, source_policy
from listener.core.models import Page, Post, Rejected, parse_iso
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.http import USER_AGENT, raise_for_status, unanswered
from listener.sources.reviews import ReviewWalk, Watermark, backfill_page, dump_marks, load_marks

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

FEED_PAGES = 10  # Apple serves pages 1..10 of 50 reviews
_PAGE_IN_HREF = re.compile(r"/page=(\d+)/")


class AppStoreApp(BaseModel):
    """One app in one storefront."""

    model_config = ConfigDict(extra="forbid")

    app_id: str = Field(
        pattern=r"^\d+$",
        description="numeric App Store id: the digits after 'id' in the app's apps.apple.com URL",
    )
    country: str = Field(
        "us",
        pattern=r"^[A-Za-z]{2}$",
        description="two-letter storefront code; each country has its own reviews",
    )
    name: str | None = Field(None, description="label for logs and the stored raw record")

    @field_validator("country")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class AppStoreSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: appstore`` source."""

    apps: list[AppStoreApp] = Field(
        min_length=1, description="apps to watch: [{app_id, country (default us), name}]"
    )
    max_pages: int = Field(
        FEED_PAGES,
        ge=1,
        le=FEED_PAGES,
        description="pages of 50 reviews read per app and poll at most (Apple serves 10)",
    )
    base_url: str = Field(
        "https://itunes.apple.com",
        description="feed host; change only for a proxy or a test server",
    )


def _label(entry: dict[str, Any], *path: str) -> str:
    """``entry[path...]["label"]`` as a string; KeyError/TypeError when absent."""
    node: Any = entry
    for key in path:
        node = node[key]
    value = node["label"]
    if not isinstance(value, str):
        raise TypeError(f"{'.'.join(path)} is not text")
    return value


def _optional(entry: dict[str, Any], key: str) -> str | None:
    node = entry.get(key)
    value = node.get("label") if isinstance(node, dict) else None
    return value if isinstance(value, str) else None


def _entries(feed: dict[str, Any]) -> list[Any]:
    entry = feed.get("entry")
    if entry is None:
        return []  # an app without reviews (or a page past the end)
    if isinstance(entry, dict):
        return [entry]  # a single review is an object, not a list
    if isinstance(entry, list):
        return entry
    raise SourceError(f"App Store feed 'entry' is a {type(entry).__name__}, not a list")


def _last_page(feed: dict[str, Any]) -> int:
    """The page number of the feed's ``rel=last`` link, or FEED_PAGES when it has none."""
    links = feed.get("link")
    for link in links if isinstance(links, list) else [links]:
        attributes = link.get("attributes") if isinstance(link, dict) else None
        if isinstance(attributes, dict) and attributes.get("rel") == "last":
            match = _PAGE_IN_HREF.search(str(attributes.get("href", "")))
            if match:
                return int(match.group(1))
    return FEED_PAGES


class AppStoreSource:
    """Reviews of the configured apps, per storefront, newest first."""

    type: ClassVar[str] = "appstore"
    Config: ClassVar[type[SourceConfig]] = AppStoreSourceConfig
    searches: ClassVar[bool] = False  # reviews of your own apps are all relevant

    def __init__(self, config: AppStoreSourceConfig, ctx: SourceContext) -> None:
        try:
            import httpx  # noqa: F401 - checked here so `listener sources` can tell
        except ImportError as exc:
            raise MissingDependency("httpx", "appstore") from exc
        self.config = config
        self.ctx = ctx
        self.name = config.name

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """New reviews of every app; each app's watermark is saved with its walk's last page."""
        marks = load_marks(cursor, self.name)
        with self._client() as client:
            for app in self.config.apps:
                yield from self._fetch_app(client, app, marks)

    def backfill(self, since: datetime) -> Iterator[Page]:
        """Reviews back to ``since``, but Apple's feed only holds the latest ~500 per country.

        Pages carry ``cursor=None``: history never moves the live watermark.
        """
        with self._client() as client:
            for app in self.config.apps:
                for number in range(1, FEED_PAGES + 1):
                    feed = self._get_page(client, app, number)
                    entries = _entries(feed)
                    items = [self._parse(e, app, number, i) for i, e in enumerate(entries)]
                    page, older = backfill_page(items, since)
                    yield page
                    if older or not entries or number >= _last_page(feed):
                        break

    def _client(self) -> httpx.Client:
        return guarded_client(
            source_policy(self.name, self.config, [self.config.base_url]),
            base_url=self.config.base_url.rstrip("/"),
            timeout=self.ctx.http_timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def _fetch_app(
        self, client: httpx.Client, app: AppStoreApp, marks: dict[str, Watermark]
    ) -> Iterator[Page]:
        key = f"{app.country}:{app.app_id}"
        walk = ReviewWalk(marks.get(key) or Watermark())
        for number in range(1, self.config.max_pages + 1):
            feed = self._get_page(client, app, number)
            entries = _entries(feed)
            posts, rejected, covered = walk.sort(
                self._parse(entry, app, number, index) for index, entry in enumerate(entries)
            )
            last = number >= min(self.config.max_pages, _last_page(feed))
            if covered or not entries or last:
                more = entries and number < _last_page(feed)
                if more and not covered and walk.mark.newest_at:
                    log.warning(
                        "source %s: app %s (%s) had more new reviews than %d pages hold; older "
                        "ones since the last poll are skipped: poll more often",
                        self.name, app.app_id, app.country, number,
                    )
                marks[key] = walk.advanced()
                yield Page(posts=posts, cursor=dump_marks(marks), rejected=rejected)
                return
            yield Page(posts=posts, cursor=None, rejected=rejected)

    def _get_page(self, client: httpx.Client, app: AppStoreApp, number: int) -> dict[str, Any]:
        """One feed page as the ``feed`` object; raises SourceError / RateLimited."""
        import httpx

        path = (f"/{app.country}/rss/customerreviews/page={number}/id={app.app_id}"
                "/sortby=mostrecent/json")
        where = f"source {self.name}: App Store app {app.app_id} ({app.country}) page {number}"
        try:
            response = client.get(path)
        except httpx.HTTPError as exc:
            raise unanswered(where, "Apple's feed", self.config.base_url, exc,
                             self.ctx.http_timeout) from None
        raise_for_status(self.name, response.status_code, response.headers, response.text,
                         self.ctx.clock())
        try:
            data = response.json()
        except ValueError as exc:
            raise SourceError(f"{where}: the answer is not JSON: {response.text[:100]!r}") from exc
        feed = data.get("feed") if isinstance(data, dict) else None
        if not isinstance(feed, dict):
            raise SourceError(f"{where}: the answer has no 'feed' object; did the API change?")
        return feed

    def _parse(
        self, entry: Any, app: AppStoreApp, number: int, index: int
    ) -> Post | Rejected | None:
        """A review as a Post; None for the app-metadata entry; Rejected when malformed."""
        where = f"appstore:{app.country}:{app.app_id}:page{number}#{index + 1}"
        if not isinstance(entry, dict):
            return Rejected(where, f"entry is a {type(entry).__name__}, not an object")
        if "im:name" in entry and "im:rating" not in entry:
            log.debug("%s: skipping the app-metadata entry", where)
            return None
        try:
            review_id = _label(entry, "id")
            rating = int(_label(entry, "im:rating"))
            created_at = parse_iso(_label(entry, "updated"))
            title = _optional(entry, "title") or ""
            content = _label(entry, "content")
            author = _label(entry, "author", "name") if "author" in entry else None
        except (KeyError, TypeError, ValueError) as exc:
            return Rejected(where, f"malformed review: {type(exc).__name__}: {exc}")
        if not review_id.strip() or not 1 <= rating <= 5:
            return Rejected(where, f"malformed review: id {review_id!r}, rating {rating}")
        return Post(
            platform="appstore",
            platform_id=review_id,
            text=f"{title}\n{content}".strip(),
            created_at=created_at,
            source=self.name,
            url=f"https://apps.apple.com/{app.country}/app/id{app.app_id}?see-all=reviews",
            author=author,
            kind="review",
            rating=float(rating),
            brand=self.config.brand,
            raw={
                "id": review_id, "app_id": app.app_id, "app_name": app.name,
                "country": app.country, "version": _optional(entry, "im:version"), "title": title,
                "vote_sum": _optional(entry, "im:voteSum"),
                "vote_count": _optional(entry, "im:voteCount"),
            },
        )
