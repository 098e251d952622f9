"""Spike detection: the tests on hand-made series, the synthetic benchmark's floors, and the
whole path through a real SQLite file and Runtime.run_reports."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alerts.spikes import SpikeConfig, run_spikes
from alerts.spikes.stats import (
    NEGATIVE,
    VOLUME,
    HourCounts,
    Settings,
    check,
    due,
    negbin_sf,
)
from alerts.terms import top_terms
from bench.spikes import evaluate, generate
from listener.config import BrandSettings, load_config
from listener.core.models import Page, Post, Score
from listener.pipeline import Runtime
from storage import db as store

MEDIUM = Settings()  # both tests, p < 1e-5, min_volume 10, seasonal


def flat(rate: float, hours: int = 169, seed: int = 0, share: float = 0.15) -> HourCounts:
    """Poisson(rate) posts an hour, each negative with probability ``share``."""
    rng = np.random.default_rng(seed)
    posts = rng.poisson(rate, hours)
    return HourCounts.of(posts, posts, rng.binomial(posts, share))


def with_window(counts: HourCounts, posts: int, negative: int) -> HourCounts:
    """The same baseline, with index 0 (the hour under test) replaced."""
    p, n = counts.posts.copy(), counts.negative.copy()
    p[0], n[0] = posts, negative
    return HourCounts(p, p, n)


def test_negative_binomial_tail_matches_summing_the_probabilities() -> None:
    for x, mean, phi in [(1, 0.5, 0.1), (12, 3.0, 0.05), (40, 20.0, 0.02), (300, 150.0, 0.3),
                         (25, 20.0, 0.01)]:
        r = 1 / phi
        q = mean / (mean + r)

        def pmf(k: int, r: float = r, q: float = q) -> float:
            return math.exp(math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1)
                            + r * math.log1p(-q) + k * math.log(q))

        below = sum(pmf(k) for k in range(x))
        above = sum(pmf(k) for k in range(x, x + 20_000))
        assert negbin_sf(x, mean, phi) == pytest.approx(above, rel=1e-9)
        assert negbin_sf(x, mean, phi) == pytest.approx(1 - below, rel=1e-6, abs=1e-12)


def test_a_clear_spike_fires_and_a_flat_series_never_does() -> None:
    series = flat(20, hours=24 * 21, seed=3)
    for end in range(0, 24 * 14):  # every hour of two weeks, each with its own week of baseline
        window = HourCounts(*(a[end : end + 169] for a in (series.posts, series.scored,
                                                           series.negative)))
        verdict = check(window, MEDIUM)
        assert verdict is not None and verdict.fired == [], end
    spike = check(with_window(flat(20), posts=80, negative=12), MEDIUM)
    assert spike is not None and spike.fired == [VOLUME]
    assert spike.volume is not None and spike.volume.ratio == pytest.approx(4, rel=0.15)
    assert spike.volume.p_value < 1e-10


def test_the_seasonal_baseline_expects_the_evening_peak() -> None:
    hours_back = np.arange(169)
    rate = 10 + 40 * np.isin(hours_back % 24, (23, 0, 1))  # 50 posts around this time of day
    rng = np.random.default_rng(5)
    posts = rng.poisson(rate)
    posts[0] = 50
    counts = HourCounts.of(posts, posts, posts // 10)
    seasonal = check(counts, MEDIUM)
    flat_baseline = check(counts, Settings(seasonal=False))
    assert seasonal is not None and seasonal.fired == []
    assert flat_baseline is not None and flat_baseline.fired == [VOLUME]


def test_min_volume_gates_a_quiet_brand() -> None:
    posts = np.zeros(169, dtype=np.int64)
    posts[::5] = 1  # a post every five hours
    posts[0] = 9
    counts = HourCounts.of(posts, posts, np.zeros(169, dtype=np.int64))
    quiet = check(counts, MEDIUM)
    assert quiet is not None and quiet.volume is not None
    assert quiet.volume.p_value < 1e-5 and quiet.fired == []  # significant, but only 9 posts
    louder = check(counts, Settings(min_volume=5))
    assert louder is not None and louder.fired == [VOLUME]


def test_a_series_needs_a_day_of_history() -> None:
    posts = np.zeros(169, dtype=np.int64)
    posts[:10] = 5
    posts[0] = 60
    assert check(HourCounts.of(posts, posts, posts), MEDIUM) is None


def test_negative_share_spike_with_flat_volume() -> None:
    verdict = check(with_window(flat(40, seed=8), posts=41, negative=22), MEDIUM)
    assert verdict is not None and verdict.fired == [NEGATIVE]
    n = verdict.negative
    assert n is not None and n.share == pytest.approx(22 / 41)
    assert n.baseline_share == pytest.approx(0.15, abs=0.02) and n.z > 5


def test_cooldown_suppresses_the_repeat_of_the_same_kind_only() -> None:
    end = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    cooldown = timedelta(minutes=120)
    last = {VOLUME: end - timedelta(minutes=60)}
    assert due([VOLUME, NEGATIVE], last, end, cooldown) == [NEGATIVE]
    assert due([VOLUME], last, end + timedelta(minutes=60), cooldown) == [VOLUME]
    assert due([VOLUME], {}, end, cooldown) == [VOLUME]


def test_top_terms_find_the_topic_of_the_window() -> None:
    rng = np.random.default_rng(1)
    everyday = "price delivery app update love great team order box shipping".split()
    background = [f"Acme {' '.join(rng.choice(everyday, 4))} #{i}" for i in range(500)]
    window = [f"@AcmeCloud the acme app login is broken, outage again https://t.co/{i}"
              for i in range(30)] + background[:40]
    terms = top_terms(window, background, exclude=["acme", "acme cloud"])
    # "app login" is in every post of "login" (and most of "app"'s): the phrase stands for both
    assert terms[:3] == ["app login", "broken", "outage"]
    assert not {"acme", "the", "again", "https", "acmecloud"} & set(terms)


def test_the_synthetic_benchmark_meets_its_floors() -> None:
    """Measured (seed 0, 2 weeks, 10 brands): 22 of 26 reachable spikes, 2 false alarms in 20
    brand-weeks at medium; `python bench/spikes.py` prints the full table."""
    outcomes = evaluate(generate(seed=0, weeks=2))
    outcome = outcomes["medium"]
    injected, detected = sum(outcome.injected.values()), sum(outcome.detected.values())
    assert injected >= 20 and outcome.gated > 0  # quiet brands' spikes are gated, not missed
    assert detected / injected >= 0.8
    assert outcome.false_alarms / outcome.brand_weeks <= 0.25
    assert max(outcome.delays) <= 240
    assert sum(outcomes["high"].detected.values()) >= detected  # more sensitive, more found


# --- through a real SQLite file and the reports stage ---

NOW = datetime(2026, 11, 20, 12, 7, tzinfo=UTC)  # the window is 11:00–12:00
EVERYDAY = "price delivery update love great team order box shipping colour".split()
OUTAGE = "acme login outage: the app is broken and support does not answer, ticket {}"


def _config(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text("""\
storage: {path: t.db}
brands: [{name: acme, query: acme}]
spikes:
  - {name: acme-spikes, destinations: [ops, console, slack], brands: [acme]}
  - {name: trial, destinations: [ops], dry_run: true, metric: negative}
