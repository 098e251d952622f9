"""Digests: a daily or weekly summary per brand, with a chart; and alerts held over quiet hours.

Each reports run (every ``schedule.reports_interval`` seconds) looks, per digest and brand, at the
latest period that has ENDED — daily: the 24 hours before today's ``at`` in the digest's time
zone (23 or 25 on a DST change day); weekly: the 7 days before the last ``weekday`` at ``at`` —
and queues it unless a report for it exists. Only that one period: a daemon that was down for a
week sends one digest, not seven. The report id is derived from the window, so running every
minute (or from two processes) sends each digest once.

A period without a single post for the brand (the first day after installing, a brand nobody
mentioned) is skipped: nothing is sent, one INFO line says so, and the skip is recorded as a
report without alerts, so later runs in the same period neither look again nor log again. A
skip moves nothing else: the next period is judged on its own, and no run ever sends an older
period, so a skipped day can never come back as a backlog.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlite_utils import Database

from alerts.digest_chart import ChartData, render_png  # matplotlib loads inside render_png
from alerts.digest_figures import (
    HELP_MIN_URGENCY,
    SENTIMENTS,
    Figures,
    Volume,
    has_posts,
    read_figures,
)
from alerts.held import roll_up_held
from alerts.quiet import TimeOfDay, TimeZoneName, local_time
from listener.core.models import Report, to_iso
from storage.reports import enqueue_report, last_report_at

if TYPE_CHECKING:
    from alerts.rules import RuleConfig

log = logging.getLogger(__name__)

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)
SUPPRESSED_SHOWN = 5  # posts a cap kept from paging, shown in the digest (most important first)
_STATUS_TEXT = {"digested": "held (rolled up)", "incident": "in an incident"}


class DigestConfig(BaseModel):
    """One digest schedule, routed to named destinations."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique digest name")
    destinations: list[str] = Field(min_length=1, description="destination names")
    brands: list[str] | None = Field(
        None, description="one digest per brand named here (default: every configured brand; "
        "with no brands configured, one digest over all posts)"
    )
    every: Literal["daily", "weekly"] = Field("daily", description="daily or weekly")
    at: TimeOfDay = Field("09:00", description="local time the period ends and the digest is "
                          "sent, HH:MM (quoted)")
    timezone: TimeZoneName = Field("UTC", description="IANA time zone of `at` and the chart")
    weekday: Weekday | None = Field(
        None, description="weekly only: the day the week ends on (default monday)"
    )
    examples: int = Field(5, ge=0, le=10, description="top negative and top help-seeking "
                          "posts shown, each")
    chart: bool = Field(True, description="attach a PNG chart")
    enabled: bool = Field(True, description="false keeps the digest but never sends it")

    @field_validator("weekday")
    @classmethod
    def _weekly_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("every") != "weekly":
            raise ValueError("weekday applies to weekly digests only (every: weekly)")
        return value

    @property
    def days(self) -> int:
        return 7 if self.every == "weekly" else 1


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC; ``day`` is the local date on which it ends (at the digest's `at`)."""

    start: datetime
    end: datetime
    day: date


def period_ending(cfg: DigestConfig, day: date) -> Period:
    """The period that ends on local date ``day`` at ``at`` (starts 1 or 7 local days before)."""
    zone = ZoneInfo(cfg.timezone)
    return Period(local_time(day - timedelta(days=cfg.days), cfg.at, zone),
                  local_time(day, cfg.at, zone), day)


def latest_period(cfg: DigestConfig, now: datetime) -> Period:
    """The latest period that has ended by ``now``; DST-correct (wall-clock boundaries)."""
    day = now.astimezone(ZoneInfo(cfg.timezone)).date()
    if cfg.every == "weekly":
        day -= timedelta(days=(day.weekday() - WEEKDAYS.index(cfg.weekday or "monday")) % 7)
    period = period_ending(cfg, day)
    return period if period.end <= now else period_ending(cfg, day - timedelta(days=cfg.days))


def run_digests(
    db: Database, digests: Sequence[DigestConfig], destinations: set[str], now: datetime,
    *, brands: Sequence[str] = (), rules: Sequence[RuleConfig] = (),
) -> int:
    """Roll up alerts held over quiet hours, then queue every digest whose period has ended.

    ``brands`` are the configured brand names (a digest's default), ``rules`` the alert rules
    (their quiet hours). Returns how many report alerts were queued.
    """
    queued = roll_up_held(db, rules, destinations, now)
    for cfg in digests:
        dests = [d for d in cfg.destinations if d in destinations]
        if not cfg.enabled or not dests:
            continue
        period = latest_period(cfg, now)
        every: list[str | None] = list(cfg.brands or brands) or [None]  # None: all posts
        for brand in every:
            last = last_report_at(db, "digest", cfg.name, brand, None)
            if last is None or last < period.end:  # cheap check before any figure is read
                queued += _send_or_skip(db, cfg, brand, period, dests, now)
    return queued


def _send_or_skip(db: Database, cfg: DigestConfig, brand: str | None, period: Period,
                  dests: list[str], now: datetime) -> int:
    """Queue the period's digest; or, with no posts in it, record the skip and queue nothing.

    A "0 posts (±0%)" digest tells a reader nothing but that the listener had nothing to say
    yet. The skip is stored as the period's report without alerts so that ``last_report_at``
    moves past it: without that, every reports run until the next period ends would look again
    and log again (every cron run, too). So an empty period is judged once, at the first run
    after it ends, just as a digest's figures are: posts stored for it later (a backfill, the
    first poll of a new daemon finishing after that run) do not revive it. Returns the alerts
    queued.
    """
    if has_posts(db, brand, period.start, period.end):
        return enqueue_report(db, build_digest(db, cfg, brand, period), dests, now)
    who = f"brand {brand}" if brand else "all brands"
    log.info("digest %s for %s skipped: no posts in %s", cfg.name, who, _span(cfg, period))
    enqueue_report(db, skipped_digest(cfg, brand, period), [], now)
    return 0


def skipped_digest(cfg: DigestConfig, brand: str | None, period: Period) -> Report:
    """The record of a digest not sent for want of posts (stored, routed nowhere)."""
    what = f"about {brand}" if brand else "in total"
    return Report(
        kind="digest", name=cfg.name, title=f"{_name(cfg, brand, period)}: skipped, no posts",
        window_start=period.start, window_end=period.end, brand=brand,
        summary=f"No posts {what} from {_span(cfg, period)}; no digest was sent.",
        numbers={"brand": brand, "every": cfg.every, "skipped": "no posts",
                 "period": [to_iso(period.start), to_iso(period.end)], "posts": 0},
    )


def build_digest(db: Database, cfg: DigestConfig, brand: str | None, period: Period) -> Report:
    """Read the figures, draw the chart and put both into a report."""
    previous = period_ending(cfg, period.day - timedelta(days=cfg.days))
    fig = read_figures(db, brand, period.start, period.end, previous.start, cfg.examples)
    chart = render_png(chart_data(cfg, brand, period, previous, fig)) if cfg.chart else None
    examples = list(dict.fromkeys([*fig.top_negative, *fig.top_help,
                                   *fig.suppressed[:SUPPRESSED_SHOWN]]))
    return Report(
        kind="digest", name=cfg.name, title=digest_title(cfg, brand, period, fig),
        window_start=period.start, window_end=period.end, brand=brand,
        summary=_summary(cfg, brand, period, fig), facts=_facts(cfg, fig),
        terms=fig.negative_terms, example_post_ids=examples,
        numbers=_numbers(cfg, brand, period, previous, fig),
        chart_png=chart,
    )


def digest_title(cfg: DigestConfig, brand: str | None, period: Period, fig: Figures) -> str:
    """'acme — daily digest, Tue 24 Nov: 1,204 posts (+12%), 23% negative (+5 pts)'."""
    return f"{_name(cfg, brand, period)}: {_headline(fig)}"


def _name(cfg: DigestConfig, brand: str | None, period: Period) -> str:
    return f"{brand or 'all brands'} — {cfg.every} digest, {_when(cfg, period)}"


def _headline(fig: Figures) -> str:
    text = f"{fig.volume.posts:,} posts ({_change(fig.volume.posts, fig.previous.posts)})"
    shares, before = fig.volume.shares(), fig.previous.shares()
    if shares is not None:
        text += f", {shares['negative']:.0f}% negative"
        if before is not None:
            text += f" ({_points(shares['negative'] - before['negative'])})"
    return text


def _when(cfg: DigestConfig, period: Period) -> str:
    zone = ZoneInfo(cfg.timezone)
    first = period.start.astimezone(zone)
    if cfg.every == "daily":
        return _day(first)
    return f"{_day(first)} – {_day((period.end - timedelta(seconds=1)).astimezone(zone))}"


def _day(moment: datetime) -> str:
    return f"{moment:%a} {moment.day} {moment:%b}"  # "Tue 24 Nov", whatever the platform


def _change(now: int, before: int) -> str:
    if before == 0:
        return "none before" if now else "±0%"
    return _signed(100 * (now - before) / before, "%")


def _points(diff: float) -> str:
    return _signed(diff, " pts")


def _signed(value: float, unit: str) -> str:
    rounded = round(value)
    return f"±0{unit}" if rounded == 0 else f"{rounded:+d}{unit}"


def _span(cfg: DigestConfig, period: Period) -> str:
    """'2026-11-23 08:00 to 2026-11-24 08:00 (Europe/Berlin)': the period in the digest's zone."""
    zone = ZoneInfo(cfg.timezone)
    return (f"{period.start.astimezone(zone):%Y-%m-%d %H:%M} to "
            f"{period.end.astimezone(zone):%Y-%m-%d %H:%M} ({cfg.timezone})")


def _summary(cfg: DigestConfig, brand: str | None, period: Period, fig: Figures) -> str:
    what = f"about {brand}" if brand else "in total"
    text = f"{fig.volume.posts:,} posts {what} from {_span(cfg, period)}."
    if fig.top_negative or fig.top_help:
        text += (" Below: the most negative posts (weighted by the author's reach), then the "
                 "posts most likely to need a reply.")
    return text


def _facts(cfg: DigestConfig, fig: Figures) -> list[tuple[str, str]]:
    unit = "day" if cfg.every == "daily" else "week"
    volume, before = fig.volume, fig.previous
    change = (f"{_change(volume.posts, before.posts)} vs {before.posts:,}" if before.posts
              else "none")
    facts = [("Posts", f"{volume.posts:,} ({change} the {unit} before)")]
    shares, old = volume.shares(), before.shares()
    if shares is not None:
        mix = [f"{shares[s]:.0f}% {s}" + (f" ({_points(shares[s] - old[s])})" if old else "")
               for s in SENTIMENTS]
        unscored = volume.sentiments["unscored"]
        facts.append(("Sentiment", " · ".join(mix)
                      + (f" · {unscored:,} not scored yet" if unscored else "")))
    statuses = Counter({_STATUS_TEXT.get(k, k): v for k, v in fig.alerts_by_status.items()})
    alerts = sum(statuses.values())
    facts += [
        ("Help-seeking", f"{fig.help_seeking:,} posts with urgency ≥ {HELP_MIN_URGENCY:g}"),
        ("Sources", _listing(fig.sources)),
        ("Alerts", f"{alerts:,}: {_listing(statuses)}" if alerts else "none"),
        ("Alerts by rule", _listing(fig.alerts_by_rule)),
    ]
    if fig.suppressed:  # a cap kept these from paging anyone: they are not forgotten
        shown = min(len(fig.suppressed), SUPPRESSED_SHOWN)
        posts = f"{len(fig.suppressed):,} more post{'s' * (len(fig.suppressed) != 1)}"
        facts.append(("Held back by alert caps",
                      f"{posts}, top {shown} shown below (all in the queue)"))
    return facts


def _listing(counter: Counter[str]) -> str:
    """"7 reddit · 4 x": largest first, ties by name (stable text for the same figures)."""
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return " · ".join(f"{n:,} {name}" for name, n in ranked) or "none"


def _numbers(cfg: DigestConfig, brand: str | None, period: Period, previous: Period,
             fig: Figures) -> dict[str, Any]:
    """The same figures, machine-readable (webhook JSON)."""
    now, before = fig.volume, fig.previous
    shares, old = now.shares(), before.shares()
    return {
        "brand": brand, "every": cfg.every, "timezone": cfg.timezone,
        "period": [to_iso(period.start), to_iso(period.end)],
        "previous_period": [to_iso(previous.start), to_iso(previous.end)],
        "posts": now.posts, "previous_posts": before.posts,
        "change_pct": round(100 * (now.posts - before.posts) / before.posts, 1)
        if before.posts else None,
        "sentiment": dict(now.sentiments), "previous_sentiment": dict(before.sentiments),
        "share_pct": {s: round(v, 1) for s, v in shares.items()} if shares else None,
        "share_change_pts": {s: round(shares[s] - old[s], 1) for s in SENTIMENTS}
        if shares and old else None,
        "help_seeking": fig.help_seeking, "sources": dict(fig.sources),
        "alerts_by_status": dict(fig.alerts_by_status), "alerts_by_rule": dict(fig.alerts_by_rule),
        "top_negative": fig.top_negative, "top_help_seeking": fig.top_help,
        "negative_terms": fig.negative_terms,
        "suppressed_posts": len(fig.suppressed), "suppressed_top": fig.suppressed[:SUPPRESSED_SHOWN],
    }


def chart_data(cfg: DigestConfig, brand: str | None, period: Period, previous: Period,
               fig: Figures) -> ChartData:
    """Hours (daily) or local days (weekly) of both periods, aligned bucket by bucket."""
    labels, bucket = _buckets(cfg, period)
    _, previous_bucket = _buckets(cfg, previous)
    stacks = {s: [0] * len(labels) for s in (*SENTIMENTS, "unscored")}
    for hour, counts in fig.volume.hours.items():
        for sentiment, n in counts.items():
            stacks[sentiment][bucket(hour)] += n
    line = [0] * len(labels)
    for hour, n in _hourly_totals(fig.previous).items():
        index = previous_bucket(hour)
        if index < len(line):  # a 25-hour day before a 24-hour one: its last hour has no bar
            line[index] += n
    zone = ZoneInfo(cfg.timezone)
    offsets = dict.fromkeys([_offset(period.start, zone), _offset(period.end, zone)])  # DST
    unit = "hour starting" if cfg.every == "daily" else "day"
    return ChartData(
        title=_name(cfg, brand, period), subtitle=_headline(fig),
        xlabel=f"{unit}, local time {cfg.timezone} ({' → '.join(offsets)})",
        labels=labels, stacks=stacks, previous=line,
        previous_label=f"the {'day' if cfg.every == 'daily' else 'week'} before "
                       f"({fig.previous.posts:,} posts)",
    )


def _buckets(cfg: DigestConfig, period: Period) -> tuple[list[str], Callable[[int], int]]:
    """Bucket labels, and a function from 'hours since the period start' to a bucket index."""
    zone = ZoneInfo(cfg.timezone)
    hours = int((period.end - period.start).total_seconds() // 3600)
    if cfg.every == "daily":
        starts = [period.start + timedelta(hours=h) for h in range(hours)]
        return [f"{s.astimezone(zone):%H:%M}" for s in starts], lambda hour: hour
    first = period.day - timedelta(days=7)
    days = [local_time(first + timedelta(days=i), cfg.at, zone) for i in range(7)]

    def day_of(hour: int) -> int:
        return bisect.bisect_right(days, period.start + timedelta(hours=hour)) - 1

    return [_day(d.astimezone(zone)) for d in days], day_of


def _hourly_totals(volume: Volume) -> dict[int, int]:
    return {hour: sum(counts.values()) for hour, counts in volume.hours.items()}


def _offset(moment: datetime, zone: ZoneInfo) -> str:
    text = moment.astimezone(zone).strftime("%z")  # "+0100"
    return "UTC" if zone.key == "UTC" else f"UTC{text[:3]}:{text[3:]}"

