"""``storage.retention_days`` (issue 18): validated with its file, line and key; the daemon asks
hourly and erases once a day; on a shared database one worker does it (the ``job:retention``
lease) and the others find it done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.core.errors import ConfigError
from listener.health import stage_targets
from listener.pipeline import RETENTION_LEASE, Runtime
from listener.scheduler import build_scheduler
from storage import leases, privacy
from storage.db import open_db
from storage.engine import Db
from tests.dbrows import count, rows
from tests.e2e import NEGATIVE, setup_dir
from tests.pg_server import Server
from tests.storage.test_privacy import _post, _store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _config(tmp_path: Path, storage: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"storage: {{{storage}}}\nmetrics: {{port: null}}\n")
    return path


def _fill(db: Db) -> None:
    _store(db, _post("x", "old", "erin", "ancient history", timedelta(days=40)),
           _post("x", "new", "erin", "this week", timedelta(days=2)))


def test_retention_days_must_be_a_positive_number_of_days(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, "path: listener.db, retention_days: 0"), environ={})
    assert (info.value.key, info.value.line) == ("storage.retention_days", 1)
    assert "greater than or equal to 1" in str(info.value)
    config = load_config(_config(tmp_path, "path: listener.db, retention_days: 30"), environ={})
    assert config.storage.retention_days == 30
    assert ("retention", "", 86400.0) in stage_targets(config)


def test_the_daemon_schedules_retention_only_where_it_is_configured(tmp_path: Path) -> None:
    path = setup_dir(tmp_path, NEGATIVE)
    environ = {"TEST_SLACK_WEBHOOK": "http://127.0.0.1:9/hook"}
    plain = load_config(path, environ=environ)
    assert "retention" not in {j.id for j in build_scheduler(Runtime(plain)).get_jobs()}
    assert ("retention", "", 86400.0) not in stage_targets(plain)
    path.write_text(path.read_text().replace("storage:", "storage:\n  retention_days: 90", 1))
    kept = load_config(path, environ=environ)
    jobs = {j.id: j for j in build_scheduler(Runtime(kept)).get_jobs()}
    assert jobs["retention"].trigger.interval.total_seconds() == 3600


def test_the_job_runs_once_a_day_and_records_its_run(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "path: listener.db, retention_days: 30"), environ={})
    db = open_db(config.database)
    try:
        _fill(db)
        clock = [NOW]
        runtime = Runtime(config, clock=lambda: clock[0], strict=True)
        assert runtime.run_retention() == 1
        assert runtime.run_retention() == 0  # not due again today: no run, no entry
        clock[0] = NOW + timedelta(days=1)
        assert runtime.run_retention() == 0  # due, nothing older than 30 days is left
        assert [r["action"] for r in rows(db, "audit_log", "id")] == ["privacy.retention"] * 2
        assert {r["actor"] for r in rows(db, "audit_log")} == {"system"}
        assert [r["status"] for r in db.query(
            "SELECT status FROM runs WHERE stage = 'retention' ORDER BY id")] == ["ok", "ok"]
        assert db.execute("SELECT text FROM posts WHERE platform_id = 'old'").fetchone()[0] == (
            privacy.ERASED)
    finally:
        db.close()


def test_on_a_shared_database_one_worker_erases_and_the_others_find_it_done(
    tmp_path: Path, pg_server: Server,
) -> None:
    url = pg_server.new_database()
    config = load_config(_config(tmp_path, f"url: '{url}', retention_days: 30"), environ={})
    db = open_db(url)
    try:
        _fill(db)
        first = Runtime(config, clock=lambda: NOW, strict=True, worker="host-a:1:1")
        second = Runtime(config, clock=lambda: NOW, strict=True, worker="host-b:2:1")
        assert first.shared and second.shared
        # another worker holds the lease: this one does nothing, records nothing
        assert leases.take(db, RETENTION_LEASE, second.worker, NOW, 300)
        assert first.run_retention() == 0
        assert count(db, "audit_log") == 0 and privacy.count_older_than(
            db, NOW - timedelta(days=30)) == 1
        leases.release(db, [RETENTION_LEASE], second.worker)
        assert first.run_retention() == 1
        assert second.run_retention() == 0  # done for today, by the first
        assert count(db, "audit_log") == 1 and count(db, "leases") == 0  # the lease given back
        assert db.execute("SELECT count(*) FROM runs WHERE stage = 'retention'").fetchone()[0] \
            == 1
    finally:
        db.close()
