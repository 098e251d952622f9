"""Who is there: the first thing every request (after the Host check) is asked.

In order: ``Authorization: Bearer TOKEN`` (the shared ``serve.token``, for scripts: role admin,
actor ``token``), a single-sign-on proxy's header (:mod:`listener.web.sso`), the session cookie
the login form set (a named user's, or the shared token's). The answer goes into ``g.who``
(:class:`listener.web.context.Who`), which :mod:`listener.web.roles` checks and the audit log
names.

Log-in is needed when ``serve.token`` or ``serve.sso_header`` is set or anyone may log in by
name (an enabled user exists). With none of them, as before people existed, everyone is
``local`` with role admin (``listener serve`` binds loopback only without a token).

A named user's session is checked against the users table on every request: disabling someone
or changing their role takes effect at their next click, not at their next log-in.
"""

from __future__ import annotations

from flask import g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from listener.web import sessions, sso
from listener.web.context import LOCAL, Who, get_db, now, settings
from listener.web.security import (
    MACHINE_PATHS,
    SESSION_COOKIE,
    too_many,
    try_token,
    unauthorized,
)
from storage import users

TOKEN_API = Who("token", "admin", "api")  # a script with the Bearer token
TOKEN_SESSION = Who("token", "admin", "session")  # a browser that logged in with the token


def people() -> bool:
    """Whether anyone may log in by name (asked once per request)."""
    if "people" not in g:
        g.people = users.any_active(get_db())
    return bool(g.people)


def login_required() -> bool:
    config = settings()
    return config.token is not None or config.sso_header is not None or people()


def session_key() -> str:
    """What session cookies are signed with (``listener.web.sessions.signing_key``)."""
    return sessions.signing_key(settings().token)


def authenticate() -> BaseResponse | None:
    """Set ``g.who``, or answer: 401 for API clients, the login form for people, 429 for a
    client that sent too many wrong tokens."""
    if request.endpoint == "auth.login":  # the form itself decides
        return None
    token = settings().token
    header = request.headers.get("Authorization", "")
    if token is not None and header.startswith("Bearer "):
        wait = try_token(header[7:].strip(), token)
        if wait is None:
            _let_in(TOKEN_API)
            return None
        return too_many(wait) if wait else unauthorized()
    found = sso.identify() or _from_session() or (None if login_required() else LOCAL)
    if found is not None:
        _let_in(found)
        return None
    if request.endpoint == "auth.logout":  # nothing to end: off to the form
        return redirect(url_for("auth.login"))
    if request.method == "GET" and not request.path.startswith(MACHINE_PATHS):
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return unauthorized()


def _let_in(found: Who) -> None:
    g.who = found
    g.via = found.via


def _from_session() -> Who | None:
    """The person whose live session the cookie names; None for none, a forged or ended one,
    a disabled user's, or a token session when the token is no longer configured."""
    value = request.cookies.get(SESSION_COOKIE, "")
    if not value:
        return None
    found = sessions.live(get_db(), session_key(), value, now())
    if found is None:
        return None
    if found.user_id is None:
        return TOKEN_SESSION if settings().token is not None else None
    user = users.by_id(get_db(), found.user_id)
    if user is None or not user.active:
        return None
    return Who(user.name, user.role, "session", user.id)
