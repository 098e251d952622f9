"""Queue: negative and help-seeking posts, and posts in a language the model does not understand,
most urgent × widest reach first, with filters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, request
from werkzeug.exceptions import BadRequest

from listener.core.language import UNDETERMINED
from listener.web.context import get_db, now
from listener.web.export import EXPORT_LIMIT, csv_response, json_response
from listener.web.params import PAGE_SIZE, SENTIMENTS, View, http_url, parse_view
from storage import triage

bp = Blueprint("queue", __name__)
# language_supported 0: the model did not understand ``lang``, so sentiment and urgency are a
# guess; scored_by: the model that actually scored the post when ``model`` routes by language
COLUMNS = ("post_id", "created_at", "brand", "source", "platform", "lang", "language_supported",
           "sentiment", "urgency", "followers", "rank", "status", "scored_by", "author", "url",
           "text")


def _view() -> View:
    """The queue's filters; a search that cannot be read is a 400 naming the parser's message
    (the page catches it and shows the message above an empty queue)."""
    view = parse_view(request.args, now(), default_range="30d")
    if view.q is not None:
        problem = triage.check_search(get_db(), view.q)
        if problem:
            raise SearchRefused(problem)
    return view


class SearchRefused(BadRequest):
    """The search box holds a query the brand query language cannot read."""


def _rows(view: View, limit: int, offset: int) -> list[dict[str, Any]]:
    rows = triage.queue(get_db(), view.queue_filter(), limit, offset)
    for row in rows:
        row["url"] = http_url(row["url"])  # only http(s) links leave the server
    return rows


@bp.get("/queue")
def page() -> Any:
    db = get_db()
    try:
        view = _view()
    except SearchRefused as exc:  # the page, with the message and the search left to correct
        view = parse_view(request.args, now(), default_range="30d")
        return _render(view, [], 0, exc.description)
    total = triage.count_queue(db, view.queue_filter())
    return _render(view, _rows(view, PAGE_SIZE, (view.page - 1) * PAGE_SIZE), total, None)


def _render(view: View, rows: list[dict[str, Any]], total: int, problem: str | None) -> str:
    return render_template("queue.html", view=view, rows=rows, total=total, problem=problem,
                           options=_options(get_db()), cap=triage.COUNT_CAP,
                           page_size=PAGE_SIZE)


def _options(db: Any) -> dict[str, list[Any]]:
    return {"brands": triage.distinct_values(db, "brand"),
            "sources": triage.distinct_values(db, "source"),
            "langs": [(code, lang_label(code)) for code in triage.distinct_values(db, "lang")],
            "sentiments": list(SENTIMENTS),
            "statuses": [("new", "new"), ("handled", "handled"),
                         ("not_relevant", "not relevant"), ("all", "all")]}


def lang_label(code: str) -> str:
    """A language as the filter menu names it: its code, or what 'und' means."""
    return "? (undetermined)" if code == UNDETERMINED else code


@bp.get("/api/queue")
def api() -> Any:
    view = _view()
    offset = (view.page - 1) * PAGE_SIZE
    return jsonify({"total": triage.count_queue(get_db(), view.queue_filter()),
                    "total_capped_at": triage.COUNT_CAP, "page": view.page,
                    "page_size": PAGE_SIZE, "rows": _rows(view, PAGE_SIZE, offset)})


@bp.get("/export/queue.<fmt>")
def export(fmt: str) -> Any:
    rows = _rows(_view(), EXPORT_LIMIT, 0)
    if fmt == "csv":
        return csv_response(rows, COLUMNS, "queue.csv")
    if fmt == "json":
        return json_response(rows, "queue.json")
    return jsonify({"error": "use .csv or .json"}), 404
