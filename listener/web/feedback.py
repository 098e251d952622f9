"""Feedback: the model's accuracy on reviewed posts over time, and exports for retraining."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request

from listener.web.context import get_db
from listener.web.export import EXPORT_LIMIT, csv_response, json_response, tsv_response
from storage import feedback

bp = Blueprint("feedback", __name__)
FIELDS = ("sentiment", "urgency")
COLUMNS = ("id", "created_at", "post_id", "platform", "brand", "field", "label", "predicted",
           "model", "model_version", "by", "excerpt")


def accuracy_series(bucket: str = "week") -> dict[str, Any]:
    """Per review period: accuracy (correct / reviewed) and reviewed count for each field."""
    rows = feedback.accuracy(get_db(), bucket)
    periods = sorted({r["period"] for r in rows})
    cell = {(r["period"], r["field"]): r for r in rows}
    out: dict[str, Any] = {"bucket": bucket, "periods": periods}
    for field in FIELDS:
        found = [cell.get((p, field)) for p in periods]
        out[field] = [r["correct"] / r["reviewed"] if r else None for r in found]
        out[f"{field}_reviewed"] = [r["reviewed"] if r else 0 for r in found]
    return out


def _bucket() -> str:
    bucket = request.args.get("bucket", "week")
    if bucket not in ("day", "week"):
        abort(400, "'bucket' must be day or week")
    return bucket


@bp.get("/feedback")
def page() -> Any:
    db = get_db()
    by_model = feedback.accuracy_by_model(db)
    totals = {f: {"reviewed": sum(r["reviewed"] for r in by_model if r["field"] == f),
                  "correct": sum(r["correct"] for r in by_model if r["field"] == f)}
              for f in FIELDS}
    return render_template("feedback.html", totals=totals, by_model=by_model,
                           recent=feedback.recent(db, 50), bucket=_bucket())


@bp.get("/api/feedback/accuracy")
def api_accuracy() -> Any:
    """The JSON behind the accuracy chart."""
    return jsonify(accuracy_series(_bucket()))


@bp.get("/export/feedback.<fmt>")
def export(fmt: str) -> Any:
    rows = feedback.recent(get_db(), EXPORT_LIMIT)
    if fmt == "csv":
        return csv_response(rows, COLUMNS, "feedback.csv")
    if fmt == "json":
        return json_response(rows, "feedback.json")
    return jsonify({"error": "use .csv or .json"}), 404


@bp.get("/export/training-<field>.tsv")
def training(field: str) -> Any:
    """Reviewed labels in the shared TSV format: ``listener train --extra FILE``."""
    if field not in FIELDS:
        abort(404, "use training-sentiment.tsv or training-urgency.tsv")
    rows = feedback.training_rows(get_db(), field)
    return tsv_response(feedback.TSV_HEADER[field], rows, f"training-{field}.tsv")
