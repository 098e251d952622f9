"""Post: one post, its scores, alerts and deliveries; working it as a team (status with undo,
who has it, internal notes, how long the customer has waited) and its replies (issue 18).

Every change is a POST, audited in the transaction of the change. Replies are written and
withdrawn through :mod:`listener.web.replies`; this module renders the page they show on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

from listener.core.models import parse_iso
from listener.web import auditing
from listener.web.context import actor, get_db, now, settings, who
from listener.web.params import http_url
from listener.web.security import safe_next
from storage import audit, feedback, inbox, post_record, replies, teamwork, triage, users
from storage.engine import Db
from storage.inbox import Holder
from storage.tx import immediate

bp = Blueprint("posts", __name__)
URGENCY_TEXT = {"complaint": "needs a reply", "not_complaint": "no reply needed"}
STATUS_BUTTONS = (("new", "New"), ("assigned", "Assigned"), ("replied", "Replied"),
                  ("handled", "Handled"), ("not_relevant", "Not relevant"))
REPLY_STATUS_TEXT = {
    replies.AWAITING: "awaiting approval", replies.PENDING: "pending",
    replies.SENDING: "sending", replies.SENT: "sent", replies.FAILED: "failed",
    replies.REJECTED: "rejected", replies.CANCELLED: "withdrawn",
}
# a change to who has a post or its status can be undone by whoever made it, for a while, as
# long as nobody changed the post since (read back from the audit log: it survives a reload)
UNDOABLE = ("post.status", "post.assign", "post.undo")
UNDO_WINDOW = timedelta(minutes=15)
UNDO_LOOKBACK = 50  # newest entries of a post searched for its last status or assignee change
# platforms whose writer counts something other than characters (X: links weigh 23 and some
# scripts 2; Bluesky: grapheme clusters): the page counts characters as a guide, and the
# writer's exact count decides when the reply is sent
EXACT_COUNT_WHEN_SENT = frozenset({"x", "bluesky"})


def load_post(post_id: int) -> dict[str, Any]:
    post = post_record.post_detail(get_db(), post_id)
    if post is None:
        abort(404, f"There is no post {post_id}.")
    post["url"] = http_url(post["url"])  # only http(s) links leave the server
    post.pop("raw", None)  # the platform's payload: large, and not for the page
    return post


@bp.get("/posts/<rowid:post_id>")
def page(post_id: int) -> Any:
    return render_post(post_id)


def render_post(post_id: int, *, problem: str | None = None, code: int = 200,
                reply_text: str = "", note_text: str = "") -> tuple[str, int]:
    """The post page; ``problem`` (a refused change, said above the forms) comes with the
    text the person had typed, so nothing they wrote is lost."""
    db = get_db()
    post = load_post(post_id)
    score = post["scores"][0] if post["scores"] else None
    state = teamwork.handling(db, post_id)
    html = render_template(
        "post.html", post=post, score=score, feedback=feedback.for_post(db, post_id),
        latest=feedback.latest_for(db, post_id), labels=feedback.LABELS,
        predicted={f: feedback.predicted_label(f, score) for f in ("sentiment", "urgency")},
        urgency_text=URGENCY_TEXT, state=state, timing=timing(post, state, now()),
        statuses=STATUS_BUTTONS, people=assignable(db), me=actor(),
        notes=inbox.notes(db, post_id), note_max=inbox.NOTE_MAX,
        replies=replies.for_post(db, post_id), reply_status=REPLY_STATUS_TEXT,
        answer=reply_form(post), rejections=rejections(db, post_id),
        undo=undoable(db, post_id, actor(), now()),
        problem=problem, reply_text=reply_text, note_text=note_text,
    )
    return html, code


@bp.get("/api/posts/<rowid:post_id>")
def api(post_id: int) -> Any:
    post = load_post(post_id)
    post["feedback"] = feedback.for_post(get_db(), post_id)
    return jsonify(post)


# -- what the page shows ---------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """A wait as people say it: '45 s', '12 min', '3 h 20 min', '2 d 4 h'; '–' for none."""
    if seconds is None:
        return "–"
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{total} s"


bp.add_app_template_filter(duration, "duration")


def timing(post: dict[str, Any], state: teamwork.Handling, at: datetime) -> dict[str, Any]:
    """How long the customer has waited, against the brand's first-response target, and how
    long answering and resolving took once they are known."""
    rules = settings().inbox
    created = parse_iso(post["created_at"])
    waiting = triage.Waiting(at, rules.first_response, rules.brand_first_response,
                             rules.stale_after)
    target = waiting.target_for(post["brand"])
    unanswered = state.status in teamwork.UNANSWERED
    stale = unanswered and at - created > rules.stale_after
    return {
        "age": (at - created).total_seconds(), "target": target.total_seconds(),
        "unanswered": unanswered, "stale": stale,
        "overdue": waiting.overdue(post["brand"], created, state.status) and not stale,
        "first_response": _after(created, state.first_response_at),
        "resolution": _after(created, state.resolved_at),
    }


def _after(created: datetime, stamp: str | None) -> float | None:
    return None if stamp is None else max((parse_iso(stamp) - created).total_seconds(), 0.0)


def assignable(db: Db) -> list[str]:
    """Who a post can be given to: active agents and admins (viewers cannot work posts)."""
    return [u.name for u in users.everyone(db) if u.active and u.role != "viewer"]


@dataclass(frozen=True)
class ReplyForm:
    """How a post can be answered: through ``account`` (None: copy the reply and open the
    post), with the platform's limit (None: unknown) and whether an admin must approve."""

    account: str | None
    platform: str
    limit: int | None
    exact_when_sent: bool
    needs_approval: bool


