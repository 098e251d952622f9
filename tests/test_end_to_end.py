"""`listener run --once` end to end: file import → SQLite → real model → outbox → fake Slack.

Everything below our code is real: the CLI in a subprocess, a SQLite file, the default model,
slack_sdk speaking HTTP to a fake webhook server on 127.0.0.1.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlite_utils import Database

from tests.e2e import NEGATIVE, POSITIVE, cli_env, run_cli, setup_dir, slack_texts
from tests.fakes.slack import FakeSlackWebhook


def delivered_ids(db: Database) -> list[str]:
    return [r["id"] for r in db.query("SELECT id FROM alerts WHERE status = 'delivered'")]


def test_once_delivers_expected_alerts_then_nothing_new(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE + POSITIVE)
    with FakeSlackWebhook() as slack:
        env = cli_env(slack.url)
        first = run_cli(["run", "--once", "--summary", "-c", str(config)], env)
        assert first.returncode == 0, first.stderr
        payloads = slack_texts(slack.requests)
        assert len(payloads) == len(NEGATIVE)
        for text in NEGATIVE:  # each unhappy post alerted once, escaped excerpt inside
            assert sum(text[:40] in p for p in payloads) == 1
        assert not any(text[:40] in p for p in payloads for text in POSITIVE)
        assert "Posts by source and sentiment" in first.stdout and "unhappy" in first.stdout

        second = run_cli(["run", "--once", "-c", str(config)], env)
        assert second.returncode == 0, second.stderr
        assert len(slack.requests) == len(NEGATIVE)  # nothing new, nothing re-sent
    db = Database(tmp_path / "listener.db")
    assert db["posts"].count == 6 and db["scores"].count == 6
    assert len(delivered_ids(db)) == len(NEGATIVE)


def test_slack_429_with_retry_after_then_200_delivers_each_alert_once(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE + POSITIVE)
    with FakeSlackWebhook() as slack:
        slack.enqueue(429, "rate_limited", {"Retry-After": "1"})
        env = dict(cli_env(slack.url), LISTENER_LOG_LEVEL="DEBUG")
        result = run_cli(["run", "--once", "-c", str(config)], env)
        assert result.returncode == 0, result.stderr
        requests = slack.requests
        # the webhook path is the credential: never in any log line, even at DEBUG
        assert "DEBUG" in result.stderr and slack.path not in result.stderr + result.stdout
    assert len(requests) == len(NEGATIVE) + 1  # the refused one was sent again, once
    db = Database(tmp_path / "listener.db")
    ids = delivered_ids(db)
    assert len(ids) == len(NEGATIVE)
    answered = slack_texts(requests[1:])  # every request after the 429 was answered 200
    for alert_id in ids:
        assert sum(alert_id in p for p in answered) == 1
    outcomes = [r["outcome"] for r in db.query("SELECT outcome FROM deliveries ORDER BY id")]
    assert outcomes.count("rate_limited") == 1 and outcomes.count("delivered") == len(NEGATIVE)


def test_slack_outage_loses_nothing_and_delivers_once_it_recovers(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE, once_max_wait=0)
    with FakeSlackWebhook() as slack:
        for _ in range(len(NEGATIVE)):
            slack.enqueue(503, "service unavailable")
        down = run_cli(["run", "--once", "-c", str(config)], cli_env(slack.url))
        assert down.returncode == 0, down.stderr  # a sink outage is not a failed stage
        assert "HTTP 503" in down.stderr or "503" in down.stderr
        db = Database(tmp_path / "listener.db")
        rows = list(db.query("SELECT status, attempts, last_error FROM alerts"))
        assert [r["status"] for r in rows] == ["pending"] * len(NEGATIVE)
        assert all(r["attempts"] == 1 and "503" in r["last_error"] for r in rows)

        time.sleep(1.1)  # backoff_initial is 1 s (with jitter: 0.5–1 s)
        up = run_cli(["run", "--once", "-c", str(config)], cli_env(slack.url))
        assert up.returncode == 0, up.stderr
        assert len(slack.requests) == 2 * len(NEGATIVE)
    assert len(delivered_ids(db)) == len(NEGATIVE)


def test_bad_import_records_are_reported_and_the_rest_is_processed(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE[:1])
    with (tmp_path / "posts.jsonl").open("a", encoding="utf-8") as f:
        good = json.dumps({"id": "9", "text": POSITIVE[0]})
        f.write(f'{{"id": "bad1"}}\n{{not json\n{good}\n')
    with FakeSlackWebhook() as slack:
        result = run_cli(["run", "--once", "--summary", "-c", str(config)], cli_env(slack.url))
    assert result.returncode == 0, result.stderr
    assert "posts.jsonl:2" in result.stderr and "posts.jsonl:3" in result.stderr
    db = Database(tmp_path / "listener.db")
    assert sorted(r["platform_id"] for r in db["posts"].rows) == ["1", "9"]
    assert [r["location"] for r in db["rejects"].rows] == ["posts.jsonl:2", "posts.jsonl:3"]
    assert db["scores"].count == 2


def test_bad_config_exits_nonzero_naming_file_line_and_key(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE)
    config.write_text(config.read_text().replace("min_probability: 0.6", "min_probability: lots"))
    result = run_cli(["run", "--once", "-c", str(config)], cli_env("http://127.0.0.1:9/x"))
    assert result.returncode == 1
    assert f"{config}, line 18, key 'rules[0].when.min_probability'" in result.stderr
    assert not (tmp_path / "listener.db").exists()  # nothing was touched


def test_daemon_collects_alerts_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE, interval=1)
    with FakeSlackWebhook() as slack:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "-c", str(config)],
            env=cli_env(slack.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            slack.wait_for_requests(len(NEGATIVE), timeout=120)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "finishing the current batch" in err and "daemon stopped" in err
        assert len(slack.requests) == len(NEGATIVE)
    db = Database(tmp_path / "listener.db")
    stages = {r["stage"] for r in db.query("SELECT DISTINCT stage FROM runs WHERE status='ok'")}
    assert stages == {"collect", "classify", "rules", "reports", "dispatch"}


def test_a_failing_stage_makes_once_exit_nonzero_but_the_others_still_run(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE)
    broken = "  - type: file\n    name: broken\n    path: notes.txt\nrules:\n"
    config.write_text(config.read_text().replace("rules:\n", broken, 1))
    (tmp_path / "notes.txt").write_text("not a known format\n")
    with FakeSlackWebhook() as slack:
        result = run_cli(["run", "--once", "-c", str(config)], cli_env(slack.url))
        assert len(slack.requests) == len(NEGATIVE)  # the healthy source's alerts went out
    assert result.returncode == 1
    assert "stage collect broken failed" in result.stderr and "notes.txt" in result.stderr
    db = Database(tmp_path / "listener.db")
    errors = list(db.query("SELECT stage, target FROM runs WHERE status = 'error'"))
    assert errors == [{"stage": "collect", "target": "broken"}]


def test_killed_between_send_and_ack_the_attempt_is_known_on_restart(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE[:1])
    with FakeSlackWebhook() as slack:
        slack.enqueue(200, "ok", delay=60)  # Slack got it; our process dies before the answer
        proc = subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--once", "-c", str(config)],
            env=cli_env(slack.url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            slack.wait_for_requests(1, timeout=120)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        db = Database(tmp_path / "listener.db")
        [row] = db.query("SELECT status, attempts FROM alerts")
        assert row == {"status": "pending", "attempts": 1}  # recorded before the send
        again = run_cli(["run", "--once", "-c", str(config)], cli_env(slack.url))
        assert again.returncode == 0, again.stderr
        # Slack has no idempotency key: the one window left is a duplicate message, counted here
        assert len(slack.requests) == 2
    [row] = db.query("SELECT status, attempts FROM alerts")
    assert row == {"status": "delivered", "attempts": 2}


def test_killed_between_send_and_ack_no_duplicate_ticket_after_restart(tmp_path: Path) -> None:
    from tests.fakes.zendesk_api import FakeZendesk

    config = setup_dir(tmp_path, NEGATIVE[:2])
    with FakeZendesk() as zendesk:
        config.write_text(config.read_text().split("destinations:\n  - type: slack")[0].replace(
            "destinations: [slack]", "destinations: [tickets]") + f"""\
