"""A realistic mixed day, replayed through the real pipeline (issue 13):

    python bench/mixed_day.py [--runs 3] [--polls 30 300] [--history-days 30]

Per run (a seed): a month of history of two brands, "Acme Cloud" and "Globex", imported first
(the backfill of last month); then six hours of a live day — everyday posts of both brands,
posts about both at once, posts matching two rules — with an Acme outage three hours in: 500
complaints from 300 customers in 20 minutes, in their own words (``bench/mixed_day_data.py``).

What runs is the product: the config file, ``Runtime`` and its stage runners (collect from a
file source that grows as the day goes on, classify with the default model on ONNX Runtime,
rules with incidents, reports, dispatch), a real SQLite file, and the real Slack (bot token)
and Zendesk sinks talking HTTP to their fakes on 127.0.0.1. Only time is simulated: a clock the
replay moves forward by the poll interval and by the real seconds every stage took, so a day
replays in a minute and the latency figures include the poll wait and the processing time
(Slack's pacing of one message a second included).

Printed: posts served and stored per brand, lost posts, alerts per destination, duplicates (a
post messaged twice at one destination), posts matching two rules and messages naming both,
what history paged, the outage's customers covered by the incident (and reached at all), the
posts swept into it from everyday traffic, and the time from the first outage report to the
incident alert in Slack — from the report's writing and from its collection — p50 / p95 over
the runs, per poll interval. Targets: 0 lost, 0 duplicates, every outage customer reached, the
incident alert ≤ 60 s after the first report with the default incident settings.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from bench import mixed_day_data as data  # noqa: E402
from listener.config import BrandSettings, load_config  # noqa: E402
from listener.core.models import parse_iso, to_iso  # noqa: E402
from listener.pipeline import Runtime  # noqa: E402
from tests.fakes.slack import BOT_TOKEN, CHANNEL_ID, FakeSlackAPI  # noqa: E402
from tests.fakes.zendesk_api import FakeZendesk  # noqa: E402

DAY_START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OUTAGE_AT = DAY_START + timedelta(hours=3)
LIVE_HOURS = 6


class Clock:
    """Simulated time: moved by the replay and by every stage's real duration."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(0.0, seconds))

    def timed(self, work: Any, *args: Any) -> Any:
        started = time.monotonic()
        try:
            return work(*args)
        finally:
            self.sleep(time.monotonic() - started)


def config_text(poll: float, slack: FakeSlackAPI, zendesk: FakeZendesk) -> str:
    return f"""\
storage: {{path: listener.db}}
classifier: {{device: cpu}}
metrics: {{port: null}}
brands:
  - {{name: acme, query: '{data.ACME_QUERY}'}}
  - {{name: globex, query: '{data.GLOBEX_QUERY}'}}
sources:
  - {{type: file, name: archive, path: archive.jsonl, brands: [acme, globex]}}
  - {{type: file, name: live, path: live.jsonl, brands: [acme, globex], interval: {poll:g}}}
rules:
  - name: unhappy
    when: {{sentiment: [negative], min_probability: 0.6}}
    destinations: [slack, tickets]
  - name: needs-help
    when: {{min_urgency: 0.5}}
    destinations: [slack]
destinations:
  - type: slack
    name: slack
    token: {{"$env": BENCH_SLACK_TOKEN}}
    channel: {CHANNEL_ID}
    base_url: "{slack.api_url}"
  - type: zendesk
    name: tickets
    base_url: "{zendesk.base_url}"
    email: {zendesk.email}
    api_token: {{"$env": BENCH_ZENDESK_TOKEN}}
    min_interval: 0
"""


@dataclass
class Day:
    archive: list[data.Synthetic]  # the month before yesterday: the backfill
    yesterday: list[data.Synthetic]  # the two days before the live day
    today: list[data.Synthetic]
    outage: list[data.Synthetic] = field(default_factory=list)


