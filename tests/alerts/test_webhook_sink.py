"""WebhookSink: real httpx over real HTTP to a fake receiver that verifies signatures itself."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.sinks.webhook import WebhookSink, WebhookSinkConfig, forbidden_address
from listener.core.errors import DeliveryError, RateLimited
from tests.alerts.factories import make_alert
from tests.alerts.test_dispatch import ManualClock, seed
from tests.fakes.webhook_receiver import HANG_UP, FakeWebhookReceiver

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOSTILE = ("<script>alert(1)</script> @channel @someuser [x](javascript:alert(1)) "
           "![](http://evil/pixel) {{7*7}} \x1b[2J\u202e\x00 ")


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    with FakeWebhookReceiver(clock=NOW.timestamp) as fake:
        yield fake


def make_sink(url: str, secret: str = "whsec-test-0123456789abcdef", *, clock: Any = None,
              resolve: Any = None, **overrides: Any) -> WebhookSink:
    settings = {"name": "hook-test", "url": url, "secret": secret, "timeout": 5.0,
                "allow_insecure_http": True, "allow_private_network": True, **overrides}
    extra = {"resolve": resolve} if resolve else {}
    return WebhookSink(WebhookSinkConfig(**settings), clock=clock or (lambda: NOW), **extra)


@pytest.fixture
def sink(receiver: FakeWebhookReceiver) -> Iterator[WebhookSink]:
    sink = make_sink(receiver.url)
    yield sink
    sink.close()


def deliver_error(sink: WebhookSink, **alert: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert(**alert))
    return info.value


def test_delivers_signed_payload(receiver: FakeWebhookReceiver, sink: WebhookSink) -> None:
    assert sink.send(make_alert()) == "evt_1"
    (request,) = receiver.requests
    assert request.verdict == "ok"  # the receiver's own HMAC check over the raw bytes
    assert request.headers["x-listener-id"] == "a1b2c3d4e5f6"
    assert request.headers["x-listener-timestamp"] == str(int(NOW.timestamp()))
    assert request.headers["x-listener-signature"].startswith("sha256=")
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert set(body) == {"type", "id", "rules", "destination", "priority", "post", "score",
                         "sent_at"}
    assert (body["type"], body["id"], body["rules"], body["sent_at"]) == (
        "alert", "a1b2c3d4e5f6", ["negative-mentions"], "2026-11-20T12:00:00Z")
    assert body["post"] == {
        "platform": "mastodon", "id": "110000000000000001",
        "url": "https://mastodon.example/@jane/110000000000000001", "author": "jane",
        "author_followers": 1234, "text": make_alert().post.text,
        "created_at": "2024-05-01T12:30:00Z", "brand": "Acme", "lang": None,
        "kind": "mention", "rating": None}
    assert body["score"] == {
        "sentiment": "negative", "probabilities": {"negative": 0.91, "neutral": 0.07,
                                                   "positive": 0.02},
        "urgency": 0.83, "model": "minilm-sentiment", "model_version": "1",
        "lang": None, "language_supported": True, "scored_by": None}


def test_wrong_secret_fails_the_receivers_check_and_is_not_retried(
    receiver: FakeWebhookReceiver
) -> None:
    error = deliver_error(make_sink(receiver.url, secret="another-secret-0123456789"))
    assert receiver.requests[0].verdict == "bad signature"
    assert error.retryable is False and error.status == 401 and "same secret" in str(error)


def test_stale_timestamp_is_rejected_by_the_receiver(receiver: FakeWebhookReceiver) -> None:
    late = make_sink(receiver.url, clock=lambda: NOW - timedelta(minutes=10))
    error = deliver_error(late)
    assert receiver.requests[0].verdict == "stale timestamp" and error.retryable is False


@pytest.mark.parametrize(("status", "body"), [(204, ""), (200, "ok"), (202, {"ok": True}),
                                              (200, {"id": ["x"]})])
def test_answers_without_an_id_give_no_remote_id(
    receiver: FakeWebhookReceiver, sink: WebhookSink, status: int, body: Any
) -> None:
    receiver.enqueue(status, body)
    assert sink.send(make_alert()) is None


def test_hostile_text_stays_data_and_is_cut(receiver: FakeWebhookReceiver) -> None:
    sink = make_sink(receiver.url, max_text_chars=1000)
    sink.send(make_alert(text=HOSTILE + "x" * 50_000, url="javascript:alert(1)",
                         author="\x1b[31mboss\u202e"))
    request = receiver.requests[0]
    request.body.decode("ascii")  # \u-escaped: no raw control or non-ASCII byte on the wire
    post = request.json["post"]
    assert len(post["text"]) <= 1000 and post["text"].endswith("…")
    assert post["text"].startswith("<script>alert(1)</script> @channel")  # data, not markup
    assert not any(ch in post["text"] for ch in "\x1b\u202e\x00")
    assert post["url"] is None and post["author"] == "[31mboss"
    assert request.verdict == "ok"


def test_lost_answer_then_retry_is_deduplicated_by_the_receiver(
    receiver: FakeWebhookReceiver
) -> None:
    sink = make_sink(receiver.url, timeout=0.3)
    receiver.enqueue(delay=2.0, accept=True)  # accepted, but the answer comes too late
    error = deliver_error(sink)
    assert error.retryable is True and "X-Listener-Id" in str(error)
    assert sink.send(make_alert(attempt=2)) == "evt_1"
    ids = {r.headers["x-listener-id"] for r in receiver.requests}
    assert ids == {"a1b2c3d4e5f6"} and len(receiver.deliveries) == 1


@pytest.mark.parametrize("status", [301, 302, 307])
def test_redirects_are_never_followed_and_retried_with_advice(
    receiver: FakeWebhookReceiver, sink: WebhookSink, status: int
) -> None:
    receiver.enqueue(status, {"error": "no"}, {"Location": "http://169.254.169.254/"})
    error = deliver_error(sink)
    assert error.retryable is True and "redirects (not followed)" in str(error)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_permanent_answers_are_not_retried(
    receiver: FakeWebhookReceiver, sink: WebhookSink, status: int
) -> None:
    receiver.enqueue(status, {"error": "no"}, {"Location": "http://169.254.169.254/"})
    error = deliver_error(sink)
    assert error.retryable is False and error.status == status
    assert len(receiver.requests) == 1  # no redirect followed


@pytest.mark.parametrize(("status", "headers"), [(429, {"Retry-After": "7"}),
                                                 (503, {"Retry-After": "7"})])
def test_rate_limit_raises_rate_limited(
    receiver: FakeWebhookReceiver, sink: WebhookSink, status: int, headers: dict[str, str]
) -> None:
    receiver.enqueue(status, "slow down", headers)
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 7 and "hook-test" in str(info.value)


@pytest.mark.parametrize("status", [408, 425, 500, 502, 503, 504])
def test_transient_answers_are_retryable(
    receiver: FakeWebhookReceiver, sink: WebhookSink, status: int
) -> None:
    receiver.enqueue(status, "busy")
    error = deliver_error(sink)
    assert error.retryable is True and error.status == status


def test_dropped_connection_and_refused_port_are_retryable(
    receiver: FakeWebhookReceiver, sink: WebhookSink
) -> None:
    receiver.enqueue(HANG_UP)
    assert deliver_error(sink).retryable is True
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = deliver_error(make_sink(f"http://127.0.0.1:{port}/x"))
    assert error.retryable is True and "could not reach" in str(error)


@pytest.mark.parametrize(
    "url",
    ["https://169.254.169.254/latest/meta-data/", "https://10.0.0.8/hook", "https://127.0.0.1/h",
     "https://[::1]/h", "https://[::ffff:192.168.0.1]/h", "https://0.0.0.0/h",
     "https://localhost/h", "https://api.localhost/h", "http://hooks.example.com/h",
     "https://user:pw@hooks.example.com/h", "ftp://hooks.example.com/h", "hooks.example.com/h",
     "https://hooks.example.com/a b"],
)
def test_unsafe_urls_are_refused_at_config_time(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookSinkConfig(name="w", url=url, secret="s" * 16)
    assert "url" in str(info.value) and "/h" not in str(info.value).replace("https://", "")


def test_safe_and_explicitly_allowed_urls_are_accepted() -> None:
    assert WebhookSinkConfig(name="w", url="https://hooks.example.com/x", secret="s" * 16)
    WebhookSinkConfig(name="w", url="http://10.0.0.8/x", secret="s" * 16,
                      allow_insecure_http=True, allow_private_network=True)
    with pytest.raises(ValidationError):
        WebhookSinkConfig(name="w", url="https://hooks.example.com/x", secret="short")


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [("169.254.169.254", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
     ("127.0.0.1", True), ("0.0.0.0", True), ("100.64.0.1", True), ("224.0.0.1", True),
     ("::1", True), ("::", True), ("fe80::1", True), ("fc00::1", True), ("ff02::1", True),
     ("::ffff:169.254.169.254", True), ("64:ff9b::a9fe:a9fe", True), ("2002:7f00:1::", True),
     ("93.184.216.34", False), ("2606:2800:220:1:248:1893:25c8:1946", False)],
)
def test_forbidden_addresses(address: str, forbidden: bool) -> None:
    assert forbidden_address(address) is forbidden


@pytest.mark.parametrize("answer", [["169.254.169.254"], ["93.184.216.34", "10.0.0.1"],
                                    ["64:ff9b::a00:1"]])
def test_resolution_to_a_private_address_is_refused_at_send_time(answer: list[str]) -> None:
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return answer

    sink = WebhookSink(WebhookSinkConfig(name="w", url="https://hooks.example.com/x",
                                         secret="s" * 16), resolve=resolve)
    assert calls == []  # nothing resolved at start-up: DNS may change before the send
    error = deliver_error(sink)
    assert calls == [("hooks.example.com", 443)]
    assert error.retryable is False and "SSRF" in str(error) and "hooks.example.com" in str(error)


def test_unresolvable_host_is_retryable() -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    sink = WebhookSink(WebhookSinkConfig(name="w", url="https://hooks.example.com/x",
                                         secret="s" * 16), resolve=resolve)
    error = deliver_error(sink)
    assert error.retryable is True and "cannot resolve" in str(error)


def test_connects_to_the_checked_address_and_resolves_at_every_send(
    receiver: FakeWebhookReceiver
) -> None:
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if host == "hooks.test" else []

    sink = make_sink(f"http://hooks.test:{receiver.port}{receiver.path}", resolve=resolve)
    assert sink.send(make_alert(alert_id="one")) == "evt_1"
    assert sink.send(make_alert(alert_id="two")) == "evt_2"
    assert calls == ["hooks.test", "hooks.test"]
    assert {r.headers["host"] for r in receiver.requests} == {f"hooks.test:{receiver.port}"}


def test_secrets_never_leak(receiver: FakeWebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = make_sink(receiver.url, timeout=0.3)
    errors: list[Exception] = []
    for status, body, delay in [(200, None, 0.0), (404, "no", 0.0), (500, "x", 0.0),
                                (429, "x", 0.0), (200, None, 2.0), (HANG_UP, None, 0.0),
                                (502, f"proxy failed for {receiver.url}", 0.0)]:
        receiver.enqueue(status, body, delay=delay, accept=status == 200)
        try:
            sink.send(make_alert())
        except (DeliveryError, RateLimited) as exc:
            errors.append(exc)
    sink.close()
    assert len(errors) == 6 and "HTTP Request" in caplog.text  # httpx logged: the check is live
    visible = [caplog.text, repr(sink), repr(sink._config), *(r.getMessage() for r in
                                                              caplog.records)]
    visible += [f"{e!s} {e!r} {getattr(e, 'body_snippet', '')}" for e in errors]
    for text in visible:
        assert receiver.path not in text and "whsec-test-0123456789abcdef" not in text


def test_dispatch_records_the_receipt(db: Database, receiver: FakeWebhookReceiver) -> None:
    clock = ManualClock()
    (alert_id,) = seed(db, clock, 1, destination="hook-test")
    receiver.clock = clock.now.timestamp
    sink = make_sink(receiver.url, clock=clock)
    result = dispatch(db, {"hook-test": sink}, RetryPolicy(), clock=clock, sleep=clock.sleep,
                      strict=True)
    sink.close()
    assert result.delivered == 1
    row = db.execute("SELECT status, remote_id FROM alerts WHERE id = ?", [alert_id]).fetchone()
    assert row == ("delivered", "evt_1")
    assert json.loads(receiver.requests[0].body)["id"] == alert_id
    assert receiver.requests[0].headers["x-listener-id"] == alert_id
