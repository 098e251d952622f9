"""Issue 13 item 9: `run --once` shows progress per stage on a terminal, and nowhere else.

The wording is tested on :func:`listener.progress.describe`; the hook through a real run on a
tiny config (the default model, SQLite, the console sink); and the real CLI twice: with stderr
on a pseudo-terminal (progress drawn, updated in place) and on a pipe, as cron has it (nothing).
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from classifiers.base import Classifier
from classifiers.loader import load_classifier
from listener.config import load_config
from listener.core.models import to_iso
from listener.pipeline import Runtime
from listener.progress import CLEAR_LINE, TerminalProgress, describe, dispatch_detail, wanted
from tests.e2e import NEGATIVE, POSITIVE, cli_env

CONFIG = """\
storage: {path: listener.db}
metrics: {port: null}
classifier: {batch_size: 1}  # classify takes 64 posts at a time (its least)
sources:
  - {type: file, name: demo-posts, path: posts.jsonl}
rules:
  - name: unhappy
    when: {sentiment: [negative], min_probability: 0.6}
    destinations: [console]
destinations:
  - {type: console, name: console, stream: stdout}
"""


@pytest.fixture(scope="module")
def model() -> Classifier:
    return load_classifier("default", batch_size=8, device="cpu")


def setup(tmp_path: Path, count: int = 6) -> Path:
    stamp = to_iso(datetime.now(UTC))
    texts = (NEGATIVE + POSITIVE) * (count // 6 + 1)
    (tmp_path / "posts.jsonl").write_text("".join(
        json.dumps({"id": str(i), "text": t, "created_at": stamp}) + "\n"
        for i, t in enumerate(texts[:count], 1)))
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


def test_describe_words_each_event() -> None:
    assert describe("start", "collect", "demo-posts", None) == "collect demo-posts…"
    assert describe("done", "collect", "demo-posts", 5000, seconds=2.06) == \
        "collect demo-posts: 5,000 new posts (2.1 s)"
    assert describe("start", "classify", "", None, total=5000) == "classify: 5,000 posts waiting…"
    assert describe("batch", "classify", "", 1536, total=5000) == "classify: 1,536/5,000 posts…"
    assert describe("batch", "classify", "", 64, total=10) == "classify: 64 posts…"  # approx.
    assert describe("done", "rules", "", 412, seconds=0.4) == "rules: 412 alerts (0.4 s)"
    assert describe("done", "dispatch", "", 39, seconds=3, detail="37 delivered, 2 retrying") \
        == "dispatch: 37 delivered, 2 retrying (3.0 s)"
    assert describe("failed", "reports", "", None, seconds=1) == "reports: FAILED (1.0 s); see the log"
    assert dispatch_detail({"delivered": 37, "retry": 2, "failed": 1}) == \
        "37 delivered, 2 retrying, 1 parked"
    assert dispatch_detail({}) == "nothing was due"


def test_the_display_redraws_in_place_and_ends_each_stage_with_a_line() -> None:
    out, ticks = io.StringIO(), iter([0.0, 2.5, 10.0, 12.0])
    shown = TerminalProgress(out, total_of=lambda stage: 5000 if stage == "classify" else None,
                             clock=lambda: next(ticks))
    shown("start", "collect", "demo-posts", None)
    shown("done", "collect", "demo-posts", 5000)
    shown("start", "classify", "", None)
    shown("batch", "classify", "", 2048)
    shown.erase()  # a log record comes: the half-drawn line goes first
    shown("batch", "classify", "", 5000)
    shown("done", "classify", "", 5000)
    assert out.getvalue().split(CLEAR_LINE) == [
        "", "collect demo-posts…", "collect demo-posts: 5,000 new posts (2.5 s)\n",
        "classify: 5,000 posts waiting…", "classify: 2,048/5,000 posts…", "",
        "classify: 5,000/5,000 posts…", "classify: 5,000 posts scored (2.0 s)\n"]


def test_only_a_terminal_with_text_logs_wants_progress(tmp_path: Path) -> None:
    assert not wanted(io.StringIO(), "text")
    with (tmp_path / "log").open("w") as file:
        assert not wanted(file, "text")  # cron: stderr is a file
    primary, secondary = pty.openpty()
    with os.fdopen(secondary, "w") as terminal:
        assert wanted(terminal, "text") and not wanted(terminal, "json")
    os.close(primary)


def test_every_stage_reports_through_the_runtime_hook(tmp_path: Path, model: Classifier) -> None:
    config = load_config(setup(tmp_path, count=6), environ={})
    events: list[tuple[str, str, str, int | None]] = []
    runtime = Runtime(config, preloaded=model, strict=True,
                      progress=lambda *event: events.append(event))
    assert runtime.run_once()
    runtime.close()
    stages = [(e, s, t) for e, s, t, _ in events if e != "batch"]
    assert stages == [(event, stage, target) for stage, target in (
        ("collect", "demo-posts"), ("classify", ""), ("rules", ""), ("reports", ""),
        ("dispatch", "")) for event in ("start", "done")]
    done = {s: n for e, s, _, n in events if e == "done"}
    assert (done["collect"], done["classify"], done["rules"]) == (6, 6, len(NEGATIVE))
    assert [n for e, _, _, n in events if e == "batch"] == [6]


def test_a_failing_stage_reports_failed(tmp_path: Path) -> None:
    path = setup(tmp_path)
    path.write_text(path.read_text().replace("posts.jsonl", "notes.txt"))
    (tmp_path / "notes.txt").write_text("not a known format\n")
    events: list[tuple[str, str, str, int | None]] = []
    runtime = Runtime(load_config(path, environ={}), progress=lambda *event: events.append(event))
    runtime.migrate()
    assert runtime.run_collect(runtime.sources()[0]) is None
    assert events == [("start", "collect", "demo-posts", None),
                      ("failed", "collect", "demo-posts", None)]


def _run_on(stderr_is_a_terminal: bool, args: list[str], env: dict[str, str]) -> str:
    """The CLI's stderr, from a pseudo-terminal or from a pipe."""
    cmd = [sys.executable, "-m", "listener", *args]
    if not stderr_is_a_terminal:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stderr
    primary, secondary = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=secondary)
    os.close(secondary)
    assert proc.wait(timeout=300) == 0
    reader.join(timeout=30)
    os.close(primary)
    return b"".join(chunks).decode("utf-8", "replace")


