"""The GitHub source against a fake GitHub API over real HTTP (httpx, 127.0.0.1)."""

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
from listener.core.models import Page, Post, parse_iso
from listener.core.netguard import endpoints
from listener.core.query import Brand, parse
from listener.sources import source_class
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.github import GitHubSource
from listener.sources.github.api import graphql_url
from listener.sources.github.source import GitHubSourceConfig
from storage.db import load_cursor, open_db
from tests.e2e import NEGATIVE
from tests.fakes.github_search_api import RESET, TOKEN, FakeGitHubSearch
from tests.sources.e2e import run_once_into_alert

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REPO = "acme/app"
ACME = Brand("acme", "acme", parse("acme"))


@pytest.fixture
def gh() -> Iterator[FakeGitHubSearch]:
    with FakeGitHubSearch() as fake:
        fake.add_repo(REPO)
        yield fake


def make_source(fake: FakeGitHubSearch, brands: tuple[Brand, ...] = (ACME,),
                timeout: float = 5.0, **settings: Any) -> GitHubSource:
    values: dict[str, Any] = {"type": "github", "name": "gh", "token": TOKEN,
                              "base_url": fake.base_url, "repos": [REPO], **settings}
    ctx = SourceContext(clock=lambda: NOW, http_timeout=timeout, brands=brands)
    return GitHubSource(GitHubSourceConfig(**values), ctx)


def fetch(fake: FakeGitHubSearch, cursor: Any = None, **settings: Any) -> list[Page]:
    source = make_source(fake, **settings)
    try:
        return list(source.fetch(cursor))
    finally:
        source.close()


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def posts(pages: list[Page]) -> list[Post]:
    return [post for page in pages for post in page.posts]


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for post in posts(pages)]


def last_cursor(pages: list[Page]) -> Any:
    return [page.cursor for page in pages if page.cursor is not None][-1]


def stream(pages: list[Page], key: str) -> dict[str, Any]:
    return dict(last_cursor(pages)["streams"][key])


# -- first fetch: every kind normalised --------------------------------------------------------


def test_first_fetch_normalises_issues_pull_requests_comments_and_discussions(
    gh: FakeGitHubSearch,
) -> None:
    issue = gh.add_issue(REPO, "Acme  sync is broken", "It **crashes** on start.\n", ago(40),
                         login="alice")
    gh.add_issue(REPO, "Fix acme sync", None, ago(30), pull_request=True, login="dev")
    gh.add_comment(issue, "Same with acme here", ago(20), login="bob")
    gh.add_discussion(REPO, "Acme roadmap?", "What is next", ago(10), login="carol",
                      followers=42)
    gh.add_issue(REPO, "acme, two days ago", "old", NOW - timedelta(days=2))  # before lookback
    pages = fetch(gh)
    by_id = {p.platform_id: p for p in posts(pages)}
    assert list(by_id) == ["acme/app#2", "acme/app#1", "acme/app#1/comment/1003", "acme/app#3"]

    first = by_id["acme/app#1"]
    assert (first.platform, first.author, first.author_followers, first.lang, first.kind) == (
        "github", "alice", None, None, "mention")
    assert first.text == "Acme sync is broken\n\nIt **crashes** on start."  # Markdown kept
    assert first.url == "https://github.com/acme/app/issues/1"
    assert first.created_at == ago(40) and first.thread == "acme/app#1"
    assert first.source == "gh" and first.brand is None  # listings: the collect stage decides
    assert first.raw["kind"] == "issue" and first.raw["labels"] == ["bug"]
    assert first.raw["repo"] == REPO and first.raw["reactions"] == 2

    pull = by_id["acme/app#2"]
    assert (pull.text, pull.raw["kind"], pull.url) == (
        "Fix acme sync", "pull_request", "https://github.com/acme/app/pull/2")

    comment = by_id["acme/app#1/comment/1003"]
    assert (comment.text, comment.author, comment.thread, comment.raw["kind"]) == (
        "Same with acme here", "bob", "acme/app#1", "comment")
    assert comment.url == "https://github.com/acme/app/issues/1#issuecomment-1003"
    assert comment.created_at == ago(20)

    discussion = by_id["acme/app#3"]
    assert (discussion.text, discussion.author, discussion.author_followers) == (
        "Acme roadmap?\n\nWhat is next", "carol", 42)
    assert discussion.url == "https://github.com/acme/app/discussions/3"
    assert (discussion.thread, discussion.raw["kind"], discussion.raw["category"]) == (
        "acme/app#3", "discussion", "General")

    listing, comments, graphql = gh.requests
    assert listing.path == "/repos/acme/app/issues"
    assert listing.query == {"state": "all", "sort": "created", "direction": "desc",
                             "since": "2026-11-19T11:50:00Z", "per_page": "100", "page": "1"}
    assert comments.path == "/repos/acme/app/issues/comments"
    assert comments.query["sort"] == "created" and comments.query["direction"] == "desc"
    assert graphql.method == "POST" and graphql.path == "/graphql"
    assert graphql.json["variables"] == {"owner": "acme", "name": "app", "first": 100,
                                         "after": None}
    assert "orderBy: {field: CREATED_AT, direction: DESC}" in graphql.json["query"]
    headers = listing.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["user-agent"].startswith("social-listener/")
    assert stream(pages, "acme/app issues") == {"since": "2026-11-20T11:30:00Z",
                                                "seen": ["acme/app#2", "acme/app#1"]}


