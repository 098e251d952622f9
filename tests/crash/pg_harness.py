"""The crash harness on PostgreSQL: several workers share one database; SIGKILL one at a time.

    python -m tests.crash.harness --postgresql --workers 4 --kills 100 --seed 7 [--url URL]

The same fakes, config and count as the single-daemon mode (:mod:`tests.crash.harness`), with
``storage: {url: {"$env": CRASH_DATABASE_URL}}`` naming a database of a throwaway cluster
(:class:`tests.pg_server.Server`) or ``--url``. ``--workers N`` ``listener run`` processes run
side by side, all the time; each cycle picks an aim (seeded, as the SQLite mode does), waits for
its moment in whichever worker reaches it first, SIGKILLs *that* worker and restarts it at once
(as systemd's ``Restart=`` would), while the others keep working:

- ``random``: a seeded-random worker, after a seeded delay of 0.2–8 s;
- ``collect``: the platform received a request; the victim is the holder of ``source:hn``;
- ``classify``: a live worker holds a claim on posts it is scoring (``classify:…`` leases);
- ``rules``: work waits for the rules and a live worker holds ``stage:rules``, its run going;
- ``dispatch``: Slack or Zendesk received a request; the victim is sending to it: it holds
  ``dispatch:slack`` (a paced destination has one sender at a time) or a claim on an alert to
  Zendesk (``alert:<id>``: every worker sends to an unpaced one, each claiming its alerts);
- ``ticket-window``: Zendesk creates the ticket and holds its answer; a worker holding a claim
  on a Zendesk alert dies between the remote's effect and our record of it.

When a moment does not come within 25 s, the cycle's seeded-random worker is killed anyway.
At the end the stream stops, the workers finish what is left (a dead worker's claims expire
and are taken over), each gets SIGTERM and must exit 0, and :mod:`tests.crash.verify` counts,
adding what the workers left: leases still held by a cleanly stopped worker (must be 0), leases
left by killed ones, and interrupted runs. A traceback in any worker's log fails the run.

The mix of stages (``--stages``, one per worker, cycled): ``all, all, classify,
collect,dispatch`` — two full workers plus a classify-only one (the GPU machine of README
"Scaling out") and a collect-and-dispatch one (a small VM). Every stage stays on at least two
workers, so one kill never leaves a stage without one, and each kind of lease (a source, the
rules and reports stages, a destination, a batch of posts) changes hands between specialised
and general workers, not only between identical ones.

What a kill interrupted: the ``runs`` rows left ``running`` by the killed process. ``runs`` has
no worker column, so the harness starts each worker through :mod:`tests.crash.worker`, which
appends every run it starts and finishes (with its pid) to a marks file; the victim's runs are
those it started and the database still shows ``running`` after its death. The leases it held
are listed too (exact: the lease owner is the worker id). On PostgreSQL nobody closes a killed
worker's runs (only a single SQLite daemon may assume every open run is a dead one's): they stay
``running``, and the count reports them as interrupted rather than failing.

Leases last ``--lease-seconds`` (15 s; production: 300 s, ``listener.workers.LEASE_SECONDS``):
see :mod:`tests.crash.worker` for why. Claims on alerts to an unpaced destination (Zendesk)
last ``max(LEASE_SECONDS, 2 × dispatch.send_deadline)``, so the config sets ``send_deadline``
to half the lease (7.5 s: an attempt here takes at most the 2-s timeout of each request).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any, TypeVar

from tests.crash import daemon
from tests.crash.harness import (
    AIM_TIMEOUT,
    AIMS,
    QUIET_SQL,
    WEIGHTS,
    WORK_FOR,
    HarnessError,
    _alive_for,
    quiet,
)
from tests.crash.stream import PostStream
from tests.crash.verify import Totals, count, lease_kind, table
from tests.fakes.slack import FakeSlackWebhook
from tests.fakes.zendesk_api import FakeZendesk

MIX = ("all", "all", "classify", "collect,dispatch")
ALL = "collect,classify,rules,dispatch,reports"
WORKER_SCRIPT = Path(__file__).with_name("worker.py")
URL_ENV = "CRASH_DATABASE_URL"
T = TypeVar("T")


def mix(workers: int, given: Sequence[str] = ()) -> list[str]:
    """The stages of each of ``workers`` workers: ``given`` (or :data:`MIX`) cycled."""
    pool = list(given) or list(MIX)
    return [ALL if s == "all" else s for s in (pool[i % len(pool)] for i in range(workers))]


@dataclass
class Worker:
    """One process of a worker slot (a slot is restarted after each kill)."""

    slot: int
    stages: str
    proc: Popen[bytes]
    started: float  # time.time() at start: the marks' clock

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    @property
    def name(self) -> str:
        return f"w{self.slot}"


@dataclass(frozen=True)
class PgKill:
    number: int
    aim: str
    slot: int
    stages: str
    hit: str  # the stage(s) of the runs the victim left running
    leases: tuple[str, ...]  # what it held when it died (kinds, see verify.lease_kind)
    alive_s: float
    aimed: bool  # False: the moment never came within AIM_TIMEOUT; a random worker died


@dataclass
class Marks:
    """The marks file of all workers: which process started and finished which run."""

    path: Path
    _offset: int = 0
    started: dict[int, tuple[int, str]] = field(default_factory=dict)  # run → (pid, stage)
    finished: dict[int, tuple[float, bool]] = field(default_factory=dict)  # run → (t, error)
    models: dict[int, float] = field(default_factory=dict)  # pid → when its model was loaded

    def read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self._offset += end
        for line in data[:end].decode().splitlines():
            pid, run, event, stage, _target, stamp, error = line.split()
            if event == "start":
                self.started[int(run)] = (int(pid), stage)
            elif event == "finish":
                self.finished[int(run)] = (float(stamp), error == "1")
            else:
                self.models[int(pid)] = float(stamp)

    def runs_of(self, pid: int) -> dict[int, str]:
        self.read()
        return {run: stage for run, (p, stage) in self.started.items() if p == pid}

    def model_loaded(self, pid: int) -> float | None:
        """When ``pid`` had loaded its model (None: not yet, or it runs no classify)."""
        self.read()
        return self.models.get(pid)


class PgHarness:
    """Fakes, config, a database and ``workers`` worker processes; a context manager."""

    def __init__(self, workdir: Path, seed: int, url: str, workers: int = 4,
                 stages: Sequence[str] = (), period: float = 1.0, lease_seconds: float = 15,
                 say: Callable[[str], None] = print) -> None:
        self.workdir, self.url, self.say = workdir, url, say
        self.rng = random.Random(seed)
        self.stream = PostStream(seed, period)
        self.slack = FakeSlackWebhook(delay=0.05)
        self.zendesk = FakeZendesk()
        self.stages = mix(workers, stages)
        self.lease_seconds = lease_seconds
        self.kills: list[PgKill] = []
        self.ready_s: list[float] = []  # start → model loaded, per process that loaded one
        self.config = workdir / "config.yaml"
        self.marks = Marks(workdir / "runs.marks")
        self.live: list[Worker] = []
        self.dead: list[Worker] = []
        self.load: list[float] = []  # 1-minute load average, sampled each cycle
        self._reader: Any = None

    def log_path(self, slot: int) -> Path:
        return self.workdir / f"worker-{slot}.log"

    def __enter__(self) -> PgHarness:
        import psycopg

        self._reader = psycopg.connect(self.url, autocommit=True)
        if self._query("SELECT 1 FROM posts LIMIT 1"):  # no table yet: [] (the workers make it)
            raise HarnessError("the database is not empty: give the harness a fresh one")
        for fake in (self.stream, self.slack, self.zendesk):
            fake.start()
        self.config.write_text(daemon.config_yaml(
            self.stream.base_url, self.zendesk.base_url, intervals=daemon.Intervals(1, 1),
            database_url_env=URL_ENV, send_deadline=self.lease_seconds / 2))
        self.env = dict(daemon.daemon_env(self.slack.url, self.zendesk.email,
                                          self.zendesk.token),
                        CRASH_DATABASE_URL=self.url, CRASH_RUN_MARKS=str(self.marks.path),
                        CRASH_LEASE_SECONDS=f"{self.lease_seconds:g}")
        self.stream.begin()
        self.live = [self._start(slot, stages) for slot, stages in enumerate(self.stages)]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for worker in self.live:  # only after a failure: settle stops them cleanly
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
        for fake in (self.stream, self.slack, self.zendesk):
            fake.stop()
        if self._reader is not None:
            self._reader.close()

    def _start(self, slot: int, stages: str) -> Worker:
        with self.log_path(slot).open("ab") as out:
            proc = Popen([sys.executable, str(WORKER_SCRIPT), "run", "-c", str(self.config),
                          "--stages", stages], env=self.env, stdout=out,
                         stderr=out.fileno(), cwd=self.workdir)
        return Worker(slot, stages, proc, time.time())

    # -- the kill cycles -------------------------------------------------------------------

    def run(self, kills: int, settle_timeout: float = 300) -> Totals:
        for number in range(1, kills + 1):
            aim = self.rng.choices(AIMS, WEIGHTS)[0]
            kill = self._cycle(number, aim)
            self.kills.append(kill)
            held = f", held {', '.join(kill.leases)}" if kill.leases else ""
            self.say(f"kill {number}/{kills}: aimed at {aim}{'' if kill.aimed else ' (missed)'}"
                     f", w{kill.slot} ({kill.stages}) hit {kill.hit}{held} after "
                     f"{kill.alive_s:.1f}s")
        return self.settle(settle_timeout)

    def _cycle(self, number: int, aim: str) -> PgKill:
        jitter = self.rng.uniform(0, 1)  # drawn whatever the aim: the plan stays seeded
        fallback = self.live[self.rng.randrange(len(self.live))]
        self.load.append(os.getloadavg()[0])
        self._check_alive(number)
        victim = self._aim(aim, jitter, fallback)
        aimed = victim is not None
        victim = victim or fallback
        victim.proc.kill()
        victim.proc.wait(timeout=30)
        alive_s = time.time() - victim.started
        hit, held = self._hit(victim)
        self.live[self.live.index(victim)] = self._start(victim.slot, victim.stages)
        self.dead.append(victim)
        return PgKill(number, aim, victim.slot, victim.stages, hit, held, alive_s, aimed)

    def _check_alive(self, number: int) -> None:
        for worker in self.live:
            if worker.proc.poll() is not None:
                raise HarnessError(
                    f"kill {number}: worker {worker.name} exited by itself with status "
                    f"{worker.proc.returncode}; see {self.log_path(worker.slot)}")

    def _aim(self, aim: str, jitter: float, fallback: Worker) -> Worker | None:
        """Wait for the aimed moment; the worker living it, or None when it did not come."""
        if aim == "random":
            _alive_for(fallback.proc, 0.2 + 7.8 * jitter)
            return fallback
        if aim == "collect":
            victim = self._after_request((self.stream,), lambda _fake: self._holder("source:hn"))
            time.sleep(0.05 * jitter)
            return victim
        if aim == "classify":  # a batch claimed and being scored: milliseconds
            return self._until(lambda: self._holder("classify:%"), every=0.001)
        if aim == "rules":  # the lease alone is held a moment before and after the run
            if not self._until(lambda: bool(self._query(WORK_FOR["rules"])) or None,
                               every=0.01):
                return None
            base = self._last_run_id()
            return self._until(lambda: self._holder("stage:rules", running=("rules", base)),
                               every=0.0005)
        if aim == "dispatch":
            victim = self._after_request((self.slack, self.zendesk), self._sender)
            time.sleep(0.04 * jitter)
            return victim
        # ticket-window: the ticket exists, its answer is held back, the sender dies waiting
        self.zendesk.enqueue(delay=3, create=True)
        return self._after_request((self.zendesk,), self._sender)

    def _sender(self, fake: Any) -> Worker | None:
        """A live worker sending to ``fake``'s destination: the holder of ``dispatch:<name>``
        (a paced destination, Slack: one sender at a time) or of a claim on one of its alerts
        (an unpaced one, Zendesk: every worker sends, each claiming the alerts it sends)."""
        name = "slack" if fake is self.slack else "tickets"
        pids = {r[0] for r in self._query(
            "SELECT w.pid FROM leases l JOIN workers w ON w.id = l.owner"
            " WHERE l.name = 'dispatch:' || %s OR (l.name LIKE 'alert:%%' AND EXISTS"
            " (SELECT 1 FROM alerts a WHERE 'alert:' || a.id = l.name AND a.destination = %s))",
            name, name)}
        return next((w for w in self.live if w.pid in pids and w.proc.poll() is None), None)

    def _after_request(self, fakes: tuple[Any, ...], holder: Callable[[Any], Worker | None]
                       ) -> Worker | None:
        """``holder(fake)`` (the live worker doing the work) just after ``fake`` received a
        request; another request is waited for when the holder already let go."""
        seen = [len(f.requests) for f in fakes]

        def test() -> Worker | None:
            for i, fake in enumerate(fakes):
                now = len(fake.requests)
                if now > seen[i]:
                    seen[i] = now
                    found = holder(fake)
                    if found is not None:
                        return found
            return None

        return self._until(test, every=0.002)

    def _holder(self, pattern: str, running: tuple[str, int] | None = None) -> Worker | None:
        """The live worker holding a lease whose name is LIKE ``pattern``; with ``running``
        (stage, run id), only while a run of that stage started after that id is running
        (the lease holder's: it is the only one running the stage)."""
        stage, base = running or ("", -1)
        pids = {r[0] for r in self._query(
            "SELECT w.pid FROM leases l JOIN workers w ON w.id = l.owner"
            " WHERE l.name LIKE %s AND (%s = '' OR EXISTS (SELECT 1 FROM runs r"
            " WHERE r.id > %s AND r.stage = %s AND r.status = 'running'))",
            pattern, stage, base, stage)}
        return next((w for w in self.live if w.pid in pids and w.proc.poll() is None), None)

    def _until(self, test: Callable[[], T | None], every: float,
               timeout: float = AIM_TIMEOUT) -> T | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = test()
            if found:
                return found
            time.sleep(every)
        return None

    def _hit(self, victim: Worker) -> tuple[str, tuple[str, ...]]:
        """The stages of the runs ``victim`` left running, and the leases it held."""
        runs = self.marks.runs_of(victim.pid)
        held = self._query("SELECT l.name FROM leases l JOIN workers w ON w.id = l.owner"
                           " WHERE w.pid = %s AND w.started_at >= %s",
                           victim.pid, _iso(victim.started - 5))
        kinds = Counter(lease_kind(r[0]) for r in held)
        leases = tuple(f"{k} ×{n}" if n > 1 else k for k, n in sorted(kinds.items()))
        if not runs:
            return "start-up", leases
        running = {r[0] for r in self._query(
            "SELECT id FROM runs WHERE id = ANY(%s) AND status = 'running'", list(runs))}
        stages = sorted({runs[r] for r in running})
        if not stages:
            return "between stages", leases
        loaded = self.marks.model_loaded(victim.pid) is not None
        return " + ".join("classify (model load)" if s == "classify" and not loaded else s
                          for s in stages), leases

    # -- the database, read beside the workers ---------------------------------------------

    def _last_run_id(self) -> int:
        rows = self._query("SELECT coalesce(max(id), 0) FROM runs")
        return int(rows[0][0]) if rows else 0

    def _query(self, sql: str, *params: Any) -> list[Any]:
        import psycopg

        try:
            return list(self._reader.execute(sql, params or None).fetchall())
        except psycopg.errors.UndefinedTable:  # the schema is not there yet
            return []

    # -- the end ---------------------------------------------------------------------------

    def settle(self, timeout: float) -> Totals:
        """Stop the stream, let the workers finish everything (a dead worker's leases expire
        and are taken over), SIGTERM each, count."""
        created = self.stream.freeze()
        started = time.monotonic()
        settled = self._until(lambda: self._quiet(len(created)) or None, every=0.5,
                              timeout=timeout)
        self._check_alive(len(self.kills) + 1)
        for worker in self.live:
            worker.proc.send_signal(signal.SIGTERM)
        statuses = {w.name: w.proc.wait(timeout=60) for w in self.live}
        if not settled or any(statuses.values()):
            raise HarnessError(f"the workers did not settle within {timeout:g}s (exit statuses "
                               f"{statuses}); see {self.workdir}/worker-*.log")
        self.say(f"settled in {time.monotonic() - started:.1f}s")
        for worker in self.dead + self.live:
            if (ready := self.marks.model_loaded(worker.pid)) is not None:
                self.ready_s.append(ready - worker.started)
        slack = [r.body for r in self.slack.requests if r.target == self.slack.path]
        return count(self.url, created, self.stream.first_served, slack, self.zendesk.tickets)

    def _quiet(self, created: int) -> bool:
        return quiet(self._query(QUIET_SQL), created)

    def report(self, totals: Totals) -> str:
        aims = Counter(k.aim for k in self.kills)
        hits = Counter(k.hit for k in self.kills)
        stages = Counter(stage for k in self.kills for stage in k.hit.split(" + "))
        slots = Counter(f"w{k.slot} ({k.stages})" for k in self.kills)
        held = Counter(lease.split(" ×")[0] for k in self.kills for lease in k.leases)
        ready = sorted(self.ready_s)
        missed = sum(not k.aimed for k in self.kills)
        lines = [
            table(totals, aims, hits),
            "kills in progress in each stage (one kill can interrupt several stages running "
            "in parallel threads):", *(f"  {stage}: {n}" for stage, n in sorted(stages.items())),
            "kills per worker:", *(f"  {slot}: {n}" for slot, n in sorted(slots.items())),
            "kills whose victim held a lease, by kind (claims: posts it scored, alerts it sent):",
            *(f"  {kind}: {n}" for kind, n in sorted(held.items())),
            f"aimed moments that never came (a random worker killed instead): {missed}",
        ]
        if ready:
            lines.append(f"process start → model loaded: median "
                         f"{ready[len(ready) // 2]:.1f}s, max {ready[-1]:.1f}s "
                         f"({len(ready)} processes)")
        if self.load:
            lines.append(f"load average (1 min) during the kills: median "
                         f"{sorted(self.load)[len(self.load) // 2]:.1f}, max {max(self.load):.1f}"
                         f" ({os.cpu_count()} CPUs)")
        logs = self.tracebacks_by_log()
        lines.append(f"tracebacks in the workers' logs: {sum(logs.values())} ("
                     + ", ".join(f"{p.name} {n}" for p, n in logs.items()) + ")")
        return "\n".join(lines)

    def tracebacks_by_log(self) -> dict[Path, int]:
        return {self.log_path(slot): self.log_path(slot).read_text(errors="replace")
                .count("Traceback") if self.log_path(slot).exists() else 0
                for slot in range(len(self.stages))}

    def tracebacks(self) -> int:
        """Errors a worker logged with a traceback: a SIGKILL leaves none, a bug does."""
        return sum(self.tracebacks_by_log().values())


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def main(args: Any) -> int:
    """``harness --postgresql``: a throwaway cluster (or ``--url``), the kills, the count."""
    from tests.pg_server import Server

    def stop(signum: int, _frame: object) -> None:  # SIGTERM: workers and cluster go too
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    workdir = args.workdir
    server = None
    url = args.url
    if not url:
        server = Server()
        server.start()
        url = server.new_database()
    started = time.monotonic()
    try:
        with PgHarness(workdir, args.seed, url, args.workers, args.stages or (), args.period,
                       args.lease_seconds) as harness:
            print(f"{len(harness.stages)} workers: "
                  + ", ".join(f"w{i} {s}" for i, s in enumerate(harness.stages))
                  + f"; leases {args.lease_seconds:g}s; logs in {workdir}")
            totals = harness.run(args.kills)
            print(harness.report(totals))
            passed = totals.ok and harness.tracebacks() == 0
    finally:
        if server is not None:
            server.stop()
    print(f"{args.kills} kills in {time.monotonic() - started:.0f}s; "
          f"{'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1
