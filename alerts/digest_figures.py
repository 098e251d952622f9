"""The numbers a digest reports for one brand and one period, from :mod:`storage.windows`
(posts) and :mod:`storage.window_alerts` (alerts).

A post counts for each of its brands (``brand`` None: every post, no brands configured), by its
NEWEST score, and a cross-post (one author's post linked to their earlier identical one) does
not count again, so one complaint pasted on three platforms counts once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlite_utils import Database

from alerts.terms import top_terms
from storage import window_alerts, windows

HELP_MIN_URGENCY = 0.5  # a post "needs a reply" when the urgency head says so more likely than not
SENTIMENTS = ("negative", "neutral", "positive")
TERMS_MAX_POSTS = 5000  # newest posts read for the complaint terms (a day of a big brand)


@dataclass(frozen=True)
class Volume:
    """Posts per hour of a period (hour 0 starts at the period start) and sentiment."""

    hours: dict[int, Counter[str]] = field(default_factory=dict)

    @property
    def sentiments(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.hours.values():
            total.update(counts)
        return total

    @property
    def posts(self) -> int:
        return sum(self.sentiments.values())

    def shares(self) -> dict[str, float] | None:
        """Percent of SCORED posts per sentiment; None when no post is scored yet."""
        counts = self.sentiments
        scored = sum(counts[s] for s in SENTIMENTS)
        return {s: 100 * counts[s] / scored for s in SENTIMENTS} if scored else None


@dataclass(frozen=True)
class Figures:
    """Everything a digest says about one brand and period, before it is put into words."""

    volume: Volume
    previous: Volume
    sources: Counter[str]
    help_seeking: int
    top_negative: list[int]
    top_help: list[int]
    negative_terms: list[str]  # what the complaints were about, best first
    alerts_by_status: Counter[str]
    alerts_by_rule: Counter[str]
    suppressed: list[int] = field(default_factory=list)  # posts whose alerts a cap held back


def read_figures(db: Database, brand: str | None, start: datetime, end: datetime,
                 previous_start: datetime, examples: int) -> Figures:
    """The figures for [start, end) compared with [previous_start, start)."""
    volume, sources, help_seeking = _buckets(db, brand, start, end)
    previous, _, _ = _buckets(db, brand, previous_start, start)
    by_status: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    for count in (*window_alerts.post_alert_counts(db, brand, start, end),
                  *window_alerts.spike_alert_counts(db, brand, start, end)):
        by_status[count.status] += count.alerts
        by_rule[count.rule] += count.alerts
    return Figures(
        volume=volume, previous=previous, sources=sources, help_seeking=help_seeking,
        top_negative=windows.brand_top_negative(db, brand, start, end, examples),
        top_help=windows.brand_top_help(db, brand, start, end, HELP_MIN_URGENCY, examples),
        negative_terms=_negative_terms(db, brand, start, end),
        alerts_by_status=by_status, alerts_by_rule=by_rule,
        suppressed=window_alerts.suppressed_posts(db, brand, start, end),
    )


def has_posts(db: Database, brand: str | None, start: datetime, end: datetime) -> bool:
    """Whether [start, end) holds a post the digest would count: run before any figure is read
    or chart drawn, so an empty period costs one lookup (:func:`storage.windows.brand_has_posts`,
    the volume's filter: "no posts" here means the digest would have said "0 posts")."""
    return windows.brand_has_posts(db, brand, start, end)


def _buckets(db: Database, brand: str | None, start: datetime,
            end: datetime) -> tuple[Volume, Counter[str], int]:
    hours: dict[int, Counter[str]] = {}
    sources: Counter[str] = Counter()
    help_seeking = 0
    for bucket in windows.brand_hours(db, brand, start, end, HELP_MIN_URGENCY):
        hours.setdefault(bucket.hour, Counter())[bucket.sentiment] += bucket.posts
        sources[bucket.source or "?"] += bucket.posts
        help_seeking += bucket.help
    return Volume(hours), sources, help_seeking


def _negative_terms(db: Database, brand: str | None, start: datetime, end: datetime) -> list[str]:
    rows = windows.brand_texts(db, brand, start, end, TERMS_MAX_POSTS)
    return top_terms([row.text for row in rows if row.negative],
                     [row.text for row in rows if not row.negative],
                     exclude=[brand] if brand else [], limit=8)
