"""The X source: the real tweepy client over real HTTP to a fake X API v2 on 127.0.0.1.

tweepy's host is fixed, so the source's own transport adapter rewrites it to ``base_url`` (the
fake): these tests exercise that adapter, the timeout it adds, and everything below it for real.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.config import BrandSettings
from listener.core.errors import ConfigError, MissingDependency, RateLimited, SourceError
from listener.core.models import Page
from listener.core.query import Brand
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.x.source import XSource, XSourceConfig, x_query
from listener.sources.x.transport import usage_cap_reset
from storage.db import load_cursor, open_db, store_page
from tests.fakes.x_api import SEARCH_PATH, TOKEN, FakeXApi

NOW = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)
ACME_QUERY = '("acme cloud" OR @AcmeCloud) -giveaway'
ACME_X = '("acme cloud" OR @AcmeCloud) -giveaway -is:retweet lang:en'


def brand(name: str, query: str, languages: list[str] | None = None) -> Brand:
    return BrandSettings(name=name, query=query, languages=languages).compile()


ACME = brand("acme", ACME_QUERY, ["en"])
GLOBEX = brand("globex", "globex OR initech")


def tid(n: int) -> str:
    """A snowflake-like post id; larger n is newer."""
    return str(1790000000000000000 + n)


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake is local: a proxy from the environment must not sit in between."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def x() -> Iterator[FakeXApi]:
    with FakeXApi() as fake:
        fake.add_user("11", "ann", followers=120)
        fake.add_user("12", "bob", followers=7)
        yield fake


def make_source(
    fake: FakeXApi, brands: tuple[Brand, ...] = (ACME,), timeout: float = 5.0, **settings: Any
) -> XSource:
    config = XSourceConfig(
        type="x", name="x-test", bearer_token=TOKEN, base_url=fake.base_url, **settings
    )
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout, brands=brands)
    return XSource(config, ctx)


def pages_of(source: XSource, cursor: Any = None) -> list[Page]:
    return list(source.fetch(cursor))


def ids(pages: list[Page]) -> list[str]:
    return [p.platform_id for page in pages for p in page.posts]


def searches(fake: FakeXApi) -> list[dict[str, str]]:
    return [r.query for r in fake.requests if r.path == SEARCH_PATH]


# -- fetching -------------------------------------------------------------------------------


def test_first_fetch_turns_tweets_into_posts_with_author_and_cursor(x: FakeXApi) -> None:
    x.add_tweet(tid(1), "acme cloud is down &amp; nobody answers", author_id="11",
                created_at="2024-05-08T10:00:00.000Z")
    x.add_tweet(tid(2), "@AcmeCloud help please", author_id="12", lang="und",
                conversation_id=tid(1))  # a reply in the conversation tid(1) started
    [page] = pages_of(make_source(x))
    newest, older = page.posts
    assert (older.thread, newest.thread) == (tid(1), tid(1))  # alerts thread in Slack
    assert (newest.platform_id, older.platform_id) == (tid(2), tid(1))
    assert older.platform == "x" and older.source == "x-test" and older.kind == "mention"
    assert older.text == "acme cloud is down & nobody answers"  # X escapes & < > in text
    assert older.created_at == datetime(2024, 5, 8, 10, 0, tzinfo=UTC)
    assert (older.author, older.author_followers, older.lang) == ("ann", 120, "en")
    assert older.url == f"https://x.com/ann/status/{tid(1)}"
    assert older.brand == "acme"
    assert older.raw["public_metrics"]["like_count"] == 3 and TOKEN not in str(older.raw)
    assert newest.lang is None  # "und": X could not tell
    assert page.cursor == {"version": 1, "brands": {"acme": {"since_id": tid(2)}},
                           "mentions": {}}


def test_brand_query_is_translated_and_sent_with_fields(x: FakeXApi) -> None:
    pages_of(make_source(x, brands=(ACME, GLOBEX)))
    first, second = searches(x)
    assert first["query"] == ACME_X
    assert second["query"] == "(globex OR initech) -is:retweet"  # no single language: no lang:
    assert first["max_results"] == "100" and "since_id" not in first
    assert set(first["tweet.fields"].split(",")) >= {
        "created_at", "lang", "author_id", "public_metrics", "referenced_tweets",
        "conversation_id"}
    assert first["expansions"] == "author_id"
    assert set(first["user.fields"].split(",")) == {"username", "public_metrics"}
    assert x.requests[0].headers["user-agent"].startswith("social-listener/")


def test_pagination_follows_next_token_and_saves_cursor_only_on_last_page() -> None:
    with FakeXApi(page_size=2) as x:
        for n in range(1, 6):
            x.add_tweet(tid(n), f"acme cloud post {n}")
        source = make_source(x)
        cursor = {"version": 1, "brands": {"acme": {"since_id": tid(0)}}, "mentions": {}}
        pages = pages_of(source, cursor)
        assert [[p.platform_id for p in page.posts] for page in pages] == [
            [tid(5), tid(4)], [tid(3), tid(2)], [tid(1)]]
        assert [page.cursor for page in pages[:-1]] == [None, None]
        assert pages[-1].cursor["brands"]["acme"] == {"since_id": tid(5)}  # the first page's
        sent = searches(x)
        assert [r.get("since_id") for r in sent] == [tid(0)] * 3  # the same since_id throughout
        assert "next_token" not in sent[0] and sent[1]["next_token"] and sent[2]["next_token"]


def test_resume_after_restart_gets_only_new_posts(x: FakeXApi) -> None:
    x.add_tweet(tid(1), "acme cloud one")
    cursor = pages_of(make_source(x))[-1].cursor
    x.add_tweet(tid(2), "acme cloud two")
    restarted = make_source(x)  # a NEW instance, as after a process restart
    pages = pages_of(restarted, cursor)
    assert ids(pages) == [tid(2)]
    assert searches(x)[-1]["since_id"] == tid(1)
    assert pages[-1].cursor["brands"]["acme"] == {"since_id": tid(2)}


def test_empty_result_yields_nothing_and_keeps_the_cursor(x: FakeXApi) -> None:
    cursor = {"version": 1, "brands": {"acme": {"since_id": tid(9)}}, "mentions": {}}
    assert pages_of(make_source(x), cursor) == []
    assert pages_of(make_source(x)) == []  # first poll, nothing found: no cursor either


def test_max_pages_bound_continues_the_cycle_on_the_next_poll() -> None:
    with FakeXApi(page_size=1) as x:
        for n in range(1, 5):
            x.add_tweet(tid(n), f"acme cloud {n}")
        source = make_source(x, max_pages=2)
        start = {"version": 1, "brands": {"acme": {"since_id": tid(0)}}, "mentions": {}}
        first = pages_of(source, start)
        assert ids(first) == [tid(4), tid(3)]
        pending = first[-1].cursor["brands"]["acme"]
        assert pending["since_id"] == tid(0) and pending["newest_id"] == tid(4)
        second = pages_of(source, first[-1].cursor)
        assert ids(second) == [tid(2), tid(1)]  # no gap: the rest of the same cycle
        assert searches(x)[2]["next_token"] == pending["next_token"]
        assert second[-1].cursor["brands"]["acme"] == {"since_id": tid(4)}


def test_a_refused_saved_next_token_restarts_the_cycle_from_since_id(x: FakeXApi) -> None:
    x.add_tweet(tid(1), "acme cloud")
    stale = {"version": 1, "mentions": {},
             "brands": {"acme": {"since_id": tid(0), "next_token": "gone", "newest_id": tid(5)}}}
    pages = pages_of(make_source(x), stale)
    assert ids(pages) == [tid(1)]
    assert [r.get("next_token") for r in searches(x)] == ["gone", None]
    assert pages[-1].cursor["brands"]["acme"] == {"since_id": tid(1)}


def test_a_bad_request_is_a_source_error(x: FakeXApi) -> None:
    x.enqueue(400, {"title": "Invalid Request", "detail": "One or more parameters to your "
                    "request was invalid.", "errors": [{"message": "no viable alternative"}]})
    with pytest.raises(SourceError, match="HTTP 400"):
        pages_of(make_source(x))


def test_first_poll_stops_at_max_pages_and_leaves_history_to_backfill() -> None:
    with FakeXApi(page_size=1) as x:
        for n in range(1, 5):
            x.add_tweet(tid(n), f"acme cloud {n}")
        pages = pages_of(make_source(x, max_pages=2))
        assert ids(pages) == [tid(4), tid(3)]
        assert pages[-1].cursor["brands"]["acme"] == {"since_id": tid(4)}


def test_deleted_post_is_skipped(x: FakeXApi) -> None:
    x.add_tweet(tid(1), "acme cloud kept")
    x.add_tweet(tid(2), "acme cloud deleted")
    x.delete(tid(2))
    [page] = pages_of(make_source(x))
    assert ids([page]) == [tid(1)] and page.rejected == []


def test_retweets_are_skipped_and_quote_posts_kept(x: FakeXApi) -> None:
    x.add_tweet(tid(1), "RT @ann: acme cloud", referenced_tweets=[{"type": "retweeted",
                                                                   "id": tid(0)}])
    x.add_tweet(tid(2), "acme cloud, look", referenced_tweets=[{"type": "quoted", "id": tid(0)}])
    assert ids(pages_of(make_source(x))) == [tid(2)]


def test_author_missing_from_includes_is_still_stored(x: FakeXApi) -> None:
    x.add_tweet(tid(1), "acme cloud", author_id="99")  # unknown user: not in includes
    [post] = pages_of(make_source(x))[0].posts
    assert post.author is None and post.author_followers is None
    assert post.url == f"https://x.com/i/web/status/{tid(1)}"


def test_malformed_item_is_rejected_and_the_rest_kept(x: FakeXApi) -> None:
    # "20" is a pre-2010 sequential id: no snowflake time to fall back on
    x.enqueue(200, {"data": [{"id": tid(2), "text": "acme cloud ok",
                              "created_at": "2024-05-08T09:00:00.000Z"},
                             {"id": "20", "text": "acme cloud", "created_at": "yesterday"},
                             {"id": "21", "text": "acme cloud, undated"}],
                    "meta": {"newest_id": tid(2), "oldest_id": "21", "result_count": 3}})
    [page] = pages_of(make_source(x))
    assert ids([page]) == [tid(2)]
    assert [r.where for r in page.rejected] == ["x search acme: post 20", "x search acme: post 21"]
    assert all("created_at" in r.reason and "snowflake" in r.reason for r in page.rejected)
    assert page.cursor["brands"]["acme"] == {"since_id": tid(2)}


# X ids are snowflakes: (id >> 22) ms after 2010-11-04T01:42:54.657Z. The first pair is the
# example of the twitter-snowflake-to-date package's documentation; the second was built from
# 2024-05-08T11:00:00.123Z (worker 7, datacenter 3, sequence 42).
DOCUMENTED_ID, DOCUMENTED_AT = "1233161576649121792", datetime(2020, 2, 27, 22, 46, 45, 564000,
                                                                   tzinfo=UTC)
RECENT_ID, RECENT_AT = "1788161925437075498", datetime(2024, 5, 8, 11, 0, 0, 123000, tzinfo=UTC)


def test_a_post_without_created_at_is_dated_from_its_snowflake_id(
    x: FakeXApi, tmp_path: Path
) -> None:
    x.add_tweet(RECENT_ID, "acme cloud is down, no time on this one", created_at=None)
    x.add_tweet(DOCUMENTED_ID, "acme cloud, an old one", created_at=None)
    [page] = pages_of(make_source(x))
    assert all("created_at" not in p.raw for p in page.posts)  # the fake really left it out
    assert {p.platform_id: p.created_at for p in page.posts} == {
        RECENT_ID: RECENT_AT, DOCUMENTED_ID: DOCUMENTED_AT}
    assert page.rejected == []
    db = open_db(tmp_path / "x.db")
    assert collect(db, make_source(x), lambda: NOW, brands=(ACME,)) == 2
    stored = {r["platform_id"]: r["created_at"] for r in db["posts"].rows}
    assert stored == {RECENT_ID: "2024-05-08T11:00:00Z", DOCUMENTED_ID: "2020-02-27T22:46:45Z"}


def test_an_unreadable_created_at_falls_back_on_the_id(x: FakeXApi) -> None:
    x.add_tweet(RECENT_ID, "acme cloud, garbled time", created_at="yesterday")
    x.add_tweet(tid(1), "acme cloud, a good time", created_at="2024-05-08T09:30:00.000Z")
    [page] = pages_of(make_source(x))
    times = {p.platform_id: p.created_at for p in page.posts}
    assert times[RECENT_ID] == RECENT_AT  # from the id
    assert times[tid(1)] == datetime(2024, 5, 8, 9, 30, tzinfo=UTC)  # created_at wins when usable


def test_backfill_keeps_posts_without_created_at_inside_the_window(x: FakeXApi) -> None:
    x.add_tweet(RECENT_ID, "acme cloud, undated", created_at=None)
    posts = [p for page in make_source(x).backfill(NOW - timedelta(days=1)) for p in page.posts]
    assert [(p.platform_id, p.created_at) for p in posts] == [(RECENT_ID, RECENT_AT)]


def test_duplicates_across_pages_are_stored_once(x: FakeXApi, tmp_path: Path) -> None:
    x.add_tweet(tid(1), "acme cloud meets globex")  # found by both brands' searches
    x.add_tweet(tid(2), "globex only", queries={"(globex OR initech) -is:retweet"})
    pages = pages_of(make_source(x, brands=(ACME, GLOBEX)))
    assert ids(pages) == [tid(1), tid(2)]
    assert pages[0].posts[0].brand == "acme"
    db = open_db(tmp_path / "x.db")
    assert collect(db, make_source(x, brands=(ACME, GLOBEX)), lambda: NOW,
                   brands=(ACME, GLOBEX)) == 2
    assert sorted(r["platform_id"] for r in db["posts"].rows) == [tid(1), tid(2)]


# -- mentions and backfill ------------------------------------------------------------------


def test_mentions_are_polled_with_since_id_and_tagged_by_brand(x: FakeXApi) -> None:
    x.add_tweet(tid(1), "@acme_support acme cloud broke", mentions=("555",), queries=set())
    x.add_tweet(tid(2), "@acme_support hi", mentions=("555",), queries=set())
    source = make_source(x, mentions_of=[555], brand="acme-general")
    pages = pages_of(source)
    posts = {p.platform_id: p for page in pages for p in page.posts}
    assert posts[tid(1)].brand == "acme" and posts[tid(2)].brand == "acme-general"
    cursor = pages[-1].cursor
    assert cursor["mentions"] == {"555": {"since_id": tid(2)}}
    x.add_tweet(tid(3), "@acme_support again", mentions=("555",), queries=set())
    assert ids(pages_of(make_source(x, mentions_of=["555"]), cursor)) == [tid(3)]
    mention_requests = [r for r in x.requests if r.path == "/2/users/555/mentions"]
    assert mention_requests[-1].query["since_id"] == tid(2)


def test_backfill_starts_inside_the_seven_day_window(x: FakeXApi) -> None:
    x.add_tweet(tid(1), "acme cloud old", created_at="2024-05-02T00:00:00.000Z")
    x.add_tweet(tid(2), "acme cloud older than 7 days", created_at="2024-04-20T00:00:00.000Z")
    pages = list(make_source(x).backfill(NOW - timedelta(days=30)))
    assert ids(pages) == [tid(1)] and all(page.cursor is None for page in pages)
    assert searches(x)[0]["start_time"] == "2024-05-01T12:01:00Z"
    assert "since_id" not in searches(x)[0]
    list(make_source(x).backfill(datetime(2024, 5, 7)))  # naive means UTC; inside the window
    assert searches(x)[-1]["start_time"] == "2024-05-07T00:00:00Z"


# -- failures -------------------------------------------------------------------------------


def test_rate_limited_429_uses_the_reset_header(x: FakeXApi) -> None:
    reset = int(NOW.timestamp()) + 120
    x.enqueue(429, {"title": "Too Many Requests", "detail": "Too Many Requests",
                    "type": "about:blank", "status": 429},
              headers={"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"})
    with pytest.raises(RateLimited) as caught:
        pages_of(make_source(x))
    assert caught.value.retry_after == pytest.approx(120)


def test_429_with_a_garbled_reset_header_still_rate_limits(x: FakeXApi) -> None:
    x.enqueue(429, {"title": "Too Many Requests"}, headers={"x-rate-limit-reset": "soon"})
    with pytest.raises(RateLimited) as caught:
        pages_of(make_source(x))
    assert caught.value.retry_after == 60  # the shared default


def test_monthly_usage_cap_pauses_until_next_month(x: FakeXApi) -> None:
    x.enqueue(429, {"account_id": 1, "product_name": "standard-basic",
                    "title": "UsageCapExceeded", "period": "Monthly", "scope": "Product",
                    "detail": "Usage cap exceeded: Monthly product cap",
                    "type": "https://api.twitter.com/2/problems/usage-capped"},
              headers={"x-rate-limit-remaining": "39999",
                       "x-rate-limit-reset": str(int(NOW.timestamp()) + 60)})
    with pytest.raises(RateLimited) as caught:
        pages_of(make_source(x))
    assert caught.value.retry_after == (datetime(2024, 6, 1, tzinfo=UTC) - NOW).total_seconds()
    assert "monthly post cap" in str(caught.value) and "2024-06-01" in str(caught.value)


def test_usage_cap_reset_day_is_configurable(x: FakeXApi) -> None:
    x.enqueue(429, {"title": "UsageCapExceeded"})
    with pytest.raises(RateLimited) as caught:
        pages_of(make_source(x, usage_cap_reset_day=20))
    assert caught.value.retry_after == (datetime(2024, 5, 20, tzinfo=UTC) - NOW).total_seconds()


@pytest.mark.parametrize(("now", "headers", "day", "expected"), [
    (datetime(2024, 12, 15, tzinfo=UTC), {}, 1, datetime(2025, 1, 1, tzinfo=UTC)),
    (datetime(2024, 5, 20, 1, tzinfo=UTC), {}, 20, datetime(2024, 6, 20, tzinfo=UTC)),
    (datetime(2024, 1, 30, tzinfo=UTC), {}, 31, datetime(2024, 1, 31, tzinfo=UTC)),
    (datetime(2024, 2, 10, tzinfo=UTC), {}, 31, datetime(2024, 2, 29, tzinfo=UTC)),
    (NOW, {"Retry-After": "3600"}, 1, NOW + timedelta(hours=1)),
])
def test_usage_cap_reset_time(
    now: datetime, headers: dict[str, str], day: int, expected: datetime
) -> None:
    assert usage_cap_reset(headers, '{"title": "UsageCapExceeded"}', now, day) == expected


@pytest.mark.parametrize(("status", "words"), [
    (401, "bearer token"), (403, "access tier has no recent search")])
def test_refused_credentials_raise_source_error(x: FakeXApi, status: int, words: str) -> None:
    x.enqueue(status, {"title": "Client Forbidden", "reason": "client-not-enrolled",
                       "type": "https://api.twitter.com/2/problems/client-forbidden"})
    with pytest.raises(SourceError, match=words) as caught:
        pages_of(make_source(x))
    assert TOKEN not in str(caught.value)


def test_wrong_token_is_refused_by_the_fake_and_reported(x: FakeXApi) -> None:
    x.token = "another-token-entirely"
    with pytest.raises(SourceError, match="bearer token"):
        pages_of(make_source(x))


def test_server_error_raises_and_leaves_the_cursor(tmp_path: Path) -> None:
    with FakeXApi(page_size=1) as x:
        x.add_tweet(tid(1), "acme cloud one")
        x.add_tweet(tid(2), "acme cloud two")
        db = open_db(tmp_path / "x.db")
        start = {"version": 1, "brands": {"acme": {"since_id": tid(0)}}, "mentions": {}}
        store_page(db, "x-test", Page(posts=[], cursor=start), NOW)
        x.enqueue(200, {"data": [{"id": tid(2), "text": "acme cloud two",
                                  "created_at": "2024-05-08T11:00:00.000Z"}],
                        "meta": {"newest_id": tid(2), "result_count": 1, "next_token": "t1"}})
        x.enqueue(503, {"title": "Service Unavailable", "detail": "Service Unavailable"})
        with pytest.raises(SourceError, match="503"):
            collect(db, make_source(x), lambda: NOW, brands=(ACME,))
        assert load_cursor(db, "x-test") == start  # page 1 stored, cursor not moved
        assert db["posts"].count == 1


def test_timeout_raises_source_error(x: FakeXApi) -> None:
    x.enqueue(200, {"meta": {"result_count": 0}}, delay=2.0)
    with pytest.raises(SourceError, match="did not answer within 0.3 s"):
        pages_of(make_source(x, timeout=0.3))


def test_connection_refused_raises_source_error() -> None:
    with FakeXApi() as x:
        source = make_source(x)
    with pytest.raises(SourceError, match="cannot reach"):
        pages_of(source)


@pytest.mark.parametrize("body", ['{"data": [', "<html>502 Bad Gateway</html>", "[1, 2]",
                                  '{"data": {"id": "1"}}', '{"meta": {"next_token": 5}}'])
def test_malformed_json_raises_source_error(x: FakeXApi, body: str) -> None:
    x.enqueue(200, body)
    with pytest.raises(SourceError, match="malformed|JSON|shape|non-string"):
        pages_of(make_source(x))


def test_errors_only_answer_raises_source_error(x: FakeXApi) -> None:
    x.enqueue(200, {"errors": [{"detail": "Could not find user with id: [555].",
                                "title": "Not Found Error", "resource_type": "user"}]})
    with pytest.raises(SourceError, match="Could not find user"):
        pages_of(make_source(x, brands=(), mentions_of=["555"]))


# -- configuration and secrets --------------------------------------------------------------


def test_missing_bearer_token_is_a_config_error(x: FakeXApi) -> None:
    config = XSourceConfig(type="x", name="x-test", base_url=x.base_url)
    with pytest.raises(ConfigError, match="bearer_token"):
        XSource(config, SourceContext(brands=(ACME,)))


def test_query_over_the_length_limit_is_a_config_error(x: FakeXApi) -> None:
    long = brand("long", " OR ".join(f"word{n}" for n in range(100)))
    assert len(x_query(long)) > 512
    with pytest.raises(ConfigError, match="over the 512"):
        make_source(x, brands=(long,))
    make_source(x, brands=(long,), max_query_length=4096)  # Enterprise


def test_nothing_to_poll_is_a_config_error(x: FakeXApi) -> None:
    with pytest.raises(ConfigError, match="nothing to poll"):
        make_source(x, brands=())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        XSourceConfig(type="x", name="x", bearer_token=TOKEN, base_url="ftp://x")
    with pytest.raises(ValidationError):
        XSourceConfig(type="x", name="x", bearer_token=TOKEN, mentions_of=["@acme"])


def test_missing_tweepy_is_a_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tweepy", None)  # what an uninstalled package looks like
    config = XSourceConfig(type="x", name="x-test", bearer_token=TOKEN)
    with pytest.raises(MissingDependency, match="tweepy"):
        XSource(config, SourceContext(brands=(ACME,)))


def test_bearer_token_never_appears_in_logs_or_repr(
    x: FakeXApi, caplog: pytest.LogCaptureFixture
) -> None:
    x.add_tweet(tid(1), "acme cloud")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="tweepy")  # the CLI tests hold it at WARNING
    source = make_source(x)
    pages_of(source)
    assert "Making API request" in caplog.text  # tweepy did log its request at DEBUG
    assert "Bearer ***" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(source.config)


def test_unreadable_cursor_starts_over(x: FakeXApi, caplog: pytest.LogCaptureFixture) -> None:
    x.add_tweet(tid(1), "acme cloud")
    bad = {"version": 1, "brands": {"acme": {"since_id": 5}}, "mentions": []}
    assert ids(pages_of(make_source(x), bad)) == [tid(1)]
    assert "bad cursor entry" in caplog.text


# -- through the collect stage --------------------------------------------------------------


def test_collect_stores_posts_saves_cursor_and_a_second_collect_adds_nothing(
    tmp_path: Path,
) -> None:
    with FakeXApi(page_size=2) as x:
        x.add_user("11", "ann", followers=5)
        for n, text in enumerate(["acme cloud down", "Acme Cloud giveaway!", "@AcmeCloud hi",
                                  "unrelated"], start=1):
            x.add_tweet(tid(n), text)
        db = open_db(tmp_path / "x.db")
        source = make_source(x)
        assert collect(db, source, lambda: NOW, brands=(ACME,)) == 2  # giveaway, unrelated out
        rows = {r["platform_id"]: r for r in db["posts"].rows}
        assert set(rows) == {tid(1), tid(3)} and rows[tid(1)]["author"] == "ann"
        assert load_cursor(db, "x-test")["brands"]["acme"] == {"since_id": tid(4)}
        assert collect(db, make_source(x), lambda: NOW, brands=(ACME,)) == 0
        assert searches(x)[-1]["since_id"] == tid(4)
