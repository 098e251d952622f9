"""How long a digest takes on a big brand, and what the per-minute check costs once it is sent.

    python bench/digest_speed.py [--posts-per-day 50000]

Builds a temporary SQLite file with two days of scored posts for one brand (the period and the
one before it, plus a re-score of every 10th post and a cross-post of every 50th), then times:
reading the figures, drawing the chart, the whole first ``run_digests`` (figures + chart + one
transaction) and the check that every later reports run does (the digest exists: nothing read).
The matplotlib import is timed in a fresh process, since the daemon pays it once.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from alerts.digest import (  # noqa: E402
    DigestConfig,
    chart_data,
    latest_period,
    period_ending,
    run_digests,
)
from alerts.digest_chart import render_png  # noqa: E402
from alerts.digest_figures import read_figures  # noqa: E402
from listener.core.models import Page, Post, Score  # noqa: E402
from storage import db as store  # noqa: E402

NOW = datetime(2026, 11, 24, 9, 0, 30, tzinfo=UTC)
LABELS = ("negative", "neutral", "positive")
T = TypeVar("T")


def build(path: Path, per_day: int) -> None:
    """Two days of posts before NOW, scored; every 10th re-scored, every 50th cross-posted."""
    db = store.open_db(path)
    rng = random.Random(1)
    start = NOW - timedelta(days=2)
    posts = []
    for i in range(2 * per_day):
        at = start + timedelta(seconds=rng.randrange(2 * 86400))
        text = (f"post {i} about acme: " + "the app is broken again " * rng.randint(1, 4)
                if i % 50 else "the same text pasted on two platforms about acme cloud")
        posts.append(Post("x", str(i), text, at, source=rng.choice(["x", "reddit", "rss"]),
                          author_followers=int(rng.paretovariate(1.2) * 50), brand="acme"))
    for chunk in range(0, len(posts), 5000):
        store.store_page(db, "x", Page(posts=posts[chunk:chunk + 5000]), NOW)
    ids = [row[0] for row in db.execute("SELECT id FROM posts ORDER BY id")]
    for version in ("v1", "v2"):
        rows = []
        for pid in ids if version == "v1" else ids[::10]:
            label = rng.choices(LABELS, [0.25, 0.45, 0.30])[0]
            probs = {lab: 0.8 if lab == label else 0.1 for lab in LABELS}
            rows.append((pid, Score(label, probs["negative"], probs["neutral"],
                                    probs["positive"], rng.random(), "m", version), None))
        store.save_scores(db, rows, NOW)
    db.close()


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts-per-day", type=int, default=50_000)
    args = parser.parse_args()
    cfg = DigestConfig(name="daily", destinations=["console"], at="09:00")
    period = latest_period(cfg, NOW)
    previous = period_ending(cfg, period.day - timedelta(days=1))
    code = ("import time; t = time.perf_counter(); import matplotlib.figure, "
            "matplotlib.backends.backend_agg; print((time.perf_counter() - t) * 1000)")
    cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        build(path, args.posts_per_day)
        print(f"built {2 * args.posts_per_day:,} posts in {time.perf_counter() - started:.0f} s")
        db = store.open_db(path)
        ms_figures, fig = timed(lambda: read_figures(db, "acme", period.start, period.end,
                                                     previous.start, 5))
        ms_chart, png = timed(lambda: render_png(chart_data(cfg, "acme", period, previous, fig)))
        ms_first, queued = timed(lambda: run_digests(db, [cfg], {"console"}, NOW,
                                                     brands=["acme"]))
        later = NOW + timedelta(minutes=1)
        ms_again, again = timed(lambda: run_digests(db, [cfg], {"console"}, later,
                                                    brands=["acme"]))
        title = db.execute("SELECT title FROM reports").fetchone()[0]
        db.close()
    print(f"matplotlib import (fresh process): {cold:.0f} ms")
    print(f"figures for {fig.volume.posts:,} posts (vs {fig.previous.posts:,}): {ms_figures:.0f} ms")
    print(f"chart: {ms_chart:.0f} ms, {len(png):,} bytes")
    print(f"first run_digests (figures + chart + enqueue): {ms_first:.0f} ms, queued {queued}")
    print(f"every later check (digest exists): {ms_again:.2f} ms, queued {again}")
    print(f"title: {title}")


if __name__ == "__main__":
    main()
