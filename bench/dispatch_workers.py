"""Dispatch to ONE slow destination with 1, 2, 4, 8 worker processes on PostgreSQL (issue 17).

    python bench/dispatch_workers.py [--alerts 240] [--workers 1 2 4 8] [--latency 0.2]

A fake webhook receiver on 127.0.0.1 (``tests/fakes/webhook_receiver.py``, the real HTTP server
the tests use) answers every request after ``--latency`` seconds. For each worker count, a
fresh database of a throwaway PostgreSQL cluster (``tests.pg_server.Server``, or
``LISTENER_TEST_POSTGRES_URL``) gets ``--alerts`` pending alerts for that one destination (no
pacing: ``min_interval`` 0), then that many ``listener run --once --stages dispatch``
processes — the real command, the real runtime, the real webhook sink, real HTTP — start at
once and drain it: each claims the groups it sends (``storage/claims.py``).

Printed per worker count: alerts/s over the drain (the receiver's first request to its last
answer: process start-up is not dispatch) and over the wall time (spawn to the last process's
exit), the speed-up over one worker, how the alerts were shared among the processes, and the
check that every alert arrived exactly once (the receiver counts each ``X-Listener-Id``; the
outbox has every alert delivered at attempt 1, no lease left). And the machine: cores, load
average before and after each run, PostgreSQL's version. The processes mostly wait on the
200 ms answers, so even on 2 cores eight of them should scale.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from listener.core.models import Page, Post, Score, utcnow  # noqa: E402
from storage import db as store  # noqa: E402
from storage import outbox  # noqa: E402
from storage.tx import connect  # noqa: E402
from tests.fakes.webhook_receiver import FakeWebhookReceiver  # noqa: E402
from tests.pg_server import Server  # noqa: E402

SECRET = "whsec-bench-0123456789abcdef"


class TimedReceiver(FakeWebhookReceiver):
    """The webhook fake, noting when each request arrived (monotonic)."""

    def __init__(self) -> None:
        super().__init__(SECRET)
        self.arrived: list[float] = []
        self._times = threading.Lock()

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> Any:
        with self._times:
            self.arrived.append(time.monotonic())
        return super().handle(method, path, query, headers, body)


def config_yaml(hook_url: str) -> str:
    return f"""\
storage:
  url: {{"$env": BENCH_DATABASE_URL}}
destinations:
  - type: webhook
    name: hook
    url: {hook_url}
    secret: {SECRET}
    timeout: 10
    min_interval: 0
    allow_insecure_http: true
    allow_private_network: true
dispatch:
  once_max_wait: 0
  send_deadline: 30
