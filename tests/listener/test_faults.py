"""Faults the daemon survives, each a real scenario (issue #7).

Real parts: SQLite files, a second process holding the database lock, the real sources and sinks
speaking HTTP to fakes on 127.0.0.1, the default model where the pipeline runs end to end, and the
real daemon in a subprocess for the config reload. Time is a manual clock wherever time matters.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlite_utils import Database

from classifiers.base import Classifier
from listener.config import load_config
from listener.core.errors import StorageError
from listener.core.models import Page, Post, Score, parse_iso
from listener.pipeline import Runtime
from listener.sources.collect import collect
from storage import db as store
from storage import outbox, source_pauses
from storage.tx import connect
from tests.alerts.test_dispatch import ManualClock
from tests.crash.stream import NEGATIVE as NEGATIVE_ACME
from tests.e2e import NEGATIVE, POSITIVE, cli_env, posts_jsonl, setup_dir
from tests.fakes.base import Fault, ScriptedResponse
from tests.fakes.hn_api import FakeHNSearch, story
from tests.fakes.slack import FakeSlackWebhook
from tests.fakes.zendesk_api import FakeZendesk


def write_config(tmp_path: Path, hn_url: str, extra: str = "", dests: str = "[slack]") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
storage: {{path: t.db}}
brands: [{{name: acme, query: acme}}]
sources: [{{type: hackernews, name: hn, base_url: "{hn_url}"}}]
rules: [{{name: unhappy, when: {{sentiment: [negative]}}, destinations: {dests}}}]
destinations:
  - {{type: slack, name: slack, webhook_url: {{"$env": FAULT_SLACK}}, timeout: 2, min_interval: 0}}
{extra}""")
    return path


def runtime_for(path: Path, clock: ManualClock, model: Classifier | None = None,
                **env: str) -> Runtime:
    config = load_config(path, environ={"FAULT_SLACK": "http://127.0.0.1:9/hook", **env})
    runtime = Runtime(config, clock=clock, sleep=clock.sleep, busy_timeout_ms=200,
                      preloaded=model)
    runtime.migrate()
    return runtime


def acme_stories(clock: ManualClock, ids: range) -> list[dict]:
    stamp = int(clock().timestamp()) - 60
    return [story(i, stamp, f"acme outage report number {i}") for i in ids]


# -- database locked by another process ---------------------------------------------------------

HOLDER = """\
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def locked(database: Path) -> Iterator[None]:
    """Another process holds an exclusive transaction on the database until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(database)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.stdin.close()  # end of input: the holder rolls back and exits
        proc.wait(timeout=30)
        proc.stdout.close()


def run_rows(database: Path) -> list[tuple[str, str | None]]:
    return [(r["status"], r["error"]) for r in Database(database).query(
        "SELECT status, error FROM runs ORDER BY started_at, id")]


