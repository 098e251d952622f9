"""Dashboard queries on 1,000,000 synthetic posts: overview and queue, p50/p95 per filter mix.

    python bench/dashboard.py              # builds /tmp/listener-bench/dashboard-1000000.db once
    python bench/dashboard.py --posts 200000 --repeat 30

The database is built through the daemon's own storage verbs (store_page, save_scores,
outbox.enqueue, enqueue_report), so the triggers that keep the FTS index, the hourly rollup
and the triage queue run exactly as in production; it is cached under /tmp and rebuilt when
the schema's migrations change. Each query runs once to warm the cache, then --repeat times;
the table shows p50 and p95 in milliseconds, and EXPLAIN QUERY PLAN follows for every query.
Target (issue #6): overview and queue queries each ≤ 200 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dashboard_data import build  # noqa: E402
from listener.web.params import PAGE_SIZE, parse_view  # noqa: E402
from storage import dashboard, trends  # noqa: E402
from storage.migrations import MIGRATIONS  # noqa: E402
from storage.tx import connect  # noqa: E402

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BRAND_WORDS = ("acme", "globex", "initech", "umbrella")
Case = tuple[str, str, dict[str, str]]
CASES: list[Case] = [  # (page, label, the page's query string)
    ("overview", "24h per hour", {"range": "24h"}),
    ("overview", "7d per hour (default)", {"range": "7d"}),
    ("overview", "7d per hour, brand", {"range": "7d", "brand": "acme"}),
    ("overview", "30d per day, source", {"range": "30d", "source": "x"}),
    ("overview", "90d per day", {"range": "90d"}),
    ("overview", "90d per week, brand+source",
     {"range": "90d", "bucket": "week", "brand": "globex", "source": "reddit"}),
    ("queue", "30d new (default)", {}),
    ("queue", "7d new, brand", {"range": "7d", "brand": "acme"}),
    ("queue", "90d any status", {"range": "90d", "status": "all"}),
    ("queue", "30d new, lang de, negative", {"lang": "de", "sentiment": "negative"}),
    ("queue", "30d new, brand+source+lang",
     {"brand": "initech", "source": "mastodon", "lang": "pt"}),
    ("queue", "24h new, brand+source+lang",
     {"range": "24h", "brand": "initech", "source": "mastodon", "lang": "pt"}),
    ("queue", "30d handled", {"status": "handled"}),
    ("queue", "30d new, page 20", {"page": "20"}),
    ("queue", "30d new, search refund", {"q": "refund"}),
    ("queue", '90d any, search "charged twice"', {"range": "90d", "status": "all",
                                                  "q": '"charged twice"'}),
    ("queue", "7d new, brand + search log*", {"range": "7d", "brand": "acme", "q": "log*"}),
    ("queue", "90d any, search a rare word", {"range": "90d", "status": "all", "q": "zyxel"}),
]


def run_case(db: Any, page: str, args: dict[str, str]) -> Any:
    """What the page's view does with this query string (same parsing, same storage calls)."""
    if page == "overview":
        view = parse_view(args, NOW, default_status=None)
        return trends.overview(db, view.period, view.bucket, view.brand, view.source, BRAND_WORDS)
    view = parse_view(args, NOW, default_range="30d")
    f = view.queue_filter()
    return dashboard.count_queue(db, f), dashboard.queue(db, f, PAGE_SIZE,
                                                         (view.page - 1) * PAGE_SIZE)


def plans(db: Any) -> list[tuple[str, list[str]]]:
    """EXPLAIN QUERY PLAN of the SQL behind each page, for a few filter mixes."""
    view = parse_view({"range": "90d"}, NOW, default_status=None)
    start, end = view.period.keys(10)
    cells_sql = ("SELECT bucket, brand, source, sentiment, sum(n), sum(urgent) FROM post_days"
                 " WHERE bucket >= ? AND bucket < ? AND (?3 IS NULL OR brand = ?3)"
                 " AND (?4 IS NULL OR source = ?4) GROUP BY 1, 2, 3, 4")
    out = [("overview 90d per day: rollup cells", _plan(db, cells_sql, [start, end, None, None]))]
    for label, args in (("queue 30d new", {}), ("queue 30d new, lang pt", {"lang": "pt"}),
                        ("queue 30d new, search refund", {"q": "refund"})):
        f = parse_view(args, NOW, default_range="30d").queue_filter()
        out.append((label, _plan(db, *dashboard.queue_sql(f, PAGE_SIZE, 0))))
    return out


def _plan(db: Any, sql: str, params: list[Any]) -> list[str]:
    return [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()]


def measure(db: Any, call: Callable[[Any], Any], repeat: int) -> tuple[float, float]:
    call(db)  # warm the page cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call(db)
        times.append(1000 * (time.perf_counter() - started))
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/listener-bench"))
    args = parser.parse_args()
    path = args.dir / f"dashboard-{args.posts}-{len(MIGRATIONS)}.db"
    if not path.exists():
        build(path, args.posts, NOW, log=print)
    db = connect(path)
    counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
              for t in ("posts", "scores", "triage", "post_hours", "alerts", "post_status")}
    print(f"database {path} ({path.stat().st_size / 2**20:.0f} MiB): "
          + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    print(f"\n{'page':<9} {'filters':<36} {'p50 ms':>8} {'p95 ms':>8}  query string")
    worst = {"overview": 0.0, "queue": 0.0}
    for page, label, query in CASES:
        p50, p95 = measure(db, lambda conn: run_case(conn, page, query), args.repeat)  # noqa: B023
        worst[page] = max(worst[page], p95)
        print(f"{page:<9} {label:<36} {p50:>8.1f} {p95:>8.1f}  {urlencode(query)}")
    print(f"\nworst p95: overview {worst['overview']:.0f} ms, queue {worst['queue']:.0f} ms "
          "(target ≤ 200 ms each)")
    for label, steps in plans(db):
        print(f"\nEXPLAIN QUERY PLAN — {label}")
        for step in steps:
            print(f"  {step}")
    db.close()


if __name__ == "__main__":
    main()
