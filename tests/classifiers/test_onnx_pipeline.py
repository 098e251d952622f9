"""`classifier.backend: onnx` end to end: `listener run --once` in a fresh process imports posts
into a SQLite file, scores them with the int8 model from the configured cache, alerts on the
negative ones, and never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_utils import Database

from classifiers.base import Classifier
from tests.e2e import NEGATIVE, POSITIVE, posts_jsonl

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
storage:
  path: listener.db
classifier:
  backend: onnx
  cache_dir: {cache_dir}
sources:
  - type: file
    name: imports
    path: posts.jsonl
rules:
  - name: unhappy
    when:
      sentiment: [negative]
      min_probability: 0.6
    destinations: [console]
destinations:
  - type: console
    name: console
"""

# the real CLI entry point; at exit, say whether anything imported torch
RUN = """\
import atexit, sys
atexit.register(lambda: print(f"torch imported: {'torch' in sys.modules}", file=sys.stderr))
sys.argv = ["listener", "run", "--once", "-c", sys.argv[1]]
from listener.cli import main
main()
"""


def test_run_once_scores_with_the_onnx_backend_without_torch(
    int8: Classifier, onnx_cache: Path, tmp_path: Path
) -> None:
    (tmp_path / "posts.jsonl").write_text(posts_jsonl(NEGATIVE + POSITIVE), encoding="utf-8")
    relative = os.path.relpath(onnx_cache, tmp_path)  # relative to the config file
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(cache_dir=relative), encoding="utf-8")
    blocked = tmp_path / "not-a-folder"  # so a cache_dir the pipeline ignored fails loudly
    blocked.write_text("")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LISTENER_CACHE_DIR": str(blocked)}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(config)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "torch imported: False" in done.stderr
    db = Database(tmp_path / "listener.db")
    scores = {row["text"]: row for row in db.query(
        "SELECT p.text, s.sentiment, s.model, s.model_version, s.scored_by FROM scores s"
        " JOIN posts p ON p.id = s.post_id"
    )}
    assert set(scores) == set(NEGATIVE + POSITIVE)
    # English posts: scored by the int8 English half, under the routing's version
    assert {r["scored_by"] for r in scores.values()} == {f"{int8.name} {int8.version}"}
    assert {r["model"] for r in scores.values()} == {"default"}
    assert all(r["model_version"].startswith(int8.version + "+") for r in scores.values())
    assert [scores[text]["sentiment"] for text in NEGATIVE] == ["negative"] * len(NEGATIVE)
    assert [scores[text]["sentiment"] for text in POSITIVE] == ["positive"] * len(POSITIVE)
    alerts = list(db.query("SELECT status FROM alerts WHERE rule = 'unhappy'"))
    assert [a["status"] for a in alerts] == ["delivered"] * len(NEGATIVE)
