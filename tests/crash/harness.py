"""Crash safety, proved: SIGKILL the real daemon at seeded moments, restart it, count.

    python -m tests.crash.harness --kills 120 --seed 7 [--period 1.0] [--workdir DIR]
    python -m tests.crash.harness --postgresql --workers 4 --kills 100 --seed 7 [--url URL]

(The second: several workers sharing a PostgreSQL database, one SIGKILLed at a time while the
others work; see :mod:`tests.crash.pg_harness`. What follows is the default SQLite mode.)

The harness process runs the fakes on 127.0.0.1: a Hacker News Search API whose stories keep
arriving (:class:`~tests.crash.stream.PostStream`), a Slack webhook that answers after 50 ms (so
some kills land between Slack's receipt and our record of it) and Zendesk. It writes a config
with 1-second intervals in which negative posts alert both, and runs ``listener run`` (the real
CLI, a subprocess). Each cycle starts the daemon, waits for what the cycle aims at, SIGKILLs it:

- ``random``: a seeded delay of 0.2–8 s (start-up, model load, anything);
- ``collect``: just after the platform received a request (the page may be half stored);
- ``classify`` / ``rules``: once the model has loaded and there is work for the stage, while
  the ``runs`` table shows it running (polled every half millisecond);
- ``dispatch``: just after Slack or Zendesk received a request;
- ``ticket-window``: Zendesk creates the ticket and holds its answer; the kill lands exactly
  between the remote's effect and our record of it.

Which stage each kill really hit comes from the ``runs`` rows the dead process left ``running``
(ground truth, whatever the aim). Then the stream stops, the daemon runs until nothing is left
to do and gets SIGTERM, and :mod:`tests.crash.verify` counts: posts lost or stored twice,
alerts lost, duplicate tickets, tracebacks in the daemon's log (must all be 0: a SIGKILL leaves
no traceback, a bug does), and duplicate Slack messages (reported: Slack has no idempotency key). The seed fixes the kill plan and the post texts; when exactly each kill
lands depends on the machine, so two runs agree in their totals, not in every detail.
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen, TimeoutExpired
from typing import Any

from tests.crash import daemon
from tests.crash.stream import PostStream
from tests.crash.verify import Totals, count, table
from tests.fakes.slack import FakeSlackWebhook
from tests.fakes.zendesk_api import FakeZendesk

AIMS = ("random", "collect", "classify", "rules", "dispatch", "ticket-window")
WEIGHTS = (3, 2, 2, 2, 2, 1)
AIM_TIMEOUT = 25.0  # seconds to wait for the aimed moment before killing anyway
WORK_FOR = {  # work waiting for the stage: its next run takes long enough to be hit
    "classify": "SELECT 1 FROM posts p WHERE NOT EXISTS"
                " (SELECT 1 FROM scores s WHERE s.post_id = p.id) LIMIT 1",
    "rules": "SELECT 1 FROM scores WHERE rules_at IS NULL LIMIT 1",
}


@dataclass(frozen=True)
class Kill:
    number: int
    aim: str
    hit: str  # the stage(s) in progress, from the runs rows left "running"
    alive_s: float


# Settled: every post created is stored, scored, through the rules, and no alert is pending.
QUIET_SQL = (
    "SELECT (SELECT count(*) FROM posts),"
    " (SELECT count(*) FROM posts p WHERE NOT EXISTS"
    "   (SELECT 1 FROM scores s WHERE s.post_id = p.id)),"
    " (SELECT count(*) FROM scores WHERE rules_at IS NULL),"
    " (SELECT count(*) FROM alerts WHERE status = 'pending')"
)


def quiet(rows: list[Any], created: int) -> bool:
    """Whether :data:`QUIET_SQL`'s answer says the pipeline has settled (no answer: not yet)."""
    [row] = rows or [(0, 1, 1, 1)]
    return bool(row[0] >= created and row[1] == row[2] == row[3] == 0)


class HarnessError(Exception):
    """The daemon did something no kill explains (exited by itself, never settled)."""


