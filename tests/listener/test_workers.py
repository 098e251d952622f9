"""A worker among many (issue 17): its stages, its name, what it exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from listener.cli import cli
from listener.config import load_config
from listener.core import instruments
from listener.pipeline import Runtime
from listener.workers import STAGES, parse_stages
from storage import workers
from storage.db import open_db
from tests.e2e import NEGATIVE, setup_dir


def test_stages_are_parsed_strictly() -> None:
    assert parse_stages("classify, dispatch") == {"classify", "dispatch"}
    assert parse_stages(",".join(STAGES)) == set(STAGES)
    with pytest.raises(ValueError, match="unknown stage.*classfy.*choose among"):
        parse_stages("collect,classfy")
    with pytest.raises(ValueError, match="none given"):
        parse_stages(" , ")


def test_a_bad_stage_list_is_refused_before_anything_runs(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE[:1])
    result = CliRunner().invoke(cli, ["run", "--once", "--stages", "score", "-c", str(config)])
    assert result.exit_code == 2 and "unknown stage(s) score" in result.output
    assert not (tmp_path / "listener.db").exists()


def test_a_worker_says_who_it_is_in_the_database_and_in_its_metrics(tmp_path: Path) -> None:
    config = load_config(setup_dir(tmp_path, NEGATIVE[:1]),
                         environ={"TEST_SLACK_WEBHOOK": "http://127.0.0.1:9/hook"})
    open_db(config.database).close()
    runtime = Runtime(config, stages=frozenset({"dispatch", "classify"}))
    assert runtime.worker.count(":") == 2  # host:pid:start
    runtime.register_worker()
    text = generate_latest(instruments.REGISTRY).decode()
    assert f'listener_worker_info{{stages="classify,dispatch",worker="{runtime.worker}"}} 1.0' \
        in text
    runtime.unregister_worker()
    db = open_db(config.database)
    [me] = workers.listed(db)
    db.close()
    assert (me.id, me.stages) == (runtime.worker, "classify,dispatch") and me.stopped_at


def test_a_database_that_cannot_be_reached_fails_the_run_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by the crash harness: with PostgreSQL gone, every job raised into the scheduler
    (a traceback each interval) instead of failing its run."""
    config = load_config(setup_dir(tmp_path, NEGATIVE[:1]),
                         environ={"TEST_SLACK_WEBHOOK": "http://127.0.0.1:9/hook"})
    config.storage = config.storage.model_copy(
        update={"url": "postgresql://listener@127.0.0.1:9/listener?connect_timeout=2"})
    with caplog.at_level("ERROR"):
        assert Runtime(config).run_rules() is None
    assert "stage rules  failed: cannot reach the database" in caplog.text
    assert "Traceback" not in caplog.text
