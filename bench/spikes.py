"""Spike detection on synthetic series with known spikes: detections, misses, false alarms.

    python bench/spikes.py [--seeds 3] [--weeks 4] [--skip-sql]

Each seed draws ten brands (300 down to 0.3 posts/hour) with a daily cycle, a weekday/weekend
pattern, a slow trend, hour-to-hour burstiness (gamma noise) and a wobbling negative share, in
10-minute bins, plus a warm-up week for the baseline. Each brand gets one volume spike (2–6×,
30 min–4 h) and one negative-share spike (+25–45 points, volume unchanged) per week. The detector
runs every 10 minutes exactly as `listener run` would, through the same functions
(:func:`alerts.spikes.stats.check` and :func:`alerts.spikes.stats.due` for the cooldown).

An alert *detects* an injected spike of its kind and brand when its window overlaps the spike;
any other alert is a *false alarm*. A spike whose windows never reach ``min_volume`` posts can't
page by design: it is counted as *gated*, not missed. Delay: spike start → end of the first
alerting window. Then one brand set goes through a real SQLite file to show that the SQL path
loads exactly the same series (and how long the query takes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlite_utils import Database

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from alerts.spikes import SpikeConfig, load_series, run_spikes  # noqa: E402
from alerts.spikes.stats import (  # noqa: E402
    NEGATIVE,
    SENSITIVITY_P,
    VOLUME,
    HourCounts,
    Settings,
    check,
    due,
)
from listener.core.models import Page, Post, Score, to_iso  # noqa: E402
from storage import db as store  # noqa: E402
from storage.windows import SERIES_QUERY  # noqa: E402

BIN = timedelta(minutes=10)
PER_HOUR = 6
START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
RATES = (300, 120, 60, 30, 15, 8, 4, 2, 0.8, 0.3)  # posts/hour, one brand each
NAMES = ("acme", "globex", "initech", "umbrella", "hooli", "soylent", "stark", "wonka",
         "tyrell", "cyberdyne")
SQL_BRANDS = (2, 5, 8)  # 60, 8 and 0.8 posts/hour go through SQLite
WORDS = "price delivery app update love great team order box shipping colour size".split()
TOPICS = {VOLUME: "outage login error", NEGATIVE: "refund charged twice"}
BASELINE_HOURS = 168
NEG = Score("negative", 0.9, 0.05, 0.05, 0.6, "synthetic", "1")
POS = Score("positive", 0.05, 0.15, 0.8, 0.1, "synthetic", "1")


@dataclass(frozen=True)
class Spike:
    brand: int
    kind: str  # volume | negative
    start: int  # first bin
    bins: int
    size: float  # volume: multiplier; negative: added share


@dataclass(frozen=True)
class Synthetic:
    posts: np.ndarray  # (brands, bins)
    negative: np.ndarray
    extra: np.ndarray  # the spike's own posts (their text is about the spike)
    spikes: list[Spike]
    weeks: int  # evaluated weeks, after one warm-up week


def generate(seed: int, weeks: int = 4) -> Synthetic:
    """Ten brands over 1 + ``weeks`` weeks of 10-minute bins, with injected spikes."""
    rng = np.random.default_rng(seed)
    n = (weeks + 1) * 7 * 24 * PER_HOUR
    t = np.arange(n)
    hour = (t / PER_HOUR) % 24
    weekend = (t // (24 * PER_HOUR)) % 7 >= 5
    shape = (len(RATES), n)
    posts, negative, extra = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    spikes: list[Spike] = []
    for b, rate in enumerate(RATES):
        daily = 1 + rng.uniform(0.3, 0.8) * np.cos(2 * np.pi * (hour - rng.uniform(0, 24)) / 24)
        weekly = np.where(weekend, rng.uniform(0.5, 1.0), 1.0)
        trend = 1 + rng.uniform(-0.2, 0.6) * t / n
        phi = rng.uniform(0.02, 0.12)  # hour-to-hour burstiness: gamma noise, mean 1, var φ
        burst = np.repeat(rng.gamma(1 / phi, phi, n // PER_HOUR), PER_HOUR)
        mean = rate / PER_HOUR * daily * weekly * trend * burst
        share = rng.uniform(0.05, 0.3)
        hourly_share = np.repeat(rng.beta(share * 300, (1 - share) * 300, n // PER_HOUR),
                                 PER_HOUR)
        mine = _spikes(rng, b, weeks)
        spikes += mine
        boost, rise = np.ones(n), np.zeros(n)  # volume multiplier, added negative share
        for s in mine:
            if s.kind == VOLUME:
                boost[s.start : s.start + s.bins] = s.size
            else:
                rise[s.start : s.start + s.bins] = s.size
        base = rng.poisson(mean)
        extra[b] = rng.poisson(mean * (boost - 1))
        posts[b] = base + extra[b]
        negative[b] = rng.binomial(posts[b], np.minimum(hourly_share + rise, 0.95))
    return Synthetic(posts, negative, extra, spikes, weeks)


def _spikes(rng: np.random.Generator, brand: int, weeks: int) -> list[Spike]:
    """One volume and one negative spike per evaluated week, 12 hours apart at least."""
    week = 7 * 24 * PER_HOUR
    out = []
    for w in range(1, weeks + 1):
        first = int(rng.integers(0, week - 36 * PER_HOUR))
        second = int(rng.integers(first + 12 * PER_HOUR, week - 4 * PER_HOUR))
        starts = [first, second] if rng.random() < 0.5 else [second, first]
        out.append(Spike(brand, VOLUME, w * week + starts[0], int(rng.integers(3, 25)),
                         float(rng.uniform(2, 6))))
        out.append(Spike(brand, NEGATIVE, w * week + starts[1], int(rng.integers(3, 25)),
                         float(rng.uniform(0.25, 0.45))))
    return out


def hourly(series: np.ndarray) -> np.ndarray:
    """Sum over the trailing hour: element i counts bins i-5..i (a window ending after bin i)."""
    return np.convolve(series, np.ones(PER_HOUR, dtype=np.int64))[: len(series)]


def counts_at(posts_h: np.ndarray, negative_h: np.ndarray, i: int) -> HourCounts:
    """What the database would return for the window ending after bin ``i``."""
    idx = i - PER_HOUR * np.arange(BASELINE_HOURS + 1)
    idx = idx[idx >= PER_HOUR - 1]
    return HourCounts(posts_h[idx], posts_h[idx], negative_h[idx])  # every post scored


@dataclass
class Outcome:
    injected: dict[str, int]
    detected: dict[str, int]
    gated: int
    false_alarms: int
    delays: list[float]  # minutes
    brand_weeks: int


def evaluate(data: Synthetic, *, seasonal: bool = True, min_volume: int = 10,
             cooldown_minutes: int = 120) -> dict[str, Outcome]:
    """Run the detector every 10 minutes of the evaluated weeks; one outcome per sensitivity."""
    loosest = max(SENSITIVITY_P.values())
    settings = Settings(p_threshold=loosest, min_volume=min_volume, seasonal=seasonal)
    first = 7 * 24 * PER_HOUR
    fired: list[tuple[int, int, str, float]] = []  # (brand, bin, kind, p)
    for b in range(len(data.posts)):
        posts_h, negative_h = hourly(data.posts[b]), hourly(data.negative[b])
        for i in range(first, data.posts.shape[1]):
            verdict = check(counts_at(posts_h, negative_h, i), settings)
            if verdict is None:
                continue
            if verdict.volume and verdict.volume.fired:
                fired.append((b, i, VOLUME, verdict.volume.p_value))
            if verdict.negative and verdict.negative.fired:
                fired.append((b, i, NEGATIVE, verdict.negative.p_value))
    return {name: _score(data, fired, p, min_volume, cooldown_minutes)
            for name, p in SENSITIVITY_P.items()}


def _score(data: Synthetic, fired: list[tuple[int, int, str, float]], threshold: float,
           min_volume: int, cooldown_minutes: int) -> Outcome:
    last: dict[tuple[int, str], datetime] = {}
    alerts = []
    for b, i, kind, p in fired:
        end = START + (i + 1) * BIN
        if p < threshold and due([kind], {kind: last[b, kind]} if (b, kind) in last else {},
                                 end, timedelta(minutes=cooldown_minutes)):
            last[b, kind] = end
            alerts.append((b, i + 1, kind))  # bin index of the window's end
    out = Outcome({VOLUME: 0, NEGATIVE: 0}, {VOLUME: 0, NEGATIVE: 0}, 0, 0, [],
                  len(data.posts) * data.weeks)
    matched = set()
    for s in data.spikes:
        hits = [e for b, e, k in alerts
                if b == s.brand and k == s.kind and s.start < e < s.start + s.bins + PER_HOUR]
        matched |= {(s.brand, e, s.kind) for e in hits}
        if not hits and not _reachable(data, s, min_volume):
            out.gated += 1
            continue
        out.injected[s.kind] += 1
        if hits:
            out.detected[s.kind] += 1
            out.delays.append((min(hits) - s.start) * 10.0)
    out.false_alarms = sum(1 for a in alerts if a not in matched)
    return out


def _reachable(data: Synthetic, spike: Spike, min_volume: int) -> bool:
    """Does any window overlapping the spike hold ``min_volume`` posts?"""
    window = hourly(data.posts[spike.brand])[spike.start : spike.start + spike.bins + PER_HOUR - 1]
    return bool(window.max() >= min_volume)


def print_table(rows: list[tuple[str, str, Outcome]]) -> None:
    print("| baseline | sensitivity | volume det./inj. | negative det./inj. | gated | missed |"
          " false alarms | per day (10 brands) | per brand-week | delay median / p90 (min) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for baseline, sensitivity, o in rows:
        inj, det = sum(o.injected.values()), sum(o.detected.values())
        days = o.brand_weeks / len(RATES) * 7
        delays = sorted(o.delays) or [float("nan")]
        p90 = delays[min(len(delays) - 1, int(0.9 * len(delays)))]
        print(f"| {baseline} | {sensitivity} | {o.detected[VOLUME]}/{o.injected[VOLUME]} |"
              f" {o.detected[NEGATIVE]}/{o.injected[NEGATIVE]} | {o.gated} | {inj - det} |"
              f" {o.false_alarms} | {o.false_alarms / days:.2f} |"
              f" {o.false_alarms / o.brand_weeks:.2f} |"
              f" {statistics.median(delays):.0f} / {p90:.0f} |")


def merge(a: Outcome, b: Outcome) -> Outcome:
    return Outcome({k: a.injected[k] + b.injected[k] for k in a.injected},
                   {k: a.detected[k] + b.detected[k] for k in a.detected},
                   a.gated + b.gated, a.false_alarms + b.false_alarms, a.delays + b.delays,
                   a.brand_weeks + b.brand_weeks)


def sql_round_trip(data: Synthetic, path: Path) -> None:
    """Store three brands as posts + scores, load their series back through the detector's SQL
    and compare with the arrays; time the query; show one spike report."""
    db = store.open_db(path)
    posts, negative = _posts(data)
    store.store_page(db, "bench", Page(posts=posts), START)
    rows = db.execute("SELECT id, platform_id FROM posts").fetchall()
    store.save_scores(db, [(pid, NEG if key in negative else POS, None) for pid, key in rows],
                      START)
    rng = np.random.default_rng(1)
    first = 7 * 24 * PER_HOUR
    steps = sorted(set(rng.integers(first, data.posts.shape[1], 100).tolist())
                   | {s.start + 2 for s in data.spikes if s.brand in SQL_BRANDS})
    differ = 0
    for i in steps:
        loaded = load_series(db, START + (i + 1) * BIN, BASELINE_HOURS)
        for b in SQL_BRANDS:
            want = counts_at(hourly(data.posts[b]), hourly(data.negative[b]), i)
            got = loaded.get((NAMES[b], "bench"), HourCounts.of([0], [0], [0]))
            differ += not all(np.array_equal(getattr(want, f), getattr(got, f))
                              for f in ("posts", "scored", "negative"))
    end = START + (steps[-1] + 1) * BIN
    took = sorted(_timed(lambda: load_series(db, end, BASELINE_HOURS)) for _ in range(9))
    plan = [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + SERIES_QUERY, [0, "", ""])]
    print(f"\nSQLite round trip: {len(posts):,} posts of {len(SQL_BRANDS)} brands; series at "
          f"{len(steps)} window ends × {len(SQL_BRANDS)} brands: {differ} differ from the arrays")
    print(f"series query (169 h, {_in_range(db, end):,} posts in range): median "
          f"{took[4] * 1000:.0f} ms; plan: {'; '.join(plan)}")
    spike = next(s for s in data.spikes if s.brand == SQL_BRANDS[0] and s.kind == VOLUME)
    detector = SpikeConfig.model_validate(
        {"name": "bench", "destinations": ["slack"], "brands": [NAMES[spike.brand]]})
    for i in range(spike.start, spike.start + spike.bins + PER_HOUR):
        if run_spikes(db, [detector], {"slack"}, START + (i + 1) * BIN):
            title, payload = db.execute("SELECT title, payload FROM reports").fetchone()
            print(f"report {(i + 1 - spike.start) * 10} min into a {spike.size:.1f}× spike: "
                  f"{title}; terms {json.loads(payload)['terms']}")
            break
    db.close()


def _posts(data: Synthetic) -> tuple[list[Post], set[str]]:
    """Posts for the SQL brands, spread over their bins; spike posts talk about the spike."""
    rng = np.random.default_rng(2)
    posts, negative = [], set()
    for b in SQL_BRANDS:
        in_negative_spike = np.zeros(data.posts.shape[1], dtype=bool)
        for s in data.spikes:
            if s.brand == b and s.kind == NEGATIVE:
                in_negative_spike[s.start : s.start + s.bins] = True
        for t in np.flatnonzero(data.posts[b]):
            for j in range(data.posts[b, t]):
                key = f"{b}-{t}-{j}"
                bad = j < data.negative[b, t]
                topic = (TOPICS[VOLUME] if j >= data.posts[b, t] - data.extra[b, t] else
                         TOPICS[NEGATIVE] if bad and in_negative_spike[t] else "")
                text = f"{NAMES[b]} {' '.join(rng.choice(WORDS, 3))} {topic} #{key}"
                at = START + int(t) * BIN + timedelta(seconds=int(rng.integers(0, 600)))
                posts.append(Post("synthetic", key, text, at, source="bench", brand=NAMES[b]))
                if bad:
                    negative.add(key)
    return posts, negative


def _timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def _in_range(db: Database, end: datetime) -> int:
    start = end - timedelta(hours=BASELINE_HOURS + 1)
    return db.execute("SELECT count(*) FROM posts WHERE created_at >= ? AND created_at < ?",
                      [to_iso(start), to_iso(end)]).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="independent synthetic data sets")
    parser.add_argument("--weeks", type=int, default=4, help="evaluated weeks per data set")
    parser.add_argument("--min-volume", type=int, default=10)
    parser.add_argument("--cooldown", type=int, default=120, help="minutes")
    parser.add_argument("--skip-sql", action="store_true", help="no SQLite round trip")
    args = parser.parse_args()
    rows: list[tuple[str, str, Outcome]] = []
    began = time.perf_counter()
    for seasonal in (True, False):
        total: dict[str, Outcome] = {}
        for seed in range(args.seeds):
            outcome = evaluate(generate(seed, args.weeks), seasonal=seasonal,
                               min_volume=args.min_volume, cooldown_minutes=args.cooldown)
            total = {k: merge(total[k], v) if k in total else v for k, v in outcome.items()}
        rows += [("same hour ±1 h" if seasonal else "flat", k, v) for k, v in total.items()]
    took = time.perf_counter() - began
    print(f"{args.seeds} seeds × {len(RATES)} brands × {args.weeks} weeks, min_volume "
          f"{args.min_volume}, cooldown {args.cooldown} min ({took:.0f} s)\n")
    print_table(rows)
    if not args.skip_sql:
        with tempfile.TemporaryDirectory() as tmp:
            sql_round_trip(generate(0, args.weeks), Path(tmp) / "spikes.db")

if __name__ == "__main__":
    main()
