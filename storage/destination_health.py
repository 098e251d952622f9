"""Is a destination failing? Its pending alerts that keep failing, and when it last took one.

The two reads behind :func:`listener.health.failing_destinations`, which decides from them
whether a destination "keeps failing" (many retrying alerts and nothing delivered since the
oldest was queued) rather than holding one bad alert. Both read one destination's part of an
index (``tests/listener/test_metrics.py`` checks the plans): they run at every scrape.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.engine import Db

# A destination's pending alerts that failed their last N attempts in a row (a 429 is not an
# attempt): count, the oldest one's queue time and its error. Index (destination, status):
# reads the destination's queue only (twice: the oldest one's error is a subquery, as
# PostgreSQL has no bare column taken from the min() row; ties go to the lower id).
# Parameters: destination, attempts, destination, attempts.
_RETRYING = ("FROM alerts WHERE destination = ? AND status = 'pending' AND attempts >= ?"
             " AND last_error IS NOT NULL")
RETRYING_SQL = (
    f"SELECT count(*), min(created_at), (SELECT last_error {_RETRYING}"  # noqa: S608 (constants)
    f" ORDER BY created_at, id LIMIT 1) {_RETRYING}"
)
# When the destination last took an alert: one step down idx_alerts_delivered (migration 006).
LAST_DELIVERED_SQL = (
    "SELECT delivered_at FROM alerts WHERE destination = ? AND status = 'delivered'"
    " ORDER BY destination DESC, status DESC, delivered_at DESC LIMIT 1"
)


@dataclass(frozen=True)
class Retrying:
    """A destination's pending alerts that failed ``attempts`` attempts or more in a row."""

    count: int  # how many (at least one)
    oldest_queued_at: str  # ISO time the oldest of them was queued
    last_error: str | None  # the oldest one's last error, as recorded (not yet redacted)


def retrying(db: Db, destination: str, attempts: int) -> Retrying | None:
    """The pending alerts of ``destination`` whose last ``attempts`` (or more) delivery attempts
    all failed; None when it has none."""
    count, since, error = db.execute(RETRYING_SQL, [destination, attempts] * 2).fetchone()
    if not count:
        return None
    return Retrying(count=int(count), oldest_queued_at=since, last_error=error)


def last_delivered(db: Db, destination: str) -> str | None:
    """When ``destination`` last took an alert (ISO time); None when it never did."""
    row = db.execute(LAST_DELIVERED_SQL, [destination]).fetchone()
    delivered: str | None = None if row is None else row[0]
    return delivered
