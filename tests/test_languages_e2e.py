"""Issue 15 end to end: customers who write in other languages reach a person.

The real CLI in a subprocess (`run --once`), a SQLite file, the real default model (English
MiniLM + multilingual-e5 heads), the file source (which gives no language: every post's is
detected), slack_sdk against a fake webhook on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlite_utils import Database

from tests.e2e import cli_env, posts_jsonl, run_cli
from tests.fakes.slack import FakeSlackWebhook

SPANISH = "Acme Cloud no funciona desde esta mañana, necesito ayuda por favor"
GERMAN = "Acme Cloud ist seit heute Morgen komplett ausgefallen, ich will mein Geld zurück!"
JAPANESE = "Acme Cloudのアプリが今朝からずっと開けません。どうすればいいですか"
ENGLISH = "I love the new Acme Cloud editor, great update!"

CONFIG = """\
storage:
  path: listener.db
sources:
  - type: file
    name: imports
    brand: acme
    path: posts.jsonl
rules:
  - name: help
    when:
      min_urgency: 0.5
      unsupported_language: false
    destinations: [slack]
  - name: not-understood
    when:
      unsupported_language: true
    destinations: [slack]
destinations:
  - type: slack
    name: slack
    webhook_url: {"$env": TEST_SLACK_WEBHOOK}
    timeout: 2
    min_interval: 0
dispatch:
  once_max_wait: 5
"""


def test_other_languages_are_detected_scored_and_routed_to_a_person(tmp_path: Path) -> None:
    (tmp_path / "posts.jsonl").write_text(
        posts_jsonl([SPANISH, GERMAN, JAPANESE, ENGLISH]), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    with FakeSlackWebhook() as slack:
        result = run_cli(["run", "--once", "-c", str(tmp_path / "config.yaml")],
                         cli_env(slack.url))
        assert result.returncode == 0, result.stderr
        payloads = [json.dumps(r.json, ensure_ascii=False) for r in slack.requests]
    db = Database(tmp_path / "listener.db")
    rows = {r["text"]: r for r in db.query(
        "SELECT p.text, p.lang AS post_lang, s.lang, s.language_supported, s.urgency,"
        " s.scored_by, s.sentiment FROM posts p JOIN scores s ON s.post_id = p.id")}
    assert {t: r["post_lang"] for t, r in rows.items()} == {
        SPANISH: "es", GERMAN: "de", JAPANESE: "ja", ENGLISH: "en"}
    for text in (SPANISH, GERMAN):  # before: neutral, urgency 0.00
        assert rows[text]["language_supported"] == 1 and rows[text]["urgency"] >= 0.5
        assert rows[text]["scored_by"].startswith("multilingual-e5 ")
    assert rows[JAPANESE]["language_supported"] == 0
    assert rows[ENGLISH]["scored_by"].startswith("default ")
    # each help request and the post nobody understood: one message each, naming the language
    for text in (SPANISH, GERMAN, JAPANESE):
        assert sum(text[:25] in p for p in payloads) == 1, text
    assert not any(ENGLISH[:25] in p for p in payloads)
    # the queue holds the Japanese post whatever its score, marked as not understood
    queue = {r["post_id"]: r["supported"] for r in db.query("SELECT post_id, supported FROM triage")}
    japanese_id = next(db.query("SELECT id FROM posts WHERE lang = 'ja'"))["id"]
    assert queue[japanese_id] == 0
    # trends count it apart
    cells = {r["sentiment"] for r in db.query("SELECT sentiment FROM post_hours")}
    assert "unsupported" in cells