def test_kinds_restrict_what_is_read(gh: FakeGitHubSearch) -> None:
    issue = gh.add_issue(REPO, "acme issue", "", ago(30))
    gh.add_issue(REPO, "acme pr", "", ago(20), pull_request=True)
    gh.add_comment(issue, "acme comment", ago(10))
    pages = fetch(gh, kinds=["pull_requests"])
    assert ids(pages) == ["acme/app#2"]
    assert [r.path for r in gh.requests] == ["/repos/acme/app/issues"]  # no comments, no GraphQL
    assert stream(pages, "acme/app issues")["seen"] == ["acme/app#2", "acme/app#1"]


# -- the brand query, translated for GitHub search ---------------------------------------------


def test_search_sends_each_branch_of_the_brand_query(gh: FakeGitHubSearch,
                                                     tmp_path: Path) -> None:
    brand = Brand("acme", "q", parse('("acme cloud" OR acmecloud) -giveaway'))
    gh.add_issue("other/repo", "Acme Cloud is down", "since noon", ago(30))
    gh.add_issue("other/repo", "acme cloud giveaway", "free stuff", ago(25))
    gh.add_issue("other/repo", "acmecloud login", "fails", ago(20), pull_request=True)
    gh.add_discussion("other/repo", "acmecloud pricing", "too high", ago(10))
    source = make_source(gh, brands=(brand,), repos=[], search=True)
    pages = list(source.fetch(None))
    lower = "2026-11-19T11:50:00+00:00"
    assert gh.searches == [
        f'"acme cloud" is:issue in:title,body created:>={lower}',
        f'"acme cloud" is:pr in:title,body created:>={lower}',
        f'"acme cloud" in:title,body created:>={lower} sort:created-desc',
        f"acmecloud is:issue in:title,body created:>={lower}",
        f"acmecloud is:pr in:title,body created:>={lower}",
        f"acmecloud in:title,body created:>={lower} sort:created-desc",
    ]
    search = gh.requests[0]
    assert search.path == "/search/issues"
    assert {k: v for k, v in search.query.items() if k != "q"} == {
        "sort": "created", "order": "desc", "per_page": "100", "page": "1"}
    assert sorted(ids(pages)) == ["other/repo#1", "other/repo#2", "other/repo#3", "other/repo#4"]
    assert {p.brand for p in posts(pages)} == {"acme"}
    # the giveaway comes back from the search; the collect stage's local filter drops it
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(gh, brands=(brand,), repos=[], search=True), lambda: NOW,
                   brands=(brand,)) == 3
    assert {r["platform_id"] for r in db["posts"].rows} == {"other/repo#1", "other/repo#3",
                                                            "other/repo#4"}


def test_a_search_longer_than_github_accepts_is_a_config_error(gh: FakeGitHubSearch) -> None:
    brand = Brand("acme", "q", parse(" ".join(f"word{i}" for i in range(60))))
    with pytest.raises(ConfigError, match="256"):
        make_source(gh, brands=(brand,), search=True)


