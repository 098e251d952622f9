"""Digests on a real SQLite file with an injected clock: windows, figures, once-only, the chart."""

from __future__ import annotations

import io
import json
import logging
import random
import struct
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from matplotlib.image import imread
from sqlite_utils import Database

from alerts.digest import (
    DigestConfig,
    build_digest,
    chart_data,
    latest_period,
    period_ending,
    run_digests,
)
from alerts.digest_figures import read_figures
from listener.config import load_config
from listener.core.errors import ConfigError
from listener.core.models import Page, Post, Report, Score
from listener.pipeline import Runtime
from storage import db as store
from storage import outbox
from storage.reports import enqueue_report

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "digest"
NOW = datetime(2026, 11, 24, 7, 0, 30, tzinfo=UTC)  # Tue 24 Nov, 08:00:30 in Berlin
MON = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # the period: Mon 23 Nov 08:00 → Tue 08:00 CET
PROBS = {"negative": (0.8, 0.15, 0.05), "neutral": (0.1, 0.8, 0.1), "positive": (0.05, 0.15, 0.8)}


def digest(**overrides: object) -> DigestConfig:
    fields = {"name": "daily", "destinations": ["console"], "timezone": "Europe/Berlin",
              "at": "08:00", "examples": 2, **overrides}
    return DigestConfig.model_validate(fields)


def add(db: Database, key: str, at: datetime, sentiment: str | None = None, *,
        brand: str = "acme", source: str = "reddit", platform: str = "x", followers: int = 0,
        author: str | None = None, urgency: float = 0.1, p_negative: float | None = None,
        text: str | None = None, version: str = "v1") -> int:
    """Store one post (and a score unless ``sentiment`` is None); returns its row id."""
    post = Post(platform, key, text or f"post {key}: what people say about the acme cloud", at,
                source=source, author=author, author_followers=followers, brand=brand)
    store.store_page(db, source, Page(posts=[post]), at)
    post_id = db.execute("SELECT id FROM posts WHERE platform = ? AND platform_id = ?",
                         [platform, key]).fetchone()[0]
    if sentiment:
        neg, neu, pos = PROBS[sentiment]
        score = Score(sentiment, p_negative or neg, neu, pos, urgency, "m", version)
        store.save_scores(db, [(post_id, score, None)], at)
    return post_id


def test_daily_window_is_the_latest_that_ended_and_dst_days_have_23_or_25_hours(
    db: Database,
) -> None:
    cfg = digest()
    assert latest_period(cfg, NOW).start == MON and latest_period(cfg, NOW).end == MON + timedelta(days=1)
    just_before = latest_period(cfg, MON + timedelta(days=1, seconds=-1))
    assert (just_before.start, just_before.end) == (MON - timedelta(days=1), MON)
    midnight = digest(at="00:00")
    spring = latest_period(midnight, datetime(2026, 3, 30, 12, 0, tzinfo=UTC))  # Sun 29 Mar
    assert (spring.start, spring.end) == (datetime(2026, 3, 28, 23, 0, tzinfo=UTC),
                                          datetime(2026, 3, 29, 22, 0, tzinfo=UTC))
    autumn = latest_period(midnight, datetime(2026, 10, 26, 12, 0, tzinfo=UTC))  # Sun 25 Oct
    assert autumn.end - autumn.start == timedelta(hours=25)
    for period, hours, offsets in ((spring, 23, "UTC+01:00 → UTC+02:00"),
                                   (autumn, 25, "UTC+02:00 → UTC+01:00")):
        before = period_ending(midnight, period.day - timedelta(days=1))
        empty = read_figures(db, "acme", period.start, period.end, before.start, 5)
        chart = chart_data(midnight, "acme", period, before, empty)
        assert len(chart.labels) == hours and chart.xlabel.endswith(f"({offsets})")
    assert chart.labels[:5] == ["00:00", "01:00", "02:00", "02:00", "03:00"]  # autumn