def make_day(seed: int, history_days: int) -> Day:
    """A month of history (quieter in the past, 30 posts an hour per brand from three days
    before), two days of everyday traffic, and the live day with its outage."""
    rng = random.Random(seed)
    recent = DAY_START - timedelta(days=2)
    quiet_until = recent - timedelta(days=1)
    archive = []
    for brand, prefix in (("acme", "h"), ("globex", "i")):
        start = DAY_START - timedelta(days=history_days)
        hours = (quiet_until - start).total_seconds() / 3600
        archive += data.normal(rng, start, hours, 4, brand, f"{prefix}q")
        archive += data.normal(rng, quiet_until, 24, 30, brand, f"{prefix}r")
    yesterday = (data.normal(rng, recent, 48, 30, "acme", "ya")
                 + data.normal(rng, recent, 48, 30, "globex", "yg"))
    outage = data.outage(rng, OUTAGE_AT + timedelta(minutes=rng.uniform(0, 5)))
    today = (data.normal(rng, DAY_START, LIVE_HOURS, 30, "acme", "a")
             + data.normal(rng, DAY_START, LIVE_HOURS, 30, "globex", "g")
             + data.both_brands(rng, DAY_START, LIVE_HOURS, 20) + outage)
    for items in (archive, yesterday, today):
        items.sort(key=lambda s: s.created_at)
    return Day(archive, yesterday, today, outage)


def jsonl(items: list[data.Synthetic]) -> str:
    return "".join(json.dumps({"id": s.id, "platform": "x", "text": s.text, "author": s.author,
                               "author_followers": s.followers, "lang": "en",
                               "created_at": to_iso(s.created_at)}) + "\n" for s in items)


def replay(seed: int, poll: float, history_days: int, workdir: Path) -> dict[str, Any]:
    day = make_day(seed, history_days)
    with FakeSlackAPI() as slack, FakeZendesk() as zendesk:
        (workdir / "config.yaml").write_text(config_text(poll, slack, zendesk))
        env = {"BENCH_SLACK_TOKEN": BOT_TOKEN, "BENCH_ZENDESK_TOKEN": zendesk.token}
        config = load_config(workdir / "config.yaml", environ=env)
        clock = Clock(DAY_START)
        runtime = Runtime(config, clock=clock, sleep=clock.sleep)
        runtime.migrate()
        archive, live = (s for s in runtime.sources())
        # the backfill of last month, run this morning: by now all of it is over 48 h old,
        # so it is stored, scored and counted, and pages nobody
        (workdir / "archive.jsonl").write_text(jsonl(day.archive))
        (workdir / "live.jsonl").write_text("")
        for stage in (lambda: runtime.run_collect(archive), runtime.run_classify,
                      runtime.run_rules, runtime.run_dispatch):
            clock.timed(stage)
        history_alerts = runtime.db().execute("SELECT count(*) FROM alerts").fetchone()[0]
        # the two days before, an hour at a time (they were live then: they alert)
        clock.now = DAY_START - timedelta(days=2)
        hourly(runtime, clock, live, day.yesterday, workdir)
        before = (len(slack.messages), len(zendesk.tickets))
        served = live_day(runtime, clock, live, day.today, poll, workdir)
        result = measure(runtime, day, served, slack, zendesk)
        result["slack_today"] = len(slack.messages) - before[0]
        result["tickets_today"] = len(zendesk.tickets) - before[1]
        result["history_alerts"] = history_alerts
        runtime.close()
    return result


def hourly(runtime: Runtime, clock: Clock, source: Any, items: list[data.Synthetic],
           workdir: Path) -> None:
    """Posts written in each hour, collected and handled at its end."""
    hour = 0
    while items[hour:]:
        end = clock.now + timedelta(hours=1)
        batch = [s for s in items[hour:] if s.created_at < end]
        hour += len(batch)
        with (workdir / "live.jsonl").open("a", encoding="utf-8") as f:
            f.write(jsonl(batch))
        clock.now = end
        for stage in (lambda: runtime.run_collect(source), runtime.run_classify,
                      runtime.run_rules, runtime.run_reports, runtime.run_dispatch):
            clock.timed(stage)


