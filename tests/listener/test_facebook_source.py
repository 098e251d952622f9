"""The Facebook source against a fake Graph API over real HTTP (httpx, 127.0.0.1)."""

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
from listener.sources.meta import FacebookSource
from listener.sources.meta.facebook import COMMENT_FIELDS, FacebookSourceConfig
from listener.sources.meta.graph import BLOCK_WAIT, USAGE_WAIT
from storage.db import load_cursor, open_db
from tests.e2e import NEGATIVE
from tests.fakes.meta_graph_api import TOKEN, FakeGraph, graph_error, graph_time
from tests.listener.graph_pages import NOW, ago, ids, posts_of, saved, threads
from tests.sources.e2e import run_once_into_alert

PAGE = "104000000000001"
ACME = Brand("acme", "acme", parse("acme"))


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        fake.add_page(PAGE)
        yield fake


def make_source(fake: FakeGraph, timeout: float = 5.0, clock: Any = lambda: NOW,
                **settings: Any) -> FacebookSource:
    values = {"type": "facebook", "name": "fb", "base_url": fake.base_url, "page_id": PAGE,
              "access_token": TOKEN, "brand": "acme", **settings}
    ctx = SourceContext(clock=clock, http_timeout=timeout)
    return FacebookSource(FacebookSourceConfig(**values), ctx)



def test_first_fetch_normalises_comments(graph: FakeGraph) -> None:
    post = graph.add_post(PAGE, "Our new plan is live", ago(120))
    first = graph.add_comment(post["id"], "Acme billing charged me twice", ago(30),
                              author="Ann Smith")
    graph.add_comment(post["id"], "same here, acme support is silent", ago(20), author=None,
                      parent=first["id"])  # a reply; the commenter's profile is not shown
    graph.add_comment(post["id"], None, ago(10))  # a sticker: no text
    pages = list(make_source(graph).fetch(None))
    reply, comment = posts_of(pages)
    assert (comment.platform, comment.platform_id, comment.text) == (
        "facebook", first["id"], "Acme billing charged me twice")
    assert (comment.author, comment.author_followers, comment.lang, comment.kind) == (
        "Ann Smith", None, None, "mention")
    assert comment.url == first["permalink_url"] and comment.created_at == ago(30)
    assert (comment.thread, comment.brand, comment.source) == (post["id"], "acme", "fb")
    assert comment.raw["post_id"] == post["id"] and comment.raw["from_id"]
    assert reply.author is None and reply.raw["parent_id"] == first["id"]
    assert reply.thread == post["id"]
    state = threads(pages)[post["id"]]
    assert state["since"] == "2026-11-20T11:50:00Z" and len(state["seen"]) == 3
    listing, comments = graph.requests
    assert listing.path == f"/v26.0/{PAGE}/posts"
    assert listing.query == {"fields": "id,message,created_time,permalink_url", "limit": "10"}
    assert comments.path == f"/v26.0/{post['id']}/comments"
    assert comments.query == {"filter": "stream", "order": "reverse_chronological",
                              "fields": COMMENT_FIELDS, "limit": "50"}
    assert comments.headers["authorization"] == f"Bearer {TOKEN}"
    assert comments.headers["user-agent"].startswith("social-listener/")


def test_a_comment_without_its_own_permalink_links_to_the_post(graph: FakeGraph) -> None:
    post = graph.add_post(PAGE, "hello", ago(60))
    comment = graph.add_comment(post["id"], "acme?", ago(5))
    del graph.objects[comment["id"]]["permalink_url"]
    [got] = posts_of(list(make_source(graph).fetch(None)))
    assert got.url == f"{post['permalink_url']}?comment_id={comment['id'].split('_')[-1]}"


