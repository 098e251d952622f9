"""Logs as text or JSON: post fields in both, secrets redacted on every path.

Known secrets go through every way a record carries text (message, arguments, exception text
and traceback, stack, extra fields, a library's logger) in both formats, and the output is
grepped; then the real CLI runs at DEBUG in JSON against a fake Slack whose webhook path is the
secret.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from listener.core.log import about_post, register_secret, setup_logging
from tests.e2e import NEGATIVE, cli_env, run_cli, setup_dir
from tests.fakes.slack import FakeSlackWebhook

SECRETS = ("xoxb-0123456789-SECRET-token", "hunter2-but-longer", "pässwörd-ünïcode-42")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    for secret in SECRETS:
        register_secret(secret)
    out = io.StringIO()
    yield out
    root.handlers[:], root.level = saved[0], saved[1]


def log_everything(log: logging.Logger) -> None:
    token, password, other = SECRETS
    log.info("plain %s and %r", token, {"password": password})
    log.warning(f"formatted before logging: {other}", extra=about_post("x", "1790000000000000001"))
    try:
        raise RuntimeError(f"request to https://hooks.example/{token} failed")
    except RuntimeError:
        log.exception("sending failed", extra={"detail": {"auth": f"Bearer {token}"}})
    log.error("with a stack", stack_info=True, extra={"items": [password, other]})
    logging.getLogger("urllib3.connectionpool").debug('"POST /services/%s HTTP/1.1" 200', token)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_survives_any_log_path(stream: io.StringIO, fmt: str) -> None:
    setup_logging("DEBUG", fmt, stream)  # type: ignore[arg-type]
    log_everything(logging.getLogger("listener.test"))
    out = stream.getvalue()
    assert out.count("***") >= {"text": 5, "json": 8}[fmt]  # JSON shows the extra fields too
    for secret in SECRETS:
        assert secret not in out
        assert json.dumps(secret) not in out and secret.encode("unicode_escape").decode() not in out
    assert "Traceback (most recent call last)" in out and "with a stack" in out


def test_json_lines_carry_post_fields_extras_and_the_exception(stream: io.StringIO) -> None:
    setup_logging("DEBUG", "json", stream)
    log_everything(logging.getLogger("listener.test"))
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(records) == 5  # one object per line, tracebacks included
    about = records[1]
    assert (about["platform"], about["post_id"], about["level"]) == \
        ("x", "1790000000000000001", "WARNING")
    assert records[2]["detail"] == {"auth": "Bearer ***"}
    assert "RuntimeError: request to https://hooks.example/*** failed" in records[2]["exception"]
    assert records[3]["items"] == ["***", "***"] and "stack" in records[3]
    assert records[4]["logger"] == "urllib3.connectionpool"
    assert set(records[0]) == {"time", "level", "logger", "message"}


def test_text_lines_carry_post_fields(stream: io.StringIO) -> None:
    setup_logging("INFO", "text", stream)
    logging.getLogger("listener.test").warning("alert failed", extra=about_post("reddit", "t3_x"))
    assert stream.getvalue().rstrip().endswith(
        "WARNING listener.test: alert failed [platform=reddit post_id=t3_x]")


def test_the_cli_logs_json_at_debug_without_the_webhook_secret(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    config = setup_dir(tmp_path, NEGATIVE[:1], once_max_wait=0)
    config.write_text(config.read_text() + "log:\n  format: json\n")
    with FakeSlackWebhook() as slack:
        slack.enqueue(500, "internal error")  # a failed delivery is logged about its post
        env = cli_env(slack.url)
        result = run_cli(["--log-level", "DEBUG", "run", "--once", "-c", str(config)], env)
        text = run_cli(["--log-format", "text", "run", "--once", "-c", str(config)], env)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any(r["level"] == "DEBUG" for r in records)
    assert slack.path not in result.stderr and slack.path.split("/")[-1] not in result.stderr
    [failed] = [r for r in records if "failed" in r["message"] and r["logger"] == "alerts.dispatch"]
    assert (failed["platform"], failed["post_id"]) == ("file", "1")
    assert text.returncode == 0 and not any(
        line.startswith("{") for line in text.stderr.splitlines())