def live_day(runtime: Runtime, clock: Clock, source: Any, today: list[data.Synthetic],
             poll: float, workdir: Path) -> list[data.Synthetic]:
    """Six hours: the file grows as posts are written; the source is polled every ``poll``
    seconds, each poll chained through classify, rules and dispatch; reports every minute."""
    clock.now = max(clock.now, DAY_START)
    end = DAY_START + timedelta(hours=LIVE_HOURS)
    written, next_poll, next_reports = 0, clock.now, clock.now
    while clock.now < end:
        if clock.now >= next_poll:
            upto = next(i for i in range(written, len(today) + 1)
                        if i == len(today) or today[i].created_at > clock.now)
            with (workdir / "live.jsonl").open("a", encoding="utf-8") as f:
                f.write(jsonl(today[written:upto]))
            written = upto
            next_poll = clock.now + timedelta(seconds=poll)
            if clock.timed(runtime.run_collect, source):
                for stage in (runtime.run_classify, runtime.run_rules, runtime.run_dispatch):
                    clock.timed(stage)
        if clock.now >= next_reports:
            next_reports = clock.now + timedelta(seconds=60)
            if clock.timed(runtime.run_reports):
                clock.timed(runtime.run_dispatch)
        clock.now = max(clock.now, min(next_poll, next_reports))
    clock.timed(runtime.run_dispatch)
    return today[:written]


def measure(runtime: Runtime, day: Day, served: list[data.Synthetic], slack: FakeSlackAPI,
            zendesk: FakeZendesk) -> dict[str, Any]:
    db = runtime.db()
    brands = {name: BrandSettings(name=name, query=q).compile()
              for name, q in (("acme", data.ACME_QUERY), ("globex", data.GLOBEX_QUERY))}
    wanted = {s.id for s in served
              if any(b.accepts(s.text, "en", s.author) for b in brands.values())}
    stored = {r[0] for r in db.execute("SELECT platform_id FROM posts WHERE source = 'live'"
                                       " AND created_at >= ?", [to_iso(DAY_START)])}
    per_brand = Counter(r[0] for r in db.execute(
        "SELECT brand FROM posts WHERE source = 'live' AND created_at >= ? UNION ALL"
        " SELECT e.brand FROM post_extra_brands e JOIN posts p ON p.id = e.post_id"
        " WHERE p.source = 'live' AND p.created_at >= ?", [to_iso(DAY_START)] * 2))
    alert_post = {r[0]: r[1] for r in db.execute("SELECT id, post_id FROM alerts")}
    slack_posts = Counter(alert_post.get(m.get("metadata", {}).get("event_payload", {})
                                         .get("alert_id")) for m in slack.messages)
    ticket_posts = Counter(alert_post.get(t["external_id"]) for t in zendesk.tickets)
    two_rules = [r[0] for r in db.execute(
        "SELECT post_id FROM alerts WHERE destination = 'slack' AND post_id IS NOT NULL"
        " GROUP BY post_id HAVING count(DISTINCT rule) = 2")]
    two = set(two_rules)
    about_two = [json.dumps(m.get("blocks") or m["text"]) for m in slack.messages
                 if alert_post.get(m.get("metadata", {}).get("event_payload", {})
                                   .get("alert_id")) in two]
    both_named = sum(1 for text in about_two if "unhappy, needs-help" in text
                     or "needs-help, unhappy" in text)
    out = outage_figures(db, day, slack)
    return {
        "served": len(served), "stored": len(stored), "per_brand": dict(per_brand),
        "lost": len(wanted - stored),
        "slack_messages": len(slack.messages), "tickets": len(zendesk.tickets),
        "ticket_comments": sum(len(zendesk.comments(t["id"])) - 1 for t in zendesk.tickets),
        "duplicates": sum(n - 1 for k, n in slack_posts.items() if k is not None)
        + sum(n - 1 for k, n in ticket_posts.items() if k is not None),
        "two_rule_posts": len(two_rules), "two_rule_messages": len(about_two),
        "messages_naming_both": both_named, **out,
    }


