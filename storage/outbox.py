"""The alert outbox: alerts are written with the decision to send them, then delivered later.

The alert id is a hash of rule + post + destination and the primary key, so the same post can
never alert the same destination twice for the same rule, however often the rules stage re-runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.core.models import to_iso
from storage.db import EXTRA_BRANDS_SQL, SCORE_COLUMNS, scrubbed
from storage.engine import Db
from storage.tx import immediate

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DRY_RUN, SUPPRESSED = "dry_run", "suppressed"  # recorded for people to see, never sent
# held over a rule's quiet hours, then ``digested``: sent as part of one roll-up report
HELD, DIGESTED = "held", "digested"
# the post is one of many reports of the same problem: it travels in its incident's alert
INCIDENT = "incident"
STATUSES = (PENDING, DELIVERED, FAILED, DRY_RUN, SUPPRESSED, HELD, DIGESTED, INCIDENT)
# the rank of a report's alerts (post alerts rank urgency × reach, 0 to about 10): an incident
# or a spike goes before single posts, a digest after the urgent ones
REPORT_RANK = {"high": 100.0, "normal": 1.0, "low": 0.0}
# the lease a worker holds on each alert of a group it sends (storage.claims): ``alert:<id>``
ALERT_LEASE = "alert:"
# when a group (one post or report, one destination) is due: every alert's wait is over, or
# it was measured by a clock since set back (see ``due``); ?2 is now
_GROUP_DUE = (
    "max(next_attempt_at) <= ?2 OR max(created_at) > ?2"
    " OR max((SELECT max(d.at) FROM deliveries d WHERE d.alert_id = a.id)) > ?2"
)
# a group none of whose alerts another worker (?5) holds: an unexpired ``alert:`` lease (?6)
_FREE = (
    " AND max(CASE WHEN EXISTS (SELECT 1 FROM leases l WHERE l.name = CAST(?6 AS TEXT) || a.id"
    " AND l.owner <> ?5 AND l.until >= ?2) THEN 1 ELSE 0 END) = 0"
)


def alert_id(rule: str, post_key: str, destination: str) -> str:
    """Deterministic id; also sent as the idempotency key where a remote supports one."""
    digest = hashlib.sha256(f"{rule}\x1f{post_key}\x1f{destination}".encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True)
class NewAlert:
    rule: str
    destination: str
    post_id: int
    score_id: int
    post_key: str
    priority: str = "normal"
    status: str = PENDING
    rank: float = 0.0  # urgency × reach: what a cap keeps and dispatch sends first

    @property
    def id(self) -> str:
        return alert_id(self.rule, self.post_key, self.destination)


def enqueue(
    db: Db, alerts: Iterable[NewAlert], evaluated_score_ids: Iterable[int], now: datetime
) -> int:
    """Write alerts and mark the scores evaluated in one transaction; returns alerts added.

    A post that a destination has already been sent (or is being sent) a message about gets no
    second one: a new alert for it (a rule added later, a re-score by a new model) is recorded
    only while that post's alerts to the destination are still waiting, so it joins their one
    message. Runs inside the caller's transaction when there is one.
    """
    stamp = to_iso(now)
    rows = [
        (a.id, a.post_id, a.score_id, a.rule, a.destination, a.status, a.priority, a.rank,
         stamp, stamp, a.post_id, a.destination)
        for a in alerts
    ]
    with immediate(db):
        cur = db.conn.executemany(
            "INSERT INTO alerts (id, post_id, score_id, rule, destination, status, priority,"
            " rank, next_attempt_at, created_at) SELECT ?,?,?,?,?,?,?,?,?,? WHERE NOT EXISTS"
            " (SELECT 1 FROM alerts o WHERE o.post_id = ? AND o.destination = ?"
            " AND (o.status IN ('delivered', 'failed') OR o.attempts > 0))"
            " ON CONFLICT(id) DO NOTHING",
            rows,
        )
        added = max(int(cur.rowcount), 0)
        db.conn.executemany(
            "UPDATE scores SET rules_at = ? WHERE id = ?",
            [(stamp, sid) for sid in evaluated_score_ids],
        )
    return added


def demote_lowest(
    db: Db, rule: str, destination: str, since: datetime, above: float
) -> str | None:
    """Suppress the lowest-ranked alert of ``rule`` to ``destination`` still waiting for its
    first attempt since ``since`` if it ranks below ``above``: a cap keeps the most important
    alerts, not the first to arrive (of equals, the newest; then the lowest id, so both engines
    pick the same). Returns its id, or None when every one ranks higher.
    Call inside the transaction that records the alert taking its place."""
    row = db.execute(
        "SELECT id FROM alerts WHERE rule = ? AND destination = ? AND created_at >= ?"
        " AND status = ? AND attempts = 0 AND rank < ?"
        " ORDER BY rank, created_at DESC, id LIMIT 1",
        [rule, destination, to_iso(since), PENDING, above],
    ).fetchone()
    if row is None:
        return None
    db.execute("UPDATE alerts SET status = ? WHERE id = ?", [SUPPRESSED, row[0]])
    return str(row[0])


def fold_into_incident(db: Db, post_ids: Iterable[int]) -> int:
    """Alerts of incident members that are still waiting for their first attempt travel in the
    incident's alert instead (status ``incident``); those already sent stay as they are."""
    ids = list(post_ids)
    if not ids:
        return 0
    with immediate(db):
        return int(db.conn.executemany(
            "UPDATE alerts SET status = ? WHERE post_id = ? AND status = ? AND attempts = 0",
            [(INCIDENT, pid, PENDING) for pid in ids],
        ).rowcount)


