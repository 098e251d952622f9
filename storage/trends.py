"""Trend aggregates for the dashboard's overview: volume and sentiment over time, spikes, and
the negative posts whose words make the top terms.

Volume and sentiment come from two rollups kept by triggers (migration 005): ``post_hours``
for views per hour (up to a week) and ``post_days`` for views per day or week, so a 90-day
overview reads a few thousand cells instead of a million posts with their scores. Time windows
are half-open ``[start, end)``, aligned to the hour, or to the day for daily and weekly views.

Since migration 009 a post scored by a model that does not understand its language counts in
an 'unsupported' cell instead of its (guessed) sentiment's: trends count those posts apart, in
the total but not in the negative share, which a guess must not move.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from listener.core.models import to_iso
from storage import rollups
from storage.engine import Db, pick

# the rollups' cell labels: sentiments, posts no model understood, posts not scored yet
SENTIMENTS = ("negative", "neutral", "positive", "unsupported", "unscored")
# per bucket: the rollup to read, the width of its time key
_ROLLUP = {"hour": ("post_hours", 13), "day": ("post_days", 10), "week": ("post_days", 10)}
BUCKETS = ("hour", "day", "week")
# a day's week: the Monday on or before it, as 'YYYY-MM-DD'. A pick: SQLite's date modifiers
# have no PostgreSQL spelling, and PostgreSQL's date_trunc no SQLite one. date_trunc('week')
# is ISO's week, which starts on Monday too; the cast to timestamp, not timestamptz, keeps the
# session's time zone out of it.
_WEEK_SQLITE = "date({day}, '-6 days', 'weekday 1')"
_WEEK_PG = "to_char(date_trunc('week', CAST({day} AS timestamp)), 'YYYY-MM-DD')"
TERM_SAMPLE = 1000  # newest negative posts per period whose words are counted


@dataclass(frozen=True)
class Period:
    """A half-open time window ``[start, end)`` on whole hours (UTC), or whole days."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, hours: int, whole_days: bool = False) -> Period:
        """``hours`` hours up to the end of the hour (or day) ``end`` falls in: the current,
        partial bucket is the last one shown."""
        top = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if whole_days:
            top = top.replace(hour=0) + timedelta(days=1)
        else:
            top += timedelta(hours=1)
        return cls(top - timedelta(hours=hours), top)

    def previous(self) -> Period:
        """The window of the same length just before this one, for comparisons."""
        return Period(self.start - (self.end - self.start), self.start)

    def keys(self, width: int = 13) -> tuple[str, str]:
        """Bucket keys of both ends as the rollups store them ('2026-11-20T08', '2026-11-20')."""
        return to_iso(self.start)[:width], to_iso(self.end)[:width]


@dataclass
class Counts:
    """Posts by current sentiment, plus how many look help-seeking (urgency ≥ 0.5).

    ``unsupported``: posts whose model did not understand their language; their sentiment is a
    guess, so they count here instead (``urgent`` still counts them: it is the model's guess
    too, and the queue holds them all for a person to read).
    """

    negative: int = 0
    neutral: int = 0
    positive: int = 0
    unsupported: int = 0
    unscored: int = 0
    urgent: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in SENTIMENTS)

    @property
    def negative_share(self) -> float | None:
        """Negative posts among posts scored in a language the model understood (a guess about
        another language would move the share without news); None when there are none."""
        scored = self.negative + self.neutral + self.positive
        return self.negative / scored if scored else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "negative_share": self.negative_share}


def week_of(db: Db, day: str) -> str:
    """SQL of the Monday on or before ``day`` (SQL of a 'YYYY-MM-DD' text) on ``db``'s engine:
    the key :func:`bucket_key` gives a moment of that day."""
    return pick(db, sqlite=_WEEK_SQLITE, postgresql=_WEEK_PG).format(day=day)


def bucket_key(moment: datetime, bucket: str) -> str:
    """The label of the bucket a moment falls in; the same keys :func:`counts_sql` produces."""
    day = moment.date()
    if bucket == "hour":
        return to_iso(moment)[:13]
    if bucket == "day":
        return day.isoformat()
    return (day - timedelta(days=day.weekday())).isoformat()


