"""The Stack Exchange source against a fake Stack Exchange API 2.3 over real HTTP (httpx, gzip,
127.0.0.1), the collect stage and a real SQLite file; one test through `listener run --once`."""

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
from listener.core.models import Page
from listener.core.query import Brand, parse
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.stackexchange import StackExchangeSource, StackExchangeSourceConfig
from storage.db import load_cursor, open_db
from tests.e2e import NEGATIVE
from tests.fakes.stackexchange_api import (
    ANSWERS,
    KEY,
    QUESTIONS,
    SEARCH,
    TOKEN,
    FakeStackExchange,
    answer,
    deleted_user,
    error_body,
    question,
    user,
)
from tests.faults._sources import NOW as FAULT_NOW
from tests.faults._sources import PLATFORMS, SourceRun
from tests.sources.e2e import run_once_into_alert

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
ACME = Brand("acme", "acme", parse("acme"))


@pytest.fixture
def se() -> Iterator[FakeStackExchange]:
    with FakeStackExchange() as fake:
        yield fake


def make_source(fake: FakeStackExchange, brands: tuple[Brand, ...] = (ACME,),
                timeout: float = 5.0, clock: Any = None, **settings: Any) -> StackExchangeSource:
    settings.setdefault("key", KEY)
    config = StackExchangeSourceConfig(type="stackexchange", name="se", base_url=fake.base_url,
                                       **settings)
    ctx = SourceContext(clock=clock or (lambda: NOW), http_timeout=timeout, brands=brands)
    return StackExchangeSource(config, ctx)


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for page in pages for post in page.posts]


def q(number: int, ago: int, title: str, body: str = "<p>Details.</p>", **kw: Any
      ) -> dict[str, Any]:
    return question(number, T - ago, title, body, **kw)


def wrapper(items: list[Any], has_more: bool = False, **extra: Any) -> dict[str, Any]:
    return {"items": items, "has_more": has_more, "quota_max": 10000, "quota_remaining": 9000,
            **extra}


# -- first fetch, fields, what is sent ---------------------------------------------------------


def test_first_fetch_turns_questions_into_posts(se: FakeStackExchange) -> None:
    se.add(
        q(101, 600, "Acme SDK & \"OAuth\" fails", "<p>Since <code>2.1</code>, I get a 401.</p>"
          "<pre><code>acme.login()</code></pre>", tags=["acme", "oauth"],
          owner=user(7, "Zoë <b>O'Dev</b>", 5120), answer_count=1),
        q(100, 2 * 86400, "Acme two days ago"),  # before initial_lookback: not fetched
    )
    [page] = list(make_source(se).fetch(None))
    [post] = page.posts
    assert (post.platform, post.platform_id, post.kind, post.brand) == (
        "stackexchange", "stackoverflow:q101", "mention", "acme")
    assert post.text == 'Acme SDK & "OAuth" fails\n\nSince 2.1, I get a 401.\n\nacme.login()'
    assert (post.author, post.author_followers) == ("Zoë <b>O'Dev</b>", 5120)
    assert post.url == "https://stackoverflow.com/questions/101/acme-sdk-oauth-fails"
    assert post.created_at == NOW - timedelta(seconds=600)
    assert post.lang is None and post.thread == "stackoverflow:q101"
    assert post.raw["tags"] == ["acme", "oauth"] and post.raw["answer_count"] == 1
    assert post.raw["type"] == "question" and post.raw["user_id"] == 7
    assert page.cursor == {"version": 1, "streams": {"search:acme": {
        "since": T - 600, "seen": ["stackoverflow:q101"]}}}
    [sent] = se.requests
    assert sent.path == SEARCH
    assert sent.query == {"site": "stackoverflow", "filter": "withbody", "q": "acme",
                          "sort": "creation", "order": "desc", "page": "1", "pagesize": "100",
                          "fromdate": str(T - 86400 - 300), "key": KEY}
    assert "gzip" in sent.headers["accept-encoding"]
    assert sent.headers["user-agent"].startswith("social-listener/")


