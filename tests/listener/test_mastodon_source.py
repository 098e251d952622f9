"""The Mastodon source against a fake instance, through the real Mastodon.py client."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.core.errors import ConfigError, MissingDependency, RateLimited, SourceError
from listener.core.models import Page
from listener.core.query import Brand, parse
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.html_text import html_to_text
from listener.sources.mastodon.source import MastodonSource, MastodonSourceConfig
from storage.db import load_cursor, open_db
from tests.fakes.mastodon_api import FakeMastodon

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TOKEN = "tok-secret-123"
TAGS = "/api/v1/timelines/tag/"


def brand(name: str, query: str) -> Brand:
    return Brand(name=name, text=query, query=parse(query))


ACME = brand("acme", '("acme cloud" OR acmecloud) -giveaway')


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon(access_token=TOKEN) as server:
        yield server


def make_source(fake: FakeMastodon, brands: tuple[Brand, ...] = (ACME,), timeout: float = 5.0,
                **settings: Any) -> MastodonSource:
    values = {"type": "mastodon", "name": "masto", "base_url": fake.base_url,
              "hashtags": ["acme"], **settings}
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout, brands=brands)
    return MastodonSource(MastodonSourceConfig(**values), ctx)


def toot(fake: FakeMastodon, minutes_ago: float, text: str = "acme cloud is down",
         **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("tags", ["acme"])
    return fake.add_status(f"<p>{text}</p>", created_at=NOW - timedelta(minutes=minutes_ago),
                           **kwargs)


def posts_of(pages: list[Page]) -> list[Any]:
    return [post for page in pages for post in page.posts]


def test_first_fetch_normalises_statuses(fake: FakeMastodon) -> None:
    parent = fake.add_status('<p>Is <a href="https://x.example/acme">#<span>acme</span></a> down?<br>'
                    "Tom &amp; Jerry</p><p>second</p>", tags=["acme"], acct="bob@other.example",
                    followers=77, language="de", created_at=NOW - timedelta(minutes=3))
    newest = toot(fake, 1, spoiler_text="outage")
    newest["in_reply_to_id"] = parent["id"]  # a reply to bob's status
    pages = list(make_source(fake).fetch(None))
    first, second = posts_of(pages)
    assert (first.thread, second.thread) == (parent["id"], parent["id"])  # Slack threads
    assert (first.text, first.author, first.lang) == ("outage\n\nacme cloud is down", "ann", "en")
    assert second.text == "Is #acme down?\nTom & Jerry\n\nsecond"
    assert (second.author, second.author_followers, second.lang) == ("bob@other.example", 77, "de")
    assert second.created_at == NOW - timedelta(minutes=3)
    assert first.platform_id == newest["uri"] and first.url == newest["url"]
    assert first.platform == "mastodon" and first.source == "masto" and first.brand is None
    assert pages[-1].cursor == {"version": 1, "streams": {"tag:acme": {"since_id": newest["id"]}}}


def test_pagination_follows_max_id_and_moves_cursor_only_on_last_page(fake: FakeMastodon) -> None:
    statuses = [toot(fake, 10 - i, f"acme cloud {i}") for i in range(5)]
    pages = list(make_source(fake, page_size=2).fetch(None))
    assert [len(p.posts) for p in pages] == [2, 2, 1, 0]
    assert [p.cursor for p in pages[:-1]] == [None, None, None]
    assert pages[-1].cursor["streams"]["tag:acme"] == {"since_id": statuses[-1]["id"]}
    calls = fake.requests_to(TAGS)
    assert [c.query.get("max_id") for c in calls] == [None, statuses[3]["id"],
                                                       statuses[1]["id"], statuses[0]["id"]]
    assert all(c.query["limit"] == "2" for c in calls)


def test_resume_from_saved_cursor_gets_only_new_statuses(fake: FakeMastodon) -> None:
    old = [toot(fake, 30 - i) for i in range(3)]
    cursor = list(make_source(fake).fetch(None))[-1].cursor
    new = [toot(fake, 5, "acme cloud again"), toot(fake, 4, "acme cloud still")]
    pages = list(make_source(fake).fetch(json.loads(json.dumps(cursor))))  # a restart
    assert [p.platform_id for p in posts_of(pages)] == [new[1]["uri"], new[0]["uri"]]
    assert fake.requests_to(TAGS)[-2].query["since_id"] == old[-1]["id"]
    assert pages[-1].cursor["streams"]["tag:acme"]["since_id"] == new[1]["id"]


def test_empty_timeline_and_unknown_hashtag_yield_nothing(fake: FakeMastodon) -> None:
    fake.known_tags.add("acme")
    assert list(make_source(fake, hashtags=["acme", "neverused"]).fetch(None)) == []
    assert [r.path for r in fake.requests_to(TAGS)] == [TAGS + "acme", TAGS + "neverused"]


def test_429_with_iso_reset_is_rate_limited(fake: FakeMastodon) -> None:
    reset = (NOW + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    fake.enqueue(429, {"error": "Too many requests"}, path=TAGS,
                 headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    with pytest.raises(RateLimited) as limited:
        list(make_source(fake).fetch(None))
    assert limited.value.retry_after == pytest.approx(90)


def test_server_error_raises_and_cursor_stays(fake: FakeMastodon, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    toot(fake, 9)
    assert collect(db, make_source(fake), lambda: NOW) == 1
    saved = load_cursor(db, "masto")
    toot(fake, 2, "acme cloud new")
    fake.enqueue(502, b"<html>Bad Gateway</html>", path=TAGS)
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(fake), lambda: NOW)
    fake.enqueue(500, {"error": "boom"}, path=TAGS)
    with pytest.raises(SourceError, match="HTTP 500"):
        collect(db, make_source(fake), lambda: NOW)
    assert load_cursor(db, "masto") == saved and db["posts"].count == 1


def test_timeout_is_source_error(fake: FakeMastodon) -> None:
    fake.enqueue(200, [], path=TAGS, delay=2.0)
    with pytest.raises(SourceError, match="cannot reach .*timeout or connection failure"):
        list(make_source(fake, timeout=0.2).fetch(None))


def test_malformed_json_is_source_error(fake: FakeMastodon) -> None:
    fake.enqueue(200, b'[{"id": "1", "content": ', path=TAGS)
    with pytest.raises(SourceError, match="not the JSON Mastodon documents"):
        list(make_source(fake).fetch(None))
    fake.enqueue(200, {"error": "not a list"}, path=TAGS)
    with pytest.raises(SourceError, match="not a list of statuses"):
        list(make_source(fake).fetch(None))


def test_boosts_private_suspended_skipped_and_bad_items_rejected(fake: FakeMastodon) -> None:
    kept = toot(fake, 6)
    original = toot(fake, 5, tags=[])
    toot(fake, 4, "acme cloud boosted", reblog=original)
    toot(fake, 3, "acme cloud for followers", visibility="private")
    toot(fake, 2, "acme cloud by a suspended account", suspended=True)
    broken = toot(fake, 1, "acme cloud broken")
    broken["created_at"] = "yesterday-ish"
    pages = list(make_source(fake).fetch(None))
    assert [p.platform_id for p in posts_of(pages)] == [kept["uri"]]
    [rejected] = [r for p in pages for r in p.rejected]
    assert rejected.where == f"mastodon tag:acme status {broken['id']}"
    assert "created_at" in rejected.reason


def test_brand_query_is_translated_and_sent_with_the_token(fake: FakeMastodon) -> None:
    toot(fake, 3, "we love ACME CLOUD", tags=[])
    toot(fake, 2, "acmecloud rocks", tags=[])
    source = make_source(fake, hashtags=[], search=True, access_token=TOKEN,
                         brands=(ACME, brand("globex", "globex* AND billing")))
    posts = posts_of(list(source.fetch(None)))
    searches = fake.requests_to("/api/v2/search")
    queries = list(dict.fromkeys(s.query["q"] for s in searches))
    assert queries == ['"acme cloud"', "acmecloud", "billing"]  # prefix terms widened
    assert all(s.query["type"] == "statuses" and "resolve" not in s.query for s in searches)
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in searches)
    assert sorted((p.text, p.brand) for p in posts) == [("acmecloud rocks", "acme"),
                                                       ("we love ACME CLOUD", "acme")]


def test_search_cursor_never_moves_back_when_the_newest_status_is_deleted(
        fake: FakeMastodon) -> None:
    toot(fake, 3, tags=[])
    newest = toot(fake, 2, tags=[])
    source = make_source(fake, hashtags=[], search=True, access_token=TOKEN)
    cursor = list(source.fetch(None))[-1].cursor
    fake.statuses.remove(newest)  # the author deleted it
    assert list(make_source(fake, hashtags=[], search=True, access_token=TOKEN).fetch(cursor)) == []
    assert cursor["streams"]['search:acme:"acme cloud"']["since_id"] == newest["id"]


def test_duplicates_across_pages_and_streams_are_stored_once(
        fake: FakeMastodon, tmp_path: Path) -> None:
    for i in range(5):
        toot(fake, 10 - i, f"acme cloud {i}")
    source = make_source(fake, search=True, access_token=TOKEN, page_size=2)
    pages = list(source.fetch(None))
    search_ids = [p.platform_id for p in posts_of(pages) if p.brand == "acme"]
    assert len(search_ids) == len(set(search_ids)) == 5  # coarse search bounds overlap pages
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(fake, search=True, access_token=TOKEN, page_size=2),
                   lambda: NOW, brands=[ACME]) == 5
    assert db["posts"].count == 5


def test_collect_stores_posts_saves_cursor_and_adds_nothing_twice(
        fake: FakeMastodon, tmp_path: Path) -> None:
    toot(fake, 3, "acme cloud is great")
    toot(fake, 2, "acme cloud giveaway, boost!")  # the brand query excludes it
    newest = toot(fake, 1, "ACMECLOUD down again", acct="cy@else.example")
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(fake), lambda: NOW, brands=[ACME]) == 2
    rows = {r["author"]: r for r in db["posts"].rows}
    assert set(rows) == {"ann", "cy@else.example"} and rows["ann"]["brand"] == "acme"
    assert load_cursor(db, "masto")["streams"]["tag:acme"]["since_id"] == newest["id"]
    assert TOKEN not in json.dumps([dict(r) for r in db["posts"].rows])
    assert collect(db, make_source(fake), lambda: NOW, brands=[ACME]) == 0
    assert db["posts"].count == 2


def test_burst_bigger_than_max_pages_is_read_over_polls_without_gap(fake: FakeMastodon) -> None:
    toot(fake, 60)
    cursor = list(make_source(fake).fetch(None))[-1].cursor
    burst = [toot(fake, 30 - i, f"acme cloud {i}") for i in range(7)]
    first = list(make_source(fake, page_size=2, max_pages=2).fetch(cursor))
    state = first[-1].cursor["streams"]["tag:acme"]
    assert state["since_id"] == cursor["streams"]["tag:acme"]["since_id"]
    assert state["pending"] == {"max_id": burst[3]["id"], "newest": burst[-1]["id"]}
    second = list(make_source(fake, page_size=2, max_pages=5).fetch(first[-1].cursor))
    got = {p.platform_id for p in posts_of(first + second)}
    assert got == {s["uri"] for s in burst}
    assert second[-1].cursor["streams"]["tag:acme"] == {"since_id": burst[-1]["id"]}


def test_backfill_pages_back_to_since(fake: FakeMastodon) -> None:
    statuses = [toot(fake, 600 - 60 * i, f"acme cloud {i}") for i in range(8)]
    pages = list(make_source(fake, page_size=2).backfill(NOW - timedelta(minutes=400)))
    assert all(p.cursor is None for p in pages)
    assert [p.platform_id for p in posts_of(pages)] == [s["uri"] for s in statuses[:3:-1]]
    assert len(fake.requests_to(TAGS)) == 3  # the third page reached past `since`


def test_credentials_and_access_rules(fake: FakeMastodon) -> None:
    with pytest.raises(ConfigError, match="access_token.*logged-in"):
        make_source(fake, search=True)
    with pytest.raises(ConfigError, match="nothing to read"):
        make_source(fake, hashtags=[])
    toot(fake, 1)
    with pytest.raises(SourceError, match="HTTP 401.*access_token") as refused:
        list(make_source(fake, access_token="wrong-token").fetch(None))
    assert "wrong-token" not in str(refused.value)
    fake.hashtag_access = "authenticated"
    with pytest.raises(SourceError, match="requires login for them: set access_token"):
        list(make_source(fake).fetch(None))
    assert len(posts_of(list(make_source(fake, access_token=TOKEN).fetch(None)))) == 1


def test_missing_library_is_named(fake: FakeMastodon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mastodon", None)
    with pytest.raises(MissingDependency, match=r"Mastodon\.py.*\[mastodon\]"):
        make_source(fake)


def test_config_normalises_hashtags() -> None:
    config = MastodonSourceConfig(type="mastodon", name="m", base_url="https://m.example/",
                                  hashtags=["#Acme", "acme", "café"])
    assert (config.hashtags, config.base_url) == (["acme", "café"], "https://m.example")
    with pytest.raises(ValueError, match="not hashtags"):
        MastodonSourceConfig(type="mastodon", name="m", base_url="https://m.example",
                             hashtags=["two words"])


def test_mastodon_html_to_text() -> None:
    """Mastodon hides URL parts in invisible spans; the text keeps the whole link."""
    html = ('<p>Hi <span class="h-card"><a href="https://m.example/@ann">@<span>ann</span></a>'
            '</span> see <a href="https://example.com/x"><span class="invisible">https://</span>'
            '<span>example.com/x</span></a> &lt;3</p><p>bye</p>')
    assert html_to_text(html) == "Hi @ann see https://example.com/x <3\n\nbye"
