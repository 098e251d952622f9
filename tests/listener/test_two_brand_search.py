"""Issue 13 item 2: a post that two brands' searches both return is never lost.

Platform search is looser than our queries (stemming, plurals, hashtags): brand ``google``'s
search returns "miss #googleplus already", which only brand ``gplus``'s query accepts. A source
hands a post out once per poll, so whether the post is kept must be decided over EVERY brand,
and a post both queries accept is attributed to both.

For every searching source (``searches = True``: X, Reddit, Hacker News, Mastodon, Bluesky) this
runs the real source class and its real client library (tweepy, praw, httpx, Mastodon.py,
atproto) against the fake on 127.0.0.1, the real collect stage (``Runtime.run_collect`` from a
config file) and a real SQLite database. Each search of both brands returns the post: the fakes
search by substring ("google" is in "#googleplus"); the fake X API returns a post for every query.
Each test runs with either brand configured, and therefore searched, first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.config import load_config
from listener.pipeline import Runtime
from storage.db import open_db
from storage.trends import Period, counts_by, total
from tests.fakes import bluesky_api, hn_api, mastodon_api, reddit_api, x_api
from tests.fakes.base import FakeHTTPServer

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
QUERIES = {"google": "google", "gplus": "googleplus OR #googleplus"}
ONLY_GPLUS = "miss #googleplus already"  # google's search returns it, google's query does not
BOTH = "google killed googleplus"  # both queries accept it
ENV = {"X_BEARER_TOKEN": x_api.TOKEN, "REDDIT_CLIENT_ID": reddit_api.CLIENT_ID,
       "REDDIT_CLIENT_SECRET": reddit_api.CLIENT_SECRET, "MASTODON_ACCESS_TOKEN": "masto-token"}
ORDERS = [pytest.param(("google", "gplus"), id="google-first"),
          pytest.param(("gplus", "google"), id="gplus-first")]


@dataclass(frozen=True)
class Platform:
    """How to run one searching source against its fake: start the fake, configure the source,
    publish a post (``number`` makes its id, ``at`` its time; returns its ``platform_id``)."""

    start: Callable[[], FakeHTTPServer]
    source: Callable[[Any], str]  # the source's entry under `sources:` (YAML flow mapping)
    publish: Callable[[Any, int, str, datetime], str]


def _tweet(fake: x_api.FakeXApi, number: int, text: str, at: datetime) -> str:
    tweet_id = str(1790000000000000000 + number)
    fake.add_tweet(tweet_id, text, created_at=at.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    return tweet_id


def _submission(fake: reddit_api.FakeReddit, number: int, text: str, at: datetime) -> str:
    fake.add(reddit_api.submission(f"p{number}", "technology", text, created_utc=at.timestamp()))
    return f"t3_p{number}"


def _story(fake: hn_api.FakeHNSearch, number: int, text: str, at: datetime) -> str:
    fake.add(hn_api.story(40000000 + number, int(at.timestamp()), text))
    return str(40000000 + number)


def _status(fake: mastodon_api.FakeMastodon, number: int, text: str, at: datetime) -> str:
    return str(fake.add_status(f"<p>{text}</p>", created_at=at)["uri"])


def _skeet(fake: bluesky_api.FakeBluesky, number: int, text: str, at: datetime) -> str:
    return str(fake.add_post(text, created_at=at)["uri"])


PLATFORMS = {
    "x": Platform(
        x_api.FakeXApi,
        lambda fake: f'{{type: x, name: x, base_url: "{fake.base_url}", '
                     'bearer_token: {"$env": X_BEARER_TOKEN}}',
        _tweet),
    "reddit": Platform(
        reddit_api.FakeReddit,
        lambda fake: f'{{type: reddit, name: reddit, base_url: "{fake.base_url}", '
                     f'oauth_url: "{fake.base_url}", client_id: {{"$env": REDDIT_CLIENT_ID}}, '
                     'client_secret: {"$env": REDDIT_CLIENT_SECRET}}',
        _submission),
    "hackernews": Platform(
        hn_api.FakeHNSearch,
        lambda fake: f'{{type: hackernews, name: hn, base_url: "{fake.base_url}"}}',
        _story),
    "mastodon": Platform(
        lambda: mastodon_api.FakeMastodon(access_token=ENV["MASTODON_ACCESS_TOKEN"]),
        lambda fake: f'{{type: mastodon, name: masto, base_url: "{fake.base_url}", search: true, '
                     'access_token: {"$env": MASTODON_ACCESS_TOKEN}}',
        _status),
    "bluesky": Platform(
        bluesky_api.FakeBluesky,
        lambda fake: f'{{type: bluesky, name: sky, base_url: "{fake.base_url}"}}',
        _skeet),
}


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes are local: a proxy from the environment must not sit in between."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Setup:
    """One platform's fake, running, and the folder holding the config and the database."""

    platform: Platform
    fake: Any
    folder: Path

    def publish(self, number: int, text: str, minutes_ago: int) -> str:
        return self.platform.publish(self.fake, number, text, NOW - timedelta(minutes=minutes_ago))

    def runtime(self, brands: tuple[str, ...]) -> Runtime:
        """A fresh runtime (as a new `listener run --once` builds) with ``brands`` in this
        order, the source searching all of them."""
        listed = "\n".join(f"  - {{name: {b}, query: '{QUERIES[b]}'}}" for b in brands)
        path = self.folder / "config.yaml"
        path.write_text(f"storage: {{path: t.db}}\nbrands:\n{listed}\n"
                        f"sources:\n  - {self.platform.source(self.fake)}\n", encoding="utf-8")
        runtime = Runtime(load_config(path, environ=ENV), clock=lambda: NOW, strict=True)
        runtime.migrate()
        return runtime

    def collect(self, brands: tuple[str, ...]) -> int:
        """One poll of the source through the real collect stage; how many posts were new."""
        runtime = self.runtime(brands)
        [source] = runtime.sources()
        try:
            new = runtime.run_collect(source)
        finally:
            getattr(source, "close", lambda: None)()
        assert new is not None
        return new

    def stored(self) -> dict[str, tuple[str, set[str]]]:
        """platform_id -> (posts.brand, the brands in post_extra_brands), from the database."""
        db = open_db(self.folder / "t.db")
        try:
            rows = db.execute("SELECT p.platform_id, p.brand, (SELECT group_concat(e.brand) FROM"
                              " post_extra_brands e WHERE e.post_id = p.id) FROM posts p")
            return {pid: (brand, set(extra.split(",")) if extra else set())
                    for pid, brand, extra in rows.fetchall()}
        finally:
            db.close()

    def counts(self) -> tuple[dict[str, int], int]:
        """The trends: posts per brand, and posts in all, over the last day."""
        db = open_db(self.folder / "t.db")
        try:
            period = Period.ending(NOW, 24)
            per_brand = {b: c.total for b, c in counts_by(db, period, "hour", "brand").items()}
            return per_brand, total(counts_by(db, period, "hour", "bucket")).total
        finally:
            db.close()