def reply_form(post: dict[str, Any]) -> ReplyForm:
    rules = settings().inbox
    found = rules.account_for(post["platform"], post["brand"])
    platform = found.platform if found is not None else str(post["platform"])
    current = who()
    return ReplyForm(account=found.name if found is not None else None, platform=platform,
                     limit=reply_limit(platform),
                     exact_when_sent=platform in EXACT_COUNT_WHEN_SENT,
                     needs_approval=current is not None and current.role in rules.reply_approval)


@cache
def reply_limit(platform: str) -> int | None:
    """The platform's limit for one reply: its writer's ``max_chars`` (the writer module is
    imported on first use, as the daemon does); None for a platform no writer serves."""
    from alerts.replies.registry import WRITERS, writer_class

    if platform not in WRITERS:
        return None
    return int(writer_class(platform).max_chars)


def rejections(db: Db, post_id: int) -> dict[str, str]:
    """Why each of the post's rejected replies was rejected, by reply id (the reason is kept
    in the audit entry of the rejection, which the post page shows to the reply's author)."""
    entries = audit.entries(db, audit.AuditFilter(target=f"post:{post_id}",
                                                  action="reply.reject"), limit=100)
    return {str(e.detail.get("reply")): str(e.detail.get("reason", "")) for e in entries}


def form_text(name: str) -> str:
    """A text field as typed, without NUL characters (PostgreSQL cannot store them, and no
    platform takes them)."""
    return request.form.get(name, "").replace("\x00", "")


# -- undo ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Undo:
    """The last change to a post's status or assignee: what it made (``after``) and what
    undoing it puts back (``before``)."""

    entry: int
    action: str
    at: str
    before: Holder
    after: Holder


def change_detail(before: Holder, after: Holder) -> dict[str, Any]:
    """An audit entry's detail: the statuses, and the assignees when they changed."""
    detail: dict[str, Any] = {"from": before.status, "to": after.status}
    if before.assignee != after.assignee:
        detail.update(from_assignee=before.assignee, to_assignee=after.assignee)
    return detail


def _change(entry: audit.Entry, current: Holder) -> Undo | None:
    """An entry's change read back (None when its detail is not one this page wrote)."""
    d = entry.detail
    if d.get("from") not in triage.STATUSES or d.get("to") not in triage.STATUSES:
        return None
    after = Holder(d["to"], d["to_assignee"] if "to_assignee" in d else current.assignee)
    before = Holder(d["from"], d["from_assignee"] if "from_assignee" in d else after.assignee)
    return Undo(entry.id, entry.action, entry.at, before, after)


def undoable(db: Db, post_id: int, me: str, at: datetime) -> Undo | None:
    """The post's last status or assignee change, if ``me`` made it less than UNDO_WINDOW ago
    and the post is still as it left it (nobody, no sent reply, changed it since)."""
    current = inbox.holder(db, post_id)
    for entry in audit.entries(db, audit.AuditFilter(target=f"post:{post_id}"),
                               limit=UNDO_LOOKBACK):
        if entry.action not in UNDOABLE:
            continue
        change = _change(entry, current)
        if (change is None or entry.actor != me or change.after != current
                or at - parse_iso(entry.at) > UNDO_WINDOW):
            return None
        return change
    return None


def put_back(db: Db, post_id: int, change: Undo, by: str, at: datetime) -> dict[str, Any]:
    """Undo ``change`` (in the caller's transaction); the ``post.undo`` entry's detail. A first
    response the change stamped is forgotten again: a mis-click is not an answer. (The stamp
    is the change's own second, or the one before: the audit entry is written just after.)"""
    inbox.restore(db, post_id, change.before, by, at)
    if change.before.status in teamwork.UNANSWERED and change.after.status in triage.ANSWERED:
        stamped = parse_iso(change.at)
        teamwork.forget_first_response(db, post_id, stamped - timedelta(seconds=1), stamped)
    return {**change_detail(change.after, change.before), "undoes": change.entry}