def test_pagination_follows_after_and_moves_the_cursor_on_the_last_page(graph: FakeGraph
                                                                       ) -> None:
    post = graph.add_post(PAGE, "hello", ago(600))
    made = [graph.add_comment(post["id"], f"acme {i}", ago(100 - i)) for i in range(5)]
    pages = list(make_source(graph, page_size=2).fetch(None))
    assert [len(p.posts) for p in pages] == [2, 2, 1]
    assert [p.cursor is None for p in pages] == [True, True, False]
    assert ids(pages) == [c["id"] for c in reversed(made)]
    calls = graph.requests_to("/comments")
    assert [c.query.get("after") for c in calls][0] is None
    assert all(c.query.get("after") for c in calls[1:]) and len(calls) == 3
    assert "access_token" not in "".join(c.target for c in calls)  # paging.next is not followed


def test_a_restart_resumes_from_the_saved_cursor(graph: FakeGraph) -> None:
    post = graph.add_post(PAGE, "hello", ago(600))
    graph.add_comment(post["id"], "acme one", ago(50))
    cursor = saved(list(make_source(graph).fetch(None)))
    cursor = json.loads(json.dumps(cursor))  # as stored
    new = graph.add_comment(post["id"], "acme two", ago(5))
    late = graph.add_comment(post["id"], "acme shown late", ago(52))  # within the overlap
    pages = list(make_source(graph).fetch(cursor))
    assert ids(pages) == [new["id"], late["id"]]
    assert threads(pages)[post["id"]]["since"] == "2026-11-20T11:55:00Z"
    again = list(make_source(graph).fetch(saved(pages)))
    assert posts_of(again) == [] and all(p.cursor is None for p in again)  # nothing twice


def test_a_new_post_is_read_whole_and_a_post_past_the_lookback_is_dropped(graph: FakeGraph
                                                                        ) -> None:
    old = graph.add_post(PAGE, "old", ago(6000))
    graph.add_comment(old["id"], "acme", ago(50))
    cursor = saved(list(make_source(graph, lookback_posts=1).fetch(None)))
    new = graph.add_post(PAGE, "new", ago(30))
    early = graph.add_comment(new["id"], "acme first", ago(29))
    pages = list(make_source(graph, lookback_posts=1).fetch(cursor))
    assert ids(pages) == [early["id"]]
    assert set(threads(pages)) == {new["id"]}


def test_first_poll_looks_back_initial_lookback_only(graph: FakeGraph) -> None:
    post = graph.add_post(PAGE, "hello", ago(60 * 24 * 30))
    graph.add_comment(post["id"], "acme a month ago", ago(60 * 24 * 20))
    recent = graph.add_comment(post["id"], "acme today", ago(60))
    pages = list(make_source(graph, initial_lookback=86400).fetch(None))
    assert ids(pages) == [recent["id"]]


def test_a_burst_longer_than_max_pages_is_read_on_next_poll_without_gap(graph: FakeGraph
                                                                       ) -> None:
    post = graph.add_post(PAGE, "hello", ago(600))
    graph.add_comment(post["id"], "acme before", ago(100))
    cursor = saved(list(make_source(graph).fetch(None)))
    burst = [graph.add_comment(post["id"], f"acme burst {i}", ago(50 - i)) for i in range(7)]
    first = list(make_source(graph, page_size=2, max_pages=2).fetch(cursor))
    state = threads(first)[post["id"]]
    assert state["since"] == cursor["threads"][post["id"]]["since"]  # not moved yet
    assert state["pending"]["after"] and state["pending"]["newest"] == "2026-11-20T11:16:00Z"
    newer = graph.add_comment(post["id"], "acme while catching up", ago(1))
    second = list(make_source(graph, page_size=2, max_pages=10).fetch(
        json.loads(json.dumps(saved(first)))))
    assert sorted(ids(first) + ids(second)) == sorted(c["id"] for c in burst)
    assert "pending" not in threads(second)[post["id"]]
    assert threads(second)[post["id"]]["since"] == "2026-11-20T11:16:00Z"
    third = list(make_source(graph).fetch(saved(second)))
    assert ids(third) == [newer["id"]]  # the one that came meanwhile, once