def sent_since(db: Db, rule: str, destination: str, since: datetime) -> int:
    """Alerts of a rule to a destination that count against its cap (not dry runs/suppressed)."""
    row = db.execute(
        "SELECT count(*) FROM alerts WHERE rule = ? AND destination = ? AND created_at >= ?"
        " AND status IN (?, ?, ?)",
        [rule, destination, to_iso(since), PENDING, DELIVERED, FAILED],
    ).fetchone()
    return int(row[0])


def held(db: Db, rule: str, before: datetime) -> list[dict[str, Any]]:
    """A rule's alerts held over quiet hours and created before ``before``, with their scores."""
    sql = (
        "SELECT a.id AS alert_id, a.destination, a.priority, a.created_at, a.post_id,"
        " s.sentiment, s.urgency, p.brand FROM alerts a LEFT JOIN posts p ON p.id = a.post_id"
        " LEFT JOIN scores s ON s.id = a.score_id"
        " WHERE a.status = ? AND a.rule = ? AND a.created_at < ? ORDER BY a.created_at, a.id"
    )
    return [dict(r) for r in db.query(sql, [HELD, rule, to_iso(before)])]


def mark_digested(db: Db, alert_ids: Iterable[str]) -> None:
    """Held alerts now travel in a roll-up report; call in the transaction that queues it."""
    with immediate(db):
        db.conn.executemany(
            "UPDATE alerts SET status = ? WHERE id = ? AND status = ?",
            [(DIGESTED, a, HELD) for a in alert_ids],
        )