def test_brand_query_is_split_per_branch_and_sent(se: FakeStackExchange) -> None:
    brand = Brand("acme", "q", parse('("acme cloud" OR acmecloud) -giveaway'))
    se.add(q(1, 10, "Acme Cloud is down"), q(2, 5, "acmecloud status page"),
           q(3, 1, "acme cloud giveaway"))
    pages = list(make_source(se, brands=(brand,)).fetch(None))
    assert [r.query["q"] for r in se.requests] == ['"acme cloud"', "acmecloud"]
    assert all(r.path == SEARCH for r in se.requests)
    # the giveaway comes back from the search; the collect stage's local filter drops it
    assert sorted(ids(pages)) == ["stackoverflow:q1", "stackoverflow:q2", "stackoverflow:q3"]
    assert set(pages[-1].cursor["streams"]) == {'search:"acme cloud"', "search:acmecloud"}


def test_tags_are_one_listing_each(se: FakeStackExchange) -> None:
    se.add(q(1, 30, "How do I configure it?", tags=["acme"]),
           q(2, 20, "Install fails", tags=["acme-sdk", "python"]),
           q(3, 10, "Unrelated", tags=["python"]))
    pages = list(make_source(se, tags=["acme", "acme-sdk"], search=False).fetch(None))
    assert [(r.path, r.query["tagged"]) for r in se.requests] == [
        (QUESTIONS, "acme"), (QUESTIONS, "acme-sdk")]
    assert ids(pages) == ["stackoverflow:q1", "stackoverflow:q2"]
    assert all(p.brand is None for page in pages for p in page.posts)  # collect decides


def test_answers_are_read_when_asked(se: FakeStackExchange) -> None:
    se.add(q(10, 100, "Acme crashes"),
           answer(501, 10, T - 50, "<p>Acme <i>fixed</i> it in 3.0.</p>",
                  owner=user(9, "Ann Swer", 77)))
    pages = list(make_source(se, answers=True).fetch(None))
    assert [r.path for r in se.requests] == [SEARCH, ANSWERS]
    post = pages[-1].posts[0]
    assert (post.platform_id, post.text, post.author, post.author_followers) == (
        "stackoverflow:a501", "Acme fixed it in 3.0.", "Ann Swer", 77)
    assert post.url == "https://stackoverflow.com/a/501"  # withbody has no link for answers
    assert post.thread == "stackoverflow:q10" and post.raw["type"] == "answer"
    assert post.created_at == NOW - timedelta(seconds=50)
    assert set(pages[-1].cursor["streams"]) == {"search:acme", "answers"}


def test_other_sites_use_their_own_ids(se: FakeStackExchange) -> None:
    with FakeStackExchange(site="superuser") as su:
        su.add(q(5, 10, "acme on windows"))
        [page] = list(make_source(su, site="superuser").fetch(None))
    assert ids([page]) == ["superuser:q5"] and su.requests[0].query["site"] == "superuser"


# -- pagination, resume, catching up -----------------------------------------------------------


@pytest.mark.parametrize("inclusive", [True, False])
def test_pages_walk_down_by_creation_date_and_every_page_carries_the_cursor(
    se: FakeStackExchange, inclusive: bool,
) -> None:
    se.todate_inclusive = inclusive  # undocumented: the walk must work either way
    se.add(*(q(i, 100 - i, f"acme {i}") for i in range(1, 6)))
    pages = list(make_source(se, page_size=3).fetch(None))
    assert [len(p.posts) for p in pages] == ([3, 1, 1] if inclusive else [3, 2])
    assert ids(pages) == [f"stackoverflow:q{i}" for i in (5, 4, 3, 2, 1)]
    assert [r.query.get("todate") for r in se.requests] == [
        None, str(T - 97 + 1), str(T - 98 + 1)][:len(pages)]
    assert all(r.query["page"] == "1" for r in se.requests)
    states = [p.cursor["streams"]["search:acme"] for p in pages]
    assert states[0] == {"since": T - 86400, "upto": T - 97, "high": T - 95,
                         "seen": ["stackoverflow:q5", "stackoverflow:q4", "stackoverflow:q3"]}
    assert states[-1]["since"] == T - 95 and "upto" not in states[-1]


