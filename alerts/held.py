"""Alerts held over quiet hours, rolled up into ONE report once the quiet period ends.

The first reports run after a rule's quiet hours (:mod:`alerts.quiet`) rolls every alert of
the rule held meanwhile into a report of kind ``held`` — queued to each destination that has
held alerts — and marks those alerts ``digested`` in the SAME transaction: after a crash an
alert is either still held (and rolled up by the next run) or in a queued report, never lost
and never sent twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from alerts.rules import RuleConfig
from listener.core.models import Report, parse_iso
from storage import outbox
from storage.reports import enqueue_report
from storage.tx import immediate

HELD_EXAMPLES = 5  # posts shown in a roll-up, most urgent first (all ids are in its numbers)
_RANK = {"high": 0, "normal": 1, "low": 2}


def roll_up_held(db: Database, rules: Sequence[RuleConfig], destinations: set[str],
                 now: datetime) -> int:
    """Send what each rule held during its last quiet period; returns report alerts queued.

    A rule whose quiet hours were taken out of the config sends what it still holds at once.
    """
    queued = 0
    for rule in rules:
        dests = {d for d in rule.destinations if d in destinations}
        end = rule.quiet_hours.last_end(now) if rule.quiet_hours else now
        if dests and _held(db, rule.name, dests, end):  # cheap read first: no write lock
            queued += _roll_up(db, rule, dests, end, now)
    return queued


def _held(db: Database, rule: str, dests: set[str], before: datetime) -> list[dict[str, Any]]:
    return [r for r in outbox.held(db, rule, before) if r["destination"] in dests]


def _roll_up(db: Database, rule: RuleConfig, dests: set[str], end: datetime,
             now: datetime) -> int:
    with immediate(db):  # read, report and marks commit together (enqueue_report joins in)
        rows = _held(db, rule.name, dests, end)
        if not rows:
            return 0  # another process rolled them up a moment ago
        report = held_report(rule, rows, end)
        added = enqueue_report(db, report, sorted({r["destination"] for r in rows}), now)
        if added:  # 0: this exact report exists already; keep them held for the next one
            outbox.mark_digested(db, [r["alert_id"] for r in rows])
    return added


def held_report(rule: RuleConfig, rows: Sequence[dict[str, Any]], end: datetime) -> Report:
    """One report about a rule's held alerts (one row per alert; a post may have several)."""
    posts: dict[int, dict[str, Any]] = {}
    for row in rows:  # one entry per post: its highest-priority alert
        seen = posts.get(row["post_id"])
        if seen is None or _RANK.get(row["priority"], 1) < _RANK.get(seen["priority"], 1):
            posts[row["post_id"]] = row
    ranked = sorted(posts.values(), key=lambda r: (_RANK.get(r["priority"], 1),
                                                   -(r["urgency"] or 0.0), r["post_id"]))
    by_priority = Counter(r["priority"] or "normal" for r in ranked)
    by_sentiment = Counter(r["sentiment"] or "unscored" for r in ranked)
    by_brand = Counter(r["brand"] or "no brand" for r in ranked)
    quiet = rule.quiet_hours
    hours = quiet.label if quiet else "since removed from the config"
    when = "overnight" if quiet and quiet.start > quiet.end else "during quiet hours"
    title = f"{len(ranked):,} alert{'s' * (len(ranked) != 1)} held {when} for rule {rule.name}"
    if by_priority["high"]:
        title += f": {by_priority['high']:,} high priority"
    return Report(
        kind="held", name=rule.name, title=title,
        # from the first held alert: a later roll-up for the same quiet end (an alert committed
        # by a concurrent rules run just after this one) gets a report id of its own
        window_start=min(parse_iso(r["created_at"]) for r in rows), window_end=end,
        summary=(f"Rule {rule.name} was in its quiet hours ({hours}), so these alerts were "
                 "recorded instead of sent. Most urgent first."),
        facts=[("Quiet hours", hours), ("Held", f"{len(ranked):,} posts"),
               ("By priority", _counts(by_priority, ("high", "normal", "low"))),
               ("Sentiment", _counts(by_sentiment)), ("Brands", _counts(by_brand))],
        example_post_ids=[r["post_id"] for r in ranked[:HELD_EXAMPLES]],
        numbers={"held_posts": len(ranked), "held_alerts": len(rows),
                 "by_priority": dict(by_priority), "by_sentiment": dict(by_sentiment),
                 "by_brand": dict(by_brand), "post_ids": [r["post_id"] for r in ranked]},
        priority="high" if by_priority["high"] else "normal",
    )


def _counts(counter: Counter[str], order: Sequence[str] = ()) -> str:
    """"3 high · 7 normal · 2 low": the given order first, then the rest by size."""
    keys = [k for k in order if counter[k]] + [k for k, _ in counter.most_common()
                                               if k not in order]
    return " · ".join(f"{counter[k]:,} {k}" for k in keys) or "none"
