"""Daemon memory under steady load: resident set size once a minute, its maximum and its slope.

    python bench/daemon_rss.py [--minutes 60] [--rate 30] [--interval 5] [--backend NAME]

The real daemon (``listener run``, a subprocess, default model on CPU) polls a fake Hacker News
Search API that publishes ``--rate`` stories a minute (about half negative) and alerts a fake
Slack webhook; sources and stages run every ``--interval`` seconds. Every ``--sample`` seconds
the daemon's ``VmRSS`` is read from ``/proc/<pid>/status``, with how many posts and alerts it
has handled so far. At the end: the maximum, ``VmHWM`` (the peak), and the slope of RSS in
MB/hour over the samples after the first fifth of the run (start-up and model load excluded).
Target (issue 7): ≤ 400 MB after an hour, and not growing. ``--backend`` sets
``classifier.backend`` (e.g. ``onnx``) where the config has that key.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from tests.crash import daemon  # noqa: E402
from tests.crash.stream import PostStream  # noqa: E402
from tests.fakes.slack import FakeSlackWebhook  # noqa: E402


def status_mb(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` field (``VmRSS``, ``VmHWM``) in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise ValueError(f"no {field} for pid {pid}")


def counts(database: Path) -> tuple[int, int]:
    """Posts stored and alerts delivered so far."""
    conn = daemon.read_db(database)
    try:
        row = conn.execute("SELECT (SELECT count(*) FROM posts),"
                           " (SELECT count(*) FROM alerts WHERE status = 'delivered')").fetchone()
        return int(row[0]), int(row[1])
    except Exception:  # the schema is not there yet
        return 0, 0
    finally:
        conn.close()


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB/hour."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    num = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    den = sum((t - mean_t) ** 2 for t, _ in samples)
    return num / den * 3600 if den else float("nan")


def run(minutes: float, rate: float, interval: float, sample: float, backend: str | None,
        workdir: Path) -> list[tuple[float, float]]:
    with PostStream(seed=5, period=60 / rate) as stream, FakeSlackWebhook() as slack:
        config = workdir / "config.yaml"
        config.write_text(daemon.config_yaml(
            stream.base_url, None, intervals=daemon.Intervals(interval, interval),
            slack_min_interval=1.0, backend=backend))
        proc = daemon.start(config, daemon.daemon_env(slack.url), workdir / "daemon.log")
        stream.begin()
        started, series = time.monotonic(), []
        print(f"{'minute':>6} {'RSS MB':>7} {'posts':>6} {'alerts':>6}", flush=True)
        try:
            while (elapsed := time.monotonic() - started) < minutes * 60 + sample / 2:
                if proc.poll() is not None:
                    raise SystemExit(f"the daemon exited ({proc.returncode}); see "
                                     f"{workdir / 'daemon.log'}")
                rss = status_mb(proc.pid, "VmRSS")
                posts, alerts = counts(workdir / "listener.db")
                series.append((elapsed, rss))
                print(f"{elapsed / 60:>6.1f} {rss:>7.0f} {posts:>6} {alerts:>6}", flush=True)
                time.sleep(max(0.0, sample - (time.monotonic() - started - elapsed)))
            peak = status_mb(proc.pid, "VmHWM")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    print(f"VmHWM (peak RSS) {peak:.0f} MB")
    return series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=30, help="new stories per minute")
    parser.add_argument("--interval", type=float, default=5, help="seconds between stage runs")
    parser.add_argument("--sample", type=float, default=60, help="seconds between samples")
    parser.add_argument("--backend", default=None, help="classifier.backend (e.g. onnx)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="listener-rss-") as tmp:
        series = run(args.minutes, args.rate, args.interval, args.sample, args.backend, Path(tmp))
    steady = [s for s in series if s[0] >= args.minutes * 60 / 5]
    print(f"max RSS {max(m for _, m in series):.0f} MB; slope after the first fifth "
          f"{slope_per_hour(steady):+.1f} MB/hour over {len(steady)} samples "
          f"(target: ≤ 400 MB, not growing)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
