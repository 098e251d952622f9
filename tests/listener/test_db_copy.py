"""``listener db copy``: the command line around :mod:`storage.copy`, on a real SQLite file and a
real PostgreSQL database (the session's throwaway cluster)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from listener.commands.database import db
from listener.core.models import Page
from listener.lock import EXIT_LOCKED, acquire
from storage import db as store
from tests.pg_server import Server
from tests.storage.test_copy import NOW, _post, assert_same, fill

CONFIG = """\
storage: {path: listener.db}
sources:
  - {type: file, name: imports, path: posts.jsonl, interval: 60}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    fill(tmp_path / "listener.db")
    return path


def _with_password(url: str) -> str:
    """The URL with a password (the test cluster trusts every local connection, so any works)."""
    return url.replace("postgresql://postgres@", "postgresql://postgres:s3cr3t-pw@")


def test_copy_with_the_url_in_the_environment(config: Path, pg_server: Server,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url = _with_password(pg_server.new_database())
    monkeypatch.setenv("TARGET_DB", url)
    result = CliRunner().invoke(db, ["copy", "-c", str(config), "--to-env", "TARGET_DB"])
    assert result.exit_code == 0, result.output
    assert "row counts verified table by table" in result.output
    assert "posts" in result.output and "triage" in result.output
    assert "s3cr3t-pw" not in result.output  # the password never printed
    pg = store.open_db(url)
    try:
        assert_same(config.parent / "listener.db", pg)
    finally:
        pg.close()
    # a second copy into the same database is refused: it holds rows now
    again = CliRunner().invoke(db, ["copy", "-c", str(config), "--to", url])
    assert again.exit_code == 1
    assert "already holds rows" in again.output and "s3cr3t-pw" not in again.output


def test_the_target_is_given_exactly_once(config: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    for args, says in ((["copy"], "--to URL or --to-env NAME"),
                       (["copy", "--to", "postgresql://x/y", "--to-env", "X"], "one of them"),
                       (["copy", "--to-env", "NOT_SET_HERE"], "NOT_SET_HERE is not set")):
        result = CliRunner().invoke(db, [*args, "-c", str(config)])
        assert result.exit_code == 2 and says in result.output, args
    result = CliRunner().invoke(db, ["copy", "-c", str(config), "--to", str(config)])
    assert result.exit_code == 1 and "postgresql:// URL" in result.output


def test_refused_while_a_run_holds_the_database(config: Path, pg_server: Server) -> None:
    url = pg_server.new_database()
    held = acquire(config.parent / "listener.db")
    try:
        result = CliRunner().invoke(db, ["copy", "-c", str(config), "--to", url])
    finally:
        held.release()
    assert result.exit_code == EXIT_LOCKED
    assert "stop the daemon" in result.output
    pg = store.open_db(url)
    try:
        assert pg.execute("SELECT count(*) FROM posts").fetchone()[0] == 0
    finally:
        pg.close()


def test_no_sqlite_database_to_copy(tmp_path: Path, pg_server: Server) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    result = CliRunner().invoke(db, ["copy", "-c", str(tmp_path / "config.yaml"), "--to",
                                     pg_server.new_database()])
    assert result.exit_code == 1 and "no SQLite database" in result.output
    assert not (tmp_path / "listener.db").exists()


def test_a_progress_bar_where_a_person_watches(config: Path, pg_server: Server,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("listener.progress.wanted", lambda stream, log_format: True)
    result = CliRunner().invoke(db, ["copy", "-c", str(config), "--to",
                                     pg_server.new_database(), "--chunk-rows", "50"])
    assert result.exit_code == 0, result.output
    assert "copy posts" in result.stderr and "/262 " in result.stderr
    monkeypatch.undo()
    quiet = CliRunner().invoke(db, ["copy", "-c", str(config), "--to",
                                    pg_server.new_database()])
    assert quiet.exit_code == 0 and quiet.stderr == ""  # not a terminal: no bar


def _copied(url: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT coalesce(sum(copied), 0) FROM _copy_progress").fetchone()
            return int(row[0]) if row else 0
    except psycopg.errors.UndefinedTable:
        return 0


def test_a_copy_killed_half_way_resumes_to_the_same_result(config: Path, pg_server: Server
                                                           ) -> None:
    source = config.parent / "listener.db"
    extra = store.open_db(source)  # more rows, so one row per chunk takes a while
    for page in range(4):
        store.store_page(extra, "bulk", Page(posts=[
            _post(1000 + 100 * page + i, f"bulk post {page} {i}") for i in range(100)]), NOW)
    extra.close()
    url = pg_server.new_database()
    args = [sys.executable, "-m", "listener", "db", "copy", "-c", str(config), "--to", url,
            "--chunk-rows", "1"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("LISTENER_CONFIG", None)
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as copying:
        deadline = time.monotonic() + 60
        while _copied(url) < 100 and time.monotonic() < deadline and copying.poll() is None:
            time.sleep(0.02)
        copying.send_signal(signal.SIGKILL)
        copying.wait()
    assert copying.returncode == -signal.SIGKILL, copying.stderr.read() if copying.stderr else ""
    stopped_at = _copied(url)
    assert stopped_at >= 100
    refused = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "--resume" in refused.stderr
    resumed = subprocess.run([*args[:-2], "--chunk-rows", "500", "--resume"], env=env,
                             capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "(resumed)" in resumed.stdout
    pg = store.open_db(url)
    try:
        counts = assert_same(source, pg)
        assert counts["posts"] == 461 and sum(counts.values()) > stopped_at
    finally:
        pg.close()
