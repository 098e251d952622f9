"""What reviewers said about the model's verdicts, how often it was right, and training rows.

A feedback row stores the label a human chose and the model's own label at that moment
(``predicted``, with the model name and version), so accuracy is "chosen == predicted" over
reviewed posts. Only a post's newest feedback per field counts: people correct themselves.
Labels are those of the shared training TSVs, so exports feed ``listener train --extra``.

Retraining from corrections (issue 18, ``classifiers.corrections``) reads
:func:`reviewed_posts`: each reviewed post's newest sentiment and urgency label with its text,
split for good into a training part and a held-out part by a hash of the post's
``platform:platform_id`` (:func:`is_held_out`), so the held-out posts never teach a model and
judge every retrained one. "Not relevant" verdicts are left out: they say nothing about
sentiment or urgency. :func:`accuracy_by_version` scores each model version on the reviewed
posts it scored (its own score of the post, not the one shown when the review was made), and
:func:`rescore_floor` bounds what a newly promoted model scores again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
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


HELD_OUT_PERCENT = 30  # of reviewed posts: never trained on, they judge each retrained model
RETRAIN_FIELDS = ("sentiment", "urgency")  # the fields a head learns; relevance teaches none


def post_key(platform: str, platform_id: str) -> str:
    """``platform:platform_id``, white space folded to ``_``: a post's name in every database
    (the training TSVs' id), which the held-out split hashes."""
    return _SPACE.sub("_", f"{platform}:{platform_id}")


def is_held_out(key: str, percent: int = HELD_OUT_PERCENT) -> bool:
    """Whether the post named ``key`` is held out: the same answer on every run, machine and
    engine (SHA-256 of the key, not Python's salted ``hash``); both fields of a post alike."""
    if not 0 <= percent <= 100:
        raise ValueError(f"held-out percent must be 0..100, got {percent}")
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    return bucket < percent


@dataclass(frozen=True)
class ReviewedPost:
    """One reviewed post's newest label for one field, with what a model needs to learn it."""

    post_id: int
    key: str  # platform:platform_id (post_key)
    field: str  # sentiment or urgency
    label: str  # the reviewer's label, in the shared TSVs' label set
    text: str
    lang: str | None
    held_out: bool


def reviewed_posts(db: Db, *, held_out_percent: int = HELD_OUT_PERCENT,
                   fields: tuple[str, ...] = RETRAIN_FIELDS) -> list[ReviewedPost]:
    """Every reviewed post usable for training, newest verdict per post and field, in the
    order of those verdicts; posts whose text was erased are left out (:func:`training_rows`
    says why), and so is ``relevance`` unless asked for (it has no head to train)."""
    unknown = sorted(set(fields) - set(LABELS))
    if unknown or not fields:
        raise ValueError(f"unknown feedback field(s) {unknown or fields}")
    marks = ", ".join("?" for _ in fields)
    sql = (
        "SELECT p.id, p.platform, p.platform_id, p.text, p.lang, f.field, f.label"  # noqa: S608
        f" FROM feedback f JOIN posts p ON p.id = f.post_id WHERE f.field IN ({marks})"
        f" AND {_LATEST} AND p.text <> ? ORDER BY f.id"
    )
    out: list[ReviewedPost] = []
    for r in db.query(sql, [*fields, ERASED]):
        key = post_key(r["platform"], r["platform_id"])
        out.append(ReviewedPost(int(r["id"]), key, str(r["field"]), str(r["label"]),
                                _SPACE.sub(" ", r["text"]).strip(), r["lang"],
                                is_held_out(key, held_out_percent)))
    return out


@dataclass(frozen=True)
class VersionAccuracy:
    """How one model version did on the reviewed posts it scored, for one field.

    ``held_out_*`` count only the held-out posts (:func:`is_held_out`): a model retrained from
    corrections learnt the others, so its accuracy on them flatters it."""

    model: str
    model_version: str
    field: str
    reviewed: int
    correct: int
    held_out_reviewed: int
    held_out_correct: int
    first_scored: str  # when this version scored its first reviewed post (the table's order)

    @property
    def share(self) -> float | None:
        return self.correct / self.reviewed if self.reviewed else None

    @property
    def held_out_share(self) -> float | None:
        return self.held_out_correct / self.held_out_reviewed if self.held_out_reviewed else None


def accuracy_by_version(db: Db, since: datetime | None = None, *,
                        held_out_percent: int = HELD_OUT_PERCENT) -> list[VersionAccuracy]:
    """Per model version and field: the reviewed posts that version scored (newest verdict per
    post and field, given at or after ``since``) and how many of its labels equal the
    reviewer's. Every score of a reviewed post counts for its own version, so a post scored by
    the old model and again by a promoted one counts for both. Oldest version first."""
    clause, params = ("", []) if since is None else (" AND f.created_at >= ?", [to_iso(since)])
    sql = (
        "SELECT s.model, s.model_version, f.field, f.label, s.sentiment, s.urgency,"  # noqa: S608
        " s.scored_at, p.platform, p.platform_id FROM feedback f"
        " JOIN scores s ON s.post_id = f.post_id JOIN posts p ON p.id = f.post_id"
        f" WHERE f.field IN ('sentiment', 'urgency') AND {_LATEST}{clause}"
    )
    tally: dict[tuple[str, str, str], list[Any]] = {}
    held: dict[str, bool] = {}
    for r in db.query(sql, params):
        key = post_key(r["platform"], r["platform_id"])
        if key not in held:
            held[key] = is_held_out(key, held_out_percent)
        said = predicted_label(r["field"], {"sentiment": r["sentiment"], "urgency": r["urgency"]})
        right = int(said == r["label"])
        group = tally.setdefault((r["model"], r["model_version"], r["field"]),
                                 [0, 0, 0, 0, r["scored_at"] or ""])
        group[0] += 1
        group[1] += right
        if held[key]:
            group[2] += 1
            group[3] += right
        group[4] = min(group[4], r["scored_at"] or "")
    rows = [VersionAccuracy(model, version, field, *counts)
            for (model, version, field), counts in tally.items()]
    return sorted(rows, key=lambda a: (a.first_scored, a.model, a.model_version, a.field))


def rescore_floor(db: Db, since: datetime) -> int:
    """The highest post id a newly promoted model need not score: posts collected at or after
    ``since`` have greater ids, and so has every post no model has scored yet (a backlog);
    the older posts keep the scores they have. The classify stage reads posts oldest first,
    so without this floor a promotion would re-score the whole history before any new post.
    Scans the posts once (collected_at has no index): it runs once per promotion.

    Read under the write lock: on PostgreSQL pages of posts are stored side by side, and a page
    still in flight holds ids below those of pages already committed (storage.pg_pages); its
    posts, unseen here, would fall under the floor and never be scored by the new model. With
    the lock no page is in flight, and every later post gets a greater id."""
    with immediate(db):
        recent = db.execute("SELECT min(id) FROM posts WHERE collected_at >= ?",
                            [to_iso(since)]).fetchone()[0]
        unscored = db.execute("SELECT min(id) FROM posts p WHERE NOT EXISTS"
                              " (SELECT 1 FROM scores s WHERE s.post_id = p.id)").fetchone()[0]
        firsts = [int(i) for i in (recent, unscored) if i is not None]
        if firsts:
            return min(firsts) - 1
        return int(db.execute("SELECT coalesce(max(id), 0) FROM posts").fetchone()[0])