def test_weekly_window_ends_at_the_last_weekday_and_spans_the_dst_change() -> None:
    weekly = digest(every="weekly", weekday="monday", at="09:00")
    wednesday = latest_period(weekly, datetime(2026, 4, 1, 12, 0, tzinfo=UTC))
    assert wednesday.end == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # Mon 09:00 CEST
    assert wednesday.start == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)  # Mon 09:00 CET: 167 h
    monday_early = latest_period(weekly, datetime(2026, 3, 30, 6, 59, tzinfo=UTC))
    assert monday_early.end == wednesday.start
    friday = latest_period(digest(every="weekly", weekday="friday", at="17:30", timezone="UTC"),
                           datetime(2026, 4, 1, 12, 0, tzinfo=UTC))
    assert friday.end == datetime(2026, 3, 27, 17, 30, tzinfo=UTC)


def _hand_built(db: Database) -> dict[str, int]:
    """The period (Mon 23 Nov 07:00Z → Tue 07:00Z): 3 negative, 4 neutral, 3 positive, 1 not
    scored; the day before: 2 negative, 5 neutral, 3 positive; plus posts that must not count."""
    at = MON + timedelta(hours=3)
    ids = {
        "A": add(db, "A", MON, "negative", source="x", p_negative=0.9, urgency=0.9, author="ann",
                 text="The acme cloud console has been down since this morning for our team"),
        "B": add(db, "B", at, "negative", source="x", p_negative=0.8, followers=150_000),
        "C": add(db, "C", at, "negative", source="x", p_negative=0.7, followers=2_000, urgency=0.6),
        "N1": add(db, "N1", at, "neutral", urgency=0.7),
        "U": add(db, "U", at, source="x"),
    }
    for key in ("N2", "N3", "N4", "P1", "P2"):
        ids[key] = add(db, key, at, "neutral" if key[0] == "N" else "positive")
    ids["R"] = add(db, "R", at, "negative")  # re-scored by a newer model: positive counts
    store.save_scores(db, [(ids["R"], Score("positive", 0.1, 0.1, 0.8, 0.1, "m", "v2"), None)], at)
    # a cross-post of A (same text, another platform, minutes later), the next period, another brand
    add(db, "A", MON + timedelta(minutes=5), "negative", platform="reddit", author="ann",
        text="The acme cloud console has been down since this morning for our team")
    add(db, "E", MON + timedelta(days=1), "negative")
    add(db, "O", at, "negative", brand="globex")
    for i, sentiment in enumerate(["negative"] * 2 + ["neutral"] * 5 + ["positive"] * 3):
        ids[f"prev{i}"] = add(db, f"prev{i}", MON - timedelta(seconds=1 + i), sentiment)
    return ids


def _alerts(db: Database, ids: dict[str, int]) -> None:
    """Outbox rows about the period's posts in every status, one outside it, spike alerts."""
    rows = [("A", "unhappy", outbox.PENDING), ("B", "unhappy", outbox.HELD),
            ("C", "unhappy", outbox.DIGESTED), ("N1", "needs-help", outbox.SUPPRESSED),
            ("prev0", "unhappy", outbox.PENDING)]
    outbox.enqueue(db, [outbox.NewAlert(rule, "slack", ids[key], ids[key], f"x:{key}",
                                        status=status) for key, rule, status in rows], [], MON)
    outbox.record_delivered(db, outbox.alert_id("unhappy", "x:A", "slack"), 1, None, MON, 1.0)
    for brand in ("acme", "globex"):
        spike = Report(kind="spike", name=f"{brand}-spikes", title="spike", brand=brand,
                       window_start=MON + timedelta(hours=4), window_end=MON + timedelta(hours=5))
        enqueue_report(db, spike, ["slack"], MON)