destinations:
  - {type: console, name: ops}
  - {type: console, name: console}
  - {type: slack, name: slack, webhook_url: {"$env": SPIKE_TEST_SLACK}, optional: true}
""")
    return tmp_path / "config.yaml"


def _store_history(tmp_path: Path) -> list[int]:
    """Eight days of ~6 posts an hour, then 45 outage posts (5 cross-posted) in the window."""
    rng = np.random.default_rng(11)
    posts = []
    for hour in range(1, 24 * 8):
        for j in range(rng.poisson(6)):
            at = NOW.replace(minute=0) - timedelta(hours=hour, minutes=int(rng.integers(0, 60)))
            text = f"acme {' '.join(rng.choice(EVERYDAY, 4))} {hour}-{j}"
            posts.append(Post("x", f"{hour}-{j}", text, at, source="x-main", brand="acme"))
    for i in range(45):
        at = NOW.replace(minute=0) - timedelta(minutes=int(rng.integers(1, 55)))
        posts.append(Post("x", f"o{i}", OUTAGE.format(i), at, source="x-main", brand="acme",
                          author=f"customer{i}"))
    for i in range(5):  # the same author's text on another platform: counted and shown once
        posts.append(Post("reddit", f"r{i}", OUTAGE.format(i), NOW.replace(minute=0)
                          - timedelta(minutes=1), source="reddit", brand="acme",
                          author=f"customer{i}"))
    db = store.open_db(tmp_path / "t.db")
    store.store_page(db, "x-main", Page(posts=posts), NOW)
    rows = db.execute("SELECT id, text FROM posts").fetchall()
    old = Score("positive", 0.1, 0.2, 0.7, 0.1, "m", "1")
    store.save_scores(db, [(pid, old, None) for pid, _ in rows], NOW)
    # a newer model version: the outage posts are negative, the newest score is what counts
    new = [(pid, Score("negative" if "outage" in text else "positive", 0.9 if "outage" in text
                       else 0.1, 0.05, 0.05, 0.8 if "outage" in text else 0.1, "m", "2"), None)
           for pid, text in rows]
    store.save_scores(db, new, NOW)
    crossposts = [r[0] for r in db.execute("SELECT id FROM posts WHERE duplicate_of IS NOT NULL")]
    db.close()
    return crossposts


def test_a_stored_spike_alerts_each_destination_once(tmp_path: Path) -> None:
    crossposts = _store_history(tmp_path)
    assert len(crossposts) == 5
    clock = [NOW]
    runtime = Runtime(load_config(_config(tmp_path), environ={}), clock=lambda: clock[0],
                      strict=True)
    assert runtime.run_reports() == 3  # ops + console (slack is unset), + the dry run to ops
    db = runtime.db()
    alerts = [dict(r) for r in db.query(
        "SELECT a.rule, a.destination, a.status, a.priority, r.title, r.payload, r.window_end"
        " FROM alerts a JOIN reports r ON r.id = a.report_id ORDER BY a.rule, a.destination")]
    assert [(a["rule"], a["destination"], a["status"]) for a in alerts] == [
        ("acme-spikes", "console", "pending"), ("acme-spikes", "ops", "pending"),
        ("trial", "ops", "dry_run")]
    spike = alerts[0]
    payload = json.loads(spike["payload"])
    numbers = payload["numbers"]
    assert spike["window_end"] == "2026-11-20T12:00:00Z" and spike["priority"] == "high"
    assert numbers["spikes"] == [VOLUME, NEGATIVE]
    in_window = numbers["posts"]
    stored = db.execute("SELECT count(*) FROM posts WHERE created_at >= ? AND created_at < ?",
                        ["2026-11-20T11:00:00Z", "2026-11-20T12:00:00Z"]).fetchone()[0]
    assert in_window == stored - 5 and in_window >= 45  # the 5 cross-posts are counted once
    assert spike["title"].startswith(f"acme: {in_window} posts in the last hour (usual ")
    assert "negative share" in spike["title"]
    assert {"login outage", "broken"} <= set(payload["terms"][:5])  # a phrase, not two words
    assert "acme" not in payload["terms"]
    examples = payload["examples"]
    assert len(examples) == 5 and not set(examples) & set(crossposts)
    texts = [r[0] for r in db.execute(
        f"SELECT text FROM posts WHERE id IN ({','.join('?' * len(examples))})", examples)]
    assert all("outage" in t for t in texts)  # most negative first
    assert dict(payload["facts"])["baseline"] == "the same time of day over the previous 7 days"

    clock[0] = NOW + timedelta(minutes=2)  # same 10 minutes: same report id
    assert runtime.run_reports() == 0
    clock[0] = NOW + timedelta(minutes=23)  # a new window, but within the cooldown
    assert runtime.run_reports() == 0
    assert db["reports"].count == 2 and db["alerts"].count == 3
    db.close()


def test_per_source_series_and_the_brand_query_left_out_of_top_terms(tmp_path: Path) -> None:
    _store_history(tmp_path)
    db = store.open_db(tmp_path / "t.db")
    detector = SpikeConfig.model_validate({"name": "by-source", "destinations": ["ops"],
                                           "per_source": True, "metric": "volume"})
    acme = BrandSettings.model_validate({"name": "acme", "query": "acme (outage OR login*)"})
    assert run_spikes(db, [detector], {"ops"}, NOW, brands={"acme": acme.compile()}) == 1
    source, payload = db.execute("SELECT source, payload FROM reports").fetchone()
    terms = json.loads(payload)["terms"]
    assert source == "x-main"  # reddit holds only cross-posts: no series of its own
    assert "broken" in terms and not {"outage", "login", "acme"} & set(terms)
    db.close()
