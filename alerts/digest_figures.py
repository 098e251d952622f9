"""The numbers a digest reports, read from SQLite for one brand and one period.

Every query is a range on ``posts(brand, created_at)`` plus the brand's extra posts
(``post_extra_brands``: a post about two brands counts for both) — ``posts(created_at)`` for a
digest over all posts — reads each post's NEWEST score (a re-score by a newer model replaces
the old verdict) and skips cross-posts (one author's posts linked to their earlier identical
one), so one complaint pasted on three platforms counts once. Values are always bound
parameters; the only text ever inserted into a query is one of the constant brand filters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlite_utils import Database

from alerts.terms import top_terms
from listener.core.models import to_iso

HELP_MIN_URGENCY = 0.5  # a post "needs a reply" when the urgency head says so more likely than not
SENTIMENTS = ("negative", "neutral", "positive")
TERMS_MAX_POSTS = 5000  # newest posts read for the complaint terms (a day of a big brand)

# hours since the period start (exact: integer seconds), per sentiment and source
_BUCKETS = (
    "SELECT (CAST(strftime('%s', p.created_at) AS INTEGER) - ?) / 3600 AS hour,"
    " coalesce(s.sentiment, 'unscored') AS sentiment, coalesce(p.source, '') AS source,"
    " count(*) AS n, sum(coalesce(s.urgency, 0) >= ?) AS help"
    " FROM posts p LEFT JOIN scores s ON s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? AND p.duplicate_of IS NULL"
    " GROUP BY 1, 2, 3"
)
# is there anything to report? The same posts the volume counts, stopping at the first one
_ANY_POST = (
    "SELECT 1 FROM posts p"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? AND p.duplicate_of IS NULL LIMIT 1"
)
# most negative first, a post's probability weighted by the author's reach
_TOP_NEGATIVE = (
    "SELECT p.id FROM posts p JOIN scores s ON s.id ="
    " (SELECT max(id) FROM scores WHERE post_id = p.id)"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? AND p.duplicate_of IS NULL"
    " AND s.sentiment = 'negative' ORDER BY s.p_negative * CASE"
    " WHEN p.author_followers >= 100000 THEN 2.0 WHEN p.author_followers >= 10000 THEN 1.5"
    " WHEN p.author_followers >= 1000 THEN 1.2 ELSE 1.0 END DESC, p.id LIMIT ?"
)
_TOP_HELP = (
    "SELECT p.id FROM posts p JOIN scores s ON s.id ="
    " (SELECT max(id) FROM scores WHERE post_id = p.id)"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? AND p.duplicate_of IS NULL"
    " AND s.urgency >= ? ORDER BY s.urgency DESC, coalesce(p.author_followers, 0) DESC, p.id"
    " LIMIT ?"
)
# texts for the terms that set the period's negative posts apart from its other posts
_TEXTS = (
    "SELECT p.text, coalesce(s.sentiment, '') = 'negative' AS negative"
    " FROM posts p LEFT JOIN scores s ON s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? AND p.duplicate_of IS NULL"
    " ORDER BY p.created_at DESC LIMIT ?"
)
# alerts about the period's posts (held ones included), and spike alerts about the period
_ALERTS = (
    "SELECT a.rule, a.status, count(*) AS n FROM posts p JOIN alerts a ON a.post_id = p.id"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? GROUP BY 1, 2"
)
# alerts a rule's cap suppressed for the period's posts, most important first (by rank):
# people asked to be paged less, not to be told nothing; the digest names the best of them
_SUPPRESSED = (
    "SELECT p.id FROM posts p JOIN alerts a ON a.post_id = p.id"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? AND a.status = 'suppressed'"
    " GROUP BY p.id ORDER BY max(a.rank) DESC, p.id"
)
_SPIKE_ALERTS = (
    "SELECT a.rule, a.status, count(*) AS n FROM reports r JOIN alerts a ON a.report_id = r.id"
    " WHERE {brand} r.kind = 'spike' AND r.window_end > ? AND r.window_end <= ? GROUP BY 1, 2"
)


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
    for sql, alias in ((_ALERTS, "p"), (_SPIKE_ALERTS, "r")):
        for row in db.query(_scoped(sql, brand, alias),
                            [*_brand(brand, alias), *_range(start, end)]):
            by_status[row["status"]] += row["n"]
            by_rule[row["rule"]] += row["n"]
    return Figures(
        volume=volume, previous=previous, sources=sources, help_seeking=help_seeking,
        top_negative=_ids(db, _TOP_NEGATIVE, brand, [*_range(start, end), examples]),
        top_help=_ids(db, _TOP_HELP, brand, [*_range(start, end), HELP_MIN_URGENCY, examples]),
        negative_terms=_negative_terms(db, brand, start, end),
        alerts_by_status=by_status, alerts_by_rule=by_rule,
        suppressed=_ids(db, _SUPPRESSED, brand, _range(start, end)),
    )


def has_posts(db: Database, brand: str | None, start: datetime, end: datetime) -> bool:
    """Whether [start, end) holds a post the digest would count (one indexed probe).

    Run before any figure is read or chart drawn, so an empty period costs one lookup; it uses
    the volume's filter, so "no posts" here means the digest would have said "0 posts".
    """
    sql = _scoped(_ANY_POST, brand)
    return db.execute(sql, [*_brand(brand), *_range(start, end)]).fetchone() is not None


def _buckets(db: Database, brand: str | None, start: datetime,
             end: datetime) -> tuple[Volume, Counter[str], int]:
    hours: dict[int, Counter[str]] = {}
    sources: Counter[str] = Counter()
    help_seeking = 0
    params = [int(start.timestamp()), HELP_MIN_URGENCY, *_brand(brand), *_range(start, end)]
    for row in db.query(_scoped(_BUCKETS, brand), params):
        hours.setdefault(row["hour"], Counter())[row["sentiment"]] += row["n"]
        sources[row["source"] or "?"] += row["n"]
        help_seeking += row["help"]
    return Volume(hours), sources, help_seeking


def _negative_terms(db: Database, brand: str | None, start: datetime, end: datetime) -> list[str]:
    rows = db.execute(_scoped(_TEXTS, brand),
                      [*_brand(brand), *_range(start, end), TERMS_MAX_POSTS]).fetchall()
    return top_terms([text for text, negative in rows if negative],
                     [text for text, negative in rows if not negative],
                     exclude=[brand] if brand else [], limit=8)


def _ids(db: Database, sql: str, brand: str | None, tail: Sequence[object]) -> list[int]:
    return [row["id"] for row in db.query(_scoped(sql, brand), [*_brand(brand), *tail])]


def _scoped(sql: str, brand: str | None, alias: str = "p") -> str:
    """The query for one brand, or for every post when ``brand`` is None (no brands configured).

    A post belongs to a brand when it is its first brand or one of its extra brands (a post
    about two brands is in both brands' digests); reports (alias ``r``) have one brand."""
    if brand is None:
        return sql.format(brand="")
    if alias == "p":
        return sql.format(brand="(p.brand = ? OR p.id IN (SELECT post_id FROM post_extra_brands"
                                " WHERE brand = ?)) AND")
    return sql.format(brand=f"{alias}.brand = ? AND")


def _brand(brand: str | None, alias: str = "p") -> list[str]:
    """The values :func:`_scoped`'s brand filter binds."""
    if brand is None:
        return []
    return [brand, brand] if alias == "p" else [brand]


def _range(start: datetime, end: datetime) -> list[str]:
    return [to_iso(start), to_iso(end)]
