"""Alerts: the outbox per alert and destination, last errors, and a retry button."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

from listener.web import auditing
from listener.web.context import get_db, now
from listener.web.export import EXPORT_LIMIT, csv_response, json_response
from listener.web.params import MAX_TEXT, parse_page
from listener.web.security import safe_next
from storage import alert_log, outbox
from storage.tx import immediate

bp = Blueprint("alerts", __name__)
PAGE_SIZE = 100
COLUMNS = ("id", "created_at", "rule", "destination", "status", "priority", "attempts",
           "next_attempt_at", "delivered_at", "last_error", "remote_id", "post_id", "report_id",
           "excerpt", "report_title", "lang", "language_supported", "scored_by")


def _filter() -> tuple[alert_log.AlertFilter, int]:
    values = {k: (request.args.get(k) or "").strip()[:MAX_TEXT] or None
              for k in ("status", "destination", "rule")}
    return alert_log.AlertFilter(**values), parse_page(request.args.get("page"))


@bp.get("/alerts")
def page() -> Any:
    f, page_no = _filter()
    db = get_db()
    rows = alert_log.alerts(db, f, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)
    counts = alert_log.alert_counts(db)
    core = (outbox.PENDING, outbox.DELIVERED, outbox.FAILED)  # always shown, even at 0
    statuses = [*core, *sorted({c["status"] for c in counts} - set(core))]
    table: dict[str, dict[str, int]] = {}
    for c in counts:
        table.setdefault(c["destination"], {})[c["status"]] = c["n"]
    args = {k: v for k, v in vars(f).items() if v}
    return render_template("alerts.html", rows=rows, f=f, table=table, statuses=statuses,
                           names=alert_log.alert_names(db), page=page_no, page_size=PAGE_SIZE,
                           args=args, requeued=request.args.get("requeued"))


@bp.get("/api/alerts")
def api() -> Any:
    f, page_no = _filter()
    db = get_db()
    return jsonify({"counts": alert_log.alert_counts(db), "page": page_no,
                    "rows": alert_log.alerts(db, f, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)})


@bp.get("/export/alerts.<fmt>")
def export(fmt: str) -> Any:
    f, _ = _filter()
    rows = alert_log.alerts(get_db(), f, EXPORT_LIMIT, 0)
    if fmt == "csv":
        return csv_response(rows, COLUMNS, "alerts.csv")
    if fmt == "json":
        return json_response(rows, "alerts.json")
    return jsonify({"error": "use .csv or .json"}), 404


@bp.post("/alerts/<alert_id>/retry")
def retry(alert_id: str) -> Any:
    """Put one parked (failed) alert back in the queue; dispatch sends it on its next run."""
    db = get_db()
    with immediate(db):
        if not outbox.requeue_failed(db, now(), [alert_id]):
            abort(409, "That alert is not parked as failed (it may have been retried already).")
        auditing.record("alert.retry", target=f"alert:{alert_id}")
    target = url_for("alerts.page", requeued=alert_id[:12])
    return redirect(safe_next(request.form.get("next"), target), code=303)