class Harness:
    """Fakes, config and daemon cycles in ``workdir``; use as a context manager."""

    def __init__(self, workdir: Path, seed: int, period: float = 1.0,
                 say: Callable[[str], None] = print) -> None:
        self.workdir, self.say = workdir, say
        self.rng = random.Random(seed)
        self.stream = PostStream(seed, period)
        self.slack = FakeSlackWebhook(delay=0.05)
        self.zendesk = FakeZendesk()
        self.kills: list[Kill] = []
        self.ready_s: list[float] = []  # start → first classify done (imports + model load)
        self.database = workdir / "listener.db"
        self.log_path = workdir / "daemon.log"
        self.config = workdir / "config.yaml"
        self._reader: sqlite3.Connection | None = None  # opened once the database exists

    def __enter__(self) -> Harness:
        for fake in (self.stream, self.slack, self.zendesk):
            fake.start()
        self.config.write_text(daemon.config_yaml(
            self.stream.base_url, self.zendesk.base_url, intervals=daemon.Intervals(1, 1)))
        self.env = daemon.daemon_env(self.slack.url, self.zendesk.email, self.zendesk.token)
        self.stream.begin()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fake in (self.stream, self.slack, self.zendesk):
            fake.stop()
        if self._reader is not None:
            self._reader.close()

    # -- the kill cycles -------------------------------------------------------------------

    def run(self, kills: int, settle_timeout: float = 300) -> Totals:
        for number in range(1, kills + 1):
            aim = self.rng.choices(AIMS, WEIGHTS)[0]
            kill = self._cycle(number, aim)
            self.kills.append(kill)
            self.say(f"kill {number}/{kills}: aimed at {aim}, hit {kill.hit} "
                     f"after {kill.alive_s:.1f}s")
        return self.settle(settle_timeout)

    def _cycle(self, number: int, aim: str) -> Kill:
        base = self._last_run_id()
        started = time.monotonic()
        proc = daemon.start(self.config, self.env, self.log_path)
        try:
            self._wait_for(aim, proc, base, started)
            if proc.poll() is not None:
                raise HarnessError(f"kill {number}: the daemon exited by itself with status "
                                   f"{proc.returncode}; see {self.log_path}")
        finally:
            proc.kill()
            proc.wait(timeout=30)
        return Kill(number, aim, self._hit(base), time.monotonic() - started)

    def _wait_for(self, aim: str, proc: Popen, base: int, started: float) -> None:
        jitter = self.rng.uniform(0, 1)  # drawn whatever the aim: the plan stays seeded
        if aim == "random":
            _alive_for(proc, 0.2 + 7.8 * jitter)
        elif aim == "collect":
            self._after_request(proc, (self.stream,))
            time.sleep(0.05 * jitter)
        elif aim in ("classify", "rules"):  # a run with work to do: milliseconds, not one
            self._wait_model(proc, base, started)
            self._until(proc, lambda: bool(self._query(WORK_FOR[aim])), every=0.01)
            self._until(proc, lambda: self._running(base, aim), every=0.0005)  # then at once
        elif aim == "dispatch":
            self._after_request(proc, (self.slack, self.zendesk))
            time.sleep(0.04 * jitter)
        else:  # ticket-window: the ticket exists, its answer is held back, we die waiting
            self.zendesk.enqueue(delay=3, create=True)
            self._after_request(proc, (self.zendesk,))

    def _wait_model(self, proc: Popen, base: int, started: float) -> None:
        if self._until(proc, lambda: self._classified(base), every=0.05):
            self.ready_s.append(time.monotonic() - started)

    def _after_request(self, proc: Popen, fakes: tuple[Any, ...]) -> None:
        before = sum(len(f.requests) for f in fakes)
        self._until(proc, lambda: sum(len(f.requests) for f in fakes) > before, every=0.002)

    @staticmethod
    def _until(proc: Popen, test: Callable[[], bool], every: float,
               timeout: float = AIM_TIMEOUT) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and proc.poll() is None:
            if test():
                return True
            time.sleep(every)
        return False

    # -- the database, read beside the daemon ----------------------------------------------

    def _query(self, sql: str, *params: Any) -> list[Any]:
        if self._reader is None:
            if not self.database.exists():
                return []
            self._reader = daemon.read_db(self.database)
        try:
            return self._reader.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:  # the schema is not there yet: nothing has run
            if "no such table" in str(exc):
                return []
            raise

    def _last_run_id(self) -> int:
        rows = self._query("SELECT coalesce(max(id), 0) FROM runs")
        return int(rows[0][0]) if rows else 0

    def _running(self, base: int, stage: str) -> bool:
        return bool(self._query("SELECT 1 FROM runs WHERE id > ? AND stage = ? AND status ="
                                " 'running' LIMIT 1", base, stage))

    def _classified(self, base: int) -> bool:
        return bool(self._query("SELECT 1 FROM runs WHERE id > ? AND stage = 'classify' AND"
                                " status = 'ok' LIMIT 1", base))

    def _hit(self, base: int) -> str:
        rows = self._query("SELECT stage, status FROM runs WHERE id > ?", base)
        if not rows:
            return "start-up"
        running = sorted({r["stage"] for r in rows if r["status"] == "running"})
        if not running:
            return "between stages"
        loaded = any(r["stage"] == "classify" and r["status"] == "ok" for r in rows)
        return " + ".join("classify (model load)" if s == "classify" and not loaded else s
                          for s in running)

    # -- the end ---------------------------------------------------------------------------

    def settle(self, timeout: float) -> Totals:
        """Stop the stream, run the daemon until nothing is left to do, SIGTERM it, count."""
        created = self.stream.freeze()
        started = time.monotonic()
        proc = daemon.start(self.config, self.env, self.log_path)
        try:
            self._wait_model(proc, self._last_run_id(), started)
            settled = self._until(proc, lambda: self._quiet(len(created)), every=0.5,
                                  timeout=timeout)
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not settled or status != 0:
            raise HarnessError(f"the last run did not settle within {timeout:g}s (exit status "
                               f"{status}); see {self.log_path}")
        self.say(f"settled in {time.monotonic() - started:.1f}s")
        slack = [r.body for r in self.slack.requests if r.target == self.slack.path]
        return count(self.database, created, self.stream.first_served, slack, self.zendesk.tickets)

    def _quiet(self, created: int) -> bool:
        return quiet(self._query(QUIET_SQL), created)

    def report(self, totals: Totals) -> str:
        aims = Counter(k.aim for k in self.kills)
        hits = Counter(k.hit for k in self.kills)
        stages = Counter(stage for k in self.kills for stage in k.hit.split(" + "))
        ready = sorted(self.ready_s)
        lines = [table(totals, aims, hits), "kills in progress in each stage (one kill can "
                 "interrupt several stages running in parallel threads):",
                 *(f"  {stage}: {n}" for stage, n in sorted(stages.items()))]
        if ready:
            lines.append(f"start → model loaded and first batch scored: median "
                         f"{ready[len(ready) // 2]:.1f}s, max {ready[-1]:.1f}s "
                         f"({len(ready)} restarts)")
        lines.append(f"tracebacks in the daemon log: {self.tracebacks()} ({self.log_path})")
        return "\n".join(lines)

    def tracebacks(self) -> int:
        """Errors the daemon logged with a traceback: a SIGKILL leaves none, a bug does."""
        return self.log_path.read_text(errors="replace").count("Traceback")


