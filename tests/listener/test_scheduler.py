"""The daemon's scheduler, inspected without starting it."""

from __future__ import annotations

from pathlib import Path

from listener.config import load_config
from listener.pipeline import Runtime
from listener.scheduler import build_scheduler
from tests.e2e import NEGATIVE, setup_dir


def test_one_job_per_source_plus_stages_with_safe_defaults(tmp_path: Path) -> None:
    config = load_config(
        setup_dir(tmp_path, NEGATIVE, interval=45),
        environ={"TEST_SLACK_WEBHOOK": "http://127.0.0.1:9/hook"},
    )
    scheduler = build_scheduler(Runtime(config))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"collect:imports", "classify", "rules", "reports", "dispatch"}
    for job in jobs.values():
        assert job.max_instances == 1 and job.coalesce is True
        assert job.trigger.interval.total_seconds() == 45
        assert job.misfire_grace_time == 45  # not APScheduler's silent 1-second default
    assert str(scheduler.timezone) == "UTC"
    assert jobs["collect:imports"].args[0].name == "imports"