def due(db: Db, now: datetime, limit: int, destination: str | None = None,
        free_for: str | None = None) -> list[dict[str, Any]]:
    """Pending alerts of up to ``limit`` due *groups*, joined with post and score.

    A group is one post (or report) and one destination: every pending alert of it comes back
    together, whatever the limit, so the destination gets ONE message naming every rule.
    With ``destination``, only that destination's groups (one dispatch pass per destination).
    Groups come most important first (the highest rank among their alerts: urgency × reach, as
    the queue ranks), then oldest; a group is due when all its alerts are (an alert that joins a
    group waiting for a retry waits with it).

    Report alerts (spikes, digests, incidents) have no post: their post and score columns are
    NULL and ``report_id`` is set.

    A group created, or last attempted, *after* ``now`` is due too: its wait was measured by a
    clock that has since been set back (NTP stepping a fast clock back, a VM restored), and
    waiting for that clock to catch up again could hold it for hours or days.

    Groups as important and as old go by destination, then post (a report first, then posts by
    id), on both engines: ``NULLS FIRST`` is SQLite's default and not PostgreSQL's, and the
    group list is ordered in full before the limit cuts it.

    With ``free_for`` (a worker id; many workers share the database), only groups none of whose
    alerts another worker holds (:mod:`storage.claims`): the limit counts the groups it may
    claim, not those others are sending.
    """
    sql = (  # constant clauses; values are bound
        "WITH g AS (SELECT destination, post_id, report_id, max(rank) AS grank,"  # noqa: S608
        " min(created_at) AS gfirst FROM alerts a WHERE status = ?1"
        " AND (CAST(?4 AS TEXT) IS NULL OR destination = ?4)"
        f" GROUP BY destination, post_id, report_id HAVING ({_GROUP_DUE})"
        f"{_FREE if free_for is not None else ''}"
        " ORDER BY grank DESC, gfirst, destination, post_id NULLS FIRST,"
        " report_id NULLS FIRST LIMIT ?3)"
        " SELECT a.id AS alert_id, a.rule, a.destination, a.attempts, a.priority, a.report_id,"
        f" a.rank, {SCORE_COLUMNS}, {EXTRA_BRANDS_SQL} AS also_brands, p.* FROM g JOIN alerts a"
        " ON a.status = ?1 AND a.destination = g.destination"
        " AND a.post_id IS NOT DISTINCT FROM g.post_id"
        " AND a.report_id IS NOT DISTINCT FROM g.report_id LEFT JOIN posts p ON p.id = a.post_id"
        " LEFT JOIN scores s ON s.id = a.score_id"
        " ORDER BY g.grank DESC, g.gfirst, g.destination, g.post_id NULLS FIRST,"
        " g.report_id NULLS FIRST, a.created_at, a.id"
    )
    params: list[Any] = [PENDING, to_iso(now), limit, destination]
    if free_for is not None:
        params += [free_for, ALERT_LEASE]
    return [dict(r) for r in db.query(sql, params)]


def group_due(db: Db, alert_ids: Iterable[str], now: datetime, attempts: int) -> bool:
    """Whether every one of ``alert_ids`` (one group) is still pending, the group due by
    :func:`due`'s rule and its attempts still ``attempts`` (as when it was read). A worker
    checks a group when it claims it and again just before sending it: meanwhile the
    destination may have asked every worker to wait (Retry-After), or another worker sent it."""
    ids = list(alert_ids)
    if not ids:
        return False
    marks = ", ".join(f"?{i}" for i in range(3, 3 + len(ids)))  # placeholders only
    row = db.execute(
        f"SELECT count(*), CASE WHEN {_GROUP_DUE} THEN 1 ELSE 0 END,"  # noqa: S608
        f" max(attempts) FROM alerts a WHERE a.status = ?1 AND a.id IN ({marks})",
        [PENDING, to_iso(now), *ids],
    ).fetchone()
    return (row is not None and int(row[0]) == len(ids) and int(row[1] or 0) == 1
            and int(row[2] or 0) == attempts)


def remote_id(db: Db, alert: str) -> str | None:
    """The remote id (Slack ts, ticket id …) an alert was delivered as; None until delivered."""
    row = db.execute("SELECT remote_id FROM alerts WHERE id = ? AND status = ?",
                     [alert, DELIVERED]).fetchone()
    return row[0] if row else None


def thread_parent(db: Db, destination: str, platform: str, thread: str) -> str | None:
    """Remote id of the first alert delivered to ``destination`` about this conversation."""
    row = db.execute(
        "SELECT a.remote_id FROM alerts a JOIN posts p ON p.id = a.post_id"
        " WHERE a.destination = ? AND a.status = ? AND a.remote_id IS NOT NULL"
        " AND p.platform = ? AND p.thread = ? ORDER BY a.delivered_at, a.id LIMIT 1",
        [destination, DELIVERED, platform, thread],
    ).fetchone()
    return row[0] if row else None