destinations:
  - type: zendesk
    name: tickets
    base_url: "{zendesk.base_url}"
    email: {zendesk.email}
    api_token: {{"$env": TEST_ZENDESK_TOKEN}}
    min_interval: 0
dispatch:
  once_max_wait: 0
""")
        env = dict(cli_env("http://127.0.0.1:9/unused"), TEST_ZENDESK_TOKEN=zendesk.token)
        zendesk.enqueue(delay=60, create=True)  # the ticket is created; the answer never comes
        proc = subprocess.Popen([sys.executable, "-m", "listener", "run", "--once", "-c",
                                 str(config)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            zendesk.wait_for_requests(1, timeout=120)
        finally:
            proc.kill()  # SIGKILL between the remote's effect and our record of it
            proc.wait(timeout=30)
        assert len(zendesk.tickets) == 1
        again = run_cli(["run", "--once", "-c", str(config)], env)
        assert again.returncode == 0, again.stderr
        tickets = zendesk.tickets
    assert len(tickets) == len(NEGATIVE[:2])  # one ticket per alert: no duplicate after restart
    assert len({t["external_id"] for t in tickets}) == len(tickets)
    db = Database(tmp_path / "listener.db")
    rows = list(db.query("SELECT status, remote_id FROM alerts ORDER BY created_at, id"))
    assert [r["status"] for r in rows] == ["delivered"] * len(tickets)
    assert {r["remote_id"] for r in rows} == {str(t["id"]) for t in tickets}
