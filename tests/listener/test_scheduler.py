"""The daemon's scheduler: its jobs inspected without starting it, and its chaining live."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from listener.config import load_config
from listener.pipeline import Runtime
from listener.scheduler import Chain, build_scheduler
from tests.e2e import NEGATIVE, cli_env, posts_jsonl, setup_dir
from tests.fakes.slack import FakeSlackWebhook


def test_one_job_per_source_plus_stages_with_safe_defaults(tmp_path: Path) -> None:
    config = load_config(
        setup_dir(tmp_path, NEGATIVE, interval=45),
        environ={"TEST_SLACK_WEBHOOK": "http://127.0.0.1:9/hook"},
    )
    scheduler = build_scheduler(Runtime(config))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"collect:imports", "classify", "rules", "reports", "dispatch:slack",
                         "worker"}
    for name, job in jobs.items():
        assert job.max_instances == 1 and job.coalesce is True
        seconds = 30 if name == "worker" else 45  # the worker's heartbeat in `workers`
        assert job.trigger.interval.total_seconds() == seconds
        assert job.misfire_grace_time == seconds  # not APScheduler's silent 1-second default
    assert str(scheduler.timezone) == "UTC"
    assert jobs["collect:imports"].args[0].name == "imports"


def test_a_worker_schedules_only_its_stages(tmp_path: Path) -> None:
    config = load_config(setup_dir(tmp_path, NEGATIVE, interval=45),
                         environ={"TEST_SLACK_WEBHOOK": "http://127.0.0.1:9/hook"})
    runtime = Runtime(config, stages=frozenset({"classify", "dispatch"}))
    assert {job.id for job in build_scheduler(runtime).get_jobs()} == {
        "classify", "dispatch:slack", "worker"}


def test_stages_are_chained_so_alerts_do_not_wait_for_the_stage_intervals(tmp_path: Path) -> None:
    """Stages every 300 s, the source every second: only chaining (collect wakes classify,
    which wakes rules, which wakes dispatch) can deliver a new post's alert within a minute."""
    config = setup_dir(tmp_path, NEGATIVE[:1], interval=300)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("    interval: 300", "    interval: 1"), encoding="utf-8")
    with FakeSlackWebhook() as slack:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "-c", str(config)],
            env=cli_env(slack.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            slack.wait_for_requests(1, timeout=120)  # the model loads during the first classify
            with open(tmp_path / "posts.jsonl", "a", encoding="utf-8") as posts:
                posts.write(posts_jsonl(NEGATIVE[1:], start=2))
            appended = time.monotonic()
            slack.wait_for_requests(len(NEGATIVE), timeout=60)
            waited = time.monotonic() - appended
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
    assert len(slack.requests) == len(NEGATIVE)
    assert waited < 60, waited  # the stage interval is 300 s


def test_a_job_woken_while_running_runs_again_right_after() -> None:
    """Waking a running job must not be lost (APScheduler would skip the overlapping run)."""
    scheduler = BackgroundScheduler(timezone=UTC)
    chain = Chain(scheduler)
    started, release, calls = threading.Event(), threading.Event(), []

    def slow() -> int:
        calls.append(time.monotonic())
        started.set()
        release.wait(10)
        return 0

    scheduler.add_job(chain.job("classify", slow), "interval", seconds=3600, id="classify",
                      next_run_time=datetime.now(UTC), max_instances=1)
    scheduler.start()
    try:
        assert started.wait(10)
        chain.wake("classify")  # while it runs: remembered, not dropped
        release.set()
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=False)
    assert len(calls) == 2