@pytest.fixture(params=list(PLATFORMS))
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    platform = PLATFORMS[request.param]
    with platform.start() as fake:
        yield Setup(platform, fake, tmp_path)


def fetched_ids(setup: Setup, brand: str) -> set[str]:
    """What this brand's search alone returns, through the source (nothing is stored)."""
    [source] = setup.runtime((brand,)).sources()
    try:
        return {post.platform_id for page in source.fetch(None) for post in page.posts}
    finally:
        getattr(source, "close", lambda: None)()


def test_both_brands_searches_return_both_posts(setup: Setup) -> None:
    """The premise of the tests below: the platform's search is looser than our queries."""
    posts = {setup.publish(1, ONLY_GPLUS, 10), setup.publish(2, BOTH, 5)}
    assert fetched_ids(setup, "google") == posts
    assert fetched_ids(setup, "gplus") == posts


@pytest.mark.parametrize("brands", ORDERS)
def test_a_post_only_one_brands_query_accepts_is_stored_for_that_brand(
    setup: Setup, brands: tuple[str, str],
) -> None:
    post = setup.publish(1, ONLY_GPLUS, 10)
    assert setup.collect(brands) == 1
    assert setup.stored() == {post: ("gplus", set())}
    assert setup.collect(brands) == 0  # a later run adds nothing and loses nothing
    assert setup.stored() == {post: ("gplus", set())}


@pytest.mark.parametrize("brands", ORDERS)
def test_a_post_both_queries_accept_is_stored_once_for_both_brands(
    setup: Setup, brands: tuple[str, str],
) -> None:
    post = setup.publish(2, BOTH, 5)
    first, other = brands  # the brand whose search found it first is its `brand`
    assert setup.collect(brands) == 1
    assert setup.stored() == {post: (first, {other})}
    assert setup.counts() == ({"google": 1, "gplus": 1}, 1)  # each brand counts it; once in all
    assert setup.collect(brands) == 0
    assert setup.stored() == {post: (first, {other})}
    assert setup.counts() == ({"google": 1, "gplus": 1}, 1)
