"""The Google Play source: the real google-play-scraper against a fake review RPC, over HTTP."""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.core.errors import MissingDependency, RateLimited, SourceError
from listener.core.models import Page
from listener.core.query import Brand, parse
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.googleplay import GooglePlaySource, GooglePlaySourceConfig
from storage.db import load_cursor, open_db
from tests.fakes.googleplay_api import GATEWAY_ERROR_BODY, FakeGooglePlay, play_review

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
APP = "com.acme.app"


def reviews(first: int, count: int, *, newest: datetime = NOW) -> list[list[Any]]:
    """``count`` reviews gp:first+count-1 .. gp:first, newest first, an hour apart."""
    top = first + count - 1
    return [play_review(f"gp:{top - i}", newest - timedelta(hours=i), text=f"review {top - i}")
            for i in range(count)]


@pytest.fixture
def play() -> Iterator[FakeGooglePlay]:
    with FakeGooglePlay() as fake:
        yield fake


def make_source(play: FakeGooglePlay, timeout: float = 5.0, **settings: Any) -> GooglePlaySource:
    values = {"type": "googleplay", "name": "android", "apps": [{"app_id": APP}],
              "base_url": play.base_url, **settings}
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout)
    return GooglePlaySource(GooglePlaySourceConfig(**values), ctx)


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for page in pages for post in page.posts]


def saved(pages: list[Page]) -> Any:
    cursors = [p.cursor for p in pages if p.cursor is not None]
    return json.loads(json.dumps(cursors[-1])) if cursors else None


def test_first_fetch_maps_every_field(play: FakeGooglePlay) -> None:
    at = datetime(2024, 4, 30, 8, 15, 7, tzinfo=UTC)
    play.add_reviews(APP, [play_review("gp:AOqpTOE1", at, score=1, text="Refund please",
                                       user="Kim", version="3.2.0", reply="Sorry, Kim")])
    source = make_source(play, apps=[{"app_id": APP, "lang": "de", "country": "at"}],
                         brand="acme")
    [page] = list(source.fetch(None))
    [post] = page.posts
    assert (post.platform, post.platform_id, post.kind, post.rating) == (
        "googleplay", "gp:AOqpTOE1", "review", 1.0)
    assert (post.text, post.author, post.lang, post.brand, post.source) == (
        "Refund please", "Kim", "de", "acme", "android")
    assert post.created_at == at and post.created_at.tzinfo is UTC
    assert post.url == f"https://play.google.com/store/apps/details?id={APP}&reviewId=gp:AOqpTOE1"
    assert post.raw["reviewCreatedVersion"] == "3.2.0" and post.raw["replyContent"] == "Sorry, Kim"
    assert post.raw["repliedAt"] == "2024-04-30T09:15:07Z" and post.raw["country"] == "at"


