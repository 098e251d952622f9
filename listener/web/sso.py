"""Single sign-on through a trusted reverse proxy (oauth2-proxy, Authelia, a company gateway).

The proxy authenticates people and names them in a header (``serve.sso_header``, e.g.
``X-Forwarded-User``); the dashboard believes that header only when the connection's direct
peer — the address the TCP connection came from, not one an X-Forwarded-For header named — is
in ``serve.sso_proxies``. Anyone else who sends it is ignored (and the try is audited as
``login.sso_refused``, at most once a minute per address, so a flood of forged headers cannot
flood the audit log). The proxy must drop the header from what clients send; the common ones
do.

The named person must be an enabled user; with ``serve.sso_default_role`` someone the proxy
vouches for who is not a user yet becomes one with that role and no password (audited as
``user.add`` by ``sso``). The header comes on every request, so there is no session: a user
disabled in the dashboard is refused at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import abort, request

from listener.core.models import parse_iso
from listener.web import auditing
from listener.web.context import Who, get_db, now, settings
from listener.web.proxy import in_networks, peer_address
from listener.web.security import cooldown
from listener.web.throttle import client_key
from storage import users
from storage.tx import immediate

log = logging.getLogger(__name__)
SSO_ACTOR = "sso"  # the actor of users the proxy's header created
NOTE_LOGIN_EVERY = timedelta(hours=1)  # last_login_at and a `login` entry, not one per request
MAX_SHOWN = 128  # characters of a refused name kept in the audit log


def identify() -> Who | None:
    """The person the proxy names; None when the header is absent or not to be believed
    (other ways of logging in may still apply). Refuses (403) a name that is not a user."""
    config = settings()
    if config.sso_header is None:
        return None
    name = request.headers.get(config.sso_header, "").strip()
    if not name:
        return None
    peer = peer_address(request.environ)
    if not in_networks(peer, config.sso_proxies):
        _refused(peer, name)
        return None
    return _person(name)


def _refused(peer: str, name: str) -> None:
    """A single-sign-on header from an address not in sso_proxies: a forgery, or a proxy left
    out of the list. Audited and logged once a minute per address."""
    if not cooldown().due(f"sso_refused:{client_key(peer)}", now().timestamp()):
        return
    log.warning("dashboard: ignored %s from %s (not in serve.sso_proxies)",
                settings().sso_header, peer)
    auditing.record("login.sso_refused", by=auditing.ANONYMOUS,
                    detail={"header": settings().sso_header, "name": name[:MAX_SHOWN],
                            "peer": peer})


def _person(name: str) -> Who:
    try:
        key = users.normalize_name(name)
    except users.UserError:
        _failed(name, "not a usable name")
        abort(403, "Single sign-on named someone who cannot be a dashboard user.")
    user = users.get(get_db(), key)
    role = settings().sso_default_role
    if user is None and role is not None:
        user = _create(key, role)
    if user is None or not user.active:
        _failed(key, "no such user" if user is None else "disabled")
        abort(403, f"{key} may not use this dashboard: ask an admin to add or enable them.")
    _note_login(user)
    return Who(user.name, user.role, "sso", user.id)


def _failed(name: str, why: str) -> None:
    """A refused name, audited once a minute per name (every page load repeats it)."""
    if cooldown().due(f"sso_failed:{name[:MAX_SHOWN]}", now().timestamp()):
        auditing.record("login.failed", by=auditing.ANONYMOUS, target=f"user:{name[:MAX_SHOWN]}",
                        detail={"name": name[:MAX_SHOWN], "via": "sso", "why": why})


def _create(name: str, role: str) -> users.User:
    """A new user the proxy vouches for, with no password (they only come through it)."""
    db = get_db()
    try:
        with immediate(db):
            user = users.add(db, name, role, None, now())
            auditing.record("user.add", by=SSO_ACTOR, target=f"user:{user.name}",
                            detail={"role": role, "password": False})
    except users.UserError:  # a second request created them first
        found = users.get(db, name)
        if found is None:
            raise
        return found
    return user


def _note_login(user: users.User) -> None:
    """Record that they came, at most once an hour (the header comes on every request)."""
    at = now()
    if user.last_login_at and at - parse_iso(user.last_login_at) < NOTE_LOGIN_EVERY:
        return
    db = get_db()
    with immediate(db):
        users.logged_in(db, user.id, at)
        auditing.record("login", by=user.name, target=f"user:{user.name}",
                        detail={"via": "sso"})
