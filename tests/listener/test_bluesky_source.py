"""The Bluesky source against fake XRPC endpoints, through the real atproto client."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.core.errors import ConfigError, MissingDependency, RateLimited, SourceError
from listener.core.log import redact
from listener.core.models import Page
from listener.core.query import Brand, parse
from listener.sources.base import SourceContext
from listener.sources.bluesky.source import BlueskySource, BlueskySourceConfig
from listener.sources.collect import collect
from storage.db import load_cursor, open_db
from tests.fakes.bluesky_api import CREATE_SESSION, SEARCH, FakeBluesky

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HANDLE, PASSWORD = "brand.bsky.social", "abcd-efgh-ijkl-mnop"
STREAM = 'acme:"acme cloud"'


def brand(name: str, query: str) -> Brand:
    return Brand(name=name, text=query, query=parse(query))


ACME = brand("acme", '"acme cloud" -giveaway')


@pytest.fixture
def fake() -> Iterator[FakeBluesky]:
    with FakeBluesky(handle=HANDLE, password=PASSWORD) as server:
        yield server


def make_source(fake: FakeBluesky, brands: tuple[Brand, ...] = (ACME,), timeout: float = 5.0,
                **settings: Any) -> BlueskySource:
    values = {"type": "bluesky", "name": "sky", "base_url": fake.base_url,
              "login_url": fake.base_url, **settings}
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout, brands=brands)
    return BlueskySource(BlueskySourceConfig(**values), ctx)


def skeet(fake: FakeBluesky, minutes_ago: float, text: str = "acme cloud is down",
          **kwargs: Any) -> dict[str, Any]:
    return fake.add_post(text, created_at=NOW - timedelta(minutes=minutes_ago), **kwargs)


def posts_of(pages: list[Page]) -> list[Any]:
    return [post for page in pages for post in page.posts]


def state(pages: list[Page]) -> dict[str, Any]:
    return pages[-1].cursor["streams"][STREAM]


def test_first_fetch_normalises_posts(fake: FakeBluesky) -> None:
    older = skeet(fake, 5, "Is acme cloud down?", handle="bob.example.com", langs=["de", "en"])
    newest = skeet(fake, 1, indexed_at=NOW - timedelta(seconds=30))
    root = {"uri": older["uri"], "cid": older["cid"]}
    newest["record"]["reply"] = {"root": root, "parent": root}  # a reply to bob's post
    pages = list(make_source(fake).fetch(None))
    first, second = posts_of(pages)
    assert first.thread == second.thread == older["uri"]  # alerts thread under the root's
    rkey = newest["uri"].rsplit("/", 1)[1]
    assert (first.platform, first.platform_id, first.text) == ("bluesky", newest["uri"],
                                                               "acme cloud is down")
    assert first.url == f"https://bsky.app/profile/ann.bsky.social/post/{rkey}"
    assert (first.author, first.lang, first.brand, first.source) == ("ann.bsky.social", "en",
                                                                     "acme", "sky")
    assert first.created_at == NOW - timedelta(minutes=1)
    assert (second.platform_id, second.author, second.lang) == (older["uri"], "bob.example.com",
                                                                "de")
    assert first.raw["record"]["text"] == "acme cloud is down" and first.raw["likeCount"] == 2
    # only posts inside the overlap window (2 minutes) are remembered as seen
    assert state(pages) == {"since": "2026-11-20T11:59:00.000Z",
                            "seen": {newest["uri"]: "2026-11-20T11:59:00.000Z"}}


def test_pagination_follows_the_api_cursor(fake: FakeBluesky) -> None:
    for i in range(5):
        skeet(fake, 10 - i, f"acme cloud {i}")
    pages = list(make_source(fake, page_size=2).fetch(None))
    assert [len(p.posts) for p in pages] == [2, 2, 1]
    assert [p.cursor for p in pages[:-1]] == [None, None]
    assert state(pages)["since"] == "2026-11-20T11:54:00.000Z"
    calls = fake.requests_to(SEARCH)
    assert [c.query.get("cursor") for c in calls] == [None, "2", "4"]
    assert all(c.query["limit"] == "2" and c.query["sort"] == "latest" for c in calls)


def test_resume_from_saved_cursor_gets_only_new_posts(fake: FakeBluesky) -> None:
    old = [skeet(fake, 10), skeet(fake, 9)]
    cursor = list(make_source(fake).fetch(None))[-1].cursor
    new = skeet(fake, 2, "acme cloud again")
    late = skeet(fake, 9.5, "acme cloud indexed late", indexed_at=NOW - timedelta(minutes=1))
    pages = list(make_source(fake).fetch(json.loads(json.dumps(cursor))))  # a restart
    assert [p.platform_id for p in posts_of(pages)] == [new["uri"], late["uri"]]
    assert fake.requests_to(SEARCH)[-1].query["since"] == "2026-11-20T11:49:00Z"  # minus overlap
    assert state(pages)["since"] == "2026-11-20T11:58:00.000Z"
    assert old[1]["uri"] not in state(pages)["seen"]  # older than the overlap window now
    assert list(make_source(fake).fetch(pages[-1].cursor)) == []


def test_empty_result_yields_nothing(fake: FakeBluesky) -> None:
    assert list(make_source(fake).fetch(None)) == []
    assert len(fake.requests_to(SEARCH)) == 1


def test_429_with_ratelimit_reset_is_rate_limited(fake: FakeBluesky) -> None:
    reset = int((NOW + timedelta(seconds=240)).timestamp())
    fake.enqueue(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                 headers={"ratelimit-remaining": "0", "ratelimit-reset": str(reset)})
    with pytest.raises(RateLimited) as limited:
        list(make_source(fake).fetch(None))
    assert limited.value.retry_after == pytest.approx(240)


def test_server_error_raises_and_cursor_stays(fake: FakeBluesky, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    skeet(fake, 9)
    assert collect(db, make_source(fake), lambda: NOW) == 1
    saved = load_cursor(db, "sky")
    skeet(fake, 2, "acme cloud new")
    fake.enqueue(502, b"<html>Bad Gateway</html>")
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(fake), lambda: NOW)
    fake.enqueue(500, {"error": "InternalServerError", "message": "Internal Server Error"})
    with pytest.raises(SourceError, match="HTTP 500.*InternalServerError"):
        collect(db, make_source(fake), lambda: NOW)
    assert load_cursor(db, "sky") == saved and db["posts"].count == 1


def test_timeout_is_source_error(fake: FakeBluesky) -> None:
    fake.enqueue(200, {"posts": []}, delay=2.0)
    with pytest.raises(SourceError, match="no answer within 0.2 s"):
        list(make_source(fake, timeout=0.2).fetch(None))


def test_malformed_json_is_source_error(fake: FakeBluesky) -> None:
    fake.enqueue(200, b'{"posts": [{"uri": ')
    with pytest.raises(SourceError, match="not valid JSON"):
        list(make_source(fake).fetch(None))
    fake.enqueue(200, {"results": []})
    with pytest.raises(SourceError, match="not a searchPosts result"):
        list(make_source(fake).fetch(None))


def test_removed_posts_skipped_and_malformed_items_rejected(fake: FakeBluesky) -> None:
    kept = skeet(fake, 5)
    skeet(fake, 4, "acme cloud taken down", labels=["!takedown"])
    skeet(fake, 3, "acme cloud hidden", labels=["!hide"])
    broken = skeet(fake, 2, "acme cloud broken")
    del broken["author"]
    wrong = skeet(fake, 1, "acme cloud wrong date")
    wrong["record"]["createdAt"] = "last tuesday"
    pages = list(make_source(fake).fetch(None))
    assert [p.platform_id for p in posts_of(pages)] == [kept["uri"]]
    reasons = {r.where: r.reason for p in pages for r in p.rejected}
    assert reasons[f"bluesky {STREAM} item 1"].startswith("not a postView: 1 validation error")
    assert "bad createdAt" in reasons[f"bluesky {wrong['uri']}"]


def test_duplicates_across_pages_are_stored_once(fake: FakeBluesky, tmp_path: Path) -> None:
    for i in range(4):
        skeet(fake, 10 - i, f"acme cloud {i}")
    pages = make_source(fake, page_size=2).fetch(None)
    first = next(pages)
    skeet(fake, 1, "acme cloud newer")  # shifts the API's offset cursor: page 2 repeats one
    rest = list(pages)
    ids = [p.platform_id for p in posts_of([first, *rest])]
    assert len(ids) == len(set(ids)) == 4
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(fake, page_size=2), lambda: NOW, brands=[ACME]) == 5
    assert db["posts"].count == 5


def test_brand_query_is_translated_and_sent(fake: FakeBluesky) -> None:
    skeet(fake, 3, "acmecloud rocks")
    source = make_source(fake, brands=(brand("acme", '("acme cloud" OR acmecloud) -giveaway'),
                                       brand("globex", "globex* billing")))
    posts = posts_of(list(source.fetch(None)))
    assert [c.query["q"] for c in fake.requests_to(SEARCH)] == ['"acme cloud"', "acmecloud",
                                                                "billing"]
    assert [(p.text, p.brand) for p in posts] == [("acmecloud rocks", "acme")]


def test_collect_stores_posts_saves_cursor_and_adds_nothing_twice(
        fake: FakeBluesky, tmp_path: Path) -> None:
    skeet(fake, 3, "acme cloud is great")
    skeet(fake, 2, "acme cloud giveaway, repost!")  # the brand query excludes it
    newest = skeet(fake, 1, "ACME Cloud down again", handle="cy.example.com")
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(fake), lambda: NOW, brands=[ACME]) == 2
    rows = {r["author"]: r for r in db["posts"].rows}
    assert set(rows) == {"ann.bsky.social", "cy.example.com"}
    assert load_cursor(db, "sky")["streams"][STREAM]["since"] == newest["record"]["createdAt"]
    assert collect(db, make_source(fake), lambda: NOW, brands=[ACME]) == 0
    assert db["posts"].count == 2


def test_login_then_search_with_the_session(tmp_path: Path) -> None:
    with FakeBluesky(handle=HANDLE, password=PASSWORD, require_auth=True) as server:
        skeet(server, 1)
        with pytest.raises(SourceError, match="requires login for search: set handle"):
            list(make_source(server).fetch(None))
        source = make_source(server, handle=HANDLE, app_password=PASSWORD)
        pages = list(source.fetch(None))
        assert len(posts_of(pages)) == 1
        [login] = server.requests_to(CREATE_SESSION)
        assert login.json == {"identifier": HANDLE, "password": PASSWORD}
        token = server.requests_to(SEARCH)[-1].headers["authorization"].removeprefix("Bearer ")
        assert token and redact(f"sent {token}") == "sent ***"  # session tokens are secrets
        list(source.fetch(pages[-1].cursor))
        assert len(server.requests_to(CREATE_SESSION)) == 1  # one login per process
        assert PASSWORD not in json.dumps([p.cursor for p in pages] + [posts_of(pages)[0].raw])
        wrong = make_source(server, handle=HANDLE, app_password="wrong-pass-word")
        with pytest.raises(SourceError, match="login: HTTP 401.*check handle") as refused:
            list(wrong.fetch(None))
        assert "wrong-pass-word" not in str(refused.value)


def test_bad_query_string_gives_advice(fake: FakeBluesky) -> None:
    fake.enqueue(400, {"error": "BadQueryString", "message": "unbalanced quotes"})
    with pytest.raises(SourceError, match="refused the query.*simplify brand 'acme'"):
        list(make_source(fake).fetch(None))


def test_burst_bigger_than_max_pages_is_read_over_polls_without_gap(fake: FakeBluesky) -> None:
    skeet(fake, 60)
    cursor = list(make_source(fake).fetch(None))[-1].cursor
    burst = [skeet(fake, 30 - i, f"acme cloud {i}") for i in range(7)]
    first = list(make_source(fake, page_size=2, max_pages=2).fetch(cursor))
    pending = state(first)["pending"]
    assert state(first)["since"] == cursor["streams"][STREAM]["since"]
    assert (pending["until"], pending["newest"]) == ("2026-11-20T11:33:01Z",
                                                     "2026-11-20T11:36:00.000Z")
    second = list(make_source(fake, page_size=2, max_pages=5).fetch(first[-1].cursor))
    assert {p.platform_id for p in posts_of(first + second)} == {b["uri"] for b in burst}
    assert "pending" not in state(second) and state(second)["since"] == pending["newest"]


def test_future_dated_post_does_not_push_the_mark_past_indexing(fake: FakeBluesky) -> None:
    skeet(fake, -600, "acme cloud from the future", indexed_at=NOW - timedelta(minutes=1))
    pages = list(make_source(fake).fetch(None))
    assert posts_of(pages)[0].created_at == NOW - timedelta(minutes=1)
    assert state(pages)["since"] == "2026-11-20T11:59:00.000Z"


def test_backfill_searches_since(fake: FakeBluesky) -> None:
    for i in range(5):
        skeet(fake, 600 - 100 * i, f"acme cloud {i}")
    pages = list(make_source(fake, page_size=2).backfill(NOW - timedelta(minutes=450)))
    assert all(p.cursor is None for p in pages)
    assert [p.text for p in posts_of(pages)] == ["acme cloud 4", "acme cloud 3", "acme cloud 2"]
    calls = fake.requests_to(SEARCH)
    assert [(c.query["since"], c.query.get("cursor")) for c in calls] == [
        ("2026-11-20T04:30:00Z", None), ("2026-11-20T04:30:00Z", "2")]


def test_config_checks(fake: FakeBluesky, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="app_password"):
        make_source(fake, handle=HANDLE)
    with pytest.raises(ConfigError, match="no brands"):
        make_source(fake, brands=())
    monkeypatch.setitem(sys.modules, "atproto", None)
    with pytest.raises(MissingDependency, match=r"atproto.*\[bluesky\]"):
        make_source(fake)