def outage_figures(db: Any, day: Day, slack: FakeSlackAPI) -> dict[str, Any]:
    customers = {s.author for s in day.outage}
    members = {r[0] for r in db.execute(
        "SELECT DISTINCT p.author FROM incident_posts m JOIN incidents i ON i.id = m.incident_id"
        " JOIN posts p ON p.id = m.post_id WHERE i.brand = 'acme'")}
    alone = {r[0] for r in db.execute(
        "SELECT DISTINCT p.author FROM alerts a JOIN posts p ON p.id = a.post_id"
        " WHERE a.status = 'delivered'")}
    swept = db.execute(
        "SELECT count(*) FROM incident_posts m JOIN posts p ON p.id = m.post_id"
        " WHERE p.platform_id NOT LIKE 'out%'").fetchone()[0]
    first = min(day.outage, key=lambda s: s.created_at)
    collected = db.execute("SELECT collected_at FROM posts WHERE platform_id = ?",
                           [first.id]).fetchone()
    delivered = db.execute(
        "SELECT min(a.delivered_at) FROM alerts a JOIN reports r ON r.id = a.report_id"
        " WHERE r.kind = 'incident' AND r.brand = 'acme' AND a.destination = 'slack'"
        " AND a.status = 'delivered'").fetchone()[0]
    incidents = Counter(r[0] for r in db.execute("SELECT brand FROM incidents"))
    updates = sum(1 for m in slack.messages if m.get("thread_ts") and "incident" in m["text"])
    latency = ((parse_iso(delivered) - first.created_at).total_seconds()
               if delivered else None)
    since_collected = ((parse_iso(delivered) - parse_iso(collected[0])).total_seconds()
                       if delivered and collected else None)
    return {"incidents": dict(incidents), "customers": len(customers),
            "covered": len(customers & members), "reached": len(customers & (members | alone)),
            "swept_in": swept, "incident_updates": updates, "latency_written": latency,
            "latency_collected": since_collected}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="seeds per poll interval")
    parser.add_argument("--polls", type=float, nargs="+", default=[30.0, 300.0],
                        help="source poll intervals to replay (300 is the default)")
    parser.add_argument("--history-days", type=int, default=30)
    args = parser.parse_args()
    for poll in args.polls:
        results = []
        for seed in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="mixed-day-") as tmp:
                started = time.monotonic()
                result = replay(seed, poll, args.history_days, Path(tmp))
                result["seconds"] = round(time.monotonic() - started, 1)
            results.append(result)
            print(f"poll {poll:g}s seed {seed}: {json.dumps(result)}", flush=True)
        report(poll, results)


def report(poll: float, results: list[dict[str, Any]]) -> None:
    written = [r["latency_written"] for r in results if r["latency_written"] is not None]
    collected = [r["latency_collected"] for r in results if r["latency_collected"] is not None]
    total = lambda key: sum(r[key] for r in results)  # noqa: E731
    print(f"\n== poll every {poll:g} s, {len(results)} run(s) ==")
    print(f"posts served / stored / lost          {total('served'):,} / {total('stored'):,} / "
          f"{total('lost')}")
    brands = Counter()
    for r in results:
        brands.update(r["per_brand"])
    print(f"stored per brand (both counted twice)  {dict(brands)}")
    print(f"alerts from a month of history         {total('history_alerts')}")
    print(f"Slack messages / Zendesk tickets       {total('slack_today'):,} / "
          f"{total('tickets_today'):,} on the live day (+{total('ticket_comments')} incident "
          f"comments); {total('slack_messages'):,} / {total('tickets'):,} with the two days "
          "before")
    print(f"duplicate messages or tickets          {total('duplicates')}")
    print(f"posts matching two rules                {total('two_rule_posts'):,}; messaged on "
          f"their own: {total('two_rule_messages'):,}, naming both rules: "
          f"{total('messages_naming_both'):,} (the rest travel in an incident)")
    print(f"outage customers covered by the incident  {total('covered')} / {total('customers')}"
          f" (reached a person: {total('reached')}); everyday posts swept in: "
          f"{total('swept_in')}; incidents per run: {[r['incidents'] for r in results]}")
    print(f"incident updates in the thread         {total('incident_updates')}")
    if written:
        print(f"first report → incident alert in Slack: written p50 {statistics.median(written):.0f}"
              f" s, p95 {percentile(written, 0.95):.0f} s; collected p50 "
              f"{statistics.median(collected):.0f} s, p95 {percentile(collected, 0.95):.0f} s")
    print(f"replay seconds per run                 {[r['seconds'] for r in results]}")


if __name__ == "__main__":
    main()
