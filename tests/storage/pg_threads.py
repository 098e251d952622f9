"""Work on a PostgreSQL connection of its own, in a thread, held in flight and watched: what
the concurrency tests of storage share (pages, score batches)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storage.engine import Db


@dataclass
class Held:
    """Work running in a thread of its own, on a connection of its own."""

    thread: threading.Thread
    pid: int
    errors: list[BaseException] = field(default_factory=list)
    result: list[Any] = field(default_factory=list)


def pid(db: Db) -> int:
    return int(db.execute("SELECT pg_backend_pid()").fetchone()[0])


def in_thread(db: Db, work: Callable[[Db], Any]) -> Held:
    held = Held(threading.Thread(target=lambda: None), pid(db))

    def run() -> None:
        try:
            held.result.append(work(db))
        except BaseException as exc:  # the test reads it
            held.errors.append(exc)

    held.thread = threading.Thread(target=run, daemon=True)
    held.thread.start()
    return held


def wait_for_lock(watch: Db, pid: int, what: str) -> None:
    """Until backend ``pid`` waits for a lock (``what``: for the failure message)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = watch.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = ?",
                            [pid]).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} never waited for a lock")
