"""People who use the dashboard: a name, a role, a password hash, whether they may still log in.

Only the rows. Hashing and checking passwords is :mod:`listener.core.passwords`' job (argon2),
deciding what a role may do is the web layer's; this module never sees a password. Names are
the login names, stored lower-case and checked here (:func:`normalize_name`), so a name typed
at the login form and one a single-sign-on proxy sends meet. A disabled person keeps their row:
the audit log names them, and enabling them again keeps their history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.core.errors import ConfigError
from listener.core.models import to_iso
from storage.engine import Db, database_errors
from storage.tx import immediate

ROLES = ("admin", "agent", "viewer")  # most to least: admin > agent > viewer
# letters, digits and . _ @ + - (an e-mail address from a single-sign-on header fits)
_NAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,127}")
_COLUMNS = "id, name, role, password_hash IS NOT NULL, created_at, disabled_at, last_login_at"


class UserError(ConfigError):
    """A name, a role or a change to people that cannot be made (said to the operator)."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    has_password: bool
    created_at: str
    disabled_at: str | None
    last_login_at: str | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def normalize_name(name: str) -> str:
    """The stored form of a login name; refuses names that could not be one."""
    value = name.strip().lower()
    if not _NAME.fullmatch(value):
        raise UserError(f"{name!r} is not a usable name: 1-128 letters, digits and . _ @ + -, "
                        "starting with a letter or digit")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return role


def _user(row: Any) -> User:
    return User(int(row[0]), str(row[1]), str(row[2]), bool(row[3]), str(row[4]), row[5],
                row[6])


def add(db: Db, name: str, role: str, password_hash: str | None, now: datetime) -> User:
    """A new person; :class:`UserError` when the name is taken (enabled or not)."""
    name, role = normalize_name(name), check_role(role)
    with immediate(db):
        if get(db, name) is not None:
            raise UserError(f"a user named {name!r} exists already")
        db.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                   [name, role, password_hash, to_iso(now)])
        found = get(db, name)
    assert found is not None
    return found


def get(db: Db, name: str) -> User | None:
    """The person of that name (any case), enabled or not; None when there is none."""
    row = db.execute(f"SELECT {_COLUMNS} FROM users WHERE name = ?",  # noqa: S608 (constants)
                     [name.strip().lower()]).fetchone()
    return _user(row) if row else None


def by_id(db: Db, user_id: int) -> User | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM users WHERE id = ?",  # noqa: S608 (constants)
                     [user_id]).fetchone()
    return _user(row) if row else None


def everyone(db: Db) -> list[User]:
    """Every person, enabled first, then by name."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM users"  # noqa: S608 (constants)
                      " ORDER BY disabled_at IS NOT NULL, name").fetchall()
    return [_user(row) for row in rows]


def any_active(db: Db) -> bool:
    """Whether anyone may log in by name (the dashboard then asks who is there)."""
    try:
        row = db.execute("SELECT 1 FROM users WHERE disabled_at IS NULL LIMIT 1").fetchone()
    except database_errors():  # a database not migrated yet (a read-only dashboard): nobody
        return False
    return row is not None


def password_hash(db: Db, name: str) -> str | None:
    """The stored hash of an enabled person's password; None for anyone else."""
    row = db.execute("SELECT password_hash FROM users WHERE name = ? AND disabled_at IS NULL",
                     [name.strip().lower()]).fetchone()
    return str(row[0]) if row and row[0] is not None else None


def _change(db: Db, name: str, sql: str, params: list[Any]) -> User:
    with immediate(db):
        user = get(db, name)
        if user is None:
            raise UserError(f"no user named {name.strip().lower()!r}")
        db.execute(sql, [*params, user.id])
        changed = by_id(db, user.id)
    assert changed is not None
    return changed


def _keep_an_admin(db: Db, name: str) -> None:
    """Refuse to take the last enabled admin away: nobody could manage people after that
    (the CLI still could, but a dashboard-only team would be locked out of its own settings)."""
    user = get(db, name)
    if user is None or user.role != "admin" or not user.active:
        return
    others = db.execute("SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL"
                        " AND id <> ?", [user.id]).fetchone()[0]
    if not others:
        raise UserError(f"{user.name!r} is the last enabled admin: make someone else admin first")


def set_disabled(db: Db, name: str, disabled: bool, now: datetime) -> User:
    """Disable (no more log-ins; their open sessions end) or enable a person again."""
    if not disabled:
        return _change(db, name, "UPDATE users SET disabled_at = NULL WHERE id = ?", [])
    with immediate(db):
        _keep_an_admin(db, name)
        # disabling again keeps the first time: when they lost access
        user = _change(db, name, "UPDATE users SET disabled_at = coalesce(disabled_at, ?)"
                       " WHERE id = ?", [to_iso(now)])
        db.execute("UPDATE web_sessions SET revoked_at = ? WHERE user_id = ?"
                   " AND revoked_at IS NULL", [to_iso(now), user.id])
    return user


def set_password(db: Db, name: str, password_hash: str | None, now: datetime, *,
                 end_sessions: bool = True) -> User:
    """A new password (None: none, single sign-on only). The person's open sessions end: a
    password is reset because it may be known to someone else, who may be logged in
    (``end_sessions=False``: the same password re-hashed with stronger parameters at log-in)."""
    with immediate(db):
        user = _change(db, name, "UPDATE users SET password_hash = ? WHERE id = ?",
                       [password_hash])
        if end_sessions:
            db.execute("UPDATE web_sessions SET revoked_at = ? WHERE user_id = ?"
                       " AND revoked_at IS NULL", [to_iso(now), user.id])
    return user


def set_role(db: Db, name: str, role: str) -> User:
    with immediate(db):
        if check_role(role) != "admin":
            _keep_an_admin(db, name)
        return _change(db, name, "UPDATE users SET role = ? WHERE id = ?", [role])


def logged_in(db: Db, user_id: int, now: datetime) -> None:
    with immediate(db):
        db.execute("UPDATE users SET last_login_at = ? WHERE id = ?", [to_iso(now), user_id])