def test_search_without_brands_is_a_config_error(gh: FakeGitHubSearch) -> None:
    with pytest.raises(ConfigError, match="brands"):
        make_source(gh, brands=(), repos=[], search=True)


# -- pagination, resume, catch-up --------------------------------------------------------------


def test_pages_are_followed_and_the_cursor_moves_only_on_the_last(gh: FakeGitHubSearch) -> None:
    for i in range(1, 6):
        gh.add_issue(REPO, f"acme {i}", "", ago(60 - i))
    pages = fetch(gh, page_size=2, kinds=["issues"])
    assert [len(p.posts) for p in pages] == [2, 2, 1]
    assert [p.cursor is None for p in pages] == [True, True, False]
    assert [r.query["page"] for r in gh.requests] == ["1", "2", "3"]
    assert gh.requests[1].query["per_page"] == "2"
    assert ids(pages) == ["acme/app#5", "acme/app#4", "acme/app#3", "acme/app#2", "acme/app#1"]
    assert stream(pages, "acme/app issues")["since"] == "2026-11-20T11:05:00Z"


def test_graphql_discussions_are_paged_with_the_cursor(gh: FakeGitHubSearch) -> None:
    for i in range(1, 4):
        gh.add_discussion(REPO, f"acme {i}", "body", ago(60 - i))
    pages = fetch(gh, page_size=2, kinds=["discussions"])
    assert ids(pages) == ["acme/app#3", "acme/app#2", "acme/app#1"]
    first, second = [r.json["variables"] for r in gh.requests]
    assert first["after"] is None and isinstance(second["after"], str)


def test_a_new_instance_resumes_from_the_saved_cursor(gh: FakeGitHubSearch) -> None:
    issue = gh.add_issue(REPO, "acme one", "", ago(100))
    gh.add_comment(issue, "acme two", ago(50))
    cursor = json.loads(json.dumps(last_cursor(fetch(gh))))  # stored as JSON, read back
    new_issue = gh.add_issue(REPO, "acme three", "", ago(20))
    gh.add_comment(new_issue, "acme four", ago(10))
    gh.reset()
    pages = fetch(gh, cursor)  # a restart: a fresh source, the stored cursor
    assert ids(pages) == ["acme/app#2", "acme/app#2/comment/1004"]
    listing, comments = (r for r in gh.requests if r.method == "GET")
    assert listing.query["since"] == "2026-11-20T10:10:00Z"  # the mark (100 min ago) - overlap
    assert comments.query["since"] == "2026-11-20T11:00:00Z"
    assert stream(pages, "acme/app issues")["since"] == "2026-11-20T11:40:00Z"
    assert ids(fetch(gh, last_cursor(pages))) == []  # nothing twice


def test_an_item_within_the_overlap_is_not_collected_twice(gh: FakeGitHubSearch) -> None:
    gh.add_issue(REPO, "acme one", "", ago(3))
    cursor = last_cursor(fetch(gh, search=True, kinds=["issues"]))
    gh.add_issue(REPO, "acme two", "", ago(1))
    pages = fetch(gh, cursor, search=True, kinds=["issues"])
    assert ids(pages) == ["acme/app#2"]  # #1 came again (listing and search) and was skipped


def test_a_backlog_larger_than_max_pages_is_caught_up_without_a_gap(
    gh: FakeGitHubSearch,
) -> None:
    for i in range(1, 8):
        gh.add_issue(REPO, f"acme {i}", "", ago(60 - i))
    settings = {"page_size": 2, "max_pages": 2, "kinds": ["issues"]}
    first = fetch(gh, **settings)
    assert ids(first) == ["acme/app#7", "acme/app#6", "acme/app#5", "acme/app#4"]
    pending = stream(first, "acme/app issues")["pending"]
    assert pending["token"] == 3 and pending["high"] == "2026-11-20T11:07:00Z"
    gh.add_issue(REPO, "acme 8", "", ago(5))
    second = fetch(gh, first[-1].cursor, **settings)
    # page 2 is read again (an item deleted meanwhile would shift the listing), then the rest
    assert [r.query["page"] for r in gh.requests[-3:]] == ["2", "3", "4"]
    assert ids(second) == ["acme/app#3", "acme/app#2", "acme/app#1"]
    assert stream(second, "acme/app issues")["since"] == "2026-11-20T11:07:00Z"
    third = fetch(gh, second[-1].cursor, **settings)
    assert ids(third) == ["acme/app#8"]


