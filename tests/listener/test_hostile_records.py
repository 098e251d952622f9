"""Issue 14, item 1: one record must never block a source.

Each test here failed on the code before the fix: a record whose values storage could not take
(a lone surrogate, a count beyond SQLite's INTEGER, a URL ``urlsplit`` refuses) made every
``collect`` of its source raise, so 0 of the file's posts were ever stored and the cursor never
moved. Real parts throughout: the file and Hacker News sources (the latter over real HTTP against
the fake HN Search API), ``listener.pipeline.collect`` and SQLite files.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from listener.core.query import Brand, parse
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.file.source import FileSource, FileSourceConfig
from listener.sources.hackernews import HackerNewsSource, HackerNewsSourceConfig
from storage.db import load_cursor
from tests.fakes.hn_api import FakeHNSearch, story

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SQLITE_INT_MAX = 2**63 - 1
LONE = "\ud800"  # a lone (high) surrogate: valid in JSON text as an escape, not in UTF-8


def file_source(folder: Path, name: str = "posts.jsonl") -> FileSource:
    config = FileSourceConfig(type="file", name="imports", path=name, batch_size=500)
    return FileSource(config, SourceContext(base_dir=folder, clock=lambda: NOW))


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """JSON Lines as another tool writes them: ``\\ud800`` escapes, NaN allowed."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="ascii")


def stored(db: Database) -> dict[str, dict[str, Any]]:
    return {r["platform_id"]: r for r in db.query("SELECT * FROM posts")}


def test_one_hostile_record_among_a_thousand_blocks_nothing(tmp_path: Path, db: Database) -> None:
    records = [{"id": str(i), "text": f"post number {i}", "author": f"user{i}"}
               for i in range(1000)]
    records[10]["text"] = f"hello {LONE} world"
    records[20]["author_followers"] = 1e308
    records[30]["author_followers"] = 9223372036854775808  # 2**63: one past SQLite's INTEGER
    records[40]["author"] = f"bob{LONE}"
    records[50]["url"] = "http://[::1/broken"  # urlsplit raises ValueError, not a field rule
    write_records(tmp_path / "posts.jsonl", records)
    source = file_source(tmp_path)

    assert collect(db, source, lambda: NOW) == 999
    posts = stored(db)
    assert len(posts) == 999 and "50" not in posts
    assert posts["10"]["text"] == "hello \ufffd world"
    assert posts["40"]["author"] == "bob\ufffd"
    assert posts["20"]["author_followers"] == SQLITE_INT_MAX
    assert posts["30"]["author_followers"] == SQLITE_INT_MAX
    [reject] = db.query("SELECT location, reason FROM rejects")
    assert reject["location"] == "posts.jsonl:51" and "ValueError" in reject["reason"]
    cursor = load_cursor(db, "imports")["files"][str(tmp_path / "posts.jsonl")]
    assert cursor["line"] == 1000 and cursor["offset"] == (tmp_path / "posts.jsonl").stat().st_size
    assert collect(db, source, lambda: NOW) == 0  # nothing read twice, nothing left behind


def test_raw_json_strings_and_keys_are_repaired_too(tmp_path: Path, db: Database) -> None:
    record = {"id": "1", "text": "fine", f"extra{LONE}": [{"deep": f"x{LONE}"}, float("nan")],
              "pair": "\ud83d\ude00"}  # a surrogate PAIR is a character: kept, not replaced
    write_records(tmp_path / "posts.jsonl", [record, {"id": "2", "text": "also fine"}])
    assert collect(db, file_source(tmp_path), lambda: NOW) == 2
    raw = json.loads(stored(db)["1"]["raw"])
    assert raw["extra\ufffd"] == [{"deep": "x\ufffd"}, None]
    assert raw["pair"] == "\U0001f600"


def test_a_surrogate_in_a_hacker_news_title_no_longer_fails_every_poll(db: Database) -> None:
    # before: UnicodeEncodeError in text_hash at every poll (12 of 12 polls failed)
    stamp = int(NOW.timestamp())
    with FakeHNSearch() as hn:
        hn.add(story(201, stamp - 60, f"Acme outage {LONE} again", author=f"eve{LONE}"),
               story(202, stamp - 30, "Acme is fine now"))
        config = HackerNewsSourceConfig(type="hackernews", name="hn", base_url=hn.base_url)
        acme = Brand("acme", "acme", parse("acme"))
        source = HackerNewsSource(config, SourceContext(clock=lambda: NOW, brands=(acme,)))
        assert collect(db, source, lambda: NOW, brands=(acme,)) == 2
    posts = stored(db)
    assert posts["201"]["text"] == "Acme outage \ufffd again"
    assert posts["201"]["author"] == "eve\ufffd"
    assert load_cursor(db, "hn") is not None