"""


def seed(url: str, count: int) -> list[str]:
    """``count`` scored posts, each with one pending alert for ``hook``; their alert ids."""
    db = connect(url)
    try:
        now = utcnow()
        posts = [Post("x", str(i), f"post {i}: the acme cloud is down", now, source="bench",
                      author=f"user{i}") for i in range(count)]
        store.store_page(db, "bench", Page(posts=posts), now)
        score = Score("negative", 0.9, 0.05, 0.05, 0.8, "bench", "1")
        rows = store.posts_to_score(db, "bench", "1", count)
        store.save_scores(db, [(r.id, score, None) for r in rows], now)
        evaluated = store.scores_to_evaluate(db, count)
        outbox.enqueue(db, [outbox.NewAlert("r", "hook", r.post_id, r.score_id,
                                            f"x:{r.post.platform_id}") for r in evaluated],
                       [r.score_id for r in evaluated], now)
        return [outbox.alert_id("r", f"x:{i}", "hook") for i in range(count)]
    finally:
        db.close()


def check(url: str) -> dict[str, Any]:
    """What the outbox says after the run: outcomes, leases left, items per worker run."""
    db = connect(url)
    try:
        outcomes = Counter((r["status"], r["attempts"]) for r in db.query(
            "SELECT status, attempts FROM alerts"))
        left = db.execute("SELECT count(*) FROM leases").fetchone()[0]
        shares = sorted((int(r["items"] or 0) for r in db.query(
            "SELECT items FROM runs WHERE stage = 'dispatch'")), reverse=True)
        return {"outcomes": dict(outcomes), "leases": left, "shares": shares}
    finally:
        db.close()


def run(server: Server, workers: int, alerts: int, latency: float, workdir: Path
        ) -> dict[str, Any]:
    url = server.new_database()
    ids = seed(url, alerts)
    with TimedReceiver() as hook:
        hook.latency = latency
        config = workdir / f"config-{workers}.yaml"
        config.write_text(config_yaml(hook.url), encoding="utf-8")
        env = dict(os.environ, BENCH_DATABASE_URL=url, HF_HUB_OFFLINE="1")
        env.pop("LISTENER_CONFIG", None)
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        logs = [(workdir / f"w{workers}-{i}.log").open("w") for i in range(workers)]
        procs = [subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--once", "--stages", "dispatch", "-c",
             str(config)], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            for log in logs]
        codes = [p.wait(timeout=3600) for p in procs]
        wall = time.monotonic() - started
        for log in logs:
            log.close()
        arrivals = Counter(hook.arrivals)
        first, last = min(hook.arrived), max(hook.arrived) + latency
    outcome = check(url)
    once = (sorted(arrivals) == sorted(ids) and set(arrivals.values()) == {1}
            and outcome["outcomes"] == {("delivered", 1): alerts} and outcome["leases"] == 0
            and codes == [0] * workers)
    return {"workers": workers, "drain": last - first, "wall": wall, "once": once,
            "codes": codes, "shares": outcome["shares"], "outcomes": outcome["outcomes"],
            "requests": sum(arrivals.values()), "load": (load_before, os.getloadavg()[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=240, help="alerts queued per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--latency", type=float, default=0.2,
                        help="seconds the receiver takes to answer each request")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    server = Server()
    server.start()
    try:
        version = _pg_version(server)
        print(f"{platform.node()}: {cores} CPU cores, Python {platform.python_version()}, "
              f"{version}; load average {os.getloadavg()[0]:.2f} "
              f"({time.strftime('%Y-%m-%d %H:%M')})")
        print(f"{args.alerts} alerts to one webhook destination answering in "
              f"{args.latency * 1000:.0f} ms; `listener run --once --stages dispatch` × N\n")
        print(f"{'workers':>7} {'drain s':>8} {'alerts/s':>9} {'speed-up':>8} {'wall s':>7} "
              f"{'alerts/s':>9}  {'exactly once':<12} {'load 1m before→after':<21} per worker")
        base = None
        ok = True
        with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
            for workers in args.workers:
                r = run(server, workers, args.alerts, args.latency, Path(tmp))
                rate = args.alerts / r["drain"]
                base = base or rate
                ok = ok and r["once"]
                print(f"{workers:>7} {r['drain']:>8.2f} {rate:>9.1f} {rate / base:>7.2f}× "
                      f"{r['wall']:>7.2f} {args.alerts / r['wall']:>9.1f}  "
                      f"{'yes' if r['once'] else 'NO':<12} "
                      f"{r['load'][0]:>5.2f} → {r['load'][1]:<13.2f} "
                      f"{'/'.join(str(s) for s in r['shares'])}")
                if not r["once"]:
                    print(f"        requests {r['requests']}, outbox {r['outcomes']}, "
                          f"exit codes {r['codes']}")
        ideal = 1 / args.latency
        print(f"\none sender's ceiling: {ideal:.1f} alerts/s (1 / latency); drain = the "
              "receiver's first request to its last answer; wall = spawn to last exit")
        return 0 if ok else 1
    finally:
        server.stop()


def _pg_version(server: Server) -> str:
    import psycopg

    with psycopg.connect(server.url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


if __name__ == "__main__":
    raise SystemExit(main())
