"""The Discourse source against a fake forum over real HTTP (httpx through the guard, 127.0.0.1)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.core.errors import ConfigError, RateLimited, SourceError
from listener.core.models import Page, parse_iso
from listener.core.query import Brand, parse
from listener.sources.base import SourceContext
from listener.sources.collect import backfill, collect
from listener.sources.discourse import DiscourseSource, DiscourseSourceConfig
from storage.db import load_cursor, open_db
from tests.e2e import NEGATIVE
from tests.fakes.discourse_api import API_KEY, NOW, FakeDiscourse, minutes_ago
from tests.sources.e2e import run_once_into_alert

T = int(NOW.timestamp())
ACME = Brand("acme", "acme", parse("acme"))


@pytest.fixture
def forum() -> Iterator[FakeDiscourse]:
    with FakeDiscourse() as fake:
        yield fake


def make_source(fake: FakeDiscourse, brands: tuple[Brand, ...] = (), timeout: float = 5.0,
                **settings: Any) -> DiscourseSource:
    settings.setdefault("brand", "acme")
    config = DiscourseSourceConfig(type="discourse", name="forum", base_url=fake.base_url,
                                   **settings)
    return DiscourseSource(config, SourceContext(clock=lambda: NOW, http_timeout=timeout,
                                                 brands=brands))


def ids(pages: list[Page]) -> list[int]:
    return [post.raw["id"] for page in pages for post in page.posts]


def roundtrip(cursor: Any) -> Any:
    return json.loads(json.dumps(cursor))  # what storage does between two runs


# -- latest mode: every new post ------------------------------------------------------------


def test_first_fetch_turns_posts_into_normalised_posts(forum: FakeDiscourse) -> None:
    topic = forum.add_topic(
        "Acme billing doubled", "<p>Is <em>anyone</em> else&#39;s bill up?</p><p>Mine doubled.</p>",
        username="alice", created_at=minutes_ago(30), category_id=5, post_id=2001)
    forum.add_post(topic, '<aside class="quote no-group" data-username="alice"><blockquote>'
                   "<p>Mine doubled.</p></blockquote></aside><p>Same here, support is silent."
                   '</p><aside class="onebox"><article>Acme pricing page</article></aside>',
                   username="bob", created_at=minutes_ago(10), post_id=2002)
    old = forum.add_topic("Acme, two days ago", "<p>old</p>", created_at=NOW - timedelta(days=2),
                          post_id=1500)  # before initial_lookback: not read
    [page] = list(make_source(forum).fetch(None))
    reply, first = page.posts
    assert (reply.platform, reply.platform_id) == ("discourse", f"127.0.0.1:{forum.port}/p/2002")
    assert reply.text == "Same here, support is silent."  # the quote and the onebox are not hers
    assert (reply.author, reply.author_followers, reply.lang, reply.kind, reply.brand) == (
        "bob", None, None, "mention", "acme")
    assert reply.url == f"{forum.base_url}/t/acme-billing-doubled/{topic}/2"
    assert reply.created_at == minutes_ago(10)
    assert (reply.thread, first.thread) == (str(topic), str(topic))
    assert first.text == "Acme billing doubled\n\nIs anyone else's bill up?\n\nMine doubled."
    assert first.url == f"{forum.base_url}/t/acme-billing-doubled/{topic}/1"
    assert first.raw["category_id"] == 5 and first.raw["topic_title"] == "Acme billing doubled"
    assert "cooked" not in first.raw and "raw" not in first.raw
    assert page.cursor == {"version": 1, "streams": {"latest": {"since_id": 2002}}}
    assert forum.requests[0].path == "/posts.json" and forum.requests[0].query == {}
    assert forum.requests[0].headers["user-agent"].startswith("social-listener/")
    assert "api-key" not in forum.requests[0].headers  # anonymous unless a key is configured
    assert old not in {p.raw["topic_id"] for p in page.posts}


def test_pages_are_followed_with_before_and_every_page_carries_the_cursor(
        forum: FakeDiscourse) -> None:
    forum.page_size = 2
    topic = forum.add_topic("acme 1", "<p>one</p>", created_at=minutes_ago(50))
    for n in range(2, 6):
        forum.add_post(topic, f"<p>acme {n}</p>", created_at=minutes_ago(50 - n))
    pages = list(make_source(forum).fetch(None))
    assert ids(pages) == [1005, 1004, 1003, 1002, 1001]
    assert [r.query.get("before") for r in forum.requests] == [None, "1004", "1002", "1001"]
    assert [p.cursor["streams"]["latest"] for p in pages] == [
        {"since_id": None, "pending": {"before": 1004, "newest": 1005}},
        {"since_id": None, "pending": {"before": 1002, "newest": 1005}},
        {"since_id": None, "pending": {"before": 1001, "newest": 1005}},
        {"since_id": 1005},  # the forum's first post was passed: the cycle is complete
    ]


def test_a_restart_resumes_from_the_saved_cursor_nothing_twice(forum: FakeDiscourse) -> None:
    topic = forum.add_topic("acme one", "<p>one</p>", created_at=minutes_ago(30))
    forum.add_post(topic, "<p>acme two</p>", created_at=minutes_ago(20))
    cursor = roundtrip(list(make_source(forum).fetch(None))[-1].cursor)
    forum.add_post(topic, "<p>acme three</p>", created_at=minutes_ago(5))
    pages = list(make_source(forum).fetch(cursor))  # a fresh source, the stored cursor
    assert ids(pages) == [1003]
    assert pages[-1].cursor == {"version": 1, "streams": {"latest": {"since_id": 1003}}}
    assert list(make_source(forum).fetch(roundtrip(pages[-1].cursor)))[-1].posts == []


def test_a_burst_larger_than_max_pages_is_read_over_polls_without_a_gap(
        forum: FakeDiscourse) -> None:
    forum.page_size = 2
    topic = forum.add_topic("acme", "<p>first</p>", created_at=minutes_ago(60))
    first = list(make_source(forum, max_pages=2).fetch(None))
    assert ids(first) == [1001]
    for n in range(7):
        forum.add_post(topic, f"<p>acme {n}</p>", created_at=minutes_ago(30 - n))  # 1002…1008
    second = list(make_source(forum, max_pages=2).fetch(roundtrip(first[-1].cursor)))
    assert ids(second) == [1008, 1007, 1006, 1005]
    assert second[-1].cursor["streams"]["latest"] == {
        "since_id": 1001, "pending": {"before": 1005, "newest": 1008}}
    forum.add_post(topic, "<p>acme late</p>", created_at=minutes_ago(1))  # 1009
    third = list(make_source(forum, max_pages=2).fetch(roundtrip(second[-1].cursor)))
    assert ids(third) == [1004, 1003, 1002]  # the older rest first, down to the mark
    assert third[-1].cursor["streams"]["latest"] == {"since_id": 1008}
    assert ids(list(make_source(forum).fetch(roundtrip(third[-1].cursor)))) == [1009]


def test_categories_keep_posts_of_those_categories_and_their_subcategories(
        forum: FakeDiscourse) -> None:
    forum.add_topic("acme general", "<p>g</p>", category_id=1, created_at=minutes_ago(3))
    forum.add_topic("acme support", "<p>s</p>", category_id=5, created_at=minutes_ago(2))
    forum.add_topic("acme billing", "<p>b</p>", category_id=7, created_at=minutes_ago(1))
    pages = list(make_source(forum, categories=["support"]).fetch(None))
    assert ids(pages) == [1003, 1002]  # billing is a subcategory of support
    assert forum.requests[0].path == "/categories.json"
    assert forum.requests[0].query == {"include_subcategories": "true"}
    assert ids(list(make_source(forum, categories=[7, "General"]).fetch(None))) == [1003, 1001]


def test_an_unknown_category_fails_the_poll_with_its_name(forum: FakeDiscourse) -> None:
    with pytest.raises(SourceError, match="no category 'nope'"):
        list(make_source(forum, categories=["support", "nope"]).fetch(None))


# -- failures: rate limits, 5xx, malformed answers ------------------------------------------


def test_429_raises_rate_limited_with_retry_after(forum: FakeDiscourse) -> None:
    forum.rate_limit(42)
    with pytest.raises(RateLimited, match="performed this action too many times") as caught:
        list(make_source(forum).fetch(None))
    assert caught.value.retry_after == 42


def test_429_without_retry_after_waits_the_bodys_wait_seconds_else_60(
        forum: FakeDiscourse) -> None:
    forum.rate_limit(17, header=False)
    with pytest.raises(RateLimited) as caught:
        list(make_source(forum).fetch(None))
    assert caught.value.retry_after == 17
    forum.enqueue(429, {"failed": "FAILED", "message": "slow down"})  # search's own 429
    with pytest.raises(RateLimited) as caught:
        list(make_source(forum).fetch(None))
    assert caught.value.retry_after == 60


def test_a_rate_limit_pauses_only_this_source_in_the_runtime(tmp_path: Path) -> None:
    from listener.config import load_config
    from listener.pipeline import Runtime
    from storage import source_pauses

    with FakeDiscourse() as fake:
        fake.add_topic("acme", "<p>x</p>", created_at=minutes_ago(5))
        path = tmp_path / "config.yaml"
        path.write_text(
            "storage: {path: t.db}\nbrands: [{name: acme, query: acme}]\nsources:\n"
            f'  - {{type: discourse, name: forum, base_url: "{fake.base_url}", brand: acme}}\n'
            f"  - {{type: file, name: other, path: posts.jsonl, brand: acme}}\n",
            encoding="utf-8")
        (tmp_path / "posts.jsonl").write_text("", encoding="utf-8")
        runtime = Runtime(load_config(path, environ={}), clock=lambda: NOW,
                          sleep=lambda _s: None)
        runtime.migrate()
        forum_source, other = runtime.sources()
        fake.rate_limit(30)
        assert runtime.run_collect(forum_source) == 0
        assert runtime.run_collect(other) == 0
        db = open_db(tmp_path / "t.db")
        assert source_pauses.pause_end(db, "forum", NOW) == NOW + timedelta(seconds=30)
        assert source_pauses.pause_end(db, "other", NOW) is None
        runtime.close()


def test_server_error_raises_and_keeps_the_cursor_before_unseen_posts(
        forum: FakeDiscourse, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    forum.page_size = 2
    topic = forum.add_topic("acme", "<p>first</p>", created_at=minutes_ago(60))
    collect(db, make_source(forum), lambda: NOW)
    assert load_cursor(db, "forum") == {"version": 1, "streams": {"latest": {"since_id": 1001}}}
    for n in range(4):
        forum.add_post(topic, f"<p>acme {n}</p>", created_at=minutes_ago(30 - n))  # 1002…1005
    forum.enqueue(200, {"latest_posts": [forum.posts[1005] | {"topic_title": "acme"},
                                         forum.posts[1004] | {"topic_title": "acme"}]})
    forum.enqueue(502, "<html>Bad Gateway</html>")
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(forum), lambda: NOW)
    # the first page is stored with a cursor that still reaches down to the mark
    assert load_cursor(db, "forum")["streams"]["latest"] == {
        "since_id": 1001, "pending": {"before": 1004, "newest": 1005}}
    assert collect(db, make_source(forum), lambda: NOW) == 2  # 1003, 1002: nothing lost
    assert db["posts"].count == 5
    assert load_cursor(db, "forum")["streams"]["latest"] == {"since_id": 1005}


def test_timeout_raises_source_error(forum: FakeDiscourse) -> None:
    forum.enqueue(200, {"latest_posts": []}, delay=2.0)
    with pytest.raises(SourceError, match="did not answer within 0.2s"):
        list(make_source(forum, timeout=0.2).fetch(None))


@pytest.mark.parametrize("body", ["<html>not json</html>", {"latest_posts": "nope"}, [1, 2],
                                  {"latest_posts": [{"no": "id"}]}])
def test_malformed_answer_raises_and_keeps_the_cursor(forum: FakeDiscourse, body: Any,
                                                      tmp_path: Path) -> None:
    forum.add_topic("acme", "<p>x</p>", created_at=minutes_ago(5))
    db = open_db(tmp_path / "t.db")
    collect(db, make_source(forum), lambda: NOW)
    before = load_cursor(db, "forum")
    forum.enqueue(200, body)
    with pytest.raises(SourceError):
        collect(db, make_source(forum), lambda: NOW)
    assert load_cursor(db, "forum") == before


def test_malformed_records_are_rejected_and_the_rest_kept(forum: FakeDiscourse) -> None:
    good = forum.add_post(forum.add_topic("acme", "<p>ok</p>", created_at=minutes_ago(9)),
                          "<p>fine</p>", created_at=minutes_ago(8))
    forum.enqueue(200, {"latest_posts": [
        good | {"topic_title": "acme", "id": 1010, "created_at": "yesterday-ish"},
        good | {"topic_title": "acme", "id": 1009, "cooked": {"not": "html"}},
        good | {"topic_title": "acme", "id": 1008, "username": None},
        "not a post",
        good | {"topic_title": "acme"},
    ]})
    page, rest = list(make_source(forum).fetch({"version": 1, "streams": {
        "latest": {"since_id": 1001}}}))
    assert ids([page, rest]) == [1002]
    assert [r.reason for r in page.rejected] == [
        "created_at 'yesterday-ish' is not an ISO 8601 time", "'cooked' is not a string",
        "post without a username", "post without a numeric id"]
    assert rest.cursor["streams"]["latest"] == {"since_id": 1010}


def test_deleted_hidden_whispers_and_small_actions_are_skipped(forum: FakeDiscourse) -> None:
    forum.show_everything = True  # as a staff key sees /posts.json
    topic = forum.add_topic("acme", "<p>kept</p>", created_at=minutes_ago(9))
    forum.add_post(topic, "<p>gone</p>", deleted_at="2026-11-20T11:55:00.000Z")
    forum.add_post(topic, "<p>(post deleted by author)</p>", user_deleted=True)
    forum.add_post(topic, "<p>flagged</p>", hidden=True)
    forum.add_post(topic, "<p>staff only</p>", post_type=4)
    forum.add_post(topic, "", post_type=3, action_code="closed.enabled")
    forum.add_post(topic, "<p>kept too</p>")
    pages = list(make_source(forum).fetch(None))
    assert ids(pages) == [1007, 1001] and pages[0].rejected == []
    assert pages[-1].cursor["streams"]["latest"] == {"since_id": 1007}


def test_duplicates_across_pages_are_handed_out_and_stored_once(
        forum: FakeDiscourse, tmp_path: Path) -> None:
    forum.page_size = 2
    forum.repeat_boundary = True  # each page repeats the last post of the one before
    topic = forum.add_topic("acme", "<p>0</p>", created_at=minutes_ago(30))
    for n in range(1, 5):
        forum.add_post(topic, f"<p>acme {n}</p>", created_at=minutes_ago(30 - n))
    pages = list(make_source(forum).fetch(None))
    assert ids(pages) == [1005, 1004, 1003, 1002, 1001]
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(forum), lambda: NOW) == 5
    assert db["posts"].count == 5
    assert collect(db, make_source(forum), lambda: NOW) == 0


def test_brands_on_the_source_keep_only_matching_posts(forum: FakeDiscourse,
                                                       tmp_path: Path) -> None:
    forum.add_topic("acme outage", "<p>down</p>", created_at=minutes_ago(3))
    forum.add_topic("unrelated", "<p>cats</p>", created_at=minutes_ago(2))
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(forum, brand=None), lambda: NOW, brands=(ACME,)) == 1
    assert [r["brand"] for r in db["posts"].rows] == ["acme"]
    assert load_cursor(db, "forum")["streams"]["latest"] == {"since_id": 1002}


# -- search mode ----------------------------------------------------------------------------


def test_search_sends_each_branch_with_filters_and_reads_hit_topics(
        forum: FakeDiscourse, tmp_path: Path) -> None:
    brand = Brand("acme", "q", parse('("acme cloud" OR @acmecloud) -giveaway'))
    t1 = forum.add_topic("Acme Cloud is down", "<p>since 9</p>", category_id=5,
                         created_at=minutes_ago(40))
    forum.add_post(t1, "<p>me too, no word from them</p>", created_at=minutes_ago(30))
    forum.add_topic("@acmecloud status", "<p>status page is green</p>", category_id=7,
                    created_at=minutes_ago(20))
    forum.add_topic("acme cloud giveaway", "<p>free stuff</p>", category_id=5,
                    created_at=minutes_ago(10))
    forum.add_topic("acme cloud in general", "<p>elsewhere</p>", category_id=1,
                    created_at=minutes_ago(5))
    source = make_source(forum, brands=(brand,), brand=None, search=True, categories=["support"])
    pages = list(source.fetch(None))
    searches = [r.query for r in forum.requests if r.path == "/search.json"]
    after = (NOW - timedelta(days=1, seconds=600) - timedelta(days=1)).date().isoformat()
    assert [s["q"] for s in searches] == [
        f'"acme cloud" category:support order:latest after:{after}',
        f"acmecloud category:support order:latest after:{after}",  # '@' is an author filter
    ]
    assert all("giveaway" not in s["q"] and s["page"] == "1" for s in searches)
    assert {r.path for r in forum.requests} == {"/search.json", f"/t/{t1}.json",
                                                 f"/t/{t1 + 1}.json", f"/t/{t1 + 2}.json"}
    assert sorted(ids(pages)) == [1001, 1002, 1003, 1004]
    reply = next(p for page in pages for p in page.posts if p.raw["id"] == 1002)
    assert reply.text == "me too, no word from them"  # the hit topic's other posts come too
    assert (reply.brand, reply.thread, reply.url) == (
        "acme", str(t1), f"{forum.base_url}/t/acme-cloud-is-down/{t1}/2")
    assert reply.raw["category_id"] == 5 and reply.raw["topic_title"] == "Acme Cloud is down"
    db = open_db(tmp_path / "t.db")  # the collect stage applies the whole query
    assert collect(db, make_source(forum, brands=(brand,), brand=None, search=True,
                                   categories=["support"]), lambda: NOW, brands=(brand,)) == 2
    assert sorted(r["platform_id"].rsplit("/", 1)[1] for r in db["posts"].rows) == [
        "1001", "1003"]  # "me too" does not name acme; the giveaway is excluded


def test_search_resumes_by_page_and_skips_what_it_saw(forum: FakeDiscourse) -> None:
    forum.search_page_size = 2
    for n in range(5):
        forum.add_topic(f"acme {n}", f"<p>{n}</p>", created_at=minutes_ago(50 - n))
    source = make_source(forum, brands=(ACME,), search=True, max_pages=2)
    first = list(source.fetch(None))
    assert ids(first) == [1005, 1004, 1003, 1002]
    pending = first[-1].cursor["streams"]["search:acme"]
    assert pending["pending"] == {"page": 3, "high": int(minutes_ago(46).timestamp())}
    assert pending["since"] == T - 86400
    second = list(make_source(forum, brands=(ACME,), search=True, max_pages=2).fetch(
        roundtrip(first[-1].cursor)))
    assert ids(second) == [1001]
    state = second[-1].cursor["streams"]["search:acme"]
    assert state["since"] == int(minutes_ago(46).timestamp()) and "pending" not in state
    assert state["seen"] == ["1005", "1004", "1003", "1002", "1001"]
    # a post indexed late, inside the overlap window, is still found; nothing comes twice
    late = forum.add_topic("acme late", "<p>late</p>", created_at=minutes_ago(47))
    third = list(make_source(forum, brands=(ACME,), search=True).fetch(
        roundtrip(second[-1].cursor)))
    assert ids(third) == [forum.topics[late].post_ids[0]]


def test_a_rate_limit_inside_a_search_page_keeps_the_topics_read_before_it(
        forum: FakeDiscourse, tmp_path: Path) -> None:
    topics = [forum.add_topic(f"acme {n}", f"<p>{n}</p>", created_at=minutes_ago(30 - n))
              for n in range(3)]
    forum.rate_limit(20, path=f"/t/{topics[1]}.json")  # newest first: topics[2] is read first
    db = open_db(tmp_path / "t.db")
    source = make_source(forum, brands=(ACME,), search=True)
    with pytest.raises(RateLimited):
        collect(db, source, lambda: NOW, brands=(ACME,))
    assert db["posts"].count == 1
    assert load_cursor(db, "forum")["streams"]["search:acme"]["pending"] == {
        "page": 1, "high": int(minutes_ago(28).timestamp()), "done": [topics[2]]}
    forum.reset()
    assert collect(db, make_source(forum, brands=(ACME,), search=True), lambda: NOW,
                   brands=(ACME,)) == 2
    assert [r.path for r in forum.requests] == [
        "/search.json", f"/t/{topics[1]}.json", f"/t/{topics[0]}.json"]
    state = load_cursor(db, "forum")["streams"]["search:acme"]
    assert "pending" not in state and state["since"] == int(minutes_ago(28).timestamp())
    assert db["posts"].count == 3


def test_search_reads_long_topics_from_their_newest_chunk(forum: FakeDiscourse) -> None:
    start = NOW - timedelta(days=3)
    topic = forum.add_topic("acme thread", "<p>start</p>", created_at=start)
    for n in range(30):  # 1002…1031, days ago
        forum.add_post(topic, f"<p>reply {n}</p>", created_at=start + timedelta(minutes=n))
    for n in range(25):  # 1032…1056, this hour
        forum.add_post(topic, f"<p>acme again {n}</p>", created_at=minutes_ago(50 - n))
    pages = list(make_source(forum, brands=(ACME,), search=True).fetch(None))
    assert sorted(ids(pages)) == list(range(1032, 1057))
    chunks = [r.query_lists["post_ids[]"] for r in forum.requests
              if r.path == f"/t/{topic}/posts.json"]
    # the first chunk (1001…1020) came with the topic; the rest from the newest back, until
    # a chunk reaches posts older than the window
    assert chunks == [[str(i) for i in range(1037, 1057)], [str(i) for i in range(1021, 1037)]]


def test_search_skips_a_deleted_topic(forum: FakeDiscourse) -> None:
    gone = forum.add_topic("acme gone", "<p>x</p>", created_at=minutes_ago(3))
    forum.add_topic("acme here", "<p>y</p>", created_at=minutes_ago(2))
    forum.enqueue(404, {"errors": ["not found"], "error_type": "not_found"},
                  path=f"/t/{gone}.json")
    pages = list(make_source(forum, brands=(ACME,), search=True).fetch(None))
    assert ids(pages) == [1002] and all(page.rejected == [] for page in pages)
    assert pages[-1].cursor["streams"]["search:acme"]["seen"] == ["1002"]


def test_search_duplicates_across_queries_are_stored_once(forum: FakeDiscourse,
                                                          tmp_path: Path) -> None:
    brands = (Brand("acme", "q", parse("acme OR widget")),
              Brand("globex", "globex", parse("globex")))
    forum.add_topic("acme widget globex", "<p>all three</p>", created_at=minutes_ago(3))
    pages = list(make_source(forum, brands=brands, brand=None, search=True).fetch(None))
    assert ids(pages) == [1001]
    db = open_db(tmp_path / "t.db")
    source = make_source(forum, brands=brands, brand=None, search=True)
    assert collect(db, source, lambda: NOW, brands=brands) == 1
    [row] = list(db["posts"].rows)
    assert row["brand"] == "acme"
    assert db["post_extra_brands"].count == 1  # globex too


def test_search_needs_brands_on_the_source(forum: FakeDiscourse) -> None:
    with pytest.raises(ConfigError, match="brands"):
        make_source(forum, search=True)


def test_search_429_and_malformed_answers(forum: FakeDiscourse) -> None:
    forum.add_topic("acme", "<p>x</p>", created_at=minutes_ago(3))
    forum.rate_limit(9, path="/search.json")
    with pytest.raises(RateLimited) as caught:
        list(make_source(forum, brands=(ACME,), search=True).fetch(None))
    assert caught.value.retry_after == 9
    forum.enqueue(200, {"posts": "nope"}, path="/search.json")
    with pytest.raises(SourceError, match="no 'posts' list"):
        list(make_source(forum, brands=(ACME,), search=True).fetch(None))
    forum.enqueue(200, {"post_stream": {"posts": 3}}, path="/t/")
    with pytest.raises(SourceError, match="unexpected answer for topic"):
        list(make_source(forum, brands=(ACME,), search=True).fetch(None))


# -- backfill, check, config, secrets ---------------------------------------------------------


def test_backfill_walks_back_to_since_without_moving_the_cursor(
        forum: FakeDiscourse, tmp_path: Path) -> None:
    forum.page_size = 2
    topic = forum.add_topic("acme", "<p>0</p>", created_at=NOW - timedelta(days=12))
    for n in range(1, 6):
        forum.add_post(topic, f"<p>acme {n}</p>", created_at=NOW - timedelta(days=12 - 2 * n))
    pages = list(make_source(forum).backfill(NOW - timedelta(days=9)))
    assert ids(pages) == [1006, 1005, 1004, 1003]  # 1002 (day -10) and older are before since
    db = open_db(tmp_path / "t.db")
    assert backfill(db, make_source(forum), NOW - timedelta(days=9), lambda: NOW) == 4
    assert load_cursor(db, "forum") is None
    search = list(make_source(forum, brands=(ACME,), search=True).backfill(
        NOW - timedelta(days=9)))
    assert ids(search) == [1006, 1005, 1004, 1003]


def test_check_proves_the_key_or_the_anonymous_forum() -> None:
    with FakeDiscourse(api_key=API_KEY) as fake:
        keyed = make_source(fake, api_key=API_KEY, api_username="system")
        assert keyed.check() == f"API key accepted for user system on {fake.base_url}"
        assert make_source(fake).check().startswith("forum 'Acme Community' reachable")
        bad = make_source(fake, api_key="dk_wrong_key_000000", api_username="system")
        with pytest.raises(SourceError, match="HTTP 403"):
            bad.check()
        assert [r.path for r in fake.requests] == ["/session/current.json",
                                                    "/site/basic-info.json",
                                                    "/session/current.json"]


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="api_key needs api_username"):
        DiscourseSourceConfig(type="discourse", name="f", base_url="https://f.example",
                              api_key="k" * 20)
    with pytest.raises(ValidationError, match="http"):
        DiscourseSourceConfig(type="discourse", name="f", base_url="community.acme.com")
    config = DiscourseSourceConfig(type="discourse", name="f", base_url="https://f.example/x/",
                                   categories=[5, " support "])
    assert (config.base_url, config.categories) == ("https://f.example/x", ["5", "support"])


def test_an_unreadable_cursor_starts_over(forum: FakeDiscourse,
                                          caplog: pytest.LogCaptureFixture) -> None:
    forum.add_topic("acme", "<p>x</p>", created_at=minutes_ago(3))
    bad = {"version": 1, "streams": {"latest": {"since_id": "12"}}}
    assert ids(list(make_source(forum).fetch(bad))) == [1001]
    assert "bad cursor entry" in caplog.text


def test_the_api_key_goes_in_headers_and_never_into_logs_or_urls(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "listener"):
        caplog.set_level(logging.DEBUG, logger=name)
    with FakeDiscourse(api_key=API_KEY) as fake:
        fake.add_topic("acme", "<p>x</p>", created_at=minutes_ago(3))
        source = make_source(fake, api_key=API_KEY, api_username="system")
        list(source.fetch(None))
        fake.enqueue(500, {"errors": ["boom"]})
        with pytest.raises(SourceError) as failed:
            list(source.fetch(None))
        bad = make_source(fake, api_key="dk_other_key_1234567", api_username="system")
        with pytest.raises(SourceError) as refused:
            list(bad.fetch(None))
        requests = fake.requests
    assert requests[0].headers["api-key"] == API_KEY
    assert requests[0].headers["api-username"] == "system"
    assert "HTTP Request: GET" in caplog.text  # httpx did log its requests at DEBUG
    assert API_KEY not in caplog.text
    assert all(API_KEY not in r.target for r in requests)
    assert API_KEY not in str(failed.value) and API_KEY not in str(refused.value)
    assert API_KEY not in repr(source.config)


# -- end to end and the fault matrix ----------------------------------------------------------


def test_run_once_collects_a_forum_post_into_a_slack_alert(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    text = NEGATIVE[0] + " acme"
    with FakeDiscourse(api_key=API_KEY) as fake:
        topic = fake.add_topic("Delivery", "<p>Where is it?</p>", username="calm",
                               created_at=now - timedelta(minutes=30))
        fake.add_post(topic, f"<p>{text}</p>", username="angry_customer",
                      created_at=now - timedelta(minutes=10))
        base = fake.base_url
        entry = (f"  - type: discourse\n    name: forum\n    base_url: \"{base}\"\n"
                 "    brand: acme\n    api_key: {\"$env\": DISCOURSE_API_KEY}\n"
                 "    api_username: system\n")
        outcome = run_once_into_alert(tmp_path, entry, {"DISCOURSE_API_KEY": API_KEY})
    assert len([a for a in outcome.alerts if "never arrived" in a]) == 1, outcome.alerts
    post = next(p for p in outcome.posts if p["text"] == text)
    assert (post["platform"], post["source"], post["author"], post["author_followers"],
            post["kind"]) == ("discourse", "forum", "angry_customer", None, "mention")
    assert post["url"] == f"{base}/t/delivery/{topic}/2"
    assert parse_iso(str(post["created_at"])) == now - timedelta(minutes=10)
    assert API_KEY not in outcome.stdout + outcome.stderr
