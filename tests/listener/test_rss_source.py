"""The RSS/Atom source against a fake feed server over real HTTP (httpx + feedparser)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.core.errors import MissingDependency, RateLimited, SourceError
from listener.core.models import Page
from listener.core.query import Brand, parse
from listener.sources import rss
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.rss import RssSource, RssSourceConfig, feed_key, unwrap_google_redirect
from storage.db import load_cursor, open_db
from tests.fakes.feeds import (
    ATOM_TYPE,
    FakeFeedServer,
    atom_document,
    google_alerts_document,
    rss_document,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MODIFIED = datetime(2024, 5, 1, 11, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FakeFeedServer]:
    with FakeFeedServer() as fake:
        yield fake


def make_source(feeds: list[str], timeout: float = 5.0, **settings: Any) -> RssSource:
    config = RssSourceConfig(type="rss", name="feeds", feeds=feeds, **settings)
    return RssSource(config, SourceContext(clock=lambda: NOW, http_timeout=timeout))


def review(n: int, **extra: Any) -> dict[str, Any]:
    return {"title": f"Review {n}", "link": f"/reviews/{n}", "guid": f"review-{n}",
            "description": f"<p>Acme app, take {n}</p>",
            "published": MODIFIED - timedelta(minutes=n), **extra}


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for page in pages for post in page.posts]


def test_first_fetch_reads_rss_items(server: FakeFeedServer) -> None:
    server.set_feed("/reviews.xml", rss_document([
        review(1, creator="Jo", description="<p>Love <b>Acme</b> &amp; its app</p>"),
        review(2),
    ]))
    [page] = list(make_source([server.url("/reviews.xml")]).fetch(None))
    first = page.posts[0]
    assert (first.platform, first.platform_id, first.source) == ("rss", "review-1", "feeds")
    assert first.text == "Review 1\n\nLove Acme & its app"
    assert first.url == server.url("/reviews/1")  # relative link resolved against the feed
    assert first.created_at == MODIFIED - timedelta(minutes=1)
    assert (first.author, first.lang, first.kind) == ("Jo", "en", "mention")
    assert first.raw["feed"] == server.url("/reviews.xml")
    assert ids([page]) == ["review-1", "review-2"]
    key = feed_key(server.url("/reviews.xml"))
    assert page.cursor == {"version": 1, "feeds": {key: {
        "etag": None, "modified": None, "seen": ["review-1", "review-2"]}}}
    assert server.requests[0].headers["user-agent"].startswith("social-listener/")


def test_atom_entries_and_their_fallback_ids(server: FakeFeedServer) -> None:
    server.set_feed("/blog.atom", atom_document([
        {"id": "urn:post:1", "title": "Acme 2.0", "summary": "<p>Out <i>now</i></p>",
         "link": "https://blog.example/acme-2", "updated": MODIFIED, "author": "Ann"},
        {"title": "No id here", "link": "https://blog.example/no-id", "published": MODIFIED},
        {"title": "Neither id nor link", "published": MODIFIED},
    ]), content_type=ATOM_TYPE)
    [page] = list(make_source([server.url("/blog.atom")]).fetch(None))
    first, second, third = page.posts
    assert (first.platform_id, first.text, first.author) == ("urn:post:1",
                                                            "Acme 2.0\n\nOut now", "Ann")
    assert first.created_at == MODIFIED  # no published date: updated is used
    assert second.platform_id == "https://blog.example/no-id"
    assert third.platform_id.startswith("sha1:") and third.created_at == MODIFIED
    assert third.url is None


def test_google_alerts_links_are_unwrapped(server: FakeFeedServer) -> None:
    real = "https://news.example/acme-outage?id=7&src=x"
    server.set_feed("/alerts/feeds/1/2", google_alerts_document("acme", [{
        "id": "1234567890", "title": "<b>Acme</b> Cloud outage hits Europe", "url": real,
        "published": MODIFIED, "content": "The <b>Acme</b> outage lasted &quot;hours&quot;",
    }]), content_type=ATOM_TYPE)
    [page] = list(make_source([server.url("/alerts/feeds/1/2")]).fetch(None))
    [post] = page.posts
    assert post.url == real
    assert post.text == 'Acme Cloud outage hits Europe\n\nThe Acme outage lasted "hours"'
    assert post.platform_id == "tag:google.com,2013:googlealerts/feed:1234567890"
    assert post.author is None
    assert post.raw["original_link"].startswith("https://www.google.com/url?")


def test_unwrap_leaves_other_links_alone() -> None:
    assert unwrap_google_redirect("https://example.com/url?url=https://x") == \
        "https://example.com/url?url=https://x"
    assert unwrap_google_redirect("https://www.google.co.uk/url?q=https://x.example/a") == \
        "https://x.example/a"
    assert unwrap_google_redirect("https://www.google.com/url?url=javascript:alert(1)") == \
        "https://www.google.com/url?url=javascript:alert(1)"


def test_etag_answers_304_and_nothing_is_fetched_again(server: FakeFeedServer) -> None:
    server.set_feed("/f.xml", rss_document([review(1)]), etag='"v1"')
    url = server.url("/f.xml")
    cursor = list(make_source([url]).fetch(None))[-1].cursor
    assert cursor["feeds"][feed_key(url)]["etag"] == '"v1"'
    assert list(make_source([url]).fetch(cursor)) == []
    assert server.requests[-1].headers["if-none-match"] == '"v1"'


def test_last_modified_answers_304(server: FakeFeedServer) -> None:
    server.set_feed("/f.xml", rss_document([review(1)]), last_modified=MODIFIED)
    url = server.url("/f.xml")
    cursor = list(make_source([url]).fetch(None))[-1].cursor
    assert list(make_source([url]).fetch(cursor)) == []
    assert server.requests[-1].headers["if-modified-since"] == "Wed, 01 May 2024 11:00:00 GMT"


def test_a_new_instance_resumes_with_only_new_entries(server: FakeFeedServer) -> None:
    server.set_feed("/f.xml", rss_document([review(2), review(1)]), etag='"v1"')
    url = server.url("/f.xml")
    cursor = list(make_source([url]).fetch(None))[-1].cursor
    server.set_feed("/f.xml", rss_document([review(3), review(2), review(1)]), etag='"v2"')
    [page] = list(make_source([url]).fetch(cursor))  # a restart: fresh source, stored cursor
    assert ids([page]) == ["review-3"]
    assert page.cursor["feeds"][feed_key(url)]["etag"] == '"v2"'
    assert page.cursor["feeds"][feed_key(url)]["seen"] == ["review-3", "review-2", "review-1"]


def test_max_entries_spreads_a_long_feed_over_polls(server: FakeFeedServer) -> None:
    server.set_feed("/f.xml", rss_document([review(n) for n in range(1, 6)]), etag='"v1"')
    url = server.url("/f.xml")
    source = make_source([url], max_entries=2)
    got, cursor = [], None
    for _ in range(3):
        [page] = list(source.fetch(cursor))
        got.append(ids([page]))
        cursor = page.cursor
    assert got == [["review-1", "review-2"], ["review-3", "review-4"], ["review-5"]]
    # the validator is saved only once the whole feed is in; until then the feed is re-read
    assert [r.headers.get("if-none-match") for r in server.requests] == [None, None, None]
    assert cursor["feeds"][feed_key(url)]["etag"] == '"v1"'


def test_each_feed_is_its_own_page(server: FakeFeedServer) -> None:
    server.set_feed("/a.xml", rss_document([review(1)]))
    server.set_feed("/b.atom", atom_document([{"id": "urn:b:1", "title": "Acme B"}]),
                    content_type=ATOM_TYPE)
    pages = list(make_source([server.url("/a.xml"), server.url("/b.atom")]).fetch(None))
    assert [ids([p]) for p in pages] == [["review-1"], ["urn:b:1"]]
    assert len(pages[1].cursor["feeds"]) == 2


def test_empty_feed(server: FakeFeedServer) -> None:
    server.set_feed("/f.xml", rss_document([]))
    [page] = list(make_source([server.url("/f.xml")]).fetch(None))
    assert page.posts == [] and page.rejected == []


def test_429_raises_rate_limited_after_the_other_feeds(server: FakeFeedServer) -> None:
    server.enqueue("/busy.xml", 429, "slow down", headers={"Retry-After": "120"})
    server.set_feed("/ok.xml", rss_document([review(1)]))
    pages: list[Page] = []
    with pytest.raises(RateLimited) as caught:
        for page in make_source([server.url("/busy.xml"), server.url("/ok.xml")]).fetch(None):
            pages.append(page)
    assert caught.value.retry_after == 120
    assert ids(pages) == ["review-1"]
    assert "1 of 2 feed(s) failed" in str(caught.value)


def test_5xx_raises_and_leaves_that_feeds_cursor(server: FakeFeedServer, tmp_path: Path) -> None:
    bad, good = server.url("/bad.xml"), server.url("/good.xml")
    server.set_feed("/bad.xml", rss_document([review(1)]), etag='"b1"')
    server.set_feed("/good.xml", rss_document([review(5)]))
    db = open_db(tmp_path / "t.db")
    collect(db, make_source([bad, good]), lambda: NOW)
    before = load_cursor(db, "feeds")["feeds"][feed_key(bad)]
    server.set_feed("/bad.xml", rss_document([review(2), review(1)]), etag='"b2"')
    server.set_feed("/good.xml", rss_document([review(6), review(5)]))
    server.enqueue("/bad.xml", 503, "<html>down for maintenance</html>")
    with pytest.raises(SourceError, match="HTTP 503"):
        collect(db, make_source([bad, good]), lambda: NOW)
    after = load_cursor(db, "feeds")["feeds"]
    assert after[feed_key(bad)] == before
    assert "review-6" in after[feed_key(good)]["seen"]
    assert db["posts"].count == 3  # review-1, review-5, review-6
    assert collect(db, make_source([bad, good]), lambda: NOW) == 1  # review-2, next poll


def test_timeout_raises_source_error(server: FakeFeedServer) -> None:
    server.enqueue("/slow.xml", 200, rss_document([review(1)]), delay=2.0)
    with pytest.raises(SourceError, match="did not answer within 0.2s"):
        list(make_source([server.url("/slow.xml")], timeout=0.2).fetch(None))


@pytest.mark.parametrize("body,content_type", [
    ("<rss version='2.0'><channel><title>Acme reviews</title", "application/rss+xml"),
    ("garbage <<< not xml", "application/xml"),
    ("<html><body>Sign in to continue</body></html>", "text/html"),
    ("", "application/rss+xml"),
])
def test_unreadable_document_raises_source_error(server: FakeFeedServer, body: str,
                                                 content_type: str) -> None:
    server.set_feed("/f.xml", body, content_type=content_type)
    with pytest.raises(SourceError, match="could not be read as RSS or Atom"):
        list(make_source([server.url("/f.xml")]).fetch(None))


def test_malformed_feed_with_entries_is_used_with_a_warning(
    server: FakeFeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    document = rss_document([review(1), review(2)])
    server.set_feed("/f.xml", document.replace("</channel></rss>", "<item><title>cut"))
    with caplog.at_level(logging.WARNING, logger="listener.sources.rss"):
        pages = list(make_source([server.url("/f.xml")]).fetch(None))
    assert ids(pages)[:2] == ["review-1", "review-2"]
    assert "is malformed" in caplog.text


def test_entry_without_text_is_rejected_once(server: FakeFeedServer) -> None:
    server.set_feed("/f.xml", rss_document([review(1), {"guid": "empty-1",
                                                         "link": "https://x.example/e"}]))
    url = server.url("/f.xml")
    [page] = list(make_source([url]).fetch(None))
    assert ids([page]) == ["review-1"]
    [bad] = page.rejected
    assert bad.reason == "entry has neither a title nor a summary" and "empty-1" in bad.where
    [again] = list(make_source([url]).fetch(page.cursor))
    assert again.posts == [] and again.rejected == []


def test_duplicates_within_and_across_feeds_are_stored_once(
    server: FakeFeedServer, tmp_path: Path
) -> None:
    server.set_feed("/a.xml", rss_document([review(1), review(1), review(2)]))
    server.set_feed("/b.xml", rss_document([review(2)]))
    pages = list(make_source([server.url("/a.xml"), server.url("/b.xml")]).fetch(None))
    assert [ids([p]) for p in pages] == [["review-1", "review-2"], ["review-2"]]
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source([server.url("/a.xml"), server.url("/b.xml")]),
                   lambda: NOW) == 2


def test_redirects_are_followed_up_to_five(server: FakeFeedServer) -> None:
    server.set_feed("/final.xml", rss_document([review(1)]))
    for hop in range(6):
        server.redirect(f"/hop{hop}", f"/hop{hop + 1}" if hop < 5 else "/final.xml")
    assert ids(list(make_source([server.url("/hop1")]).fetch(None))) == ["review-1"]
    with pytest.raises(SourceError, match="redirects more than 5 times"):
        list(make_source([server.url("/hop0")]).fetch(None))


def test_oversized_feed_is_refused(server: FakeFeedServer) -> None:
    server.set_feed("/big.xml", rss_document([review(n) for n in range(100)]))
    with pytest.raises(SourceError, match="larger than max_bytes"):
        list(make_source([server.url("/big.xml")], max_bytes=2048).fetch(None))


def test_a_token_in_the_feed_url_is_never_stored(server: FakeFeedServer, tmp_path: Path) -> None:
    url = server.url("/private.xml?token=s3cr3t-t0ken")
    server.set_feed("/private.xml?token=s3cr3t-t0ken", rss_document([review(1)]))
    db = open_db(tmp_path / "t.db")
    collect(db, make_source([url]), lambda: NOW)
    stored = json.dumps(load_cursor(db, "feeds")) + json.dumps([r for r in db["posts"].rows])
    assert "s3cr3t" not in stored
    server.enqueue("/private.xml?token=s3cr3t-t0ken", 500, "boom")
    with pytest.raises(SourceError) as caught:
        collect(db, make_source([url]), lambda: NOW)
    assert "s3cr3t" not in str(caught.value) and "/private.xml" in str(caught.value)


def test_collect_stores_posts_saves_cursor_and_adds_nothing_twice(
    server: FakeFeedServer, tmp_path: Path
) -> None:
    brands = (Brand("acme", "acme", parse("acme -giveaway")),)
    server.set_feed("/f.xml", rss_document([
        {"guid": "1", "title": "Acme is great", "description": "really"},
        {"guid": "2", "title": "Acme giveaway", "description": "win"},
        {"guid": "3", "title": "Unrelated", "description": "nothing"},
    ]), etag='"v1"')
    db = open_db(tmp_path / "t.db")
    source = make_source([server.url("/f.xml")], brands=["acme"])
    assert collect(db, source, lambda: NOW, brands=brands) == 1  # the brands filter locally
    assert [(r["platform_id"], r["brand"]) for r in db["posts"].rows] == [("1", "acme")]
    assert load_cursor(db, "feeds")["feeds"][feed_key(server.url("/f.xml"))]["etag"] == '"v1"'
    assert collect(db, make_source([server.url("/f.xml")]), lambda: NOW, brands=brands) == 0
    assert server.requests[-1].headers["if-none-match"] == '"v1"'


def test_missing_feedparser_is_a_named_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rss, "feedparser", None)  # as when the import failed
    with pytest.raises(MissingDependency, match=r"social-listener\[rss\]"):
        make_source(["https://example.com/feed"])


@pytest.mark.parametrize("feeds,message", [
    ([], "at least 1 item"),
    (["ftp://example.com/feed"], "feed 0 is not an http"),
    (["https://a.example/f", "https://a.example/f"], "listed twice"),
])
def test_bad_feed_lists_are_refused(feeds: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RssSourceConfig(type="rss", name="feeds", feeds=feeds)