def test_created_at_is_right_whatever_the_local_timezone(
    play: FakeGooglePlay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library returns naive *local* datetimes (datetime.fromtimestamp)."""
    at = datetime(2024, 3, 10, 9, 30, tzinfo=UTC)  # the morning US clocks went forward
    play.add_reviews(APP, [play_review("gp:1", at)])
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        [page] = list(make_source(play).fetch(None))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert page.posts[0].created_at == at


def test_request_sent_is_the_library_rpc_for_the_configured_app(play: FakeGooglePlay) -> None:
    """Not a searching source (no brand query): app id, language, country and sort go out."""
    play.add_reviews(APP, reviews(1, 2))
    list(make_source(play, per_page=40, apps=[{"app_id": APP, "lang": "fr", "country": "ca"}])
         .fetch(None))
    [request] = play.requests
    assert (request.method, request.path) == ("POST", "/_/PlayStoreUi/data/batchexecute")
    assert request.query == {"hl": "fr", "gl": "ca"}
    assert (request.app_id, request.sort, request.count, request.token) == (APP, 2, 40, None)


def test_pagination_follows_tokens_and_moves_cursor_only_on_last_page(
    play: FakeGooglePlay,
) -> None:
    play.add_reviews(APP, reviews(1, 25))
    pages = list(make_source(play, per_page=10).fetch(None))
    assert [len(p.posts) for p in pages] == [10, 10, 5]
    assert [p.cursor is None for p in pages] == [True, True, False]
    assert ids(pages) == [f"gp:{i}" for i in range(25, 0, -1)]
    assert [r.token is None for r in play.requests] == [True, False, False]
    mark = pages[-1].cursor["apps"][f"{APP}:en:us"]
    assert mark["newest_id"] == "gp:25" and mark["newest_at"] == "2024-05-01T12:00:00Z"


def test_max_pages_bounds_a_poll(play: FakeGooglePlay) -> None:
    play.add_reviews(APP, reviews(1, 50))
    pages = list(make_source(play, per_page=10, max_pages=2).fetch(None))
    assert len(play.requests) == 2 and len(ids(pages)) == 20 and pages[-1].cursor is not None


def test_resume_from_saved_cursor_gets_only_new_reviews(play: FakeGooglePlay) -> None:
    play.add_reviews(APP, reviews(1, 30))
    cursor = saved(list(make_source(play, per_page=10).fetch(None)))
    play.add_reviews(APP, reviews(31, 3, newest=NOW + timedelta(hours=3)))
    before = len(play.requests)
    pages = list(make_source(play, per_page=10).fetch(cursor))  # a new instance
    assert ids(pages) == ["gp:33", "gp:32", "gp:31"]
    assert len(play.requests) - before == 1
    assert ids(list(make_source(play, per_page=10).fetch(saved(pages)))) == []


def test_more_new_reviews_than_max_pages_is_logged(
    play: FakeGooglePlay, caplog: pytest.LogCaptureFixture
) -> None:
    play.add_reviews(APP, reviews(1, 5))
    cursor = saved(list(make_source(play, per_page=10).fetch(None)))
    play.add_reviews(APP, reviews(6, 30, newest=NOW + timedelta(hours=30)))
    pages = list(make_source(play, per_page=10, max_pages=2).fetch(cursor))
    assert len(ids(pages)) == 20 and pages[-1].cursor is not None
    assert "had more new reviews than 2 pages hold" in caplog.text


def test_empty_app_has_no_reviews(play: FakeGooglePlay) -> None:
    play.add_reviews(APP, [])
    pages = list(make_source(play).fetch(None))
    assert [(p.posts, p.rejected) for p in pages] == [([], [])]
    assert pages[0].cursor["apps"][f"{APP}:en:us"]["seen"] == []


def test_review_without_text_is_skipped(play: FakeGooglePlay) -> None:
    """Play marks no deletions; a review whose text is gone (rating only) is not stored."""
    play.add_reviews(APP, [play_review("gp:2", NOW, text=None), *reviews(1, 1, newest=NOW)])
    [page] = list(make_source(play).fetch(None))
    assert ids([page]) == ["gp:1"] and page.rejected == []


def test_malformed_review_is_rejected_and_the_rest_kept(play: FakeGooglePlay) -> None:
    no_date = play_review("gp:3", NOW)
    no_date[5] = None
    bad_score = play_review("gp:2", NOW)
    bad_score[2] = "five"
    play.add_reviews(APP, [no_date, bad_score, *reviews(1, 1)])
    [page] = list(make_source(play).fetch(None))
    assert ids([page]) == ["gp:1"]
    assert [r.where for r in page.rejected] == [f"googleplay:{APP}:gp:3", f"googleplay:{APP}:gp:2"]


def test_429_raises_rate_limited_with_retry_after(play: FakeGooglePlay) -> None:
    play.enqueue(429, "<html>unusual traffic</html>", headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as limited:
        list(make_source(play).fetch(None))
    assert limited.value.retry_after == 120
    assert len(play.requests) == 1  # the library's three retries never reached the network


def test_play_gateway_error_is_rate_limited_without_the_library_sleeping(
    play: FakeGooglePlay,
) -> None:
    play.enqueue(200, GATEWAY_ERROR_BODY)
    started = time.monotonic()
    with pytest.raises(RateLimited) as limited:
        list(make_source(play).fetch(None))
    assert limited.value.retry_after == 60 and time.monotonic() - started < 2


def test_review_quoting_the_rate_limit_marker_does_not_stall_collection(
    play: FakeGooglePlay,
) -> None:
    """The library sleeps and retries on the marker anywhere in a body, review text included."""
    text = 'see "com.google.play.gateway.proto.PlayGatewayError" \\PlayGatewayError'
    play.add_reviews(APP, [play_review("gp:1", NOW, text=text)])
    started = time.monotonic()
    [page] = list(make_source(play).fetch(None))
    assert page.posts[0].text == text and time.monotonic() - started < 2


def test_5xx_is_a_source_error_and_the_cursor_does_not_move(
    play: FakeGooglePlay, tmp_path: Path
) -> None:
    play.add_reviews(APP, reviews(1, 15))
    db = open_db(tmp_path / "t.db")
    source = make_source(play, per_page=10)
    play.enqueue(500, "<html>Server Error</html>", after=1)  # page 1 answers, page 2 fails
    with pytest.raises(SourceError, match="HTTP 500"):
        collect(db, source, lambda: NOW)
    assert load_cursor(db, "android") is None
    assert db["posts"].count == 10  # page 1 is stored, but the watermark did not move
    assert len(play.requests) == 2  # the library's retries of page 2 never reached the network
    assert collect(db, source, lambda: NOW) == 5
    assert load_cursor(db, "android")["apps"][f"{APP}:en:us"]["newest_id"] == "gp:15"


def test_timeout_is_a_source_error(play: FakeGooglePlay) -> None:
    play.enqueue(200, "", delay=2.0)
    started = time.monotonic()
    with pytest.raises(SourceError, match="no answer within 0.2s"):
        list(make_source(play, timeout=0.2).fetch(None))
    assert time.monotonic() - started < 1.5 and len(play.requests) == 1


@pytest.mark.parametrize("body", ["<html>sorry</html>", ")]}'\n\n{not json",
                                  ")]}'\n\n[[\"wrb.fr\",\"oCPfdb\",\"{bad\"]]", ")]}'\n\n[]"])
def test_malformed_response_is_a_source_error(play: FakeGooglePlay, body: str) -> None:
    play.enqueue(200, body)
    with pytest.raises(SourceError, match="malformed answer"):
        list(make_source(play).fetch(None))


def test_unknown_app_error_frame_is_a_source_error(play: FakeGooglePlay) -> None:
    with pytest.raises(SourceError, match="error code 5 \\(not found: check app_id\\)"):
        list(make_source(play, apps=[{"app_id": "com.nobody.app"}]).fetch(None))


def test_connection_refused_is_a_source_error() -> None:
    with FakeGooglePlay() as gone:
        base_url = gone.base_url
    config = GooglePlaySourceConfig(type="googleplay", name="android", apps=[{"app_id": APP}],
                                    base_url=base_url)
    with pytest.raises(SourceError, match="check base_url"):
        list(GooglePlaySource(config, SourceContext()).fetch(None))


def test_library_globals_are_restored(play: FakeGooglePlay) -> None:
    """The patched urlopen is put back, success or failure; importing the library no longer
    leaves TLS verification off for every urllib user in the process."""
    play.add_reviews(APP, reviews(1, 1))
    source = make_source(play)
    import google_play_scraper.utils.request as library_request  # after the source imported it

    list(source.fetch(None))
    play.enqueue(500)
    with pytest.raises(SourceError):
        list(source.fetch(None))
    assert library_request.urlopen is urllib.request.urlopen
    assert ssl._create_default_https_context is ssl.create_default_context


def test_duplicates_across_pages_are_stored_once(play: FakeGooglePlay, tmp_path: Path) -> None:
    """A review arriving mid-walk shifts the list: the last of page 1 shows again on page 2."""
    feed = reviews(1, 15)
    play.add_reviews(APP, feed[:10] + [feed[9]] + feed[10:])
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(play, per_page=10), lambda: NOW) == 15
    assert db["posts"].count == 15


def test_collect_stores_posts_saves_cursor_and_adds_nothing_twice(
    play: FakeGooglePlay, tmp_path: Path
) -> None:
    play.add_reviews(APP, [play_review("gp:2", NOW, text="Acme app keeps crashing"),
                           play_review("gp:1", NOW - timedelta(hours=1), text="lovely")])
    db = open_db(tmp_path / "t.db")
    brand = Brand(name="acme", text="crash*", query=parse("crash*"))
    assert collect(db, make_source(play), lambda: NOW, brands=[brand]) == 1
    assert [(r["platform_id"], r["brand"]) for r in db["posts"].rows] == [("gp:2", "acme")]
    assert load_cursor(db, "android")["apps"][f"{APP}:en:us"]["seen"] == ["gp:2", "gp:1"]
    assert collect(db, make_source(play), lambda: NOW, brands=[brand]) == 0
    assert db["posts"].count == 1


def test_backfill_reads_history_without_moving_the_cursor(play: FakeGooglePlay) -> None:
    play.add_reviews(APP, reviews(1, 40))
    pages = list(make_source(play, per_page=10).backfill(NOW - timedelta(hours=14)))
    assert ids(pages) == [f"gp:{i}" for i in range(40, 25, -1)]
    assert all(p.cursor is None for p in pages) and len(play.requests) == 2


def test_config_validates_package_names() -> None:
    config = GooglePlaySourceConfig(type="googleplay", name="a", apps=[{"app_id": APP}])
    assert (config.per_page, config.max_pages, config.base_url) == (
        100, 5, "https://play.google.com")
    assert (config.apps[0].lang, config.apps[0].country) == ("en", "us")
    with pytest.raises(ValidationError):
        GooglePlaySourceConfig(type="googleplay", name="a", apps=[{"app_id": "acme"}])


def test_missing_library_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google_play_scraper", None)  # as if not installed
    config = GooglePlaySourceConfig(type="googleplay", name="a", apps=[{"app_id": APP}])
    with pytest.raises(MissingDependency, match=r"pip install 'social-listener\[googleplay\]'"):
        GooglePlaySource(config, SourceContext())
