"""Ingest speed: posts per second through the real ``storage.db.store_page``.

    python bench/ingest.py                       # 100,000 posts per batch size, ~1 min
    python bench/ingest.py --posts 20000 --batch 500
    python bench/ingest.py --postgresql          # a throwaway local cluster (tests.pg_server)
    python bench/ingest.py --postgresql --url postgresql://me@host/postgres
    python bench/ingest.py --postgresql --writers 1 2 4   # collect workers storing at once
    python bench/ingest.py --postgresql --batch 1000 2000 --writers 1 2 --deal blocks

Each batch size gets a fresh database with the full schema (every migration, triggers
included) in a temporary folder on the same disk as the system's temp dir. Pages are built
before the clock starts, like a source hands them over; every page is one ``store_page`` call
(one transaction: posts, cross-post linking, cursor). ``--dup`` of each page repeats posts
already stored (overlapping polls: dedup hits), ``--cross`` are the same author's text on
another platform minutes later (linked as cross-posts when within the hour). Prints posts
offered per second of wall time, new posts stored per second, posts offered per second of this
process's CPU time (the figure to compare on a shared machine: storing is CPU-bound, since WAL
with synchronous=NORMAL does not fsync on commit), and the pragmas in force.

``--postgresql`` runs the same pages into PostgreSQL, each batch size twice on a fresh database
of its own: ``batched`` (one INSERT per page, its rows bound as one array per column: ``unnest``) and
``copy`` (COPY into a temporary table, then one ``INSERT … SELECT … ON CONFLICT DO NOTHING``),
each forced whatever the page's size; ``store_page`` itself COPYs pages of
``storage.db.COPY_MIN_ROWS`` posts or more. Without ``--url`` it starts
its own cluster (:class:`tests.pg_server.Server`: PostgreSQL's binaries, a temporary folder, a
Unix socket, ``fsync=off`` and ``synchronous_commit=off`` as in the tests); ``--url`` names a
server where it may create databases (the cluster's settings are then the server's). There the
work is shared with the server's backend process, so ``cpu/s`` counts both: this process's CPU
time and the backend's (read from ``/proc``, when the server runs on this machine).

``--writers N …`` (PostgreSQL): instead, the COPY path with N processes storing at once into
one database, as N collect workers do: the same pages dealt out in turn (a repeat or a
cross-post then often meets its original from another writer, maybe still in flight, which it
waits for), or with ``--deal blocks`` a stretch of the stream to each writer (as workers polling
sources of their own), each process its own connection, timed from a common start to the last
writer's end. ``cpu/s`` counts every writer
and every backend. The posts stored (``new``) must be the single writer's figure: dedup holds
across writers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from listener.core.models import Page, Post  # noqa: E402
from storage import db as store  # noqa: E402
from storage.db import open_db, store_page  # noqa: E402
from storage.engine import Db  # noqa: E402

WORDS = ("acme cloud down again support refund order never arrived app crash login broken "
         "love great thanks why still waiting billing charged twice outage status page slow "
         "please help today customer service account locked update broke everything").split()
PG_SETTINGS = ("shared_buffers", "fsync", "synchronous_commit", "wal_level", "max_wal_size")
PRAGMAS = ("journal_mode", "synchronous", "busy_timeout", "page_size", "cache_size",
           "temp_store", "foreign_keys")


def make_post(rng: random.Random, n: int, at: datetime, platform: str = "x",
              text: str | None = None, author: str | None = None) -> Post:
    body = text or " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) + f" #{n}"
    raw = {"id": str(n), "text": body, "author_id": str(rng.randint(1, 10**9)), "lang": "en",
           "public_metrics": {"like_count": rng.randint(0, 50), "reply_count": 0}}
    return Post(platform=platform, platform_id=str(n), text=body, created_at=at, source="bench",
                url=f"https://x.example/s/{n}", author=author or f"user{n % 5000}",
                author_followers=rng.randint(0, 100_000), lang="en", brand="acme", raw=raw)


def make_pages(total: int, batch: int, dup: float, cross: float, seed: int = 7) -> list[Page]:
    """``total`` posts offered in pages of ``batch``; ``dup`` and ``cross`` as fractions."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    stored: list[Post] = []
    pages: list[Page] = []
    n = 0
    while n < total:
        posts: list[Post] = []
        for _ in range(min(batch, total - n)):
            at = start + timedelta(seconds=n)
            roll = rng.random()
            if stored and roll < dup:
                posts.append(rng.choice(stored[-5 * batch:]))  # a repeat: dedup hit
            elif stored and roll < dup + cross:
                # the same author's text on another platform, minutes later: a cross-post
                twin = rng.choice(stored[-batch:])
                posts.append(make_post(rng, n, at, "reddit", twin.text, twin.author))
            else:
                posts.append(make_post(rng, n, at))
            n += 1
        stored += [p for p in posts if p.platform == "x"]
        pages.append(Page(posts=posts, cursor={"since_id": str(n)}))
    return pages


