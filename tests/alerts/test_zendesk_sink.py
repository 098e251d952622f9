"""ZendeskSink: the real httpx client over real HTTP to the fake Zendesk API on 127.0.0.1."""

from __future__ import annotations

import base64
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.render.common import ZWSP
from alerts.sinks.zendesk import ZendeskSink, ZendeskSinkConfig
from listener.core.errors import DeliveryError, RateLimited
from tests.alerts.factories import make_alert, make_score
from tests.alerts.test_dispatch import ManualClock, seed
from tests.fakes.base import RecordedRequest
from tests.fakes.zendesk_api import HANG_UP, TICKETS, FakeZendesk

HOSTILE = ("<script>alert(1)</script> @channel @someuser [x](javascript:alert(1)) "
           "![](http://evil/pixel) {{ticket.requester.email}} {% if 1 %} \x1b[2J\u202e \ud800 ")


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    with FakeZendesk() as fake:
        yield fake


def make_sink(fake: FakeZendesk, **overrides: Any) -> ZendeskSink:
    settings = {"name": "zd-test", "base_url": fake.base_url, "email": fake.email,
                "api_token": fake.token, "timeout": 5.0, **overrides}
    return ZendeskSink(ZendeskSinkConfig(**settings))


@pytest.fixture
def sink(zendesk: FakeZendesk) -> Iterator[ZendeskSink]:
    sink = make_sink(zendesk)
    yield sink
    sink.close()


def posted(fake: FakeZendesk) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.method == "POST"]


def deliver_error(sink: ZendeskSink, **alert: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert(**alert))
    return info.value


