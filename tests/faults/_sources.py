"""Each network source with its fake, built the way a config file builds it, for the fault matrix.

:class:`SourceRun` writes a config (one brand ``acme``, one source pointing at the fake,
``page_deadline`` :data:`DEADLINE`), builds a :class:`~listener.pipeline.Runtime` on a real
SQLite file with a clock the test moves (and a ``sleep`` that returns at once: nothing of
ours waits in real time), and polls through ``Runtime.run_collect``, the stage
the daemon and ``run --once`` run. It reads back what the database shows: the posts, the saved
cursor, the pause in ``source_state`` and the last run's error.

Every source's real client library does the talking (tweepy, praw, httpx, Mastodon.py, atproto,
feedparser over httpx, urllib under google-play-scraper, google-api-python-client over httpx);
only the far end is fake. Issue 19's sources add their entries from their own modules
(``tests/faults/platform_*.py``), next to their fakes' helpers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from listener.config import load_config
from listener.core.models import parse_iso
from listener.pipeline import Runtime
from storage import db as store
from tests.fakes import (
    appstore_api,
    bluesky_api,
    feeds,
    googleplay_api,
    hn_api,
    mastodon_api,
    reddit_api,
    x_api,
)
from tests.fakes.base import Fault
from tests.fakes.chaos import Chaos
from tests.faults import (
    platform_discourse,
    platform_github,
    platform_meta,
    platform_stackexchange,
    platform_trustpilot,
    platform_youtube,
)
from tests.faults.platform import Platform

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEADLINE = 2.0
"""``page_deadline`` of every source under test: drip and hang end here."""
CUT_GRACE = 1.5
"""Seconds past the deadline a poll that the deadline cut may take (closing, the run record)."""
GRACE = 4.5
"""Seconds past the deadline any other failed poll may take: a library's own short retries
(prawcore retries 5xx and resets twice, sleeping up to 6 s in all)."""
SMALL_CAP = 64 * 1024
"""``max_bytes`` of a source under the ``oversized`` kind (only: a dripped body is larger)."""
OVERSIZED = 1024 * 1024
"""Bytes of an oversized answer: far past :data:`SMALL_CAP`, small enough to serve fast."""
DEFAULT_PAUSE = 60.0
"""Seconds a source pauses on a 429 that names no Retry-After (``listener.sources.http``'s
``DEFAULT_WAIT``, the collect stage's fallback too)."""
APP_ID, PLAY_ID = "284882215", "com.acme.app"
ENV = {"X_BEARER_TOKEN": x_api.TOKEN, "REDDIT_CLIENT_ID": reddit_api.CLIENT_ID,
       "REDDIT_CLIENT_SECRET": reddit_api.CLIENT_SECRET}


class Clock:
    """The runtime's clock: it moves only when a test moves it (past a pause)."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _tweet(fake: x_api.FakeXApi, number: int, at: datetime) -> None:
    fake.add_tweet(str(1790000000000000000 + number), f"acme cloud is down again ({number})",
                   created_at=at.strftime("%Y-%m-%dT%H:%M:%S.000Z"))


def _submission(fake: reddit_api.FakeReddit, number: int, at: datetime) -> None:
    fake.add(reddit_api.submission(f"p{number}", "technology", f"acme cloud outage {number}",
                                   created_utc=at.timestamp()))


def _story(fake: hn_api.FakeHNSearch, number: int, at: datetime) -> None:
    fake.add(hn_api.story(40000000 + number, int(at.timestamp()), f"Acme is down ({number})"))


def _status(fake: mastodon_api.FakeMastodon, number: int, at: datetime) -> None:
    fake.add_status(f"<p>acme cloud is down ({number})</p>", tags=["acme"], created_at=at)


def _skeet(fake: bluesky_api.FakeBluesky, number: int, at: datetime) -> None:
    fake.add_post(f"acme cloud is down ({number})", created_at=at)


def _feed_item(fake: feeds.FakeFeedServer, number: int, at: datetime) -> None:
    items = fake.__dict__.setdefault("fault_items", [])  # the whole feed is served each time
    items.insert(0, {"guid": f"acme-{number}", "title": f"acme outage {number}",
                     "description": "<p>down again</p>", "link": f"https://blog.example/{number}",
                     "published": at})
    fake.set_feed("/feed.xml", feeds.rss_document(items))


def _ios_review(fake: appstore_api.FakeAppStore, number: int, at: datetime) -> None:
    fake.add_reviews("us", APP_ID, [appstore_api.review(
        str(9000 + number), at, title=f"acme {number}", content="it crashes on start")])


def _play_review(fake: googleplay_api.FakeGooglePlay, number: int, at: datetime) -> None:
    fake.add_reviews(PLAY_ID, [googleplay_api.play_review(
        f"gp:acme-{number}", at, text=f"acme crashes on start ({number})")])


PLATFORMS: dict[str, Platform] = {
    "x": Platform(
        "x", x_api.FakeXApi,
        lambda f: f'type: x, name: x, base_url: "{f.base_url}", '
                  'bearer_token: {"$env": X_BEARER_TOKEN}',
        _tweet),
    "reddit": Platform(
        "reddit", reddit_api.FakeReddit,
        lambda f: f'type: reddit, name: reddit, base_url: "{f.base_url}", '
                  f'oauth_url: "{f.base_url}", client_id: {{"$env": REDDIT_CLIENT_ID}}, '
                  'client_secret: {"$env": REDDIT_CLIENT_SECRET}',
        _submission),
    "hackernews": Platform(
        "hn", hn_api.FakeHNSearch,
        lambda f: f'type: hackernews, name: hn, base_url: "{f.base_url}"',
        _story),
    "mastodon": Platform(
        "masto", mastodon_api.FakeMastodon,
        lambda f: f'type: mastodon, name: masto, base_url: "{f.base_url}", hashtags: [acme]',
        _status),
    "bluesky": Platform(
        "sky", bluesky_api.FakeBluesky,
        lambda f: f'type: bluesky, name: sky, base_url: "{f.base_url}", '
                  f'login_url: "{f.base_url}"',
        _skeet),
    "rss": Platform(
        "feeds", feeds.FakeFeedServer,
        lambda f: f'type: rss, name: feeds, feeds: ["{f.url("/feed.xml")}"]',
        _feed_item),
    "appstore": Platform(
        "ios", appstore_api.FakeAppStore,
        lambda f: f'type: appstore, name: ios, base_url: "{f.base_url}", '
                  f'apps: [{{app_id: "{APP_ID}"}}]',
        _ios_review),
    "googleplay": Platform(
        "play", googleplay_api.FakeGooglePlay,
        lambda f: f'type: googleplay, name: play, base_url: "{f.base_url}", '
                  f'apps: [{{app_id: {PLAY_ID}}}]',
        _play_review),
}

# issue 19's sources, each beside its fake's helpers (one module a platform)
for _more in (platform_youtube, platform_trustpilot, platform_meta, platform_discourse,
              platform_stackexchange, platform_github):
    PLATFORMS.update(_more.PLATFORMS)


class Served:
    """A ``fake.faults`` callable around :class:`Chaos` that keeps every fault it answered (the
    test needs the Retry-After a 429 named)."""

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        self.faults: list[Fault] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str) -> Fault | None:
        fault = self.chaos(method, path)
        if fault is not None:
            with self._lock:
                self.faults.append(fault)
        return fault

    def retry_after(self) -> float | None:
        """The Retry-After of the last fault answered (the one the source saw last)."""
        with self._lock:
            value = self.faults[-1].headers.get("Retry-After") if self.faults else None
        return float(value) if value is not None else None


@dataclass(frozen=True)
class Poll:
    """One ``run_collect``: what it returned, how long it took, the run's recorded error."""

    result: int | None
    seconds: float
    error: str | None


class SourceRun:
    """One source from a config file, its runtime, and what its database shows."""

    def __init__(self, platform: Platform, fake: Any, folder: Path, *,
                 max_bytes: int | None = None) -> None:
        self.platform, self.fake, self.folder = platform, fake, folder
        self.clock = Clock()
        extra = f", max_bytes: {max_bytes}" if max_bytes is not None else ""
        path = folder / "config.yaml"
        path.write_text(
            "storage: {path: t.db}\nbrands: [{name: acme, query: acme}]\nsources:\n"
            f"  - {{{platform.entry(fake)}, page_deadline: {DEADLINE:g}{extra}}}\n",
            encoding="utf-8")
        self.runtime = Runtime(load_config(path, environ={**ENV, **platform.env}), clock=self.clock,
                               sleep=lambda _seconds: None)
        self.runtime.migrate()
        [self.source] = self.runtime.sources()

    def publish(self, number: int, minutes_ago: float) -> None:
        self.platform.publish(self.fake, number, NOW - timedelta(minutes=minutes_ago))

    def poll(self) -> Poll:
        started = time.monotonic()
        result = self.runtime.run_collect(self.source)
        seconds = time.monotonic() - started
        row = self._query("SELECT error FROM runs WHERE stage = 'collect' AND target = ? "
                          "ORDER BY id DESC LIMIT 1", [self.platform.name])
        return Poll(result, seconds, row[0][0] if row else None)

    def cursor(self) -> Any:
        db = store.open_db(self.folder / "t.db")
        try:
            return store.load_cursor(db, self.platform.name)
        finally:
            db.close()

    def stored(self) -> list[tuple[str, str]]:
        """(platform, platform_id) of every stored post, repeats included, sorted."""
        return sorted((r[0], r[1]) for r in self._query(
            "SELECT platform, platform_id FROM posts", []))

    def paused_until(self) -> datetime | None:
        rows = self._query("SELECT paused_until FROM source_state WHERE source = ?",
                           [self.platform.name])
        return parse_iso(rows[0][0]) if rows and rows[0][0] else None

    def rejects(self) -> int:
        return int(self._query("SELECT count(*) FROM rejects", [])[0][0])

    def close(self) -> None:
        getattr(self.source, "close", lambda: None)()
        self.runtime.close()

    def _query(self, sql: str, params: list[Any]) -> list[Any]:
        db = store.open_db(self.folder / "t.db")
        try:
            return list(db.execute(sql, params).fetchall())
        finally:
            db.close()
