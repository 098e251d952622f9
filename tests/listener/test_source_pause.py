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
