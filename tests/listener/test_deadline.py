"""Total deadlines (issue 14 #2): a server that drips one byte every second, or accepts and
never answers, is cut off after the block's deadline — whatever client library is talking to
it — and a slow destination or source never holds anything else up.

Real clients (httpx, urllib, requests, smtplib) against fakes on 127.0.0.1; the real dispatch
stage, Slack and webhook sinks; the real daemon for SIGTERM.
"""

from __future__ import annotations

import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from sqlite_utils import Database

from listener.config import load_config
from listener.core.deadline import deadline, expire_all, install
from listener.core.errors import DeadlineExceeded
from listener.pipeline import Runtime
from tests.e2e import NEGATIVE, cli_env, posts_jsonl
from tests.fakes.base import HANG, FakeHTTPServer, ScriptedResponse


class Slow(FakeHTTPServer):
    """Answers 200 "ok" — dripped a byte a second, after a delay, or never (``mode``)."""

    def __init__(self, mode: str = "drip") -> None:
        super().__init__()
        self.mode = mode
        self.text_type = "text/plain"

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> ScriptedResponse:
        self._record((method, path))
        if self.mode == "drip":
            return ScriptedResponse(200, "ok" + " " * 600, drip=1.0)
        if self.mode == "hang":
            return ScriptedResponse(200, "ok", delay=HANG)
        return ScriptedResponse(200, "ok")


def cut_after(call: Any, seconds: float = 1.5) -> float:
    """Run ``call`` inside a deadline; how long until DeadlineExceeded came."""
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="no complete answer within"):
        with deadline(seconds, "test"):
            call()
    return time.monotonic() - started


@pytest.mark.parametrize("mode", ["drip", "hang"])
def test_every_client_library_is_cut_off_at_the_deadline(mode: str) -> None:
    install()
    with Slow(mode) as server:
        url = f"{server.base_url}/x"
        pooled = httpx.Client(timeout=10)
        session = requests.Session()
        calls = {
            "httpx": lambda: pooled.get(url).read(),
            "urllib": lambda: urllib.request.urlopen(url, timeout=10).read(),  # noqa: S310
            "requests": lambda: session.get(url, timeout=10).content,
        }
        for name, call in calls.items():
            took = cut_after(call)
            assert 1.4 < took < 3.0, (name, took)  # per-read timeouts of 10 s never fired


def test_a_pooled_connection_opened_before_the_block_is_cut_too() -> None:
    """Clients keep connections alive: the slow answer may arrive on an older socket."""
    install()
    with Slow("fast") as server:
        client = httpx.Client(timeout=10)
        assert client.get(f"{server.base_url}/warm").status_code == 200  # connection pooled
        server.mode = "drip"
        assert cut_after(lambda: client.get(f"{server.base_url}/x").read()) < 3.0
        server.mode = "fast"  # the cut connection is not reused: the next call just works
        assert client.get(f"{server.base_url}/again").status_code == 200


def test_smtp_that_never_greets_is_cut_off() -> None:
    install()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        assert cut_after(lambda: smtplib.SMTP("127.0.0.1", port, timeout=30)) < 3.0
    finally:
        listener.close()


def test_a_block_that_finishes_in_time_keeps_its_result_and_expire_all_cuts_every_thread(
) -> None:
    install()
    with Slow("fast") as server, deadline(5, "quick"):
        assert httpx.get(f"{server.base_url}/ok").text == "ok"
    with Slow("hang") as server:
        errors: list[BaseException] = []

        def blocked() -> None:
            try:
                with deadline(60, "blocked"):
                    urllib.request.urlopen(f"{server.base_url}/x", timeout=60).read()  # noqa: S310
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=blocked) for _ in range(3)]
        for thread in threads:
            thread.start()
        server.wait_for_requests(3, timeout=10)
        started = time.monotonic()
        assert expire_all() >= 3  # what the daemon does on SIGTERM
        for thread in threads:
            thread.join(timeout=5)
        assert time.monotonic() - started < 2
        assert len(errors) == 3 and all(isinstance(e, DeadlineExceeded) for e in errors)


# -- through the product -------------------------------------------------------------------


