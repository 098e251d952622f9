"""The collect stage: brand queries applied locally, cursor saved with the posts."""

from __future__ import annotations

import json
from pathlib import Path

from sqlite_utils import Database

from listener.config import load_config
from listener.pipeline import Runtime

CONFIG = """\
storage: {path: t.db}
brands:
  - name: acme
    query: '("acme cloud" OR @AcmeCloud) -giveaway'
    authors_exclude: ["@acme_bot"]
  - name: globex
    query: globex
    languages: [en]
sources:
  - type: file
    name: imports
    path: posts.jsonl
    brands: [acme, globex]
"""
POSTS = [
    ("1", "acme cloud is down", "ann", "en"),
    ("2", "acme cloud giveaway, retweet!", "bob", "en"),
    ("3", "hey @acmecloud help", "acme_bot", "en"),
    ("4", "globex rocks", "cy", "en"),
    ("5", "globex es genial", "di", "es"),
    ("6", "nothing to see", "ed", "en"),
]


def write_posts(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for pid, text, author, lang in rows:
            f.write(json.dumps({"id": pid, "text": text, "author": author, "lang": lang}) + "\n")


def test_only_posts_matching_a_brand_are_kept_and_tagged(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    write_posts(tmp_path / "posts.jsonl", POSTS)
    runtime = Runtime(load_config(tmp_path / "config.yaml", environ={}), strict=True)
    runtime.migrate()
    [source] = runtime.sources()
    assert runtime.run_collect(source) == 2
    db = Database(tmp_path / "t.db")
    assert {(r["platform_id"], r["brand"]) for r in db["posts"].rows} == {("1", "acme"),
                                                                          ("4", "globex")}
    write_posts(tmp_path / "posts.jsonl", [("7", "Acme Cloud billing is wrong", "fay", "en")])
    assert runtime.run_collect(source) == 1  # the cursor moved past the dropped posts too
    assert db["posts"].count == 3


def test_file_source_without_brands_imports_everything(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG.replace("    brands: [acme, globex]\n", ""))
    write_posts(tmp_path / "posts.jsonl", POSTS)
    runtime = Runtime(load_config(tmp_path / "config.yaml", environ={}), strict=True)
    runtime.migrate()
    assert runtime.run_collect(runtime.sources()[0]) == len(POSTS)


def test_backfill_refuses_a_source_without_history(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from listener.cli import cli

    (tmp_path / "config.yaml").write_text(CONFIG)
    write_posts(tmp_path / "posts.jsonl", POSTS)
    result = CliRunner().invoke(cli, ["backfill", "-c", str(tmp_path / "config.yaml"),
                                      "--source", "imports", "--since", "2026-11-01"])
    assert result.exit_code == 1  # said before any progress bar is drawn (test_cli_issue13)
    assert "cannot backfill: a file source has no history to pull" in result.output
    missing = CliRunner().invoke(cli, ["backfill", "-c", str(tmp_path / "config.yaml"),
                                       "--source", "nope", "--since", "2026-11-01"])
    assert missing.exit_code == 2 and "no enabled source 'nope'" in missing.output


def test_sources_command_shows_readiness_and_pauses(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from click.testing import CliRunner

    from listener.cli import cli
    from storage.db import open_db
    from storage.source_pauses import pause_source

    config = CONFIG + "  - type: x\n    name: x-main\n    bearer_token: ${NO_SUCH_TOKEN_SET}\n"
    (tmp_path / "config.yaml").write_text(config.replace("${NO_SUCH_TOKEN_SET}", "''"))
    db = open_db(tmp_path / "t.db")
    now = datetime.now(UTC)
    pause_source(db, "imports", now + timedelta(hours=1), "HTTP 429", now)
    db.close()
    result = CliRunner().invoke(cli, ["sources", "-c", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[2:]}
    assert "ready, paused until" in lines["imports"]
    assert "NOT READY" in lines["x-main"] and "bearer_token" in lines["x-main"]