def test_a_stale_paging_cursor_starts_the_cycle_again(graph: FakeGraph) -> None:
    post = graph.add_post(PAGE, "hello", ago(600))
    graph.add_comment(post["id"], "acme before", ago(100))
    cursor = saved(list(make_source(graph).fetch(None)))
    burst = [graph.add_comment(post["id"], f"acme burst {i}", ago(50 - i)) for i in range(5)]
    first = list(make_source(graph, page_size=2, max_pages=1).fetch(cursor))
    graph.delete(burst[3]["id"])  # the item the stored cursor points at
    second = list(make_source(graph, page_size=2, max_pages=10).fetch(saved(first)))
    assert sorted(ids(first) + ids(second)) == sorted(c["id"] for c in burst)


@pytest.mark.parametrize(("code", "headers", "wait"), [
    (4, {}, BLOCK_WAIT),  # application request limit, no regain time
    (32, {"x-business-use-case-usage": json.dumps({PAGE: [{
        "type": "pages", "call_count": 100, "total_cputime": 12, "total_time": 20,
        "estimated_time_to_regain_access": 7}]})}, 420),
    (80001, {"x-business-use-case-usage": json.dumps({PAGE: [{
        "type": "pages", "call_count": 103, "total_cputime": 9, "total_time": 9,
        "estimated_time_to_regain_access": 12}]})}, 720),
    (613, {"Retry-After": "42"}, 42),
])
def test_meta_throttling_is_rate_limited_until_regain(graph: FakeGraph, code: int,
                                                       headers: dict[str, str],
                                                       wait: float) -> None:
    graph.enqueue(400, graph_error(code, f"(#{code}) There have been too many calls"),
                  headers)
    with pytest.raises(RateLimited) as limited:
        list(make_source(graph).fetch(None))
    assert limited.value.retry_after == pytest.approx(wait)


def test_http_429_uses_retry_after(graph: FakeGraph) -> None:
    graph.enqueue(429, "slow down", {"Retry-After": "17"})
    with pytest.raises(RateLimited) as limited:
        list(make_source(graph).fetch(None))
    assert limited.value.retry_after == 17


def test_usage_at_the_threshold_pauses_before_meta_blocks(graph: FakeGraph, tmp_path: Path
                                                          ) -> None:
    post = graph.add_post(PAGE, "hello", ago(500))  # the newest: its comments come first
    other = graph.add_post(PAGE, "other", ago(600))
    kept = graph.add_comment(post["id"], "acme one", ago(50))
    graph.add_comment(other["id"], "acme two", ago(40))
    high = {"call_count": 91, "total_cputime": 10, "total_time": 12}
    graph.enqueue(200, {"data": [_raw(kept)]}, {"x-app-usage": json.dumps(high)},
                  path=f"{post['id']}/comments")
    db = open_db(tmp_path / "t.db")
    now = [NOW]
    source = make_source(graph, clock=lambda: now[0])
    with pytest.raises(RateLimited, match=r"x-app-usage call_count at 91%") as limited:
        collect(db, source, lambda: NOW)
    assert limited.value.retry_after == USAGE_WAIT
    assert len(graph.requests) == 2  # the listing and one post's comments: then it stopped
    assert [r["platform_id"] for r in db["posts"].rows] == [kept["id"]]  # the answer was used
    now[0] = NOW + timedelta(seconds=60)
    with pytest.raises(RateLimited) as again:  # the same source a minute later: still paused
        collect(db, source, lambda: now[0])
    assert again.value.retry_after == USAGE_WAIT - 60
    assert len(graph.requests) == 2  # nothing was sent
    graph.buc_usage = {PAGE: [{"type": "pages", "call_count": 40, "total_cputime": 95,
                               "total_time": 50, "estimated_time_to_regain_access": 3}]}
    with pytest.raises(RateLimited, match="x-business-use-case-usage pages total_cputime") as buc:
        collect(db, make_source(graph), lambda: NOW)
    assert buc.value.retry_after == 180
    graph.buc_usage = None
    assert collect(db, make_source(graph), lambda: NOW) == 1
    assert db["posts"].count == 2


