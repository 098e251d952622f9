"""The Trustpilot source against a fake of Trustpilot's public API, over real HTTP (httpx)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.config import load_config
from listener.core.errors import ConfigError, RateLimited, SourceError
from listener.core.models import Page
from listener.core.netguard import endpoints
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.http import USER_AGENT
from listener.sources.trustpilot import TrustpilotSource, TrustpilotSourceConfig, window
from storage.db import load_cursor, open_db
from tests.e2e import NEGATIVE
from tests.fakes.trustpilot_api import API_KEY, DOMAIN, UNIT_ID, FakeTrustpilot, review
from tests.sources.e2e import run_once_into_alert

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def rid(number: int) -> str:
    return f"6737a{number:019d}"


def reviews(first: int, count: int, *, newest: datetime = NOW) -> list[dict[str, Any]]:
    """``count`` reviews numbered first .. first+count-1, a minute apart, the last the newest."""
    return [review(rid(n), newest - timedelta(minutes=first + count - 1 - n),
                   title=f"Review {n}", text=f"acme text {n}") for n in range(first,
                                                                               first + count)]


@pytest.fixture
def tp() -> Iterator[FakeTrustpilot]:
    with FakeTrustpilot() as fake:
        fake.add_unit()
        yield fake


def make_source(fake: FakeTrustpilot, timeout: float = 5.0, **settings: Any) -> TrustpilotSource:
    values = {"type": "trustpilot", "name": "tp", "brand": "acme", "api_key": API_KEY,
              "business_units": [UNIT_ID], "base_url": fake.base_url, **settings}
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout)
    return TrustpilotSource(TrustpilotSourceConfig(**values), ctx)


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for page in pages for post in page.posts]


def saved(pages: list[Page]) -> Any:
    """The cursor the collect stage would hold after these pages (JSON round trip, like the DB)."""
    cursors = [p.cursor for p in pages if p.cursor is not None]
    return json.loads(json.dumps(cursors[-1])) if cursors else None


def windows(fake: FakeTrustpilot) -> list[tuple[int, int]]:
    """(first offset, perPage) of every reviews request the fake received."""
    out = []
    for request in fake.requests:
        if request.path.endswith("/reviews"):
            per_page, page = int(request.query["perPage"]), int(request.query["page"])
            out.append(((page - 1) * per_page, per_page))
    return out


# -- first fetch, fields, what is sent ----------------------------------------------------------


def test_first_fetch_normalises_every_field(tp: FakeTrustpilot) -> None:
    tp.add_reviews(
        review(rid(1), NOW - timedelta(hours=2), stars=1, title="Never again",
               text="My order never arrived.", language="en", author="Jane D.",
               consumer_reviews=7, reply="Sorry Jane, we have refunded you.", verified=True),
        review(rid(2), NOW - timedelta(hours=1), stars=4, title="", text="Pretty good",
               language=None, author=None),
    )
    [page] = list(make_source(tp).fetch(None))
    second, first = page.posts
    assert (first.platform, first.platform_id, first.kind, first.rating, first.brand) == (
        "trustpilot", rid(1), "review", 1.0, "acme")
    assert first.text == "Never again\n\nMy order never arrived."
    assert (first.author, first.author_followers, first.lang) == ("Jane D.", None, "en")
    assert first.url == f"https://www.trustpilot.com/reviews/{rid(1)}"
    assert first.created_at == NOW - timedelta(hours=2) and first.source == "tp"
    assert first.raw["replied"] is True and first.raw["company_reply"]["text"].startswith("Sorry")
    assert first.raw["consumer_reviews"] == 7 and first.raw["business_unit"] == UNIT_ID
    assert first.raw["is_verified"] is True and first.raw["stars"] == 1
    assert (second.text, second.author, second.lang, second.rating) == ("Pretty good", None, None,
                                                                        4.0)
    assert second.raw["replied"] is False and second.raw["company_reply"] is None
    assert page.cursor == {"version": 1, "units": {UNIT_ID: {
        "newest_at": "2026-11-20T11:00:00Z", "newest_id": rid(2), "seen": [rid(2), rid(1)]}}}


def test_a_time_without_offset_is_utc(tp: FakeTrustpilot) -> None:
    item = review(rid(1), NOW)
    item["createdAt"] = "2026-11-20T09:30:00"  # as the reference's examples write it
    tp.enqueue(200, {"links": [], "reviews": [item]})
    [page] = list(make_source(tp).fetch(None))
    assert page.posts[0].created_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def test_the_unit_key_order_and_filters_are_sent(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 2))
    list(make_source(tp, stars=[2, 1], languages=["en", "de"], page_size=50).fetch(None))
    [request] = tp.requests
    assert request.path == f"/v1/business-units/{UNIT_ID}/reviews"
    assert request.query_lists == {"orderBy": ["createdat.desc"], "perPage": ["50"],
                                   "page": ["1"], "stars": ["1", "2"], "language": ["en", "de"]}
    assert request.headers["apikey"] == API_KEY
    assert request.headers["user-agent"] == USER_AGENT
    assert API_KEY not in request.target  # the key travels in the header, never in a URL


def test_a_domain_is_looked_up_once_and_read_by_its_id(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 2))
    source = make_source(tp, business_units=[], domains=[DOMAIN.upper()])
    pages = list(source.fetch(None))
    assert ids(pages) == [rid(2), rid(1)]
    assert ids(list(source.fetch(saved(pages)))) == []  # nothing new
    assert [r.path for r in tp.requests] == [
        "/v1/business-units/find", f"/v1/business-units/{UNIT_ID}/reviews",
        f"/v1/business-units/{UNIT_ID}/reviews"]  # the lookup is kept for the process
    assert tp.requests[0].query == {"name": DOMAIN}
    assert set(saved(pages)["units"]) == {UNIT_ID}  # the cursor is kept by unit id


def test_an_unknown_domain_or_unit_is_named(tp: FakeTrustpilot) -> None:
    with pytest.raises(SourceError, match="no business unit named 'nope.example'"):
        list(make_source(tp, business_units=[], domains=["nope.example"]).fetch(None))
    with pytest.raises(SourceError, match="no business unit 0123abc; check business_units"):
        list(make_source(tp, business_units=["0123abc"]).fetch(None))


# -- pagination, resume, backlog ----------------------------------------------------------------


def test_pages_overlap_and_the_cursor_moves_only_on_the_last(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 10))
    pages = list(make_source(tp, page_size=4, overlap=1).fetch(None))
    assert ids(pages) == [rid(n) for n in range(10, 0, -1)]  # each once, newest first
    assert [p.cursor is None for p in pages] == [True] * (len(pages) - 1) + [False]
    spans = windows(tp)
    assert spans[0] == (0, 4)
    for (start, size), (after, _) in zip(spans, spans[1:], strict=False):
        assert after <= start + size - 1  # each request starts on the previous one's last review
    assert pages[-1].cursor["units"][UNIT_ID]["newest_id"] == rid(10)


def test_window_always_overlaps_and_moves_on() -> None:
    for end in range(1, 3000):
        per_page, page = window(end, 5, 100)
        start = (page - 1) * per_page
        assert start <= max(0, end - 5) and start + per_page > end and 1 <= per_page <= 100
    assert window(0, 5, 100) == (100, 1)
    assert window(8, 0, 4) == (4, 3)  # no overlap asked: the next page of 4


def test_a_restart_resumes_from_the_saved_cursor(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 3))
    cursor = saved(list(make_source(tp).fetch(None)))
    tp.add_reviews(*reviews(4, 2, newest=NOW + timedelta(minutes=5)))
    pages = list(make_source(tp).fetch(cursor))  # a new process: a fresh source, the stored cursor
    assert ids(pages) == [rid(5), rid(4)]
    assert len(tp.requests) == 2  # the first page already went below the mark
    again = list(make_source(tp).fetch(saved(pages)))
    assert ids(again) == []


def test_a_backlog_beyond_max_pages_is_read_on_without_a_gap(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 2, newest=NOW - timedelta(hours=1)))
    cursor = saved(list(make_source(tp).fetch(None)))
    tp.add_reviews(*reviews(3, 12))  # a burst: 12 new reviews, 3 a page, 2 pages a poll
    source = make_source(tp, page_size=3, overlap=1, max_pages=2)
    first = list(source.fetch(cursor))
    entry = saved(first)["units"][UNIT_ID]
    assert entry["resume"] > 0 and entry["high_id"] == rid(14)
    assert entry["newest_id"] == rid(2)  # the mark waits until the gap is read
    tp.add_reviews(*reviews(15, 1, newest=NOW + timedelta(minutes=1)))  # pushes the list down
    collected = ids(first)
    cursor = saved(first)
    for _ in range(6):
        pages = list(source.fetch(cursor))
        collected += ids(pages)
        cursor = saved(pages)
        if "resume" not in cursor["units"][UNIT_ID]:
            break
    pages = list(source.fetch(cursor))
    collected += ids(pages)
    assert sorted(collected) == sorted(rid(n) for n in range(3, 16))
    assert len(collected) == len(set(collected))  # nothing twice
    assert saved(pages)["units"][UNIT_ID]["newest_id"] == rid(15)


def test_a_pending_backlog_under_other_filters_is_read_again_from_the_top(
    tp: FakeTrustpilot,
) -> None:
    tp.add_reviews(*reviews(1, 1, newest=NOW - timedelta(hours=1)))
    cursor = saved(list(make_source(tp).fetch(None)))
    tp.add_reviews(*reviews(2, 9))
    first = list(make_source(tp, page_size=3, overlap=1, max_pages=1).fetch(cursor))
    entry = saved(first)["units"][UNIT_ID]
    assert entry["resume"] == 3 and entry["filters"] == "stars=*;language=*"
    tp.reset()
    rest = list(make_source(tp, stars=[1], page_size=10).fetch(saved(first)))
    assert tp.requests[0].query["page"] == "1"  # the offset meant another list: from the top
    assert sorted(ids(first) + ids(rest)) == sorted(rid(n) for n in range(2, 11))
    assert saved(rest)["units"][UNIT_ID]["newest_id"] == rid(10)


def test_a_first_poll_stops_at_max_pages_for_good(tp: FakeTrustpilot,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    tp.add_reviews(*reviews(1, 10))
    pages = list(make_source(tp, page_size=3, overlap=0, max_pages=2).fetch(None))
    assert ids(pages) == [rid(n) for n in range(10, 4, -1)]
    assert saved(pages)["units"][UNIT_ID] == {
        "newest_at": "2026-11-20T12:00:00Z", "newest_id": rid(10),
        "seen": [rid(n) for n in range(10, 4, -1)]}
    assert "older reviews are history" in caplog.text


# -- rate limits, failures, malformed answers ---------------------------------------------------


def test_429_raises_rate_limited_with_retry_after(tp: FakeTrustpilot) -> None:
    tp.enqueue(429, {"message": "API rate limit exceeded"}, headers={"Retry-After": "30"})
    with pytest.raises(RateLimited) as caught:
        list(make_source(tp).fetch(None))
    assert caught.value.retry_after == 30


def test_a_spent_quota_without_reset_header_pauses_60_seconds(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 10))
    tp.quota = 1
    source = make_source(tp, page_size=4, overlap=1)
    pages = source.fetch(None)
    assert ids([next(pages)]) == [rid(n) for n in range(10, 6, -1)]
    with pytest.raises(RateLimited) as caught:
        next(pages)
    assert caught.value.retry_after == 60


def test_a_server_error_keeps_the_cursor(tp: FakeTrustpilot, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    tp.add_reviews(*reviews(1, 2, newest=NOW - timedelta(hours=1)))
    collect(db, make_source(tp), lambda: NOW)
    before = load_cursor(db, "tp")
    tp.add_reviews(*reviews(3, 8))
    tp.after(2, lambda: tp.enqueue(502, "<html>Bad Gateway</html>"))  # this poll's 2nd request
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(tp, page_size=4, overlap=1), lambda: NOW)
    assert load_cursor(db, "tp") == before  # page 1 was stored; the mark did not move
    assert db["posts"].count == 6
    assert collect(db, make_source(tp, page_size=4, overlap=1), lambda: NOW) == 4
    assert db["posts"].count == 10


@pytest.mark.parametrize("body", ["<html>not json</html>", '{"reviews": "nope"}', "[1, 2]", ""])
def test_a_malformed_answer_raises_source_error(tp: FakeTrustpilot, body: str) -> None:
    tp.enqueue(200, body)
    with pytest.raises(SourceError):
        list(make_source(tp).fetch(None))


def test_malformed_reviews_are_rejected_and_the_rest_kept(tp: FakeTrustpilot) -> None:
    no_date, bad_stars, no_id = (review(rid(n), NOW) for n in (2, 3, 4))
    no_date["createdAt"] = "yesterday"
    bad_stars["stars"] = 9
    del no_id["id"]
    weird = review(rid(5), NOW)
    weird["text"] = {"not": "text"}
    tp.enqueue(200, {"links": [], "reviews": [no_date, bad_stars, no_id, weird, "x",
                                              review(rid(1), NOW - timedelta(minutes=1))]})
    [page] = list(make_source(tp).fetch(None))
    assert ids([page]) == [rid(1)]
    assert [r.reason for r in page.rejected] == [
        "review without a valid createdAt: 'yesterday'", "review without 1-5 stars: 9",
        "review without an id", "title or text is not text", "review is a str, not an object"]
    assert page.cursor["units"][UNIT_ID]["seen"] == [rid(1)]


# -- deleted reviews and duplicates -------------------------------------------------------------


def test_a_review_deleted_between_pages_skips_nothing(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 8))
    tp.after(1, lambda: tp.delete_review(rid(8)))  # the newest goes: the list moves up one
    pages = list(make_source(tp, page_size=4, overlap=1).fetch(None))
    assert sorted(ids(pages)) == sorted(rid(n) for n in range(1, 9))  # rid(4) was not skipped


def test_without_overlap_that_deletion_would_skip_one(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 8))
    tp.after(1, lambda: tp.delete_review(rid(8)))
    pages = list(make_source(tp, page_size=4, overlap=0).fetch(None))
    assert rid(4) not in ids(pages)  # why `overlap` exists


def test_a_deletion_beyond_the_overlap_is_warned_about(tp: FakeTrustpilot,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    tp.add_reviews(*reviews(1, 12))

    def delete_three() -> None:
        for n in (12, 11, 10):
            tp.delete_review(rid(n))

    tp.after(1, delete_three)
    list(make_source(tp, page_size=5, overlap=1).fetch(None))
    assert "more reviews were deleted between two requests than `overlap` covers" in caplog.text


def test_deleted_and_hidden_reviews_are_absent(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 3))
    tp.delete_review(rid(2))
    assert ids(list(make_source(tp).fetch(None))) == [rid(3), rid(1)]
    reported, emptied = review(rid(5), NOW, status="reported"), review(rid(4), NOW, title="",
                                                                       text="")
    tp.enqueue(200, {"links": [], "reviews": [reported, emptied, review(rid(3), NOW)]})
    [page] = list(make_source(tp).fetch(None))
    assert ids([page]) == [rid(3)] and page.rejected == []
    assert page.cursor["units"][UNIT_ID]["seen"] == [rid(5), rid(4), rid(3)]


def test_duplicates_across_pages_are_stored_once(tp: FakeTrustpilot, tmp_path: Path) -> None:
    tp.add_reviews(*reviews(1, 8))
    # two new reviews land between page 1 and page 2: page 2 repeats two of page 1
    tp.after(1, lambda: tp.add_reviews(*reviews(20, 2, newest=NOW + timedelta(minutes=1))))
    source = make_source(tp, page_size=4, overlap=1)
    pages = list(source.fetch(None))
    assert sorted(ids(pages)) == sorted(rid(n) for n in range(1, 9))  # each once
    tp.reset()
    tp.after(1, lambda: tp.add_reviews(*reviews(30, 2, newest=NOW + timedelta(minutes=3))))
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(tp, page_size=4, overlap=1), lambda: NOW) == 10
    assert collect(db, make_source(tp, page_size=4, overlap=1), lambda: NOW) == 2
    assert db["posts"].count == 12
    rows = list(db.query("SELECT count(*) AS n, count(DISTINCT platform_id) AS d FROM posts"))
    assert rows == [{"n": 12, "d": 12}]


# -- backfill, doctor, config -------------------------------------------------------------------


def test_backfill_pages_back_to_since_without_a_cursor(tp: FakeTrustpilot) -> None:
    tp.add_reviews(*reviews(1, 10, newest=NOW - timedelta(days=1)))
    since = NOW - timedelta(days=1, minutes=6)
    pages = list(make_source(tp, page_size=3, overlap=1).backfill(since))
    assert ids(pages) == [rid(n) for n in range(10, 3, -1)]  # 6 minutes back: 10 .. 4
    assert all(page.cursor is None for page in pages)


def test_check_proves_the_key(tp: FakeTrustpilot) -> None:
    assert make_source(tp).check() == f"API key accepted; business unit {UNIT_ID} (Acme) found"
    by_domain = make_source(tp, business_units=[], domains=[DOMAIN]).check()
    assert by_domain == f"API key accepted; {DOMAIN} is business unit {UNIT_ID} (Acme)"
    assert len(tp.requests) == 2  # one request each
    with pytest.raises(SourceError, match="refused the API key: check api_key"):
        make_source(tp, api_key="not-the-right-key").check()


def test_the_api_key_never_reaches_logs_errors_or_urls(tp: FakeTrustpilot,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "listener"):
        caplog.set_level(logging.DEBUG, logger=name)
    tp.add_reviews(*reviews(1, 6))
    source = make_source(tp, page_size=4, overlap=1)
    posts = [p for page in source.fetch(None) for p in page.posts]
    tp.api_key = "rotated-key-0000"
    with pytest.raises(SourceError) as refused:
        list(make_source(tp).fetch(None))
    assert "HTTP Request: GET" in caplog.text  # httpx logged its requests
    assert "send_request_headers" in caplog.text  # and httpcore at DEBUG
    exposed = [caplog.text, str(refused.value), repr(source.config), repr(posts),
               *(r.target for r in tp.requests)]
    assert all(API_KEY not in text for text in exposed)


def test_config_rules() -> None:
    base: dict[str, Any] = {"type": "trustpilot", "name": "tp", "api_key": API_KEY}
    with pytest.raises(ValidationError, match="at least one business unit"):
        TrustpilotSourceConfig(**base)
    with pytest.raises(ValidationError, match="not a business unit id"):
        TrustpilotSourceConfig(**base, business_units=["acme.com"])
    with pytest.raises(ValidationError, match="stars must list ratings"):
        TrustpilotSourceConfig(**base, business_units=[UNIT_ID], stars=[0])
    with pytest.raises(ValidationError, match="overlap"):
        TrustpilotSourceConfig(**base, business_units=[UNIT_ID], page_size=5, overlap=5)
    config = TrustpilotSourceConfig(**base, domains=["Acme.COM"])
    assert config.domains == ["acme.com"] and config.base_url == "https://api.trustpilot.com"
    assert [str(e) for e in endpoints(config)] == ["https://api.trustpilot.com:443"]
    assert API_KEY not in repr(config)
    with pytest.raises(ConfigError, match="api_key is required"):
        TrustpilotSource(TrustpilotSourceConfig(type="trustpilot", name="tp",
                                                business_units=[UNIT_ID]), SourceContext())


def test_the_key_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("storage: {path: t.db}\nsources:\n  - {type: trustpilot, name: tp, "
                    f"business_units: [{UNIT_ID}], api_key: {{\"$env\": TRUSTPILOT_API_KEY}}}}\n",
                    encoding="utf-8")
    config = load_config(path, environ={"TRUSTPILOT_API_KEY": API_KEY})
    [source] = config.sources
    assert source.api_key == API_KEY  # type: ignore[attr-defined]


def test_an_unreadable_cursor_starts_afresh(tp: FakeTrustpilot,
                                            caplog: pytest.LogCaptureFixture) -> None:
    tp.add_reviews(*reviews(1, 2))
    bad = {"version": 1, "units": {UNIT_ID: {"newest_at": 5, "seen": "x"}}}
    assert ids(list(make_source(tp).fetch(bad))) == [rid(2), rid(1)]
    assert "bad cursor entry" in caplog.text


# -- end to end and the fault matrix ------------------------------------------------------------


def test_run_once_alerts_an_unhappy_review(tmp_path: Path) -> None:
    text = NEGATIVE[0] + " acme"
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with FakeTrustpilot() as fake:
        fake.add_unit()
        fake.add_reviews(review(rid(1), at, stars=1, title="Awful", text=text, author="Jane D."))
        entry = (f'  - {{type: trustpilot, name: tp, brand: acme, base_url: "{fake.base_url}", '
                 f'domains: [{DOMAIN}], api_key: {{"$env": TRUSTPILOT_API_KEY}}}}\n')
        outcome = run_once_into_alert(tmp_path, entry, {"TRUSTPILOT_API_KEY": API_KEY})
    [alert] = outcome.alerts
    assert text in alert
    [post] = outcome.posts
    assert (post["platform"], post["platform_id"], post["source"]) == ("trustpilot", rid(1), "tp")
    assert (post["author"], post["author_followers"], post["kind"], post["rating"]) == (
        "Jane D.", None, "review", 1.0)
    assert post["url"] == f"https://www.trustpilot.com/reviews/{rid(1)}"
    assert post["text"] == f"Awful\n\n{text}" and post["lang"] == "en"
    assert datetime.fromisoformat(str(post["created_at"]).replace("Z", "+00:00")) == at
    assert API_KEY not in outcome.stdout + outcome.stderr
