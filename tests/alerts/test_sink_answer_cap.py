"""The HTTP sinks read at most a bounded answer (issue 14 item 11): an endless body from Jira,
GitHub, Zendesk or Slack (or a proxy in front of them) fails the attempt, retryably, after the
cap, instead of filling memory. Real httpx (slack_sdk's urllib for Slack) against a real server
on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.sinks.github import GitHubSink, GitHubSinkConfig
from alerts.sinks.jira import JiraSink, JiraSinkConfig
from alerts.sinks.slack import SlackSink, SlackSinkConfig
from alerts.sinks.zendesk import ZendeskSink, ZendeskSinkConfig
from listener.core.errors import DeliveryError
from listener.core.httpguard import SINK_MAX_BYTES
from tests.alerts.factories import make_alert
from tests.fakes.hostile import EndlessBody
from tests.fakes.slack import BOT_TOKEN, CHANNEL_ID

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def jira(url: str) -> JiraSink:
    return JiraSink(JiraSinkConfig(name="jira", base_url=url, email="bot@acme.example",
                                   api_token="jira-token-123", project_key="SUP", timeout=5),
                    clock=lambda: NOW)


def github(url: str) -> GitHubSink:
    return GitHubSink(GitHubSinkConfig(name="gh", base_url=url, token="ghp_token123456",
                                       owner="acme", repo="support", timeout=5),
                      clock=lambda: NOW)


def zendesk(url: str) -> ZendeskSink:
    return ZendeskSink(ZendeskSinkConfig(name="zd", base_url=url, email="bot@acme.example",
                                         api_token="zd-token-123456", timeout=5))


def slack_webhook(url: str) -> SlackSink:
    return SlackSink(SlackSinkConfig(name="slack", webhook_url=f"{url}/services/T/B/SECRET",
                                     timeout=5))


def slack_bot(url: str) -> SlackSink:
    return SlackSink(SlackSinkConfig(name="slack", token=BOT_TOKEN, channel=CHANNEL_ID,
                                     base_url=f"{url}/api", timeout=5))



@pytest.fixture
def server() -> Iterator[EndlessBody]:
    with EndlessBody(limit=4 * SINK_MAX_BYTES) as fake:
        yield fake


@pytest.mark.parametrize("make", [jira, github, zendesk, slack_webhook, slack_bot],
                         ids=lambda m: m.__name__)
def test_an_endless_answer_fails_the_attempt_after_the_cap(
    make: Callable[[str], Any], server: EndlessBody
) -> None:
    sink = make(server.base_url)
    try:
        with pytest.raises(DeliveryError) as caught:
            sink.send(make_alert())
    finally:
        sink.close()
    error = caught.value
    assert error.retryable, "a later attempt may find a sane answer"
    assert f"larger than the answer limit ({SINK_MAX_BYTES} bytes)" in str(error)
    assert "token" not in str(error) and "SECRET" not in str(error)  # the origin only
    assert server.wait_hung_up() and server.sent < 4 * SINK_MAX_BYTES
