"""The dispatch stage with an injected clock, the real Slack sink and a fake Slack server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.sinks.slack import SlackSink, SlackSinkConfig
from listener.core.models import Page, Post, Score
from storage import db as store
from storage import outbox
from tests.fakes.slack import FakeSlackWebhook


class ManualClock:
    """Time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def seed(db: Database, clock: ManualClock, count: int, destination: str = "slack") -> list[str]:
    posts = [Post("x", str(i), f"post {i} is broken", clock(), source="s") for i in range(count)]
    store.store_page(db, "s", Page(posts=posts), clock())
    score = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v")
    rows = store.posts_to_score(db, "m", "v", count)
    store.save_scores(db, [(r.id, score, None) for r in rows], clock())
    evaluated = store.scores_to_evaluate(db, count)
    alerts = [outbox.NewAlert("r", destination, r.post_id, r.score_id, f"x:{r.post.platform_id}")
              for r in evaluated]
    outbox.enqueue(db, alerts, [r.score_id for r in evaluated], clock())
    return [outbox.alert_id("r", f"x:{i}", destination) for i in range(count)]


def sink_for(slack: FakeSlackWebhook) -> SlackSink:
    return SlackSink(SlackSinkConfig(type="slack", name="slack", webhook_url=slack.url,
                                     timeout=2, min_interval=0))


def statuses(db: Database) -> list[tuple[str, int]]:
    return [(r["status"], r["attempts"]) for r in db.query(
        "SELECT status, attempts FROM alerts ORDER BY id")]


def test_permanent_error_parks_at_once(db: Database) -> None:
    clock = ManualClock()
    seed(db, clock, 1)
    with FakeSlackWebhook() as slack:
        slack.enqueue(404, "channel_not_found")
        result = dispatch(db, {"slack": sink_for(slack)}, RetryPolicy(), clock=clock,
                          sleep=clock.sleep, wait_up_to=3600, strict=True)
        assert len(slack.requests) == 1
    assert (result.failed, result.retried) == (1, 0)
    assert statuses(db) == [("failed", 1)]
    error = db.execute("SELECT last_error FROM alerts").fetchone()[0]
    assert "channel_not_found" in error


def test_retryable_errors_back_off_then_park_after_max_attempts(db: Database) -> None:
    clock = ManualClock()
    seed(db, clock, 1)
    policy = RetryPolicy(max_attempts=3, backoff_initial=10, backoff_max=100)
    with FakeSlackWebhook() as slack:
        for _ in range(3):
            slack.enqueue(500, "internal_error")
        result = dispatch(db, {"slack": sink_for(slack)}, policy, clock=clock,
                          sleep=clock.sleep, wait_up_to=3600, strict=True)
        assert len(slack.requests) == 3
    assert statuses(db) == [("failed", 3)]
    assert (result.retried, result.failed) == (2, 1)
    # exponential backoff with jitter: 5–10 s, then 10–20 s
    assert 5 <= clock.slept[0] <= 10 and 10 <= clock.slept[1] <= 20
    outcomes = [r["outcome"] for r in db.query("SELECT outcome FROM deliveries ORDER BY id")]
    assert outcomes == ["retry", "retry", "failed"]


def test_rate_limit_holds_the_whole_destination_for_retry_after(db: Database) -> None:
    clock = ManualClock()
    ids = seed(db, clock, 3)
    with FakeSlackWebhook() as slack:
        slack.enqueue(429, "rate_limited", {"Retry-After": "30"})
        result = dispatch(db, {"slack": sink_for(slack)}, RetryPolicy(), clock=clock,
                          sleep=clock.sleep, wait_up_to=60, strict=True)
        assert len(slack.requests) == 4  # one refused, then each of the three once
    assert result.rate_limited == 1 and result.delivered == 3
    assert clock.slept == [30.0]  # nobody hammered Slack during the wait
    assert statuses(db) == [("delivered", 1)] * 3
    assert {r["id"] for r in db.query("SELECT id FROM alerts")} == set(ids)


def test_without_waiting_a_rate_limit_leaves_alerts_pending(db: Database) -> None:
    clock = ManualClock()
    seed(db, clock, 2)
    with FakeSlackWebhook() as slack:
        slack.enqueue(429, "rate_limited", {"Retry-After": "30"})
        dispatch(db, {"slack": sink_for(slack)}, RetryPolicy(), clock=clock, sleep=clock.sleep)
        assert len(slack.requests) == 1
    assert statuses(db) == [("pending", 0)] * 2
    due_at = db.execute("SELECT min(next_attempt_at) FROM alerts").fetchone()[0]
    assert due_at == "2026-11-20T12:00:30Z"


def test_alerts_for_a_destination_without_sink_stay_pending(db: Database) -> None:
    clock = ManualClock()
    seed(db, clock, 1, destination="gone")
    result = dispatch(db, {}, RetryPolicy(), clock=clock, sleep=clock.sleep, wait_up_to=60)
    assert result.items == 0 and clock.slept == []
    assert statuses(db) == [("pending", 0)]


def test_rules_matching_one_post_share_one_message(db: Database) -> None:
    clock = ManualClock()
    seed(db, clock, 1)
    post_id, score_id = db.execute("SELECT post_id, id FROM scores").fetchone()
    outbox.enqueue(db, [outbox.NewAlert("urgent", "slack", post_id, score_id, "x:0", "high")],
                   [], clock())
    with FakeSlackWebhook() as slack:
        result = dispatch(db, {"slack": sink_for(slack)}, RetryPolicy(), clock=clock,
                          sleep=clock.sleep, strict=True)
        payload = str(slack.requests[0].json)
        assert len(slack.requests) == 1
    assert result.delivered == 1
    assert "*Rules*\\nr, urgent" in payload  # one message names both rules
    assert statuses(db) == [("delivered", 1)] * 2


def test_shutdown_ends_a_paced_pass_between_messages_and_loses_nothing(db: Database) -> None:
    """SIGTERM while 5 alerts wait for Slack's pacing (1 a second): the message sent goes, the
    rest stay pending for the next start instead of holding the daemon up a second each."""
    clock = ManualClock()
    seed(db, clock, 5)
    stop = threading.Event()

    def sleep_until_sigterm(seconds: float) -> None:
        stop.set()  # the signal arrives during the first pacing wait
        clock.sleep(seconds)

    with FakeSlackWebhook() as slack:
        sink = SlackSink(SlackSinkConfig(type="slack", name="slack", webhook_url=slack.url,
                                         timeout=2, min_interval=1.0))
        result = dispatch(db, {"slack": sink}, RetryPolicy(), clock=clock,
                          sleep=sleep_until_sigterm, stop=stop)
        assert len(slack.requests) == 1
    assert result.delivered == 1
    assert sorted(statuses(db)) == [("delivered", 1)] + [("pending", 0)] * 4
