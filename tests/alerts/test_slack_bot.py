"""Slack with a bot token: the real slack_sdk WebClient over real HTTP to the fake Web API.

Threading and the crash-between-send-and-ack check run through the real dispatch stage with a
real SQLite outbox and an injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.sinks.slack import SlackSink, SlackSinkConfig
from alerts.sinks.slack.bot import EVENT_TYPE
from listener.core.errors import DeliveryError, RateLimited
from listener.core.models import Page, Post, Report, Score
from storage import db as store
from storage import outbox
from storage.reports import enqueue_report
from tests.alerts.factories import PNG, make_alert, make_report
from tests.alerts.test_dispatch import ManualClock
from tests.fakes.slack import BOT_TOKEN, CHANNEL_ID, HANG_UP, FakeSlackAPI, api_path

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCORE = Score("negative", 0.9, 0.08, 0.02, 0.7, "m", "v1")
POST = api_path("chat.postMessage")


@pytest.fixture
def fake() -> Iterator[FakeSlackAPI]:
    with FakeSlackAPI() as server:
        yield server


def make_sink(fake: FakeSlackAPI, channel: str = CHANNEL_ID, timeout: float = 5.0) -> SlackSink:
    return SlackSink(SlackSinkConfig(name="slack", token=BOT_TOKEN, channel=channel,
                                     base_url=fake.api_url, timeout=timeout, min_interval=0))


@pytest.fixture
def sink(fake: FakeSlackAPI) -> Iterator[SlackSink]:
    sink = make_sink(fake)
    yield sink
    sink.close()


def seed(db: Database, *posts: Post) -> list[str]:
    """Store, score and queue one alert per post for destination ``slack``; the alert ids."""
    store.store_page(db, "src", Page(posts=list(posts)), NOW)
    rows = list(db.query("SELECT id, platform_id FROM posts ORDER BY id"))
    store.save_scores(db, [(r["id"], SCORE, None) for r in rows], NOW)
    for row in rows:
        score_id = db.execute("SELECT id FROM scores WHERE post_id = ?", [row["id"]]).fetchone()[0]
        key = f"x:{row['platform_id']}"
        outbox.enqueue(db, [outbox.NewAlert("neg", "slack", row["id"], score_id, key)], [], NOW)
    return [outbox.alert_id("neg", f"x:{r['platform_id']}", "slack") for r in rows]


def remote_ids(db: Database) -> dict[str, tuple[str, str | None]]:
    sql = ("SELECT p.platform_id, a.status, a.remote_id FROM alerts a"
           " JOIN posts p ON p.id = a.post_id")
    return {r["platform_id"]: (r["status"], r["remote_id"]) for r in db.query(sql)}


def test_posts_escaped_blocks_with_metadata_and_returns_the_ts(
    fake: FakeSlackAPI, sink: SlackSink
) -> None:
    ts = sink.send(make_alert(text="<!channel> refund me & now"))
    (call,) = fake.requests
    assert call.api == "chat.postMessage" and call.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert ts == fake.messages[0]["ts"] and call.params["channel"] == CHANNEL_ID
    assert call.params["blocks"][1]["text"]["text"] == "> &lt;!channel&gt; refund me &amp; now"
    assert "&lt;!channel&gt;" in call.params["text"] and "thread_ts" not in call.params
    assert call.params["metadata"] == {"event_type": EVENT_TYPE,
                                       "event_payload": {"alert_id": "a1b2c3d4e5f6"}}
    assert call.params["unfurl_links"] is False and call.params["unfurl_media"] is False


def test_follow_ups_of_a_conversation_are_threaded_through_dispatch(
    fake: FakeSlackAPI, db: Database
) -> None:
    seed(db, Post("x", "10", "root: the app is down", NOW, source="src", thread="10"),
         Post("x", "11", "reply: still down for me", NOW, source="src", thread="10"),
         Post("x", "12", "another topic entirely", NOW, source="src", thread="12"),
         Post("x", "13", "third in the first thread", NOW, source="src", thread="10"))
    clock = ManualClock()
    result = dispatch(db, {"slack": make_sink(fake)}, RetryPolicy(), clock=clock,
                      sleep=clock.sleep, strict=True)
    assert result.delivered == 4
    by_ts = {m["ts"]: m for m in fake.messages}
    sent = {pid: by_ts[ts] for pid, (status, ts) in remote_ids(db).items()}
    assert "thread_ts" not in sent["12"]  # its own conversation
    first, *follow_ups = sorted((sent[p] for p in ("10", "11", "13")), key=lambda m: m["ts"])
    assert "thread_ts" not in first and len(follow_ups) == 2
    assert all(m["thread_ts"] == first["ts"] for m in follow_ups)


def test_a_thread_slack_refuses_gets_the_alert_on_its_own(
    fake: FakeSlackAPI, sink: SlackSink, caplog: pytest.LogCaptureFixture
) -> None:
    parent = fake.post_message()
    fake.enqueue(body={"ok": False, "error": "cannot_reply_to_message"}, path=POST)
    ts = sink.send(make_alert(reply_to=parent))
    first, second = fake.calls("chat.postMessage")
    assert first.params["thread_ts"] == parent and "thread_ts" not in second.params
    assert ts == fake.messages[-1]["ts"] and "posting it on its own" in caplog.text


def test_429_is_rate_limited_with_retry_after(fake: FakeSlackAPI, sink: SlackSink) -> None:
    fake.enqueue(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}, path=POST)
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 7 and "slack" in str(info.value)
    fake.enqueue(200, {"ok": False, "error": "rate_limited"}, path=POST)  # no header: a minute
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 60 and fake.messages == []


@pytest.mark.parametrize(
    ("code", "advice"),
    [("invalid_auth", "reinstall the Slack app"), ("not_authed", "xoxb- token"),
     ("account_inactive", "reinstall"), ("token_revoked", "reinstall"),
     ("channel_not_found", "check channel"), ("not_in_channel", "/invite"),
     ("is_archived", "unarchive"), ("msg_too_long", "report it"), ("invalid_blocks", "report it"),
     ("no_permission", "/invite"), ("missing_scope", "OAuth & Permissions"),
     ("restricted_action", "admin"), ("ekm_access_denied", "administrators")],
)
def test_permanent_errors_are_not_retried(
    fake: FakeSlackAPI, sink: SlackSink, code: str, advice: str
) -> None:
    fake.enqueue(body={"ok": False, "error": code}, path=POST)
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    error = info.value
    assert error.retryable is False and error.body_snippet == code
    assert code in str(error) and advice in str(error) and "slack" in str(error)
    assert len(fake.requests) == 1  # no hidden retries inside the client


def test_missing_scope_names_the_scope_and_a_permanent_error_parks_in_dispatch(
    fake: FakeSlackAPI, db: Database
) -> None:
    seed(db, Post("x", "1", "the app is broken", NOW, source="src"))
    fake.enqueue(body={"ok": False, "error": "missing_scope", "needed": "chat:write"}, path=POST)
    clock = ManualClock()
    result = dispatch(db, {"slack": make_sink(fake)}, RetryPolicy(), clock=clock,
                      sleep=clock.sleep, wait_up_to=3600, strict=True)
    assert (result.failed, result.retried, len(fake.requests)) == (1, 0, 1)
    error = db.execute("SELECT status, last_error FROM alerts").fetchone()
    assert error[0] == "failed" and "the scope chat:write" in error[1]


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, "<html>oops</html>"), (503, {"ok": False, "error": "service_unavailable"}),
     (200, {"ok": False, "error": "internal_error"}), (200, {"ok": False, "error": "fatal_error"}),
     (200, {"ok": False, "error": "some_code_added_later"}), (HANG_UP, None)],
)
def test_server_errors_and_dropped_connections_are_retryable(
    fake: FakeSlackAPI, sink: SlackSink, status: int, body: object
) -> None:
    fake.enqueue(status, body, path=POST)
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    assert info.value.retryable is True


def test_timeout_is_retryable_and_says_the_retry_looks_first(fake: FakeSlackAPI) -> None:
    fake.enqueue(delay=2.0, path=POST)
    sink = make_sink(fake, timeout=0.3)
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    sink.close()
    assert info.value.retryable is True and "0.3s" in str(info.value)
    assert "looks for it before posting again" in str(info.value)


def test_answer_lost_after_slack_posted_is_found_on_retry_not_posted_twice(
    fake: FakeSlackAPI, db: Database
) -> None:
    """Slack accepted the message but the answer never came: dispatch records a retryable
    failure; the second attempt finds the message by its metadata among newer ones."""
    seed(db, Post("x", "1", "the app is broken", NOW, source="src"))
    fake.enqueue(HANG_UP, path=POST, commit=True)  # posted for real, then the connection drops
    sink = make_sink(fake)
    clock = ManualClock()
    first = dispatch(db, {"slack": sink}, RetryPolicy(), clock=clock, sleep=clock.sleep,
                     strict=True)
    assert (first.retried, len(fake.messages)) == (1, 1)
    for _ in range(5):
        fake.post_message(text="people talking in the channel meanwhile")
    second = dispatch(db, {"slack": sink}, RetryPolicy(), clock=clock, sleep=clock.sleep,
                      wait_up_to=3600, strict=True)
    assert second.delivered == 1 and len(fake.calls("chat.postMessage")) == 1
    history = fake.calls("conversations.history")[0].params
    assert history["channel"] == CHANNEL_ID and history["include_all_metadata"] == "1"
    assert remote_ids(db) == {"1": ("delivered", fake.messages[0]["ts"])}
    assert [r["attempts"] for r in db.query("SELECT attempts FROM alerts")] == [2]


def test_a_retried_reply_is_looked_for_in_its_thread(fake: FakeSlackAPI, sink: SlackSink) -> None:
    parent = fake.post_message()
    ts = sink.send(make_alert(reply_to=parent))
    assert sink.send(make_alert(reply_to=parent, attempt=2)) == ts
    assert fake.calls("conversations.replies")[0].params["ts"] == parent
    assert len(fake.calls("chat.postMessage")) == 1


def test_a_retried_reply_whose_thread_is_gone_is_posted(
    fake: FakeSlackAPI, sink: SlackSink, caplog: pytest.LogCaptureFixture
) -> None:
    ts = sink.send(make_alert(reply_to="1767225000.000100", attempt=2))  # parent deleted
    assert ts == fake.messages[0]["ts"] and "thread_not_found" in caplog.text


def test_a_retry_with_nothing_found_posts(fake: FakeSlackAPI, sink: SlackSink) -> None:
    fake.post_message(metadata={"event_type": EVENT_TYPE, "event_payload": {"alert_id": "other"}})
    ts = sink.send(make_alert(attempt=3))
    assert ts == fake.messages[-1]["ts"] and len(fake.messages) == 2


def test_lookup_refused_or_impossible_posts_anyway_with_a_warning(
    fake: FakeSlackAPI, caplog: pytest.LogCaptureFixture
) -> None:
    named = make_sink(fake, channel="#support")  # history needs the ID: not known yet
    named.send(make_alert(alert_id="a1", attempt=2))
    assert "set channel to the ID" in caplog.text and fake.calls("conversations.history") == []
    named.send(make_alert(alert_id="a1", attempt=3))  # the ID was learnt from the first answer
    assert len(fake.calls("conversations.history")) == 1 and len(fake.messages) == 1
    fake.enqueue(body={"ok": False, "error": "missing_scope", "needed": "channels:history"},
                 path=api_path("conversations.history"))
    named.send(make_alert(alert_id="a2", attempt=2))
    assert "channels:history" in caplog.text and len(fake.messages) == 2
    named.close()


def test_a_rate_limited_lookup_waits_instead_of_posting(
    fake: FakeSlackAPI, sink: SlackSink
) -> None:
    fake.enqueue(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"},
                 path=api_path("conversations.history"))
    with pytest.raises(RateLimited):
        sink.send(make_alert(attempt=2))
    assert fake.calls("chat.postMessage") == []


def test_report_with_chart_is_posted_and_the_chart_uploaded_in_its_thread(
    fake: FakeSlackAPI, db: Database
) -> None:
    store.store_page(db, "src", Page(posts=[Post("x", "7", "acme is down", NOW, source="src",
                                                  url="https://x.com/ann/status/7")]), NOW)
    ids = [r["id"] for r in db.query("SELECT id FROM posts")]
    store.save_scores(db, [(ids[0], SCORE, None)], NOW)
    report = Report(kind="digest", name="daily", title="Acme: daily digest",
                    window_start=NOW - timedelta(days=1), window_end=NOW, brand="Acme",
                    summary="40 posts", facts=[("Posts", "40")], chart_png=PNG,
                    example_post_ids=ids)
    enqueue_report(db, report, ["slack"], NOW)
    clock = ManualClock()
    result = dispatch(db, {"slack": make_sink(fake)}, RetryPolicy(), clock=clock,
                      sleep=clock.sleep, strict=True)
    assert result.delivered == 1
    (message,) = fake.messages
    (upload,) = fake.uploads
    assert upload["thread_ts"] == message["ts"] and upload["channel_id"] == CHANNEL_ID
    assert upload["data"] == PNG and upload["title"] == "Acme: daily digest"
    assert "chart: in the thread" in str(message["blocks"])
    assert "<https://x.com/ann/status/7|x>" in str(message["blocks"])  # the example post
    assert db.execute("SELECT remote_id FROM alerts").fetchone()[0] == message["ts"]


def test_a_failed_chart_upload_keeps_the_report_delivered(
    fake: FakeSlackAPI, sink: SlackSink, caplog: pytest.LogCaptureFixture
) -> None:
    fake.enqueue(body={"ok": False, "error": "missing_scope", "needed": "files:write"},
                 path=api_path("files.getUploadURLExternal"))
    assert sink.send(make_report(chart_png=PNG)) == fake.messages[0]["ts"]
    assert fake.uploads == [] and "files:write" in caplog.text


def test_the_token_never_leaks(fake: FakeSlackAPI, caplog: pytest.LogCaptureFixture) -> None:
    """Every failure path at DEBUG: no log line, exception (or its context) or repr shows it."""
    caplog.set_level(logging.DEBUG)
    sink = make_sink(fake, timeout=0.3)
    errors: list[BaseException] = []
    for status, body, delay in [(200, {"ok": False, "error": "invalid_auth"}, 0),
                                (429, {"ok": False, "error": "ratelimited"}, 0),
                                (500, f"proxy error for {BOT_TOKEN}", 0), (HANG_UP, None, 0),
                                (200, None, 2.0)]:  # fmt: skip
        fake.enqueue(status, body, delay=delay, path=POST)
        with pytest.raises((DeliveryError, RateLimited)) as info:
            sink.send(make_alert())
        errors.append(info.value)
    sink.send(make_report(chart_png=PNG))
    sink.close()
    assert "Sending a request" in caplog.text  # the client did log at DEBUG: the check is live
    visible = [caplog.text, repr(sink)]
    visible += [r.getMessage() for r in caplog.records]
    for error in errors:
        assert error.__context__ is None and error.__cause__ is None
        visible.append(f"{error!s} {error!r} {getattr(error, 'body_snippet', '')}")
    for text in visible:
        assert BOT_TOKEN not in text and BOT_TOKEN.removeprefix("xoxb-") not in text


def test_check_verifies_token_and_channel_without_posting(fake: FakeSlackAPI) -> None:
    assert make_sink(fake).check() == ("token accepted (workspace 'Fake Workspace', bot user "
                                       "'listener'); channel C0FAKE00001 readable")
    assert "is a name" in make_sink(fake, channel="#support").check()
    fake.enqueue(body={"ok": False, "error": "not_in_channel"},
                 path=api_path("conversations.history"))
    with pytest.raises(DeliveryError, match="/invite"):
        make_sink(fake).check()
    assert fake.messages == [] and fake.calls("chat.postMessage") == []


def test_a_wrong_token_is_refused_by_the_fake_as_slack_does(fake: FakeSlackAPI) -> None:
    config = SlackSinkConfig(name="s", token="xoxb-0000-wrong", channel=CHANNEL_ID,
                             base_url=fake.api_url, timeout=5)
    with pytest.raises(DeliveryError) as info:
        SlackSink(config).send(make_alert())
    assert info.value.body_snippet == "invalid_auth" and info.value.retryable is False
    with pytest.raises(DeliveryError, match="invalid_auth"):
        SlackSink(config).check()