def bucket_keys(period: Period, bucket: str) -> list[str]:
    """Every bucket the period touches, in order, so empty buckets show as zeros. A period
    from midnight is walked a day at a time for days and weeks (a 90-day view and its
    spikes' baseline are a few hundred steps, not four thousand)."""
    keys: dict[str, None] = {}
    moment = period.start
    daily = bucket != "hour" and moment == moment.replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
    step = timedelta(days=1) if daily else timedelta(hours=1)
    while moment < period.end:
        keys[bucket_key(moment, bucket)] = None
        moment += step
    return list(keys)


def counts_by(
    db: Db, period: Period, bucket: str, group: str, brand: str | None = None,
    source: str | None = None,
) -> dict[str, Counts]:
    """Counts per time bucket ('hour', 'day', 'week'; ``group`` 'bucket'), per brand or per
    source within a period, summed by SQLite: Python only sees a few hundred rows.
    Daily and weekly views need a period on whole days (``Period.ending(..., whole_days=True)``).
    """
    if group != "bucket" and bucket == "hour":
        return _by_days_and_hours(db, period, group, brand, source)
    return _read(db, period, bucket, group, brand, source)


def _read(db: Db, period: Period, bucket: str, group: str, brand: str | None,
          source: str | None) -> dict[str, Counts]:
    """``counts_by`` from the bucket's own rollup (:func:`counts_sql`)."""
    out: dict[str, Counts] = {}
    for key, sentiment, n, urgent in db.execute(*counts_sql(db, period, bucket, group, brand,
                                                            source)).fetchall():
        counts = out.setdefault(key, Counts())
        if sentiment in SENTIMENTS:
            setattr(counts, sentiment, getattr(counts, sentiment) + n)
        counts.urgent += urgent
    return out


def _by_days_and_hours(db: Db, period: Period, group: str, brand: str | None,
                       source: str | None) -> dict[str, Counts]:
    """Per brand or source over an hourly period: its whole days from ``post_days`` and only
    the hours at either end from ``post_hours`` (the same cells, kept by the same triggers),
    so a 30-day view per hour sums 30 day rows per brand, not 720 hour rows."""
    first = period.start.replace(hour=0) + (timedelta(days=1) if period.start.hour else
                                            timedelta(0))
    last = period.end.replace(hour=0)
    if last <= first:
        parts = [(period, "hour")]
    else:
        parts = [(Period(period.start, first), "hour"), (Period(first, last), "day"),
                 (Period(last, period.end), "hour")]
    out: dict[str, Counts] = {}
    for part, width in parts:
        if part.start < part.end:
            for key, counts in _read(db, part, width, group, brand, source).items():
                out[key] = total({"a": out[key], "b": counts}) if key in out else counts
    return out


def counts_sql(db: Db, period: Period, bucket: str, group: str, brand: str | None,
               source: str | None) -> tuple[str, list[Any]]:
    """The SQL behind ``counts_by`` (bench/dashboard.py prints its query plan)."""
    table, width = _ROLLUP[bucket]  # constants chosen by key, never user text
    key = week_of(db, "bucket") if bucket == "week" else "bucket"
    expr = {"bucket": key, "brand": "brand", "source": "source"}[group]
    # the cells, and on PostgreSQL the moves of score batches not folded into them yet
    cells = f"{rollups.cells(db, table)} own"
    if brand is not None or group == "brand":  # posts about two brands count for each
        cells = (f"(SELECT * FROM {cells} UNION ALL"  # noqa: S608
                 f" SELECT * FROM {rollups.cells(db, table + '_extra')} extra) cells")
    sql = (
        f"SELECT {expr} AS k, sentiment, sum(n), sum(urgent) FROM {cells}"  # noqa: S608
        " WHERE bucket >= ?1 AND bucket < ?2 AND (CAST(?3 AS TEXT) IS NULL OR brand = ?3)"
        " AND (CAST(?4 AS TEXT) IS NULL OR source = ?4) GROUP BY 1, 2"
    )
    return sql, [*period.keys(width), brand, source]


