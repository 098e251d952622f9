"""Everything stored about one post, read at once: the post, its scores (newest first), its
status, the alerts raised on it with each delivery attempt, and its cross-posts.

A read across the tables that the other storage modules write (``posts``, ``scores``,
``post_status``, ``alerts``, ``deliveries``), so it belongs to none of them; it was
``storage/dashboard.py``'s, named for the screen that shows it, and is now named for what it
reads.
"""

from __future__ import annotations

from typing import Any

from storage.engine import Db


def post_detail(db: Db, post_id: int) -> dict[str, Any] | None:
    """One post with its scores (newest first), status, alerts + deliveries and cross-posts."""
    rows = list(db.query(
        "SELECT p.*, coalesce(st.status, 'new') AS status, st.updated_at AS status_at,"
        " st.by AS status_by FROM posts p LEFT JOIN post_status st ON st.post_id = p.id"
        " WHERE p.id = ?", [post_id]))
    if not rows:
        return None
    post = dict(rows[0])
    post["scores"] = [dict(r) for r in db.query(
        "SELECT * FROM scores WHERE post_id = ? ORDER BY id DESC", [post_id])]
    post["alerts"] = [dict(r) for r in db.query(
        "SELECT * FROM alerts WHERE post_id = ? ORDER BY created_at, id", [post_id])]
    for alert in post["alerts"]:
        alert["deliveries"] = [dict(r) for r in db.query(
            "SELECT attempt, at, outcome, status_code, error, remote_id FROM deliveries"
            " WHERE alert_id = ? ORDER BY id", [alert["id"]])]
    post["crossposts"] = [dict(r) for r in db.query(
        "SELECT id, platform, url FROM posts WHERE duplicate_of = ? ORDER BY id LIMIT 50",
        [post_id])]
    return post
