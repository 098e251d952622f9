"""The Reddit source: the real praw/prawcore/requests stack over real HTTP to a fake Reddit.

praw takes its token host (``reddit_url``) and API host (``oauth_url``) as settings, so the
source's ``base_url`` and ``oauth_url`` point at the fake on 127.0.0.1 and nothing is intercepted.
Two tests (5xx, timeout) take a few seconds: prawcore retries those twice and sleeps 0-2 s, then
2-4 s, in between, which is the production behaviour being tested.
"""

from __future__ import annotations

import base64
import logging
import sys
import time
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
from listener.sources.reddit.source import RedditSource, RedditSourceConfig
from storage.db import load_cursor, open_db, store_page
from tests.fakes.reddit_api import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    FakeReddit,
    comment,
    listing,
    submission,
)

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
NOW = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
ACME_QUERY = '("acme cloud" OR @AcmeCloud) -giveaway'
ACME_REDDIT = '("acme cloud" OR @AcmeCloud) AND NOT giveaway'


def brand(name: str, query: str) -> Brand:
    return BrandSettings(name=name, query=query).compile()


ACME = brand("acme", ACME_QUERY)
GLOBEX = brand("globex", "globex")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake is local: a proxy from the environment must not sit in between."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def reddit() -> Iterator[FakeReddit]:
    with FakeReddit() as fake:
        yield fake


@pytest.fixture
def small_pages() -> Iterator[FakeReddit]:
    """Pages of two items, so a handful of items spans several pages."""
    with FakeReddit(page_size=2) as fake:
        yield fake


@pytest.fixture
def sources() -> Iterator[list[RedditSource]]:
    made: list[RedditSource] = []
    yield made
    for source in made:
        source.close()


@pytest.fixture
def make(sources: list[RedditSource]) -> Any:
    def build(
        fake: FakeReddit, brands: tuple[Brand, ...] = (ACME,), timeout: float = 5.0,
        **settings: Any,
    ) -> RedditSource:
        settings.setdefault("client_id", CLIENT_ID)
        settings.setdefault("client_secret", CLIENT_SECRET)
        config = RedditSourceConfig(
            type="reddit", name="rd", base_url=fake.base_url, oauth_url=fake.base_url, **settings
        )
        ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout, brands=brands)
        source = RedditSource(config, ctx)
        sources.append(source)
        return source

    return build


def acme_post(n: int, title: str = "", **extra: Any) -> dict[str, Any]:
    """Submission ``p<n>`` created ``n`` minutes after T0 (larger n is newer)."""
    return submission(f"p{n}", "python", title or f"acme cloud note {n}",
                      created_utc=T0 + 60 * n, **extra)


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for page in pages for post in page.posts]


def last_cursor(pages: list[Page]) -> Any:
    return [page.cursor for page in pages if page.cursor is not None][-1]


# -- fetching -----------------------------------------------------------------------------


def test_first_fetch_turns_submissions_into_posts_with_cursor(reddit: FakeReddit, make: Any) -> None:
    reddit.add(acme_post(1, "acme cloud is down", selftext="since 9am, **again**"),
               acme_post(2, author="carol"))
    pages = list(make(reddit).fetch(None))
    assert ids(pages) == ["t3_p2", "t3_p1"]
    post = pages[0].posts[1]
    assert post.platform == "reddit" and post.source == "rd" and post.brand == "acme"
    assert post.text == "acme cloud is down\n\nsince 9am, **again**"
    assert post.url == "https://www.reddit.com/r/python/comments/p1/acme_cloud_is_down/"
    assert post.author == "ann" and post.author_followers is None and post.kind == "mention"
    assert post.created_at == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert post.raw["subreddit"] == "python" and post.raw["name"] == "t3_p1"
    stream = pages[-1].cursor["streams"]["search:acme"]
    assert stream["newest"] == "t3_p2" and stream["created_utc"] == T0 + 120
    assert set(stream["seen"]) == {"t3_p2", "t3_p1"}


