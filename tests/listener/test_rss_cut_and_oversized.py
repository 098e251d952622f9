"""The RSS source with documents cut off mid-entry (issue 14 item 5) and documents too large to
read (item 11), over real HTTP against the feeds fake, stored through the collect stage."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from listener.core.errors import SourceError
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.rss import CUT_READS, RssSource, RssSourceConfig, feed_key
from storage.db import load_cursor
from tests.fakes.feeds import FakeFeedServer, rss_document

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FULL = "Acme charged me twice for the annual plan and support closed my refund ticket"


@pytest.fixture
def server() -> Iterator[FakeFeedServer]:
    with FakeFeedServer() as fake:
        yield fake


def make_source(url: str, **settings: Any) -> RssSource:
    config = RssSourceConfig(type="rss", name="feeds", feeds=[url], **settings)
    return RssSource(config, SourceContext(clock=lambda: NOW, http_timeout=5.0))


def review(n: int, description: str | None = None) -> dict[str, Any]:
    return {"title": f"Review {n}", "guid": f"review-{n}", "link": f"https://r.example/{n}",
            "description": description or f"Acme app, take {n}",
            "published": NOW - timedelta(hours=n)}


def whole() -> str:
    return rss_document([review(1), review(2), review(3, FULL)])


def cut() -> str:
    """The same document, cut off in the middle of the last entry's description."""
    document = whole()
    return document[:document.index("refund ticket")]


def stored(db: Any) -> dict[str, str]:
    return {row["platform_id"]: row["text"] for row in db["posts"].rows}


def poll(db: Any, url: str) -> int:
    return collect(db, make_source(url), lambda: NOW)


def test_a_cut_entry_is_stored_with_its_full_text_once_the_feed_is_whole(
    server: FakeFeedServer, db: Any
) -> None:
    url = server.url("/reviews.xml")
    server.set_feed("/reviews.xml", cut(), etag='"v1"')
    assert poll(db, url) == 2
    assert set(stored(db)) == {"review-1", "review-2"}  # the cut entry is held back
    state = load_cursor(db, "feeds")["feeds"][feed_key(url)]
    assert "review-3" not in state["seen"] and state["etag"] is None  # read again next poll
    # the server serves the whole document now, under the same (broken) ETag
    server.set_feed("/reviews.xml", whole(), etag='"v1"')
    assert poll(db, url) == 1
    assert stored(db)["review-3"] == f"Review 3\n\n{FULL}"
    assert "if-none-match" not in server.requests[-1].headers
    assert poll(db, url) == 0  # and nothing twice; now the ETag is kept
    assert server.requests[-1].headers.get("if-none-match") == '"v1"'


def test_a_feed_that_is_always_cut_still_delivers_its_last_entry(
    server: FakeFeedServer, db: Any
) -> None:
    url = server.url("/broken.xml")
    server.set_feed("/broken.xml", cut())
    counts = [poll(db, url) for _ in range(CUT_READS + 1)]
    assert counts == [2] + [0] * (CUT_READS - 2) + [1, 0]  # held CUT_READS - 1 reads, then taken
    # with what the cut document had of it: a title, its id the link (the guid came after the cut)
    assert stored(db)["https://r.example/3"] == "Review 3"


def test_a_different_cut_entry_starts_the_count_again(server: FakeFeedServer, db: Any) -> None:
    url = server.url("/f.xml")
    server.set_feed("/f.xml", cut())
    assert poll(db, url) == 2
    longer = rss_document([review(4), review(1), review(2), review(3, FULL), review(5)])
    server.set_feed("/f.xml", longer[:longer.rindex("Acme app, take 5")])  # now 5 is the cut one
    assert poll(db, url) == 2  # review-4 and, read whole this time, review-3
    assert stored(db)["review-3"].endswith("refund ticket") and "review-5" not in stored(db)


def test_a_malformed_but_whole_document_is_used_at_once(server: FakeFeedServer, db: Any) -> None:
    """Malformed in the middle (an undeclared entity) but ending with ``</rss>``: nothing was
    cut off, so no entry waits."""
    document = whole().replace("Acme app, take 2", "Acme &nbsp; app, take 2")
    server.set_feed("/f.xml", document)
    assert poll(db, server.url("/f.xml")) == 3


def test_an_oversized_feed_fails_its_poll_and_the_next_normal_one_works(
    server: FakeFeedServer, db: Any
) -> None:
    url = server.url("/big.xml")
    server.set_feed("/big.xml", whole())
    huge = rss_document([review(n, "x" * 1000) for n in range(3000)])  # ~3 MB
    server.enqueue("/big.xml", 200, huge, headers={"Content-Type": "application/rss+xml"})
    with pytest.raises(SourceError, match=r"larger than max_bytes \(1048576 bytes\)"):
        collect(db, make_source(url, max_bytes=1024 * 1024), lambda: NOW)
    assert db["posts"].count == 0 and load_cursor(db, "feeds") is None  # the cursor stays
    assert collect(db, make_source(url, max_bytes=1024 * 1024), lambda: NOW) == 3


def test_a_compressed_bomb_is_cut_at_max_bytes_decompressed(server: FakeFeedServer) -> None:
    """64 KB of gzip that would inflate to 64 MB: the guard counts decompressed bytes."""
    bomb = gzip.compress(b"<rss>" + b" " * 64 * 1024 * 1024, compresslevel=9)
    assert len(bomb) < 128 * 1024
    server.enqueue("/bomb.xml", 200, bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(SourceError) as caught:
        list(make_source(server.url("/bomb.xml"), max_bytes=1024 * 1024).fetch(None))
    assert "larger than max_bytes (1048576 bytes)" in str(caught.value)


def test_a_gzip_feed_is_read_as_usual(server: FakeFeedServer) -> None:
    server.enqueue("/z.xml", 200, gzip.compress(whole().encode()),
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"})
    [page] = list(make_source(server.url("/z.xml")).fetch(None))
    assert [p.platform_id for p in page.posts] == ["review-1", "review-2", "review-3"]
    assert server.requests[-1].headers["accept-encoding"] == "gzip, deflate"


def test_an_old_cursor_without_held_entries_still_loads(server: FakeFeedServer) -> None:
    url = server.url("/f.xml")
    server.set_feed("/f.xml", whole())
    cursor = {"version": 1, "feeds": {feed_key(url): {"etag": None, "modified": None,
                                                      "seen": ["review-1"]}}}
    [page] = list(make_source(url).fetch(json.loads(json.dumps(cursor))))
    assert [p.platform_id for p in page.posts] == ["review-2", "review-3"]
