"""Soak: the real daemon against servers misbehaving in every way at once (issue 14):

    python bench/soak.py [--minutes 10] [--seed 7]

Sources: a Hacker News stream (a new story every 2 s, half of them negative: the healthy
source) and an RSS feed that drips, hangs, resets, answers 5xx and 429 (with and without
Retry-After), malformed and 64 MiB bodies, and redirects to the cloud metadata address and to
another loopback port. Destinations: a healthy signed webhook (the one whose delay is measured),
a Slack webhook and a Zendesk account with the same chaos (Zendesk also loses answers after
creating tickets). Every negative story alerts all three.

For ``--minutes`` the chaos runs; then it stops (the outage is over), the daemon gets a minute
to deliver what is left, and SIGTERM ends it. Printed: posts served / stored / lost; alerts due /
delivered / lost / duplicated per destination (Slack webhooks may duplicate a message whose
answer was lost — the documented window; Zendesk and the webhook receiver dedupe by id); the
worst and p95 delay of the healthy webhook from the post's collection; the daemon's RSS at minute
one and at the end; SIGTERM-to-exit seconds. Targets: 0 lost, 0 duplicated beyond the webhook
window, the healthy destination never more than its own pacing + 5 s late, RSS growth < 10 %,
exit < 10 s.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from listener.core.models import parse_iso  # noqa: E402
from storage.outbox import alert_id  # noqa: E402
from tests.crash import daemon  # noqa: E402
from tests.crash.stream import PostStream  # noqa: E402
from tests.fakes.chaos import Chaos  # noqa: E402
from tests.fakes.feeds import FakeFeedServer, rss_document  # noqa: E402
from tests.fakes.slack import FakeSlackWebhook  # noqa: E402
from tests.fakes.webhook_receiver import DEFAULT_PATH, FakeWebhookReceiver  # noqa: E402
from tests.fakes.zendesk_api import FakeZendesk  # noqa: E402

RULE = "unhappy"
SECRET = "soak-webhook-secret-0123456789"
SLACK_ALERT = re.compile(r"alert `([0-9a-f]{32})`")


def config_text(hn: str, feed: str, slack: str, zendesk: FakeZendesk, hook: str) -> str:
    return f"""\
storage: {{path: listener.db}}
classifier: {{device: cpu}}
metrics: {{port: null}}
schedule: {{classify_interval: 1, rules_interval: 1, dispatch_interval: 1, reports_interval: 5}}
brands: [{{name: acme, query: acme}}]
sources:
  - {{type: hackernews, name: hn, base_url: "{hn}", tags: stories, overlap: 60,
     initial_lookback: 3600, interval: 2}}
  - {{type: rss, name: chaos-feed, feeds: ["{feed}"], interval: 2, page_deadline: 10}}
rules:
  - {{name: {RULE}, when: {{sentiment: [negative]}}, destinations: [hook, slack, tickets]}}
destinations:
  - {{type: webhook, name: hook, url: "{hook}", secret: {{"$env": SOAK_SECRET}},
     allow_insecure_http: true, allow_private_network: true, timeout: 5}}
  - {{type: slack, name: slack, webhook_url: {{"$env": SOAK_SLACK}}, timeout: 5,
     min_interval: 0.2}}
  - type: zendesk
    name: tickets
    base_url: "{zendesk.base_url}"
    email: {zendesk.email}
    api_token: {{"$env": SOAK_ZENDESK}}
    timeout: 5
    min_interval: 0