@pytest.mark.parametrize("answer", [
    (500, graph_error(2, "Service temporarily unavailable", kind="OAuthException")),
    (502, b"<html>Bad Gateway</html>"),
    (503, "unavailable"),
])
def test_server_errors_keep_the_cursor(graph: FakeGraph, tmp_path: Path,
                                       answer: tuple[int, Any]) -> None:
    db = open_db(tmp_path / "t.db")
    post = graph.add_post(PAGE, "hello", ago(600))
    graph.add_comment(post["id"], "acme one", ago(50))
    assert collect(db, make_source(graph), lambda: NOW) == 1
    saved = load_cursor(db, "fb")
    for i in range(3):
        graph.add_comment(post["id"], f"acme new {i}", ago(10 - i))
    graph.enqueue(*answer, path="/comments")
    with pytest.raises(SourceError, match=r"HTTP 5\d\d|Meta failed"):
        collect(db, make_source(graph, page_size=2), lambda: NOW)
    assert load_cursor(db, "fb") == saved and db["posts"].count == 1


@pytest.mark.parametrize(("body", "error"), [
    (b"\x00{<not json", "not a JSON object"),
    ({"data": "nope"}, "no 'data' list"),
    ([1, 2], "not a JSON object"),
])
def test_a_malformed_answer_fails_the_poll(graph: FakeGraph, body: Any, error: str) -> None:
    graph.enqueue(200, body)
    with pytest.raises(SourceError, match=error):
        list(make_source(graph).fetch(None))


def test_malformed_comments_are_rejected_and_the_rest_kept(graph: FakeGraph) -> None:
    post = graph.add_post(PAGE, "hello", ago(600))
    good = graph.add_comment(post["id"], "acme good", ago(30))
    graph.enqueue(200, {"data": [
        {"id": "1_2", "message": "acme no time"},
        {"id": "1_3", "message": {"text": "?"}, "created_time": graph_time(ago(20))},
        "not an object",
        {"id": good["id"], "message": "acme good", "created_time": good["created_time"]},
    ]}, path="/comments")
    pages = list(make_source(graph).fetch(None))
    assert ids(pages) == [good["id"]]
    reasons = [r.reason for p in pages for r in p.rejected]
    assert reasons == ["item 1_2 without a valid created_time: None", "'message' is not text",
                       "item is a str, not an object"]


def test_a_deleted_post_is_skipped_and_the_poll_goes_on(graph: FakeGraph) -> None:
    gone = graph.add_post(PAGE, "deleted soon", ago(60))
    post = graph.add_post(PAGE, "hello", ago(600))
    kept = graph.add_comment(post["id"], "acme stays", ago(5))
    graph.enqueue(400, graph_error(100, f"Unsupported get request. Object with ID '{gone['id']}'"
                                   " does not exist", subcode=33, kind="GraphMethodException"),
                  path=f"{gone['id']}/comments")
    pages = list(make_source(graph).fetch(None))
    assert ids(pages) == [kept["id"]]
    assert set(threads(pages)) == {post["id"]}


def test_a_deleted_comment_is_no_longer_listed(graph: FakeGraph) -> None:
    post = graph.add_post(PAGE, "hello", ago(60))
    doomed = graph.add_comment(post["id"], "acme spam", ago(5))
    kept = graph.add_comment(post["id"], "acme fine", ago(4))
    graph.delete(doomed["id"])
    assert ids(list(make_source(graph).fetch(None))) == [kept["id"]]


