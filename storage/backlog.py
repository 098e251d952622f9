"""The pipeline's backlog: work waiting for its next stage, counted cheaply for the health
picture (``/healthz``, ``/metrics``, ``listener status``, ``run --once``'s progress line).

Posts waiting for the model, scores waiting for the rules and alerts per outbox status. Each
count is one indexed query (``tests/listener/test_metrics.py`` checks the plans): they are read
at every scrape, so none may walk a table that grows with every post.
"""

from __future__ import annotations

from storage.engine import Db

# The classify stage scores posts in id order, so what is left is the tail after the post of
# the newest score (an approximation only right after `classifier.model` changes).
LAST_SCORED_SQL = "SELECT post_id FROM scores WHERE id = (SELECT max(id) FROM scores)"
UNSCORED_SQL = "SELECT count(*) FROM posts WHERE id > ?"
UNEVALUATED_SQL = "SELECT count(*) FROM scores WHERE rules_at IS NULL"  # partial index
ALERTS_SQL = "SELECT count(*) FROM alerts WHERE status = ?"  # index (status, next_attempt_at)


def unscored(db: Db) -> int:
    """Posts waiting for the model: those after the post of the newest score (approximate, see
    LAST_SCORED_SQL; cheap, where counting posts without a score would read them all)."""
    last = db.execute(LAST_SCORED_SQL).fetchone()
    return _count(db, UNSCORED_SQL, [last[0] if last else 0])


def unevaluated(db: Db) -> int:
    """Scores the rules stage has not evaluated yet (the partial index holds just those)."""
    return _count(db, UNEVALUATED_SQL, [])


def alerts_with_status(db: Db, status: str) -> int:
    """Alerts in one outbox status (:data:`storage.outbox.PENDING`, ``FAILED``…)."""
    return _count(db, ALERTS_SQL, [status])


def _count(db: Db, sql: str, params: list[object]) -> int:
    return int(db.execute(sql, params).fetchone()[0])