def test_a_second_with_more_posts_than_a_page_is_paged_through(se: FakeStackExchange) -> None:
    se.add(*(q(i, 50, f"acme {i}") for i in range(1, 6)))  # five posts in one second
    source = make_source(se, page_size=2, max_pages=2)
    first = list(source.fetch(None))
    assert first[-1].cursor["streams"]["search:acme"]["page"] == 2
    rest = list(source.fetch(first[-1].cursor))
    assert sorted(ids(first + rest)) == [f"stackoverflow:q{i}" for i in range(1, 6)]
    assert [r.query["page"] for r in se.requests] == ["1", "1", "2", "3"]


def test_a_post_deleted_between_requests_shifts_nothing_past_us(se: FakeStackExchange) -> None:
    se.todate_inclusive = False
    se.add(*(q(i, 100 - i, f"acme {i}") for i in range(1, 6)))
    se.delete_after(1, 5)  # q5, on the first page, is deleted before the second request
    pages = list(make_source(se, page_size=2).fetch(None))
    # by page number, page 2 would now start at q2 and q3 would never be seen
    assert ids(pages) == [f"stackoverflow:q{i}" for i in (5, 4, 3, 2, 1)]


def test_a_new_instance_resumes_from_the_saved_cursor(se: FakeStackExchange) -> None:
    se.add(q(1, 100, "acme one"), q(2, 50, "acme two"))
    cursor = json.loads(json.dumps(list(make_source(se).fetch(None))[-1].cursor))
    se.add(q(3, 20, "acme three"), q(4, 200, "acme indexed late, within the overlap"))
    pages = list(make_source(se).fetch(cursor))  # a restart: a fresh source, the stored cursor
    assert ids(pages) == ["stackoverflow:q3", "stackoverflow:q4"]  # nothing twice, nothing lost
    assert se.requests[-1].query["fromdate"] == str(T - 50 - 300)
    assert pages[-1].cursor["streams"]["search:acme"]["since"] == T - 20


def test_a_backlog_larger_than_one_poll_is_caught_up_without_a_gap(
    se: FakeStackExchange, tmp_path: Path,
) -> None:
    se.todate_inclusive = False
    se.add(*(q(i, 100 - i, f"acme {i}") for i in range(1, 8)))
    db = open_db(tmp_path / "t.db")

    def poll() -> int:
        return collect(db, make_source(se, page_size=3, max_pages=2), lambda: NOW,
                       brands=(ACME,))

    assert poll() == 5
    state = load_cursor(db, "se")["streams"]["search:acme"]
    assert (state["upto"], state["high"], state["since"]) == (T - 97, T - 93, T - 86400)
    se.add(q(8, 5, "acme 8"))
    assert poll() == 2  # the older window first, down to the old mark
    assert se.requests[-1].query["todate"] == str(T - 97 + 1)
    assert load_cursor(db, "se")["streams"]["search:acme"]["since"] == T - 93
    assert poll() == 1  # then the new mark
    stored = [r["platform_id"] for r in db["posts"].rows]
    assert len(stored) == len(set(stored)) == 8


def test_a_restart_after_any_stored_page_goes_on_from_it(se: FakeStackExchange) -> None:
    se.add(*(q(i, 100 - i, f"acme {i}") for i in range(1, 6)))
    first = next(make_source(se, page_size=2).fetch(None))  # the process dies after page 1
    rest = list(make_source(se, page_size=2).fetch(json.loads(json.dumps(first.cursor))))
    assert ids([first, *rest]) == [f"stackoverflow:q{i}" for i in (5, 4, 3, 2, 1)]


def test_empty_result_keeps_the_lookback_mark(se: FakeStackExchange) -> None:
    se.add(q(1, 10, "nothing relevant"))
    [page] = list(make_source(se).fetch(None))
    assert page.posts == [] and page.cursor["streams"]["search:acme"] == {
        "since": T - 86400, "seen": []}


# -- rate limits and quota ---------------------------------------------------------------------


