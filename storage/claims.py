"""Work a worker claims before doing it, when many share the database: posts to score.

Claiming is reading the next unscored posts nobody holds and taking a lease on each
(:mod:`storage.leases`) in one go; the worker scores them outside any transaction, saves the
scores and releases the leases. Two classify workers therefore never score the same post for
the same model version; if one dies mid-batch, its posts are free again when the leases expire
(and a score that lands twice is refused by the scores' unique key anyway).
"""

from __future__ import annotations

from datetime import datetime

from listener.core.models import to_iso
from storage import leases
from storage.db import Unscored
from storage.engine import Db

_RACES = 5  # reads in a row that other workers claimed entirely before giving up for this run
_UNCLAIMED = (
    "SELECT id, text, lang FROM posts p WHERE NOT EXISTS (SELECT 1 FROM scores s"
    " WHERE s.post_id = p.id AND s.model = ? AND s.model_version = ?)"
    " AND NOT EXISTS (SELECT 1 FROM leases l"
    " WHERE l.name = CAST(? AS TEXT) || CAST(p.id AS TEXT) AND l.until >= ?)"
    " ORDER BY id LIMIT ?"
)


def score_lease(model: str, version: str, post_id: int) -> str:
    """The lease name of scoring ``post_id`` with one model version."""
    return f"{_prefix(model, version)}{post_id}"


def _prefix(model: str, version: str) -> str:
    return f"classify:{model}:{version}:"


def posts_to_score(db: Db, model: str, version: str, limit: int, owner: str, now: datetime,
                   seconds: float) -> list[Unscored]:
    """Up to ``limit`` unscored posts, oldest first, now leased to ``owner``. Another worker
    claiming the same rows at the same moment wins some of them; when it won them all, the
    next unclaimed ones are read (an empty list means there is nothing left to claim)."""
    for _ in range(_RACES):
        rows = [Unscored(r["id"], r["text"], r["lang"]) for r in db.query(
            _UNCLAIMED, [model, version, _prefix(model, version), to_iso(now), limit])]
        if not rows:
            return []
        names = [score_lease(model, version, r.id) for r in rows]
        held = set(leases.take_many(db, names, owner, now, seconds))
        if held:
            return [r for r, name in zip(rows, names, strict=True) if name in held]
    return []


def release_scored(db: Db, model: str, version: str, post_ids: list[int], owner: str) -> int:
    """Give back the leases of posts whose scores are saved."""
    return leases.release(db, [score_lease(model, version, i) for i in post_ids], owner)