def slow_slack_config(tmp_path: Path, slack_url: str, hook_url: str, *,
                      send_deadline: float = 3) -> Path:
    (tmp_path / "posts.jsonl").write_text(posts_jsonl(NEGATIVE * 4), encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
storage: {{path: listener.db}}
metrics: {{port: null}}
sources: [{{type: file, name: imports, path: posts.jsonl, interval: 1}}]
rules:
  - {{name: unhappy, when: {{sentiment: [negative], min_probability: 0.6}},
     destinations: [slack, hook]}}
destinations:
  - {{type: slack, name: slack, webhook_url: "{slack_url}", timeout: 10, min_interval: 0}}
  - {{type: webhook, name: hook, url: "{hook_url}", secret: {{"$env": HOOK_SECRET}},
     min_interval: 0, allow_insecure_http: true, allow_private_network: true}}
incidents: {{enabled: false}}
dispatch: {{send_deadline: {send_deadline}, once_max_wait: 0, backoff_initial: 60}}
""", encoding="utf-8")
    return path


class Receiver(FakeHTTPServer):
    """A healthy webhook receiver that notes when each alert arrived."""

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> ScriptedResponse:
        self._record(time.monotonic())
        return ScriptedResponse(200, {"ok": True})


@pytest.mark.slow  # ~35 s: a Slack answering one byte every few seconds
def test_a_dripping_slack_never_delays_a_healthy_destination(tmp_path: Path) -> None:
    """Issue 14 #2: a Slack endpoint answering a byte every 3 s kept all 24 alerts from going
    out, the healthy webhook's 12 included; each destination now has its own worker and every
    attempt its deadline."""
    with Slow("drip") as slack, Receiver() as hook:
        config = load_config(slow_slack_config(tmp_path, f"{slack.base_url}/services/x",
                                               f"{hook.base_url}/hook"),
                             environ={"HOOK_SECRET": "s" * 32})
        runtime = Runtime(config)
        runtime.migrate()
        for source in runtime.sources():
            runtime.run_collect(source)
        runtime.run_classify()
        runtime.run_rules()
        started = time.monotonic()
        runtime.run_dispatch(0.0)
        arrived = [t - started for t in hook.requests]
    db = Database(tmp_path / "listener.db")
    unhappy = db.execute("SELECT count(*) FROM alerts WHERE destination = 'hook'").fetchone()[0]
    assert unhappy >= 8 and len(arrived) == unhappy
    assert max(arrived) < 5  # its own pace (none) + 5 s, while Slack held its worker
    rows = dict(db.execute("SELECT status, count(*) FROM alerts WHERE destination = 'slack'"
                           " GROUP BY 1").fetchall())
    assert rows == {"pending": unhappy}  # cut off, to be retried: nothing lost
    error = db.execute("SELECT last_error FROM alerts WHERE destination = 'slack'"
                       " AND last_error IS NOT NULL").fetchone()[0]
    assert "no complete answer within 3 s" in error


def test_sigterm_stops_the_daemon_within_seconds_while_a_destination_hangs(
    tmp_path: Path,
) -> None:
    """Issue 14 #2: SIGTERM was ignored for 90 s while dispatch waited on a slow Slack."""
    with Slow("hang") as slack, Receiver() as hook:
        config = slow_slack_config(tmp_path, f"{slack.base_url}/services/x",
                                   f"{hook.base_url}/hook", send_deadline=300)
        env = dict(cli_env("unused"), HOOK_SECRET="s" * 32)
        proc = subprocess.Popen([sys.executable, "-m", "listener", "run", "-c", str(config)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            slack.wait_for_requests(1, timeout=120)  # dispatch is now stuck on Slack
            hook.wait_for_requests(8, timeout=30)  # ... and the webhook got its alerts anyway
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert took < 10, (took, err)
    assert "daemon stopped" in err


def test_a_run_without_progress_shows_as_stuck(tmp_path: Path) -> None:
    """Issue 14 #2: a stuck job is visible — /healthz 503, `listener status`, a metric —
    while a run that keeps making progress (its heartbeat) is not."""
    from datetime import timedelta

    from listener.commands.status import render_status
    from listener.core.models import utcnow
    from listener.health import healthz, load_snapshot
    from storage import db as store

    with Slow("fast") as slack, Receiver() as hook:
        config = load_config(slow_slack_config(tmp_path, f"{slack.base_url}/services/x",
                                               f"{hook.base_url}/hook"),
                             environ={"HOOK_SECRET": "s" * 32})
    db = store.open_db(config.database)
    now = utcnow()
    busy = store.start_run(db, "classify", "", now - timedelta(hours=2))
    store.beat_run(db, busy, now - timedelta(seconds=30))  # a long re-score, still going
    hung = store.start_run(db, "collect", "imports", now - timedelta(minutes=11))
    status, body = healthz(config, now)
    assert status == 503 and [s["stage"] for s in body["stuck"]] == ["collect:imports"]
    assert "collect:imports STUCK: no progress for 11m" in render_status(
        load_snapshot(config), config, now)
    from prometheus_client import generate_latest

    from listener.metrics import scrape_registry

    text = generate_latest(scrape_registry(config, lambda: now, with_process=False)).decode()
    assert 'listener_stage_idle_seconds{stage="collect",target="imports"} 66' in text
    store.finish_run(db, hung, now, items=0)
    assert healthz(config, now)[0] == 200
    db.close()


def test_a_dripping_feed_fails_its_poll_at_the_page_deadline_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Issue 14 #2: an RSS feed that drips pinned its source job forever and blocked SIGTERM."""
    from tests.fakes.base import Fault
    from tests.fakes.feeds import FakeFeedServer, rss_document

    items = [{"guid": f"g{i}", "title": f"acme outage {i}", "description": "down again",
              "link": f"https://blog.example/{i}"} for i in range(3)]
    with FakeFeedServer() as feeds:
        feeds.set_feed("/feed.xml", rss_document(items))
        (tmp_path / "config.yaml").write_text(f"""\
storage: {{path: listener.db}}
sources:
  - {{type: rss, name: blog, feeds: ["{feeds.url('/feed.xml')}"], page_deadline: 2}}
""", encoding="utf-8")
        runtime = Runtime(load_config(tmp_path / "config.yaml", environ={}))
        runtime.migrate()
        [source] = runtime.sources()
        document = rss_document(items).encode()
        feeds.faults = lambda method, path: Fault(200, document, drip=0.5)
        started = time.monotonic()
        assert runtime.run_collect(source) is None  # the poll failed ...
        assert time.monotonic() - started < 5  # ... at its deadline, not after 30 minutes
        feeds.faults = None
        assert runtime.run_collect(source) == 3  # the next poll takes every item: none lost
    db = Database(tmp_path / "listener.db")
    error = db.execute("SELECT error FROM runs WHERE status = 'error'").fetchone()[0]
    assert "source blog: no complete answer within 2 s" in error