def test_429_raises_rate_limited_with_retry_after(se: FakeStackExchange) -> None:
    se.enqueue(429, "slow down", headers={"Retry-After": "42"})
    with pytest.raises(RateLimited) as caught:
        list(make_source(se).fetch(None))
    assert caught.value.retry_after == 42


def test_throttle_violation_pauses_for_the_seconds_it_names(se: FakeStackExchange) -> None:
    se.quota_remaining = 0  # the fake answers as the API does once the quota is spent
    with pytest.raises(RateLimited, match="throttle_violation") as caught:
        list(make_source(se).fetch(None))
    assert caught.value.retry_after == 3600
    se.enqueue(400, error_body(502, "throttle_violation", "too many requests from this IP"))
    with pytest.raises(RateLimited) as bare:
        list(make_source(se).fetch(None))
    assert bare.value.retry_after == 60


def test_quota_reserve_stores_the_page_then_pauses_until_utc_midnight(
    se: FakeStackExchange, tmp_path: Path,
) -> None:
    se.add(q(1, 30, "acme one"), q(2, 20, "acme two"))
    se.quota_remaining = 11  # the answer says 10 left: the reserve
    db = open_db(tmp_path / "t.db")
    with pytest.raises(RateLimited, match="quota") as caught:
        collect(db, make_source(se, answers=True), lambda: NOW, brands=(ACME,))
    assert caught.value.retry_after == 12 * 3600  # 12:00 UTC → midnight
    assert db["posts"].count == 2 and load_cursor(db, "se") is not None
    assert len(se.requests) == 1  # the answers stream waits for the new day


def test_backoff_pauses_the_source_and_survives_a_restart(tmp_path: Path) -> None:
    platform = PLATFORMS["stackexchange"]
    with FakeStackExchange() as fake:
        run = SourceRun(platform, fake, tmp_path)
        try:
            run.publish(1, minutes_ago=10)
            fake.backoff = 30
            assert run.poll().result == 0  # stored, then paused: a rate limit is no failure
            assert run.stored() == [("stackexchange", "stackoverflow:q78000001")]
            assert run.paused_until() == FAULT_NOW + timedelta(seconds=30)
        finally:
            run.close()
        again = SourceRun(platform, fake, tmp_path)  # a restart within the backoff
        try:
            asked = len(fake.requests)
            assert again.poll().result == 0 and len(fake.requests) == asked
            again.clock.now = FAULT_NOW + timedelta(seconds=31)
            run.publish(2, minutes_ago=1)
            assert again.poll().result == 1 and again.paused_until() is None
        finally:
            again.close()


# -- failures ------------------------------------------------------------------------------------


def test_server_error_raises_and_leaves_the_cursor(se: FakeStackExchange, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    se.add(q(1, 100, "acme one"))
    collect(db, make_source(se), lambda: NOW, brands=(ACME,))
    before = load_cursor(db, "se")
    se.add(q(2, 50, "acme 2"), q(3, 40, "acme 3"), q(4, 30, "acme 4"))
    se.enqueue(200, wrapper([q(4, 30, "acme 4"), q(3, 40, "acme 3")], has_more=True))
    se.enqueue(502, "<html>Bad Gateway</html>")
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(se, page_size=2), lambda: NOW, brands=(ACME,))
    # the first page is stored with a cursor that still has q2 ahead of it (upto)
    state = load_cursor(db, "se")["streams"]["search:acme"]
    assert state["since"] == before["streams"]["search:acme"]["since"]
    assert state["upto"] == T - 40
    assert db["posts"].count == 3
    assert collect(db, make_source(se, page_size=2), lambda: NOW, brands=(ACME,)) == 1
    assert db["posts"].count == 4


@pytest.mark.parametrize(("status", "body", "match"), [
    (400, error_body(503, "temporarily_unavailable", "try later"), "next poll retries"),
    (400, error_body(500, "internal_error", "oops"), "next poll retries"),
    (400, error_body(400, "bad_parameter", "tagged is invalid"), "check site, tags"),
    (400, error_body(402, "invalid_access_token", "invalid"), "key or access token"),
    (503, "unavailable", "HTTP 503"),
])
def test_api_errors_fail_the_poll(se: FakeStackExchange, status: int, body: Any,
                                  match: str) -> None:
    se.enqueue(status, body)
    with pytest.raises(SourceError, match=match):
        list(make_source(se).fetch(None))