def test_an_item_deleted_during_a_catch_up_does_not_hide_the_next(
    gh: FakeGitHubSearch,
) -> None:
    issues = [gh.add_issue(REPO, f"acme {i}", "", ago(60 - i)) for i in range(1, 6)]
    settings = {"page_size": 2, "max_pages": 1, "kinds": ["issues"]}
    first = fetch(gh, **settings)
    assert ids(first) == ["acme/app#5", "acme/app#4"]
    gh.delete(issues[4])  # #5 is deleted: #3 moves up to page 1, #1 to page 2
    second = fetch(gh, first[-1].cursor, **settings)
    third = fetch(gh, second[-1].cursor, **settings)
    assert ids(second) + ids(third) == ["acme/app#3", "acme/app#2", "acme/app#1"]


def test_more_than_1000_search_results_narrow_the_window_instead_of_losing_any(
    gh: FakeGitHubSearch,
) -> None:
    for i in range(1150):
        gh.add_issue("big/repo", f"acme report {i}", "", NOW - timedelta(seconds=30 * i + 60))
    pages = fetch(gh, repos=[], search=True, kinds=["issues"], max_pages=20)
    assert len(ids(pages)) == len(set(ids(pages))) == 1150
    narrowed = [q for q in gh.searches if ".." in q]
    oldest_read = NOW - timedelta(seconds=30 * 999 + 60)
    assert narrowed and narrowed[0].endswith(
        f"created:2026-11-19T11:50:00+00:00..{oldest_read.isoformat()}")
    assert all(int(r.query["page"]) <= 10 for r in gh.requests)
    assert "pending" not in stream(pages, "search is:issue acme")


def test_a_narrowed_search_window_is_resumed_across_polls(gh: FakeGitHubSearch) -> None:
    for i in range(1150):
        gh.add_issue("big/repo", f"acme report {i}", "", NOW - timedelta(seconds=30 * i + 60))
    settings: dict[str, Any] = {"repos": [], "search": True, "kinds": ["issues"],
                                "max_pages": 4}
    collected: list[str] = []
    cursor = None
    for _ in range(4):  # 4 + 4 + 2 pages reach the 1,000th result; then the narrowed window
        pages = fetch(gh, cursor, **settings)
        collected += ids(pages)
        cursor = last_cursor(pages)
    entry = cursor["streams"]["search is:issue acme"]
    assert "pending" not in entry and entry["since"] == "2026-11-20T11:59:00Z"
    assert len(collected) == len(set(collected)) == 1150
    gh.add_issue("big/repo", "acme after the catch-up", "", ago(0.5))
    assert ids(fetch(gh, cursor, **settings)) == ["big/repo#1151"]


def test_backfill_walks_back_to_since_without_moving_the_cursor(gh: FakeGitHubSearch) -> None:
    for i in range(1, 6):
        gh.add_issue(REPO, f"acme {i}", "", NOW - timedelta(days=30 - i))
    gh.add_issue(REPO, "acme too old", "", NOW - timedelta(days=90))
    source = make_source(gh, page_size=2, kinds=["issues"], search=True)
    pages = list(source.backfill(NOW - timedelta(days=60)))
    source.close()
    assert sorted(ids(pages)) == [f"acme/app#{i}" for i in range(1, 6)]
    assert all(page.cursor is None for page in pages)
    assert any(q.endswith("created:>=2026-09-21T12:00:00+00:00") for q in gh.searches)


# -- errors: rate limits, 5xx, malformed answers -----------------------------------------------


def test_429_with_retry_after_pauses_for_it(gh: FakeGitHubSearch) -> None:
    gh.enqueue(429, {"message": "You have exceeded a secondary rate limit."},
               {"Retry-After": "42", "x-ratelimit-remaining": "12"})
    with pytest.raises(RateLimited, match="secondary rate limit") as caught:
        fetch(gh)
    assert caught.value.retry_after == 42