incidents: {{enabled: false}}  # each negative story must reach each destination on its own
dispatch: {{send_deadline: 15, backoff_initial: 2, backoff_max: 20, max_attempts: 100}}
"""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(minutes: float, seed: int, workdir: Path) -> dict[str, Any]:
    chaos = {name: Chaos(seed + i, rate) for i, (name, rate) in
             enumerate((("feed", 0.6), ("slack", 0.3), ("tickets", 0.3)))}
    with PostStream(seed, period=2.0) as hn, FakeFeedServer() as feeds, \
            FakeSlackWebhook() as slack, FakeZendesk() as zendesk, \
            FakeWebhookReceiver(secret=SECRET, path=DEFAULT_PATH) as hook:
        feeds.set_feed("/feed.xml", rss_document([
            {"guid": "g1", "title": "acme status", "description": "all good",
             "link": "https://blog.example/1"}]))
        feeds.faults, slack.faults, zendesk.faults = (chaos["feed"], chaos["slack"],
                                                      chaos["tickets"])
        config = workdir / "config.yaml"
        config.write_text(config_text(hn.base_url, feeds.url("/feed.xml"), slack.url, zendesk,
                                      hook.url))
        env = dict(daemon.daemon_env(slack.url), SOAK_SECRET=SECRET, SOAK_SLACK=slack.url,
                   SOAK_ZENDESK=zendesk.token)
        proc = daemon.start(config, env, workdir / "daemon.log")
        try:
            wait_for_model(workdir / "listener.db", proc)
            hn.begin()
            started, samples = time.monotonic(), []
            while time.monotonic() - started < minutes * 60:
                time.sleep(10)
                samples.append((time.monotonic() - started, rss_kb(proc.pid)))
            hn.freeze()
            for fault in chaos.values():
                fault.enabled = False
            settle(workdir / "listener.db", hn, proc, timeout=90)
            stop = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            exit_s = time.monotonic() - stop
        finally:
            if proc.poll() is None:
                proc.kill()
        return measure(workdir, hn, slack, zendesk, hook, chaos, samples, exit_s)


def wait_for_model(database: Path, proc: Any) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if database.exists():
            conn = daemon.read_db(database)
            try:
                if conn.execute("SELECT count(*) FROM runs WHERE stage = 'classify'"
                                " AND status = 'ok'").fetchone()[0]:
                    return
            except Exception:  # noqa: S112 - the schema is being created
                pass
            finally:
                conn.close()
        time.sleep(0.5)


def settle(database: Path, hn: PostStream, proc: Any, timeout: float) -> None:
    """Until every served story is stored and no alert is pending (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        conn = daemon.read_db(database)
        try:
            stored = conn.execute("SELECT count(*) FROM posts WHERE platform = 'hackernews'"
                                  ).fetchone()[0]
            pending = conn.execute("SELECT count(*) FROM alerts WHERE status = 'pending'"
                                   ).fetchone()[0]
        finally:
            conn.close()
        if stored >= len(hn.first_served) and pending == 0:
            return
        time.sleep(1)


def measure(workdir: Path, hn: PostStream, slack: FakeSlackWebhook, zendesk: FakeZendesk,
            hook: FakeWebhookReceiver, chaos: dict[str, Chaos], samples: list[tuple[float, int]],
            exit_s: float) -> dict[str, Any]:
    conn = daemon.read_db(workdir / "listener.db")
    try:
        stored = {r[0]: r[1] for r in conn.execute(
            "SELECT platform_id, collected_at FROM posts WHERE platform = 'hackernews'")}
        negative = [r[0] for r in conn.execute(
            "SELECT p.platform_id FROM posts p JOIN scores s ON s.post_id = p.id"
            " WHERE p.platform = 'hackernews' AND s.sentiment = 'negative'")]
        statuses = Counter(f"{r[0]}:{r[1]}" for r in conn.execute(
            "SELECT destination, status FROM alerts"))
    finally:
        conn.close()
    due = {dest: {alert_id(RULE, f"hackernews:{pid}", dest): pid for pid in negative}
           for dest in ("hook", "slack", "tickets")}
    received = {
        "hook": Counter(hook.arrivals),
        "slack": Counter(i for r in slack.requests if r.json
                         for i in set(SLACK_ALERT.findall(str(r.json)))),
        "tickets": Counter(t["external_id"] for t in zendesk.tickets),
    }
    delays = [at - parse_iso(stored[due["hook"][aid]]).timestamp()
              for aid, at in hook.first_arrived.items() if aid in due["hook"]]
    per_dest = {dest: {"due": len(ids), "delivered": len(set(ids) & set(received[dest])),
                       "lost": len(set(ids) - set(received[dest])),
                       "duplicated": sum(n - 1 for n in received[dest].values() if n > 1)}
                for dest, ids in due.items()}
    rss = [kb for _, kb in samples]
    first = next((kb for t, kb in samples if t >= 60), rss[0] if rss else 0)
    return {
        "served": len(hn.first_served), "stored": len(stored),
        "lost_posts": len(set(hn.first_served) - set(stored)), "destinations": per_dest,
        "statuses": dict(statuses), "faults": {k: dict(v.injected) for k, v in chaos.items()},
        "hook_delay_max": round(max(delays), 1) if delays else None,
        "hook_delay_p95": round(statistics.quantiles(delays, n=20)[-1], 1)
        if len(delays) > 1 else None,
        "rss_mb_minute1": round(first / 1024, 1), "rss_mb_end": round(rss[-1] / 1024, 1)
        if rss else None, "rss_mb_samples": [round(kb / 1024) for kb in rss],
        "sigterm_exit_s": round(exit_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = soak(args.minutes, args.seed, Path(tmp))
    growth = ((result["rss_mb_end"] - result["rss_mb_minute1"]) / result["rss_mb_minute1"] * 100
              if result["rss_mb_minute1"] else 0.0)
    print(f"posts served / stored / lost      {result['served']} / {result['stored']} / "
          f"{result['lost_posts']}")
    for dest, figures in result["destinations"].items():
        print(f"{dest:<8} alerts due / delivered / lost / duplicated  {figures['due']} / "
              f"{figures['delivered']} / {figures['lost']} / {figures['duplicated']}")
    print(f"healthy webhook delay from collection  max {result['hook_delay_max']} s, p95 "
          f"{result['hook_delay_p95']} s")
    print(f"daemon RSS  minute 1 {result['rss_mb_minute1']} MB → end {result['rss_mb_end']} MB"
          f" ({growth:+.1f} %)")
    print(f"SIGTERM to exit                    {result['sigterm_exit_s']} s")
    print(f"faults injected                    {result['faults']}")
    print(f"alert statuses                     {result['statuses']}")
    print(f"RSS samples (MB, every 10 s)       {result['rss_mb_samples']}")


if __name__ == "__main__":
    main()
