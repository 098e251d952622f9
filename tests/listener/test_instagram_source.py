"""The Instagram source against a fake Graph API over real HTTP (httpx, 127.0.0.1)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.core.errors import RateLimited, SourceError
from listener.core.models import utcnow
from listener.core.netguard import endpoints
from listener.core.query import Brand, parse
from listener.sources import source_class
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.meta import InstagramSource
from listener.sources.meta.instagram import COMMENT_FIELDS, InstagramSourceConfig
from storage.db import load_cursor, open_db
from tests.e2e import NEGATIVE
from tests.fakes.meta_graph_api import TOKEN, FakeGraph, graph_error, graph_time
from tests.listener.graph_pages import NOW, ago, ids, posts_of, saved, threads
from tests.sources.e2e import run_once_into_alert

USER = "17841400000000001"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        fake.add_ig_user(USER, "acme")
        yield fake


def make_source(fake: FakeGraph, timeout: float = 5.0, **settings: Any) -> InstagramSource:
    values = {"type": "instagram", "name": "ig", "base_url": fake.base_url, "account_id": USER,
              "access_token": TOKEN, "brand": "acme", **settings}
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout)
    return InstagramSource(InstagramSourceConfig(**values), ctx)



def test_first_fetch_normalises_comments_replies_and_tags(graph: FakeGraph) -> None:
    media = graph.add_media(USER, "Summer launch", ago(300))
    first = graph.add_ig_comment(media["id"], "acme app keeps crashing", ago(40),
                                 username="jane.doe")
    reply = graph.add_ig_comment(media["id"], "@jane.doe same here", ago(30),
                                 username="bob_99", parent=first["id"])
    graph.add_ig_comment(media["id"], None, ago(20))  # an emoji-only comment has text; none: no
    tag = graph.add_tag(USER, "Loving my new acme headphones", ago(25), username="fan.account")
    pages = list(make_source(graph).fetch(None))
    got = {p.platform_id: p for p in posts_of(pages)}
    assert set(got) == {first["id"], reply["id"], tag["id"]}
    comment = got[first["id"]]
    assert (comment.platform, comment.text, comment.author, comment.created_at) == (
        "instagram", "acme app keeps crashing", "jane.doe", ago(40))
    assert (comment.author_followers, comment.lang, comment.kind, comment.brand) == (
        None, None, "mention", "acme")
    assert comment.url == f"{media['permalink']}?comment_id={first['id']}"
    assert comment.thread == media["id"] and comment.raw["kind"] == "comment"
    assert got[reply["id"]].raw["parent_id"] == first["id"]
    assert got[reply["id"]].author == "bob_99" and got[reply["id"]].thread == media["id"]
    tagged = got[tag["id"]]
    assert (tagged.text, tagged.author, tagged.url, tagged.thread) == (
        "Loving my new acme headphones", "fan.account", tag["permalink"], tag["id"])
    state = threads(pages)
    assert state[f"media:{media['id']}"]["count"] == 3
    assert state["tags"]["since"] == "2026-11-20T11:35:00Z"
    listing, comments, tags = graph.requests
    assert listing.path == f"/v26.0/{USER}/media"
    assert listing.query == {"fields": "id,caption,timestamp,permalink,comments_count",
                             "limit": "10"}
    assert comments.path == f"/v26.0/{media['id']}/comments"
    assert comments.query == {"fields": COMMENT_FIELDS, "limit": "50"}
    assert tags.path == f"/v26.0/{USER}/tags"
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in graph.requests)


def test_media_whose_comment_count_did_not_move_cost_no_request(graph: FakeGraph) -> None:
    media = graph.add_media(USER, "one", ago(300))
    graph.add_media(USER, "nobody commented", ago(200))
    graph.add_ig_comment(media["id"], "acme", ago(40))
    cursor = saved(list(make_source(graph, tags=False).fetch(None)))
    graph.reset()
    assert list(make_source(graph, tags=False).fetch(cursor)) == []
    assert [r.path for r in graph.requests] == [f"/v26.0/{USER}/media"]


def test_pagination_follows_after_and_moves_the_cursor_on_the_last_page(graph: FakeGraph
                                                                       ) -> None:
    media = graph.add_media(USER, "one", ago(300))
    made = [graph.add_ig_comment(media["id"], f"acme {i}", ago(100 - i)) for i in range(5)]
    pages = list(make_source(graph, page_size=2, tags=False).fetch(None))
    assert [len(p.posts) for p in pages] == [2, 2, 1]
    assert [p.cursor is None for p in pages] == [True, True, False]
    assert ids(pages) == [c["id"] for c in reversed(made)]
    calls = graph.requests_to("/comments")
    assert calls[0].query.get("after") is None and all(c.query["after"] for c in calls[1:])


def test_a_restart_resumes_and_a_new_reply_to_an_old_comment_is_found(graph: FakeGraph) -> None:
    media = graph.add_media(USER, "one", ago(3000))
    old = [graph.add_ig_comment(media["id"], f"acme {i}", ago(2000 - i)) for i in range(5)]
    cursor = json.loads(json.dumps(saved(list(make_source(graph, page_size=2).fetch(None)))))
    reply = graph.add_ig_comment(media["id"], "acme replying late", ago(3), parent=old[0]["id"])
    new = graph.add_ig_comment(media["id"], "acme new", ago(2))
    pages = list(make_source(graph, page_size=2).fetch(cursor))
    assert sorted(ids(pages)) == sorted([reply["id"], new["id"]])
    assert threads(pages)[f"media:{media['id']}"]["count"] == 7
    again = list(make_source(graph, page_size=2).fetch(saved(pages)))
    assert posts_of(again) == []


def test_comments_served_oldest_first_lose_nothing(graph: FakeGraph) -> None:
    graph.ig_oldest_first = True  # Meta documents no order for this edge
    media = graph.add_media(USER, "one", ago(3000))
    for i in range(4):
        graph.add_ig_comment(media["id"], f"acme {i}", ago(2000 - i))
    cursor = saved(list(make_source(graph, page_size=2).fetch(None)))
    new = graph.add_ig_comment(media["id"], "acme new", ago(2))
    assert ids(list(make_source(graph, page_size=2).fetch(cursor))) == [new["id"]]


def test_a_backlog_longer_than_max_pages_is_read_on_without_gap(graph: FakeGraph) -> None:
    media = graph.add_media(USER, "one", ago(3000))
    graph.add_ig_comment(media["id"], "acme before", ago(500))
    cursor = saved(list(make_source(graph, tags=False).fetch(None)))
    burst = [graph.add_ig_comment(media["id"], f"acme {i}", ago(50 - i)) for i in range(7)]
    first = list(make_source(graph, page_size=2, max_pages=2, tags=False).fetch(cursor))
    state = threads(first)[f"media:{media['id']}"]
    assert state["count"] == 1 and state["pending"]["count"] == 8
    newer = graph.add_ig_comment(media["id"], "acme meanwhile", ago(1))
    second = list(make_source(graph, page_size=2, max_pages=2, tags=False).fetch(
        json.loads(json.dumps(saved(first)))))
    assert threads(second)[f"media:{media['id']}"]["count"] == 8  # counted when it began
    third = list(make_source(graph, page_size=2, max_pages=10, tags=False).fetch(
        saved(second)))
    assert sorted(ids(first + second + third)) == sorted(c["id"] for c in [*burst, newer])


@pytest.mark.parametrize(("code", "headers", "wait"), [
    (80002, {"x-business-use-case-usage": json.dumps({USER: [{
        "type": "instagram", "call_count": 100, "total_cputime": 8, "total_time": 9,
        "estimated_time_to_regain_access": 25}]})}, 1500),
    (4, {"Retry-After": "30"}, 30),
])
def test_meta_throttling_is_rate_limited_until_regain(graph: FakeGraph, code: int,
                                                       headers: dict[str, str],
                                                       wait: float) -> None:
    graph.enqueue(400, graph_error(code, f"(#{code}) Too many calls"), headers)
    with pytest.raises(RateLimited) as limited:
        list(make_source(graph).fetch(None))
    assert limited.value.retry_after == pytest.approx(wait)


def test_usage_over_the_threshold_pauses_with_regain_time(graph: FakeGraph) -> None:
    media = graph.add_media(USER, "one", ago(300))
    graph.add_ig_comment(media["id"], "acme", ago(40))
    graph.buc_usage = {USER: [{"type": "instagram", "call_count": 96, "total_cputime": 5,
                               "total_time": 5, "estimated_time_to_regain_access": 0}]}
    with pytest.raises(RateLimited, match="instagram call_count at 96%") as limited:
        list(make_source(graph, usage_threshold=95).fetch(None))
    assert limited.value.retry_after == 600
    assert len(graph.requests) == 1


def test_http_429_uses_retry_after(graph: FakeGraph) -> None:
    graph.enqueue(429, "slow down", {"Retry-After": "9"})
    with pytest.raises(RateLimited) as limited:
        list(make_source(graph).fetch(None))
    assert limited.value.retry_after == 9


def test_server_errors_keep_the_cursor(graph: FakeGraph, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    media = graph.add_media(USER, "one", ago(300))
    graph.add_ig_comment(media["id"], "acme one", ago(50))
    assert collect(db, make_source(graph), lambda: NOW) == 1
    saved = load_cursor(db, "ig")
    for i in range(3):
        graph.add_ig_comment(media["id"], f"acme new {i}", ago(10 - i))
    graph.enqueue(500, graph_error(1, "An unknown error occurred"), path="/comments")
    with pytest.raises(SourceError, match="Meta failed"):
        collect(db, make_source(graph, page_size=2), lambda: NOW)
    graph.enqueue(502, b"<html>Bad Gateway</html>", path="/tags")
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(graph, page_size=2), lambda: NOW)
    assert db["posts"].count == 4  # the media's new comments, stored with their own cursor
    assert load_cursor(db, "ig")["threads"]["tags"] == saved["threads"]["tags"]
    assert collect(db, make_source(graph), lambda: NOW) == 0


@pytest.mark.parametrize(("body", "error"), [
    (b"<html>oops", "not a JSON object"),
    ({"data": {"id": "1"}}, "no 'data' list"),
])
def test_a_malformed_answer_fails_the_poll(graph: FakeGraph, body: Any, error: str) -> None:
    graph.enqueue(200, body)
    with pytest.raises(SourceError, match=error):
        list(make_source(graph).fetch(None))


def test_malformed_comments_are_rejected_and_the_rest_kept(graph: FakeGraph) -> None:
    media = graph.add_media(USER, "one", ago(300))
    good = graph.add_ig_comment(media["id"], "acme good", ago(30))
    graph.enqueue(200, {"data": [
        {"id": "178", "text": "acme", "timestamp": "yesterday"},
        {"id": good["id"], "text": "acme good", "timestamp": good["timestamp"],
         "username": "jane.doe", "replies": {"data": [{"id": "179", "text": 7,
                                                       "timestamp": graph_time(ago(5))}]}},
    ]}, path="/comments")
    pages = list(make_source(graph, tags=False).fetch(None))
    assert ids(pages) == [good["id"]]
    assert [r.reason for p in pages for r in p.rejected] == [
        "item 178 without a valid timestamp: 'yesterday'", "'text' is not text"]


def test_a_deleted_media_is_skipped_and_the_poll_goes_on(graph: FakeGraph) -> None:
    gone = graph.add_media(USER, "deleted soon", ago(60))
    media = graph.add_media(USER, "stays", ago(600))
    graph.add_ig_comment(gone["id"], "acme?", ago(50))
    kept = graph.add_ig_comment(media["id"], "acme stays", ago(5))
    graph.enqueue(400, graph_error(100, f"Unsupported get request. Object with ID '{gone['id']}'"
                                   " does not exist", subcode=33, kind="GraphMethodException"),
                  path=f"{gone['id']}/comments")
    pages = list(make_source(graph).fetch(None))
    assert ids(pages) == [kept["id"]]
    assert f"media:{gone['id']}" not in threads(pages)


def test_duplicates_across_pages_are_stored_once(graph: FakeGraph, tmp_path: Path) -> None:
    media = graph.add_media(USER, "one", ago(300))
    made = [graph.add_ig_comment(media["id"], f"acme {i}", ago(50 - i)) for i in range(3)]
    raw = [{k: v for k, v in c.items() if not k.startswith("_")} for c in made]
    graph.enqueue(200, {"data": raw[2:0:-1], "paging": {"cursors": {"after": "QVFIUk"},
                                                        "next": "https://example/n"}},
                  path="/comments")
    graph.enqueue(200, {"data": raw[1::-1]}, path="/comments")  # raw[1] again
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(graph, tags=False), lambda: NOW) == 3
    assert db["posts"].count == 3


def test_no_query_is_sent_and_brands_filter_locally(graph: FakeGraph, tmp_path: Path) -> None:
    """No search exists for comments or tags: nothing but ids and fields is sent. Everything
    is tagged with ``brand``; ``brands:`` on the source filters locally by their queries."""
    media = graph.add_media(USER, "one", ago(300))
    graph.add_ig_comment(media["id"], "so pretty", ago(30))
    match = graph.add_ig_comment(media["id"], "acme cloud down?", ago(20))
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(graph, tags=False), lambda: NOW) == 2
    assert not any(k in r.query for r in graph.requests for k in ("q", "query", "search"))
    brand = Brand("acme", "acme cloud", parse('"acme cloud"'))
    db2 = open_db(tmp_path / "t2.db")
    assert collect(db2, make_source(graph, tags=False, brands=["acme"]), lambda: NOW,
                   brands=[brand]) == 1
    assert [r["platform_id"] for r in db2["posts"].rows] == [match["id"]]
    assert source_class("instagram").searches is False


def test_the_token_never_reaches_logs_errors_or_urls(graph: FakeGraph,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "listener"):
        caplog.set_level(logging.DEBUG, logger=name)
    media = graph.add_media(USER, "one", ago(300))
    for i in range(3):
        graph.add_ig_comment(media["id"], f"acme {i}", ago(30 - i))
    pages = list(make_source(graph, page_size=1).fetch(None))
    graph.enqueue(400, graph_error(190, "Error validating access token: The session has been "
                                   "invalidated because the user changed their password"))
    with pytest.raises(SourceError, match="expired or was invalidated") as failed:
        list(make_source(graph).fetch(None))
    assert "HTTP Request: GET" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in str(failed.value)
    assert not any(TOKEN in r.target for r in graph.requests)
    assert TOKEN not in json.dumps([p.cursor for p in pages])
    assert TOKEN not in json.dumps([p.raw for p in posts_of(pages)])


def test_permission_and_account_errors_say_what_to_do(graph: FakeGraph) -> None:
    graph.enqueue(400, graph_error(200, "(#200) Requires instagram_manage_comments permission"))
    with pytest.raises(SourceError, match="needs instagram_basic, instagram_manage_comments"):
        list(make_source(graph).fetch(None))
    with pytest.raises(SourceError, match="check account_id"):
        list(make_source(graph, account_id="42").fetch(None))


def test_check_reads_the_account_once(graph: FakeGraph) -> None:
    assert make_source(graph).check() == ("token accepted; Instagram account @acme "
                                          f"({USER}) readable with Graph v26.0")
    [request] = graph.requests
    assert request.query == {"fields": "id,username"}


def test_backfill_reads_media_and_tags_since(graph: FakeGraph) -> None:
    old = graph.add_media(USER, "old", NOW - timedelta(days=40))
    graph.add_ig_comment(old["id"], "acme on old media", NOW - timedelta(days=10))
    mid = graph.add_media(USER, "mid", NOW - timedelta(days=20))
    wanted = graph.add_ig_comment(mid["id"], "acme within", NOW - timedelta(days=10))
    for i in range(12):
        graph.add_media(USER, f"recent {i}", NOW - timedelta(days=5, minutes=i))
    graph.add_tag(USER, "acme old tag", NOW - timedelta(days=30))
    tag = graph.add_tag(USER, "acme tag", NOW - timedelta(days=3))
    pages = list(make_source(graph, page_size=5).backfill(NOW - timedelta(days=25)))
    assert all(p.cursor is None for p in pages)
    assert ids(pages) == [wanted["id"], tag["id"]]


def test_settings() -> None:
    config = InstagramSourceConfig(type="instagram", name="ig", account_id="1",
                                   access_token="t0k3n!")
    assert [str(e) for e in endpoints(config)] == ["https://graph.facebook.com:443"]
    assert config.tags is True and config.lookback_media == 10
    with pytest.raises(ValidationError):
        InstagramSourceConfig(type="instagram", name="ig", account_id="@acme", access_token="x")


def test_end_to_end_a_negative_comment_becomes_a_slack_alert(tmp_path: Path) -> None:
    now = utcnow()
    with FakeGraph() as fake:
        fake.add_ig_user(USER)
        media = fake.add_media(USER, "Summer launch", now - timedelta(hours=2))
        comment = fake.add_ig_comment(media["id"], NEGATIVE[1] + " acme",
                                      now - timedelta(minutes=10), username="angry.customer")
        entry = (f"  - type: instagram\n    name: ig\n    base_url: \"{fake.base_url}\"\n"
                 f"    account_id: \"{USER}\"\n    access_token: {{\"$env\": META_TOKEN}}\n"
                 "    brand: acme\n")
        outcome = run_once_into_alert(tmp_path, entry, {"META_TOKEN": TOKEN})
    assert len(outcome.alerts) == 1 and NEGATIVE[1][:40] in outcome.alerts[0]
    [stored] = outcome.posts
    assert (stored["platform"], stored["platform_id"], stored["source"]) == (
        "instagram", comment["id"], "ig")
    assert (stored["author"], stored["author_followers"], stored["kind"]) == (
        "angry.customer", None, "mention")
    assert stored["url"] == f"{media['permalink']}?comment_id={comment['id']}"
    assert stored["created_at"].startswith(comment["timestamp"][:16])
    assert TOKEN not in outcome.stdout + outcome.stderr