def test_run_once_draws_progress_on_a_terminal_and_never_in_cron(tmp_path: Path) -> None:
    # before: silent until the end, terminal or not
    config = setup(tmp_path, count=150)
    env = cli_env("http://127.0.0.1:9/unused")
    args = ["run", "--once", "-c", str(config)]
    shown = _run_on(True, args, env).replace("\r\n", "\n")
    lines = [part for part in shown.split(CLEAR_LINE) if part]
    assert "collect demo-posts: 150 new posts (" in shown
    assert "classify: 150 posts waiting…" in lines
    assert "classify: 64/150 posts…" in lines and "classify: 128/150 posts…" in lines
    assert "classify: 150 posts scored (" in shown
    # how many alerts 75 negative posts make (one incident, …) is the rules' business
    assert any(re.fullmatch(r"rules: [1-9][0-9]* alerts \([0-9.]+ s\)\n", p) for p in lines)
    assert any(re.fullmatch(r"dispatch: [1-9][0-9]* delivered \([0-9.]+ s\)\n", p)
               for p in lines), shown
    piped = _run_on(False, args, env)  # the same run as cron has it: not a word of progress
    assert "collect demo-posts:" not in piped and CLEAR_LINE not in piped
    json_logs = _run_on(True, ["--log-format", "json", *args], env)
    assert CLEAR_LINE not in json_logs and "collect demo-posts:" not in json_logs
