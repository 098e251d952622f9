"""GitHubSink: the real httpx client over real HTTP to the fake GitHub API on 127.0.0.1."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.render.github import ZWJ, marker
from alerts.sinks.base import SinkConfig
from alerts.sinks.github import GitHubSink, GitHubSinkConfig
from listener.core.errors import DeliveryError, RateLimited
from listener.core.models import Page, Post, Score
from storage import db as store
from storage import outbox
from tests.alerts.factories import make_alert
from tests.alerts.test_dispatch import ManualClock
from tests.fakes.github_api import HANG_UP, FakeGitHub

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CREATE = "/repos/acme/support/issues"
SEARCH = "/search/issues"
HOSTILE = ("<script>alert(1)</script> @channel @someuser @acme/owners #1 acme/other#2 "
           "[x](javascript:alert(1)) ![](http://evil/pixel) <img src=x onerror=alert(1)> "
           "{{ secrets.TOKEN }} https://evil.example/phish www.evil.example\n- [ ] task\n"
           "````\n</details><!-- -->\x07\u202e")
MARKER = marker("a1b2c3d4e5f6")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def make_sink(fake: FakeGitHub, **overrides: Any) -> GitHubSink:
    settings: dict[str, Any] = {
        "name": "gh-test", "base_url": fake.base_url, "token": fake.token, "owner": "acme",
        "repo": "support", "timeout": 5, **overrides,
    }
    return GitHubSink(GitHubSinkConfig(**settings), clock=lambda: NOW)


@pytest.fixture
def sink(github: FakeGitHub) -> Iterator[GitHubSink]:
    sink = make_sink(github, labels=["listener", "support"])
    yield sink
    sink.close()


def deliver_error(sink: GitHubSink, **alert: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert(**alert))
    return info.value


def rate_limited(sink: GitHubSink, **alert: Any) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert(**alert))
    return info.value


# -- success ----------------------------------------------------------------------------------


def test_creates_an_issue_and_returns_its_number(github: FakeGitHub, sink: GitHubSink) -> None:
    assert sink.send(make_alert()) == "1"
    (request,) = github.requests
    assert (request.method, request.path) == ("POST", CREATE)
    assert request.headers["authorization"] == f"Bearer {github.token}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    payload = request.json
    assert payload["labels"] == ["listener", "support"]
    assert payload["title"].startswith("[!] Acme · mastodon: negative 0.91 — The Acme app")
    body = payload["body"]
    assert body.endswith(MARKER)
    assert "```text\nThe Acme app logged me out again and support is not answering.\n```" in body
    assert "[open the post](<https://mastodon.example/@jane/110000000000000001>)" in body
    assert "- **Author:** `jane` (1,234 followers)" in body
    assert "- **Alert id:** `a1b2c3d4e5f6`" in body


def test_enterprise_base_url_keeps_its_path(github: FakeGitHub) -> None:
    sink = make_sink(github, base_url=github.base_url + "/api/v3")
    deliver_error(sink)  # the fake serves no /api/v3 prefix: 404, but the path shows the join
    assert github.requests[0].path == "/api/v3/repos/acme/support/issues"


# -- untrusted text -------------------------------------------------------------------------


def render(markdown: str) -> str:
    """CommonMark with raw HTML enabled, the strictest reading of what GitHub could render."""
    markdown_it = pytest.importorskip("markdown_it")
    return str(markdown_it.MarkdownIt("commonmark").render(markdown))


HOSTILE_ALERT = make_alert(text=HOSTILE, author="@admin`<b>x</b>", brand="[Acme](http://evil)")


def test_hostile_post_text_is_inert(github: FakeGitHub, sink: GitHubSink) -> None:
    alert = HOSTILE_ALERT
    assert sink.send(alert) == "1"
    payload = github.requests[0].json
    body, title = payload["body"], payload["title"]
    assert "`````text\n<script>alert(1)</script> @" + ZWJ + "channel" in body  # 4 ` in text
    assert "- **Author:** ``@" + ZWJ + "admin`<b>x</b>`` (1,234 followers)" in body
    assert "- **Brand:** `[Acme](http://evil)`" in body
    for text in (body, title):
        outside_link = text.replace(MARKER, "").replace(f"(<{alert.post.url}>)", "")
        assert not re.search(r"[@#]\w", outside_link)  # no mention or issue reference
        assert "\x07" not in text and "\u202e" not in text
    assert "\n" not in title and len(title) <= 256
    assert body.endswith(MARKER) and body.count("<!--") == 2  # ours + the inert one in code


def test_hostile_post_text_renders_to_inert_html(github: FakeGitHub, sink: GitHubSink) -> None:
    sink.send(HOSTILE_ALERT)
    html = render(github.requests[0].json["body"])
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "</details>" not in html and "<details" not in html
    links = re.findall(r'<a href="([^"]*)"', html)
    assert links == [HOSTILE_ALERT.post.url]  # our link, nothing else
    assert "<code>@" + ZWJ + "admin`&lt;b&gt;x&lt;/b&gt;</code>" in html
    assert "[x](javascript:alert(1))" in html  # shown as typed, inside the code block
    assert html.count("<pre><code") == 1


def test_huge_text_with_long_backtick_runs_is_cut_and_fenced(github: FakeGitHub) -> None:
    sink = make_sink(github, excerpt_chars=50_000)
    text = ("x" * 500 + "`" * 10 + "\n") * 100 + "y" * 50_000
    assert sink.send(make_alert(text=text)) == "1"  # the fake enforces 65,536 like GitHub
    body = github.requests[0].json["body"]
    assert len(body) <= 60_000 and "`" * 11 + "text\n" in body and body.endswith(MARKER)
    assert body.count("`" * 11) == 2  # the fence opens and closes; no run inside is as long


def test_unsafe_post_url_is_not_linked(github: FakeGitHub, sink: GitHubSink) -> None:
    sink.send(make_alert(url="javascript:alert(1)"))
    body = github.requests[0].json["body"]
    assert "javascript" not in body and "(no safe link)" in body


# -- errors -----------------------------------------------------------------------------------


def test_bad_token_is_not_retried(github: FakeGitHub) -> None:
    error = deliver_error(make_sink(github, token="ghp_wrong_token_000"))
    assert error.retryable is False and error.status == 401
    assert "Bad credentials" in str(error) and "gh-test" in str(error)
    assert "a1b2c3d4e5f6" in str(error)


def test_unknown_repo_is_not_retried(github: FakeGitHub) -> None:
    error = deliver_error(make_sink(github, repo="nope"))
    assert error.retryable is False and error.status == 404
    assert "repository not found" in str(error)


def test_disabled_issues_are_not_retried() -> None:
    with FakeGitHub(issues_disabled=("acme/support",)) as fake:
        error = deliver_error(make_sink(fake))
    assert error.retryable is False and error.status == 410 and "disabled" in str(error)


def test_validation_failure_is_not_retried(github: FakeGitHub, sink: GitHubSink) -> None:
    github.enqueue(422, {"message": "Validation Failed", "errors": [
        {"resource": "Label", "field": "name", "code": "invalid", "value": "x"}]})
    error = deliver_error(sink)
    assert error.retryable is False and error.status == 422
    assert "Validation Failed; Label name invalid" in str(error) and "labels" in str(error)


def test_forbidden_without_rate_limit_is_not_retried(github: FakeGitHub, sink: GitHubSink) -> None:
    github.enqueue(403, {"message": "Resource not accessible by personal access token"},
                   {"x-ratelimit-remaining": "4999"})
    error = deliver_error(sink)
    assert error.retryable is False and error.status == 403 and "Issues read/write" in str(error)


def test_primary_rate_limit_waits_for_the_reset(github: FakeGitHub, sink: GitHubSink) -> None:
    reset = int(NOW.timestamp()) + 120
    github.enqueue(403, {"message": "API rate limit exceeded for user ID 1."},
                   {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    error = rate_limited(sink)
    assert error.retry_after == 120 and "primary" in str(error)


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [(429, {"retry-after": "7"}, 7), (403, {"retry-after": "30"}, 30), (403, {}, 60),
     (429, {}, 60)],
)
def test_secondary_rate_limit(
    github: FakeGitHub, sink: GitHubSink, status: int, headers: dict[str, str], wait: float
) -> None:
    github.enqueue(status, {"message": "You have exceeded a secondary rate limit."}, headers)
    error = rate_limited(sink)
    assert error.retry_after == wait and "secondary" in str(error) and "gh-test" in str(error)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(github: FakeGitHub, sink: GitHubSink, status: int) -> None:
    github.enqueue(status, {"message": "Server Error"})
    error = deliver_error(sink)
    assert error.retryable is True and error.status == status
    assert len(github.requests) == 1  # no hidden retries inside the client


def test_timeout_and_network_errors_are_retryable(github: FakeGitHub) -> None:
    github.enqueue(delay=2.0, path=CREATE)
    error = deliver_error(make_sink(github, timeout=0.3))
    assert error.retryable is True and error.status is None and "0.3s" in str(error)
    github.enqueue(HANG_UP)
    assert deliver_error(make_sink(github)).retryable is True
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = deliver_error(make_sink(github, base_url=f"http://127.0.0.1:{port}"))
    assert error.retryable is True and "could not reach GitHub" in str(error)


def test_redirect_is_not_followed(github: FakeGitHub, sink: GitHubSink) -> None:
    github.enqueue(301, {"message": "Moved Permanently"}, {"Location": "http://evil.example/"})
    error = deliver_error(sink)
    assert error.retryable is True and "renamed" in str(error)  # parked after max_attempts
    assert len(github.requests) == 1


# -- exactly-once effect ----------------------------------------------------------------------


def test_first_attempt_does_not_look_for_earlier_issues(github: FakeGitHub, sink: GitHubSink) -> None:
    sink.send(make_alert())
    assert [r.path for r in github.requests] == [CREATE]


def test_retry_after_an_ambiguous_timeout_creates_no_second_issue() -> None:
    with FakeGitHub(search_lag=100) as fake:  # search has not indexed it: the list finds it
        sink = make_sink(fake, timeout=0.3)
        fake.enqueue(delay=2.0, path=CREATE, commit=True)
        assert deliver_error(sink).retryable is True
        assert len(fake.issues) == 1
        assert sink.send(make_alert(attempt=2)) == "1"
        assert len(fake.issues) == 1
        listed = fake.requests[-1]
        assert listed.path == CREATE and listed.query == {
            "state": "all", "sort": "created", "direction": "desc", "per_page": "30"}


def test_older_issue_is_found_through_search(github: FakeGitHub, sink: GitHubSink) -> None:
    github.enqueue(HANG_UP, path=CREATE, commit=True)
    deliver_error(sink)
    for i in range(30):  # ours is no longer among the 30 most recent
        github.add_issue("acme/support", f"other {i}", "unrelated")
    assert sink.send(make_alert(attempt=2)) == "1"
    search = github.requests[-1]
    assert search.path == SEARCH
    assert search.query["q"] == 'repo:acme/support is:issue in:body "listener:a1b2c3d4e5f6"'
    assert len(github.issues) == 31


def test_quoted_markers_and_pull_requests_do_not_count(github: FakeGitHub, sink: GitHubSink) -> None:
    github.add_pull_request("acme/support", "copy", f"text\n{MARKER}")
    github.add_issue("acme/support", "quote", f"someone wrote {MARKER} in a post\n\nmore")
    assert sink.send(make_alert(attempt=2)) == "3"  # not found: created
    assert [r.path for r in github.requests] == [CREATE, SEARCH, CREATE]


def test_rate_limited_search_holds_the_retry(github: FakeGitHub, sink: GitHubSink) -> None:
    reset = int(NOW.timestamp()) + 30
    github.enqueue(403, {"message": "API rate limit exceeded"},
                   {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}, path=SEARCH)
    assert rate_limited(sink, attempt=2).retry_after == 30
    assert github.issues == []


# -- secrets and config -------------------------------------------------------------------------


def test_token_never_leaks(github: FakeGitHub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = make_sink(github, timeout=0.3)
    errors: list[Exception] = []
    for status, body, delay in [(201, None, 0), (401, None, 0), (500, None, 0),
                                (429, {}, 0), (201, None, 2.0), (HANG_UP, None, 0),
                                (502, {"message": f"proxy saw Bearer {github.token}"}, 0)]:  # fmt: skip
        github.enqueue(status, body, delay=delay, commit=status == 201)
        try:
            sink.send(make_alert(attempt=2 if status == 429 else 1))
        except (DeliveryError, RateLimited) as exc:
            errors.append(exc)
    sink.close()
    assert len(errors) == 6
    assert "HTTP Request: POST" in caplog.text  # httpx did log: the check is live
    visible = [caplog.text, repr(sink), repr(sink._config)]
    visible += [f"{e!s} {e!r} {getattr(e, 'body_snippet', '')}" for e in errors]
    for text in visible:
        assert github.token not in text


def test_config_repr_and_validation_errors_hide_the_token() -> None:
    secret = "ghp_SECRETSECRETSECRET"
    config = GitHubSinkConfig(name="g", token=secret, owner="acme", repo="support")
    assert secret not in repr(config) and secret not in repr(GitHubSink(config))
    with pytest.raises(ValidationError) as info:
        GitHubSinkConfig(name="g", token=secret, owner="acme", repo="support",
                         base_url="http://github.example/api/v3")
    assert secret not in str(info.value) and "base_url" in str(info.value)


@pytest.mark.parametrize(("key", "value"), [("owner", "a/b"), ("repo", ".."), ("repo", "x?y"),
                                            ("labels", ["x" * 51]), ("base_url", "ftp://h")])
def test_invalid_settings_are_refused(key: str, value: Any) -> None:
    settings: dict[str, Any] = {"name": "g", "token": "t", "owner": "acme", "repo": "support"}
    with pytest.raises(ValidationError):
        GitHubSinkConfig(**{**settings, key: value})


def test_defaults() -> None:
    config = GitHubSinkConfig.model_validate({"type": "github", "name": "g", "token": "t",
                                              "owner": "acme", "repo": "support"})
    assert config.base_url == "https://api.github.com" and config.min_interval == 1.0
    own = set(GitHubSinkConfig.model_fields) - set(SinkConfig.model_fields) | {"type"}
    assert all(GitHubSinkConfig.model_fields[k].description for k in own)


# -- through dispatch ---------------------------------------------------------------------------


def seed(db: Database, clock: ManualClock, destination: str) -> None:
    post = Post("x", "1", "the app is broken @everyone", clock(), source="s")
    store.store_page(db, "s", Page(posts=[post]), clock())
    rows = store.posts_to_score(db, "m", "v", 1)
    score = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v")
    store.save_scores(db, [(r.id, score, None) for r in rows], clock())
    evaluated = store.scores_to_evaluate(db, 1)
    alerts = [outbox.NewAlert("r", destination, r.post_id, r.score_id, f"x:{r.post.platform_id}")
              for r in evaluated]
    outbox.enqueue(db, alerts, [r.score_id for r in evaluated], clock())


def test_dispatch_delivers_and_stores_the_issue_number(github: FakeGitHub, db: Database) -> None:
    clock = ManualClock()
    seed(db, clock, "gh")
    github.enqueue(HANG_UP, path=CREATE, commit=True)  # the first try lands but looks failed
    sink = make_sink(github, name="gh", min_interval=0)
    result = dispatch(db, {"gh": sink}, RetryPolicy(backoff_initial=10), clock=clock,
                      sleep=clock.sleep, wait_up_to=3600, strict=True)
    assert (result.delivered, result.retried) == (1, 1)
    assert len(github.issues) == 1 and [r.path for r in github.requests] == [CREATE, CREATE]
    row = db.execute("SELECT status, attempts, remote_id FROM alerts").fetchone()
    assert tuple(row) == ("delivered", 2, "1")