def test_figures_on_a_hand_built_database(db: Database) -> None:
    ids = _hand_built(db)
    _alerts(db, ids)
    assert run_digests(db, [digest()], {"console"}, NOW, brands=["acme"]) == 1
    row = next(db.query("SELECT * FROM reports WHERE kind = 'digest'"))
    assert row["title"] == ("acme — daily digest, Mon 23 Nov: 11 posts (+10%), "
                            "30% negative (+10 pts)")
    assert (row["window_start"], row["window_end"]) == ("2026-11-23T07:00:00Z",
                                                        "2026-11-24T07:00:00Z")
    payload = json.loads(row["payload"])
    numbers = payload["numbers"]
    assert (numbers["posts"], numbers["previous_posts"], numbers["change_pct"]) == (11, 10, 10.0)
    assert numbers["sentiment"] == {"negative": 3, "neutral": 4, "positive": 3, "unscored": 1}
    assert numbers["share_pct"] == {"negative": 30.0, "neutral": 40.0, "positive": 30.0}
    assert numbers["share_change_pts"] == {"negative": 10.0, "neutral": -10.0, "positive": 0.0}
    assert numbers["sources"] == {"x": 4, "reddit": 7} and numbers["help_seeking"] == 3
    assert numbers["alerts_by_status"] == {"delivered": 1, "held": 1, "digested": 1,
                                           "suppressed": 1, "pending": 1}
    assert numbers["alerts_by_rule"] == {"unhappy": 3, "needs-help": 1, "acme-spikes": 1}
    assert numbers["top_negative"] == [ids["B"], ids["A"]]  # 0.8 × reach 2.0 beats 0.9
    assert numbers["top_help_seeking"] == [ids["A"], ids["N1"]]
    assert payload["examples"] == [ids["B"], ids["A"], ids["N1"]]
    assert dict(payload["facts"]) == {
        "Posts": "11 (+10% vs 10 the day before)",
        "Sentiment": "30% negative (+10 pts) · 40% neutral (-10 pts) · 30% positive (±0 pts)"
                     " · 1 not scored yet",
        "Help-seeking": "3 posts with urgency ≥ 0.5",
        "Sources": "7 reddit · 4 x",
        "Alerts": "5: 1 delivered · 1 held · 1 held (rolled up) · 1 pending · 1 suppressed",
        "Alerts by rule": "3 unhappy · 1 acme-spikes · 1 needs-help",
        "Held back by alert caps": "1 more post, top 1 shown below (all in the queue)",
    }
    assert "from 2026-11-23 08:00 to 2026-11-24 08:00 (Europe/Berlin)" in payload["summary"]


def test_sent_once_per_period_and_only_the_latest_period_after_downtime(db: Database) -> None:
    for day in range(4):  # posts every day: the days missed while down have posts too
        add(db, str(day), MON + timedelta(days=day, hours=1), "negative")
    cfg = digest(chart=False)
    assert run_digests(db, [cfg], {"console"}, NOW, brands=["acme"]) == 1
    assert run_digests(db, [cfg], {"console"}, NOW + timedelta(minutes=1), brands=["acme"]) == 0
    later = NOW + timedelta(days=3, minutes=1)  # down for three days: one digest, the latest day
    assert run_digests(db, [cfg], {"console"}, later, brands=["acme"]) == 1
    windows = [r["window_end"] for r in db.query(
        "SELECT window_end FROM reports ORDER BY window_end")]
    assert windows == ["2026-11-24T07:00:00Z", "2026-11-27T07:00:00Z"]


def test_one_digest_per_brand_all_posts_without_brands_and_nothing_unrouted(db: Database) -> None:
    add(db, "1", MON + timedelta(hours=1), "negative")
    add(db, "2", MON + timedelta(hours=2), "positive", brand="globex")
    cfg = digest(chart=False)
    assert run_digests(db, [cfg], {"console"}, NOW, brands=["acme", "globex"]) == 2
    overall = digest(name="overall", chart=False, destinations=["console", "gone"])
    assert run_digests(db, [overall], {"console"}, NOW) == 1  # no brands configured
    title = db.execute("SELECT title FROM reports WHERE name = 'overall'").fetchone()[0]
    assert title.startswith("all brands — daily digest, Mon 23 Nov: 2 posts")
    off = [digest(name="off", enabled=False), digest(name="nowhere", destinations=["gone"])]
    assert run_digests(db, off, {"console"}, NOW, brands=["acme"]) == 0


SKIP_LINE = ("digest daily for brand acme skipped: no posts in 2026-11-23 08:00 to "
             "2026-11-24 08:00 (Europe/Berlin)")


def _skips(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "alerts.digest" and r.levelno == logging.INFO and "skipped" in r.message]


