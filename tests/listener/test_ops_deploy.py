"""deploy/: the systemd unit is valid, the cron wrapper maps "still busy" to a quiet success."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from listener.lock import acquire
from tests.e2e import NEGATIVE, setup_dir

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
LISTENER = Path(sys.executable).with_name("listener")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at a binary this machine has
    unit = (DEPLOY / "listener.service").read_text().replace(
        "/opt/listener/venv/bin/listener", "/usr/bin/env")
    (tmp_path / "listener.service").write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "listener.service")],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def run_wrapper(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "listener.env").write_text("TEST_SLACK_WEBHOOK=https://hooks.slack.com/x/y/z\n")
    env = dict(os.environ, LISTENER_ENV_FILE=str(tmp_path / "listener.env"),
               LISTENER_LOG_FILE=str(tmp_path / "cron.log"), LISTENER_BIN=str(LISTENER),
               LISTENER_CONFIG=str(config))
    return subprocess.run(["sh", str(DEPLOY / "listener-cron.sh")], env=env, capture_output=True,
                          text=True, check=False, timeout=120)


def test_the_cron_wrapper_is_quiet_while_another_run_holds_the_lock(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE[:1])
    held = acquire(tmp_path / "listener.db")
    try:
        result = run_wrapper(tmp_path, config)
    finally:
        held.release()
    assert result.returncode == 0 and result.stdout == result.stderr == ""  # cron mails nothing
    assert "skipped: another listener run" in (tmp_path / "cron.log").read_text()


def test_the_cron_wrapper_reports_a_failed_run(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE[:1])
    config.write_text(config.read_text().replace("min_probability: 0.6", "min_probability: x"))
    result = run_wrapper(tmp_path, config)
    assert result.returncode == 1
    assert "listener run --once failed (exit 1)" in result.stderr
    assert "min_probability" in (tmp_path / "cron.log").read_text()


@pytest.mark.parametrize(("instance", "stages"), [
    ("all", "collect,classify,rules,dispatch,reports"), ("classify", "classify"),
    ("collect,rules,reports,dispatch", "collect,rules,reports,dispatch")])
def test_the_worker_template_turns_its_instance_into_stages(instance: str, stages: str) -> None:
    """deploy/listener@.service: the command systemd runs for ``listener@<instance>``."""
    line = next(row for row in (DEPLOY / "listener@.service").read_text().splitlines()
                if row.startswith("ExecStart="))
    # what systemd hands the shell: $$ is a literal $, %i the instance name
    command = line.removeprefix("ExecStart=").replace("$$", "$").replace("%i", instance)
    command = command.replace("exec /opt/listener/venv/bin/listener", "echo")
    result = subprocess.run(command, shell=True, capture_output=True, text=True,  # noqa: S602
                            check=True, timeout=10)
    assert result.stdout.split() == ["--log-format", "json", "run", "--stages", stages]
    from listener.workers import parse_stages

    assert parse_stages(stages)
