"""Writing scores the way code before migration 009 did, for tests that build an old database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlite_utils import Database

from listener.core.models import Score, to_iso


def save_scores_before_009(db: Database, rows: Sequence[tuple[int, Score, str | None]],
                           now: datetime) -> None:
    """``storage.db.save_scores`` as it was: no ``language_supported`` or ``scored_by``."""
    db.conn.executemany(
        "INSERT INTO scores (post_id, model, model_version, sentiment, p_negative, p_neutral,"
        " p_positive, urgency, lang, scored_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(post_id, model, model_version) DO NOTHING",
        [(pid, s.model, s.model_version, s.sentiment, s.p_negative, s.p_neutral, s.p_positive,
          s.urgency, lang, to_iso(now)) for pid, s, lang in rows])
