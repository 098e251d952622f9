"""``listener status``, ``listener metrics`` and ``listener db backup`` on real SQLite files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from listener.commands.status import metrics, status
from listener.core.models import Page, Post
from storage import db as store
from storage import source_pauses
from tests.e2e import cli_env, run_cli

CONFIG = """\
storage: {path: listener.db}
sources:
  - {type: file, name: imports, path: posts.jsonl, interval: 60}
  - {type: file, name: feed, path: feed.jsonl, interval: 60}
"""
PAGE = 50  # posts per transaction of the writer below
WRITER = f"""
import sys, time
from datetime import UTC, datetime
from listener.core.models import Page, Post
from storage.db import open_db, store_page
db, n = open_db(sys.argv[1]), int(sys.argv[2])
while True:
    posts = [Post("bench", f"w{{n}}-{{i}}", f"post {{n}} {{i}}", datetime.now(UTC))
             for i in range({PAGE})]
    store_page(db, "writer", Page(posts), datetime.now(UTC))
    n += 1
    print(n, flush=True)
"""


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_status_shows_stages_queues_and_paused_sources(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    missing = CliRunner().invoke(status, ["-c", str(config)])
    assert missing.exit_code == 1 and "nothing has run yet" in missing.output
    db = store.open_db(tmp_path / "listener.db")
    now = datetime.now(UTC)
    run = store.start_run(db, "collect", "imports", now - timedelta(minutes=10))
    store.finish_run(db, run, now - timedelta(minutes=10), items=4)
    run = store.start_run(db, "collect", "imports", now - timedelta(minutes=5))
    store.finish_run(db, run, now - timedelta(minutes=5), items=0,
                     error="SourceError: cannot read posts.jsonl\nsecond line")
    store.store_page(db, "imports", Page([Post("file", "1", "hello", now)]), now)
    source_pauses.pause_source(db, "feed", now + timedelta(hours=1), "429", now)
    result = CliRunner().invoke(status, ["-c", str(config)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "health: FAILING: collect:imports for 5m" in out  # 3 x 60 s ago and more
    row = next(line for line in out.splitlines() if line.startswith("collect   imports"))
    assert "error" in row and "SourceError: cannot read posts.jsonl second line" in row
    assert next(line for line in out.splitlines() if line.startswith("classify")).split()[2] \
        == "never"
    assert [line.split() for line in out.splitlines() if line.startswith("unscored")] == \
        [["unscored", "1"]]
    assert "paused: feed until " in out


def test_metrics_writes_a_textfile_atomically(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store.open_db(tmp_path / "listener.db").close()
    target = tmp_path / "textfile" / "listener.prom"
    target.parent.mkdir()
    result = CliRunner().invoke(metrics, ["-c", str(config), "-o", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "listener_database_readable 1.0" in text and 'queue="undispatched"' in text
    assert "listener_posts_collected_total" not in text  # process counters mean nothing here
    assert [p.name for p in target.parent.iterdir()] == ["listener.prom"]


def test_backup_while_another_process_writes_is_consistent(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db = store.open_db(tmp_path / "listener.db")
    now = datetime.now(UTC)
    for n in range(200):  # ~10,000 posts already there, so the copy takes a moment
        posts = [Post("bench", f"seed{n}-{i}", f"seed {n} {i} " * 8, now) for i in range(PAGE)]
        store.store_page(db, "seed", Page(posts), now)
    db.close()
    with subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "listener.db"), "0"],
                          stdout=subprocess.PIPE, text=True) as writer:
        try:
            assert writer.stdout is not None
            writer.stdout.readline()  # it is writing
            backup = run_cli(["db", "backup", "-c", str(config), str(tmp_path / "copy.db")],
                             cli_env("http://127.0.0.1:9/unused"))
            time.sleep(0.2)
        finally:
            writer.kill()
    assert backup.returncode == 0, backup.stderr
    assert "backed up" in backup.stdout
    copy = sqlite3.connect(tmp_path / "copy.db")
    count = copy.execute("SELECT count(*) FROM posts").fetchone()[0]
    live = sqlite3.connect(tmp_path / "listener.db")
    total = live.execute("SELECT count(*) FROM posts").fetchone()[0]
    live.close()
    # the writer committed before the copy and went on after it; the copy has whole pages only
    assert 200 * PAGE < count < total and count % PAGE == 0
    assert copy.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    copy.close()
    assert not (tmp_path / "copy.db-wal").exists()
    again = run_cli(["db", "backup", "-c", str(config), str(tmp_path / "copy.db")],
                    cli_env("http://127.0.0.1:9/unused"))
    assert again.returncode == 1 and "--force" in again.stderr


def test_runs_a_killed_process_left_open_are_marked_interrupted_at_the_next_start(
    tmp_path: Path,
) -> None:
    from listener.config import load_config
    from listener.pipeline import Runtime

    config = load_config(write_config(tmp_path))
    db = store.open_db(tmp_path / "listener.db")
    now = datetime.now(UTC)
    done = store.start_run(db, "collect", "imports", now - timedelta(minutes=3))
    store.finish_run(db, done, now - timedelta(minutes=3), items=2)
    killed = store.start_run(db, "classify", "", now - timedelta(minutes=2))  # SIGKILL here
    Runtime(config).migrate()  # what `listener run` does once it holds the run lock
    rows = {r["id"]: r for r in db.query("SELECT * FROM runs")}
    assert rows[done]["status"] == "ok"
    assert rows[killed]["status"] == "interrupted" and rows[killed]["finished_at"]
    assert "killed or crashed" in rows[killed]["error"]
    out = CliRunner().invoke(status, ["-c", str(tmp_path / "config.yaml")]).output
    row = next(line for line in out.splitlines() if line.startswith("classify"))
    assert "interrupted" in row and "running" not in row


def test_status_lists_every_worker_and_the_leases_a_dead_one_left(tmp_path: Path) -> None:
    """Issue 17: which machines work on the database, which went quiet, what they hold."""
    from storage import leases, workers

    config = write_config(tmp_path)
    db = store.open_db(tmp_path / "listener.db")
    now = datetime.now(UTC)
    workers.register(db, "a:1:0", "host-a", 101, ["collect", "rules"], now)
    workers.register(db, "b:2:0", "host-b", 202, ["classify"], now - timedelta(minutes=10))
    leases.take(db, "source:imports", "a:1:0", now, 300)
    leases.take(db, "classify:m:v:7", "b:2:0", now - timedelta(minutes=10), 300)
    db.close()
    out = CliRunner().invoke(status, ["-c", str(config)]).output
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith(("host-", "source:", "classify:"))}
    assert rows["host-a"][1:4] == ["101", "collect,rules", "working"]
    assert rows["host-b"][1:4] == ["202", "classify", "QUIET"]  # no heartbeat for 10 minutes
    assert rows["source:imports"][-1] == "held"
    assert " ".join(rows["classify:m:v:7"][-4:]) == "STALE (free to take)"
