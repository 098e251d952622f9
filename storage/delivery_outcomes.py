"""What one run delivered: a mark in the ``deliveries`` log before it, and each alert's latest
outcome after the mark.

``run --once`` takes the mark when it starts (ids, not times: immune to a clock that jumps
during the run) and reads the outcomes when it ends, for its progress line, its summary and its
exit status (4 when it parked alerts as failed). ``deliveries.id`` is an INTEGER PRIMARY KEY, so
"after the mark" is a rowid range, whatever the table's size.
"""

from __future__ import annotations

from storage.engine import Db

# Deliveries recorded after a mark (``deliveries.id``, an INTEGER PRIMARY KEY: a rowid range,
# whatever the table's size), each alert's latest attempt: what one `run --once` did.
DELIVERIES_MARK_SQL = "SELECT coalesce(max(id), 0) FROM deliveries"
# (A GROUP BY alert_id would walk the whole alert_id index instead of the rowid range.)
OUTCOMES_SINCE_SQL = (
    "SELECT d.outcome, count(*) FROM deliveries d WHERE d.id > ? AND NOT EXISTS"
    " (SELECT 1 FROM deliveries n WHERE n.alert_id = d.alert_id AND n.id > d.id)"
    " GROUP BY d.outcome"
)


def deliveries_mark(db: Db) -> int:
    """The newest delivery attempt's id (0 when none, or before the schema has a deliveries
    table): attempts after it are a later run's."""
    if "deliveries" not in db.table_names():
        return 0
    return int(db.execute(DELIVERIES_MARK_SQL).fetchone()[0])


def outcomes_since(db: Db, mark: int) -> dict[str, int]:
    """Alerts attempted after ``mark`` by their latest outcome (delivered, retry, failed,
    rate_limited): what one run did, whatever its clock said."""
    return {row[0]: int(row[1]) for row in db.execute(OUTCOMES_SINCE_SQL, [mark]).fetchall()}
