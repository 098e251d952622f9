"""Helpers for end-to-end tests: write a config + posts into a temp dir, run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from listener.core.models import to_iso, utcnow

NEGATIVE = [
    "This is the worst service ever. My order never arrived and nobody answers. I hate it.",
    "Terrible app, it crashed again and deleted all my data. Absolutely furious.",
    "Awful experience, support ignored me for a week. Worst company ever.",
]
POSITIVE = [
    "I love this app, best purchase I have made all year! Thank you!",
    "Amazing support team, they fixed everything in minutes. So happy!",
    "Great update, everything is faster and it looks beautiful. Love it.",
]


def posts_jsonl(texts: list[str], start: int = 1, created_at: str | None = None) -> str:
    """JSON Lines of posts by different authors, written ten minutes ago by default: rules do
    not alert posts older than their ``max_post_age_hours`` (48 by default)."""
    when = created_at or to_iso(utcnow() - timedelta(minutes=10))
    return "".join(
        json.dumps({"id": str(i), "text": t, "author": f"user{i}", "author_followers": 10 * i,
                    "created_at": when, "url": f"https://x.example/s/{i}"})
        + "\n"
        for i, t in enumerate(texts, start)
    )


UNHAPPY_TO_SLACK = """\
rules:
  - name: unhappy
    when:
      sentiment: [negative]
      min_probability: 0.6
    destinations: [slack]
destinations:
  - type: slack
    name: slack
    webhook_url: {"$env": TEST_SLACK_WEBHOOK}
    timeout: 2
    min_interval: 0
"""
"""The end-to-end tests' rule: every negative post to a Slack webhook (its URL in
``TEST_SLACK_WEBHOOK``, see :func:`cli_env`)."""


def config_yaml(*, once_max_wait: float = 10, backoff: float = 1, interval: float = 300,
                postgresql: bool = False) -> str:
    storage = ('  url: {"$env": TEST_DATABASE_URL}' if postgresql else "  path: listener.db")
    return f"""\
storage:
{storage}
schedule:
  classify_interval: {interval}
  rules_interval: {interval}
  dispatch_interval: {interval}
  reports_interval: {interval}
sources:
  - type: file
    name: imports
    brand: acme
    interval: {interval}
    path: posts.jsonl
{UNHAPPY_TO_SLACK}dispatch:
  once_max_wait: {once_max_wait}
  backoff_initial: {backoff}
  max_attempts: 5
"""


def setup_dir(tmp_path: Path, texts: list[str], **config: Any) -> Path:
    (tmp_path / "posts.jsonl").write_text(posts_jsonl(texts), encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml(**config), encoding="utf-8")
    return path


def cli_env(webhook_url: str) -> dict[str, str]:
    env = dict(os.environ, TEST_SLACK_WEBHOOK=webhook_url, HF_HUB_OFFLINE="1")
    env.pop("LISTENER_CONFIG", None)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    """The real command line, in a fresh process, as cron would run it."""
    return subprocess.run(
        [sys.executable, "-m", "listener", *args], env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def slack_texts(requests: list[Any]) -> list[str]:
    """The whole JSON payload of every request, as text (to look for post excerpts)."""
    return [json.dumps(r.json, ensure_ascii=False) for r in requests]