def test_brand_query_is_translated_and_sent(reddit: FakeReddit, make: Any) -> None:
    list(make(reddit, subreddits=["python", "r/Rust"]).fetch(None))
    token, search = reddit.requests
    assert token.method == "POST" and token.form == {"grant_type": "client_credentials"}
    assert search.path == "/r/python+Rust/search"
    assert search.query == {"q": ACME_REDDIT, "sort": "new", "t": "all", "type": "link",
                            "restrict_sr": "true", "limit": "100", "raw_json": "1"}
    assert search.headers["authorization"] == f"bearer {ACCESS_TOKEN}"
    agent = search.headers["user-agent"]
    assert agent.startswith("python:social-listener:") and "PRAW/" in agent


def test_building_a_source_makes_no_request(reddit: FakeReddit, make: Any) -> None:
    make(reddit)  # `listener sources` / `check-config` build sources: no token, no PyPI check
    assert reddit.requests == []


def test_praw_environment_settings_cannot_log_in_or_redirect(
    reddit: FakeReddit, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"praw_site": "nosuchsite", "praw_username": "someone",
                        "praw_password": "hunter22", "praw_oauth_url": "https://evil.example",
                        "praw_client_secret": "other"}.items():
        monkeypatch.setenv(name, value)
    reddit.add(acme_post(1))
    assert ids(list(make(reddit).fetch(None))) == ["t3_p1"]
    assert reddit.requests[0].form == {"grant_type": "client_credentials"}  # app-only


def test_without_subreddits_search_covers_all_of_reddit(reddit: FakeReddit, make: Any) -> None:
    list(make(reddit, brands=(ACME, GLOBEX)).fetch(None))
    searches = reddit.api_requests
    assert [(r.path, r.query["q"]) for r in searches] == [("/search", ACME_REDDIT),
                                                          ("/search", "globex")]
    assert "restrict_sr" not in searches[0].query


def test_pagination_follows_after_and_saves_cursor_only_on_last_page(
    small_pages: FakeReddit, make: Any
) -> None:
    small_pages.add(*(acme_post(n) for n in range(1, 6)))
    pages = list(make(small_pages).fetch(None))
    assert ids(pages) == ["t3_p5", "t3_p4", "t3_p3", "t3_p2", "t3_p1"]
    assert [page.cursor is not None for page in pages] == [False, False, True]
    assert [r.query.get("after") for r in small_pages.api_requests] == [None, "t3_p4", "t3_p2"]
    assert pages[-1].cursor["streams"]["search:acme"]["newest"] == "t3_p5"


def test_resume_after_restart_gets_only_new_items(small_pages: FakeReddit, make: Any) -> None:
    small_pages.add(*(acme_post(n) for n in range(1, 4)))
    cursor = last_cursor(list(make(small_pages).fetch(None)))
    small_pages.add(acme_post(4), acme_post(5))
    restarted = make(small_pages)  # a new instance, as after a restart: only the cursor is kept
    pages = list(restarted.fetch(cursor))
    assert ids(pages) == ["t3_p5", "t3_p4"]
    assert last_cursor(pages)["streams"]["search:acme"]["newest"] == "t3_p5"
    assert list(make(small_pages).fetch(last_cursor(pages))) == []  # nothing new: no page


def test_empty_result_yields_no_posts_and_then_nothing(reddit: FakeReddit, make: Any) -> None:
    pages = list(make(reddit).fetch(None))
    assert ids(pages) == [] and pages[-1].cursor["streams"]["search:acme"]["newest"] is None
    assert list(make(reddit).fetch(pages[-1].cursor)) == []


