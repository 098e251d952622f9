"""Working the queue (issue 18): what one click or one bulk action changes, how it is undone,
and how long each row's customer has waited. The routes are in :mod:`listener.web.queue`.

A change names one post (a row's buttons) or many (the ticked rows): a status, or who has the
posts. It is made in one transaction with one audit entry per post it changed, the same
entries the post page writes (``post.status`` / ``post.assign``, detail from
:func:`listener.web.posts.change_detail`), so either page can undo what the other did and the
audit log reads the same whichever page was used. Posts already as asked are left alone: no
entry, nothing to undo.

Undo names the audit entries of the change (the queue page's link carries their ids after the
change). Each must still be undoable by the rule of the post page
(:func:`listener.web.posts.undoable`: the viewer's own change, recent, the latest on its post
and the post still as it left it) or nothing is undone: a colleague who picked one of the posts
up since keeps it. Undoing is itself a change (``post.undo``) and can be undone ("Redo").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import abort

from listener.core.models import parse_iso
from listener.web import auditing
from listener.web.params import SQLITE_MAX_INT
from listener.web.posts import UNDO_WINDOW, Undo, change_detail, undoable
from storage import audit, inbox, queue_reads, teamwork, triage
from storage.engine import Db
from storage.inbox import Holder
from storage.tx import immediate

MAX_SELECTED = 100  # posts one change may name: two pages of the queue
NOTICE_PARAMS = ("undo", "done", "select")  # what a change adds to the queue's address
NOTICES = {  # done=… after a change that changed nothing
    "none-selected": "Tick the posts to change first: nothing was changed.",
    "unchanged": "Those posts were already so: nothing was changed.",
    "nothing-to-undo": "Nothing to undo.",
}
STATUS_TEXT = {"new": "new (nobody has it)", "assigned": "assigned", "replied": "replied",
               "handled": "handled", "not_relevant": "not relevant"}
_ID = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class Change:
    """What a form asks for: a status, or who has the posts (``assignee`` None: nobody)."""

    status: str | None = None
    assignee: str | None = None


def parse_ids(values: Iterable[str], what: str = "post_id") -> list[int]:
    """Ids from a form, in order, without repeats; a 400 naming the field for anything else
    or for more than MAX_SELECTED of them."""
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not text:
                continue
            if not _ID.fullmatch(text) or not 0 < int(text) <= SQLITE_MAX_INT:
                abort(400, f"'{what}' must be ids (whole numbers)")
            if int(text) not in ids:
                ids.append(int(text))
    if len(ids) > MAX_SELECTED:
        abort(400, f"one change can name at most {MAX_SELECTED} posts")
    return ids


def parse_change(form: Mapping[str, str], me: str, people: Sequence[str]) -> Change:
    """The change a row's or the bulk form's fields ask for. ``apply`` says which of the two
    menus counts (the bulk form sends both); without it, a status if one was sent. An assignee
    is ``me``, someone in ``people`` (active agents and admins) or empty for nobody."""
    apply = form.get("apply") or ("status" if "status" in form else "assignee")
    if apply == "status":
        status = form.get("status", "")
        if status not in triage.STATUSES:
            abort(400, f"status must be one of: {', '.join(triage.STATUSES)}")
        return Change(status=status)
    if apply != "assignee" or "assignee" not in form:
        abort(400, "say what to change: a status, or an assignee (empty for nobody)")
    chosen = form.get("assignee", "").strip()
    if chosen == "me":
        chosen = me
    if chosen and chosen != me and chosen not in people:
        abort(400, f"{chosen!r} is not an active agent or admin: choose someone from the list")
    return Change(assignee=chosen or None)


def _target(before: Holder, change: Change, me: str) -> Holder:
    """What the post will be after the change (to leave alone posts already so). 'assigned'
    with nobody having the post gives it to whoever asked, as on the post page."""
    if change.status is None:
        status = before.status
        if change.assignee is None and before.status == "assigned":
            status = "new"
        elif change.assignee is not None and before.status == "new":
            status = "assigned"
        return Holder(status, change.assignee)
    if change.status == "new":
        return Holder("new", None)
    if change.status == "assigned" and before.assignee is None:
        return Holder("assigned", me)
    return Holder(change.status, before.assignee)


def apply(db: Db, post_ids: Sequence[int], change: Change, me: str, at: datetime) -> list[int]:
    """Make the change to every post, all or none (a missing post: 404, nothing changed);
    returns the audit entries written, one per post that changed."""
    with immediate(db):
        missing = sorted(set(post_ids) - queue_reads.existing(db, post_ids))
        if missing:
            abort(404, f"There is no post {', '.join(map(str, missing))}: nothing was changed.")
        befores = {pid: inbox.holder(db, pid) for pid in post_ids}
        todo = [pid for pid in post_ids if _target(befores[pid], change, me) != befores[pid]]
        if change.status is None:
            inbox.bulk_assign(db, todo, change.assignee, me, at)
        else:
            if change.status == "assigned":
                inbox.bulk_assign(db, [p for p in todo if befores[p].assignee is None], me, me, at)
            inbox.bulk_status(db, todo, change.status, me, at)
        action = "post.status" if change.status is not None else "post.assign"
        return [_record(db, action, pid, change_detail(befores[pid], inbox.holder(db, pid)),
                        me, len(todo)) for pid in todo]


def _record(db: Db, action: str, post_id: int, detail: dict[str, Any], me: str,
            count: int) -> int:
    """One post's audit entry (``bulk``: how many posts the change named, when more than
    one); its id, for undo."""
    if count > 1:
        detail = {**detail, "bulk": count}
    auditing.record(action, target=f"post:{post_id}", detail=detail)
    [entry] = audit.entries(db, audit.AuditFilter(actor=me, action=action,
                                                  target=f"post:{post_id}"), limit=1)
    return entry.id


def _entry(db: Db, entry_id: int) -> audit.Entry | None:
    found = audit.entries(db, audit.AuditFilter(), limit=1, before_id=entry_id + 1)
    return found[0] if found and found[0].id == entry_id else None


def _post_of(entry: audit.Entry | None) -> int | None:
    target = entry.target if entry is not None else None
    if target is None or not target.startswith("post:") or not _ID.fullmatch(target[5:]):
        return None
    return int(target[5:])


def undoable_changes(db: Db, entry_ids: Sequence[int], me: str, at: datetime
                     ) -> list[tuple[int, Undo]] | None:
    """(post, change) for each entry, or None unless every one can still be undone."""
    found: list[tuple[int, Undo]] = []
    for entry_id in entry_ids:
        post_id = _post_of(_entry(db, entry_id))
        if post_id is None:
            return None
        change = undoable(db, post_id, me, at)
        if change is None or change.entry != entry_id:
            return None
        found.append((post_id, change))
    return found or None


def undo(db: Db, entry_ids: Sequence[int], me: str, at: datetime) -> list[int] | None:
    """Put back what the entries' change replaced, every post or none (None: one of them can
    no longer be undone); the ``post.undo`` entries written. A first response the change
    stamped is forgotten again, as on the post page: a mis-click is not an answer."""
    with immediate(db):
        changes = undoable_changes(db, entry_ids, me, at)
        if changes is None:
            return None
        written = []
        for post_id, change in changes:
            inbox.restore(db, post_id, change.before, me, at)
            if (change.before.status in teamwork.UNANSWERED
                    and change.after.status in triage.ANSWERED):
                stamped = parse_iso(change.at)
                teamwork.forget_first_response(db, post_id, stamped - timedelta(seconds=1),
                                               stamped)
            detail = {**change_detail(change.after, change.before), "undoes": change.entry}
            written.append(_record(db, "post.undo", post_id, detail, me, len(changes)))
        return written


def undo_minutes() -> int:
    """How long a change can be undone (the post page's window), in minutes."""
    return int(UNDO_WINDOW.total_seconds() // 60)


@dataclass(frozen=True)
class UndoOffer:
    """The notice after a change: what was done, and the entries an Undo button names."""

    entries: str  # comma-separated audit entry ids
    posts: str  # comma-separated post ids (the page comes back to the post undone)
    message: str
    redo: bool  # the change was itself an undo


def offer(db: Db, entry_ids: Sequence[int], me: str, at: datetime) -> UndoOffer | None:
    """The undo the queue page offers after a change, while it can still be undone."""
    changes = undoable_changes(db, entry_ids, me, at) if entry_ids else None
    if changes is None:
        return None
    return UndoOffer(",".join(str(c.entry) for _, c in changes),
                     ",".join(str(post_id) for post_id, _ in changes), describe(changes),
                     changes[0][1].action == "post.undo")


def describe(changes: Sequence[tuple[int, Undo]]) -> str:
    """'Post 12 marked handled.', '3 posts given to alice.', 'Undone: post 12 is back to new,
    nobody has it.'"""
    post_id, first = changes[0]
    subject = f"Post {post_id}" if len(changes) == 1 else f"{len(changes)} posts"
    after = first.after
    if first.action == "post.undo":
        if len(changes) > 1:
            return f"Undone: {subject.lower()} are back as they were."
        who = f"with {after.assignee}" if after.assignee else "nobody has it"
        return f"Undone: post {post_id} is back to {after.status.replace('_', ' ')}, {who}."
    if first.action == "post.assign":
        return f"{subject} {'given to ' + after.assignee if after.assignee else 'unassigned'}."
    return f"{subject} marked {STATUS_TEXT[after.status]}."


def back(next_url: str, **params: str | None) -> str:
    """The queue address a change returns to, with this change's notice instead of the last
    one's (``undo``, ``done``)."""
    parts = urlsplit(next_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in NOTICE_PARAMS]
    query += [(k, v) for k, v in params.items() if v]
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


@dataclass(frozen=True)
class Timing:
    """How long a row's customer has waited, against the brand's first-response target."""

    waited_s: int
    overdue_by_s: int | None  # None: answered, within the target, or stale
    stale: bool  # unanswered past stale_after: it sinks in the queue's order


def timing(row: Mapping[str, Any], waiting: triage.Waiting) -> Timing:
    created = parse_iso(str(row["created_at"]))
    waited = waiting.now - created
    unanswered = row["status"] in teamwork.UNANSWERED
    stale = unanswered and waited > waiting.stale_after
    overdue = waiting.overdue(row["brand"], created, str(row["status"])) and not stale
    late = waited - waiting.target_for(row["brand"])
    return Timing(max(int(waited.total_seconds()), 0),
                  int(late.total_seconds()) if overdue else None, stale)