def run(batch: int, total: int, dup: float, cross: float, target: str | Path,
        label: str = "") -> tuple[float, int]:
    pages = make_pages(total, batch, dup, cross)
    db = open_db(target)
    now = datetime.now(UTC)
    started, cpu, server = time.perf_counter(), time.process_time(), _server_cpu(db)
    new = sum(store_page(db, "bench", page, now) for page in pages)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    cpu += _server_cpu(db) - server
    linked = db.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL").fetchone()[0]
    db.close()
    print(f"{label}{batch:>6} {total:>9,} {new:>9,} {linked:>7,} {elapsed:>7.2f} "
          f"{total / elapsed:>11,.0f} {new / elapsed:>9,.0f} {total / cpu:>9,.0f}")
    return total / elapsed, new


def _server_cpu(db: Db) -> float:
    """CPU seconds of the PostgreSQL backend serving ``db`` (0 on SQLite, or when the server
    is on another machine): storing there is shared between this process and that one."""
    if not hasattr(db.conn, "raw"):
        return 0.0
    pid = db.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _writer(url: str, pages: list[Page], start: Any, done: Any) -> None:
    """One collect worker's share: wait for the common start, store, report (new, cpu s)."""
    db = open_db(url)
    now = datetime.now(UTC)
    start.wait()
    cpu, server = time.process_time(), _server_cpu(db)
    new = sum(store_page(db, "bench", page, now) for page in pages)
    done.put((new, time.process_time() - cpu + _server_cpu(db) - server))
    db.close()