def test_timeout_raises_source_error(se: FakeStackExchange) -> None:
    se.enqueue(200, wrapper([]), delay=2.0)
    with pytest.raises(SourceError, match="did not answer within 0.2s"):
        list(make_source(se, timeout=0.2).fetch(None))


@pytest.mark.parametrize("body", [b"\x00{<not json", '{"items": "nope", "has_more": false}',
                                  '{"items": []}', "[1, 2]"])
def test_malformed_answer_raises_source_error(se: FakeStackExchange, body: Any) -> None:
    se.enqueue(200, body)
    with pytest.raises(SourceError):
        list(make_source(se).fetch(None))


def test_malformed_items_are_rejected_and_the_rest_kept(se: FakeStackExchange) -> None:
    no_date = q(2, 20, "acme bad")
    del no_date["creation_date"]
    weird = q(3, 10, "acme weird")
    weird["body"] = {"not": "html"}
    se.enqueue(200, wrapper([weird, no_date, "junk", q(1, 30, "acme good")]))
    [page] = list(make_source(se).fetch(None))
    assert ids([page]) == ["stackoverflow:q1"]
    assert [r.reason for r in page.rejected] == [
        "'body' is not a string", "item without a question_id or creation_date",
        "item without a question_id or creation_date"]
    assert page.cursor["streams"]["search:acme"]["seen"] == ["stackoverflow:q3",
                                                              "stackoverflow:q1"]


def test_deleted_owner_and_empty_posts(se: FakeStackExchange) -> None:
    empty = q(2, 20, "")
    empty["body"] = ""
    se.enqueue(200, wrapper([q(3, 10, "acme, asked by a deleted account",
                               owner=deleted_user()), empty]))
    [page] = list(make_source(se).fetch(None))
    [post] = page.posts
    assert (post.platform_id, post.author, post.author_followers) == (
        "stackoverflow:q3", None, None)
    assert post.raw["user_type"] == "does_not_exist" and page.rejected == []


# -- duplicates, the collect stage -----------------------------------------------------------


def test_duplicates_across_pages_and_streams_are_stored_once(
    se: FakeStackExchange, tmp_path: Path,
) -> None:
    brands = (Brand("acme", "q", parse("acme OR acmecloud")),)
    se.add(*(q(i, 100 - i, f"acme {i}") for i in range(1, 5)), q(5, 3, "acme and acmecloud"))
    se.add_after(1, q(9, 1, "acme arrives between pages"))
    pages = list(make_source(se, brands=brands, page_size=2).fetch(None))
    found = ids(pages)
    assert len(found) == len(set(found)) == 5  # q5: both searches; page shifts: one walk
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(se, brands=brands, page_size=2), lambda: NOW,
                   brands=brands) == 6
    assert collect(db, make_source(se, brands=brands, page_size=2), lambda: NOW,
                   brands=brands) == 0
    assert db["posts"].count == 6


def test_collect_keeps_only_brand_matches(se: FakeStackExchange, tmp_path: Path) -> None:
    brands = (Brand("acme", "q", parse("acme -giveaway")),)
    se.add(q(1, 30, "Acme outage"), q(2, 20, "acme giveaway!!"),
           q(3, 10, "python question", tags=["acme"]))
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(se, brands=brands, tags=["acme"]), lambda: NOW,
                   brands=brands) == 1
    assert [r["platform_id"] for r in db["posts"].rows] == ["stackoverflow:q1"]


# -- secrets ---------------------------------------------------------------------------------------


