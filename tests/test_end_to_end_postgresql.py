"""`listener run --once` end to end on PostgreSQL: file import → PostgreSQL → real model →
outbox → fake Slack, through the real CLI in a subprocess (issue 17).

The same run as tests/test_end_to_end.py, with ``storage.url`` naming a database of the
session's throwaway server (the URL through ``$env``, as a password would come).
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from tests.e2e import NEGATIVE, POSITIVE, cli_env, run_cli, setup_dir, slack_texts
from tests.fakes.slack import FakeSlackWebhook
from tests.pg_server import Server


def test_once_on_postgresql_delivers_each_alert_once_then_nothing_new(
    tmp_path: Path, pg_server: Server,
) -> None:
    url = pg_server.new_database()
    config = setup_dir(tmp_path, NEGATIVE + POSITIVE, postgresql=True)
    with FakeSlackWebhook() as slack:
        env = dict(cli_env(slack.url), TEST_DATABASE_URL=url)
        first = run_cli(["run", "--once", "--summary", "-c", str(config)], env)
        assert first.returncode == 0, first.stderr
        payloads = slack_texts(slack.requests)
        assert len(payloads) == len(NEGATIVE)
        for text in NEGATIVE:
            assert sum(text[:40] in p for p in payloads) == 1
        second = run_cli(["run", "--once", "-c", str(config)], env)
        assert second.returncode == 0, second.stderr
        assert len(slack.requests) == len(NEGATIVE)  # nothing new, nothing re-sent
        status = run_cli(["status", "-c", str(config)], env)
        assert status.returncode == 0, status.stderr
    with psycopg.connect(url) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                  for t in ("posts", "scores")]
        delivered = conn.execute("SELECT count(*) FROM alerts WHERE status = 'delivered'")
        assert counts == [6, 6] and delivered.fetchone()[0] == len(NEGATIVE)
    assert not (tmp_path / "listener.db").exists() and "TEST_DATABASE_URL" not in os.environ


def test_three_workers_at_once_share_the_work_and_alert_once(
    tmp_path: Path, pg_server: Server,
) -> None:
    """Issue 17: three `run --once` processes started together on one database, as three
    machines would: every post stored and scored once, every alert sent once, and none of
    them refused for a lock (each claimed what it did)."""
    import subprocess
    import sys

    url = pg_server.new_database()
    config = setup_dir(tmp_path, NEGATIVE + POSITIVE, postgresql=True)
    with FakeSlackWebhook() as slack:
        env = dict(cli_env(slack.url), TEST_DATABASE_URL=url)
        workers = [subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--once", "--stages", stages, "-c",
             str(config)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for stages in ("collect,classify,rules,dispatch,reports",
                           "collect,classify,rules,dispatch,reports", "classify,dispatch")]
        results = [(w.communicate(timeout=300)[1], w.returncode) for w in workers]
        assert all(code == 0 for _, code in results), results
        again = run_cli(["run", "--once", "-c", str(config)], env)  # whatever a race left
        assert again.returncode == 0, again.stderr
        payloads = slack_texts(slack.requests)
    assert len(payloads) == len(NEGATIVE)
    for text in NEGATIVE:
        assert sum(text[:40] in p for p in payloads) == 1
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT post_id) FROM scores"
                            ).fetchone() == (6, 6)
        assert conn.execute("SELECT count(*) FROM leases").fetchone()[0] == 0  # all given back
        assert conn.execute("SELECT count(*) FROM workers WHERE stopped_at IS NOT NULL"
                            ).fetchone()[0] == 4
