"""What reviewers said about the model's verdicts, how often it was right, and training rows.

A feedback row stores the label a human chose and the model's own label at that moment
(``predicted``, with the model name and version), so accuracy is "chosen == predicted" over
reviewed posts. Only a post's newest feedback per field counts: people correct themselves.
Labels are those of the shared training TSVs, so exports feed ``listener train --extra``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from listener.core.models import to_iso
from storage.engine import Db
from storage.privacy import ERASED
from storage.trends import week_of
from storage.tx import immediate

URGENT = 0.5  # urgency at or above this is "complaint" (needs a reply), as in the triage queue
LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": ("negative", "neutral", "positive"),
    "urgency": ("complaint", "not_complaint"),  # complaints/train.tsv's labels
    "relevance": ("not_relevant",),
}
TSV_HEADER = {"sentiment": ("id", "label", "text"), "urgency": ("id", "label", "domain", "text")}
_LATEST = "f.id = (SELECT max(id) FROM feedback g WHERE g.post_id = f.post_id AND g.field = f.field)"
# a CASE, not sum(label = predicted): PostgreSQL sums no booleans
_CORRECT = "sum(CASE WHEN f.label = f.predicted THEN 1 ELSE 0 END)"
_SPACE = re.compile(r"\s+")


def predicted_label(field: str, score: dict[str, Any] | None) -> str | None:
    """The model's verdict in the field's label set (None: nothing scored, or relevance)."""
    if score is None or field == "relevance":
        return None
    if field == "sentiment":
        return str(score["sentiment"])
    return "complaint" if score["urgency"] >= URGENT else "not_complaint"


def add_feedback(
    db: Db, post_id: int, field: str, label: str, by: str, now: datetime
) -> dict[str, Any]:
    """Store one verdict against the post's current score; "not relevant" also sets the status."""
    if label not in LABELS.get(field, ()):
        raise ValueError(f"unknown {field} label {label!r}; expected one of {LABELS.get(field)}")
    stamp = to_iso(now)
    with immediate(db):
        found = db.execute(
            "SELECT sentiment, urgency, model, model_version FROM scores WHERE post_id = ?"
            " ORDER BY id DESC LIMIT 1", [post_id]).fetchone()
        score = dict(zip(("sentiment", "urgency", "model", "model_version"), found,
                         strict=True)) if found else None
        row = {"post_id": post_id, "field": field, "label": label,
               "predicted": predicted_label(field, score),
               "model": score["model"] if score else None,
               "model_version": score["model_version"] if score else None,
               "created_at": stamp, "by": by}
        db.execute(
            "INSERT INTO feedback (post_id, field, label, predicted, model, model_version,"
            " created_at, by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [row[k] for k in ("post_id", "field", "label", "predicted", "model",
                              "model_version", "created_at", "by")])
        if field == "relevance":
            db.execute(
                "INSERT INTO post_status (post_id, status, updated_at, by) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (post_id) DO UPDATE SET status = excluded.status,"
                " updated_at = excluded.updated_at, by = excluded.by",
                [post_id, "not_relevant", stamp, by])
    return row


def for_post(db: Db, post_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in db.query(
        "SELECT * FROM feedback WHERE post_id = ? ORDER BY id DESC", [post_id])]


def latest_for(db: Db, post_id: int) -> dict[str, str]:
    """Field → the newest label reviewers gave this post."""
    return {r["field"]: r["label"] for r in db.query(
        f"SELECT field, label FROM feedback f WHERE post_id = ? AND {_LATEST}", [post_id])}  # noqa: S608


def accuracy(db: Db, bucket: str = "week") -> list[dict[str, Any]]:
    """Reviewed and correct verdicts per period of review, per field (sentiment, urgency)."""
    day = "substr(f.created_at, 1, 10)"
    period = {"day": day, "week": week_of(db, day)}[bucket]  # the Monday on or before
    sql = (
        f"SELECT {period} AS period, f.field, count(*) AS reviewed,"  # noqa: S608 (constant)
        f" {_CORRECT} AS correct FROM feedback f"
        f" WHERE f.field IN ('sentiment', 'urgency') AND f.predicted IS NOT NULL AND {_LATEST}"
        " GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return [dict(r) for r in db.query(sql)]


def accuracy_by_model(db: Db) -> list[dict[str, Any]]:
    """The same, per model version: did the last retraining help?"""
    sql = (
        "SELECT f.model, f.model_version, f.field, count(*) AS reviewed,"  # noqa: S608 (constant)
        f" {_CORRECT} AS correct, min(f.created_at) AS first,"
        " max(f.created_at) AS last FROM feedback f"
        f" WHERE f.field IN ('sentiment', 'urgency') AND f.predicted IS NOT NULL AND {_LATEST}"
        " GROUP BY 1, 2, 3 ORDER BY first, 3, 1, 2"
    )
    return [dict(r) for r in db.query(sql)]


def recent(db: Db, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Newest feedback first, with the post's text."""
    return [dict(r) for r in db.query(
        "SELECT f.*, p.platform, p.brand, substr(p.text, 1, 160) AS excerpt FROM feedback f"
        " JOIN posts p ON p.id = f.post_id ORDER BY f.id DESC LIMIT ? OFFSET ?", [limit, offset])]


def training_rows(db: Db, field: str) -> Iterator[tuple[str, ...]]:
    """Rows of the shared training TSV for ``field`` (sentiment or urgency), newest verdicts only.

    The id is ``platform:platform_id`` (stable across databases); white space in the text is
    folded to one space, as in the shared files, so every line splits on tabs. Posts whose
    text was erased (:mod:`storage.privacy`) are left out: their label has no text to teach.
    """
    sql = (
        "SELECT p.platform, p.platform_id, p.brand, p.text, f.label FROM feedback f"  # noqa: S608
        f" JOIN posts p ON p.id = f.post_id WHERE f.field = ? AND {_LATEST} AND p.text <> ?"
        " ORDER BY f.id"
    )
    for r in db.query(sql, [field, ERASED]):
        text = _SPACE.sub(" ", r["text"]).strip()
        key = _SPACE.sub("_", f"{r['platform']}:{r['platform_id']}")
        if field == "urgency":
            yield key, r["label"], _SPACE.sub("_", r["brand"] or "unknown"), text
        else:
            yield key, r["label"], text