def test_locked_database_fails_the_stage_cleanly_and_the_next_run_succeeds(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    with FakeHNSearch() as hn:
        hn.add(*acme_stories(clock, range(1, 4)))
        runtime = runtime_for(write_config(tmp_path, hn.base_url), clock)
        [source] = runtime.sources()
        with locked(runtime.config.database):
            assert runtime.run_collect(source) is None  # failed, not raised: the daemon goes on
        assert hn.requests == []  # the stage could not even start: nothing fetched, nothing lost
        assert runtime.run_collect(source) == 3
    assert "cannot record the run yet" in caplog.text and "database is busy" in caplog.text
    rows = dict(run_rows(runtime.config.database))  # the failed run, recorded once it could be
    assert sorted(rows) == ["error", "ok"] and "database is busy" in str(rows["error"])


class HeldHN(FakeHNSearch):
    """Holds each answer until ``release`` is set: the test acts while a poll is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> ScriptedResponse:
        answer = super().handle(method, path, query, headers, body)
        self.release.wait(30)
        return answer


def test_lock_taken_while_a_page_is_in_flight_keeps_the_cursor_and_loses_nothing(
        tmp_path: Path) -> None:
    clock = ManualClock()
    with HeldHN() as hn:
        hn.add(*acme_stories(clock, range(1, 4)))
        runtime = runtime_for(write_config(tmp_path, hn.base_url), clock)
        [source] = runtime.sources()
        result: list[int | None] = []
        worker = threading.Thread(target=lambda: result.append(runtime.run_collect(source)))
        worker.start()
        hn.wait_for_requests(1)
        with locked(runtime.config.database):
            hn.release.set()  # the page arrives; storing it needs the lock the other one holds
            worker.join(30)
        assert result == [None]
        db = Database(runtime.config.database)
        assert db["posts"].count == 0 and store.load_cursor(db, "hn") is None
        assert runtime.run_collect(source) == 3  # the same page again, stored this time
    assert [s for s, _ in run_rows(runtime.config.database)] == ["error", "ok"]


# -- disk full ----------------------------------------------------------------------------------

def test_disk_full_on_write_keeps_the_cursor_and_recovers_when_space_returns(
        tmp_path: Path) -> None:
    clock = ManualClock()
    with FakeHNSearch() as hn:
        stamp = int(clock().timestamp()) - 60
        hn.add(*(story(i, stamp, f"acme outage {i}", story_text="Details. " * 500)
                 for i in range(1, 6)))  # 4.5 kB each: they need new pages
        runtime = runtime_for(write_config(tmp_path, hn.base_url), clock)
        [source] = runtime.sources()
        db = store.open_db(runtime.config.database)
        db.execute("VACUUM")  # no free pages left inside the file
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL on the next new page
        with pytest.raises(StorageError, match="SQLITE_FULL.*free disk space"):
            collect(db, source, clock)
        assert db["posts"].count == 0 and store.load_cursor(db, "hn") is None
        db.execute("PRAGMA max_page_count = 1073741823")  # space is back
        assert collect(db, source, clock) == 5
        assert store.load_cursor(db, "hn") is not None
        db.close()


def test_writes_never_change_the_schema_under_the_other_stages(tmp_path: Path) -> None:
    """sqlite-utils 4 probed for upserts with CREATE/DROP TABLE on each new connection: every
    cursor saved expired the other stages' statements, and a concurrent INSERT INTO scores
    (FTS5 triggers) failed with SQLITE_SCHEMA. The crash harness caught it in its log."""
    clock = ManualClock()
    store.open_db(tmp_path / "t.db").close()
    watcher = connect(tmp_path / "t.db")
    before = watcher.execute("PRAGMA schema_version").fetchone()[0]
    for _ in range(2):  # fresh connections, as every stage run opens
        db = connect(tmp_path / "t.db")
        store.store_page(db, "hn", Page([], cursor={"since": 1}), clock())
        source_pauses.pause_source(db, "hn", clock() + timedelta(seconds=60), "429", clock())
        db.close()
    assert watcher.execute("PRAGMA schema_version").fetchone()[0] == before
    watcher.close()


# -- a source answering garbage for an hour -----------------------------------------------------

GARBAGE = (
    (200, "<html><body>Down for maintenance</body></html>", {"Content-Type": "text/html"}),
    (200, '{"hits": [{"objectID": "1"', {}),  # cut off mid-answer
    (200, '{"message": "ok"}', {}),  # JSON, but not a search answer
    (502, "<html>Bad gateway</html>", {"Content-Type": "text/html"}),
)


def test_source_answering_garbage_for_an_hour_keeps_its_cursor_then_collects_every_post(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    with FakeHNSearch() as hn:
        hn.add(*acme_stories(clock, range(1, 2)))
        runtime = runtime_for(write_config(tmp_path, hn.base_url), clock)
        [source] = runtime.sources()
        assert runtime.run_collect(source) == 1
        db = Database(runtime.config.database)
        cursor = store.load_cursor(db, "hn")
        for minute in range(60):  # an hour of polls, one a minute, while posts keep coming
            clock.now += timedelta(minutes=1)
            hn.add(story(100 + minute, int(clock().timestamp()) - 5, f"acme is down {minute}"))
            hn.enqueue(*GARBAGE[minute % len(GARBAGE)])
            assert runtime.run_collect(source) is None
            assert store.load_cursor(db, "hn") == cursor
        clock.now += timedelta(minutes=1)
        assert runtime.run_collect(source) == 60  # every post of the hour: no gap
    ids = {r["platform_id"] for r in db["posts"].rows}
    assert ids == {"1", *(str(100 + m) for m in range(60))}
    errors = [e for s, e in run_rows(runtime.config.database) if s == "error"]
    assert len(errors) == 60 and all("SourceError" in e for e in errors)
    assert "not JSON" in caplog.text and "HTTP 502" in caplog.text


# -- a sink down for an hour --------------------------------------------------------------------

SLACK_DOWN = Fault(503, "service_unavailable", kind="http-503")  # what Slack answers in an outage


def queue_negative_alerts(runtime: Runtime, clock: ManualClock, count: int) -> None:
    """Posts with a negative score through the real rules stage (the model is not the point)."""
    db = store.open_db(runtime.config.database)
    posts = [Post("hackernews", str(i), f"acme lost my order {i}", clock(), source="hn")
             for i in range(count)]
    store.store_page(db, "hn", Page(posts), clock())
    score = Score("negative", 0.9, 0.05, 0.05, 0.7, "m", "v")
    store.save_scores(db, [(r.id, score, None) for r in store.posts_to_score(db, "m", "v", 99)],
                      clock())
    db.close()
    assert runtime.run_rules() == count * 2


def dispatch_for(runtime: Runtime, clock: ManualClock, seconds: int) -> None:
    """The daemon's dispatch job, every 10 s (its default interval) of injected time."""
    for _ in range(seconds // 10):
        runtime.run_dispatch()
        clock.now += timedelta(seconds=10)


def test_sinks_down_for_an_hour_retry_with_backoff_and_deliver_each_alert_once(
        tmp_path: Path) -> None:
    clock = ManualClock()
    gone = FakeZendesk().start()
    port, url = gone.port, gone.base_url
    gone.stop()  # nothing listens on its port for the next hour: connection refused
    zendesk = f"""\
  - {{type: zendesk, name: tickets, base_url: "{url}", email: {gone.email},
     api_token: {{"$env": FAULT_ZENDESK}}, min_interval: 0, timeout: 2}}
"""
    path = write_config(tmp_path, "http://127.0.0.1:9", zendesk, dests="[slack, tickets]")
    with FakeSlackWebhook() as slack:
        slack.faults = lambda _method, _path: SLACK_DOWN
        runtime = runtime_for(path, clock, FAULT_SLACK=slack.url, FAULT_ZENDESK=gone.token)
        queue_negative_alerts(runtime, clock, 3)
        dispatch_for(runtime, clock, 3600)
        db = Database(runtime.config.database)
        rows = list(db.query("SELECT id, destination, status, attempts FROM alerts"))
        # Default policy (8 attempts, 30 s doubling to 1 h, jitter): each alert is still pending
        # or, once its attempts ran out (after 32-63 minutes), parked; none is lost or sent.
        assert len(rows) == 6 and {r["status"] for r in rows} <= {"pending", "failed"}
        assert all(r["attempts"] >= 7 for r in rows)
        gaps = _attempt_gaps(db, rows[0]["id"])
        assert gaps[-1] >= 8 * gaps[0]  # exponential backoff, not hammering
        slack.faults, seen = None, len(slack.requests)  # Slack is back
        with FakeZendesk().start(port) as back:
            outbox.requeue_failed(db, clock())  # `listener alerts retry`, for the parked ones
            dispatch_for(runtime, clock, 3600)
            tickets = back.tickets
        answered = [r.body.decode() for r in slack.requests[seen:]]
    assert seen == 0  # while down, no request reached Slack's fake: none could have been posted
    assert [r["status"] for r in db.query("SELECT status FROM alerts")] == ["delivered"] * 6
    for alert in (r["id"] for r in rows if r["destination"] == "slack"):
        assert sum(alert in body for body in answered) == 1  # delivered once, no duplicate
    assert sorted(t["external_id"] for t in tickets) == sorted(
        r["id"] for r in rows if r["destination"] == "tickets")  # one ticket per alert


def _attempt_gaps(db: Database, alert: str) -> list[float]:
    times = [parse_iso(r["at"]) for r in db.query(
        "SELECT at FROM deliveries WHERE alert_id = ? ORDER BY id", [alert])]
    return [(b - a).total_seconds() for a, b in pairwise(times)]


# -- the clock jumping --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model() -> Classifier:
    from classifiers.loader import load_classifier

    return load_classifier("default", batch_size=32, device="cpu")


def test_clock_jumping_back_and_forth_neither_crashes_nor_duplicates_nor_wedges(
        tmp_path: Path, model: Classifier) -> None:
    clock = ManualClock()
    t0 = clock()
    with FakeHNSearch() as hn, FakeSlackWebhook() as slack:
        hn.add(*(story(i, int(t0.timestamp()) - 60, NEGATIVE_ACME[i].format(n=i)) for i in (1, 2)))
        path = write_config(tmp_path, hn.base_url, "dispatch: {once_max_wait: 0}\n")
        runtime = runtime_for(path, clock, model, FAULT_SLACK=slack.url)
        for _ in range(4):
            slack.enqueue(503, "service_unavailable")
        assert runtime.run_once()  # two alerts, Slack down: both wait for a retry
        clock.now = t0 + timedelta(days=1)  # the clock runs a day ahead
        hn.enqueue(429, '{"message": "slow down"}', {"Retry-After": "120"})
        assert runtime.run_once()  # the source pauses 120 s; the retries fail again
        db = Database(runtime.config.database)
        assert source_pauses.paused_until(db, "hn") == clock() + timedelta(seconds=120)
        polls = len(hn.requests)

        clock.now = t0 + timedelta(minutes=2)  # ... and is set right: a day back
        assert runtime.run_once()
        assert len(hn.requests) == polls  # still paused, for its 120 s, not for a day
        assert [r["status"] for r in db["alerts"].rows] == ["delivered"] * 2  # retried now
        clock.now += timedelta(seconds=121)
        hn.add(story(3, int(clock().timestamp()) - 5, NEGATIVE_ACME[3].format(n=3)))
        assert runtime.run_once()
        assert len(hn.requests) == polls + 1  # resumed
        clock.now -= timedelta(hours=1)  # and an hour back
        assert runtime.run_once()
        answered = [r.body.decode() for r in slack.requests[4:]]
    alerts = [r["id"] for r in db.query("SELECT id FROM alerts WHERE status = 'delivered'")]
    assert len(alerts) == 3 and len(answered) == 3
    assert all(sum(a in body for body in answered) == 1 for a in alerts)  # no duplicate
    assert [s for s, _ in run_rows(runtime.config.database) if s != "ok"] == []
    assert source_pauses.paused_until(db, "hn") is None


# -- a config reload with an error --------------------------------------------------------------

def wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout: float = 120) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        lines = [line for line in log.read_text().splitlines() if text in line]
        if lines:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in the daemon log:\n{log.read_text()[-3000:]}")


def test_sighup_with_a_broken_config_keeps_the_old_one_then_a_fixed_one_takes_over(
        tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE[:1], interval=1)
    good = config.read_text() + "metrics:\n  port: null\n"  # no fixed port in tests
    config.write_text(good)
    log = tmp_path / "daemon.log"
    with FakeSlackWebhook() as slack, log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "listener", "run", "-c", str(config)],
                                env=cli_env(slack.url), stdout=out, stderr=subprocess.STDOUT)
        try:
            slack.wait_for_requests(1, timeout=120)
            broken = good.replace("min_probability: 0.6", "min_probability: lots")
            config.write_text(broken)
            proc.send_signal(signal.SIGHUP)
            line = wait_for_line(log, "config reload failed", proc)
            number = broken.splitlines().index("      min_probability: lots") + 1
            assert f"{config}, line {number}, key 'rules[0].when.min_probability'" in line
            assert line.endswith("; keeping the previous config")
            _append(tmp_path, NEGATIVE[1:2], start=2)
            slack.wait_for_requests(2, timeout=60)  # still running, still alerting

            happy = "  - name: happy\n    when:\n      sentiment: [positive]\n" \
                    "    destinations: [slack]\ndestinations:\n"
            config.write_text(good.replace("destinations:\n  - type", happy + "  - type", 1))
            proc.send_signal(signal.SIGHUP)
            wait_for_line(log, "config reloaded from", proc)
            _append(tmp_path, POSITIVE[:1], start=3)
            [*_, third] = slack.wait_for_requests(3, timeout=60)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert POSITIVE[0][:40] in json.dumps(third.json) and "happy" in json.dumps(third.json)
    assert len(slack.requests) == 3


def _append(tmp_path: Path, texts: list[str], start: int) -> None:
    with (tmp_path / "posts.jsonl").open("a", encoding="utf-8") as f:
        f.write(posts_jsonl(texts, start))
