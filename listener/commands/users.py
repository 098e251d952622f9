"""``listener users``: the people who may use the dashboard (issue 18) — ``add``, ``list``,
``disable``, ``enable``, ``set-role`` and ``set-password``.

Each change is written to the audit log in the same transaction as the change itself, by
``cli:<os user>``, so whoever has shell access to the database is still named. Passwords come
from an environment variable (scripts) or a hidden, confirmed prompt (a person at a terminal),
never from the command line, where ``ps`` and the shell's history would keep them; they and
their hashes are never printed or audited.

Thin: the work is in :mod:`storage.users`, :mod:`storage.audit` and
:mod:`listener.core.passwords`. Refusals (a taken name, the last admin) are raised as
:class:`storage.users.UserError`, which :func:`listener.cli.main` reports in one line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from listener.commands.options import cli_actor, config_option, configured_database
from listener.core.errors import ConfigError
from listener.core.models import utcnow
from listener.core.passwords import check_strength, hash_password
from listener.terminal_tables import table
from storage import audit
from storage import users as people
from storage.engine import Db
from storage.tx import immediate
from storage.users import ROLES, User, UserError

role_choice = click.Choice(ROLES)
password_env_option = click.option(
    "--password-env", "password_env", metavar="VAR",
    help="Read the password from the environment variable VAR (for scripts). Without it the "
    "password is asked for twice, hidden, on a terminal.")
no_password_option = click.option(
    "--no-password", is_flag=True,
    help="No password: this person logs in only through the single-sign-on proxy.")


@click.group()
def users() -> None:
    """Dashboard users and their roles: admin, agent, viewer."""


def _existing(db: Db, name: str) -> User:
    user = people.get(db, name)
    if user is None:
        raise UserError(f"no user named {people.normalize_name(name)!r} (`listener users "
                        "list` shows who there is)")
    return user


def _audited(db: Db, action: str, user: User, detail: Mapping[str, Any], now: datetime
             ) -> None:
    """The change's audit entry (call inside the change's transaction): never a secret."""
    audit.record(db, cli_actor(), action, now, target=f"user:{user.name}", detail=detail)


# -- passwords ------------------------------------------------------------------------------

def _interactive() -> bool:
    """Whether a person can be asked (stdin is a terminal): a script's empty stdin cannot."""
    return sys.stdin.isatty()


def _strong(value: str) -> str:
    """The prompt's check: a weak password is refused with the reason and asked for again."""
    try:
        return check_strength(value)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _read_password(name: str, password_env: str | None) -> str:
    """The new password: from ``$password_env``, else asked for twice on a terminal."""
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise UserError(f"the environment variable {password_env} is not set")
        return check_strength(value)
    if not _interactive():
        raise UserError("no password given and no terminal to ask on: pass --password-env VAR "
                        "with the password in the environment variable VAR (or --no-password "
                        "for someone who only logs in through single sign-on)")
    typed: str = click.prompt(f"Password for {name}", hide_input=True,
                              confirmation_prompt="Repeat it", value_proc=_strong, err=True)
    return typed


def _new_hash(name: str, password_env: str | None, no_password: bool) -> str | None:
    """The argon2 hash of the new password, or None for ``--no-password``."""
    if no_password and password_env:
        raise click.UsageError("--password-env and --no-password exclude each other")
    return None if no_password else hash_password(_read_password(name, password_env))


# -- the commands ---------------------------------------------------------------------------

@users.command("add")
@config_option
@click.argument("name")
@click.option("--role", required=True, type=role_choice,
              help="admin: everything, people and settings too; agent: works the queue; "
                   "viewer: reads only.")
@password_env_option
@no_password_option
def add(config_path: str, name: str, role: str, password_env: str | None,
        no_password: bool) -> None:
    """Add a user. NAME is the login name (any case; stored lower-case)."""
    name = people.normalize_name(name)
    with configured_database(config_path) as db:
        if people.get(db, name) is not None:  # say so before asking for a password
            raise UserError(f"a user named {name!r} exists already")
        digest = _new_hash(name, password_env, no_password)
        now = utcnow()
        with immediate(db):
            user = people.add(db, name, role, digest, now)
            _audited(db, "user.add", user, {"role": role, "password": digest is not None}, now)
    how = "with a password" if digest else "without a password (single sign-on only)"
    click.echo(f"added {user.name} as {user.role}, {how}")


@users.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
def list_users(config_path: str, as_json: bool) -> None:
    """List everyone. Enabled first: role, whether they have a password, when they were
    added, last logged in and were disabled."""
    with configured_database(config_path) as db:
        everyone = people.everyone(db)
    if as_json:
        click.echo(json.dumps([asdict(u) | {"active": u.active} for u in everyone], indent=2))
    elif not everyone:
        click.echo("no users yet: `listener users add NAME --role admin` adds the first")
    else:
        rows = [[u.name, u.role, "yes" if u.has_password else "no", u.created_at,
                 u.last_login_at or "-", u.disabled_at or "-"] for u in everyone]
        click.echo(table(["name", "role", "password", "created", "last log-in", "disabled"],
                         rows))


@users.command("disable")
@config_option
@click.argument("name")
def disable(config_path: str, name: str) -> None:
    """Stop NAME logging in. Their open dashboard sessions end; their row and history stay
    (`enable` lets them in again). The last enabled admin cannot be disabled."""
    with configured_database(config_path) as db:
        now = utcnow()
        with immediate(db):
            if not (found := _existing(db, name)).active:
                click.echo(f"{found.name} is disabled already")
                return
            user = people.set_disabled(db, name, True, now)
            _audited(db, "user.disable", user, {}, now)
    click.echo(f"disabled {user.name}; their dashboard sessions have ended")


@users.command("enable")
@config_option
@click.argument("name")
def enable(config_path: str, name: str) -> None:
    """Let NAME log in again, with the role and password they had before."""
    with configured_database(config_path) as db:
        now = utcnow()
        with immediate(db):
            if (found := _existing(db, name)).active:
                click.echo(f"{found.name} is enabled already")
                return
            user = people.set_disabled(db, name, False, now)
            _audited(db, "user.enable", user, {}, now)
    click.echo(f"enabled {user.name}")


@users.command("set-role")
@config_option
@click.argument("name")
@click.argument("role", type=role_choice)
def set_role(config_path: str, name: str, role: str) -> None:
    """Give NAME another ROLE: admin, agent or viewer.

    The last enabled admin stays one: make someone else admin first."""
    with configured_database(config_path) as db:
        now = utcnow()
        with immediate(db):
            before = _existing(db, name)
            if before.role == role:
                click.echo(f"{before.name} is {role} already")
                return
            user = people.set_role(db, name, role)
            _audited(db, "user.role", user, {"from": before.role, "to": role}, now)
    click.echo(f"{user.name} is now {role} (was {before.role})")


@users.command("set-password")
@config_option
@click.argument("name")
@password_env_option
@no_password_option
def set_password(config_path: str, name: str, password_env: str | None,
                 no_password: bool) -> None:
    """Set NAME's password. --no-password removes it (single sign-on only)."""
    with configured_database(config_path) as db:
        user = _existing(db, name)  # before asking for a password
        digest = _new_hash(user.name, password_env, no_password)
        now = utcnow()
        with immediate(db):
            user = people.set_password(db, user.name, digest, now)
            _audited(db, "user.password", user, {"password": "set" if digest else "removed"},
                     now)
    click.echo(f"{'set a new' if digest else 'removed the'} password of {user.name}")