def test_duplicates_across_pages_are_stored_once(graph: FakeGraph, tmp_path: Path) -> None:
    post = graph.add_post(PAGE, "hello", ago(600))
    made = [graph.add_comment(post["id"], f"acme {i}", ago(50 - i)) for i in range(4)]
    after = "QVFIUjJfZAkZA"
    graph.enqueue(200, {"data": [_raw(made[3]), _raw(made[2])], "paging": {
        "cursors": {"before": "x", "after": after}, "next": "https://example/next"}},
        path="/comments")
    graph.enqueue(200, {"data": [_raw(made[2]), _raw(made[1]), _raw(made[0])]},
                  path="/comments")  # a comment moved: page 2 repeats one
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(graph), lambda: NOW) == 4
    assert db["posts"].count == 4
    assert graph.requests_to("/comments")[1].query["after"] == after
    assert collect(db, make_source(graph), lambda: NOW) == 0


def _raw(comment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in comment.items() if not k.startswith("_")}


def test_no_query_is_sent_and_brands_filter_locally(graph: FakeGraph, tmp_path: Path) -> None:
    """The Graph API has no search over comments: nothing is sent but the Page's ids. Every
    comment is tagged with ``brand``; with ``brands:`` on the source the collect stage keeps
    only what their queries accept (the brand's query is applied locally)."""
    post = graph.add_post(PAGE, "hello", ago(600))
    graph.add_comment(post["id"], "love the new look", ago(30))
    match = graph.add_comment(post["id"], "acme cloud is down", ago(20))
    assert not any(k in r.query for r in graph.requests for k in ("q", "query", "search"))
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(graph), lambda: NOW) == 2  # brand tagging only: all kept
    assert {r["brand"] for r in db["posts"].rows} == {"acme"}
    db2 = open_db(tmp_path / "t2.db")
    brand = Brand("acme", "acme cloud", parse('"acme cloud"'))
    assert collect(db2, make_source(graph, brands=["acme"]), lambda: NOW, brands=[brand]) == 1
    assert [r["platform_id"] for r in db2["posts"].rows] == [match["id"]]
    assert source_class("facebook").searches is False


def test_the_token_never_reaches_logs_errors_or_urls(graph: FakeGraph,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "listener"):
        caplog.set_level(logging.DEBUG, logger=name)
    post = graph.add_post(PAGE, "hello", ago(600))
    for i in range(3):
        graph.add_comment(post["id"], f"acme {i}", ago(30 - i))
    pages = list(make_source(graph, page_size=1).fetch(None))
    errors = []
    graph.enqueue(400, graph_error(190, "Error validating access token: Session has expired"))
    graph.enqueue(500, {"error": {"message": "oops", "code": 1}})
    for _ in range(2):
        with pytest.raises(SourceError) as failed:
            list(make_source(graph).fetch(None))
        errors.append(str(failed.value))
    assert "expired or was invalidated" in errors[0]
    assert "HTTP Request: GET" in caplog.text  # httpx did log its requests at DEBUG/INFO
    assert TOKEN not in caplog.text
    assert not any(TOKEN in e for e in errors)
    assert not any(TOKEN in r.target for r in graph.requests)  # only in the header
    assert TOKEN not in json.dumps([p.cursor for p in pages])
    assert TOKEN not in json.dumps([p.raw for p in posts_of(pages)])
    assert TOKEN not in repr(make_source(graph).config)


def test_token_permission_and_page_errors_say_what_to_do(graph: FakeGraph) -> None:
    with pytest.raises(SourceError, match="expired or was invalidated"):
        list(FacebookSource(FacebookSourceConfig(
            type="facebook", name="fb", base_url=graph.base_url, page_id=PAGE,
            access_token="EAAwrong-token-value"), SourceContext()).fetch(None))
    graph.enqueue(400, graph_error(10, "(#10) This endpoint requires the "
                                   "'pages_read_engagement' permission"))
    with pytest.raises(SourceError, match="permission denied.*needs pages_read_engagement"):
        list(make_source(graph).fetch(None))
    with pytest.raises(SourceError, match="no such object.*check page_id"):
        list(make_source(graph, page_id="999").fetch(None))


def test_check_reads_the_page_once(graph: FakeGraph) -> None:
    assert make_source(graph).check() == ("token accepted; Page 'Acme' (104000000000001) "
                                          "readable with Graph v26.0")
    [request] = graph.requests
    assert request.path == f"/v26.0/{PAGE}" and request.query == {"fields": "id,name"}


