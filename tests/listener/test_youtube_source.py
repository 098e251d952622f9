"""The YouTube source against a fake YouTube Data API v3 over real HTTP (127.0.0.1), through the
real google-api-python-client and the source's guarded transport."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.core.errors import ConfigError, MissingDependency, RateLimited, SourceError
from listener.core.models import Page, Post
from listener.core.query import Brand, parse
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.youtube import YouTubeSource
from listener.sources.youtube.api import next_reset
from listener.sources.youtube.items import youtube_query
from listener.sources.youtube.source import YouTubeSourceConfig
from storage.db import load_cursor, open_db
from tests.e2e import NEGATIVE
from tests.fakes.youtube_api import KEY, FakeYouTube, error
from tests.sources.e2e import run_once_into_alert

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 04:00 in Los Angeles (PST)
CHANNEL = "UCacmeAcmeAcmeAcme000001"
OTHER = "UCuploaderUploader000002"
VIDEO = "acmeVideo01"
ACME = Brand("acme", "acme", parse("acme"))
CHANNEL_KEY = f"channel:{CHANNEL}"


@pytest.fixture
def yt() -> Iterator[FakeYouTube]:
    with FakeYouTube() as fake:
        fake.add_channel(CHANNEL, "Acme", subscribers=5000)
        fake.add_video(VIDEO, CHANNEL, "Acme product tour", published=NOW - timedelta(days=3))
        yield fake


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_source(fake: FakeYouTube, brands: tuple[Brand, ...] = (ACME,), clock: Any = None,
                timeout: float = 5.0, **settings: Any) -> YouTubeSource:
    values: dict[str, Any] = {"type": "youtube", "name": "yt", "api_key": KEY,
                              "base_url": fake.base_url, "channels": [CHANNEL], **settings}
    ctx = SourceContext(clock=clock or (lambda: NOW), http_timeout=timeout, brands=brands)
    return YouTubeSource(YouTubeSourceConfig(**values), ctx)


def thread(fake: FakeYouTube, number: int, minutes_ago: float, text: str = "acme is down",
           video: str = VIDEO, **kwargs: Any) -> str:
    thread_id = f"Ugx{number:05d}"
    fake.add_thread(thread_id, video, f"{text} ({number})",
                    published=NOW - timedelta(minutes=minutes_ago), **kwargs)
    return thread_id


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for page in pages for post in page.posts]


def posts_of(pages: list[Page]) -> list[Post]:
    return [post for page in pages for post in page.posts]


def roundtrip(cursor: Any) -> Any:
    """The cursor as storage keeps it: JSON text and back."""
    return json.loads(json.dumps(cursor))


# -- first fetch ---------------------------------------------------------------------------


def test_first_fetch_normalises_comments_replies_and_videos(yt: FakeYouTube) -> None:
    first = thread(yt, 1, 30, "Acme support never answered", author="@dana")
    for n in range(7):  # more than the 5 a thread carries: the rest through comments.list
        yt.add_reply(first, f"r{n}", f"reply {n} about acme",
                     published=NOW - timedelta(minutes=20 - n), author="@erin")
    thread(yt, 2, 2 * 86400, "acme, two days ago")  # before initial_lookback: not read
    yt.add_channel(OTHER, "Gadget Reviews", subscribers=98100)
    yt.add_video("reviewVid01", OTHER, "Acme X1 review", "Honest take on the acme X1. " * 20,
                 published=NOW - timedelta(hours=2), default_language="en-GB")
    pages = list(make_source(yt, search=True).fetch(None))
    posts = posts_of(pages)
    assert ids(pages) == [first, *(f"{first}.r{n}" for n in range(7)), "reviewVid01"]
    top, reply, video = posts[0], posts[1], posts[-1]
    assert (top.platform, top.author, top.author_followers, top.lang, top.kind) == (
        "youtube", "@dana", None, None, "mention")
    assert top.text == "Acme support never answered (1)"
    assert top.url == f"https://www.youtube.com/watch?v={VIDEO}&lc={first}"
    assert top.created_at == NOW - timedelta(minutes=30)
    assert top.thread == VIDEO and top.source == "yt" and top.brand is None
    assert top.raw["authorChannelId"] == "UCviewer0000000000000000"
    assert top.raw["kind"] == "comment" and top.raw["videoId"] == VIDEO
    assert (reply.author, reply.raw["kind"], reply.raw["parentId"]) == ("@erin", "reply", first)
    assert reply.url == f"https://www.youtube.com/watch?v={VIDEO}&lc={first}.r0"
    assert reply.thread == VIDEO
    assert (video.author, video.author_followers, video.lang, video.brand) == (
        "Gadget Reviews", 98100, "en-GB", "acme")
    assert video.text.startswith("Acme X1 review\n\nHonest take") and len(video.text) > 500
    assert (video.url, video.thread) == ("https://www.youtube.com/watch?v=reviewVid01",
                                         "reviewVid01")
    assert video.created_at == NOW - timedelta(hours=2)
    assert video.raw["channelId"] == OTHER
    cursor = pages[-1].cursor
    assert cursor["quota"] == {"day": "2026-11-20", "used": 1 + 1 + 100 + 1 + 1}
    assert cursor["streams"][CHANNEL_KEY]["mark"] == "2026-11-20T11:30:00Z"
    assert cursor["streams"][CHANNEL_KEY]["threads"] == [[first, 7, "2026-11-20T11:46:00Z"]]
    assert cursor["streams"]["search:acme"]["mark"] == "2026-11-20T10:00:00Z"
    [listing] = yt.sent("commentThreads")
    assert listing.query["allThreadsRelatedToChannelId"] == CHANNEL
    assert (listing.query["order"], listing.query["part"], listing.query["key"]) == (
        "time", "snippet,replies", KEY)
    assert listing.headers["user-agent"].startswith("social-listener/")


def test_hidden_subscriber_count_is_none(yt: FakeYouTube) -> None:
    yt.add_channel(OTHER, "Shy", subscribers=None)
    yt.add_video("shyVideo001", OTHER, "acme haul", published=NOW - timedelta(hours=1))
    [video] = posts_of(list(make_source(yt, channels=[], search=True).fetch(None)))
    assert (video.author, video.author_followers) == ("Shy", None)


def test_a_video_watched_by_id_and_comments_disabled_elsewhere(
    yt: FakeYouTube, caplog: pytest.LogCaptureFixture
) -> None:
    yt.add_channel(OTHER, "Elsewhere")
    yt.add_video("otherVideo1", OTHER, "Competitor vs acme", published=NOW - timedelta(days=1))
    yt.add_video("closedVide1", OTHER, "No comments here", published=NOW - timedelta(days=1),
                 comments_disabled=True)
    on_other = thread(yt, 5, 10, video="otherVideo1")
    pages = list(make_source(yt, channels=[], videos=["closedVide1", "otherVideo1"]).fetch(None))
    assert ids(pages) == [on_other]
    assert "video closedVide1 skipped: commentsDisabled" in caplog.text
    assert yt.sent("commentThreads")[0].query["videoId"] == "closedVide1"


# -- the brand query -----------------------------------------------------------------------


@pytest.mark.parametrize(("query", "sent"), [
    ("acme", "acme"),
    ('("acme cloud" OR acmecloud) -giveaway', '"acme cloud"|acmecloud -giveaway'),
    ("acme (outage OR down OR refund*)", "acme"),  # refund* widened away: acme alone
    ("acme (outage OR down) -giveaway", "acme outage|down -giveaway"),
    ("acme OR (globex outage)", "acme|globex"),
])
def test_brand_query_in_youtube_syntax(query: str, sent: str) -> None:
    assert youtube_query(parse(query)) == sent


def test_the_translated_query_is_sent_and_the_local_filter_is_left_to_collect(
    yt: FakeYouTube, tmp_path: Path
) -> None:
    brand = Brand("acme", "q", parse('("acme cloud" OR acmecloud) -giveaway'))
    yt.add_video("cloudVideo1", CHANNEL, "Acme Cloud outage today", published=NOW - timedelta(
        minutes=50))
    yt.add_video("giveaway001", CHANNEL, "acmecloud giveaway", published=NOW - timedelta(
        minutes=40))
    yt.add_video("unrelated01", CHANNEL, "cooking pasta", published=NOW - timedelta(minutes=30))
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(yt, brands=(brand,), channels=[], search=True), lambda: NOW,
                   brands=(brand,)) == 1
    [search] = yt.sent("search")
    assert search.query["q"] == '"acme cloud"|acmecloud -giveaway'
    assert (search.query["type"], search.query["order"], search.query["maxResults"]) == (
        "video", "date", "50")
    assert search.query["publishedAfter"] == "2026-11-19T12:00:00Z"
    assert [r["platform_id"] for r in db["posts"].rows] == ["cloudVideo1"]


def test_comments_are_kept_only_when_a_brand_matches_unless_brands_is_empty(
    yt: FakeYouTube, tmp_path: Path
) -> None:
    thread(yt, 1, 20, "acme is down")
    thread(yt, 2, 10, "my order never arrived")  # no brand word: the local filter drops it
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(yt), lambda: NOW, brands=(ACME,)) == 1
    own = open_db(tmp_path / "own.db")  # brands: [] and brand: acme keeps the whole channel
    source = make_source(yt, brands=(), brand="acme", name="own")
    assert collect(own, source, lambda: NOW) == 2
    assert {r["brand"] for r in own["posts"].rows} == {"acme"}


# -- pagination, resume, bursts ------------------------------------------------------------


def test_pages_are_followed_and_the_entry_moves_on_the_last(yt: FakeYouTube) -> None:
    made = [thread(yt, n, 60 - n) for n in range(1, 6)]
    pages = list(make_source(yt, page_size=2).fetch(None))
    assert ids(pages) == made[::-1]
    assert [len(p.posts) for p in pages] == [2, 2, 1]
    assert [CHANNEL_KEY in p.cursor["streams"] for p in pages] == [False, False, True]
    assert [p.cursor["quota"]["used"] for p in pages] == [1, 2, 3]  # saved with every page
    tokens = [r.query.get("pageToken") for r in yt.sent("commentThreads")]
    assert tokens[0] is None and all(tokens[1:]) and len(tokens) == 3


def test_resume_after_restart_reads_only_what_is_new(yt: FakeYouTube) -> None:
    old = [thread(yt, n, 50 - n) for n in range(1, 4)]
    cursor = roundtrip(list(make_source(yt).fetch(None))[-1].cursor)
    new = thread(yt, 9, 5)
    yt.add_reply(old[0], "late", "acme replied late", published=NOW - timedelta(minutes=1))
    pages = list(make_source(yt).fetch(cursor))  # a restart: a fresh source, the stored cursor
    assert ids(pages) == [new, f"{old[0]}.late"]  # the reply found by re-counting the thread
    again = list(make_source(yt).fetch(roundtrip(pages[-1].cursor)))
    assert ids(again) == []  # nothing twice
    [recount] = [r for r in yt.sent("commentThreads") if "id" in r.query][-1:]
    assert set(recount.query["id"].split(",")) == {new, *old}


def test_a_burst_larger_than_max_pages_is_caught_up_without_a_gap(yt: FakeYouTube) -> None:
    thread(yt, 1, 100)
    cursor = list(make_source(yt).fetch(None))[-1].cursor
    burst = [thread(yt, n, 50 - n) for n in range(2, 9)]  # 7 new threads
    source = make_source(yt, page_size=2, max_pages=2)
    second = list(source.fetch(roundtrip(cursor)))
    state = second[-1].cursor["streams"][CHANNEL_KEY]
    assert ids(second) == burst[::-1][:4]
    assert state["mark"] == cursor["streams"][CHANNEL_KEY]["mark"]  # not moved yet
    assert state["pending"]["newest"] == "2026-11-20T11:18:00Z"  # thread 8
    arrived = thread(yt, 20, 1)  # newer than the burst: read once the gap is closed
    third = list(source.fetch(roundtrip(second[-1].cursor)))
    assert ids(third) == burst[::-1][4:]
    assert "pending" not in third[-1].cursor["streams"][CHANNEL_KEY]
    fourth = list(source.fetch(roundtrip(third[-1].cursor)))
    assert ids(fourth) == [arrived]
    every = ids(second) + ids(third) + ids(fourth)
    assert sorted(every) == sorted([*burst, arrived]) and len(every) == len(set(every))


def test_an_expired_page_token_starts_again_from_the_newest_thread(
    yt: FakeYouTube, caplog: pytest.LogCaptureFixture
) -> None:
    thread(yt, 1, 100)
    cursor = list(make_source(yt).fetch(None))[-1].cursor
    burst = [thread(yt, n, 50 - n) for n in range(2, 7)]
    source = make_source(yt, page_size=2, max_pages=1)
    second = list(source.fetch(roundtrip(cursor)))
    assert second[-1].cursor["streams"][CHANNEL_KEY]["pending"]
    yt.expire_tokens()
    third = list(make_source(yt, page_size=10).fetch(roundtrip(second[-1].cursor)))
    assert "saved page token was refused" in caplog.text
    assert sorted(ids(second) + ids(third)) == sorted(burst)
    assert "pending" not in third[-1].cursor["streams"][CHANNEL_KEY]


def test_first_poll_reads_only_max_pages_and_leaves_the_rest_to_backfill(
    yt: FakeYouTube,
) -> None:
    [thread(yt, n, 60 - n) for n in range(1, 6)]
    pages = list(make_source(yt, page_size=2, max_pages=1).fetch(None))
    assert len(ids(pages)) == 2
    state = pages[-1].cursor["streams"][CHANNEL_KEY]
    assert "pending" not in state and state["mark"] == "2026-11-20T11:05:00Z"


def test_search_resumes_from_its_mark_with_overlap_and_every_interval(yt: FakeYouTube) -> None:
    yt.add_video("firstVideo1", CHANNEL, "acme one", published=NOW - timedelta(hours=3))
    clock = Clock()
    source = make_source(yt, channels=[], search=True, clock=clock)
    cursor = roundtrip(list(source.fetch(None))[-1].cursor)
    yt.add_video("lateIndexed", CHANNEL, "acme late", published=NOW - timedelta(hours=2, minutes=
                                                                                  30))
    clock.now = NOW + timedelta(minutes=10)
    assert list(source.fetch(cursor)) == []  # within search_interval: no search at all
    assert len(yt.sent("search")) == 1
    clock.now = NOW + timedelta(minutes=31)
    pages = list(make_source(yt, channels=[], search=True, clock=clock).fetch(cursor))
    assert ids(pages) == ["lateIndexed"]  # inside search_overlap behind the mark
    assert yt.sent("search")[-1].query["publishedAfter"] == "2026-11-20T08:00:00Z"


def test_a_search_burst_goes_on_below_what_was_read(yt: FakeYouTube) -> None:
    yt.add_video("seedVideo01", CHANNEL, "acme seed", published=NOW - timedelta(hours=5))
    clock = Clock()
    cursor = list(make_source(yt, channels=[], search=True, clock=clock).fetch(None))[-1].cursor
    made = [f"burstVid{n:03d}" for n in range(7)]
    for n, video in enumerate(made):
        yt.add_video(video, CHANNEL, f"acme burst {n}", published=NOW - timedelta(minutes=60 - n))
    clock.now = NOW + timedelta(hours=1)
    source = make_source(yt, channels=[], search=True, clock=clock, page_size=2, max_pages=2)
    second = list(source.fetch(roundtrip(cursor)))
    state = second[-1].cursor["streams"]["search:acme"]
    assert ids(second) == made[::-1][:4] and state["pending"]["before"] == "2026-11-20T11:03:00Z"
    clock.now += timedelta(hours=1)
    third = list(source.fetch(roundtrip(second[-1].cursor)))
    assert yt.sent("search")[-1].query["publishedBefore"] == "2026-11-20T11:03:00Z"
    assert sorted(ids(second) + ids(third)) == sorted(made)
    # publishedBefore is inclusive and the overlap reaches the seed: one page more to close it
    assert third[-1].cursor["streams"]["search:acme"]["pending"]["before"] == \
        "2026-11-20T11:00:00Z"
    clock.now += timedelta(hours=1)
    fourth = list(source.fetch(roundtrip(third[-1].cursor)))
    assert ids(fourth) == []
    state = fourth[-1].cursor["streams"]["search:acme"]
    assert state["mark"] == "2026-11-20T11:06:00Z" and "pending" not in state


# -- failures ------------------------------------------------------------------------------


def test_429_pauses_for_its_retry_after(yt: FakeYouTube) -> None:
    yt.enqueue(429, error(429, "rateLimitExceeded", "Too many requests"), {"Retry-After": "42"})
    with pytest.raises(RateLimited) as caught:
        list(make_source(yt).fetch(None))
    assert caught.value.retry_after == 42


def test_403_rate_limit_exceeded_pauses_briefly(yt: FakeYouTube) -> None:
    yt.enqueue(403, error(403, "userRateLimitExceeded", "slow down", "usageLimits"))
    with pytest.raises(RateLimited) as caught:
        list(make_source(yt).fetch(None))
    assert caught.value.retry_after == 60


def test_quota_exceeded_pauses_until_midnight_pacific(yt: FakeYouTube, tmp_path: Path) -> None:
    yt.enqueue(403, error(403, "quotaExceeded", "The request cannot be completed because you "
                          "have exceeded your quota.", "youtube.quota"))
    with pytest.raises(RateLimited, match="daily YouTube Data API quota") as caught:
        list(make_source(yt).fetch(None))
    assert caught.value.retry_after == 20 * 3600  # 04:00 PST to midnight
    assert next_reset(datetime(2026, 7, 1, 6, 59, tzinfo=UTC)) == datetime(
        2026, 7, 1, 7, 0, tzinfo=UTC)  # PDT: midnight is 07:00 UTC


def test_the_source_pauses_itself_before_its_daily_quota_runs_out(yt: FakeYouTube) -> None:
    yt.add_video("quotaVideo1", CHANNEL, "acme video", published=NOW - timedelta(hours=1))
    clock = Clock()
    source = make_source(yt, search=True, daily_quota=103, search_interval=0, clock=clock)
    cursor = roundtrip(list(source.fetch(None))[-1].cursor)  # 1 + 100 + 1 + 1 units
    assert cursor["quota"] == {"day": "2026-11-20", "used": 103}
    calls = len(yt.requests)
    restarted = make_source(yt, search=True, daily_quota=103, search_interval=0, clock=clock)
    pages = restarted.fetch(cursor)
    with pytest.raises(RateLimited, match="daily_quota 103") as caught:
        list(pages)
    assert caught.value.retry_after == 20 * 3600
    assert len(yt.requests) == calls  # paused before asking
    clock.now = next_reset(NOW) + timedelta(seconds=1)  # a new Pacific day: a fresh quota
    pages_next_day = list(restarted.fetch(cursor))
    assert pages_next_day[-1].cursor["quota"]["day"] == "2026-11-21"


def test_server_error_keeps_the_cursor(yt: FakeYouTube, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    thread(yt, 1, 100)
    collect(db, make_source(yt), lambda: NOW, brands=(ACME,))
    before = load_cursor(db, "yt")
    made = [thread(yt, n, 50 - n) for n in range(2, 6)]
    yt.add_after(len(yt.requests) + 1, lambda: yt.enqueue(502, "<html>Bad Gateway</html>"))
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(yt, page_size=2), lambda: NOW, brands=(ACME,))
    after = load_cursor(db, "yt")
    assert after["streams"] == before["streams"]  # the first page stored; the entry did not move
    assert db["posts"].count == 3
    assert collect(db, make_source(yt, page_size=2), lambda: NOW, brands=(ACME,)) == 2
    assert {r["platform_id"] for r in db["posts"].rows} >= set(made)


@pytest.mark.parametrize("body", ["<html>not json</html>", '{"items": "nope"}', "[1, 2]",
                                  b"\x00{\xff\xfe"])
def test_malformed_answer_is_a_source_error(yt: FakeYouTube, body: Any) -> None:
    yt.enqueue(200, body)
    with pytest.raises(SourceError):
        list(make_source(yt).fetch(None))


def test_malformed_records_are_rejected_and_the_rest_kept(yt: FakeYouTube) -> None:
    good = thread(yt, 1, 10)
    listing: dict[str, Any] = {"kind": "youtube#commentThreadListResponse", "items": [
        {"id": "UgxNoSnippet"},
        {"id": "UgxBadTime", "snippet": {"videoId": VIDEO, "topLevelComment": {
            "id": "UgxBadTime", "snippet": {"textOriginal": "acme", "publishedAt": "yesterday"}}}},
        {"id": good, "snippet": {"videoId": VIDEO, "totalReplyCount": 0, "topLevelComment": {
            "id": good, "snippet": {"textOriginal": "acme fine", "authorDisplayName": "@a",
                                    "publishedAt": "2026-11-20T11:50:00Z"}}}},
    ]}
    yt.enqueue(200, listing, resource="commentThreads")
    yt.enqueue(200, {"items": [{"id": {"kind": "youtube#video"}, "snippet": {}}]},
               resource="search")
    pages = list(make_source(yt, search=True).fetch(None))
    assert ids(pages) == [good]
    reasons = [r.reason for p in pages for r in p.rejected]
    assert reasons == ["not a commentThread with an id and a snippet",
                       "missing or bad publishedAt: 'yesterday'",
                       "search result without a videoId or publishedAt"]


def test_deleted_things_are_skipped_and_the_poll_goes_on(
    yt: FakeYouTube, caplog: pytest.LogCaptureFixture
) -> None:
    yt.add_video("goneVideo01", CHANNEL, "acme old", published=NOW - timedelta(hours=2))
    yt.add_video("keptVideo01", CHANNEL, "acme kept", published=NOW - timedelta(hours=1))
    yt.add_after(2, lambda: yt.delete_video("goneVideo01"))  # gone between search and videos
    watched = thread(yt, 1, 30)
    source = make_source(yt, videos=["missingVid1"], search=True)
    pages = list(source.fetch(None))
    assert ids(pages) == [watched, "keptVideo01"]  # the deleted video is not a post
    assert "video missingVid1 skipped: videoNotFound" in caplog.text
    cursor = roundtrip(pages[-1].cursor)
    yt.delete_thread(watched)  # a watched thread deleted: no longer watched
    later = list(make_source(yt, videos=["missingVid1"]).fetch(cursor))
    assert later[-1].cursor["streams"][CHANNEL_KEY]["threads"] == []


def test_a_404_for_watched_threads_asks_for_each_alone(yt: FakeYouTube) -> None:
    gone, kept = thread(yt, 1, 30), thread(yt, 2, 20)
    cursor = roundtrip(list(make_source(yt).fetch(None))[-1].cursor)
    yt.delete_thread(gone)
    yt.add_reply(kept, "new", "acme replied", published=NOW - timedelta(minutes=1))
    yt.add_after(len(yt.requests) + 1, lambda: yt.enqueue(404, error(
        404, "commentThreadNotFound", "One or more of the comment threads identified by the id "
        "parameter could not be found.", "youtube.commentThread"), resource="commentThreads"))
    pages = list(make_source(yt).fetch(cursor))
    assert ids(pages) == [f"{kept}.new"]
    assert pages[-1].cursor["streams"][CHANNEL_KEY]["threads"] == [
        [kept, 1, "2026-11-20T11:59:00Z"]]
    asked = [r.query["id"] for r in yt.sent("commentThreads") if "id" in r.query]
    assert asked == [f"{kept},{gone}", kept, gone]


def test_duplicates_across_pages_are_stored_once(yt: FakeYouTube, tmp_path: Path) -> None:
    for n in range(5):
        yt.add_video(f"pageVideo{n:02d}", CHANNEL, f"acme {n}",
                     published=NOW - timedelta(minutes=50 - n))
    # a video published between pages shifts YouTube's offset tokens: one comes again
    yt.add_after(4, lambda: yt.add_video("newcomer001", CHANNEL, "acme new",
                                         published=NOW - timedelta(minutes=1)))
    pages = list(make_source(yt, channels=[], search=True, page_size=2).fetch(None))
    assert len(ids(pages)) == len(set(ids(pages))) == 5
    db = open_db(tmp_path / "t.db")
    source = make_source(yt, channels=[], search=True, page_size=2, search_interval=0)
    assert collect(db, source, lambda: NOW, brands=(ACME,)) == 6
    assert collect(db, source, lambda: NOW, brands=(ACME,)) == 0
    assert db["posts"].count == 6


def test_an_invalid_key_is_a_source_error(yt: FakeYouTube) -> None:
    with pytest.raises(SourceError, match="API key was refused"):
        list(make_source(yt, api_key="AIzaSy-not-the-right-key").fetch(None))


def test_timeout_is_a_source_error(yt: FakeYouTube) -> None:
    yt.enqueue(200, {"items": []}, delay=2.0)
    with pytest.raises(SourceError, match="did not answer within 0.2s"):
        list(make_source(yt, timeout=0.2).fetch(None))


# -- secrets -------------------------------------------------------------------------------


def test_the_api_key_never_reaches_logs_errors_or_posts(
    yt: FakeYouTube, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("googleapiclient", "httpx", "httpcore"):  # the CLI holds them at WARNING
        caplog.set_level(logging.DEBUG, logger=name)
    thread(yt, 1, 10)
    source = make_source(yt, search=True)
    posts = posts_of(list(source.fetch(None)))
    errors = []
    for status, body in [(500, error(500, "backendError", "Backend Error")),
                         (403, error(403, "forbidden", f"echoing ?key={KEY}")), (302, "")]:
        yt.enqueue(status, body, {"Location": f"http://127.0.0.1:9/?key={KEY}"})
        with pytest.raises(SourceError) as failed:
            list(make_source(yt).fetch(None))
        errors.append(str(failed.value))
    assert "URL being requested" in caplog.text  # googleapiclient logged its URLs at DEBUG
    assert "HTTP Request: GET" in caplog.text  # and httpx at INFO
    assert "key=***" in caplog.text
    assert all(r.query["key"] == KEY for r in yt.requests)  # it was sent all the same
    exposed = [caplog.text, repr(source.config), *errors, repr(posts)]
    assert not [text for text in exposed if KEY in text]


# -- history and doctor --------------------------------------------------------------------


def test_backfill_reaches_back_to_since_without_moving_the_cursor(yt: FakeYouTube) -> None:
    made = [thread(yt, n, 60 * 24 * (10 - n)) for n in range(1, 8)]  # one a day
    for n in range(6):
        yt.add_video(f"histVideo{n:02d}", CHANNEL, f"acme history {n}",
                     published=NOW - timedelta(days=9 - n))
    source = make_source(yt, search=True, page_size=2)
    pages = list(source.backfill(NOW - timedelta(days=7, hours=1)))
    assert all(page.cursor is None for page in pages)
    assert ids(pages) == [*made[::-1][:5],  # threads 7 to 3 days old
                          VIDEO, *(f"histVideo{n:02d}" for n in (5, 4, 3, 2))]
    assert yt.sent("search")[0].query["publishedAfter"] == "2026-11-13T11:00:00Z"


def test_check_proves_the_key_and_the_channels(yt: FakeYouTube) -> None:
    assert make_source(yt).check() == "API key accepted; 1 channel(s) found"
    assert yt.sent("channels")[-1].query["part"] == "id"
    with pytest.raises(SourceError, match=f"no such channel.*{OTHER}"):
        make_source(yt, channels=[CHANNEL, OTHER]).check()
    assert "API key accepted" in make_source(yt, channels=[], search=True).check()
    assert yt.sent("i18nRegions")
    with pytest.raises(SourceError, match="API key was refused"):
        make_source(yt, api_key="AIzaSy-wrong-key-000").check()


# -- configuration and cursor --------------------------------------------------------------


def test_bad_settings_are_refused() -> None:
    for bad in ({"channels": ["@acme"]}, {"videos": ["https://youtu.be/x"]},
                {"base_url": "ftp://x"}, {"page_size": 101}):
        with pytest.raises(ValidationError):
            YouTubeSourceConfig(type="youtube", name="yt", api_key=KEY, **bad)


def test_nothing_to_read_or_search_without_brands_is_a_config_error(yt: FakeYouTube) -> None:
    with pytest.raises(ConfigError, match="nothing to read"):
        make_source(yt, channels=[])
    with pytest.raises(ConfigError, match="search needs brands"):
        make_source(yt, brands=(), search=True)


def test_an_unreadable_cursor_starts_afresh(yt: FakeYouTube,
                                           caplog: pytest.LogCaptureFixture) -> None:
    thread(yt, 1, 10)
    bad = {"version": 1, "streams": {CHANNEL_KEY: {"mark": "soon"}}, "quota": "lots"}
    assert len(ids(list(make_source(yt).fetch(bad)))) == 1
    assert "bad cursor entry" in caplog.text
    assert len(ids(list(make_source(yt).fetch({"streams": []})))) == 1


def test_missing_client_library_is_a_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "googleapiclient.discovery", None)
    config = YouTubeSourceConfig(type="youtube", name="yt", api_key=KEY, channels=[CHANNEL])
    with pytest.raises(MissingDependency, match=r"social-listener\[youtube\]"):
        YouTubeSource(config, SourceContext(brands=(ACME,)))


# -- end to end ----------------------------------------------------------------------------


def test_end_to_end_a_negative_video_becomes_a_slack_alert(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with FakeYouTube() as fake:
        fake.add_channel(OTHER, "Angry Reviews", subscribers=4321)
        fake.add_video("angryVideo1", OTHER, "My acme order", NEGATIVE[0] + " acme",
                       published=now - timedelta(minutes=20), default_language="en")
        entry = (f"  - type: youtube\n    name: yt\n    base_url: \"{fake.base_url}\"\n"
                 "    api_key: {\"$env\": YOUTUBE_API_KEY}\n    search: true\n")
        outcome = run_once_into_alert(tmp_path, entry, {"YOUTUBE_API_KEY": KEY})
        assert fake.sent("search")[0].query["q"] == "acme"
    assert len(outcome.alerts) == 1 and NEGATIVE[0][:40] in outcome.alerts[0]
    [stored] = outcome.posts
    assert (stored["platform"], stored["platform_id"], stored["source"]) == (
        "youtube", "angryVideo1", "yt")
    assert (stored["author"], stored["author_followers"], stored["kind"], stored["lang"]) == (
        "Angry Reviews", 4321, "mention", "en")
    assert stored["url"] == "https://www.youtube.com/watch?v=angryVideo1"
    assert str(stored["created_at"]).startswith(
        (now - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M"))
    assert KEY not in outcome.stdout + outcome.stderr
    stored_files = [p.read_bytes() for p in tmp_path.glob("listener.db*")]
    assert stored_files and not [b for b in stored_files if KEY.encode() in b]
