"""Post: one post, its scores, alerts and deliveries; status changes and model feedback."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

from listener.web import auditing
from listener.web.context import actor, get_db, now
from listener.web.params import http_url
from listener.web.security import safe_next
from storage import feedback, post_record, triage
from storage.tx import immediate

bp = Blueprint("posts", __name__)
URGENCY_TEXT = {"complaint": "needs a reply", "not_complaint": "no reply needed"}


def _post(post_id: int) -> dict[str, Any]:
    post = post_record.post_detail(get_db(), post_id)
    if post is None:
        abort(404, f"There is no post {post_id}.")
    post["url"] = http_url(post["url"])  # only http(s) links leave the server
    post.pop("raw", None)  # the platform's payload: large, and not for the page
    return post


@bp.get("/posts/<rowid:post_id>")
def page(post_id: int) -> Any:
    post = _post(post_id)
    score = post["scores"][0] if post["scores"] else None
    return render_template(
        "post.html", post=post, score=score, feedback=feedback.for_post(get_db(), post_id),
        latest=feedback.latest_for(get_db(), post_id), labels=feedback.LABELS,
        predicted={f: feedback.predicted_label(f, score) for f in ("sentiment", "urgency")},
        urgency_text=URGENCY_TEXT,
    )


@bp.get("/api/posts/<rowid:post_id>")
def api(post_id: int) -> Any:
    post = _post(post_id)
    post["feedback"] = feedback.for_post(get_db(), post_id)
    return jsonify(post)


@bp.post("/posts/<rowid:post_id>/status")
def status(post_id: int) -> Any:
    """new / handled / not_relevant, then back to where the button was (a local path)."""
    value = request.form.get("status", "")
    if value not in triage.STATUSES:
        abort(400, f"status must be one of: {', '.join(triage.STATUSES)}")
    db = get_db()
    with immediate(db):  # the change and its audit entry together
        _post(post_id)
        before = triage.set_status(db, post_id, value, actor(), now())
        auditing.record("post.status", target=f"post:{post_id}",
                        detail={"from": before, "to": value})
    return redirect(safe_next(request.form.get("next"), url_for("posts.page", post_id=post_id)),
                    code=303)


@bp.post("/posts/<rowid:post_id>/feedback")
def add_feedback(post_id: int) -> Any:
    """The right label for a field (sentiment, urgency) or "not relevant"."""
    field, label = request.form.get("field", ""), request.form.get("label", "")
    if label not in feedback.LABELS.get(field, ()):
        abort(400, "field must be sentiment, urgency or relevance, with one of its labels: "
                   + "; ".join(f"{f}: {', '.join(v)}" for f, v in feedback.LABELS.items()))
    db = get_db()
    with immediate(db):
        _post(post_id)
        feedback.add_feedback(db, post_id, field, label, actor(), now())
        auditing.record("post.feedback", target=f"post:{post_id}",
                        detail={"field": field, "label": label})
    target = url_for("posts.page", post_id=post_id, saved=field)
    return redirect(safe_next(request.form.get("next"), target), code=303)
