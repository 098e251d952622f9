"""The App Store source against a fake of Apple's customer-reviews feed, over real HTTP."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.core.errors import MissingDependency, RateLimited, SourceError
from listener.core.models import Page
from listener.core.query import Brand, parse
from listener.sources.appstore import AppStoreSource, AppStoreSourceConfig
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.http import USER_AGENT
from storage.db import load_cursor, open_db
from tests.fakes.appstore_api import FakeAppStore, review

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
APP = "284882215"


def reviews(first: int, count: int, *, newest: datetime = NOW) -> list[dict[str, Any]]:
    """``count`` reviews with ids first+count-1 .. first, newest first, an hour apart."""
    top = first + count - 1
    return [review(str(top - i), newest - timedelta(hours=i), title=f"T{top - i}",
                   content=f"review {top - i}") for i in range(count)]


@pytest.fixture
def apple() -> Iterator[FakeAppStore]:
    with FakeAppStore() as fake:
        yield fake


def make_source(apple: FakeAppStore, timeout: float = 5.0, **settings: Any) -> AppStoreSource:
    values = {"type": "appstore", "name": "ios", "apps": [{"app_id": APP}],
              "base_url": apple.base_url, **settings}
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout)
    return AppStoreSource(AppStoreSourceConfig(**values), ctx)


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for page in pages for post in page.posts]


def saved(pages: list[Page]) -> Any:
    """The cursor the collect stage would hold after these pages (JSON round trip, like the DB)."""
    cursors = [p.cursor for p in pages if p.cursor is not None]
    return json.loads(json.dumps(cursors[-1])) if cursors else None


def test_first_fetch_maps_every_field(apple: FakeAppStore) -> None:
    apple.add_reviews("gb", APP, [
        review("9001", datetime(2024, 4, 30, 8, 15, tzinfo=UTC) + timedelta(hours=-7),
               rating=2, title="Crashes", content="Since 3.2 it crashes on start",
               author="jo", version="3.2"),
        review("9000", datetime(2024, 4, 29, 8, 0, tzinfo=UTC)),
    ])
    source = make_source(apple, apps=[{"app_id": APP, "country": "GB", "name": "Acme"}],
                         brand="acme")
    [page] = list(source.fetch(None))
    first = page.posts[0]
    assert (first.platform, first.platform_id, first.kind, first.rating) == (
        "appstore", "9001", "review", 2.0)
    assert first.text == "Crashes\nSince 3.2 it crashes on start"
    assert first.created_at == datetime(2024, 4, 30, 1, 15, tzinfo=UTC)
    assert first.created_at.tzinfo is UTC
    assert first.url == f"https://apps.apple.com/gb/app/id{APP}?see-all=reviews"
    assert (first.author, first.source, first.brand) == ("jo", "ios", "acme")
    assert first.raw["version"] == "3.2" and first.raw["country"] == "gb"
    assert first.raw["app_name"] == "Acme"
    assert ids([page]) == ["9001", "9000"] and page.rejected == []


def test_request_path_and_user_agent_sent(apple: FakeAppStore) -> None:
    """Not a searching source (no brand query to send): the feed URL and our UA are what go out."""
    apple.add_reviews("us", APP, reviews(1, 3))
    list(make_source(apple).fetch(None))
    [request] = apple.requests
    assert request.path == f"/us/rss/customerreviews/page=1/id={APP}/sortby=mostrecent/json"
    assert request.headers["user-agent"] == USER_AGENT


def test_pagination_moves_cursor_only_on_last_page(apple: FakeAppStore) -> None:
    apple.add_reviews("us", APP, reviews(1, 120))
    pages = list(make_source(apple).fetch(None))
    assert [len(p.posts) for p in pages] == [50, 50, 20]
    assert [p.cursor is None for p in pages] == [True, True, False]
    assert ids(pages) == [str(i) for i in range(120, 0, -1)]
    # the feed's rel=last link says page 3 is the end: no 4th request
    assert [r.path.split("/")[4] for r in apple.requests] == ["page=1", "page=2", "page=3"]
    mark = pages[-1].cursor["apps"][f"us:{APP}"]
    assert mark["newest_id"] == "120" and mark["newest_at"] == "2024-05-01T12:00:00Z"


def test_max_pages_bounds_a_poll(apple: FakeAppStore) -> None:
    apple.add_reviews("us", APP, reviews(1, 200))
    pages = list(make_source(apple, max_pages=2).fetch(None))
    assert len(apple.requests) == 2 and len(ids(pages)) == 100
    assert pages[-1].cursor is not None


def test_resume_from_saved_cursor_gets_only_new_reviews(apple: FakeAppStore) -> None:
    apple.add_reviews("us", APP, reviews(1, 60))
    cursor = saved(list(make_source(apple).fetch(None)))
    apple.add_reviews("us", APP, reviews(61, 3, newest=NOW + timedelta(hours=3)))
    before = len(apple.requests)
    pages = list(make_source(apple).fetch(cursor))  # a new instance, as after a restart
    assert ids(pages) == ["63", "62", "61"]
    assert len(apple.requests) - before == 1  # page 1 held a known review: walk ends there
    assert pages[-1].cursor["apps"][f"us:{APP}"]["newest_id"] == "63"
    assert ids(list(make_source(apple).fetch(saved(pages)))) == []


def test_late_published_and_edited_reviews(apple: FakeAppStore) -> None:
    """Apple publishes some reviews late with their older date; an edit moves a review up."""
    apple.add_reviews("us", APP, reviews(1, 5))
    cursor = saved(list(make_source(apple).fetch(None)))
    edited = review("3", NOW + timedelta(hours=2), content="edited")
    late = review("77", NOW - timedelta(hours=2, minutes=30))  # between reviews 3 and 2
    apple.add_reviews("us", APP, [edited, review("6", NOW + timedelta(hours=1))])
    entries = apple._reviews[("us", APP)]
    entries.insert(entries.index(next(e for e in entries if e["id"]["label"] == "2")), late)
    pages = list(make_source(apple).fetch(cursor))
    assert ids(pages) == ["6", "77"]  # the edit is known (storage keeps the first version)


def test_empty_feed_has_no_entry(apple: FakeAppStore) -> None:
    pages = list(make_source(apple).fetch(None))
    assert [(p.posts, p.rejected) for p in pages] == [([], [])]
    assert pages[0].cursor["apps"][f"us:{APP}"] == {"newest_at": None, "newest_id": None,
                                                    "seen": []}


def test_single_review_entry_is_an_object(apple: FakeAppStore) -> None:
    apple.add_reviews("us", APP, reviews(1, 1))
    assert ids(list(make_source(apple).fetch(None))) == ["1"]


def test_app_metadata_entry_is_skipped_not_rejected(apple: FakeAppStore) -> None:
    """The feed marks no deletions (removed reviews just vanish); its one non-review entry is
    the app-metadata entry older feeds put first: skipped, neither stored nor rejected."""
    with FakeAppStore(app_entry=True) as old_feed:
        old_feed.add_reviews("us", APP, reviews(1, 2))
        [page] = list(make_source(old_feed).fetch(None))
    assert ids([page]) == ["2", "1"] and page.rejected == []


def test_malformed_review_is_rejected_and_the_rest_kept(apple: FakeAppStore) -> None:
    bad_rating = review("3", NOW)
    bad_rating["im:rating"] = {"label": "five"}
    no_date = review("2", NOW - timedelta(hours=1))
    del no_date["updated"]
    apple.add_reviews("us", APP, [bad_rating, no_date, *reviews(1, 1, newest=NOW - timedelta(1))])
    [page] = list(make_source(apple).fetch(None))
    assert ids([page]) == ["1"]
    assert [r.where for r in page.rejected] == [f"appstore:us:{APP}:page1#1",
                                                 f"appstore:us:{APP}:page1#2"]
    assert "malformed review" in page.rejected[0].reason


def test_429_raises_rate_limited_with_retry_after(apple: FakeAppStore) -> None:
    apple.enqueue(429, '{"error": "too many"}', headers={"Retry-After": "30"})
    with pytest.raises(RateLimited) as limited:
        list(make_source(apple).fetch(None))
    assert limited.value.retry_after == 30


def test_5xx_is_a_source_error_and_the_cursor_does_not_move(
    apple: FakeAppStore, tmp_path: Path
) -> None:
    apple.add_reviews("us", APP, reviews(1, 80))
    db = open_db(tmp_path / "t.db")
    source = make_source(apple)
    apple.enqueue(200, json.dumps({"feed": {"entry": reviews(31, 50)}}))  # page 1 answers ...
    apple.enqueue(502, "<html>Bad Gateway</html>")  # ... and page 2 fails
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, source, lambda: NOW)
    assert load_cursor(db, "ios") is None
    assert db["posts"].count == 50  # page 1 is stored, but the watermark did not move
    assert collect(db, source, lambda: NOW) == 30
    assert load_cursor(db, "ios")["apps"][f"us:{APP}"]["newest_id"] == "80"


def test_timeout_is_a_source_error(apple: FakeAppStore) -> None:
    apple.enqueue(200, "{}", delay=2.0)
    with pytest.raises(SourceError, match="did not answer within 0.2s"):
        list(make_source(apple, timeout=0.2).fetch(None))


@pytest.mark.parametrize("body", ["<html>maintenance</html>", '{"feed": []}',
                                  '{"feed": {"entry": "x"}}', "[]"])
def test_malformed_response_is_a_source_error(apple: FakeAppStore, body: str) -> None:
    apple.enqueue(200, body)
    with pytest.raises(SourceError):
        list(make_source(apple).fetch(None))


def test_connection_refused_is_a_source_error() -> None:
    with FakeAppStore() as gone:
        base_url = gone.base_url
    source = AppStoreSource(AppStoreSourceConfig(
        type="appstore", name="ios", apps=[{"app_id": APP}], base_url=base_url), SourceContext())
    with pytest.raises(SourceError, match="cannot reach .*; check the network or base_url"):
        list(source.fetch(None))


def test_duplicates_across_pages_are_stored_once(apple: FakeAppStore, tmp_path: Path) -> None:
    """A review arriving mid-walk shifts the feed: the last of page 1 shows again on page 2."""
    feed = reviews(1, 60)
    apple.add_reviews("us", APP, feed[:50] + [feed[49]] + feed[50:])
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(apple), lambda: NOW) == 60
    assert db["posts"].count == 60


def test_each_app_and_country_has_its_own_watermark(apple: FakeAppStore) -> None:
    apple.add_reviews("us", APP, reviews(1, 2))
    apple.add_reviews("de", APP, reviews(101, 1))
    apple.add_reviews("us", "42", reviews(201, 2))
    apps = [{"app_id": APP}, {"app_id": APP, "country": "de"}, {"app_id": "42"}]
    pages = list(make_source(apple, apps=apps).fetch(None))
    assert [p.cursor is not None for p in pages] == [True, True, True]
    assert sorted(pages[-1].cursor["apps"]) == ["de:284882215", "us:284882215", "us:42"]
    apple.add_reviews("de", APP, reviews(102, 1, newest=NOW + timedelta(hours=1)))
    assert ids(list(make_source(apple, apps=apps).fetch(saved(pages)))) == ["102"]


def test_collect_stores_posts_saves_cursor_and_adds_nothing_twice(
    apple: FakeAppStore, tmp_path: Path
) -> None:
    apple.add_reviews("us", APP, [review("2", NOW, content="Acme keeps crashing"),
                                  review("1", NOW - timedelta(hours=1), content="lovely")])
    db = open_db(tmp_path / "t.db")
    brand = Brand(name="acme", text="crash*", query=parse("crash*"))
    source = make_source(apple)
    assert collect(db, source, lambda: NOW, brands=[brand]) == 1
    assert [(r["platform_id"], r["brand"]) for r in db["posts"].rows] == [("2", "acme")]
    assert load_cursor(db, "ios")["apps"][f"us:{APP}"]["seen"] == ["2", "1"]
    assert collect(db, make_source(apple), lambda: NOW, brands=[brand]) == 0
    assert db["posts"].count == 1


def test_backfill_reads_history_without_moving_the_cursor(apple: FakeAppStore) -> None:
    apple.add_reviews("us", APP, reviews(1, 120))
    pages = list(make_source(apple).backfill(NOW - timedelta(hours=59)))
    assert ids(pages) == [str(i) for i in range(120, 60, -1)]
    assert all(p.cursor is None for p in pages) and len(apple.requests) == 2


def test_config_checks_ids_and_lowercases_country() -> None:
    config = AppStoreSourceConfig(type="appstore", name="ios",
                                  apps=[{"app_id": APP, "country": "GB"}])
    assert config.apps[0].country == "gb" and config.max_pages == 10
    assert config.base_url == "https://itunes.apple.com"
    with pytest.raises(ValidationError):
        AppStoreSourceConfig(type="appstore", name="ios", apps=[{"app_id": "id284882215"}])
    with pytest.raises(ValidationError):
        AppStoreSourceConfig(type="appstore", name="ios", apps=[])


def test_missing_httpx_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # as if not installed
    config = AppStoreSourceConfig(type="appstore", name="ios", apps=[{"app_id": APP}])
    with pytest.raises(MissingDependency, match=r"pip install 'social-listener\[appstore\]'"):
        AppStoreSource(config, SourceContext())