def next_due_at(db: Db, destinations: Iterable[str]) -> str | None:
    """When the next pending alert for one of ``destinations`` is due (None: nothing pending)."""
    names = list(destinations)
    if not names:
        return None
    marks = ", ".join("?" * len(names))  # placeholders only; names are bound
    row = db.execute(
        f"SELECT min(next_attempt_at) FROM alerts WHERE status = ? AND destination IN ({marks})",  # noqa: S608
        [PENDING, *names],
    ).fetchone()
    return row[0] if row else None


def begin_attempt(db: Db, alert_ids: Iterable[str], attempt: int) -> None:
    """Commit that attempt ``attempt`` starts, BEFORE the request goes out.

    If the process dies after the remote acted but before the outcome is recorded, the next run
    sees ``attempts`` > 0 and sinks without idempotency keys search for the alert first.
    """
    with immediate(db):
        db.conn.executemany(
            "UPDATE alerts SET attempts = ? WHERE id = ?", [(attempt, a) for a in alert_ids]
        )


def record_delivered(
    db: Db, alert: str, attempt: int, remote_id: str | None, now: datetime, ms: float
) -> None:
    stamp = to_iso(now)
    with immediate(db):
        db.execute(
            "UPDATE alerts SET status = ?, attempts = ?, remote_id = ?, delivered_at = ?,"
            " last_error = NULL WHERE id = ?",
            [DELIVERED, attempt, remote_id, stamp, alert],
        )
        db.execute(
            "INSERT INTO deliveries (alert_id, attempt, at, outcome, remote_id, duration_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)", [alert, attempt, stamp, DELIVERED, remote_id,
                                           round(ms, 1)],
        )


def record_failure(
    db: Db,
    alert: str,
    attempt: int,
    now: datetime,
    *,
    error: str,
    status_code: int | None,
    retry_at: datetime | None,
    ms: float,
    outcome: str | None = None,
) -> None:
    """Record a failed attempt: rescheduled at ``retry_at``, or parked as failed when None.

    The error is scrubbed here (secrets, credential URL parameters), not by the callers: an
    error body may echo the URL it was sent to, and this text is shown by the dashboard and
    ``alerts list``."""
    stamp = to_iso(now)
    error = scrubbed(error)
    status = PENDING if retry_at is not None else FAILED
    outcome = outcome or ("retry" if retry_at is not None else FAILED)
    with immediate(db):
        db.execute(
            "UPDATE alerts SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?"
            " WHERE id = ?",
            [status, attempt, to_iso(retry_at) if retry_at else None, error, alert],
        )
        db.execute(
            "INSERT INTO deliveries (alert_id, attempt, at, outcome, status_code, error,"
            " duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [alert, attempt, stamp, outcome, status_code, error, round(ms, 1)],
        )


def defer_destination(db: Db, destination: str, until: datetime) -> int:
    """Hold every pending alert of a rate-limited destination until ``until`` (Retry-After)."""
    stamp = to_iso(until)
    with immediate(db):
        return int(db.execute(
            "UPDATE alerts SET next_attempt_at = ? WHERE status = ? AND destination = ?"
            " AND next_attempt_at < ?",
            [stamp, PENDING, destination, stamp],
        ).rowcount)


def requeue_failed(db: Db, now: datetime, ids: Iterable[str] = ()) -> int:
    """Put parked alerts (all, or the given ids) back in the queue with a fresh attempt count.

    Fresh, but not zero once an attempt was made: an earlier attempt may have landed (a timeout
    after the remote acted), and only an attempt number above 1 makes the sinks that can look
    for the alert id (Jira, GitHub, Zendesk, Slack bot) look before creating again. So the count
    restarts at 1, and the alert gets ``max_attempts - 1`` more attempts.
    """
    wanted = list(ids)
    sql = ("UPDATE alerts SET status = ?,"
           " attempts = CASE WHEN attempts < 1 THEN attempts ELSE 1 END, next_attempt_at = ?"
           " WHERE status = ?")
    params: list[Any] = [PENDING, to_iso(now), FAILED]
    if wanted:
        sql += f" AND id IN ({', '.join('?' * len(wanted))})"
        params += wanted
    with immediate(db):
        return int(db.execute(sql, params).rowcount)