def deal(pages: list[Page], n: int, how: str) -> list[list[Page]]:
    """The pages of ``n`` writers: ``turn``, one by one in turn (a repeat then often meets its
    original in another writer's page still in flight, which it must wait for: the worst case);
    ``blocks``, a stretch of the stream each, as collect workers each polling sources of their
    own (a repeat mostly meets its original in the writer's own earlier page)."""
    if how == "turn":
        return [pages[w::n] for w in range(n)]
    size = -(-len(pages) // n)
    return [pages[w * size:(w + 1) * size] for w in range(n)]


def writers(url: str, n: int, batch: int, args: argparse.Namespace) -> None:
    """``n`` processes storing the pages at once into the database at ``url``."""
    pages = make_pages(args.posts, batch, args.dup, args.cross)
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(n + 1), context.Queue()
    procs = [context.Process(target=_writer, args=(url, share, start, done))
             for share in deal(pages, n, args.deal)]
    for proc in procs:
        proc.start()
    start.wait()
    began = time.perf_counter()
    results = [done.get() for _ in procs]
    elapsed = time.perf_counter() - began
    for proc in procs:
        proc.join()
    new, cpu = sum(r[0] for r in results), sum(r[1] for r in results)
    db = open_db(url)
    linked = db.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL").fetchone()[0]
    db.close()
    print(f"{args.deal:>6} {n:>7} {batch:>6} {args.posts:>9,} {new:>9,} {linked:>7,} {elapsed:>7.2f} "
          f"{args.posts / elapsed:>11,.0f} {new / elapsed:>9,.0f} {args.posts / cpu:>9,.0f}")


def postgresql(args: argparse.Namespace) -> None:
    """Each batch size twice, batched and COPY, each on a fresh database."""
    from tests.pg_server import Server

    server = Server()
    if args.url:
        server.url = args.url
    server.start()  # nothing to start when a URL is given
    try:
        probe = open_db(server.new_database())
        version = probe.execute("SHOW server_version").fetchone()[0]
        settings = {name: probe.execute(f"SHOW {name}").fetchone()[0] for name in PG_SETTINGS}
        probe.close()
        print(f"PostgreSQL {version}, Python {sys.version.split()[0]}, "
              f"{'given server' if args.url else 'throwaway local cluster'}")
        print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        print(f"{args.dup:.0%} repeats (dedup hits), {args.cross:.0%} cross-posts per page; "
              "cpu/s: this process + the server backend\n")
        if args.writers:
            print(f"{'deal':>6} {'writers':>7} {'batch':>6} {'offered':>9} {'new':>9} {'linked':>7} "
                  f"{'seconds':>7} {'offered/s':>11} {'new/s':>9} {'cpu/s':>9}")
            for batch in args.batch:
                for n in args.writers:
                    writers(server.new_database(), n, batch, args)
            return
        print(f"{'path':>8} {'batch':>6} {'offered':>9} {'new':>9} {'linked':>7} {'seconds':>7} "
              f"{'offered/s':>11} {'new/s':>9} {'cpu/s':>9}")
        floor = store.COPY_MIN_ROWS
        for batch in args.batch:
            for path, threshold in (("batched", sys.maxsize), ("copy", 1)):
                store.COPY_MIN_ROWS = threshold
                run(batch, args.posts, args.dup, args.cross, server.new_database(),
                    f"{path:>8} ")
        store.COPY_MIN_ROWS = floor
    finally:
        if not args.url:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=100_000, help="posts offered per run")
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 500, 1000, 5000])
    parser.add_argument("--dup", type=float, default=0.2, help="fraction already stored")
    parser.add_argument("--cross", type=float, default=0.05, help="fraction of cross-posts")
    parser.add_argument("--postgresql", action="store_true",
                        help="PostgreSQL instead of SQLite: batched and COPY per batch size")
    parser.add_argument("--url", help="with --postgresql: a server where databases may be "
                        "created (default: a throwaway local cluster)")
    parser.add_argument("--writers", type=int, nargs="+", default=[],
                        help="with --postgresql: N processes storing at once (COPY path)")
    parser.add_argument("--deal", choices=("turn", "blocks"), default="turn",
                        help="with --writers: pages dealt one by one in turn (default), or a "
                        "stretch of the stream to each writer")
    args = parser.parse_args()
    if args.writers and not args.postgresql:
        parser.error("--writers needs --postgresql (SQLite takes one writer at a time)")
    if args.postgresql:
        postgresql(args)
        return
    with tempfile.TemporaryDirectory(prefix="listener-ingest-") as tmp:
        folder = Path(tmp)
        probe = open_db(folder / "probe.db")
        pragmas = {p: probe.execute(f"PRAGMA {p}").fetchone()[0] for p in PRAGMAS}
        probe.close()
        print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, folder {tmp}")
        print("pragmas: " + ", ".join(f"{k}={v}" for k, v in pragmas.items()))
        print(f"{args.dup:.0%} repeats (dedup hits), {args.cross:.0%} cross-posts per page\n")
        print(f"{'batch':>6} {'offered':>9} {'new':>9} {'linked':>7} {'seconds':>7} "
              f"{'offered/s':>11} {'new/s':>9} {'cpu/s':>9}")
        for batch in args.batch:
            run(batch, args.posts, args.dup, args.cross, folder / f"ingest-{batch}.db")


if __name__ == "__main__":
    main()
