"""Queue: negative and help-seeking posts, and posts in a language the model does not understand,
most urgent × widest reach first — and, for a post nobody has answered, the longer its customer
has waited the higher it climbs (issue 18: :class:`storage.triage.Waiting`, with the targets of
the config's ``inbox``). A team works it here: views (Unassigned, Mine, Open …) with a count
each, statuses and assignees per row or for ticked rows at once, undo, and a page that notices
new posts by itself (``static/queue.js`` asks ``/api/queue/version``; without JavaScript every
control is a plain form or link). The changes themselves are :mod:`listener.web.queue_work`'s.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest

from listener.core.language import UNDETERMINED
from listener.web import queue_work
from listener.web.context import actor, get_db, now, settings
from listener.web.export import EXPORT_LIMIT, csv_response, json_response
from listener.web.params import (
    PAGE_SIZE,
    QUEUE_ORDERS,
    QUEUE_VIEWS,
    SENTIMENTS,
    View,
    counted_views,
    http_url,
    parse_queue_view,
    queue_views,
)
from listener.web.posts import assignable, duration
from listener.web.security import safe_next
from storage import queue_reads, triage
from storage.triage import QueueFilter

bp = Blueprint("queue", __name__)
# language_supported 0: the model did not understand ``lang``, so sentiment and urgency are a
# guess; scored_by: the model that actually scored the post when ``model`` routes by language;
# waited_s: since the post was written; overdue_by_s: past its brand's first-response target
# (empty when answered, within it, or stale: unanswered past inbox.stale_after, sinking)
COLUMNS = ("post_id", "created_at", "brand", "source", "platform", "lang", "language_supported",
           "sentiment", "urgency", "followers", "rank", "priority", "status", "assignee",
           "waited_s", "overdue_by_s", "stale", "scored_by", "author", "url", "text")
POLL_SECONDS = 20  # how often an open queue page asks whether posts arrived


def _view() -> View:
    """The queue's filters; a search that cannot be read is a 400 naming the parser's message
    (the page catches it and shows the message above an empty queue)."""
    view = parse_queue_view(request.args, now())
    if view.q is not None:
        problem = triage.check_search(get_db(), view.q)
        if problem:
            raise SearchRefused(problem)
    return view


class SearchRefused(BadRequest):
    """The search box holds a query the brand query language cannot read."""


def _waiting() -> triage.Waiting:
    """The clock and the team's targets (config ``inbox``) the order and highlights use."""
    rules = settings().inbox
    return triage.Waiting(now(), rules.first_response, dict(rules.brand_first_response),
                          rules.stale_after)


def _filter(view: View) -> QueueFilter:
    """The view's storage filter: "Mine" is the viewer's, the order counts time waited."""
    return view.queue_filter(me=actor(), waiting=_waiting())


def _rows(view: View, limit: int, offset: int) -> list[dict[str, Any]]:
    waiting = _waiting()
    rows = triage.queue(get_db(), _filter(view), limit, offset)
    for row in rows:
        row["url"] = http_url(row["url"])  # only http(s) links leave the server
        timing = queue_work.timing(row, waiting)
        row.update(waited_s=timing.waited_s, overdue_by_s=timing.overdue_by_s,
                   stale=timing.stale)
    return rows


@bp.get("/queue")
def page() -> Any:
    # the newest row first: a post stored while the page is read is then announced, not lost
    since = queue_reads.newest(get_db())
    try:
        view = _view()
    except SearchRefused as exc:  # the page, with the message and the search left to correct
        view = parse_queue_view(request.args, now())
        return _render(view, [], {}, since, exc.description)
    counts = _counts(view)
    rows = _rows(view, PAGE_SIZE, (view.page - 1) * PAGE_SIZE)
    return _render(view, rows, counts, since, None)


def _counts(view: View) -> dict[str, int]:
    """How many posts each view holds with the other filters as they are (the tabs that
    :func:`counted_views` counts)."""
    db, me = get_db(), actor()
    return {key: triage.count_queue(db, tab.queue_filter(me=me))
            for key, tab in counted_views(view)}


