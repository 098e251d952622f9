"""The run lock: one pipeline process per database, no stale lock after a crash.

Real processes throughout: the CLI in subprocesses (as cron and systemd start it), a real
SQLite file, the real model, slack_sdk talking to a fake webhook on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlite_utils import Database

from listener.lock import EXIT_LOCKED, LockHeld, acquire, lock_path
from tests.e2e import NEGATIVE, cli_env, run_cli, setup_dir
from tests.fakes.slack import FakeSlackWebhook


def _config(tmp_path: Path, texts: list[str], interval: float = 300) -> Path:
    """The e2e config, without the metrics endpoint and with a patient Slack client."""
    config = setup_dir(tmp_path, texts, interval=interval)
    text = config.read_text().replace("timeout: 2", "timeout: 30")
    config.write_text(text + "metrics:\n  port: null\n")
    return config


def _wait_for_holder(db: Path, pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock_path(db).exists() and lock_path(db).read_text().strip() == str(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never took the lock")


def test_a_second_acquire_is_refused_until_the_first_is_released(tmp_path: Path) -> None:
    db = tmp_path / "data" / "listener.db"
    held = acquire(db)  # flock is per open file: a second open, even here, is refused
    with pytest.raises(LockHeld, match=rf"pid {os.getpid()}\).*does nothing"):
        acquire(db)
    held.release()
    acquire(db).release()
    assert lock_path(db).name == "listener.db.lock"


def test_overlapping_cron_runs_process_the_work_once(tmp_path: Path) -> None:
    config = _config(tmp_path, NEGATIVE[:2])
    with FakeSlackWebhook() as slack:
        slack.enqueue(200, "ok", delay=6)  # hold the first run inside its first delivery
        env = cli_env(slack.url)
        first = subprocess.Popen([sys.executable, "-m", "listener", "run", "--once", "-c",
                                  str(config)], env=env, stderr=subprocess.PIPE, text=True)
        try:
            slack.wait_for_requests(1, timeout=120)
            second = run_cli(["run", "--once", "-c", str(config)], env)
            _, first_err = first.communicate(timeout=120)
        finally:
            if first.poll() is None:
                first.kill()
        assert second.returncode == EXIT_LOCKED
        assert f"another listener run (pid {first.pid}) holds" in second.stderr
        assert first.returncode == 0, first_err
        assert len(slack.requests) == 2  # each alert sent once, by the run that held the lock
    db = Database(tmp_path / "listener.db")
    assert [r["n"] for r in db.query("SELECT count(*) AS n FROM runs WHERE stage = 'classify'")] \
        == [1]  # the refused run recorded nothing


def test_cron_is_refused_while_the_daemon_runs_and_a_killed_daemon_leaves_no_lock(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, NEGATIVE[:1], interval=1)
    with FakeSlackWebhook() as slack:
        env = cli_env(slack.url)
        daemon = subprocess.Popen([sys.executable, "-m", "listener", "run", "-c", str(config)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_holder(tmp_path / "listener.db", daemon.pid)
            refused = run_cli(["run", "--once", "-c", str(config)], env)
            assert refused.returncode == EXIT_LOCKED, refused.stderr
            assert f"(pid {daemon.pid})" in refused.stderr
        finally:
            daemon.send_signal(signal.SIGKILL)  # mid-work; no cleanup runs, the kernel drops the lock
            daemon.wait(timeout=30)
        after = run_cli(["run", "--once", "-c", str(config)], env)
        assert after.returncode == 0, after.stderr
        assert slack.requests
    assert lock_path(tmp_path / "listener.db").read_text().strip() != str(daemon.pid)
    statuses = Database(tmp_path / "listener.db").execute("SELECT status FROM alerts").fetchall()
    assert statuses == [("delivered",)]


def test_db_migrate_waits_for_no_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from listener.cli import cli

    config = _config(tmp_path, NEGATIVE[:1])
    env = cli_env("https://hooks.slack.com/services/T0/B0/unused")
    held = acquire(tmp_path / "listener.db")
    try:
        refused = CliRunner().invoke(cli, ["db", "migrate", "-c", str(config)], env=env)
    finally:
        held.release()
    assert refused.exit_code == EXIT_LOCKED and "holds" in refused.output
    assert not (tmp_path / "listener.db").exists()  # nothing was created or changed
    done = CliRunner().invoke(cli, ["db", "migrate", "-c", str(config)], env=env)
    assert done.exit_code == 0 and "applied: 001_initial" in done.output