def test_creates_ticket_with_idempotency_key_and_external_id(
    zendesk: FakeZendesk, sink: ZendeskSink
) -> None:
    ticket_id = sink.send(make_alert())
    (request,) = zendesk.requests
    assert ticket_id == str(zendesk.tickets[0]["id"])
    assert (request.method, request.path) == ("POST", TICKETS)
    assert request.headers["idempotency-key"] == "a1b2c3d4e5f6"
    assert request.headers["content-type"] == "application/json"
    basic = base64.b64encode(f"{zendesk.email}/token:{zendesk.token}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {basic}"
    ticket = request.json["ticket"]
    assert ticket["external_id"] == "a1b2c3d4e5f6"
    assert ticket["subject"] == "Acme · mastodon · negative"
    assert ticket["comment"]["public"] is False and "requester" not in ticket
    assert ticket["tags"] == ["listener", "negative-mentions"]
    body = ticket["comment"]["body"]
    for part in ("jane (1,234 followers)", "negative 0.91", "high (0.83)", "negative-mentions",
                 "https://mastodon.example/@jane/110000000000000001", "Alert id: a1b2c3d4e5f6",
                 "> The Acme app logged me out again"):
        assert part in body


@pytest.mark.parametrize(
    ("priority", "urgency", "threshold", "expected"),
    [("low", 0.95, 0.9, "low"), ("normal", 0.95, 0.9, "normal"), ("high", 0.83, 0.9, "high"),
     ("high", 0.9, 0.9, "urgent"), ("high", 0.99, None, "high"), ("odd", 0.5, 0.9, "normal")],
)
def test_priority_mapping(zendesk: FakeZendesk, priority: str, urgency: float,
                          threshold: float | None, expected: str) -> None:
    sink = make_sink(zendesk, urgent_urgency=threshold)
    sink.send(make_alert(priority=priority, score=make_score(urgency=urgency)))
    assert posted(zendesk)[0].json["ticket"]["priority"] == expected
    assert zendesk.tickets[0]["priority"] == expected


def test_configured_group_fields_tags_and_public_comment(zendesk: FakeZendesk) -> None:
    sink = make_sink(zendesk, group_id=360000000001, public=True, tags=["social", "listener"],
                     custom_fields=[{"id": 360005, "value": "social"}])
    sink.send(make_alert(rules=("Negative mentions!", "VIP author")))
    ticket = posted(zendesk)[0].json["ticket"]
    assert ticket["group_id"] == 360000000001 and ticket["comment"]["public"] is True
    assert ticket["custom_fields"] == [{"id": 360005, "value": "social"}]
    assert ticket["tags"] == ["social", "listener", "negative_mentions", "vip_author"]


def test_author_requester_is_synthetic_stable_and_undeliverable(zendesk: FakeZendesk) -> None:
    sink = make_sink(zendesk, requester="author")
    sink.send(make_alert(alert_id="a1"))
    sink.send(make_alert(alert_id="a2", text="again"))
    sink.send(make_alert(alert_id="a3", author="ceo@acme.example"))
    first, again, other = (r.json["ticket"]["requester"] for r in posted(zendesk))
    assert first == again and first["name"] == "jane (mastodon)"
    assert re.fullmatch(r"mastodon-jane-[0-9a-f]{10}@listener\.invalid", first["email"])
    assert other["email"].endswith("@listener.invalid") and other["email"] != first["email"]
    assert len(zendesk.tickets) == 3  # the fake accepts name + email, as Zendesk requires


def test_hostile_post_text_is_inert_and_cut(zendesk: FakeZendesk, sink: ZendeskSink) -> None:
    text = HOSTILE + "x" * 50_000
    sink.send(make_alert(text=text, author="[boss](http://evil) {{x}}", brand="<b>{{dc.y}}</b>"))
    ticket = posted(zendesk)[0].json["ticket"]
    body, subject = ticket["comment"]["body"], ticket["subject"]
    assert len(subject) <= 150 and len(body) < 4000 + 1000
    for text_out in (body, subject):
        for live in ("](", "<script", "<b>", "{{", "{%", "\x1b", "\u202e"):
            assert live not in text_out
    assert f"@{ZWSP}channel" in body and f"@{ZWSP}someuser" in body
    assert "@channel" not in body
    assert f"script>alert(1)<{ZWSP}/script>" in body  # still readable for the agent
    assert body.count("x" * 100) > 0 and "…" in body
    assert len(zendesk.tickets) == 1


def test_ambiguous_timeout_then_retry_creates_no_second_ticket(zendesk: FakeZendesk) -> None:
    sink = make_sink(zendesk, timeout=0.3)
    zendesk.enqueue(delay=2.0, create=True)  # Zendesk creates it, the answer comes too late
    error = deliver_error(sink)
    assert error.retryable is True and "0.3s" in str(error) and "second ticket" in str(error)
    assert len(zendesk.tickets) == 1
    ticket_id = sink.send(make_alert(attempt=2))
    assert ticket_id == str(zendesk.tickets[0]["id"]) and len(zendesk.tickets) == 1
    assert [(r.method, r.query_lists) for r in zendesk.requests[1:]] == [
        ("GET", {"external_id": ["a1b2c3d4e5f6"]})]


def test_replayed_key_returns_the_first_ticket_and_logs_the_hit(
    zendesk: FakeZendesk, sink: ZendeskSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alerts.sinks.zendesk")
    first = sink.send(make_alert())
    again = sink.send(make_alert())  # attempt 1 again: a crash before dispatch recorded it
    assert first == again and len(zendesk.tickets) == 1 and len(posted(zendesk)) == 2
    assert "lookup: miss" in caplog.text and "idempotency hit" in caplog.text


def test_expired_key_is_covered_by_the_external_id_lookup(zendesk: FakeZendesk) -> None:
    sink = make_sink(zendesk)
    zendesk.enqueue(HANG_UP, create=True)
    assert deliver_error(sink).retryable is True
    zendesk.expire_keys()  # more than two hours later
    assert sink.send(make_alert(attempt=3)) == str(zendesk.tickets[0]["id"])
    assert len(zendesk.tickets) == 1 and len(posted(zendesk)) == 1


def test_changed_body_under_the_same_key_returns_the_existing_ticket(
    zendesk: FakeZendesk, sink: ZendeskSink
) -> None:
    first = sink.send(make_alert())
    second = sink.send(make_alert(rules=("negative-mentions", "needs-help")))
    assert first == second and len(zendesk.tickets) == 1
    assert [r.method for r in zendesk.requests] == ["POST", "POST", "GET"]


def test_key_conflict_without_a_ticket_is_parked(zendesk: FakeZendesk, sink: ZendeskSink) -> None:
    zendesk.enqueue(400, {"error": "IdempotentRequestError",
                          "description": "Request parameters don't match the given key"})
    error = deliver_error(sink)
    assert error.retryable is False and error.status == 400
    assert "IdempotentRequestError" in str(error) and "two hours" in str(error)


def test_bad_token_is_not_retried(zendesk: FakeZendesk) -> None:
    sink = make_sink(zendesk, api_token="wrong-token-value")
    error = deliver_error(sink)
    assert error.retryable is False and error.status == 401
    assert "Couldn't authenticate you" in str(error) and "API token" in str(error)
    assert "zd-test" in str(error) and "a1b2c3d4e5f6" in str(error)
    assert "wrong-token-value" not in str(error)


def test_unknown_group_names_the_field_and_is_not_retried(zendesk: FakeZendesk) -> None:
    error = deliver_error(make_sink(zendesk, group_id=42))
    assert error.retryable is False and error.status == 422
    assert "RecordInvalid" in str(error) and "group: Group: is invalid" in str(error)
    assert not zendesk.tickets


@pytest.mark.parametrize(
    ("status", "body", "advice"),
    [(403, {"error": "Forbidden", "description": "You do not have access to this page"},
      "may not create tickets"),
     (404, {"error": "InvalidEndpoint", "description": "Not found"}, "subdomain / base_url"),
     (400, {"error": "InvalidJSON"}, "refused")],
)
def test_permanent_answers_are_not_retried(
    zendesk: FakeZendesk, sink: ZendeskSink, status: int, body: Any, advice: str
) -> None:
    zendesk.enqueue(status, body, {"Location": "https://www.zendesk.com/"})
    error = deliver_error(sink)
    assert error.retryable is False and error.status == status and advice in str(error)
    assert len(zendesk.requests) == 1  # no redirect followed, no hidden retry


def test_a_redirect_is_not_followed_and_is_retried_with_advice(
    zendesk: FakeZendesk, sink: ZendeskSink
) -> None:
    zendesk.enqueue(301, "", {"Location": "https://www.zendesk.com/"})
    error = deliver_error(sink)
    assert error.retryable is True and "redirected" in str(error)  # parked after max_attempts
    assert len(zendesk.requests) == 1  # not followed


@pytest.mark.parametrize(("status", "headers"), [(429, {"Retry-After": "7"}),
                                                 (503, {"Retry-After": "7"})])
def test_rate_limit_raises_rate_limited(
    zendesk: FakeZendesk, sink: ZendeskSink, status: int, headers: dict[str, str]
) -> None:
    zendesk.enqueue(status, {"error": "TooManyRequests"}, headers)
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 7 and "zd-test" in str(info.value)


def test_rate_limit_on_the_lookup_raises_rate_limited(
    zendesk: FakeZendesk, sink: ZendeskSink
) -> None:
    zendesk.enqueue(429, {"error": "TooManyRequests"}, {"Retry-After": "12"}, method="GET")
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert(attempt=2))
    assert info.value.retry_after == 12 and not posted(zendesk)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(zendesk: FakeZendesk, sink: ZendeskSink, status: int) -> None:
    zendesk.enqueue(status, "<html>oops</html>")
    error = deliver_error(sink)
    assert error.retryable is True and error.status == status


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = ZendeskSink(ZendeskSinkConfig(name="zd", base_url=f"http://127.0.0.1:{port}",
                                         email="a@b.example", api_token="tok-123456"))
    error = deliver_error(sink)
    assert error.retryable is True and "could not reach Zendesk" in str(error)


def test_secrets_never_leak(zendesk: FakeZendesk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = make_sink(zendesk, timeout=0.3)
    errors: list[Exception] = []
    for status, delay in [(200, 0.0), (401, 0.0), (500, 0.0), (429, 0.0), (200, 2.0),
                          (HANG_UP, 0.0)]:
        if status != 200 or delay:
            zendesk.enqueue(status, {"error": "x"}, delay=delay)
        try:
            sink.send(make_alert())
        except (DeliveryError, RateLimited) as exc:
            errors.append(exc)
    sink.close()
    assert len(errors) == 5 and "HTTP Request" in caplog.text  # httpx did log: the check is live
    basic = base64.b64encode(f"{zendesk.email}/token:{zendesk.token}".encode()).decode()
    visible = [caplog.text, repr(sink), repr(sink._config), *(repr(e) for e in errors)]
    visible += [f"{e} {getattr(e, 'body_snippet', '')}" for e in errors]
    for text in visible:
        assert zendesk.token not in text and basic not in text and zendesk.email not in text


def test_config_validation() -> None:
    base = {"name": "z", "email": "a@b.example", "api_token": "secret-token-value"}
    assert ZendeskSinkConfig(**base, subdomain="acme").url == "https://acme.zendesk.com"
    config = ZendeskSinkConfig(**base, base_url="https://acme.zendesk.com/")
    assert config.url == "https://acme.zendesk.com" and config.min_interval == 0.5
    for bad in ({"subdomain": "acme", "base_url": "https://x.example"}, {},
                {"base_url": "http://acme.zendesk.com"}, {"subdomain": "Acme.zendesk.com"},
                {"subdomain": "acme", "tags": ["Has Space"]},
                {"subdomain": "acme", "requester_email_domain": "no_domain"}):
        with pytest.raises(ValidationError) as info:
            ZendeskSinkConfig(**base, **bad)
        assert "secret-token-value" not in str(info.value)
    own = set(ZendeskSinkConfig.model_fields) - {"name"}  # name is SinkConfig's
    assert all(ZendeskSinkConfig.model_fields[k].description for k in own)


def test_base_url_is_an_account_root_under_the_shared_url_rules() -> None:
    """alerts.sinks._http.https_base_url (as for Jira and Slack), plus Zendesk's own: no path."""
    base = {"name": "z", "email": "a@b.example", "api_token": "secret-token-value"}
    for given, url in [("HTTPS://acme.zendesk.com//", "https://acme.zendesk.com"),
                       (" http://127.0.0.1:8080/ ", "http://127.0.0.1:8080")]:
        assert ZendeskSinkConfig(**base, base_url=given).url == url
    for bad, said in [("https://acme.zendesk.com/api/v2", "no path"),
                      ("https://:secret-token-value@acme.zendesk.com", "no user"),
                      ("https://acme.zendesk.com/#x", "no user, query, #"),
                      ("https://acme .zendesk.com", "spaces or control characters"),
                      ("http://acme.zendesk.com", "must use https")]:
        with pytest.raises(ValidationError) as info:
            ZendeskSinkConfig(**base, base_url=bad)
        assert said in str(info.value) and "secret-token-value" not in str(info.value)


def test_dispatch_records_the_ticket_id(db: Database, zendesk: FakeZendesk) -> None:
    clock = ManualClock()
    (alert_id,) = seed(db, clock, 1, destination="zd-test")
    sink = make_sink(zendesk, min_interval=0)
    result = dispatch(db, {"zd-test": sink}, RetryPolicy(), clock=clock, sleep=clock.sleep,
                      strict=True)
    sink.close()
    assert result.delivered == 1
    row = db.execute("SELECT status, remote_id FROM alerts WHERE id = ?", [alert_id]).fetchone()
    assert row == ("delivered", str(zendesk.tickets[0]["id"]))
    assert posted(zendesk)[0].headers["idempotency-key"] == alert_id