def _render(view: View, rows: list[dict[str, Any]], counts: dict[str, int], since: int,
            problem: str | None) -> str:
    db, me = get_db(), actor()
    here = url_for("queue.page", **view.args())
    entries = _entry_ids(request.args.get("undo"))
    return render_template(
        "queue.html", view=view, rows=rows, counts=counts, total=counts.get(view.queue_view, 0),
        problem=problem, options=_options(db), cap=triage.COUNT_CAP, page_size=PAGE_SIZE,
        tabs=[(key, QUEUE_VIEWS[key], tab) for key, tab in queue_views(view)],
        orders=list(QUEUE_ORDERS.items()), people=assignable(db), actor_name=me, here=here,
        since=since, poll_seconds=POLL_SECONDS,
        select_all=request.args.get("select") == "all",
        offer=queue_work.offer(db, entries, me, now()) if entries else None,
        notice=queue_work.NOTICES.get(request.args.get("done", "")),
        duration=duration, status_text=queue_work.STATUS_TEXT,
        stale_after=settings().inbox.stale_after.total_seconds(),
    )


def _entry_ids(value: str | None) -> list[int]:
    """The ``undo`` of the address, quietly nothing when it is not ids (an old bookmark)."""
    try:
        return queue_work.parse_ids([value or ""], "undo")
    except BadRequest:
        return []


def _options(db: Any) -> dict[str, list[Any]]:
    return {"brands": triage.distinct_values(db, "brand"),
            "sources": triage.distinct_values(db, "source"),
            "langs": [(code, lang_label(code)) for code in triage.distinct_values(db, "lang")],
            "sentiments": list(SENTIMENTS)}


def lang_label(code: str) -> str:
    """A language as the filter menu names it: its code, or what 'und' means."""
    return "? (undetermined)" if code == UNDETERMINED else code


@bp.get("/api/queue")
def api() -> Any:
    view = _view()
    offset = (view.page - 1) * PAGE_SIZE
    rows = _rows(view, PAGE_SIZE, offset)
    return jsonify({"total": triage.count_queue(get_db(), _filter(view)),
                    "total_capped_at": triage.COUNT_CAP, "page": view.page,
                    "page_size": PAGE_SIZE, "order": view.order, "rows": rows})


@bp.get("/api/queue/version")
def version() -> Any:
    """What the open queue page polls: how many posts its filters would show arrived after
    the newest one it was drawn with (``since``, a post id), and how many it holds now."""
    view = _view()
    since = _since(request.args.get("since"))
    found = queue_reads.arrivals(get_db(), _filter(view), since)
    return jsonify({"since": since, "arrived": found.count,
                    "arrived_capped_at": queue_reads.ARRIVALS_CAP, "newest_id": found.newest_id,
                    "total": triage.count_queue(get_db(), _filter(view)),
                    "total_capped_at": triage.COUNT_CAP})


def _since(value: str | None) -> int:
    text = (value or "").strip() or "0"
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        abort(400, "'since' must be a post id (a whole number)")
    return int(text)


@bp.get("/export/queue.<fmt>")
def export(fmt: str) -> Any:
    rows = _rows(_view(), EXPORT_LIMIT, 0)
    if fmt == "csv":
        return csv_response(rows, COLUMNS, "queue.csv")
    if fmt == "json":
        return json_response(rows, "queue.json")
    return jsonify({"error": "use .csv or .json"}), 404


# -- changes ---------------------------------------------------------------------------------


def _next() -> str:
    return safe_next(request.form.get("next"), url_for("queue.page"))


@bp.post("/queue/change")
def change() -> Any:
    """A status or an assignee for one post (a row's buttons) or the ticked ones (the bulk
    form), all or none; back to the queue with an Undo for it."""
    db, me = get_db(), actor()
    wanted = queue_work.parse_change(request.form, me, assignable(db))
    post_ids = queue_work.parse_ids(request.form.getlist("post_id"))
    if not post_ids:
        return redirect(queue_work.back(_next(), done="none-selected"), code=303)
    entries = queue_work.apply(db, post_ids, wanted, me, now())
    if not entries:
        return redirect(queue_work.back(_next(), done="unchanged"), code=303)
    return redirect(queue_work.back(_next(), undo=",".join(map(str, entries))), code=303)


@bp.post("/queue/undo")
def undo() -> Any:
    """Undo the change whose audit entries the form names (every post or none)."""
    entries = queue_work.parse_ids([request.form.get("entries", "")], "entries")
    if not entries:
        return redirect(queue_work.back(_next(), done="nothing-to-undo"), code=303)
    written = queue_work.undo(get_db(), entries, actor(), now())
    if written is None:
        abort(409, "That change can no longer be undone: it is older than "
                   f"{queue_work.undo_minutes()} minutes, was not yours, or one of its posts "
                   "has changed since. Nothing was undone.")
    return redirect(queue_work.back(_next(), undo=",".join(map(str, written))), code=303)
