"""Dashboard queries on 1,000,000 synthetic posts: overview and queue, p50/p95 per filter mix.

    python bench/dashboard.py              # builds /tmp/listener-bench/dashboard-1000000-*.db once
    python bench/dashboard.py --posts 200000 --repeat 30

The database is built through the daemon's own storage verbs (store_page, save_scores,
outbox.enqueue, enqueue_report), so the triggers that keep the FTS index, the rollups and the
triage queue do their production work; it is cached under /tmp and rebuilt when the schema
(storage/migrations.py) or the generator changes. Each case runs what the page's view runs for
a query string (same parsing, same storage calls) once to warm up, then --repeat times; the
table shows p50 and p95 in milliseconds, then EXPLAIN QUERY PLAN of the SQL behind the pages.
Target (issue #6): overview and queue queries each ≤ 200 ms. Figures: bench/README.md.

    python bench/dashboard.py --postgresql --posts 10000000   # issue #17: 10 M posts

``--postgresql`` builds the same data, through the same verbs, into a PostgreSQL database
``dashboard_<posts>_<schema>`` kept for the next run (ANALYZEd once built): on a cluster of its
own under ``--dir``/postgresql, started and stopped by the bench with the settings printed, or on
the server ``--url`` names (where it may create databases). The plans are then EXPLAIN's.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dashboard_data import build, fill  # noqa: E402
from listener.core.models import to_iso  # noqa: E402
from listener.web.overview_data import overview  # noqa: E402
from listener.web.params import (  # noqa: E402
    PAGE_SIZE,
    counted_views,
    parse_queue_view,
    parse_view,
)
from storage import alert_log, post_record, trends, triage  # noqa: E402
from storage.db import open_db  # noqa: E402
from storage.engine import POSTGRESQL, dialect  # noqa: E402
from storage.tx import connect  # noqa: E402

# the bench's own cluster: memory for a 10 M-post database on a machine with a few GiB to spare
PG_SETTINGS = ("shared_buffers=2GB", "effective_cache_size=8GB", "work_mem=64MB",
               "maintenance_work_mem=1GB", "max_wal_size=8GB")

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BENCH_USER = "jane"  # whose posts "Mine" counts
BRAND_WORDS = ("acme", "globex", "initech", "umbrella")
Case = tuple[str, str, dict[str, str]]
CASES: list[Case] = [  # (page, label, the page's query string)
    ("overview", "24h per hour", {"range": "24h"}),
    ("overview", "7d per day (default)", {"range": "7d"}),
    ("overview", "7d per hour", {"range": "7d", "bucket": "hour"}),
    ("overview", "7d per hour, brand", {"range": "7d", "bucket": "hour", "brand": "acme"}),
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
    ("alerts", "all (default)", {}),
    ("alerts", "failed, one destination", {"status": "failed", "destination": "zendesk"}),
    ("post", "one post with its alerts", {"post": "500000"}),
]


def run_case(db: Any, page: str, args: dict[str, str]) -> Any:
    """What the page's view does with this query string (same parsing, same storage calls)."""
    if page == "alerts":
        return (alert_log.alerts(db, alert_log.AlertFilter(**args)), alert_log.alert_counts(db),
                alert_log.alert_names(db))
    if page == "post":
        return post_record.post_detail(db, int(args["post"]))
    if page == "overview":
        view = parse_view(args, NOW, default_status=None)
        return overview(db, view.period, view.bucket, view.brand, view.source, BRAND_WORDS)
    # the queue page: the tabs' counts (listener.web.params.counted_views) and its rows in its
    # default order (rank x time waited, storage.triage.Waiting's default targets)
    view = parse_queue_view(args, NOW)
    waiting = triage.Waiting(NOW)
    counts = {key: triage.count_queue(db, tab.queue_filter(me=BENCH_USER, waiting=waiting))
              for key, tab in counted_views(view)}
    rows = triage.queue(db, view.queue_filter(me=BENCH_USER, waiting=waiting), PAGE_SIZE,
                        (view.page - 1) * PAGE_SIZE)
    return counts, rows


def plans(db: Any) -> list[tuple[str, list[str]]]:
    """EXPLAIN QUERY PLAN of the SQL behind each page, for a few filter mixes."""
    view = parse_view({"range": "90d"}, NOW, default_status=None)
    period = view.period
    out = [("overview 90d per day: counts per day", _plan(db, *trends.counts_sql(
                db, period, "day", "bucket", None, None))),
           ("overview 90d per day: counts per brand", _plan(db, *trends.counts_sql(
                db, period, "day", "brand", None, None))),
           ("overview: sample of negative posts for terms", _plan(db, trends.TERMS_SQL, [
                to_iso(period.start), to_iso(period.end), None, None, trends.TERM_SAMPLE]))]
    for label, args in (("queue 30d new", {}), ("queue 30d new, lang pt", {"lang": "pt"}),
                        ("queue 30d new, search refund", {"q": "refund"})):
        f = parse_view(args, NOW, default_range="30d").queue_filter()
        out.append((label, _plan(db, *triage.queue_sql(db, f, PAGE_SIZE, 0))))
    return out


