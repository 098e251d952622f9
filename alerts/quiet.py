"""Quiet hours: a rule's alerts are held while people sleep and sent as ONE report afterwards.

An alert decided inside its rule's quiet hours is stored with status ``held``: recorded, never
sent on its own (``listener.pipeline._Caps`` decides that). The first reports run after the quiet
period has ended rolls every held alert of the rule into one report of kind ``held`` — queued to
each destination that has held alerts — and marks those alerts ``digested`` in the SAME
transaction: after a crash an alert is either still held (and rolled up by the next run) or in a
queued report, never lost and never sent twice.

Times of day are local to an IANA time zone and converted with :mod:`zoneinfo`, so "07:00
Europe/Berlin" is 06:00 UTC in winter and 05:00 UTC in summer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from sqlite_utils import Database

from listener.models import parse_iso
from storage import outbox
from storage.reports import Report, enqueue_report
from storage.tx import immediate

if TYPE_CHECKING:
    from alerts.rules import RuleConfig

HELD_EXAMPLES = 5  # posts shown in a roll-up, most urgent first (all ids are in its numbers)
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_RANK = {"high": 0, "normal": 1, "low": 2}


def _time_of_day(value: Any) -> Any:
    """"HH:MM" on a 24-hour clock; explains YAML's sexagesimal trap (22:00 unquoted is 1320)."""
    if isinstance(value, int) and not isinstance(value, bool):
        hours, minutes = divmod(value, 60)
        raise ValueError(f'write the time in quotes, e.g. "{hours:02d}:{minutes:02d}" (unquoted, '
                         f"YAML reads {hours}:{minutes:02d} as the number {value})")
    if not isinstance(value, str) or not _HHMM.fullmatch(value):
        raise ValueError(f"expected a time of day as HH:MM on a 24-hour clock, got {value!r}")
    return value


def _time_zone(value: Any) -> Any:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin, "
                         "America/New_York or UTC") from exc
    return value


TimeOfDay = Annotated[str, BeforeValidator(_time_of_day)]
TimeZoneName = Annotated[str, BeforeValidator(_time_zone)]


def local_time(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    """``day`` at ``hhmm`` wall-clock time in ``zone``, as UTC.

    A time that does not exist that day (skipped by a DST change) resolves with the offset
    before the change; an ambiguous one (repeated) takes its first occurrence.
    """
    hour, minute = map(int, hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


class QuietHours(BaseModel):
    """A daily stretch of local time in which a rule's alerts are held, not sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: TimeOfDay = Field(description="local time the quiet hours begin, HH:MM (quoted)")
    end: TimeOfDay = Field(
        description="local time they end, HH:MM (quoted); earlier than start: crosses midnight"
    )
    timezone: TimeZoneName = Field("UTC", description="IANA time zone of start and end")

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end are the same time: nothing would be "
                             "quiet (or everything); set different times")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def label(self) -> str:
        return f"{self.start}–{self.end} {self.timezone}"

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware) falls in the quiet hours: start inclusive, end exclusive."""
        now = moment.astimezone(self.zone).strftime("%H:%M")
        if self.start < self.end:  # "HH:MM" strings order like times
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def last_end(self, now: datetime) -> datetime:
        """When the latest quiet period that has ended by ``now`` ended (UTC)."""
        today = now.astimezone(self.zone).date()
        end = local_time(today, self.end, self.zone)
        return end if end <= now else local_time(today - timedelta(days=1), self.end, self.zone)


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
