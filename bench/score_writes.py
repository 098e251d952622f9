"""Scores written into PostgreSQL and SQLite: ``storage.db.save_scores`` alone, from 1 to N
writers.

    python bench/score_writes.py [--engines postgresql sqlite] [--posts 40000] [--batch 8192]
        [--writers 1 2 3] [--queued third all] [--pages N] [--url postgresql://…]

What a classify worker's database writes cost, without the model or the stage around them:
``--posts`` English posts (TweetEval validation tweets, each a post of its own) stored
beforehand, not timed; then every post's score written by ``--writers`` threads, each with a
connection of its own, taking batches of ``--batch`` in turn. ``--queued``: ``third`` — a
third of the scores negative, so a third of the posts enter the triage queue (a queue row and
its search document each), as with real tweets; ``all`` — every one (the worst case).

Rows, each on a fresh copy of the loaded database:

* ``side by side`` — today's ``save_scores``: batches under the shared write lock, their
  rollup moves left pending and folded when no write is in flight (migration pg012);
* ``one at a time`` — the way before pg012, for comparison: each batch under the exclusive
  write lock, the rollup cells moved in place by the statement itself.
* SQLite (one writer: its one write lock), ``batch`` — today's ``save_scores``: the rollups and
  the queue moved by one statement each per batch (migration 016, :mod:`storage.score_batches`);
  ``row triggers`` — the same rows inserted as before 016, the row triggers moving them score
  by score (they still do, for any insert outside a batch).
* ``beside pages`` (``--pages N``, PostgreSQL, after the rows above) — today's way again, while ``N``
  collect threads store as many new posts as there are scores, in pages of 1,000, a tenth of
  each page stored posts found again for another brand (the page adds a brand to a post a
  batch may be scoring) and 5 % cross-posts (links): the two kinds of writers side by side. Also printed: new posts/s, and how many transactions PostgreSQL ended
  to break a deadlock (run again; logged by ``storage.tx``).

Prints the server's version, the machine's cores and load, then scores/s and µs of wall time
per score for each row, and checks every score and every rollup count landed (the cells plus
what is still pending: nothing is). The server is a throwaway cluster
(:class:`tests.pg_server.Server`) unless ``--url`` names one to create databases in.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.classify_stage import postgres  # noqa: E402 (the checkout's root, above)

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment" / "val.tsv"
LABELS = ("negative", "neutral", "positive")


def _texts(path: Path) -> list[str]:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    return [row[2] for row in rows if len(row) >= 3 and row[2]]


def _fill(db: Any, texts: list[str], count: int) -> None:
    """``count`` unscored posts, each of its own author, in pages of 1,000."""
    from listener.core.models import Page, Post
    from storage.db import store_page

    for start in range(0, count, 1000):
        store_page(db, "bench", Page([Post("x", str(i), texts[i % len(texts)], NOW,
                                           source="bench", brand="acme", author=f"user{i}",
                                           lang="en")
                                      for i in range(start, min(start + 1000, count))]), NOW)


def _load(server: Any, texts: list[str], count: int) -> str:
    """A database of ``count`` unscored posts; its name, to copy as a template."""
    from storage.db import open_db

    url = server.new_database()
    db = open_db(url)
    _fill(db, texts, count)
    db.execute("VACUUM ANALYZE posts")
    db.close()
    return url.partition("?")[0].rsplit("/", 1)[1]


def _copy(server: Any, template: str, n: int) -> str:
    import psycopg

    name = f"{template}_{n}"
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}".encode())
    return str(server.database_url(name))


def _one_at_a_time(db: Any, rows: list[tuple[Any, ...]]) -> int:
    """The write before pg012: exclusive lock, no setting, so the cells move in place."""
    from storage import db as store
    from storage.tx import immediate

    with immediate(db):
        return store.insert_columns(db, store._INSERT_SCORES_PG, rows,  # noqa: SLF001
                                    len(store._SCORE_COLUMNS))  # noqa: SLF001


def _row_triggers(db: Any, rows: list[tuple[Any, ...]]) -> int:
    """SQLite's write before migration 016: the same statements, outside a batch, so the row
    triggers move the rollups and the queue score by score."""
    from storage import score_batches
    from storage.tx import immediate

    with immediate(db):
        return score_batches.insert_rows(db, rows)


def _load_sqlite(folder: Path, texts: list[str], count: int) -> Path:
    """An SQLite file of ``count`` unscored posts, to copy for each row."""
    from storage.db import open_db

    path = folder / "loaded.db"
    db = open_db(path)
    _fill(db, texts, count)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


def run_row(url: str, way: str, queued: str, writers: int, batch: int, *,
            check: bool = True) -> tuple[int, float]:
    """(scores written, seconds) of one row; checks what landed."""
    from listener.core.models import Score
    from storage import db as store
    from storage.db import open_db

    db = open_db(url)
    ids = [int(r[0]) for r in db.execute(
        "SELECT id FROM posts WHERE platform = 'x' ORDER BY id").fetchall()]
    scores = [(i, Score("negative" if queued == "all" else LABELS[i % 3], 0.8, 0.1, 0.1, 0.2,
                        "bench", "1", "en"), None) for i in ids]
    batches = [scores[s:s + batch] for s in range(0, len(scores), batch)]
    errors: list[BaseException] = []
    ready = threading.Barrier(writers + 1)  # connections open (in their threads: SQLite's rule)

    def write(k: int) -> None:
        conn = open_db(url)
        ready.wait()
        try:
            for part in batches[k::writers]:
                if way in ("side by side", "batch"):
                    store.save_scores(conn, part, NOW)
                elif way == "row triggers":
                    _row_triggers(conn, store.score_values(part, NOW))
                else:
                    _one_at_a_time(conn, store.score_values(part, NOW))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    if check:
        _check(db, len(ids), queued)
    db.close()
    return len(ids), seconds


def run_beside_pages(url: str, queued: str, writers: int, batch: int, pages: int,
                     texts: list[str]) -> tuple[int, int, float, int]:
    """(scores, new posts, seconds, deadlocks run again) of scores written while ``pages``
    threads store pages."""
    import logging
    import random

    from listener.core.models import Page, Post
    from storage.db import open_db, store_page

    ended: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            ended.append(record.getMessage())

    handler = Count(logging.WARNING)
    logging.getLogger("storage.tx").addHandler(handler)
    db = open_db(url)
    stored = int(db.execute("SELECT count(*) FROM posts").fetchone()[0])
    errors: list[BaseException] = []

    def store(k: int) -> None:
        try:
            conn, rng = open_db(url), random.Random(k)
            size = max(min(1000, stored // pages), 20)  # pages of 1,000 (fewer if small)
            for p in range(max(stored // pages // size, 1)):
                found = [Post("x", str(rng.randrange(stored)), "found again", NOW,
                              brand=f"other{k}", also_brands=("acme",), lang="en")
                         for _ in range(size // 10)]
                new = [Post("r", f"{k}-{p}-{n}",
                            f"{texts[rng.randrange(len(texts))]} #{k}-{p}-{n}", NOW,
                            author=f"u{n % 500}", brand=f"other{k}", source=f"s{k}",
                            lang="en") for n in range(size * 85 // 100)]
                # cross-posts: the same author's text again, on another platform
                new += [Post("m", f"{k}-{p}-{n}", new[n].text, NOW, author=new[n].author,
                             brand=f"other{k}", source=f"s{k}", lang="en")
                        for n in range(size // 20)]
                store_page(conn, f"s{k}", Page(found + new), NOW)
            conn.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=store, args=(k,)) for k in range(pages)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    scored, _ = run_row(url, "side by side", queued, writers, batch, check=False)
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    logging.getLogger("storage.tx").removeHandler(handler)
    if errors:
        raise errors[0]
    new_posts = int(db.execute("SELECT count(*) FROM posts").fetchone()[0]) - stored
    db.close()
    return scored, new_posts, seconds, sum("deadlock" in m for m in ended)


def _check(db: Any, count: int, queued: str) -> None:
    from storage import rollups

    scored = db.execute("SELECT count(*) FROM scores").fetchone()[0]
    cells = db.execute(f"SELECT sum(n) FROM {rollups.cells(db, 'post_days')} c"  # noqa: S608
                       " WHERE sentiment <> 'unscored'").fetchone()[0]
    queue = db.execute("SELECT count(*) FROM triage").fetchone()[0]
    want_queue = count if queued == "all" else len([i for i in range(count) if i % 3 == 0])
    if scored != count or cells != count or abs(queue - want_queue) > 1:
        raise SystemExit(f"landed: {scored} scores, {cells} counted, {queue} queued of {count}")


SQLITE_WAYS = ("row triggers", "batch")
PG_WAYS = ("one at a time", "side by side")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", nargs="+", default=["postgresql", "sqlite"],
                        choices=["postgresql", "sqlite"])
    parser.add_argument("--posts", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=8192, help="scores a transaction")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--queued", nargs="+", default=["third", "all"],
                        choices=["third", "all"])
    parser.add_argument("--ways", nargs="+", default=[*PG_WAYS, *SQLITE_WAYS],
                        choices=[*PG_WAYS, *SQLITE_WAYS])
    parser.add_argument("--pages", type=int, default=0,
                        help="then the side-by-side rows again beside N threads storing pages")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--url", default=None)
    args = parser.parse_args(argv)
    texts = _texts(args.data)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} CPU cores; load average {os.getloadavg()[0]:.2f}; {args.posts} posts,"
          f" batches of {args.batch}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'engine':<10} {'way':<14} {'queued':<6} {'writers':>7} {'scores/s':>9}"
          f" {'µs/score':>9}")
    if "postgresql" in args.engines:
        _postgresql_rows(args, texts)
    if "sqlite" in args.engines:
        _sqlite_rows(args, texts)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


def _print_row(engine: str, way: str, queued: str, writers: int, done: int,
               seconds: float) -> None:
    print(f"{engine:<10} {way:<14} {queued:<6} {writers:>7} {done / seconds:>9,.0f}"
          f" {seconds / done * 1e6:>9.1f}", flush=True)


def _sqlite_rows(args: argparse.Namespace, texts: list[str]) -> None:
    import shutil
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory(prefix="score-writes-") as tmp:
        loaded = _load_sqlite(Path(tmp), texts, args.posts)
        print(f"SQLite {sqlite3.sqlite_version}; one writer (one write lock)")
        for queued in args.queued:
            for n, way in enumerate(w for w in args.ways if w in SQLITE_WAYS):
                target = Path(tmp) / f"row{n}.db"
                shutil.copyfile(loaded, target)
                done, seconds = run_row(str(target), way, queued, 1, args.batch)
                _print_row("sqlite", way, queued, 1, done, seconds)
                target.unlink()


def _postgresql_rows(args: argparse.Namespace, texts: list[str]) -> None:
    with postgres(args.url) as server:
        if server is None:
            raise SystemExit("no PostgreSQL server here (no pg_ctl on PATH or in"
                             " /usr/lib/postgresql, or it did not start; no --url);"
                             " --engines sqlite runs without one")
        template = _load(server, texts, args.posts)
        import psycopg

        with psycopg.connect(server.url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {version}")
        n = 0
        for queued in args.queued:
            for way in (w for w in args.ways if w in PG_WAYS):
                for writers in args.writers if way == "side by side" else [1]:
                    n += 1
                    done, seconds = run_row(_copy(server, template, n), way, queued, writers,
                                            args.batch)
                    _print_row("postgresql", way, queued, writers, done, seconds)
        for queued in args.queued if args.pages else []:
            for writers in args.writers:
                n += 1
                done, posts, seconds, ended = run_beside_pages(
                    _copy(server, template, n), queued, writers, args.batch, args.pages, texts)
                print(f"{'postgresql':<10} {'beside pages':<14} {queued:<6} {writers:>7}"
                      f" {done / seconds:>9,.0f} {seconds / done * 1e6:>9.1f}"
                      f"  + {posts / seconds:,.0f} new posts/s ({args.pages} collect threads);"
                      f" deadlocks run again: {ended}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
