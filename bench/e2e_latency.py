"""End-to-end latency: a post served by the platform → its alert received by Slack.

    python bench/e2e_latency.py [--only fast default] [--alerts 30] [--period 2]

The real daemon (``listener run``, a subprocess, default model on CPU) polls a fake Hacker News
Search API whose stories keep arriving (one every ``--period`` seconds, about half of them
negative) and alerts a fake Slack webhook (Slack's own pacing, ``min_interval: 1``). The fakes
run in this process and time what they see: when the platform first served each story, when
Slack received each alert. Two runs:

- ``fast``: every interval 1 s (sources and stages); stops after ``--alerts`` alerts;
- ``default``: the config's defaults (poll every 300 s; classify and rules every 30 s, dispatch
  every 10 s); stops after the first poll that finds new stories has been alerted (~6 minutes).

Each waits until the model is loaded (a first classify run) before the first story appears, so
start-up is not counted. Figures: p50 and p95 from "first served" and from "collected"
(``posts.collected_at``, which is stored to the second: add up to 1 s of noise), and the median
time each stage added, from the database's own timestamps (to the second as well). The target
(issue 7): p95 ≤ 5 s after collection at 1-second intervals.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from tests.crash import daemon  # noqa: E402
from tests.crash.stream import PostStream  # noqa: E402
from tests.fakes.slack import FakeSlackWebhook  # noqa: E402
from tests.fakes.slack import ScriptedResponse as SlackAnswer  # noqa: E402

MODES = {"fast": daemon.Intervals(1, 1), "default": daemon.Intervals(None, None)}
SLACK_ALERT = "alert `"


class TimedSlack(FakeSlackWebhook):
    """The Slack fake, noting when each request arrived (time.time())."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> SlackAnswer:
        with self._lock:
            self.arrived.append(time.time())
            return super().handle(method, path, query, headers, body)


def run(mode: str, alerts: int, period: float, workdir: Path) -> dict[str, Any]:
    """One daemon run; returns the per-alert latencies and the stage breakdown."""
    with PostStream(seed=11, period=period) as stream, TimedSlack() as slack:
        config = workdir / "config.yaml"
        config.write_text(daemon.config_yaml(stream.base_url, None, intervals=MODES[mode],
                                             slack_min_interval=1.0))
        proc = daemon.start(config, daemon.daemon_env(slack.url), workdir / "daemon.log")
        try:
            _wait(proc, lambda: _model_loaded(workdir), 600, "the model to load")
            stream.begin()
            if mode == "fast":
                _wait(proc, lambda: len(slack.requests) >= alerts, 900, f"{alerts} alerts")
            else:  # every story of the first productive poll, alerted
                _wait(proc, lambda: _all_alerted(workdir, len(slack.requests)), 900,
                      "the first poll's alerts")
            served = dict(stream.first_served)
            arrived = list(zip(slack.arrived, (r.body.decode() for r in slack.requests),
                               strict=True))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    return _measure(workdir / "listener.db", served, arrived)


def _wait(proc: Any, test: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not test():
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"gave up waiting for {what}; see the daemon log")
        time.sleep(0.2)


def _query(workdir: Path, sql: str) -> list[Any]:
    path = workdir / "listener.db"
    if not path.exists():
        return []
    conn = daemon.read_db(path)
    try:
        return conn.execute(sql).fetchall()
    except Exception:  # tables not there yet
        return []
    finally:
        conn.close()


def _model_loaded(workdir: Path) -> bool:
    return bool(_query(workdir, "SELECT 1 FROM runs WHERE stage = 'classify' AND status = 'ok'"))


def _all_alerted(workdir: Path, received: int) -> bool:
    """Stories were collected, all went through the rules, and Slack got every alert."""
    rows = _query(workdir, "SELECT (SELECT count(*) FROM posts),"
                  " (SELECT count(*) FROM posts p WHERE NOT EXISTS (SELECT 1 FROM scores s"
                  "   WHERE s.post_id = p.id AND s.rules_at IS NOT NULL)),"
                  " (SELECT count(*) FROM alerts)")
    if not rows:
        return False
    posts, waiting, alerts = rows[0]
    return posts > 0 and waiting == 0 and received >= alerts > 0


def _measure(database: Path, served: dict[str, float],
             arrived: list[tuple[float, str]]) -> dict[str, Any]:
    conn = daemon.read_db(database)
    rows = {r["id"]: r for r in conn.execute(
        "SELECT a.id, p.platform_id, p.collected_at, s.scored_at, a.created_at AS alerted_at,"
        " a.delivered_at FROM alerts a JOIN posts p ON p.id = a.post_id"
        " JOIN scores s ON s.id = a.score_id")}
    conn.close()
    from_served, from_collected, stages = [], [], {k: [] for k in STAGES}
    for at, body in arrived:
        start = body.find(SLACK_ALERT)
        row = rows.get(body[start + len(SLACK_ALERT):start + len(SLACK_ALERT) + 32])
        if start < 0 or row is None:
            continue
        from_served.append(at - served[row["platform_id"]])
        from_collected.append(at - _stamp(row["collected_at"]))
        marks = [served[row["platform_id"]], *(_stamp(row[k]) for k in STAGE_COLUMNS), at]
        for name, (a, b) in zip(STAGES, zip(marks, marks[1:], strict=False), strict=True):
            stages[name].append(b - a)
    return {"alerts": len(from_served), "served": from_served, "collected": from_collected,
            "stages": {k: statistics.median(v) for k, v in stages.items() if v}}


STAGE_COLUMNS = ("collected_at", "scored_at", "alerted_at", "delivered_at")
STAGES = ("served → stored", "stored → scored", "scored → alert queued", "queued → delivered",
          "delivered → Slack saw it")


def _stamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--alerts", type=int, default=30, help="fast run: alerts to measure")
    parser.add_argument("--period", type=float, default=2.0, help="seconds between new stories")
    args = parser.parse_args(argv)
    print(f"{'intervals':<9} {'alerts':>6}  {'from served p50/p95':>20}  "
          f"{'from collected p50/p95':>23}")
    breakdowns = []
    for mode in args.only:
        with tempfile.TemporaryDirectory(prefix="listener-latency-") as tmp:
            r = run(mode, args.alerts, args.period, Path(tmp))
        print(f"{mode:<9} {r['alerts']:>6}  {_pct(r['served'], .5):>9.1f} / "
              f"{_pct(r['served'], .95):>5.1f} s  {_pct(r['collected'], .5):>12.1f} / "
              f"{_pct(r['collected'], .95):>5.1f} s", flush=True)
        breakdowns.append((mode, r["stages"]))
    for mode, stages in breakdowns:
        print(f"\nmedian time per step ({mode}; database stamps are whole seconds):")
        for name, seconds in stages.items():
            print(f"  {name:<26} {seconds:6.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
