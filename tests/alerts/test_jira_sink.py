"""JiraSink: the real httpx client over real HTTP to the fake Jira Cloud API on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.render.jira import DESCRIPTION_MAX
from alerts.sinks.base import SinkConfig
from alerts.sinks.jira import JiraSink, JiraSinkConfig
from listener.core.errors import DeliveryError, RateLimited
from listener.core.models import Page, Post, Score
from storage import db as store
from storage import outbox
from tests.alerts.factories import make_alert
from tests.alerts.test_dispatch import ManualClock
from tests.fakes.jira_api import CREATE_PATH, HANG_UP, SEARCH_PATH, FakeJira, valid_adf

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOSTILE = ("<script>alert(1)</script> @channel @someuser [x](javascript:alert(1)) "
           "![](http://evil/pixel) {{panel:bgColor=red}}hi{{/panel}} [x|javascript:alert(1)] "
           "*bold* h1. title\n\x07\u202eevil")


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira() as fake:
        yield fake


def make_sink(fake: FakeJira, **overrides: Any) -> JiraSink:
    settings: dict[str, Any] = {
        "name": "jira-test", "base_url": fake.base_url, "email": fake.email,
        "api_token": fake.token, "project_key": "SUP", "timeout": 5, **overrides,
    }
    return JiraSink(JiraSinkConfig(**settings), clock=lambda: NOW)


@pytest.fixture
def sink(jira: FakeJira) -> Iterator[JiraSink]:
    sink = make_sink(jira, labels=["social"])
    yield sink
    sink.close()


def deliver_error(sink: JiraSink, **alert: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert(**alert))
    return info.value


def nodes(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield doc
    for child in doc.get("content", []):
        yield from nodes(child)


def texts(doc: dict[str, Any]) -> list[str]:
    return [n["text"] for n in nodes(doc) if n["type"] == "text"]


def facts(doc: dict[str, Any]) -> dict[str, str]:
    """The bullet list as {label: value}."""
    items = [n for n in nodes(doc) if n["type"] == "listItem"]
    pairs = ("".join(texts(item)).split(": ", 1) for item in items)
    return {label: value for label, value in pairs}


# -- success ----------------------------------------------------------------------------------


def test_creates_an_issue_and_returns_its_key(jira: FakeJira, sink: JiraSink) -> None:
    assert sink.send(make_alert(priority="high")) == "SUP-1"
    (request,) = jira.requests
    assert (request.method, request.path) == ("POST", CREATE_PATH)
    expected = base64.b64encode(f"{jira.email}:{jira.token}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert request.headers["content-type"] == "application/json"
    fields = request.json["fields"]
    assert fields["project"] == {"key": "SUP"} and fields["issuetype"] == {"name": "Task"}
    assert fields["labels"] == ["social", "listener", "listener-a1b2c3d4e5f6"]
    assert fields["priority"] == {"name": "High"}
    assert fields["summary"].startswith("[!] Acme · mastodon: negative 0.91 — The Acme app")
    doc = fields["description"]
    assert valid_adf(doc)
    assert "The Acme app logged me out again and support is not answering." in texts(doc)
    links = [m for n in nodes(doc) for m in n.get("marks", [])]
    assert links == [{"type": "link",
                      "attrs": {"href": "https://mastodon.example/@jane/110000000000000001"}}]
    assert facts(doc)["Alert id"] == "a1b2c3d4e5f6" and facts(doc)["Link"] == "Open on mastodon"
    assert facts(doc)["Reach"] == "1,234 followers" and facts(doc)["Urgency"] == "high (0.83)"


@pytest.mark.parametrize(("priority", "name"), [("high", "High"), ("normal", "Medium"),
                                                ("low", "Low"), ("weird", "Medium")])
def test_priority_is_mapped(jira: FakeJira, sink: JiraSink, priority: str, name: str) -> None:
    sink.send(make_alert(priority=priority))
    assert jira.requests[-1].json["fields"]["priority"] == {"name": name}


def test_priority_can_be_left_out_where_the_screen_hides_it() -> None:
    with FakeJira(hidden_fields=("priority",)) as fake:
        sink = make_sink(fake)
        error = deliver_error(sink)
        assert error.retryable is False and error.status == 400
        assert "not on the appropriate screen" in str(error)
        assert "priority_field: false" in str(error)
        sink = make_sink(fake, priority_field=False)
        assert sink.send(make_alert()) == "SUP-1"
        assert "priority" not in fake.requests[-1].json["fields"]


# -- untrusted text -------------------------------------------------------------------------


def test_hostile_post_text_stays_plain_text(jira: FakeJira, sink: JiraSink) -> None:
    sink.send(make_alert(text=HOSTILE, author="@admin [x|http://evil]", brand="{{Acme}}"))
    fields = jira.requests[0].json["fields"]
    doc = fields["description"]
    assert {n["type"] for n in nodes(doc)} <= {"doc", "paragraph", "bulletList", "listItem",
                                                 "text"}
    marks = [m for n in nodes(doc) for m in n.get("marks", [])]
    assert [m["attrs"]["href"] for m in marks] == [make_alert().post.url]
    body = " ".join(texts(doc))
    assert "<script>alert(1)</script> @channel @someuser [x](javascript:alert(1))" in body
    assert "{{panel:bgColor=red}}" in body and facts(doc)["Author"] == "@admin [x|http://evil]"
    assert "\x07" not in json.dumps(doc) and "\u202e" not in body
    assert "\n" not in fields["summary"] and len(fields["summary"]) <= 255


def test_unsafe_post_url_gets_no_link(jira: FakeJira, sink: JiraSink) -> None:
    sink.send(make_alert(url="javascript:alert(1)"))
    doc = jira.requests[0].json["fields"]["description"]
    assert not [n for n in nodes(doc) if n.get("marks")]
    assert "javascript" not in json.dumps(doc)


def test_huge_post_text_is_cut_to_fit_jira_limits(jira: FakeJira) -> None:
    sink = make_sink(jira, excerpt_chars=20_000)
    key = sink.send(make_alert(text='"\\' * 25_000))  # 50k characters, doubled by JSON escaping
    assert key == "SUP-1"  # the fake enforces 32,767 and valid ADF, as Jira does
    fields = jira.requests[0].json["fields"]
    assert len(json.dumps(fields["description"], ensure_ascii=False)) <= DESCRIPTION_MAX
    assert len(fields["summary"]) <= 255
    assert any(t.endswith("…") for t in texts(fields["description"]))


def test_default_excerpt_is_short(jira: FakeJira, sink: JiraSink) -> None:
    sink.send(make_alert(text="word " * 10_000))
    post_text = max(texts(jira.requests[0].json["fields"]["description"]), key=len)
    assert len(post_text) <= 2000 and post_text.endswith("…")


# -- errors -----------------------------------------------------------------------------------


def test_bad_token_is_not_retried(jira: FakeJira) -> None:
    error = deliver_error(make_sink(jira, api_token="wrong-token-123456"))
    assert error.retryable is False and error.status == 401
    assert "api_token" in str(error) and "jira-test" in str(error)
    assert "a1b2c3d4e5f6" in str(error)


@pytest.mark.parametrize(
    ("overrides", "jira_says", "advice"),
    [
        ({"project_key": "NOPE"}, "project: valid project is required", "check project_key"),
        ({"issue_type": "Epic2"}, "issuetype: The issue type selected is invalid",
         "check issue_type"),
    ],
)
def test_validation_errors_are_not_retried(
    jira: FakeJira, overrides: dict[str, str], jira_says: str, advice: str
) -> None:
    error = deliver_error(make_sink(jira, **overrides))
    assert error.retryable is False and error.status == 400
    assert jira_says in str(error) and advice in str(error)
    assert jira_says in error.body_snippet


@pytest.mark.parametrize(("status", "advice"), [(403, "Create issues"), (404, "check base_url")])
def test_permission_and_not_found_are_not_retried(
    jira: FakeJira, sink: JiraSink, status: int, advice: str
) -> None:
    jira.enqueue(status, {"errorMessages": ["No permission"], "errors": {}})
    error = deliver_error(sink)
    assert error.retryable is False and error.status == status and advice in str(error)


def test_429_with_retry_after_is_rate_limited(jira: FakeJira, sink: JiraSink) -> None:
    jira.enqueue(429, {"errorMessages": ["Rate limit exceeded"]},
                 {"Retry-After": "7", "RateLimit-Reason": "jira-quota-based"})
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 7
    assert "jira-quota-based" in str(info.value) and "jira-test" in str(info.value)


def test_429_with_only_an_iso_reset_time_waits_until_then(jira: FakeJira, sink: JiraSink) -> None:
    jira.enqueue(429, {}, {"X-RateLimit-Reset": "2026-11-20T12:02Z"})
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 120


def test_503_with_retry_after_waits_and_plain_503_retries(jira: FakeJira, sink: JiraSink) -> None:
    jira.enqueue(503, {}, {"Retry-After": "15"})
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 15
    jira.enqueue(503, {"errorMessages": ["Service unavailable"]})
    error = deliver_error(sink)
    assert error.retryable is True and error.status == 503


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_retryable(jira: FakeJira, sink: JiraSink, status: int) -> None:
    jira.enqueue(status, {"errorMessages": ["Internal server error"]})
    error = deliver_error(sink)
    assert error.retryable is True and error.status == status
    assert len(jira.requests) == 1  # no hidden retries inside the client


def test_timeout_is_retryable(jira: FakeJira) -> None:
    jira.enqueue(delay=2.0, path=CREATE_PATH)
    sink = make_sink(jira, timeout=0.3)
    error = deliver_error(sink)
    assert error.retryable is True and error.status is None
    assert "0.3s" in str(error) and "searches for it first" in str(error)


def test_dropped_connection_and_refused_connection_are_retryable(jira: FakeJira) -> None:
    jira.enqueue(HANG_UP)
    assert deliver_error(make_sink(jira)).retryable is True
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = make_sink(jira, base_url=f"http://127.0.0.1:{port}")
    error = deliver_error(sink)
    assert error.retryable is True and "could not reach Jira" in str(error)


def test_unexpected_success_body_is_retried_with_advice(jira: FakeJira, sink: JiraSink) -> None:
    jira.enqueue(200, b"<html>captive portal</html>")
    error = deliver_error(sink)
    assert error.retryable is True and "unexpected answer" in str(error)


# -- exactly-once effect ----------------------------------------------------------------------


def test_first_attempt_does_not_search(jira: FakeJira, sink: JiraSink) -> None:
    sink.send(make_alert())
    assert [r.path for r in jira.requests] == [CREATE_PATH]


def test_retry_after_an_ambiguous_timeout_creates_no_second_issue(jira: FakeJira) -> None:
    sink = make_sink(jira, timeout=0.3)
    jira.enqueue(delay=2.0, path=CREATE_PATH, commit=True)  # Jira creates it, the answer is late
    assert deliver_error(sink).retryable is True
    assert [i["key"] for i in jira.issues] == ["SUP-1"]
    assert sink.send(make_alert(attempt=2)) == "SUP-1"
    assert len(jira.issues) == 1
    search = jira.requests[-1]
    assert (search.method, search.path) == ("POST", SEARCH_PATH)
    assert search.json["jql"] == 'labels = "listener-a1b2c3d4e5f6"'


def test_retry_without_an_earlier_issue_creates_one(jira: FakeJira, sink: JiraSink) -> None:
    assert sink.send(make_alert(attempt=3)) == "SUP-1"
    assert [r.path for r in jira.requests] == [SEARCH_PATH, CREATE_PATH]


def test_rate_limited_search_holds_the_retry(jira: FakeJira, sink: JiraSink) -> None:
    jira.enqueue(429, {}, {"Retry-After": "9"}, path=SEARCH_PATH)
    with pytest.raises(RateLimited):
        sink.send(make_alert(attempt=2))
    assert jira.issues == []


def test_search_lag_is_the_window_that_remains() -> None:
    """Documented limit: an issue not yet indexed when the retry searches is created again."""
    with FakeJira(search_lag=1) as fake:
        sink = make_sink(fake, timeout=0.3)
        fake.enqueue(HANG_UP, path=CREATE_PATH, commit=True)
        deliver_error(sink)
        assert sink.send(make_alert(attempt=2)) == "SUP-2"
        assert len(fake.issues) == 2


# -- secrets and config -------------------------------------------------------------------------


def test_token_never_leaks(jira: FakeJira, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = make_sink(jira, timeout=0.3)
    basic = base64.b64encode(f"{jira.email}:{jira.token}".encode()).decode()
    errors: list[Exception] = []
    for status, body, delay in [(201, None, 0), (401, None, 0), (500, None, 0),
                                (429, {}, 0), (201, None, 2.0), (HANG_UP, None, 0),
                                (502, {"errorMessages": [f"proxy saw {jira.token} {basic}"]}, 0)]:  # fmt: skip
        jira.enqueue(status, body, delay=delay, commit=status == 201)
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
        assert jira.token not in text and basic not in text


def test_config_repr_and_validation_errors_hide_the_token() -> None:
    secret = "ATATT-SECRET-TOKEN-123"
    config = JiraSinkConfig(name="j", base_url="https://acme.atlassian.net", email="a@b.c",
                            api_token=secret, project_key="SUP")
    assert secret not in repr(config) and secret not in repr(JiraSink(config))
    with pytest.raises(ValidationError) as info:
        JiraSinkConfig(name="j", base_url="http://acme.atlassian.net", email="a@b.c",
                       api_token=secret, project_key="SUP", timeout=-1)
    assert secret not in str(info.value) and "base_url" in str(info.value)


@pytest.mark.parametrize("url", ["http://acme.atlassian.net", "ftp://acme.atlassian.net",
                                 "https://user:pw@acme.atlassian.net", "acme.atlassian.net",
                                 "https://acme.atlassian.net/?x=1", ""])
def test_base_url_must_be_plain_https(url: str) -> None:
    with pytest.raises(ValidationError):
        JiraSinkConfig(name="j", base_url=url, email="a@b.c", api_token="t", project_key="SUP")


def test_defaults_and_labels() -> None:
    config = JiraSinkConfig.model_validate({"type": "jira", "name": "j", "email": "a@b.c",
                                            "base_url": "https://acme.atlassian.net/",
                                            "api_token": "t", "project_key": "SUP"})
    assert config.base_url == "https://acme.atlassian.net" and config.issue_type == "Task"
    assert config.priority_map == {"high": "High", "normal": "Medium", "low": "Low"}
    own = set(JiraSinkConfig.model_fields) - set(SinkConfig.model_fields) | {"type"}
    assert all(JiraSinkConfig.model_fields[k].description for k in own)
    with pytest.raises(ValidationError):
        JiraSinkConfig(name="j", base_url="https://a.atlassian.net", email="a@b.c",
                       api_token="t", project_key="SUP", labels=["two words"])


# -- through dispatch ---------------------------------------------------------------------------


def seed(db: Database, clock: ManualClock, destination: str) -> None:
    post = Post("x", "1", "the app is broken", clock(), source="s", url="https://x.com/a/1")
    store.store_page(db, "s", Page(posts=[post]), clock())
    rows = store.posts_to_score(db, "m", "v", 1)
    score = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v")
    store.save_scores(db, [(r.id, score, None) for r in rows], clock())
    evaluated = store.scores_to_evaluate(db, 1)
    alerts = [outbox.NewAlert("r", destination, r.post_id, r.score_id, f"x:{r.post.platform_id}")
              for r in evaluated]
    outbox.enqueue(db, alerts, [r.score_id for r in evaluated], clock())


def test_dispatch_retries_an_ambiguous_timeout_into_one_issue(jira: FakeJira, db: Database) -> None:
    clock = ManualClock()
    seed(db, clock, "jira")
    jira.enqueue(delay=2.0, path=CREATE_PATH, commit=True)
    sink = make_sink(jira, name="jira", timeout=0.3, min_interval=0)
    result = dispatch(db, {"jira": sink}, RetryPolicy(backoff_initial=10), clock=clock,
                      sleep=clock.sleep, wait_up_to=3600, strict=True)
    assert (result.delivered, result.retried) == (1, 1)
    assert len(jira.issues) == 1 and [r.path for r in jira.requests] == [
        CREATE_PATH, SEARCH_PATH]
    row = db.execute("SELECT status, attempts, remote_id FROM alerts").fetchone()
    assert tuple(row) == ("delivered", 2, "SUP-1")