def test_a_walk_cut_short_by_max_pages_goes_on_at_the_next_poll(make: Any) -> None:
    with FakeReddit(page_size=1) as fake:
        fake.add(acme_post(1))
        cursor = last_cursor(list(make(fake, max_pages=2).fetch(None)))
        fake.add(*(acme_post(n) for n in range(10, 14)))
        first = list(make(fake, max_pages=2).fetch(cursor))
        stream = first[-1].cursor["streams"]["search:acme"]
        assert ids(first) == ["t3_p13", "t3_p12"]
        assert stream["newest"] == "t3_p1" and stream["resume"]["after"] == "t3_p12"
        second = list(make(fake, max_pages=2).fetch(first[-1].cursor))
        assert ids(second) == ["t3_p11", "t3_p10"]
        third = list(make(fake, max_pages=2).fetch(last_cursor(second)))
        assert ids(third) == []  # reached the old mark: the walk is complete
        stream = last_cursor(third)["streams"]["search:acme"]
        assert stream["newest"] == "t3_p13" and "resume" not in stream


def test_first_poll_stops_at_max_pages_and_leaves_history_to_backfill(make: Any) -> None:
    with FakeReddit(page_size=1) as fake:
        fake.add(*(acme_post(n) for n in range(1, 5)))
        pages = list(make(fake, max_pages=2).fetch(None))
        assert ids(pages) == ["t3_p4", "t3_p3"]
        assert "resume" not in pages[-1].cursor["streams"]["search:acme"]
        assert list(make(fake, max_pages=2).fetch(pages[-1].cursor)) == []


def test_new_submissions_and_comments_of_subreddits(reddit: FakeReddit, make: Any) -> None:
    reddit.add(submission("s1", "python", "hello", created_utc=T0),
               comment("c1", "python", "acme support never answers", created_utc=T0 + 5,
                       link_title="Cloud hosts?"))
    source = make(reddit, brands=(), search=False, subreddits=["python"], submissions=True,
                  comments=True)
    pages = list(source.fetch(None))
    assert [r.path for r in reddit.api_requests] == ["/r/python/new", "/r/python/comments"]
    assert ids(pages) == ["t3_s1", "t1_c1"]
    reply = pages[-1].posts[0]
    assert (pages[0].posts[0].thread, reply.thread) == ("t3_s1", "t3_post1")  # the submission
    assert reply.text == "acme support never answers" and reply.author == "bob"
    assert reply.url == "https://www.reddit.com/r/python/comments/post1/thread/c1/"
    assert reply.raw["link_title"] == "Cloud hosts?" and reply.brand is None
    assert set(last_cursor(pages)["streams"]) == {"new:python", "comments:python"}


