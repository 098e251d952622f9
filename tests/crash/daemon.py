"""The real daemon in a subprocess, configured against fakes on 127.0.0.1.

Shared by the crash harness and the benchmarks in ``bench/``: one config (a streaming Hacker
News fake as the platform; negative posts alert a Slack webhook and, optionally, Zendesk), the
environment holding its secrets, and ``listener run`` started with its log in a file.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RULE = "unhappy"


@dataclass(frozen=True)
class Intervals:
    """Seconds between polls and between stage runs (``None``: the config's defaults)."""

    collect: float | None = 1
    stages: float | None = 1

    def schedule_yaml(self) -> str:
        if self.stages is None:
            return ""
        keys = ("classify_interval", "rules_interval", "dispatch_interval", "reports_interval")
        return "schedule:\n" + "".join(f"  {k}: {self.stages:g}\n" for k in keys)


def config_yaml(hn_url: str, zendesk_url: str | None, *, intervals: Intervals,
                slack_min_interval: float = 0.1, backend: str | None = None,
                database_url_env: str | None = None, send_deadline: float | None = None
                ) -> str:
    """Negative stories alert Slack (and Zendesk when given); secrets come from the env, and
    so does the PostgreSQL URL with ``database_url_env`` (default: SQLite's listener.db).
    ``send_deadline``: ``dispatch.send_deadline`` (default: the config's default)."""
    destinations = ["slack"] + (["tickets"] if zendesk_url else [])
    poll = f"\n    interval: {intervals.collect:g}" if intervals.collect is not None else ""
    zendesk = f"""\
  - type: zendesk
    name: tickets
    base_url: "{zendesk_url}"
    email: {{"$env": CRASH_ZENDESK_EMAIL}}
    api_token: {{"$env": CRASH_ZENDESK_TOKEN}}
    timeout: 2
    min_interval: 0
""" if zendesk_url else ""
    classifier = f"  backend: {backend}\n" if backend else ""
    storage = (f'  url: {{"$env": {database_url_env}}}' if database_url_env
               else "  path: listener.db")
    deadline = f"  send_deadline: {send_deadline:g}\n" if send_deadline else ""
    return f"""\
storage:
{storage}
classifier:
  device: cpu
{classifier}metrics:
  port: null
{intervals.schedule_yaml()}brands:
  - name: acme
    query: acme
sources:
  - type: hackernews
    name: hn
    base_url: "{hn_url}"
    tags: stories
    overlap: 60
    initial_lookback: 3600{poll}
rules:
  - name: {RULE}
    when:
      sentiment: [negative]
    destinations: [{", ".join(destinations)}]
destinations:
  - type: slack
    name: slack
    webhook_url: {{"$env": CRASH_SLACK_WEBHOOK}}
    timeout: 2
    min_interval: {slack_min_interval:g}
{zendesk}# every negative story must reach both destinations on its own, which is what the harness
# counts; the stream's few sentence shapes from many authors would otherwise form incidents
incidents:
  enabled: false
dispatch:
  backoff_initial: 1
  backoff_max: 5
  max_attempts: 50
  once_max_wait: 5
{deadline}"""


def daemon_env(slack_url: str, zendesk_email: str = "", zendesk_token: str = "") -> dict[str, str]:
    env = dict(os.environ, CRASH_SLACK_WEBHOOK=slack_url, CRASH_ZENDESK_EMAIL=zendesk_email,
               CRASH_ZENDESK_TOKEN=zendesk_token, HF_HUB_OFFLINE="1")
    env.pop("LISTENER_CONFIG", None)
    return env


def start(config: Path, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """``listener run`` (the real CLI), its stdout and stderr appended to ``log``."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "-c", str(config), *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=config.parent,
        )


def read_db(path: Path) -> sqlite3.Connection:
    """A reader beside the daemon (WAL: it never blocks the daemon's writes)."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn
