"""Every HTTP source through the network guard, against hostile fakes on 127.0.0.1 (issue 14, items
8 and 11): no redirect reaches a private address, no answer is read past ``max_bytes``.

Each source is built the way a config would build it, its base URL (or feed) pointing at a fake;
its real client library (httpx, atproto, requests under tweepy / praw / Mastodon.py, urllib under
google-play-scraper) does the talking.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from listener.core.errors import SourceError
from listener.core.query import Brand, parse
from listener.sources.appstore import AppStoreSource, AppStoreSourceConfig
from listener.sources.base import SourceContext
from listener.sources.bluesky.source import BlueskySource, BlueskySourceConfig
from listener.sources.googleplay import GooglePlaySource, GooglePlaySourceConfig
from listener.sources.hackernews import HackerNewsSource, HackerNewsSourceConfig
from listener.sources.mastodon.source import MastodonSource, MastodonSourceConfig
from listener.sources.reddit.source import RedditSource, RedditSourceConfig
from listener.sources.rss import RssSource, RssSourceConfig
from listener.sources.x.source import XSource, XSourceConfig
from tests.fakes.hostile import METADATA_URL, EndlessBody, Recorder, Redirector

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ACME = Brand("acme", "acme", parse("acme"))
CTX = SourceContext(clock=lambda: NOW, http_timeout=3.0, brands=(ACME,))
CAP = 256 * 1024

Make = Callable[..., Any]


def rss(url: str, **settings: Any) -> RssSource:
    return RssSource(RssSourceConfig(type="rss", name="feeds", feeds=[url + "/feed.xml"],
                                     **settings), CTX)


def hackernews(url: str, **settings: Any) -> HackerNewsSource:
    return HackerNewsSource(HackerNewsSourceConfig(type="hackernews", name="hn", base_url=url,
                                                   **settings), CTX)


def appstore(url: str, **settings: Any) -> AppStoreSource:
    return AppStoreSource(AppStoreSourceConfig(type="appstore", name="ios", base_url=url,
                                               apps=[{"app_id": "284882215"}], **settings), CTX)


def bluesky(url: str, **settings: Any) -> BlueskySource:
    return BlueskySource(BlueskySourceConfig(type="bluesky", name="sky", base_url=url,
                                             login_url=url, **settings), CTX)


def mastodon(url: str, **settings: Any) -> MastodonSource:
    return MastodonSource(MastodonSourceConfig(type="mastodon", name="masto", base_url=url,
                                               hashtags=["acme"], **settings), CTX)


def reddit(url: str, **settings: Any) -> RedditSource:
    return RedditSource(RedditSourceConfig(
        type="reddit", name="rd", client_id="app-id", client_secret="app-secret-value",
        base_url=url, oauth_url=url, **settings), CTX)


def x(url: str, **settings: Any) -> XSource:
    return XSource(XSourceConfig(type="x", name="x-main", bearer_token="bearer-token-value",
                                 base_url=url, **settings), CTX)


def googleplay(url: str, **settings: Any) -> GooglePlaySource:
    return GooglePlaySource(GooglePlaySourceConfig(
        type="googleplay", name="android", apps=[{"app_id": "com.acme.app"}], base_url=url,
        **settings), CTX)


FOLLOWING = [rss, bluesky, mastodon, reddit, x, googleplay]
"""Sources whose client library follows redirects (Reddit: prawcore's token request)."""
NOT_FOLLOWING = [hackernews, appstore]
"""httpx clients left at httpx's default: a redirect is an unwanted answer, never followed."""
ALL = FOLLOWING + NOT_FOLLOWING


def poll(source: Any) -> SourceError:
    """One poll that must fail; the error it failed with."""
    with pytest.raises(SourceError) as caught:
        list(source.fetch(None))
    close = getattr(source, "close", None)
    if close is not None:
        close()
    return caught.value


@pytest.fixture
def target() -> Iterator[Recorder]:
    """Another service on this machine (another port): what a redirect must never reach."""
    with Recorder() as fake:
        yield fake


@pytest.mark.parametrize("make", FOLLOWING, ids=lambda m: m.__name__)
def test_a_redirect_to_the_metadata_address_is_refused(make: Make) -> None:
    with Redirector(METADATA_URL) as origin:
        error = poll(make(origin.base_url))
    assert origin.requests, "the configured host was asked first"
    assert "refused" in str(error) and "169.254.169.254" in str(error)
    assert "SSRF guard" in str(error) and "allow_private" in str(error)
    assert "/latest/meta-data" not in str(error)  # the origin only, never a path or query


@pytest.mark.parametrize("make", FOLLOWING, ids=lambda m: m.__name__)
def test_a_redirect_to_another_loopback_port_is_refused(make: Make, target: Recorder) -> None:
    with Redirector(target.base_url + "/admin/secrets") as origin:
        error = poll(make(origin.base_url))
    assert origin.requests and target.requests == []  # nothing fetched from the target
    assert f"127.0.0.1:{target.port} refused" in str(error) and "SSRF guard" in str(error)


@pytest.mark.parametrize("make", NOT_FOLLOWING, ids=lambda m: m.__name__)
def test_sources_that_do_not_follow_redirects_never_reach_the_target(
    make: Make, target: Recorder
) -> None:
    with Redirector(target.base_url + "/admin") as origin:
        error = poll(make(origin.base_url))
    assert origin.requests and target.requests == []
    assert "HTTP 302" in str(error)


@pytest.mark.parametrize("make", FOLLOWING, ids=lambda m: m.__name__)
def test_allow_private_lets_a_redirect_reach_the_intranet(make: Make, target: Recorder) -> None:
    with Redirector(target.base_url + "/intranet") as origin:
        try:
            list(make(origin.base_url, allow_private=True).fetch(None))
        except Exception:  # noqa: BLE001 - the recorder's `{}` is no platform answer (prawcore
            pass  # raises KeyError on it): reaching the recorder is the point
    assert target.requests, "allow_private: true follows the redirect"


@pytest.mark.parametrize("make", ALL, ids=lambda m: m.__name__)
def test_an_endless_answer_fails_the_poll_at_max_bytes(make: Make) -> None:
    """The body never ends: the poll stops reading past the cap, says why, and never holds
    more than about the cap in memory (an unguarded client reads until the fake's 64 MiB stop
    and then fails on garbage, or grows for ever)."""
    with EndlessBody(limit=64 * 1024 * 1024) as server:
        source = make(server.base_url, max_bytes=CAP)
        tracing = tracemalloc.is_tracing()
        tracemalloc.start()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        try:
            error = poll(source)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            if not tracing:
                tracemalloc.stop()
        assert server.wait_hung_up(), "the client stopped reading and hung up"
    assert "larger than max_bytes" in str(error) and f"({CAP} bytes)" in str(error)
    assert server.sent < 32 * 1024 * 1024  # what the socket buffers took, not the 64 MiB
    assert peak - before < 24 * CAP  # about the cap, a few chunks and the library: never the body


@pytest.mark.parametrize("make", ALL, ids=lambda m: m.__name__)
def test_max_bytes_is_a_setting_of_every_http_source(make: Make) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        make("http://127.0.0.1:9", max_bytes=10)  # at least 1024