def total(counts: dict[str, Counts]) -> Counts:
    """All groups together."""
    out = Counts()
    for c in counts.values():
        for name in (*SENTIMENTS, "urgent"):
            setattr(out, name, getattr(out, name) + getattr(c, name))
    return out


def spikes(
    db: Db, period: Period, brand: str | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    """Spike reports whose window overlaps the period, with what the detector said about them
    (summary, top terms); a brand-wide spike shows on every source."""
    sql = (
        "SELECT id, name, brand, source, window_start, window_end, title, payload FROM reports"
        " WHERE kind = 'spike' AND window_end > ?1 AND window_start < ?2"
        " AND (CAST(?3 AS TEXT) IS NULL OR brand = ?3)"
        " AND (CAST(?4 AS TEXT) IS NULL OR source IS NULL OR source = ?4)"
        " ORDER BY window_start, id LIMIT 500"
    )
    out = []
    for row in db.query(sql, [to_iso(period.start), to_iso(period.end), brand, source]):
        payload = json.loads(row.pop("payload") or "{}")
        out.append({**row, "summary": str(payload.get("summary") or ""),
                    "terms": [str(t) for t in payload.get("terms") or []][:8]})
    return out


TERMS_SQL = (
    "SELECT p.text FROM triage t JOIN posts p ON p.id = t.post_id"
    " WHERE t.sentiment = 'negative' AND t.created_at >= ?1 AND t.created_at < ?2"
    " AND (CAST(?3 AS TEXT) IS NULL OR t.brand = ?3 OR t.post_id IN (SELECT post_id"
    " FROM post_extra_brands WHERE brand = ?3)) AND (CAST(?4 AS TEXT) IS NULL OR t.source = ?4)"
    " ORDER BY t.created_at DESC LIMIT ?5"
)


def negative_texts(
    db: Db, period: Period, brand: str | None = None, source: str | None = None,
    sample: int = TERM_SAMPLE,
) -> list[str]:
    """The text of the newest ``sample`` negative posts of the period, for their top terms.

    Reads the triage queue, which holds every negative post except cross-posts, so a text
    posted on five platforms counts once.
    """
    params = [to_iso(period.start), to_iso(period.end), brand, source, sample]
    return [row[0] for row in db.execute(TERMS_SQL, params).fetchall()]


# posts of the period, newest first (ties by id, as storage/windows.py's texts), cross-posts
# once. Built from constant fragments, one per filter set, so that SQLite walks the posts index
# of the filter (brand or source, then created_at) instead of the whole period.
_POST_TEXTS = (
    "SELECT p.text FROM posts p LEFT JOIN scores s ON s.id ="
    " (SELECT max(id) FROM scores WHERE post_id = p.id)"
    " WHERE p.created_at >= ? AND p.created_at < ? AND p.duplicate_of IS NULL{filters}"
    " ORDER BY p.created_at DESC, p.id DESC LIMIT ?"
)
_NOT_NEGATIVE = " AND coalesce(s.sentiment, '') <> 'negative'"


def post_texts(
    db: Db, period: Period, brand: str | None = None, source: str | None = None,
    sample: int = TERM_SAMPLE, *, negative: bool = True,
) -> list[str]:
    """The text of the newest ``sample`` posts of the period whose first brand is ``brand``
    (a sample: a post's extra brands are left out, which keeps to one index); ``negative=False``
    leaves the negative ones out. What top terms are compared with: the overview ranks the
    phrases of negative posts against the period's other posts, and a spike found in the
    history against the posts before it."""
    filters = ("" if brand is None else " AND p.brand = ?") + (
        "" if source is None else " AND p.source = ?") + ("" if negative else _NOT_NEGATIVE)
    params = [to_iso(period.start), to_iso(period.end),
              *(value for value in (brand, source) if value is not None), sample]
    return [row[0] for row in db.execute(_POST_TEXTS.format(filters=filters), params)]


def newest_post_at(db: Db) -> str | None:
    """When the newest post was written: the overview offers to jump there when a range is empty."""
    row = db.execute("SELECT max(created_at) FROM posts").fetchone()
    return row[0] if row else None
