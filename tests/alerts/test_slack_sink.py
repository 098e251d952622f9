"""SlackSink in webhook mode (the real slack_sdk WebhookClient over real HTTP to the fake webhook on
127.0.0.1) and the configuration of both modes; the bot-token mode is in test_slack_bot.py."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerts.sinks import sink_class
from alerts.sinks.slack import SlackSink, SlackSinkConfig
from listener.config import load_config
from listener.core.errors import ConfigError, DeliveryError, RateLimited
from tests.alerts.factories import make_alert
from tests.fakes.slack import HANG_UP, FakeSlackWebhook


@pytest.fixture
def slack() -> Iterator[FakeSlackWebhook]:
    with FakeSlackWebhook() as fake:
        yield fake


def make_sink(url: str, timeout: float = 5.0) -> SlackSink:
    return SlackSink(SlackSinkConfig(name="slack-test", webhook_url=url, timeout=timeout))


@pytest.fixture
def sink(slack: FakeSlackWebhook) -> Iterator[SlackSink]:
    sink = make_sink(slack.url)
    yield sink
    sink.close()


def deliver_error(sink: SlackSink) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    return info.value


def test_registry_names_this_sink() -> None:
    assert sink_class("slack") is SlackSink and SlackSink.Config is SlackSinkConfig


def test_delivered_with_escaped_blocks(slack: FakeSlackWebhook, sink: SlackSink) -> None:
    assert sink.send(make_alert(text="<!channel> refund me & now")) is None
    (request,) = slack.requests
    assert request.method == "POST" and request.target == slack.path
    assert request.headers["content-type"].startswith("application/json")
    body = request.json
    assert body["blocks"][1]["text"]["text"] == "> &lt;!channel&gt; refund me &amp; now"
    assert "&lt;!channel&gt;" in body["text"]


def test_a_webhook_cannot_be_checked_without_posting(
    slack: FakeSlackWebhook, sink: SlackSink
) -> None:
    assert sink.check() is None and slack.requests == []  # `listener doctor` says: skipped


def test_one_request_per_send_even_on_failure(slack: FakeSlackWebhook, sink: SlackSink) -> None:
    slack.enqueue(500, "rollup_error")
    deliver_error(sink)
    assert len(slack.requests) == 1  # no hidden retries inside the client


def test_429_raises_rate_limited_with_retry_after(slack: FakeSlackWebhook, sink: SlackSink) -> None:
    slack.enqueue(429, "rate_limited", headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 7
    assert "slack-test" in str(info.value)


@pytest.mark.parametrize(
    ("status", "code", "advice"),
    [
        (404, "channel_not_found", "create a new incoming webhook"),
        (403, "invalid_token", "copy it again"),
        (400, "invalid_payload", "report it"),
        (410, "channel_is_archived", "unarchive"),
        (404, "no_service", "create a new incoming webhook"),
        (403, "action_prohibited", "admin"),
    ],
)
def test_permanent_errors_are_not_retryable(
    slack: FakeSlackWebhook, sink: SlackSink, status: int, code: str, advice: str
) -> None:
    slack.enqueue(status, code)
    error = deliver_error(sink)
    assert error.retryable is False
    assert error.status == status and error.body_snippet == code
    assert code in str(error) and advice in str(error) and "slack-test" in str(error)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(slack: FakeSlackWebhook, sink: SlackSink, status: int) -> None:
    slack.enqueue(status, "rollup_error")
    error = deliver_error(sink)
    assert error.retryable is True and error.status == status


def test_unexpected_200_body_is_retried_with_advice(slack: FakeSlackWebhook, sink: SlackSink
                                                   ) -> None:
    """A captive portal or a proxy while the network flaps: retried (parked only after
    max_attempts, the advice in `listener alerts list`), not parked at once (issue 14)."""
    slack.enqueue(200, "<html>captive portal</html>")
    error = deliver_error(sink)
    assert error.retryable is True and "unexpected answer" in str(error)


def test_timeout_is_retryable(slack: FakeSlackWebhook) -> None:
    slack.enqueue(delay=2.0)
    sink = make_sink(slack.url, timeout=0.3)
    error = deliver_error(sink)
    sink.close()
    assert error.retryable is True and error.status is None
    assert "0.3s" in str(error) and "duplicate" in str(error)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = make_sink(f"http://127.0.0.1:{port}/services/T000/B000/SECRETSECRET")
    error = deliver_error(sink)
    assert error.retryable is True and "could not reach Slack" in str(error)


def test_dropped_connection_is_retryable(slack: FakeSlackWebhook, sink: SlackSink) -> None:
    slack.enqueue(HANG_UP)
    error = deliver_error(sink)
    assert error.retryable is True and error.status is None


def test_webhook_url_never_leaks(slack: FakeSlackWebhook, caplog: pytest.LogCaptureFixture) -> None:
    """Every failure path at DEBUG: no exception, log line or repr shows the URL or its path."""
    caplog.set_level(logging.DEBUG)
    sink = make_sink(slack.url, timeout=0.3)
    errors: list[Exception] = []
    for status, body, delay in [(200, "ok", 0), (404, "channel_not_found", 0), (500, "x", 0),
                                (429, "rate_limited", 0), (200, "ok", 2.0), (HANG_UP, "", 0),
                                (502, f"proxy could not reach {slack.url}", 0)]:  # fmt: skip
        slack.enqueue(status, body, delay=delay)
        try:
            sink.send(make_alert())
        except (DeliveryError, RateLimited) as exc:
            errors.append(exc)
    sink.close()
    assert len(errors) == 6
    assert "Sending a request" in caplog.text  # the client did log at DEBUG: the check is live
    visible = [caplog.text, repr(sink), repr(sink._webhook.__dict__.keys())]
    visible += [f"{e!s} {e!r} {getattr(e, 'body_snippet', '')}" for e in errors]
    visible += [r.getMessage() for r in caplog.records]
    for text in visible:
        assert slack.url not in text and slack.path not in text


def test_client_failure_is_not_logged_as_error(caplog: pytest.LogCaptureFixture) -> None:
    """The library's own ERROR line would duplicate dispatch's log; it is lowered to DEBUG."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    deliver_error(make_sink(f"http://127.0.0.1:{port}/services/T/B/SECRETSECRET"))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "SECRETSECRET" not in caplog.text


