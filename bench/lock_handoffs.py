"""The classify stage's database calls beside a thread busy in Python: what the interpreter
lock's hand-overs cost them.

    python bench/lock_handoffs.py [--engines sqlite postgresql] [--batch 8192] [--repeat 3]
                                  [--switch-interval MS …] [--url postgresql://…]

On a GPU the stage's scoring thread is busy in Python most of the time (normalising,
tokenising's lists, launching kernels), while its reader and writer threads call the database.
A call that gives the interpreter lock up and takes it back many times (Python's sqlite3 does
so for every row it fetches, and around each statement it steps) waits, each time, until the
busy thread hands the lock over: up to its switch interval (5 ms). Rows, each the median of
``--repeat`` calls on a database of ``3 × --batch`` TweetEval tweets:

* ``read``: ``storage.db.posts_to_score`` of ``--batch`` posts, the stage's read (one row of
  JSON arrays: on SQLite one step, on PostgreSQL one message, which libpq receives in a few
  large pieces);
* ``read row by row``: the same query fetched a row at a time, the way before (SQLite: the
  lock given up for each row; psycopg: for each 16 kB piece libpq receives);
* ``save``: ``storage.db.save_scores`` of ``--batch`` scores, a third negative (queued);

each ``alone`` and ``beside`` a thread normalising tweets without pause, at the interpreter's
default switch interval and then at each ``--switch-interval`` (ms). Prints ms per call and
µs per post. The PostgreSQL server is a throwaway cluster unless ``--url`` names one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.classify_stage import DEFAULT_DATA, fill, postgres  # noqa: E402
from classifiers.evaluate import read_labelled_tsv  # noqa: E402
from classifiers.normalize import normalize_texts  # noqa: E402

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


@contextmanager
def busy_thread(texts: list[str], on: bool) -> Iterator[None]:
    """A thread normalising ``texts`` over and over while the block runs (if ``on``)."""
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            normalize_texts(texts)

    thread = threading.Thread(target=burn, daemon=True)
    if on:
        thread.start()
        time.sleep(0.05)
    try:
        yield
    finally:
        stop.set()
        if on:
            thread.join()


def timed(call: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``call``."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def calls(db: Any, batch: int) -> dict[str, Callable[[], object]]:
    """The timed calls; each save takes the next unscored batch (read untimed)."""
    from listener.core.models import Score
    from storage import db as store

    def save() -> object:
        posts = store.posts_to_score(db, "bench", "1", batch)
        rows = [(p.id, Score(("negative", "neutral", "positive")[p.id % 3], 0.6, 0.3, 0.1, 0.2,
                             "bench", "1", "en"), None) for p in posts]
        start = time.perf_counter()
        store.save_scores(db, rows, NOW)
        return time.perf_counter() - start

    return {
        "read": lambda: store.posts_to_score(db, "bench", "1", batch),
        "read row by row": lambda: db.execute(
            store._UNSCORED, [0, "bench", "1", batch]).fetchall(),  # the way before
        "save": save,
    }


def rows_for(db: Any, engine: str, texts: list[str], args: argparse.Namespace) -> list[str]:
    lines = []
    default = sys.getswitchinterval()
    for interval in [None, *args.switch_interval]:
        sys.setswitchinterval(default if interval is None else interval / 1000)
        try:
            lines += _rows_at(db, engine, texts, args, interval)
        finally:
            sys.setswitchinterval(default)
    return lines


def _rows_at(db: Any, engine: str, texts: list[str], args: argparse.Namespace,
             interval: float | None) -> list[str]:
    lines = []
    switch = "" if interval is None else f", {interval:g} ms"
    for name, call in calls(db, args.batch).items():
        for beside in (False, True):
            with busy_thread(texts[:2048], beside):
                if name == "save":  # only the save itself is timed, not its read
                    seconds = statistics.median(float(call()) for _ in range(args.repeat))
                else:
                    seconds = timed(call, args.repeat)
            where = ("beside" if beside else "alone") + switch
            lines.append(f"{engine:<11} {name:<16} {where:<14} {seconds * 1000:>9.1f}"
                         f" {seconds / args.batch * 1e6:>9.2f}")
            print(lines[-1], flush=True)
    return lines


def run(args: argparse.Namespace) -> list[str]:
    from storage.db import open_db

    texts = [r["text"] for r in read_labelled_tsv(args.data)]
    # each save scores a batch for good
    count = args.batch * (2 * args.repeat * (1 + len(args.switch_interval)) + 1)
    out = [f"{'engine':<11} {'call':<16} {'thread':<14} {'ms':>9} {'µs/post':>9}"]
    print(out[0], flush=True)
    for engine in args.engines:
        if engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix="handoffs-") as tmp:
                db = open_db(Path(tmp) / "bench.db")
                fill(db, texts, count)
                out += rows_for(db, engine, texts, args)
                db.close()
            continue
        with postgres(args.url) as server:
            if server is None:
                out.append("postgresql  skipped: no PostgreSQL server here")
                print(out[-1])
                continue
            db = open_db(server.new_database())
            fill(db, texts, count)
            db.execute("VACUUM ANALYZE posts")
            out += rows_for(db, engine, texts, args)
            db.close()
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="TSV: id, label, text")
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument("--batch", type=int, default=8192, help="posts per read and save")
    parser.add_argument("--repeat", type=int, default=3, help="calls per row (median)")
    parser.add_argument("--switch-interval", type=float, nargs="*", default=[0.5],
                        help="also at these switch intervals, ms")
    parser.add_argument("--url", default=None, help="a PostgreSQL server to create databases in")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
