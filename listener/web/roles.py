"""What each role may do, decided here for every request, not in the views.

- viewer: reads everything; every state-changing request is refused (403, a page saying so).
- agent: also works the queue — post status, feedback, alert retries: every POST.
- admin: also people and the audit log: every endpoint of the ``admin`` blueprint.

A new POST endpoint is an agent's by default and a new admin page is admin-only by living in
the admin blueprint, so none can be forgotten. Templates hide what a role cannot use
(:func:`can`); the checks here are what actually refuses it.
"""

from __future__ import annotations

from flask import abort, request

from listener.web.context import who

OPEN_TO_ALL = frozenset({"auth.login", "auth.logout"})  # changes only one's own session
ADMIN_BLUEPRINTS = frozenset({"admin"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
VIEWER_REFUSED = "Viewers cannot change anything; ask an admin if you need to."
ADMIN_ONLY = "Only admins can manage people and read the audit log."


def needs(endpoint: str | None, blueprint: str | None, method: str) -> str | None:
    """The least role an endpoint needs with this method; None for anyone (or no endpoint:
    a 404 or 405 answers anyway)."""
    if endpoint is None or endpoint in OPEN_TO_ALL:
        return None
    if blueprint in ADMIN_BLUEPRINTS:
        return "admin"
    return None if method in READ_METHODS else "agent"


def check() -> None:
    """Refuse (403) what this person's role does not allow; runs after identity, before CSRF,
    so a viewer is told why even for a forged form."""
    current = who()
    role = needs(request.endpoint, request.blueprint, request.method)
    if current is None or role is None or current.can(role):
        return
    abort(403, ADMIN_ONLY if role == "admin" else VIEWER_REFUSED)


def can(role: str) -> bool:
    """For templates: whether to show what needs ``role``."""
    current = who()
    return current is not None and current.can(role)