def test_config_repr_and_validation_errors_hide_the_url() -> None:
    secret = "https://hooks.slack.com/services/T1/B1/SECRETSECRET"
    config = SlackSinkConfig(name="s", webhook_url=secret)
    assert "SECRETSECRET" not in repr(config) and "SECRETSECRET" not in repr(SlackSink(config))
    with pytest.raises(ValidationError) as info:
        SlackSinkConfig(name="s", webhook_url=secret.replace("https", "http"), timeout=-1)
    assert "SECRETSECRET" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/services/T1/B1/X",
        "http://10.0.0.5/services/T1/B1/X",
        "ftp://hooks.slack.com/services/T1/B1/X",
        "hooks.slack.com/services/T1/B1/X",
        "https://hooks.slack.com/services/T1/B1/X Y",
        "",
    ],
)
def test_non_https_non_local_url_is_rejected(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        SlackSinkConfig(name="s", webhook_url=url)
    assert "webhook_url" in str(info.value)


def test_https_and_local_http_are_accepted() -> None:
    for url in ("https://hooks.slack.com/services/T1/B1/X", "http://localhost:8080/x"):
        assert SlackSinkConfig(name="s", webhook_url=url).webhook_url == url
    config = SlackSinkConfig.model_validate(
        {"type": "slack", "name": "s", "webhook_url": "https://hooks.slack.com/x"}
    )
    assert config.timeout == 10 and config.min_interval == 1.0
    assert config.token is None and config.channel is None
    assert all(field.description for field in SlackSinkConfig.model_fields.values())


TOKEN = "xoxb-1111-2222-SECRETSECRET"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({}, "give either webhook_url"),
        ({"webhook_url": "https://hooks.slack.com/x", "token": TOKEN, "channel": "C0123ABCDEF"},
         "not both"),
        ({"token": TOKEN}, "token needs channel"),
        ({"webhook_url": "https://hooks.slack.com/x", "channel": "C0123ABCDEF"},
         "channel works with token only"),
        ({"token": "SECRETSECRET", "channel": "C0123ABCDEF"}, "bot token (xoxb-"),
        ({"token": TOKEN, "channel": "#sup port"}, "channel ID such as C0123ABCDEF"),
        ({"token": TOKEN, "channel": "C0123ABCDEF", "base_url": "http://slack.example/api"},
         "base_url must use https"),
    ],
)
def test_exactly_one_mode_with_messages_naming_the_keys(keys: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        SlackSinkConfig.model_validate({"type": "slack", "name": "s", **keys})
    assert message in str(info.value) and "SECRETSECRET" not in str(info.value)


def test_bot_mode_config_and_repr_hide_the_token() -> None:
    config = SlackSinkConfig(name="s", token=f" {TOKEN} ", channel=" #support ")
    assert (config.token, config.channel, config.base_url) == (
        TOKEN, "#support", "https://slack.com/api")
    sink = SlackSink(config)
    assert repr(sink) == "SlackSink(name='s', host='slack.com', channel='#support')"
    assert "SECRETSECRET" not in repr(config) + repr(sink)
    sink.close()


def test_a_bad_slack_destination_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("destinations:\n  - type: console\n    name: c\n  - type: slack\n"
                    "    name: bot\n    token: {\"$env\": SLACK_BOT_TOKEN}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"SLACK_BOT_TOKEN": TOKEN})
    error = info.value
    assert (error.file, error.line, error.key) == (str(path), 4, "destinations[1]")
    assert "token needs channel" in str(error) and "SECRETSECRET" not in str(error)
