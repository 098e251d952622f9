"""The alerts raised about a brand's time window: how many per rule and status, and the posts
whose alerts a rule's cap suppressed. A digest reports them for its period.

Brands are scoped as :mod:`storage.windows` scopes them (:func:`~storage.windows.brand_scoped`:
a post's extra brands count, None means every post); cross-posts are not left out here, since
each alert was raised (and counted against a cap) on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from listener.core.models import to_iso
from storage.engine import Db
from storage.windows import brand_params, brand_scoped

# alerts about the period's posts (held ones included); in (rule, status) order on both
# engines (SQLite's grouping gives that order anyway: no second sort)
_POST_ALERTS = (
    "SELECT a.rule, a.status, count(*) AS n FROM posts p JOIN alerts a ON a.post_id = p.id"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? GROUP BY 1, 2 ORDER BY 1, 2"
)
# spike alerts about the period: their report's window ends in it
_SPIKE_ALERTS = (
    "SELECT a.rule, a.status, count(*) AS n FROM reports r JOIN alerts a ON a.report_id = r.id"
    " WHERE {brand} r.kind = 'spike' AND r.window_end > ? AND r.window_end <= ? GROUP BY 1, 2"
    " ORDER BY 1, 2"
)
# posts whose alerts a rule's cap suppressed, most important first (by rank)
_SUPPRESSED = (
    "SELECT p.id FROM posts p JOIN alerts a ON a.post_id = p.id"
    " WHERE {brand} p.created_at >= ? AND p.created_at < ? AND a.status = 'suppressed'"
    " GROUP BY p.id ORDER BY max(a.rank) DESC, p.id"
)


@dataclass(frozen=True)
class AlertCount:
    """How many alerts of one rule are in one status."""

    rule: str
    status: str
    alerts: int


def post_alert_counts(db: Db, brand: str | None, start: datetime,
                      end: datetime) -> list[AlertCount]:
    """Alerts about the brand's posts written in ``[start, end)`` per rule and status (held,
    suppressed and dry-run ones included: a digest says what was and was not sent)."""
    return _counts(db, _POST_ALERTS, brand, "p", start, end)


def spike_alert_counts(db: Db, brand: str | None, start: datetime,
                       end: datetime) -> list[AlertCount]:
    """Alerts of the brand's spike reports whose window ends in ``(start, end]``, per rule and
    status: the spikes of a period are part of its story."""
    return _counts(db, _SPIKE_ALERTS, brand, "r", start, end)


def _counts(db: Db, sql: str, brand: str | None, alias: str, start: datetime,
            end: datetime) -> list[AlertCount]:
    params = [*brand_params(brand, alias), to_iso(start), to_iso(end)]
    return [AlertCount(row["rule"], row["status"], row["n"])
            for row in db.query(brand_scoped(sql, brand, alias), params)]


def suppressed_posts(db: Db, brand: str | None, start: datetime,
                     end: datetime) -> list[int]:
    """Ids of the brand's posts of ``[start, end)`` whose alerts a rule's cap suppressed, most
    important first (their highest rank): people asked to be paged less, not to be told
    nothing, so a digest names the best of them."""
    params = [*brand_params(brand), to_iso(start), to_iso(end)]
    return [row["id"] for row in db.query(brand_scoped(_SUPPRESSED, brand), params)]