def test_key_and_token_never_reach_logs_or_errors(
    se: FakeStackExchange, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "listener"):  # the CLI tests hold libraries at WARNING
        caplog.set_level(logging.DEBUG, logger=name)
    se.add(q(1, 10, "acme"))
    source = make_source(se, access_token=TOKEN, answers=True)
    list(source.fetch(None))
    source.check()
    errors = []
    for status, body in [(502, f"bad gateway {KEY}"), (400, error_body(
            400, "bad_parameter", f"key {KEY} and access_token {TOKEN} are odd"))]:
        se.enqueue(status, body)
        with pytest.raises(SourceError) as caught:
            list(source.fetch(None))
        errors.append(str(caught.value))
    assert all(r.query["key"] == KEY and r.query["access_token"] == TOKEN for r in se.requests)
    assert "HTTP Request: GET" in caplog.text  # httpx did log every request, redacted
    assert "key=***" in caplog.text and "access_token=***" in caplog.text
    for secret in (KEY, TOKEN):
        assert secret not in caplog.text
        assert all(secret not in error for error in errors)
        assert secret not in repr(source.config)


# -- check, backfill, settings -----------------------------------------------------------------


def test_check_makes_one_info_call(se: FakeStackExchange) -> None:
    said = make_source(se, access_token=TOKEN).check()
    assert "key accepted" in said and "access token accepted" in said and "9999 of 10000" in said
    [sent] = se.requests
    assert sent.path == "/2.3/info" and sent.query["filter"] == "default"
    with pytest.raises(SourceError, match="bad_parameter"):
        make_source(se, key="not-the-key").check()


def test_backfill_walks_back_to_since_without_a_cursor(se: FakeStackExchange) -> None:
    se.add(*(q(i, 10 * 86400 - i * 3600, f"acme {i}") for i in range(1, 8)))
    pages = list(make_source(se, page_size=2).backfill(NOW - timedelta(days=10)))
    assert ids(pages) == [f"stackoverflow:q{i}" for i in range(7, 0, -1)]
    assert all(page.cursor is None for page in pages)
    assert se.requests[0].query["fromdate"] == str(T - 10 * 86400)


def test_settings_are_checked(se: FakeStackExchange) -> None:
    with pytest.raises(ValidationError, match="access_token needs key"):
        StackExchangeSourceConfig(type="stackexchange", name="se", access_token=TOKEN)
    with pytest.raises(ValidationError):
        StackExchangeSourceConfig(type="stackexchange", name="se", page_size=101)
    with pytest.raises(ValidationError, match="single tags"):
        StackExchangeSourceConfig(type="stackexchange", name="se", tags=["acme;python"])
    with pytest.raises(ConfigError, match="nothing to poll"):
        make_source(se, brands=())
    assert se.requests == []


def test_an_unreadable_cursor_starts_over(se: FakeStackExchange,
                                          caplog: pytest.LogCaptureFixture) -> None:
    list(make_source(se).fetch({"version": 1, "streams": {"search:acme": {"since": "x"}}}))
    assert se.requests[0].query["fromdate"] == str(T - 86400 - 300)
    assert "bad cursor entry" in caplog.text


# -- end to end, and the fault matrix ----------------------------------------------------------


def test_run_once_alerts_an_unhappy_question(tmp_path: Path) -> None:
    created = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp())
    text = NEGATIVE[0] + " acme"
    with FakeStackExchange() as fake:
        fake.add(question(4242, created, "Acme support", f"<p>{text}</p>",
                          owner=user(31, "Angry Dev", 321)))
        entry = (f'  - {{type: stackexchange, name: se, base_url: "{fake.base_url}", '
                 'key: {"$env": SE_KEY}}\n')
        outcome = run_once_into_alert(tmp_path, entry, {"SE_KEY": KEY})
        assert fake.requests[0].query["key"] == KEY
    assert KEY not in outcome.stderr and KEY not in outcome.stdout
    [alert] = outcome.alerts
    assert NEGATIVE[0][:40] in alert
    [post] = outcome.posts
    assert (post["platform"], post["platform_id"], post["author"], post["author_followers"],
            post["kind"]) == ("stackexchange", "stackoverflow:q4242", "Angry Dev", 321,
                              "mention")
    assert post["url"] == "https://stackoverflow.com/questions/4242/acme-support"
    assert post["text"] == f"Acme support\n\n{text}"
    assert datetime.fromisoformat(str(post["created_at"])) == datetime.fromtimestamp(created, UTC)
