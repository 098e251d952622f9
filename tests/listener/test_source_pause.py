"""A rate-limited source pauses itself (persisted), the others go on, and it resumes later."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from listener.config import load_config
from listener.pipeline import Runtime
from tests.fakes.hn_api import FakeHNSearch, story

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_429_pauses_only_that_source_until_retry_after(tmp_path: Path) -> None:
    (tmp_path / "posts.jsonl").write_text(json.dumps({"id": "1", "text": "acme is down"}) + "\n")
    with FakeHNSearch() as hn:
        (tmp_path / "config.yaml").write_text(f"""\
storage: {{path: t.db}}
brands: [{{name: acme, query: acme}}]
sources:
  - {{type: hackernews, name: hn, base_url: "{hn.base_url}"}}
  - {{type: file, name: imports, path: posts.jsonl}}
""")
        clock = Clock()
        runtime = Runtime(load_config(tmp_path / "config.yaml", environ={}), clock=clock,
                          strict=True)
        runtime.migrate()
        hn_source, file_source = runtime.sources()
        hn.enqueue(429, json.dumps({"message": "Too many requests"}), headers={"Retry-After": "120"})
        assert runtime.run_collect(hn_source) == 0  # not a failure: the source is paused
        assert runtime.run_collect(file_source) == 1  # the other source is not held up
        requests = len(hn.requests)

        clock.now += timedelta(seconds=60)
        fresh = Runtime(runtime.config, clock=clock, strict=True)  # a restart keeps the pause
        assert fresh.run_collect(fresh.sources()[0]) == 0
        assert len(hn.requests) == requests  # paused: not even asked

        clock.now += timedelta(seconds=61)
        hn.add(story(7, int(clock.now.timestamp()) - 30, "acme launches"))
        assert fresh.run_collect(fresh.sources()[0]) == 1
    db = Database(tmp_path / "t.db")
    state = db["source_state"].get("hn")
    assert state["paused_until"] is None  # resumed
    statuses = [r["status"] for r in db.query("SELECT status FROM runs WHERE target = 'hn'")]
    assert statuses == ["ok", "ok", "ok"]


def test_backfill_command_pulls_history_without_moving_the_live_cursor(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from listener.cli import cli

    now = int(datetime.now(UTC).timestamp())
    with FakeHNSearch() as hn:
        hn.add(*(story(i, now - i * 86400, f"acme story {i}") for i in range(1, 6)),
               story(99, now - 3600, "unrelated"))
        (tmp_path / "config.yaml").write_text(f"""\
storage: {{path: t.db}}
brands: [{{name: acme, query: acme}}]
sources: [{{type: hackernews, name: hn, base_url: "{hn.base_url}"}}]
rules: [{{name: r, destinations: [c]}}]
destinations: [{{type: console, name: c}}]
""")
        since = datetime.fromtimestamp(now - 3 * 86400 - 60, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        result = CliRunner().invoke(cli, ["backfill", "-c", str(tmp_path / "config.yaml"),
                                          "--source", "hn", "--since", since])
    assert result.exit_code == 0, result.output
    assert "hn: 3 new post(s)" in result.output
    assert "page only posts younger than their max_post_age_hours (48 h)" in result.output
    db = Database(tmp_path / "t.db")
    assert sorted(r["platform_id"] for r in db["posts"].rows) == ["1", "2", "3"]
    assert db["cursors"].count == 0  # history never moves the live cursor