def test_primary_rate_limit_waits_until_the_reset(gh: FakeGitHubSearch) -> None:
    gh.enqueue(403, {"message": "API rate limit exceeded for user ID 1."},
               {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW.timestamp())
                                                                         + 900)})
    with pytest.raises(RateLimited, match="primary rate limit") as caught:
        fetch(gh)
    assert caught.value.retry_after == 900


def test_secondary_rate_limit_without_retry_after_waits_a_minute(gh: FakeGitHubSearch) -> None:
    gh.enqueue(403, {"message": "You have exceeded a secondary rate limit. Please wait a few "
                     "minutes before you try again."},
               {"x-ratelimit-remaining": "4000", "x-ratelimit-reset": str(RESET)})
    with pytest.raises(RateLimited) as caught:
        fetch(gh)
    assert caught.value.retry_after == 60


def test_graphql_rate_limited_error_pauses_until_the_reset(gh: FakeGitHubSearch) -> None:
    gh.enqueue(200, {"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]},
               {"x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(NOW.timestamp()) + 120)})
    with pytest.raises(RateLimited) as caught:
        fetch(gh, kinds=["discussions"])
    assert caught.value.retry_after == 120


def test_403_without_rate_limit_is_an_access_error(gh: FakeGitHubSearch) -> None:
    gh.enqueue(403, {"message": "Resource not accessible by personal access token"},
               {"x-ratelimit-remaining": "4000"})
    with pytest.raises(SourceError, match="access denied.*not accessible"):
        fetch(gh)


def test_server_error_mid_cycle_keeps_the_cursor(gh: FakeGitHubSearch, tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    gh.add_issue(REPO, "acme one", "", ago(100))
    collect(db, make_source(gh, kinds=["issues"]), lambda: NOW, brands=(ACME,))
    before = load_cursor(db, "gh")
    for i in range(2, 5):
        gh.add_issue(REPO, f"acme {i}", "", ago(50 - i))
    gh.after(2, lambda: gh.enqueue(502, "<html>Bad Gateway</html>"))  # page 2 of the next poll
    with pytest.raises(SourceError, match="HTTP 502"):
        collect(db, make_source(gh, kinds=["issues"], page_size=2), lambda: NOW, brands=(ACME,))
    assert load_cursor(db, "gh") == before  # page 1 was stored, the mark did not move
    assert db["posts"].count == 3
    assert collect(db, make_source(gh, kinds=["issues"], page_size=2), lambda: NOW,
                   brands=(ACME,)) == 1
    assert db["posts"].count == 4 and load_cursor(db, "gh") != before


@pytest.mark.parametrize(("kinds_", "body"), [
    (["issues"], "<html>not json</html>"),
    (["issues"], {"message": "a dict, not a list"}),
    (["comments"], [1, 2]),  # items that are not objects are rejected, not fatal: see below
    (["discussions"], {"data": {"repository": {"discussions": {"nodes": "x"}}}}),
    (["discussions"], {"nodata": True}),
])
def test_malformed_answer_raises_source_error(gh: FakeGitHubSearch, kinds_: list[str],
                                              body: Any) -> None:
    gh.enqueue(200, body)
    if body == [1, 2]:
        [page] = fetch(gh, kinds=kinds_)
        assert [r.reason for r in page.rejected] == ["not a JSON object"] * 2
        return
    with pytest.raises(SourceError):
        fetch(gh, kinds=kinds_)


def test_malformed_search_answers_raise_source_error(gh: FakeGitHubSearch) -> None:
    gh.enqueue(200, {"items": "nope", "total_count": 1})
    with pytest.raises(SourceError, match="not a search result"):
        fetch(gh, repos=[], search=True)
    gh.enqueue(200, {"items": [], "total_count": 0, "incomplete_results": True})
    with pytest.raises(SourceError, match="timed out"):
        fetch(gh, repos=[], search=True)


def test_malformed_records_are_rejected_and_the_rest_kept(gh: FakeGitHubSearch) -> None:
    good = gh.add_issue(REPO, "acme good", "", ago(30))
    no_time = {**good, "number": 7}
    del no_time["created_at"]
    bad_body = {**good, "number": 8, "body": {"not": "text"}}
    gh.enqueue(200, [bad_body, no_time, good])
    [page] = fetch(gh, kinds=["issues"])
    assert ids([page]) == ["acme/app#1"]
    assert [r.reason for r in page.rejected] == ["'body' is not a string",
                                                 "'created_at' is missing"]
    assert page.rejected[0].where == "github acme/app issues page 1 item 0"


def test_422_bad_query_names_what_to_change(gh: FakeGitHubSearch) -> None:
    gh.enqueue(422, {"message": "Validation Failed", "errors": [
        {"message": "The search contains only logical operators", "code": "invalid"}]})
    with pytest.raises(SourceError, match="HTTP 422.*only logical operators.*simplify"):
        fetch(gh, repos=[], search=True)


def test_a_repository_that_is_gone_is_named(gh: FakeGitHubSearch) -> None:
    with pytest.raises(SourceError, match="repository acme/gone was not found"):
        fetch(gh, repos=["acme/gone"], kinds=["issues"])
    with pytest.raises(SourceError, match="repository acme/gone was not found"):
        fetch(gh, repos=["acme/gone"], kinds=["discussions"])
    gh.enqueue(410, {"message": "Issues are disabled for this repo"})
    with pytest.raises(SourceError, match="repository acme/app is gone"):
        fetch(gh, kinds=["issues"])


def test_a_refused_token_says_so(gh: FakeGitHubSearch) -> None:
    gh.token = "ghp_somethingElseEntirely0123456789abcd"
    with pytest.raises(SourceError, match="HTTP 401: the token was refused"):
        fetch(gh)


def test_timeout_raises_source_error(gh: FakeGitHubSearch) -> None:
    gh.enqueue(200, "[]", delay=2.0)
    with pytest.raises(SourceError, match="did not answer within 0.2s"):
        fetch(gh, timeout=0.2)


# -- deleted items, duplicates ------------------------------------------------------------------


def test_ghost_authors_are_kept_without_author_and_empty_items_skipped(
    gh: FakeGitHubSearch,
) -> None:
    gh.add_issue(REPO, "acme from a deleted account", "", ago(30), login="ghost")
    gh.add_issue(REPO, "acme with no user at all", "", ago(25), login=None)
    gh.add_issue(REPO, "", None, ago(20))  # nothing to read
    gh.add_discussion(REPO, "acme discussion by a ghost", "x", ago(10), login=None)
    pages = fetch(gh, kinds=["issues", "discussions"])
    assert {p.platform_id: p.author for p in posts(pages)} == {
        "acme/app#2": None, "acme/app#1": None, "acme/app#4": None}
    assert stream(pages, "acme/app issues")["seen"] == ["acme/app#3", "acme/app#2", "acme/app#1"]
    assert all(page.rejected == [] for page in pages)


def test_duplicates_across_pages_and_streams_are_stored_once(gh: FakeGitHubSearch,
                                                             tmp_path: Path) -> None:
    for i in range(1, 5):
        gh.add_issue(REPO, f"acme {i}", "", ago(60 - i))
    # a new issue arrives between page 1 and page 2: page 2 repeats #3
    gh.after(1, lambda: gh.add_issue(REPO, "acme arrives between pages", "", ago(1)))
    settings = {"page_size": 2, "kinds": ["issues"], "search": True}
    pages = fetch(gh, **settings)
    assert ids(pages) == ["acme/app#4", "acme/app#3", "acme/app#2", "acme/app#1", "acme/app#5"]
    db = open_db(tmp_path / "t.db")
    assert collect(db, make_source(gh, **settings), lambda: NOW, brands=(ACME,)) == 5
    assert collect(db, make_source(gh, **settings), lambda: NOW, brands=(ACME,)) == 0
    assert db["posts"].count == 5


# -- cursor hygiene, config, doctor -------------------------------------------------------------


def test_an_unreadable_cursor_starts_over(gh: FakeGitHubSearch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    fetch(gh, {"streams": "nonsense"}, kinds=["issues"])
    assert gh.requests[0].query["since"] == "2026-11-19T11:50:00Z"
    assert "cursor not understood" in caplog.text
    bad = {"version": 1, "streams": {"acme/app issues": {"since": "yesterday"}}}
    fetch(gh, bad, kinds=["issues"])
    assert "bad cursor entry" in caplog.text


def test_a_stream_no_longer_configured_is_dropped(gh: FakeGitHubSearch) -> None:
    old = {"version": 1, "streams": {"old/repo issues": {"since": "2026-11-20T10:00:00Z",
                                                         "seen": []}}}
    pages = fetch(gh, old, kinds=["issues"])
    assert set(last_cursor(pages)["streams"]) == {"acme/app issues"}


def test_config_needs_a_token_and_something_to_read(gh: FakeGitHubSearch) -> None:
    with pytest.raises(ConfigError, match="token is required"):
        make_source(gh, token=None)
    with pytest.raises(ConfigError, match="nothing to read"):
        make_source(gh, repos=[])
    with pytest.raises(ConfigError, match="nothing to read"):
        make_source(gh, repos=[], search=True, kinds=["comments"])
    with pytest.raises(ValidationError, match="repos"):
        GitHubSourceConfig(type="github", name="gh", repos=["not a repo"])
    with pytest.raises(ValidationError, match="kinds"):
        GitHubSourceConfig(type="github", name="gh", kinds=["wikis"])


def test_registry_endpoints_and_enterprise_graphql() -> None:
    assert source_class("github") is GitHubSource
    config = GitHubSourceConfig(type="github", name="gh", repos=[REPO])
    assert [str(e) for e in endpoints(config)] == ["https://api.github.com:443"]
    assert graphql_url("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_url("https://ghe.example/api/v3/") == "https://ghe.example/api/graphql"
    assert "token" not in repr(GitHubSourceConfig(type="github", name="gh", token=TOKEN))
    assert TOKEN not in repr(GitHubSourceConfig(type="github", name="gh", token=TOKEN))


def test_check_proves_the_token_with_one_request(gh: FakeGitHubSearch) -> None:
    source = make_source(gh)
    assert source.check() == ("token accepted; repository acme/app readable; 4999/5000 "
                              "requests left this hour")
    source.close()
    source = make_source(gh, repos=[], search=True)
    assert source.check().startswith("token accepted; search reachable")
    source.close()
    assert [r.path for r in gh.requests] == ["/repos/acme/app", "/rate_limit"]
    gh.token = "ghp_somethingElseEntirely0123456789abcd"
    with pytest.raises(SourceError, match="401"):
        make_source(gh).check()


def test_the_token_stays_out_of_debug_logs_and_errors(gh: FakeGitHubSearch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "listener.sources.github"):
        caplog.set_level(logging.DEBUG, logger=name)
    gh.add_issue(REPO, "acme", "", ago(5))
    fetch(gh, search=True)
    gh.enqueue(500, "internal error")
    with pytest.raises(SourceError) as failed:
        fetch(gh, search=True)
    gh.enqueue(401, {"message": "Bad credentials"})
    with pytest.raises(SourceError) as refused:
        fetch(gh)
    assert "HTTP Request: GET" in caplog.text  # httpx did log its requests at DEBUG
    assert TOKEN not in caplog.text
    assert all(TOKEN not in r.target for r in gh.requests)
    assert TOKEN not in str(failed.value) and TOKEN not in str(refused.value)


# -- end to end and the fault matrix ------------------------------------------------------------


def test_run_once_collects_an_issue_into_a_slack_alert(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    text = NEGATIVE[0] + " acme"
    with FakeGitHubSearch() as fake:
        fake.add_repo(REPO)
        fake.add_issue(REPO, "Order problem", text, now - timedelta(minutes=10),
                       login="angry_customer")
        entry = (f"  - type: github\n    name: gh\n    base_url: \"{fake.base_url}\"\n"
                 "    token: {\"$env\": GITHUB_TOKEN}\n    repos: [acme/app]\n")
        outcome = run_once_into_alert(tmp_path, entry, {"GITHUB_TOKEN": TOKEN})
    assert len([a for a in outcome.alerts if "never arrived" in a]) == 1, outcome.alerts
    [post] = outcome.posts
    assert (post["platform"], post["platform_id"], post["source"], post["author"],
            post["author_followers"], post["kind"]) == (
        "github", "acme/app#1", "gh", "angry_customer", None, "mention")
    assert post["text"] == f"Order problem\n\n{text}"
    assert post["url"] == "https://github.com/acme/app/issues/1"
    assert parse_iso(str(post["created_at"])) == now - timedelta(minutes=10)
    assert TOKEN not in outcome.stdout + outcome.stderr
