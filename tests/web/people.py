"""People for the dashboard tests (issue 18): users added through the storage verbs, log-ins
through the real form, the CSRF token a page's forms carry, and the audit log as rows.

argon2 takes a noticeable part of a second per hash, so every test user shares one password
whose hash is made once.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from listener.core.passwords import hash_password
from listener.web.app import WebSettings, create_app
from storage import audit, users
from storage.audit import AuditFilter, Entry
from storage.tx import connect
from tests.web.seed import NOW

PASSWORD = "correct horse battery staple"
CLIENT = "198.51.100.20"  # where the test client's requests come from


@cache
def password_hash() -> str:
    return hash_password(PASSWORD)


def add_people(path: Path, **roles: str) -> None:
    """``add_people(path, alice="agent", root="admin")``: users with the shared password."""
    db = connect(path)
    try:
        for name, role in roles.items():
            users.add(db, name, role, password_hash(), NOW)
    finally:
        db.close()


def app_for(path: Path, **settings: Any) -> Flask:
    settings.setdefault("clock", lambda: NOW)
    return create_app(WebSettings(database=path, **settings))


def log_in(client: FlaskClient, name: str, password: str = PASSWORD, address: str = CLIENT,
           **form: str) -> TestResponse:
    return client.post("/login", data={"name": name, "password": password, **form},
                       environ_base={"REMOTE_ADDR": address})


def logged_in(app: Flask, name: str) -> FlaskClient:
    """A test client whose session is ``name``'s; its requests come from CLIENT."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = CLIENT
    response = log_in(client, name)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def csrf_of(client: FlaskClient, path: str = "/queue") -> str:
    """The CSRF token a page's forms carry (the page also sets the cookie it is bound to)."""
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, f"no form on {path}"
    return found.group(1)


def audit_rows(path: Path, **filters: Any) -> list[Entry]:
    """Every audit entry (oldest first), optionally filtered like the admin's page."""
    db = connect(path)
    try:
        return list(audit.every_entry(db, AuditFilter(**filters)))
    finally:
        db.close()


def changes(path: Path) -> list[Entry]:
    """The entries that record a change (not log-ins and logouts)."""
    return [e for e in audit_rows(path) if not e.action.startswith(("login", "logout"))]


def user(path: Path, name: str) -> users.User | None:
    db = connect(path)
    try:
        return users.get(db, name)
    finally:
        db.close()


def post_status(path: Path, post_id: int) -> tuple[str, str] | None:
    """(status, by) of a post, None while nobody has set one."""
    db = connect(path)
    try:
        row = db.execute("SELECT status, by FROM post_status WHERE post_id = ?",
                         [post_id]).fetchone()
    finally:
        db.close()
    return (row[0], row[1]) if row else None
