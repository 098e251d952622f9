"""Quiet hours on a real SQLite file with an injected clock: held, rolled up once, never lost."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from alerts.digest import run_digests
from alerts.quiet import QuietHours
from alerts.rules import RuleConfig
from listener.config import load_config
from listener.core.errors import ConfigError
from listener.core.models import Page, Post, Score
from listener.pipeline import Runtime, evaluate_rules
from storage import db as store

BERLIN = {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}
NIGHT = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)  # Mon 22:30 in Berlin (CET, UTC+1)
CONFIG = """\
rules:
  - name: unhappy
    when: {sentiment: [negative]}
    destinations: [console, night-desk]
    quiet_hours: {start: "22:00", end: "07:00", timezone: Europe/Berlin}
destinations:
  - type: console
    name: console
  - type: console
    name: night-desk
    stream: stderr
"""


def add(db: Database, key: str, at: datetime, *, urgency: float = 0.5,
        followers: int = 0) -> int:
    """One negative post, scored."""
    post = Post("x", key, f"post {key}: the acme cloud is down and nobody answers", at,
                source="x", author_followers=followers, brand="acme")
    store.store_page(db, "x", Page(posts=[post]), at)
    post_id = db.execute("SELECT id FROM posts WHERE platform_id = ?", [key]).fetchone()[0]
    store.save_scores(db, [(post_id, Score("negative", 0.9, 0.05, 0.05, urgency, "m", "v"),
                            None)], at)
    return post_id


def statuses(db: Database) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM alerts GROUP BY status").fetchall())


def rule(**overrides: object) -> RuleConfig:
    fields = {"name": "unhappy", "when": {"sentiment": "negative"}, "destinations": ["console"],
              "quiet_hours": BERLIN, **overrides}
    return RuleConfig.model_validate(fields)


def test_quiet_hours_cross_midnight_in_local_time_all_year() -> None:
    quiet = QuietHours.model_validate(BERLIN)
    winter = {"20:59": False, "21:00": True, "02:00": True, "05:59": True, "06:00": False}
    summer = {"19:59": False, "20:00": True, "04:59": True, "05:00": False}  # CEST, UTC+2
    for day, table in (("2026-11-23", winter), ("2026-07-01", summer)):
        for utc, quiet_then in table.items():
            moment = datetime.fromisoformat(f"{day}T{utc}:00+00:00")
            assert quiet.contains(moment) is quiet_then, (day, utc)
    lunch = QuietHours.model_validate({"start": "12:00", "end": "13:00"})
    assert [lunch.contains(NIGHT.replace(hour=h)) for h in (11, 12, 13)] == [False, True, False]
    assert quiet.last_end(NIGHT) == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert quiet.last_end(datetime(2026, 11, 24, 6, 0, tzinfo=UTC)) == datetime(
        2026, 11, 24, 6, 0, tzinfo=UTC)


def test_bad_quiet_hours_name_their_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    for quiet, key, words in [
        ("{start: 22:00, end: '07:00'}", "rules[0].quiet_hours.start", 'quotes, e.g. "22:00"'),
        ("{start: '22:00', end: '7am'}", "rules[0].quiet_hours.end", "HH:MM"),
        ("{start: '22:00', end: '07:00', timezone: CET+1}", "rules[0].quiet_hours.timezone",
         "IANA"),
        ("{start: '22:00', end: '22:00'}", "rules[0].quiet_hours", "the same time"),
    ]:
        path.write_text(CONFIG.replace(
            '{start: "22:00", end: "07:00", timezone: Europe/Berlin}', quiet), encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        assert (info.value.key, info.value.line) == (key, 5) and words in str(info.value)


def test_held_overnight_then_one_report_per_destination_when_the_quiet_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    clock = [NIGHT]
    runtime = Runtime(load_config(tmp_path / "config.yaml", environ={}), clock=lambda: clock[0],
                      strict=True)
    runtime.migrate()
    db = runtime.db()
    high = add(db, "1", NIGHT, urgency=0.9, followers=20_000)
    normal = add(db, "2", NIGHT, urgency=0.5)
    assert runtime.run_rules() == 4 and statuses(db) == {"held": 4}
    clock[0] = NIGHT + timedelta(hours=4, minutes=30)  # Tue 03:00
    low = add(db, "3", clock[0], urgency=0.1)
    assert runtime.run_rules() == 2 and runtime.run_reports() == 0
    clock[0] = datetime(2026, 11, 24, 5, 59, 59, tzinfo=UTC)  # 06:59:59: still quiet
    assert runtime.run_reports() == 0 and runtime.run_dispatch() == 0
    assert capsys.readouterr() == ("", "")  # nothing was sent during the quiet hours

    clock[0] = datetime(2026, 11, 24, 6, 0, 30, tzinfo=UTC)  # 07:00:30
    assert runtime.run_reports() == 2 and runtime.run_reports() == 0
    assert statuses(db) == {"digested": 6, "pending": 2}
    report = next(db.query("SELECT * FROM reports"))
    assert report["kind"] == "held" and report["name"] == "unhappy"
    assert report["title"] == "3 alerts held overnight for rule unhappy: 1 high priority"
    payload = json.loads(report["payload"])
    assert payload["examples"] == [high, normal, low]  # most urgent first
    assert payload["numbers"]["held_alerts"] == 6
    assert dict(payload["facts"])["By priority"] == "1 high · 1 normal · 1 low"
    assert runtime.run_dispatch() == 2
    out, err = capsys.readouterr()
    assert out.count(report["title"]) == 1 and err.count(report["title"]) == 1

    add(db, "4", clock[0])  # after the quiet hours: alerts go out one by one again
    assert runtime.run_rules() == 2 and statuses(db)["pending"] == 2
    db.close()


def test_a_crash_during_the_roll_up_leaves_every_alert_held(tmp_path: Path) -> None:
    db = store.open_db(tmp_path / "q.db")
    for key in "123":
        add(db, key, NIGHT)
    assert evaluate_rules(db, [rule()], {"console"}, lambda: NIGHT) == 3
    db.execute("CREATE TRIGGER crash BEFORE UPDATE OF status ON alerts"
               " WHEN new.status = 'digested' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    morning = NIGHT + timedelta(hours=9)
    with pytest.raises(sqlite3.IntegrityError, match="disk I/O error"):
        run_digests(db, [], {"console"}, morning, rules=[rule()])
    assert statuses(db) == {"held": 3} and db["reports"].count == 0  # report rolled back too
    db.execute("DROP TRIGGER crash")
    assert run_digests(db, [], {"console"}, morning, rules=[rule()]) == 1
    assert statuses(db) == {"digested": 3, "pending": 1}
    db.close()


def test_dry_run_stays_dry_run_caps_apply_outside_and_removed_quiet_hours_release(
    tmp_path: Path,
) -> None:
    db = store.open_db(tmp_path / "d.db")
    for key in "12345":
        add(db, key, NIGHT)
    capped = rule(name="capped", max_alerts={"count": 2, "per_seconds": 3600})
    rules = [rule(name="trial", dry_run=True), capped]
    assert evaluate_rules(db, rules, {"console"}, lambda: NIGHT) == 10
    by_rule = db.execute("SELECT rule, status, count(*) FROM alerts GROUP BY 1, 2").fetchall()
    assert by_rule == [("capped", "held", 5), ("trial", "dry_run", 5)]  # one roll-up, no cap
    still_night = NIGHT + timedelta(hours=1)
    assert run_digests(db, [], {"console"}, still_night, rules=[capped]) == 0
    released = rule(name="capped", quiet_hours=None)  # quiet hours taken out of the config:
    assert run_digests(db, [], {"console"}, still_night, rules=[released]) == 1  # sent at once
    assert statuses(db) == {"digested": 5, "dry_run": 5, "pending": 1}
    day = NIGHT + timedelta(hours=12)
    for key in "6789":
        add(db, key, day)
    evaluate_rules(db, [capped], {"console"}, lambda: day)
    assert statuses(db)["pending"] == 3 and statuses(db)["suppressed"] == 2  # 1 is the report
    db.close()