def test_an_empty_period_sends_nothing_and_says_so_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alerts.digest")
    cfg = digest(chart=False)
    assert run_digests(db, [cfg], {"console"}, NOW, brands=["acme"]) == 0
    assert db["alerts"].count == 0
    assert _skips(caplog) == [SKIP_LINE]
    for minutes in (1, 60, 23 * 60):  # the rest of the period: no second look, no second line
        assert run_digests(db, [cfg], {"console"}, NOW + timedelta(minutes=minutes),
                           brands=["acme"]) == 0
    assert _skips(caplog) == [SKIP_LINE] and db["alerts"].count == 0
    overall = digest(name="overall", chart=False)
    assert run_digests(db, [overall], {"console"}, NOW) == 0  # no brands configured
    assert _skips(caplog)[-1].startswith("digest overall for all brands skipped: no posts in ")


def test_posts_of_another_brand_or_outside_the_period_do_not_fill_it(db: Database) -> None:
    add(db, "other", MON + timedelta(hours=1), "negative", brand="globex")
    add(db, "before", MON - timedelta(seconds=1), "negative")
    add(db, "after", MON + timedelta(days=1), "negative")  # the current, unfinished period
    assert run_digests(db, [digest(chart=False)], {"console"}, NOW, brands=["acme"]) == 0
    assert run_digests(db, [digest(chart=False)], {"console"}, NOW, brands=["globex"]) == 1


def test_posts_in_the_period_send_one_digest(db: Database) -> None:
    add(db, "1", MON + timedelta(hours=5), "negative")
    assert run_digests(db, [digest(chart=False)], {"console"}, NOW, brands=["acme"]) == 1
    [title] = [r["title"] for r in db.query("SELECT title FROM reports")]
    assert title.startswith("acme — daily digest, Mon 23 Nov: 1 posts (none before)")