def _alive_for(proc: Popen, seconds: float) -> None:
    with suppress(TimeoutExpired):  # still running after ``seconds``, as it should be
        proc.wait(timeout=seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--period", type=float, default=1.0, help="seconds between new posts")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep config, database and daemon log here (default: a temp dir)")
    pg = parser.add_argument_group("PostgreSQL: several workers share the database")
    pg.add_argument("--postgresql", action="store_true",
                    help="run --workers workers on PostgreSQL (a throwaway cluster, or --url)")
    pg.add_argument("--url", default=None,
                    help="postgresql:// URL of an empty database to use instead")
    pg.add_argument("--workers", type=int, default=4)
    pg.add_argument("--stages", action="append", default=None, metavar="STAGES",
                    help="one worker's --stages ('all' or e.g. classify), repeated, cycled over "
                    "the workers (default: all, all, classify, collect,dispatch)")
    pg.add_argument("--lease-seconds", type=float, default=15,
                    help="lease length in the workers (production: 300)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="listener-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.postgresql or args.url:
        from tests.crash import pg_harness

        args.workdir = workdir
        return pg_harness.main(args)
    started = time.monotonic()
    with Harness(workdir, args.seed, args.period) as harness:
        totals = harness.run(args.kills)
        print(harness.report(totals))
        passed = totals.ok and harness.tracebacks() == 0
    print(f"{args.kills} kills in {time.monotonic() - started:.0f}s; "
          f"{'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
