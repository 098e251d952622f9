"""Many dispatch workers on one PostgreSQL database (issue 17): real HTTP to the fakes, the
real sinks, the real claims.

A destination without pacing is sent to by every worker at once, each alert exactly once; a
paced one (Slack) by one worker at a time, its gap kept across workers; a worker that dies
mid-send leaves its alerts to another once its claims expire; a Retry-After holds every worker.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.dispatch import Claim, RetryPolicy, dispatch
from alerts.sinks.webhook import WebhookSink, WebhookSinkConfig
from alerts.sinks.zendesk import ZendeskSink, ZendeskSinkConfig
from listener.config import Config, load_config
from listener.core.models import utcnow
from listener.pipeline import Runtime
from storage import claims, due_alerts, leases
from storage.engine import Db
from storage.tx import connect
from tests.alerts.test_dispatch import ManualClock
from tests.fakes.base import Fault
from tests.fakes.slack import FakeSlackWebhook
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.fakes.zendesk_api import TICKETS, FakeZendesk
from tests.pg_server import Server
from tests.storage.test_claims import seed

SECRET = "whsec-test-0123456789abcdef"
SLOW = 0.2  # seconds every fake takes to answer: a remote that takes its time


@pytest.fixture
def url(pg_server: Server) -> str:
    return pg_server.new_database()


@pytest.fixture
def hook() -> Iterator[FakeWebhookReceiver]:
    with FakeWebhookReceiver(SECRET) as fake:
        fake.latency = SLOW
        yield fake


def config(tmp_path: Path, url: str, hook_url: str = "http://127.0.0.1:9/x",
           slack_url: str = "http://127.0.0.1:9/y", slack_gap: float = 0.3) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
storage:
  url: {{"$env": TEST_DATABASE_URL}}
destinations:
  - type: webhook
    name: hook
    url: {hook_url}
    secret: {SECRET}
    allow_insecure_http: true
    allow_private_network: true
  - type: slack
    name: slack
    webhook_url: {slack_url}
    timeout: 5
    min_interval: {slack_gap}
dispatch:
  send_deadline: 10
  backoff_initial: 1
""", encoding="utf-8")
    return load_config(path, environ={"TEST_DATABASE_URL": url})


def together(count: int, work: Callable[[int], object], timeout: float = 60) -> None:
    """``work(i)`` in ``count`` threads started at once; the first failure is raised."""
    failures: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a worker never finished"
    if failures:
        raise failures[0]


def times_of(fake: FakeWebhookReceiver | FakeSlackWebhook | FakeZendesk,
             answer: Callable[[int], Fault | None] = lambda n: None) -> list[float]:
    """When each request arrived (monotonic), through the fakes' fault hook; ``answer(n)`` may
    answer the n-th request (from 0) in the fake's place."""
    arrived: list[float] = []
    lock = threading.Lock()

    def hook(method: str, path: str) -> Fault | None:
        with lock:
            arrived.append(time.monotonic())
            return answer(len(arrived) - 1)

    fake.faults = hook
    return arrived


def outcomes(db: Db) -> Counter[tuple[str, int]]:
    return Counter((r["status"], r["attempts"]) for r in db.query(
        "SELECT status, attempts FROM alerts"))


def test_workers_at_once_send_each_alert_once_to_a_slow_webhook(
    tmp_path: Path, url: str, hook: FakeWebhookReceiver,
) -> None:
    """Four workers (the runtime's dispatch, as `run --stages dispatch` runs it) drain 24
    alerts from a receiver that answers in 200 ms: each alert arrives once, and requests are
    in flight side by side (one sender waits for each answer: its requests are never closer
    than the receiver's 200 ms). Speed itself is bench/dispatch_workers.py's business."""
    db = connect(url)
    ids = seed(db, 24, now=utcnow())
    settings = config(tmp_path, url, hook_url=hook.url)
    runtimes = [Runtime(settings, worker=f"w{i}", strict=True) for i in range(4)]
    arrived = times_of(hook)
    together(4, lambda i: runtimes[i].run_dispatch(5.0, "hook"))
    assert sorted(hook.arrivals) == sorted(ids)  # every alert once, none twice
    assert outcomes(db) == {("delivered", 1): 24}
    assert leases.listed(db) == []  # every claim given back
    times = sorted(arrived)
    assert any(b - a < SLOW / 2 for a, b in zip(times, times[1:], strict=False)), \
        "no two requests were ever in flight at once: the workers did not send side by side"
    db.close()


def test_workers_at_once_create_each_ticket_once(url: str) -> None:
    db = connect(url)
    ids = seed(db, 12, "zd", now=utcnow())
    with FakeZendesk() as zendesk:
        zendesk.latency = SLOW

        def work(i: int) -> None:
            conn = connect(url)
            sink = ZendeskSink(ZendeskSinkConfig(
                name="zd", base_url=zendesk.base_url, email=zendesk.email,
                api_token=zendesk.token, timeout=5, min_interval=0))
            try:
                dispatch(conn, {"zd": sink}, RetryPolicy(), clock=utcnow, wait_up_to=5,
                         strict=True, claim=Claim(f"w{i}", 300))
            finally:
                sink.close()
                conn.close()

        together(4, work)
        created = [r for r in zendesk.requests if r.method == "POST" and r.path == TICKETS]
        tickets = zendesk.tickets
    assert sorted(r.headers["idempotency-key"] for r in created) == sorted(ids)
    assert sorted(t["external_id"] for t in tickets) == sorted(ids)
    assert outcomes(db) == {("delivered", 1): 12}
    db.close()


