"""People and the audit log: the admin's pages. The whole blueprint is admin-only
(:mod:`listener.web.roles`); every change here is audited in its own transaction.

Passwords are checked (``check_strength``) and hashed before the write transaction starts:
argon2 takes a while, and the database's one write lock should not wait for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for

from listener.core.errors import ConfigError
from listener.core.passwords import MIN_LENGTH, check_strength, hash_password
from listener.web import auditing
from listener.web.context import get_db, now, who
from listener.web.export import csv_stream
from listener.web.params import MAX_TEXT, SQLITE_MAX_INT
from storage import audit, users
from storage.engine import Db
from storage.tx import immediate

bp = Blueprint("admin", __name__)
AUDIT_COLUMNS = ("id", "at", "actor", "action", "target", "detail", "address")
AUDIT_FILTERS = ("actor", "action", "target", "since", "until")
ACTION_PREFIXES = ("post.", "alert.", "user.", "login")
DONE = {"user.add": "added", "user.role": "role changed", "user.disable": "disabled",
        "user.enable": "enabled", "user.password": "password set; their sessions ended"}
Change = Callable[[Db], tuple[users.User, dict[str, Any] | None]]


@bp.get("/admin/users")
def users_page() -> Any:
    return _users_page()


def _users_page(problem: str | None = None, status: int = 200) -> Any:
    done = request.args.get("done", "")[:MAX_TEXT]
    what = DONE.get(request.args.get("what", ""))
    page = render_template("users.html", people=users.everyone(get_db()), roles=users.ROLES,
                           problem=problem, done=done if what else None, what=what,
                           me=who(), min_length=MIN_LENGTH)
    return page, status


def _refusals_on_the_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """A change that cannot be made (a taken name, the last admin, a short password) is said
    on the people page, with 400, instead of an error page."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ConfigError as exc:
            return _users_page(problem=str(exc), status=400)
    return wrapper


def _apply(action: str, change: Change) -> Any:
    """Make a change and its audit entry in one transaction, then back to the list."""
    db = get_db()
    with immediate(db):
        user, detail = change(db)
        auditing.record(action, target=f"user:{user.name}", detail=detail)
    return redirect(url_for("admin.users_page", done=user.name, what=action), code=303)


def _new_hash(field: str = "password", optional: bool = False) -> str | None:
    password = request.form.get(field, "")
    if optional and not password:
        return None  # single sign-on only: no password to log in with
    return hash_password(check_strength(password))


def _existing(db: Db, name: str) -> users.User:
    user = users.get(db, name)
    if user is None:
        raise users.UserError(f"no user named {name.strip().lower()!r}")
    return user


@bp.post("/admin/users")
@_refusals_on_the_page
def add_user() -> Any:
    name, role = request.form.get("name", ""), request.form.get("role", "")
    users.check_role(role)
    users.normalize_name(name)  # refused before the slow hash
    hashed = _new_hash(optional=True)
    return _apply("user.add", lambda db: (users.add(db, name, role, hashed, now()),
                                          {"role": role, "password": hashed is not None}))


@bp.post("/admin/users/<name>/role")
@_refusals_on_the_page
def set_role(name: str) -> Any:
    role = request.form.get("role", "")

    def change(db: Db) -> tuple[users.User, dict[str, Any]]:
        before = _existing(db, name).role
        return users.set_role(db, name, role), {"from": before, "to": role}
    return _apply("user.role", change)


@bp.post("/admin/users/<name>/disabled")
@_refusals_on_the_page
def set_disabled(name: str) -> Any:
    disabled = request.form.get("disabled") == "1"
    return _apply("user.disable" if disabled else "user.enable",
                  lambda db: (users.set_disabled(db, name, disabled, now()), None))


@bp.post("/admin/users/<name>/password")
@_refusals_on_the_page
def reset_password(name: str) -> Any:
    """A new password; their open sessions end (a reset usually means the old one leaked)."""
    hashed = _new_hash()
    return _apply("user.password", lambda db: (users.set_password(db, name, hashed, now()), None))


def _day(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        abort(400, f"'{name}' must be a date, YYYY-MM-DD")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _audit_filter() -> tuple[audit.AuditFilter, dict[str, str]]:
    """The filters of the audit page and its export; ``until`` is a whole day (inclusive)."""
    args = {k: (request.args.get(k) or "").strip()[:MAX_TEXT] for k in AUDIT_FILTERS}
    args = {k: v for k, v in args.items() if v}
    until = _day("until", args.get("until"))
    if until is not None:
        until = until + timedelta(days=1) if until.year < 9999 else None
    return audit.AuditFilter(actor=args.get("actor"), action=args.get("action"),
                             target=args.get("target"), since=_day("since", args.get("since")),
                             until=until), args


def _before_id() -> int | None:
    value = request.args.get("before_id") or ""
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= SQLITE_MAX_INT:
        abort(400, "'before_id' must be a positive whole number")
    return int(value)


@bp.get("/admin/audit")
def audit_page() -> Any:
    f, args = _audit_filter()
    db = get_db()
    rows = audit.entries(db, f, limit=audit.PAGE, before_id=_before_id())
    older = rows[-1].id if len(rows) == audit.PAGE else None
    return render_template("audit.html", rows=rows, args=args, older=older,
                           actions=[*ACTION_PREFIXES, *audit.actions(db)],
                           actors=[u.name for u in users.everyone(db)])


@bp.get("/export/audit.csv")
def audit_export() -> Any:
    """Every matching entry, oldest first, streamed: no row limit."""
    f, _ = _audit_filter()
    return csv_stream(_audit_rows(f), AUDIT_COLUMNS, "audit.csv")


def _audit_rows(f: audit.AuditFilter) -> Iterator[tuple[Any, ...]]:
    for e in audit.every_entry(get_db(), f):
        detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True) if e.detail else ""
        yield (e.id, e.at, e.actor, e.action, e.target, detail, e.address)
