"""The login form and logout: by name and password (people), or by the shared access token.

A password is checked with argon2 (``listener.core.passwords``), which costs as much for a
name nobody has; a hash made with weaker parameters than today's is replaced at log-in. Wrong
passwords and tokens take tries from the same per-address bucket (429 with Retry-After), and
every wrong one is audited as ``login.failed`` with the name tried — never the password. A
right one starts a server-side session (``web_sessions.user_id`` names the person) and is
audited as ``login``; logging out ends it (``logout``).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from sqlite_utils import Database
from werkzeug.wrappers import Response as BaseResponse

from listener.core.passwords import hash_password, needs_rehash, verify_password
from listener.web import auditing, sessions
from listener.web.context import get_db, now, settings, who
from listener.web.identity import login_required, people, session_key
from listener.web.security import (
    SESSION_COOKIE,
    client,
    safe_next,
    secure_cookies,
    throttle,
    try_token,
)
from listener.web.sessions import SESSION_MAX_AGE
from storage import users
from storage.tx import immediate

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
MAX_NAME = 128  # characters of a tried name kept (users' names are no longer)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = safe_next(request.values.get("next"))
    if not login_required():
        return redirect(target)
    if request.method == "GET":
        return _form(target)
    if "name" in request.form:
        return _password_login(target)
    return _token_login(target)


def _form(target: str, *, failed: str | None = None, wait: int = 0, status: int = 200) -> Any:
    """The form: name and password when people exist, the token when one is configured."""
    page = render_template("login.html", next=target, failed=failed, wait=wait,
                           people=people(), token=settings().token is not None,
                           sso=settings().sso_header is not None,
                           name=request.form.get("name", "")[:MAX_NAME])
    extra = {"Retry-After": str(wait)} if wait else {}
    return page, status, extra


def _password_login(target: str) -> Any:
    name = request.form.get("name", "").strip()[:MAX_NAME]
    password = request.form.get("password", "")
    key, at = client(), now().timestamp()
    wait = throttle().take(key, at)
    if wait:
        return _form(target, wait=wait, status=429)
    user, stored = _check(name, password)
    if user is None or stored is None:
        if throttle().exhausted(key, at):
            log.warning("dashboard: too many wrong passwords from %s: throttled", key)
        auditing.record("login.failed", by=auditing.ANONYMOUS,
                        target=f"user:{name.lower()}" if name else None,
                        detail={"name": name, "via": "password"})
        return _form(target, failed="password", status=401)
    throttle().give_back(key, at)
    return _started(target, _open(user, stored, password))


def _check(name: str, password: str) -> tuple[users.User | None, str | None]:
    """The enabled user whose password this is, with their stored hash; (None, …) otherwise.
    An unknown or disabled name is checked against a dummy hash: the same work, the same time."""
    db = get_db()
    stored = users.password_hash(db, name)  # None for an unknown or disabled name
    if not verify_password(stored, password):
        return None, None
    user = users.get(db, name)
    return (user, stored) if user is not None and user.active else (None, None)


def _open(user: users.User, stored: str, password: str) -> str:
    """Their session, their last log-in and the audit entry, together; a hash made with
    weaker parameters than today's is replaced (hashed first: argon2 is slow, the lock not)."""
    fresh = hash_password(password) if needs_rehash(stored) else None
    db = get_db()
    with immediate(db):
        if fresh is not None:
            users.set_password(db, user.name, fresh, now(), end_sessions=False)
        sid = _restart(db, user.id)
        users.logged_in(db, user.id, now())
        auditing.record("login", by=user.name, target=f"user:{user.name}",
                        detail={"via": "password"})
    return sid


def _token_login(target: str) -> Any:
    token = settings().token
    wait = try_token(request.form.get("token", ""), token) if token is not None else 0
    if wait:
        return _form(target, wait=wait, status=429)
    if wait is not None or token is None:
        auditing.record("login.failed", by=auditing.ANONYMOUS, detail={"via": "token"})
        return _form(target, failed="token", status=401)
    db = get_db()
    with immediate(db):
        sid = _restart(db, None)
        auditing.record("login", by="token", detail={"via": "token"})
    return _started(target, sid)


def _restart(db: Database, user_id: int | None) -> str:
    """A new session for this browser; the one its cookie named before (another person's,
    perhaps, on a shared computer) ends, so logging in again never leaves two open."""
    sessions.revoke(db, session_key(), request.cookies.get(SESSION_COOKIE, ""), now())
    return sessions.start(db, now(), user_id)


def _started(target: str, sid: str) -> BaseResponse:
    response = redirect(target)
    response.set_cookie(SESSION_COOKIE, sessions.cookie_value(session_key(), sid),
                        max_age=SESSION_MAX_AGE, httponly=True, samesite="Strict",
                        secure=secure_cookies())
    return response


@bp.post("/logout")
def logout() -> Any:
    """End this browser's session on the server too: a copy of the cookie stops working."""
    db = get_db()
    with immediate(db):
        if sessions.revoke(db, session_key(), request.cookies.get(SESSION_COOKIE, ""), now()):
            current = who()
            auditing.record("logout", target=f"user:{current.actor}" if current and
                            current.user_id is not None else None)
    response = redirect(url_for("auth.login"))
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="Strict",
                           secure=secure_cookies())
    return response
