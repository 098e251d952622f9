"""The Hacker News source against a fake HN Search API over real HTTP (httpx, 127.0.0.1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.core.errors import ConfigError, MissingDependency, RateLimited, SourceError
from listener.core.models import Page
from listener.core.query import Brand, parse
from listener.sources import hackernews
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.hackernews import HackerNewsSource, HackerNewsSourceConfig
from storage.db import load_cursor, open_db
from tests.fakes.hn_api import FakeHNSearch, comment, story

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
ACME = Brand("acme", "acme", parse("acme"))


@pytest.fixture
def hn() -> Iterator[FakeHNSearch]:
    with FakeHNSearch() as fake:
        yield fake


def make_source(fake: FakeHNSearch, brands: tuple[Brand, ...] = (ACME,), timeout: float = 5.0,
                **settings: Any) -> HackerNewsSource:
    config = HackerNewsSourceConfig(type="hackernews", name="hn", base_url=fake.base_url,
                                    **settings)
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout, brands=brands)
    return HackerNewsSource(config, ctx)


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for page in pages for post in page.posts]


def test_first_fetch_turns_stories_and_comments_into_posts(hn: FakeHNSearch) -> None:
    hn.add(
        story(101, T - 600, "Acme raises prices", author="alice", url="https://acme.example/p",
              story_text="Is <i>anyone</i> else&#x27;s bill up?<p>Mine doubled."),
        comment(102, T - 300, "Acme support never answered me.<p>Switching to <a href="
                "\"https://globex.example\" rel=\"nofollow\">globex</a>", author="bob",
                story_id=101),
        story(100, T - 2 * 86400, "Acme, two days ago"),  # before initial_lookback: not fetched
    )
    pages = list(make_source(hn).fetch(None))
    [page] = pages
    first, second = page.posts
    assert (first.platform, first.platform_id, first.author, first.brand) == (
        "hackernews", "102", "bob", "acme")
    assert first.text == "Acme support never answered me.\n\nSwitching to globex"
    assert first.url == "https://news.ycombinator.com/item?id=102"
    assert first.created_at == NOW - timedelta(seconds=300)
    assert first.raw["story_id"] == 101 and first.raw["kind"] == "comment"
    assert (first.thread, second.thread) == ("101", "101")  # a comment threads under its story
    assert second.text == "Acme raises prices\n\nIs anyone else's bill up?\n\nMine doubled."
    assert second.url == "https://news.ycombinator.com/item?id=101"
    assert second.raw["url"] == "https://acme.example/p" and second.raw["kind"] == "story"
    assert "_highlightResult" not in second.raw
    assert page.cursor == {"version": 1, "queries": {"acme": {"since": T - 300,
                                                              "seen": ["102", "101"]}}}


def test_brand_query_is_split_per_branch_and_sent(hn: FakeHNSearch) -> None:
    brand = Brand("acme", "q", parse('("acme cloud" OR acmecloud) -giveaway'))
    hn.add(story(1, T - 10, "Acme Cloud is down"), story(2, T - 5, "acmecloud status page"),
           story(3, T - 1, "acme cloud giveaway"))
    pages = list(make_source(hn, brands=(brand,)).fetch(None))
    sent = [r.query for r in hn.requests]
    assert [p["query"] for p in sent] == ['"acme cloud"', "acmecloud"]
    assert all(r.path == "/api/v1/search_by_date" for r in hn.requests)
    assert sent[0] == {"query": '"acme cloud"', "tags": "(story,comment)",
                       "numericFilters": f"created_at_i>={T - 86400 - 300}",
                       "hitsPerPage": "100", "page": "0"}
    assert hn.requests[0].headers["user-agent"].startswith("social-listener/")
    # the giveaway post comes back from the search; the collect stage's local filter drops it
    assert sorted(ids(pages)) == ["1", "2", "3"]
    assert {p.brand for page in pages for p in page.posts} == {"acme"}
    assert set(pages[-1].cursor["queries"]) == {'"acme cloud"', "acmecloud"}


def test_tags_setting_restricts_to_comments(hn: FakeHNSearch) -> None:
    hn.add(story(1, T - 10, "acme story"), comment(2, T - 5, "acme comment"))
    pages = list(make_source(hn, tags="comments").fetch(None))
    assert hn.requests[0].query["tags"] == "comment"
    assert ids(pages) == ["2"]


def test_pages_are_followed_and_the_cursor_moves_only_on_the_last(hn: FakeHNSearch) -> None:
    hn.add(*(story(i, T - 100 + i, f"acme {i}") for i in range(1, 6)))
    pages = list(make_source(hn, hits_per_page=2).fetch(None))
    assert [len(p.posts) for p in pages] == [2, 2, 1]
    assert [p.cursor is None for p in pages] == [True, True, False]
    assert [r.query["page"] for r in hn.requests] == ["0", "1", "2"]
    assert ids(pages) == ["5", "4", "3", "2", "1"]
    assert pages[-1].cursor["queries"]["acme"]["since"] == T - 95


def test_a_new_instance_resumes_from_the_saved_cursor(hn: FakeHNSearch) -> None:
    hn.add(story(1, T - 100, "acme one"), story(2, T - 50, "acme two"))
    cursor = list(make_source(hn).fetch(None))[-1].cursor
    hn.add(story(3, T - 20, "acme three"))
    pages = list(make_source(hn).fetch(cursor))  # a restart: a fresh source, the stored cursor
    assert ids(pages) == ["3"]
    assert hn.requests[-1].query["numericFilters"] == f"created_at_i>={T - 50 - 300}"
    assert pages[-1].cursor["queries"]["acme"]["since"] == T - 20


def test_a_hit_indexed_late_is_caught_by_the_overlap(hn: FakeHNSearch) -> None:
    hn.add(story(2, T - 50, "acme two"))
    cursor = list(make_source(hn).fetch(None))[-1].cursor
    hn.add(story(1, T - 120, "acme one, indexed late"))  # older than the mark, within overlap
    assert ids(list(make_source(hn).fetch(cursor))) == ["1"]


def test_empty_result(hn: FakeHNSearch) -> None:
    hn.add(story(1, T - 10, "nothing relevant"))
    [page] = list(make_source(hn).fetch(None))
    assert page.posts == [] and page.rejected == []
    assert page.cursor["queries"]["acme"] == {"since": T - 86400, "seen": []}


def test_429_raises_rate_limited_with_retry_after(hn: FakeHNSearch) -> None:
    hn.enqueue(429, json.dumps({"message": "Too many requests", "status": 429}),
               headers={"Retry-After": "42"})
    with pytest.raises(RateLimited) as caught:
        list(make_source(hn).fetch(None))
    assert caught.value.retry_after == 42


def test_server_error_raises_and_leaves_the_cursor(hn: FakeHNSearch, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    hn.add(story(1, T - 100, "acme one"))
    collect(db, make_source(hn), lambda: NOW, brands=(ACME,))
    before = load_cursor(db, "hn")
    hn.add(*(story(i, T - 50 + i, f"acme {i}") for i in range(2, 5)))
    hn.enqueue(200, json.dumps({"hits": [story(4, T - 46, "acme 4"), story(3, T - 47, "acme 3")],
                                "nbHits": 3, "page": 0, "nbPages": 2, "hitsPerPage": 2}))
    hn.enqueue(502, "<html>Bad Gateway</html>")
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(hn, hits_per_page=2), lambda: NOW, brands=(ACME,))
    assert load_cursor(db, "hn") == before  # the first page was stored, the mark did not move
    assert db["posts"].count == 3


def test_timeout_raises_source_error(hn: FakeHNSearch) -> None:
    hn.enqueue(200, "{}", delay=2.0)
    with pytest.raises(SourceError, match="did not answer within 0.2s"):
        list(make_source(hn, timeout=0.2).fetch(None))


@pytest.mark.parametrize("body", ["<html>not json</html>", '{"hits": "nope", "nbPages": 1}',
                                  "[1, 2]"])
def test_malformed_response_raises_source_error(hn: FakeHNSearch, body: str) -> None:
    hn.enqueue(200, body)
    with pytest.raises(SourceError):
        list(make_source(hn).fetch(None))


def test_malformed_hit_is_rejected_and_the_rest_kept(hn: FakeHNSearch) -> None:
    bad = story(2, T - 20, "acme bad")
    del bad["created_at_i"]
    weird = story(3, T - 10, "acme weird")
    weird["story_text"] = {"not": "text"}
    hn.enqueue(200, json.dumps({"hits": [weird, bad, story(1, T - 30, "acme good")],
                                "nbHits": 3, "page": 0, "nbPages": 1, "hitsPerPage": 100}))
    [page] = list(make_source(hn).fetch(None))
    assert ids([page]) == ["1"]
    assert [r.reason for r in page.rejected] == ["'story_text' is not a string",
                                                 "hit without an objectID or created_at_i"]


def test_deleted_and_dead_items_are_skipped(hn: FakeHNSearch) -> None:
    hn.add(comment(1, T - 30, None, author=None), story(2, T - 20, None, author=None),
           comment(3, T - 10, "acme fine"))
    hn.enqueue(200, json.dumps({"hits": [comment(3, T - 10, "acme fine"),
                                         story(2, T - 20, None, author=None),
                                         comment(1, T - 30, None, author=None)],
                                "nbHits": 3, "page": 0, "nbPages": 1, "hitsPerPage": 100}))
    [page] = list(make_source(hn).fetch(None))
    assert ids([page]) == ["3"] and page.rejected == []
    assert page.cursor["queries"]["acme"]["seen"] == ["3", "2", "1"]


def test_duplicates_across_pages_are_stored_once(hn: FakeHNSearch, tmp_path: Path) -> None:
    hn.add(*(story(i, T - 100 + i, f"acme {i}") for i in range(1, 5)))
    hn.add_after(1, story(9, T - 1, "acme arrives between pages"))  # shifts page 1 by one
    pages = list(make_source(hn, hits_per_page=2).fetch(None))
    assert ids(pages) == ["4", "3", "2", "1"]  # "3" came again on page 1 and was dropped
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(hn, hits_per_page=2), lambda: NOW, brands=(ACME,)) == 5
    assert db["posts"].count == 5


def test_a_backlog_larger_than_one_cycle_is_caught_up_without_a_gap(hn: FakeHNSearch) -> None:
    hn.add(*(story(i, T - 100 + i, f"acme {i}") for i in range(1, 8)))
    source = make_source(hn, hits_per_page=2, max_pages=2)
    first = list(source.fetch(None))
    assert ids(first) == ["7", "6", "5", "4"]
    assert first[-1].cursor["queries"]["acme"]["upto"] == T - 96
    hn.add(story(8, T - 5, "acme 8"))
    second = list(source.fetch(first[-1].cursor))
    assert ids(second) == ["3", "2", "1"]  # older window first; the mark adopted after it
    assert hn.requests[-1].query["numericFilters"].endswith(f",created_at_i<={T - 96}")
    assert second[-1].cursor["queries"]["acme"]["since"] == T - 93
    third = list(source.fetch(second[-1].cursor))
    assert ids(third) == ["8"]


def test_collect_stores_posts_saves_cursor_and_adds_nothing_twice(
    hn: FakeHNSearch, tmp_path: Path
) -> None:
    brands = (Brand("acme", "q", parse("acme -giveaway")), Brand("globex", "globex",
                                                                  parse("globex")))
    hn.add(story(1, T - 30, "Acme outage"), comment(2, T - 20, "acme giveaway!!"),
           comment(3, T - 10, "globex is fine"))
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(hn, brands=brands), lambda: NOW, brands=brands) == 2
    rows = {r["platform_id"]: r["brand"] for r in db["posts"].rows}
    assert rows == {"1": "acme", "3": "globex"}
    assert set(load_cursor(db, "hn")["queries"]) == {"acme", "globex"}
    assert collect(db, make_source(hn, brands=brands), lambda: NOW, brands=brands) == 0
    assert db["posts"].count == 2


def test_backfill_walks_back_to_since_without_moving_the_cursor(hn: FakeHNSearch) -> None:
    hn.add(*(story(i, T - 10 * 86400 + i * 3600, f"acme {i}") for i in range(1, 8)))
    source = make_source(hn, hits_per_page=2, max_pages=2)
    pages = list(source.backfill(NOW - timedelta(days=10)))
    assert ids(pages) == ["7", "6", "5", "4", "3", "2", "1"]
    assert all(page.cursor is None for page in pages)
    assert hn.requests[0].query["numericFilters"] == f"created_at_i>={T - 10 * 86400}"


def test_no_brand_to_search_for_is_a_config_error(hn: FakeHNSearch) -> None:
    with pytest.raises(ConfigError, match="brands"):
        list(make_source(hn, brands=()).fetch(None))
    assert hn.requests == []


def test_more_than_algolias_1000_hits_per_query_is_refused() -> None:
    with pytest.raises(ValidationError, match="at most 1000 hits"):
        HackerNewsSourceConfig(type="hackernews", name="hn", hits_per_page=500, max_pages=3)


def test_a_query_no_longer_configured_is_dropped_from_the_cursor(hn: FakeHNSearch) -> None:
    old = {"version": 1, "queries": {"globex": {"since": T - 50, "seen": ["7"]},
                                     "acme": {"since": T - 60, "seen": []}}}
    [page] = list(make_source(hn).fetch(old))
    assert set(page.cursor["queries"]) == {"acme"}
    assert hn.requests[0].query["numericFilters"] == f"created_at_i>={T - 60 - 300}"


def test_an_unreadable_cursor_starts_over_from_the_lookback(hn: FakeHNSearch) -> None:
    list(make_source(hn).fetch({"queries": "nonsense"}))
    assert hn.requests[0].query["numericFilters"] == f"created_at_i>={T - 86400 - 300}"


def test_missing_httpx_is_a_named_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hackernews, "httpx", None)  # as when the import failed
    with pytest.raises(MissingDependency, match=r"social-listener\[hackernews\]"):
        HackerNewsSource(HackerNewsSourceConfig(type="hackernews", name="hn"), SourceContext())
