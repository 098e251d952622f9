"""The web's side of the audit log: every change made through the dashboard is recorded with
who made it (this request's actor), from where (the client's address, as the trusted proxies
report it) and when (the app's clock).

Views record inside the transaction of the change itself::

    with immediate(db):
        triage.set_status(db, ...)
        auditing.record("post.status", target=f"post:{post_id}", detail={...})

so a change and its entry are stored together or not at all (``immediate`` nests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import request

from listener.web.context import actor, get_db, now
from storage import audit

ANONYMOUS = "anonymous"  # the actor of refused log-ins: nobody proved a name


def record(action: str, *, target: str | None = None, detail: Mapping[str, Any] | None = None,
           by: str | None = None) -> None:
    """One entry for this request (``by`` overrides the actor: a log-in names the person
    before the request knows who it is)."""
    audit.record(get_db(), by or actor(), action, now(), target=target, detail=detail,
                 address=request.remote_addr)
