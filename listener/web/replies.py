"""Replies from the product (issue 18): writing one on the post page, withdrawing it, sending a
parked one again, and the admins' approvals.

The web process never talks to a platform: a reply is stored ``pending`` (or
``awaiting_approval`` where the author's role is in ``inbox.reply_approval``), and the daemon's
dispatch stage sends it. Each storage verb writes its own audit entry, in its transaction,
naming this request's person and address.

Approving and rejecting live in the ``admin`` blueprint (routes added here), so the central
role check (:mod:`listener.web.roles`) refuses them to everyone but admins — no check of
its own to forget. Admins see how many replies wait through ``approvals_waiting()``, a
template global this blueprint provides for the navigation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for

from listener.web import admin
from listener.web.context import actor, get_db, now
from listener.web.posts import (
    ReplyForm,
    form_text,
    load_post,
    render_post,
    reply_form,
)
from listener.web.roles import can
from listener.web.security import safe_next
from storage import replies, teamwork

bp = Blueprint("replies", __name__)
REASON_MAX = 500  # characters of a rejection's reason (the audit entry keeps as many)
DONE = {"approved": "Approved: the dispatch stage sends it on its next run.",
        "rejected": "Rejected: it will not be sent; its author sees why on the post page."}


def _reply_id() -> str:
    value = request.form.get("reply", "").strip()
    if not re.fullmatch(r"[0-9a-f]{32}", value):
        abort(400, "'reply' must be a reply's id (32 hex digits)")
    return value


def _reply_of(post_id: int) -> str:
    """The reply named by the form, which must be one of this post's (else 404)."""
    reply_id = _reply_id()
    found = replies.get(get_db(), reply_id)
    if found is None or found.post_id != post_id:
        abort(404, f"Post {post_id} has no such reply.")
    return reply_id


def too_long(form: ReplyForm, text: str) -> str | None:
    """Why the platform would refuse this length (None: it fits, or only the writer's own count
    can tell: see ``posts.EXACT_COUNT_WHEN_SENT``)."""
    count = len(text.strip())
    if form.limit is None or form.exact_when_sent or count <= form.limit:
        return None
    return (f"The reply has {count:,} characters; {form.platform} takes at most "
            f"{form.limit:,}: shorten it.")


@bp.post("/posts/<rowid:post_id>/replies")
def write(post_id: int) -> Any:
    """A reply to send through the account that answers the post: pending, or waiting for an
    admin where the person's role needs approval. Refusals (no account, too long, the same
    text twice) are said on the page, with the text kept."""
    text = form_text("text")
    form = reply_form(load_post(post_id))
    problem = _create(post_id, form, text)
    if problem is not None:
        return render_post(post_id, problem=problem, code=400, reply_text=text[:replies.TEXT_MAX])
    return redirect(url_for("posts.page", post_id=post_id, _anchor="replies"), code=303)


def _create(post_id: int, form: ReplyForm, text: str) -> str | None:
    """Store the reply (it audits itself); why it was not, said to the person, or None."""
    if form.account is None:
        return ("No reply account answers this post: copy the reply and open the post to "
                "answer it on the platform.")
    problem = too_long(form, text)
    if problem is not None:
        return problem
    try:
        replies.create(get_db(), post_id, form.account, form.platform, actor(), text, now(),
                       needs_approval=form.needs_approval, address=request.remote_addr)
    except replies.ReplyError as exc:
        return f"Not saved: {exc}."
    return None


def _change(post_id: int, verb: Callable[..., replies.Reply]) -> Any:
    """Withdraw or send again: one verb on one of the post's replies (it audits itself); a
    reply that has moved on meanwhile is said on the page (409)."""
    reply_id = _reply_of(post_id)
    try:
        verb(get_db(), reply_id, actor(), now(), address=request.remote_addr)
    except replies.ReplyError as exc:
        return render_post(post_id, problem=f"Not changed: {exc}.", code=409)
    return redirect(url_for("posts.page", post_id=post_id, _anchor="replies"), code=303)


@bp.post("/posts/<rowid:post_id>/replies/withdraw")
def withdraw(post_id: int) -> Any:
    return _change(post_id, replies.cancel)


@bp.post("/posts/<rowid:post_id>/replies/retry")
def send_again(post_id: int) -> Any:
    return _change(post_id, replies.retry)


# -- approvals: admin-only, by living in the admin blueprint -----------------------------------


@admin.bp.get("/admin/replies")
def approvals() -> Any:
    return _approvals_page()


def _approvals_page(problem: str | None = None, code: int = 200) -> Any:
    db = get_db()
    waiting = replies.awaiting_approval(db)
    posts = teamwork.excerpts(db, (r.post_id for r in waiting))
    done = DONE.get(request.args.get("done", ""))
    return render_template("approvals.html", waiting=waiting, posts=posts, problem=problem,
                           done=done, reason_max=REASON_MAX), code


def _decided(outcome: str) -> Any:
    target = url_for("admin.approvals", done=outcome)
    return redirect(safe_next(request.form.get("next"), target), code=303)


@admin.bp.post("/admin/replies/approve")
def approve_reply() -> Any:
    try:
        replies.approve(get_db(), _reply_id(), actor(), now(), address=request.remote_addr)
    except replies.ReplyError as exc:
        return _approvals_page(f"Not approved: {exc}.", 409)
    return _decided("approved")


@admin.bp.post("/admin/replies/reject")
def reject_reply() -> Any:
    """Reject with a reason (required: the author reads it on the post page)."""
    reply_id = _reply_id()
    reason = " ".join(request.form.get("reason", "").split())
    if not reason or len(reason) > REASON_MAX:
        return _approvals_page(f"Say why it is rejected (1 to {REASON_MAX} characters).", 400)
    try:
        replies.reject(get_db(), reply_id, actor(), now(), reason, address=request.remote_addr)
    except replies.ReplyError as exc:
        return _approvals_page(f"Not rejected: {exc}.", 409)
    return _decided("rejected")


def approvals_waiting() -> int:
    """For the navigation: replies waiting for approval, counted for admins only (0 for the
    rest, without a query)."""
    return teamwork.awaiting_count(get_db()) if can("admin") else 0


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    return {"approvals_waiting": approvals_waiting}