def test_graph_version_is_configurable(graph: FakeGraph) -> None:
    list(make_source(graph, graph_version="v25.0").fetch(None))
    assert graph.versions == ["v25.0"]
    with pytest.raises(ValidationError):
        make_source(graph, graph_version="25")


def test_backfill_reads_posts_since_and_their_comments(graph: FakeGraph) -> None:
    old = graph.add_post(PAGE, "old", NOW - timedelta(days=40))
    mid = graph.add_post(PAGE, "mid", NOW - timedelta(days=20))
    graph.add_comment(old["id"], "acme on an old post", NOW - timedelta(days=19))
    wanted = graph.add_comment(mid["id"], "acme within", NOW - timedelta(days=10))
    for i in range(12):
        graph.add_post(PAGE, f"recent {i}", NOW - timedelta(days=5, minutes=i))
    pages = list(make_source(graph, page_size=5).backfill(NOW - timedelta(days=25)))
    assert all(p.cursor is None for p in pages)
    assert ids(pages) == [wanted["id"]]  # not the comment on the post older than since
    listing = graph.requests_to("/posts")[0]
    assert listing.query["since"] == str(int((NOW - timedelta(days=25)).timestamp()))


def test_visitor_posts_are_collected_with_their_comments(graph: FakeGraph) -> None:
    visit = graph.add_post(PAGE, "acme, where is my refund?", ago(30), visitor="Bob Jones")
    reply = graph.add_comment(visit["id"], "acme same for me", ago(10))
    pages = list(make_source(graph, visitor_posts=True).fetch(None))
    got = {p.platform_id: p for p in posts_of(pages)}
    assert set(got) == {visit["id"], reply["id"]}
    assert got[visit["id"]].author == "Bob Jones"
    assert got[visit["id"]].raw["kind"] == "visitor_post"
    again = list(make_source(graph, visitor_posts=True).fetch(saved(pages)))
    assert posts_of(again) == []


def test_settings() -> None:
    config = FacebookSourceConfig(type="facebook", name="fb", page_id="1", access_token="t0k3n!")
    assert [str(e) for e in endpoints(config)] == ["https://graph.facebook.com:443"]
    assert config.graph_version == "v26.0"
    with pytest.raises(ValidationError):
        FacebookSourceConfig(type="facebook", name="fb", page_id="acme", access_token="x")
    with pytest.raises(ValidationError):
        FacebookSourceConfig(type="facebook", name="fb", page_id="1")  # no token


def test_end_to_end_a_negative_comment_becomes_a_slack_alert(tmp_path: Path) -> None:
    now = utcnow()
    with FakeGraph() as fake:
        fake.add_page(PAGE)
        post = fake.add_post(PAGE, "Our new plan is live", now - timedelta(hours=2))
        comment = fake.add_comment(post["id"], NEGATIVE[0] + " acme", now - timedelta(minutes=10),
                                   author="Dana Miller")
        entry = (f"  - type: facebook\n    name: fb\n    base_url: \"{fake.base_url}\"\n"
                 f"    page_id: \"{PAGE}\"\n    access_token: {{\"$env\": META_TOKEN}}\n"
                 "    brand: acme\n")
        outcome = run_once_into_alert(tmp_path, entry, {"META_TOKEN": TOKEN})
    assert len(outcome.alerts) == 1 and NEGATIVE[0][:40] in outcome.alerts[0]
    [stored] = outcome.posts
    assert (stored["platform"], stored["platform_id"], stored["source"]) == (
        "facebook", comment["id"], "fb")
    assert (stored["author"], stored["author_followers"], stored["kind"]) == (
        "Dana Miller", None, "mention")
    assert stored["url"] == comment["permalink_url"]
    assert stored["created_at"].startswith(comment["created_time"][:16])
    assert TOKEN not in outcome.stdout + outcome.stderr
