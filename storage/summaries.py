"""Read-only counts for the terminal summary after a run (`listener run --once --summary`) and
`listener summary`: posts per source and sentiment, alerts per rule and status, rejects, failures.
"""

from __future__ import annotations

from collections import defaultdict

from storage.engine import Db

# "unsupported": scored in a language no configured model understands (counted apart)
SENTIMENTS = ("negative", "neutral", "positive", "unsupported", "unscored")


def posts_by_source_and_sentiment(db: Db) -> dict[str, dict[str, int]]:
    """Counts per source and sentiment, using each post's newest score."""
    sql = (
        "SELECT p.source, coalesce(CASE WHEN s.language_supported = 0 THEN 'unsupported'"
        " ELSE s.sentiment END, 'unscored') AS sentiment, count(*) AS n"
        " FROM posts p LEFT JOIN scores s ON s.id ="
        " (SELECT max(id) FROM scores WHERE post_id = p.id)"
        " GROUP BY p.source, 2 ORDER BY p.source NULLS FIRST"  # SQLite's order on both
    )
    table: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SENTIMENTS, 0))
    for row in db.query(sql):
        table[row["source"] or "?"][row["sentiment"]] = row["n"]
    return dict(table)


def alerts_by_rule_and_status(db: Db) -> list[dict[str, object]]:
    sql = (
        "SELECT rule, destination, status, count(*) AS n FROM alerts"
        " GROUP BY rule, destination, status ORDER BY rule, destination, status"
    )
    return list(db.query(sql))


def rejects_by_source(db: Db) -> dict[str, int]:
    return {r["source"]: r["n"] for r in db.query(
        "SELECT source, count(*) AS n FROM rejects GROUP BY source")}


def failed_runs(db: Db, since: str) -> list[dict[str, object]]:
    return list(db.query(
        "SELECT stage, target, error FROM runs WHERE status = 'error' AND started_at >= ?"
        " ORDER BY id",
        [since]))