def _plan(db: Any, sql: str, params: list[Any]) -> list[str]:
    if dialect(db) == POSTGRESQL:
        return [row[0] for row in db.execute(f"EXPLAIN {sql}", params).fetchall()]
    return [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()]


def _schema_key() -> str:
    """Changes when the schema or the generator does: the cached database is then rebuilt."""
    here = Path(__file__).resolve()
    storage = here.parents[1] / "storage"
    sources = [storage / "migrations.py", storage / "migrations_pg.py",
               storage / "migrations_pg_bulk.py", here.with_name("dashboard_data.py")]
    return hashlib.sha1(b"".join(p.read_bytes() for p in sources)).hexdigest()[:10]


def _sqlite(args: argparse.Namespace) -> tuple[Any, str, Callable[[], None]]:
    path = args.dir / f"dashboard-{args.posts}-{_schema_key()}.db"
    if not path.exists():
        build(path, args.posts, NOW, log=print)
    return connect(path), f"{path} ({path.stat().st_size / 2**20:.0f} MiB)", lambda: None


def _postgresql(args: argparse.Namespace) -> tuple[Any, str, Callable[[], None]]:
    """The cached PostgreSQL database, built first when missing (module docstring)."""
    import psycopg

    from tests.pg_server import Server

    server = Server(folder=None if args.url else args.dir / "postgresql", settings=PG_SETTINGS)
    if args.url:
        server.url = args.url
    server.start()
    name = f"dashboard_{args.posts}_{_schema_key()}"
    with psycopg.connect(server.url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            started = time.perf_counter()
            admin.execute(f"DROP DATABASE IF EXISTS {name}_building".encode())
            admin.execute(f"CREATE DATABASE {name}_building".encode())
            db = open_db(server.database_url(f"{name}_building"))
            fill(db, args.posts, NOW, log=print)
            db.close()
            with psycopg.connect(server.database_url(f"{name}_building"), autocommit=True) as c:
                c.execute("VACUUM ANALYZE")
            admin.execute(f"ALTER DATABASE {name}_building RENAME TO {name}".encode())
            print(f"built {name} in {time.perf_counter() - started:.0f} s")
        size = admin.execute("SELECT pg_database_size(%s)", [name]).fetchone()[0]
        version = admin.execute("SHOW server_version").fetchone()[0]
        settings = ", ".join(admin.execute(f"SHOW {s.split('=')[0]}").fetchone()[0]
                             for s in PG_SETTINGS)
    label = (f"PostgreSQL {version} {name} ({size / 2**20:,.0f} MiB; "
             f"{', '.join(s.split('=')[0] for s in PG_SETTINGS)}: {settings})")
    return connect(server.database_url(name)), label, server.stop


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
    parser.add_argument("--postgresql", action="store_true",
                        help="PostgreSQL instead of SQLite (module docstring)")
    parser.add_argument("--url", help="with --postgresql: a server where databases may be "
                        "created (default: the bench's own cluster under --dir)")
    parser.add_argument("--page", action="append", choices=["overview", "queue", "alerts", "post"],
                        help="measure only this page's cases (repeatable; default: all)")
    args = parser.parse_args()
    db, label, stop = (_postgresql if args.postgresql else _sqlite)(args)
    try:
        report(db, label, args.repeat, set(args.page or ()))
    finally:
        db.close()
        stop()


def report(db: Any, label: str, repeat: int, pages: set[str] | None = None) -> None:
    """The table of p50/p95 per case, the worst p95 per page, then the plans."""
    counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
              for t in ("posts", "scores", "triage", "post_hours", "post_days", "alerts",
                        "post_status")}
    print(f"database {label}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    print(f"\n{'page':<9} {'filters':<36} {'p50 ms':>8} {'p95 ms':>8}  query string")
    worst = {"overview": 0.0, "queue": 0.0, "alerts": 0.0, "post": 0.0}
    for page, label, query in CASES:
        if pages and page not in pages:
            continue
        p50, p95 = measure(db, lambda conn: run_case(conn, page, query), repeat)  # noqa: B023
        worst[page] = max(worst[page], p95)
        print(f"{page:<9} {label:<36} {p50:>8.1f} {p95:>8.1f}  {urlencode(query)}")
    print(f"\nworst p95: overview {worst['overview']:.0f} ms, queue {worst['queue']:.0f} ms "
          "(target ≤ 200 ms each)")
    for label, steps in plans(db):
        print(f"\nEXPLAIN QUERY PLAN — {label}")
        for step in steps:
            print(f"  {step}")


if __name__ == "__main__":
    main()