# -- changes ---------------------------------------------------------------------------------


def _back(post_id: int) -> Any:
    """After a change: where the form said to go back to (a local path), else the post."""
    return redirect(safe_next(request.form.get("next"), url_for("posts.page", post_id=post_id)),
                    code=303)


@bp.post("/posts/<rowid:post_id>/status")
def status(post_id: int) -> Any:
    """Any of the five statuses. 'assigned' with nobody having the post gives it to whoever
    clicked; 'new' means nobody has it any more. Undo is offered on the post page."""
    value = request.form.get("status", "")
    if value not in triage.STATUSES:
        abort(400, f"status must be one of: {', '.join(triage.STATUSES)}")
    db = get_db()
    with immediate(db):  # the change and its audit entry together
        load_post(post_id)
        before = inbox.holder(db, post_id)
        if value == "assigned" and before.assignee is None:
            inbox.assign(db, post_id, actor(), actor(), now())
        triage.set_status(db, post_id, value, actor(), now())
        auditing.record("post.status", target=f"post:{post_id}",
                        detail=change_detail(before, inbox.holder(db, post_id)))
    return _back(post_id)


@bp.post("/posts/<rowid:post_id>/assign")
def assign(post_id: int) -> Any:
    """Give the post to someone: ``assignee`` = an active agent's or admin's name, ``me``, or
    empty for nobody."""
    db = get_db()
    chosen = request.form.get("assignee", "").strip()
    if chosen == "me":
        chosen = actor()
    elif chosen and chosen not in assignable(db):
        return render_post(post_id, problem=f"{chosen!r} is not an active agent or admin: "
                           "choose someone from the list.", code=400)
    with immediate(db):
        load_post(post_id)
        before = inbox.assign(db, post_id, chosen or None, actor(), now())
        auditing.record("post.assign", target=f"post:{post_id}",
                        detail=change_detail(before, inbox.holder(db, post_id)))
    return _back(post_id)


def _entry_id(value: str | None) -> int:
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit() and 0 < len(text) < 19):
        abort(400, "'entry' must be the id of the change to undo")
    return int(text)


@bp.post("/posts/<rowid:post_id>/undo")
def undo(post_id: int) -> Any:
    """Put back the status and assignee the person's last change replaced. A first response
    that change stamped is forgotten again: a mis-click is not an answer to the customer."""
    entry = _entry_id(request.form.get("entry"))
    db = get_db()
    with immediate(db):
        load_post(post_id)
        change = undoable(db, post_id, actor(), now())
        if change is not None and change.entry == entry:
            auditing.record("post.undo", target=f"post:{post_id}",
                            detail=put_back(db, post_id, change, actor(), now()))
    if change is None or change.entry != entry:
        return render_post(post_id, code=409, problem=(
            "That change can no longer be undone: it is older than "
            f"{int(UNDO_WINDOW.total_seconds() // 60)} minutes, was not yours, or the post "
            "has changed since."))
    return _back(post_id)


@bp.post("/posts/<rowid:post_id>/notes")
def add_note(post_id: int) -> Any:
    """An internal note: for the team only, never sent anywhere. The audit entry names the
    note, not its text (the log is read more widely than the post)."""
    text = form_text("text")
    if not text.strip() or len(text.strip()) > inbox.NOTE_MAX:
        return render_post(post_id, code=400, note_text=text[:inbox.NOTE_MAX * 2],
                           problem=f"A note has 1 to {inbox.NOTE_MAX:,} characters.")
    db = get_db()
    with immediate(db):
        load_post(post_id)
        note = inbox.add_note(db, post_id, actor(), text, now())
        auditing.record("post.note", target=f"post:{post_id}", detail={"note": note})
    return redirect(url_for("posts.page", post_id=post_id, _anchor="notes"), code=303)


@bp.post("/posts/<rowid:post_id>/feedback")
def add_feedback(post_id: int) -> Any:
    """The right label for a field (sentiment, urgency) or "not relevant"."""
    field, label = request.form.get("field", ""), request.form.get("label", "")
    if label not in feedback.LABELS.get(field, ()):
        abort(400, "field must be sentiment, urgency or relevance, with one of its labels: "
                   + "; ".join(f"{f}: {', '.join(v)}" for f, v in feedback.LABELS.items()))
    db = get_db()
    with immediate(db):
        load_post(post_id)
        feedback.add_feedback(db, post_id, field, label, actor(), now())
        auditing.record("post.feedback", target=f"post:{post_id}",
                        detail={"field": field, "label": label})
    target = url_for("posts.page", post_id=post_id, saved=field)
    return redirect(safe_next(request.form.get("next"), target), code=303)
