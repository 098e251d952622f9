"""Overview: volume and sentiment over time per brand and source, spikes, top negative terms,
and how fast the team answered (response times per brand and per agent, issue 18)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, request, url_for

from listener.core.models import to_iso
from listener.web.context import get_db, now, settings
from listener.web.export import csv_response, json_response
from listener.web.overview_data import overview, response_times
from listener.web.params import BUCKETS_FOR, DEFAULT_BUCKET, BucketRefused, View, parse_view
from storage import feedback, trends
from storage.triage import distinct_values

bp = Blueprint("overview", __name__)
# the response-time CSV: one row per brand and per agent, times in seconds
RESPONSE_COLUMNS = ("by", "name", "answered", "first_response_median_seconds",
                    "first_response_p90_seconds", "resolved", "resolution_median_seconds",
                    "resolution_p90_seconds", "period_start", "period_end")
# "unsupported": posts whose model did not understand their language (shown as "not understood")
SERIES_COLUMNS = ("bucket", "total", "negative", "neutral", "positive", "unsupported", "unscored",
                  "urgent", "negative_share", "previous_total")


def _view() -> View:
    return parse_view(request.args, now(), default_status=None)


def _data(view: View) -> dict[str, Any]:
    """The overview; brand names (configured or stored) never count as news in top terms."""
    db = get_db()
    stored = {name.lower() for name in distinct_values(db, "brand")}
    return overview(db, view.period, view.bucket, view.brand, view.source,
                    settings().brand_words | stored)


@bp.get("/")
def page() -> Any:
    try:
        view = _view()
    except BucketRefused as refused:  # the page (as the queue's bad search: 200), saying why
        args = {k: v for k, v in request.args.items() if k != "bucket"}  # and what it can do
        view = parse_view(args, now(), default_status=None)
        return _render(view, None, refused)
    data = _data(view)
    return _render(view, data, None)


def _render(view: View, data: dict[str, Any] | None, refused: BucketRefused | None) -> str:
    """The page; without ``data`` (a refused bucket) only the form and the message."""
    db = get_db()
    empty = data is not None and data["totals"]["current"]["total"] == 0
    return render_template(
        "overview.html", view=view, data=data, refused=refused,
        newest=trends.newest_post_at(db) if empty else None,
        api_url=url_for("overview.api", **view.args()),
        brands=distinct_values(db, "brand"), sources=distinct_values(db, "source"),
        buckets_for=BUCKETS_FOR, default_bucket=DEFAULT_BUCKET,
        responses=response_times(db, view.period, view.brand) if data is not None else None,
        accuracy=feedback.accuracy_by_version(db) if data is not None else None,
    )


@bp.get("/api/overview")
def api() -> Any:
    """The JSON behind the overview's charts and tables."""
    return jsonify(_data(_view()))


@bp.get("/export/overview.<fmt>")
def export(fmt: str) -> Any:
    view = _view()
    data = _data(view)
    if fmt == "json":
        return json_response(data, "overview.json")
    if fmt != "csv":
        return jsonify({"error": "use .csv or .json"}), 404
    series = data["series"]
    rows = [{"bucket": key, **{name: series[name][i] for name in SERIES_COLUMNS[1:]}}
            for i, key in enumerate(data["buckets"])]
    return csv_response(rows, SERIES_COLUMNS, "overview.csv")


@bp.get("/export/response-times.csv")
def response_times_export() -> Any:
    """The overview's response-time card as CSV, for its period and brand (seconds)."""
    view = _view()
    period = view.period
    rows = [{"by": by, "name": r.key, "answered": r.answered,
             "first_response_median_seconds": _seconds(r.first_response_median),
             "first_response_p90_seconds": _seconds(r.first_response_p90),
             "resolved": r.resolved, "resolution_median_seconds": _seconds(r.resolution_median),
             "resolution_p90_seconds": _seconds(r.resolution_p90),
             "period_start": to_iso(period.start), "period_end": to_iso(period.end)}
            for by, found in response_times(get_db(), period, view.brand).items()
            for r in found]
    return csv_response(rows, RESPONSE_COLUMNS, "response-times.csv")


def _seconds(value: float | None) -> int | None:
    return None if value is None else round(value)
