"""Issue 13 end to end: the real CLI in a subprocess, a SQLite file, the real model, slack_sdk
talking to the Slack fake on 127.0.0.1.

- thousands of posts, each matching two rules: one message per post naming both, also when
  the process is SIGKILLed in the middle of dispatching them (#1);
- an import of last month beside today's posts: history is stored and queued, never paged,
  and the run says so (#6).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlite_utils import Database

from listener.core.models import to_iso, utcnow
from tests.e2e import cli_env, run_cli
from tests.fakes.slack import FakeSlackWebhook

POSTS = 2000
CONFIG = """\
storage: {path: listener.db}
brands: [{name: acme, query: acme}]
sources:
  - {type: file, name: imports, path: posts.jsonl, brands: [acme]}
rules:
  - {name: all-acme, when: {brands: [acme]}, destinations: [slack]}
  - {name: everything, destinations: [slack]}
destinations:
  - type: slack
    name: slack
    webhook_url: {"$env": TEST_SLACK_WEBHOOK}
    timeout: 5
    min_interval: 0
incidents: {enabled: false}  # each post is its own story here: what is counted is messages
dispatch: {once_max_wait: 0}
"""
ALERT_ID = re.compile(r"alert `([0-9a-f]{32})`")


def write_posts(path: Path, count: int, *, age: timedelta, start: int = 0) -> None:
    """``count`` posts by different authors, each about a different acme thing."""
    when = to_iso(utcnow() - age)
    with path.open("a", encoding="utf-8") as f:
        for i in range(start, start + count):
            f.write(json.dumps({"id": str(i), "author": f"user{i}", "created_at": when,
                                "text": f"acme order {i} arrived broken, ticket #{i * 7}"}) + "\n")


def messages_per_post(db: Database, bodies: list[str]) -> Counter[str]:
    """How many Slack messages each post got (a message names its first alert's id)."""
    post_of = {r["id"]: r["post_id"] for r in db.query("SELECT id, post_id FROM alerts")}
    return Counter(post_of[i] for body in bodies for i in set(ALERT_ID.findall(body)))


def test_thousands_of_posts_matching_two_rules_get_one_message_each_across_a_sigkill(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    write_posts(tmp_path / "posts.jsonl", POSTS, age=timedelta(minutes=30))
    with FakeSlackWebhook() as slack:
        env = cli_env(slack.url)
        proc = subprocess.Popen([sys.executable, "-m", "listener", "run", "--once", "-c",
                                 str(tmp_path / "config.yaml")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            slack.wait_for_requests(POSTS // 3, timeout=300)
        finally:
            proc.kill()  # SIGKILL in the middle of dispatch
            proc.wait(timeout=30)
        again = run_cli(["run", "--once", "-c", str(tmp_path / "config.yaml")], env, timeout=600)
        assert again.returncode == 0, again.stderr
        bodies = [json.dumps(r.json) for r in slack.requests]
    db = Database(tmp_path / "listener.db")
    per_post = messages_per_post(db, bodies)
    assert len(per_post) == POSTS  # every post reached Slack
    assert all(("all-acme, everything" in b or "everything, all-acme" in b) for b in bodies)
    # Slack webhooks have no idempotency key: the one message on its way when the process
    # died may be sent again (README, "Delivery"); nothing else is
    assert sum(n - 1 for n in per_post.values()) <= 1
    assert db.execute("SELECT count(*) FROM alerts WHERE status != 'delivered'").fetchone() == (0,)


def test_history_is_stored_but_never_paged_and_the_run_says_so(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    write_posts(tmp_path / "posts.jsonl", 30, age=timedelta(days=20))
    write_posts(tmp_path / "posts.jsonl", 3, age=timedelta(minutes=5), start=30)
    with FakeSlackWebhook() as slack:
        result = run_cli(["run", "--once", "-c", str(tmp_path / "config.yaml")],
                         cli_env(slack.url))
        assert result.returncode == 0, result.stderr
        assert len(slack.requests) == 3
    assert "30 post(s) older than their rules' max_post_age_hours" in result.stderr
    db = Database(tmp_path / "listener.db")
    assert db["posts"].count == 33 and db["scores"].count == 33