def _without(thing: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The thing with these fields left out, as some payloads come (``permalink`` above all)."""
    for key in keys:
        del thing["data"][key]
    return thing


def test_items_without_permalink_get_a_link_built_from_their_ids(
    reddit: FakeReddit, make: Any, tmp_path: Path
) -> None:
    reddit.add(
        _without(submission("s1", "python", "acme cloud hello", created_utc=T0), "permalink"),
        _without(comment("c1", "python", "acme cloud support never answers",
                         created_utc=T0 + 5, link_id="t3_s1"), "permalink"),
        _without(comment("c2", "python", "acme cloud, no thread known", created_utc=T0 + 6),
                 "permalink", "link_id"),
    )
    source = make(reddit, search=False, subreddits=["python"], submissions=True, comments=True)
    db = open_db(tmp_path / "t.db")
    assert collect(db, source, lambda: NOW, brands=(ACME,)) == 3
    urls = {r["platform_id"]: r["url"] for r in db["posts"].rows}
    assert urls == {
        "t3_s1": "https://www.reddit.com/r/python/comments/s1/",
        "t1_c1": "https://www.reddit.com/r/python/comments/s1/comment/c1/",
        "t1_c2": None,  # no link_id: no thread to point into, but the comment is kept
    }
    praw = pytest.importorskip("praw")
    # praw, which parses Reddit's URLs, reads the built links as this submission and comment
    assert praw.models.Submission.id_from_url(urls["t3_s1"]) == "s1"
    assert praw.models.Comment.id_from_url(urls["t1_c1"]) == "c1"


def test_a_given_permalink_is_kept(reddit: FakeReddit, make: Any) -> None:
    reddit.add(comment("c1", "python", "acme cloud", created_utc=T0, link_id="t3_s1"))
    source = make(reddit, brands=(), search=False, subreddits=["python"], comments=True)
    [post] = [p for page in source.fetch(None) for p in page.posts]
    assert post.url == "https://www.reddit.com/r/python/comments/s1/thread/c1/"


def test_removed_and_deleted_items_are_skipped(reddit: FakeReddit, make: Any) -> None:
    reddit.add(
        acme_post(1),
        acme_post(2, removed_by_category="moderator"),
        acme_post(3, selftext="[removed]"),
        acme_post(4, "[deleted by user]", selftext="[deleted]", author=None),
        comment("c1", "python", "acme cloud rocks", created_utc=T0),
        comment("c2", "python", "[removed]", created_utc=T0 + 1),
        comment("c3", "python", "[deleted]", created_utc=T0 + 2, author="[deleted]"),
    )
    pages = list(make(reddit, subreddits=["python"], comments=True).fetch(None))
    assert ids(pages) == ["t3_p1", "t1_c1"]
    seen = last_cursor(pages)["streams"]["comments:python"]["seen"]
    assert "t1_c3" in seen  # skipped, but remembered: never looked at again


def test_malformed_item_is_rejected_and_the_rest_kept(reddit: FakeReddit, make: Any) -> None:
    broken = acme_post(2)
    del broken["data"]["created_utc"]
    bad_title = {"kind": "t3", "data": {"name": "t3_p1", "title": 7, "created_utc": T0}}
    reddit.enqueue(body=listing([acme_post(3), broken, {"kind": "t5", "data": {}}, bad_title]))
    pages = list(make(reddit).fetch(None))
    assert ids(pages) == ["t3_p3"]
    reasons = [(r.where, r.reason) for r in pages[0].rejected]
    assert reasons[0] == ("reddit search:acme item 1", "t3_p2: 'created_utc' is None, "
                          "not a Unix time")
    assert "unexpected kind 't5'" in reasons[1][1]
    assert reasons[2] == ("reddit search:acme t3_p1", "'title' is int, not text")


def test_duplicates_across_pages_are_stored_once(reddit: FakeReddit, make: Any,
                                                 tmp_path: Path) -> None:
    """New items shift a listing between two page requests: page 2 repeats page 1's last."""
    a, b, c = acme_post(3), acme_post(2), acme_post(1)
    reddit.enqueue(body=listing([a, b], after="t3_p2"))
    reddit.enqueue(body=listing([b, c]))
    pages = list(make(reddit).fetch(None))
    assert ids(pages) == ["t3_p3", "t3_p2", "t3_p1"]
    db = open_db(tmp_path / "t.db")
    for page in pages + pages:  # and storing the same pages again adds nothing
        store_page(db, "rd", page, NOW)
    assert db["posts"].count == 3


def test_a_post_found_by_two_brands_is_yielded_once(reddit: FakeReddit, make: Any) -> None:
    reddit.add(acme_post(1, "acme cloud vs globex"))
    pages = list(make(reddit, brands=(ACME, GLOBEX)).fetch(None))
    assert ids(pages) == ["t3_p1"] and pages[0].posts[0].brand == "acme"
    assert set(last_cursor(pages)["streams"]) == {"search:acme", "search:globex"}


def test_a_changed_query_starts_its_stream_afresh(reddit: FakeReddit, make: Any) -> None:
    reddit.add(acme_post(1))
    cursor = last_cursor(list(make(reddit).fetch(None)))
    changed = brand("acme", '"acme cloud"')
    assert ids(list(make(reddit, brands=(changed,)).fetch(cursor))) == ["t3_p1"]


def test_unreadable_cursor_starts_over(reddit: FakeReddit, make: Any,
                                       caplog: pytest.LogCaptureFixture) -> None:
    reddit.add(acme_post(1))
    assert ids(list(make(reddit).fetch(["not", "a", "cursor"]))) == ["t3_p1"]
    bad_entry = {"version": 1, "streams": {"search:acme": {"newest": 5}}}
    assert ids(list(make(reddit).fetch(bad_entry))) == ["t3_p1"]
    assert "cursor not understood" in caplog.text and "bad cursor entry" in caplog.text


def test_backfill_pages_back_to_since(small_pages: FakeReddit, make: Any) -> None:
    small_pages.add(*(submission(f"d{n}", "python", f"acme cloud day {n}",
                                 created_utc=T0 - 86400 * n) for n in range(6)))
    pages = list(make(small_pages).backfill(NOW - timedelta(days=2, hours=6)))
    assert ids(pages) == ["t3_d0", "t3_d1", "t3_d2"]
    assert all(page.cursor is None for page in pages)
    assert len(small_pages.api_requests) == 2  # stopped once an item was older than since


# -- failures -----------------------------------------------------------------------------


def test_429_raises_rate_limited_with_the_reset_seconds(reddit: FakeReddit, make: Any) -> None:
    reddit.enqueue(429, {"message": "Too Many Requests", "error": 429},
                   headers={"x-ratelimit-remaining": "0", "x-ratelimit-used": "600",
                            "x-ratelimit-reset": "42"})
    with pytest.raises(RateLimited, match="429") as info:
        list(make(reddit).fetch(None))
    assert info.value.retry_after == 42
    assert len(reddit.api_requests) == 1  # prawcore does not retry 429


def test_used_up_budget_raises_rate_limited_instead_of_sleeping(
    small_pages: FakeReddit, make: Any
) -> None:
    small_pages.add(*(acme_post(n) for n in range(1, 5)))
    small_pages.ratelimit.update({"x-ratelimit-remaining": "0.0", "x-ratelimit-used": "600",
                                  "x-ratelimit-reset": "120"})
    fetched: list[Page] = []
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        fetched.extend(make(small_pages).fetch(None))
    assert time.monotonic() - started < 5  # prawcore itself would sleep 120 s here
    assert info.value.retry_after == 120
    assert ids(fetched) == ["t3_p4", "t3_p3"] and fetched[0].cursor is None
    assert len(small_pages.api_requests) == 1


def test_server_error_raises_and_leaves_the_cursor(reddit: FakeReddit, make: Any,
                                                   tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    reddit.add(acme_post(1))
    source = make(reddit)
    assert collect(db, source, lambda: NOW, brands=(ACME,)) == 1
    saved = load_cursor(db, "rd")
    reddit.add(acme_post(2))
    reddit.enqueue(500, {"message": "Internal Server Error", "error": 500})
    with pytest.raises(SourceError, match="HTTP 500"):
        collect(db, source, lambda: NOW, brands=(ACME,))
    assert load_cursor(db, "rd") == saved and db["posts"].count == 1
    # prawcore's own retries are off (their sleeps outlast a page deadline): the next poll retries
    assert len(reddit.api_requests) == 1 + 1
    assert collect(db, source, lambda: NOW, brands=(ACME,)) == 1  # recovered: nothing lost


def test_timeout_raises_source_error(reddit: FakeReddit, make: Any) -> None:
    reddit.enqueue(body=listing([]), delay=3.0, times=3)
    with pytest.raises(SourceError, match="could not reach Reddit .*ReadTimeout"):
        list(make(reddit, timeout=0.2).fetch(None))


@pytest.mark.parametrize("body", ["{not json", '{"kind": "t3", "data": {}}', "[]",
                                  '{"kind": "Listing", "data": {"children": {}}}'])
def test_malformed_response_raises_source_error(reddit: FakeReddit, make: Any,
                                                body: str) -> None:
    reddit.enqueue(body=body)
    with pytest.raises(SourceError, match="malformed JSON|other than a listing"):
        list(make(reddit).fetch(None))


def test_refused_credentials_raise_source_error_with_advice(reddit: FakeReddit,
                                                            make: Any) -> None:
    with pytest.raises(SourceError) as info:
        list(make(reddit, client_secret="wrong-secret-value").fetch(None))
    message = str(info.value)
    assert "HTTP 401 at /api/v1/access_token" in message
    assert "client_secret" in message and "Responsible Builder Policy" in message
    assert "wrong-secret-value" not in message and reddit.api_requests == []


def test_forbidden_listing_names_private_subreddits(reddit: FakeReddit, make: Any) -> None:
    reddit.enqueue(403, {"message": "Forbidden", "error": 403})
    with pytest.raises(SourceError, match="HTTP 403 .*private"):
        list(make(reddit, subreddits=["secret_club"]).fetch(None))


def test_client_secret_never_appears_in_logs_repr_or_errors(
    reddit: FakeReddit, make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="praw")  # the CLI tests hold it at WARNING
    caplog.set_level(logging.DEBUG, logger="prawcore")  # the CLI tests hold it at WARNING
    reddit.add(acme_post(1))
    source = make(reddit)
    posts = [post for page in source.fetch(None) for post in page.posts]
    with pytest.raises(SourceError) as refused:
        list(make(reddit, client_secret=CLIENT_SECRET + "-old").fetch(None))
    assert "Fetching: GET" in caplog.text  # prawcore's DEBUG request lines were captured
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    exposed = [caplog.text, repr(source.config), str(refused.value), repr(posts)]
    for text in exposed:
        assert CLIENT_SECRET not in text and basic not in text and ACCESS_TOKEN not in text


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["client_id", "client_secret"])
def test_missing_credentials_are_a_config_error(reddit: FakeReddit, make: Any, key: str) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        make(reddit, **{key: None})
    assert info.value.key == key


def test_missing_praw_is_a_missing_dependency(reddit: FakeReddit, make: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "praw", None)  # what `import praw` sees when not installed
    with pytest.raises(MissingDependency, match=r"praw.*social-listener\[reddit\]"):
        make(reddit)


def test_nothing_to_poll_and_overlong_queries_are_config_errors(reddit: FakeReddit,
                                                                make: Any) -> None:
    with pytest.raises(ConfigError, match="nothing to poll"):
        make(reddit, brands=())
    with pytest.raises(ConfigError, match="512"):
        make(reddit, brands=(brand("long", " OR ".join(f"word{n}" for n in range(80))),))


@pytest.mark.parametrize("settings", [
    {"submissions": True},
    {"search": False},
    {"subreddits": ["no spaces"]},
    {"base_url": "http://reddit.example"},
    {"max_pages": 11},
    {"user_agent": "bot"},
])
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RedditSourceConfig(type="reddit", name="rd", **settings)


def test_subreddit_names_are_normalised() -> None:
    config = RedditSourceConfig(type="reddit", name="rd", subreddits=["r/Python", "/r/rust/",
                                                                      "python"])
    assert config.subreddits == ["Python", "rust"]


# -- through the collect stage ------------------------------------------------------------


def test_collect_stores_posts_saves_cursor_and_a_second_collect_adds_nothing(
    small_pages: FakeReddit, make: Any, tmp_path: Path
) -> None:
    small_pages.add(acme_post(1, "acme cloud is down again"), acme_post(2),
                    acme_post(3, "acme cloud giveaway, upvote!"),  # the fake over-matches
                    submission("g1", "python", "globex rocks", created_utc=T0 + 30))
    db = open_db(tmp_path / "t.db")
    source = make(small_pages, brands=(ACME, GLOBEX))
    assert collect(db, source, lambda: NOW, brands=(ACME, GLOBEX)) == 3
    stored = {(r["platform_id"], r["brand"]) for r in db["posts"].rows}
    assert stored == {("t3_p1", "acme"), ("t3_p2", "acme"), ("t3_g1", "globex")}
    cursor = load_cursor(db, "rd")
    assert cursor["streams"]["search:acme"]["newest"] == "t3_p3"
    assert cursor["streams"]["search:globex"]["newest"] == "t3_g1"
    assert collect(db, make(small_pages, brands=(ACME, GLOBEX)), lambda: NOW,
                   brands=(ACME, GLOBEX)) == 0
    assert db["posts"].count == 3