def test_a_paced_destination_has_one_sender_at_a_time_and_keeps_its_gap_across_workers(
    tmp_path: Path, url: str,
) -> None:
    """Slack's pacing (here 0.3 s) holds whichever worker sends: alerts come in one every
    0.1 s while two workers run dispatch passes back to back, as two daemons whose schedules
    fall together would. A pass ends whenever nothing is due, and the next one — of either
    worker — still keeps the gap after the last message."""
    db = connect(url)
    try:
        _paced_across_workers(db, tmp_path, url)
    finally:
        db.close()


def _paced_across_workers(db: Any, tmp_path: Path, url: str) -> None:
    with FakeSlackWebhook() as slack:
        arrived = times_of(slack)
        settings = config(tmp_path, url, slack_url=slack.url, slack_gap=0.3)
        runtimes = [Runtime(settings, worker=f"w{i}", strict=True) for i in range(2)]
        sent = [0, 0]

        def work(i: int) -> None:
            if i == 2:  # the rules stage, queueing an alert every 0.1 s
                for key in range(8):
                    seed(db, 1, "slack", start=key, now=utcnow())
                    time.sleep(0.1)
                return
            conn, deadline = connect(url), time.monotonic() + 30
            try:
                while time.monotonic() < deadline and conn.execute(
                        "SELECT count(*) FROM alerts WHERE status = 'delivered'"
                ).fetchone()[0] < 8:
                    sent[i] += runtimes[i].run_dispatch(0.0, "slack") or 0
                    time.sleep(0.01)
            finally:
                conn.close()

        together(3, work)
        assert len(slack.requests) == 8
    gaps = [b - a for a, b in zip(arrived, arrived[1:], strict=False)]
    assert min(gaps) >= 0.3 - 0.02, gaps
    assert sum(sent) == 8 and outcomes(db) == {("delivered", 1): 8}


def test_a_worker_that_dies_mid_send_leaves_its_alerts_to_another_once_expired(
    url: str,
) -> None:
    """w1 claims two tickets' alerts, creates the first ticket and dies before recording it.
    w2 sends everything else at once; once w1's claims run out it takes them over as attempt
    2: the ticket created is found (looked up by the alert id, with Zendesk's idempotency keys
    expired), not created again, and the other is created once."""
    db = connect(url)
    ids = seed(db, 5, "zd")
    clock = ManualClock()
    clock.now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    with FakeZendesk() as zendesk:
        sink = ZendeskSink(ZendeskSinkConfig(
            name="zd", base_url=zendesk.base_url, email=zendesk.email, api_token=zendesk.token,
            timeout=5, min_interval=0))
        dying = claims.deliveries_to_send(db, clock(), 2, "zd", "w1", 300)
        message = due_alerts.message(db, dying[0])
        assert claims.begin(db, dying[0], message.attempt, "w1", clock(), 300)
        sink.send(message)  # the ticket exists; w1 dies before recording it
        w2 = Claim("w2", 300)
        first = dispatch(db, {"zd": sink}, RetryPolicy(), clock=clock, sleep=clock.sleep,
                         strict=True, claim=w2)
        assert first.delivered == 3  # not w1's two: it still holds them
        zendesk.expire_keys()  # look-before-create alone must prevent a second ticket
        clock.now += timedelta(seconds=301)
        later = dispatch(db, {"zd": sink}, RetryPolicy(), clock=clock, sleep=clock.sleep,
                         strict=True, claim=w2)
        sink.close()
        created = Counter(r.headers["idempotency-key"] for r in zendesk.requests
                          if r.method == "POST" and r.path == TICKETS)
        tickets = zendesk.tickets
    assert later.delivered == 2
    assert created == Counter(ids) and sorted(t["external_id"] for t in tickets) == sorted(ids)
    assert outcomes(db) == {("delivered", 1): 4, ("delivered", 2): 1}
    assert leases.listed(db) == []  # w2 took w1's claims over and gave them back
    db.close()


def test_retry_after_from_the_destination_holds_every_worker(
    url: str, hook: FakeWebhookReceiver,
) -> None:
    """Four workers claiming four groups at a time; the receiver answers the third request
    429 with Retry-After 3. Apart from requests already on their way, no worker sends anything
    until the wait is over — not even the three groups each still holds, claimed before the
    429 — and then every alert arrives once."""
    db = connect(url)
    ids = seed(db, 16, now=utcnow())
    refused = Fault(429, {"error": "slow down"}, {"Retry-After": "3"})
    arrived = times_of(hook, lambda n: refused if n == 2 else None)

    def work(i: int) -> None:
        conn = connect(url)
        sink = WebhookSink(WebhookSinkConfig(
            name="hook", url=hook.url, secret=SECRET, allow_insecure_http=True,
            allow_private_network=True))
        try:
            dispatch(conn, {"hook": sink}, RetryPolicy(), clock=utcnow, wait_up_to=10,
                     strict=True, claim=Claim(f"w{i}", 300, size=4))
        finally:
            sink.close()
            conn.close()

    together(4, work)
    assert sorted(hook.arrivals) == sorted(ids)
    answered = arrived[2] + SLOW  # when the 429 reached its worker
    # Retry-After 3 is kept to the second (next_attempt_at): a wait of at least 2 s
    during = [t - answered for t in arrived if answered + 0.3 < t < answered + 1.9]
    assert during == [], f"sent during the wait: {during}"
    assert max(arrived) > answered + 2
    assert outcomes(db) == {("delivered", 1): 16}
    db.close()