def test_the_first_digest_waits_for_a_period_that_had_posts_and_leaves_no_backlog(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alerts.digest")
    cfg = digest(chart=False)
    installed = NOW + timedelta(hours=4)  # Tue 12:00 in Berlin, four hours into today's period
    for i in range(3):
        add(db, f"today{i}", installed + timedelta(minutes=i), "negative")
    assert run_digests(db, [cfg], {"console"}, installed + timedelta(hours=2),
                       brands=["acme"]) == 0  # Mon 08:00 → Tue 08:00 had nothing
    assert db["alerts"].count == 0 and _skips(caplog) == [SKIP_LINE]
    tomorrow = NOW + timedelta(days=1)
    assert run_digests(db, [cfg], {"console"}, tomorrow, brands=["acme"]) == 1
    assert run_digests(db, [cfg], {"console"}, tomorrow + timedelta(hours=1),
                       brands=["acme"]) == 0
    sent = list(db.query("SELECT r.window_end, r.title FROM alerts a"
                         " JOIN reports r ON r.id = a.report_id"))
    assert [row["window_end"] for row in sent] == ["2026-11-25T07:00:00Z"]  # never the skipped day
    assert ": 3 posts (none before)" in sent[0]["title"]
    for day in range(1, 4):  # a post every day, then down for three days: one digest, the latest
        add(db, f"later{day}", MON + timedelta(days=1 + day, hours=3), "positive")
    assert run_digests(db, [cfg], {"console"}, NOW + timedelta(days=4), brands=["acme"]) == 1
    assert db["alerts"].count == 2


def _realistic(db: Database) -> None:
    """Two weeks of posts with a daily rhythm and an outage on the last day (seeded)."""
    rng = random.Random(7)
    posts, scores = [], []
    start = datetime(2026, 11, 9, 0, 0, tzinfo=UTC)
    for hour in range(15 * 24 + 7):
        at = start + timedelta(hours=hour)
        busy = 6 + 10 * max(0.0, 1 - abs((at.hour + 1) % 24 - 14) / 9)
        outage = 25 if datetime(2026, 11, 23, 13, tzinfo=UTC) <= at < NOW - timedelta(hours=8) else 0
        for i in range(int(rng.gauss(busy, 2)) + outage):
            negative = 0.2 + (0.5 if outage else 0)
            label = rng.choices(["negative", "neutral", "positive"], [negative, 0.45, 0.35])[0]
            key = f"{hour}-{i}"
            text = f"{key} acme cloud " + ("is down again, refund please" if label == "negative"
                                           else "works fine for us today")
            posts.append(Post("x", key, text, at + timedelta(minutes=rng.randrange(60)),
                              source=rng.choice(["x", "reddit", "hackernews"]), brand="acme"))
            scores.append((label, rng.random()))
    store.store_page(db, "x", Page(posts=posts), NOW)
    rows = db.execute("SELECT id FROM posts ORDER BY id").fetchall()
    store.save_scores(db, [(pid, Score(label, *PROBS[label], urgency, "m", "v1"), None)
                           for (pid,), (label, urgency) in zip(rows, scores, strict=True)], NOW)


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("every", ["daily", "weekly"])
def test_the_chart_is_a_readable_png(db: Database, every: str) -> None:
    _realistic(db)
    cfg = digest(every=every, weekday="tuesday") if every == "weekly" else digest()
    report = build_digest(db, cfg, "acme", latest_period(cfg, NOW))
    png = report.chart_png
    assert png is not None and _png_size(png) == (1200, 600) and len(png) < 150_000
    assert imread(io.BytesIO(png), format="png").shape[:2] == (600, 1200)
    again = build_digest(db, cfg, "acme", latest_period(cfg, NOW)).chart_png
    assert again == png  # no timestamp or version in the file: same figures, same bytes
    assert "refund" in report.terms  # what the negative posts say that the others do not
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{every}_digest.png").write_bytes(png)


def test_importing_digests_does_not_load_matplotlib() -> None:
    code = ("import sys, alerts.digest, listener.pipeline; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0


def test_bad_digest_settings_name_their_key(tmp_path: Path) -> None:
    base = "destinations:\n  - type: console\n    name: console\ndigests:\n  - name: d\n" \
           "    destinations: [console]\n"
    path = tmp_path / "config.yaml"
    for extra, key, words in [("    timezone: Europe/Berlln\n", "digests[0].timezone", "IANA"),
                              ("    weekday: friday\n", "digests[0].weekday", "weekly digests only"),
                              ("    at: 18:00\n", "digests[0].at", 'quotes, e.g. "18:00"')]:
        path.write_text(base + extra, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        assert (info.value.key, info.value.line) == (key, 7) and words in str(info.value)


def _runtime(tmp_path: Path, clock: Callable[[], datetime]) -> Runtime:
    """A runtime on a real config file: brand acme, the daily digest, the console sink."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "brands:\n  - name: acme\n    query: acme\n"
        "digests:\n  - name: daily\n    destinations: [console]\n    timezone: Europe/Berlin\n"
        '    at: "08:00"\n'
        "destinations:\n  - type: console\n    name: console\n", encoding="utf-8")
    runtime = Runtime(load_config(path, environ={}), clock=clock, strict=True)
    runtime.migrate()
    return runtime


def test_end_to_end_through_the_reports_stage_and_the_console_sink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = _runtime(tmp_path, lambda: NOW)
    conn = runtime.db()
    add(conn, "1", MON + timedelta(hours=2), "negative", urgency=0.8)
    add(conn, "2", MON + timedelta(hours=3), "positive")
    assert runtime.run_reports() == 1 and runtime.run_reports() == 0
    assert runtime.run_dispatch() == 1
    out = capsys.readouterr().out
    assert "acme — daily digest, Mon 23 Nov: 2 posts" in out and "50% negative" in out
    assert "post 1: what people say about the acme cloud" in out  # the example post
    status = conn.execute("SELECT status FROM alerts").fetchall()
    assert status == [("delivered",)]
    conn.close()


def test_end_to_end_the_first_empty_day_prints_no_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [NOW]
    runtime = _runtime(tmp_path, lambda: now[0])
    conn = runtime.db()
    assert runtime.run_reports() == 0 and runtime.run_dispatch() == 0  # nothing collected yet
    add(conn, "1", NOW + timedelta(hours=1), "negative")  # the first posts: today
    now[0] += timedelta(hours=2)
    assert runtime.run_reports() == 0 and runtime.run_dispatch() == 0
    assert "digest" not in capsys.readouterr().out  # never "0 posts (±0%)"
    now[0] = NOW + timedelta(days=1)
    assert runtime.run_reports() == 1 and runtime.run_dispatch() == 1
    assert "acme — daily digest, Tue 24 Nov: 1 posts (none before)" in capsys.readouterr().out
    conn.close()
