"""``listener users`` (issue 18) on a real SQLite file through the real command line: click's
CliRunner in this process, and once a subprocess as an operator's shell runs it. Passwords are
checked with the real argon2 hashes stored; the audit log is read back from the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from listener.cli import cli
from listener.commands import users as users_command
from listener.core.errors import ConfigError
from listener.core.passwords import verify_password
from storage import sessions, users
from storage.db import open_db
from storage.engine import Db
from storage.users import UserError

PASSWORD = "correct horse battery"
OTHER = "another long secret"


pytestmark = pytest.mark.usefixtures("logging_state")


@pytest.fixture
def database(config: Path) -> Iterator[Db]:
    """The database the commands write (created here, as the first command would)."""
    conn = open_db(config.parent / "listener.db")
    yield conn
    conn.close()


def invoke(config: Path, *args: str, input: str | None = None, **env: str) -> Result:
    """``listener users ARGS -c CONFIG`` as the OS user ``tester``."""
    return CliRunner().invoke(cli, ["users", *args, "-c", str(config)], input=input,
                              env={"LOGNAME": "tester", "LISTENER_CONFIG": None, **env})


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def refused(result: Result, kind: type[Exception], message: str) -> None:
    """Exit status 1 and the ListenerError that ``listener.cli.main`` prints in one line."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, kind), result.exception
    assert message in str(result.exception)


def audit_rows(db: Db) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in db.execute(
        "SELECT actor, action, target, detail, address FROM audit_log ORDER BY id").fetchall()]


def add_admin(config: Path, name: str = "boss") -> None:
    ok(invoke(config, "add", name, "--role", "admin", "--password-env", "PW", PW=PASSWORD))


def test_add_with_password_env_stores_a_hash_that_verifies(config: Path, database: Db) -> None:
    output = ok(invoke(config, "add", "Jane", "--role", "agent", "--password-env", "PW",
                       PW=PASSWORD))
    assert output == "added jane as agent, with a password\n"
    stored = users.password_hash(database, "jane")
    assert stored is not None and stored.startswith("$argon2id$")
    assert verify_password(stored, PASSWORD) and not verify_password(stored, OTHER)
    assert PASSWORD not in output and stored not in output
    assert audit_rows(database) == [
        ("cli:tester", "user.add", "user:jane", '{"password": true, "role": "agent"}', None)]


def test_add_asks_twice_on_a_terminal_until_a_strong_matching_password(
        config: Path, database: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_command, "_interactive", lambda: True)
    typed = f"short\n{PASSWORD}\n{OTHER}\n{PASSWORD}\n{PASSWORD}\n"
    result = invoke(config, "add", "jane", "--role", "viewer", input=typed)
    output = ok(result)
    assert "Password for jane" in output and "Repeat it" in output
    assert "at least 10 characters" in output  # the reason a weak one was refused
    assert "do not match" in output
    assert PASSWORD not in output and OTHER not in output and "short" not in output
    assert verify_password(users.password_hash(database, "jane"), PASSWORD)


def test_without_a_terminal_or_password_env_nothing_is_added(config: Path, database: Db
                                                            ) -> None:
    refused(invoke(config, "add", "jane", "--role", "agent"), UserError,
            "no terminal to ask on: pass --password-env VAR")
    refused(invoke(config, "add", "jane", "--role", "agent", "--password-env", "UNSET_PW"),
            UserError, "the environment variable UNSET_PW is not set")
    refused(invoke(config, "add", "jane", "--role", "agent", "--password-env", "PW", PW="short"),
            ConfigError, "a password needs at least 10 characters")
    assert users.everyone(database) == [] and audit_rows(database) == []


def test_no_password_adds_a_single_sign_on_person(config: Path, database: Db) -> None:
    output = ok(invoke(config, "add", "sso@example.com", "--role", "viewer", "--no-password"))
    assert output == "added sso@example.com as viewer, without a password (single sign-on only)\n"
    person = users.get(database, "sso@example.com")
    assert person is not None and not person.has_password
    both = invoke(config, "add", "x", "--role", "viewer", "--no-password", "--password-env", "PW")
    assert both.exit_code == 2 and "exclude each other" in both.output


def test_add_refuses_a_taken_name_a_bad_name_and_a_bad_role(config: Path, database: Db) -> None:
    add_admin(config)
    refused(invoke(config, "add", "BOSS", "--role", "agent", "--no-password"), UserError,
            "a user named 'boss' exists already")
    refused(invoke(config, "add", "jane doe", "--role", "agent", "--no-password"), UserError,
            "'jane doe' is not a usable name")
    bad_role = invoke(config, "add", "jane", "--role", "owner", "--no-password")
    assert bad_role.exit_code == 2 and "'owner' is not one of 'admin', 'agent', 'viewer'" in (
        bad_role.output)
    assert [u.name for u in users.everyone(database)] == ["boss"]


def test_list_shows_a_table_and_json(config: Path, database: Db) -> None:
    assert "no users yet" in ok(invoke(config, "list"))
    assert json.loads(ok(invoke(config, "list", "--json"))) == []
    add_admin(config)
    ok(invoke(config, "add", "jane", "--role", "agent", "--no-password"))
    ok(invoke(config, "add", "al", "--role", "viewer", "--no-password"))
    ok(invoke(config, "disable", "al"))
    users.logged_in(database, users.get(database, "boss").id,  # type: ignore[union-attr]
                    datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    lines = ok(invoke(config, "list")).splitlines()
    assert lines[0].split() == ["name", "role", "password", "created", "last", "log-in",
                                "disabled"]
    assert [line.split()[:3] for line in lines[2:]] == [
        ["boss", "admin", "yes"], ["jane", "agent", "no"], ["al", "viewer", "no"]]
    assert lines[2].split()[4:] == ["2026-11-20T12:00:00Z", "-"]
    assert lines[4].split()[4] == "-" and lines[4].split()[5].endswith("Z")
    listed = json.loads(ok(invoke(config, "list", "--json")))
    assert [(u["name"], u["role"], u["has_password"], u["active"]) for u in listed] == [
        ("boss", "admin", True, True), ("jane", "agent", False, True),
        ("al", "viewer", False, False)]
    assert listed[0]["last_login_at"] == "2026-11-20T12:00:00Z"
    assert set(listed[0]) == {"id", "name", "role", "has_password", "created_at",
                              "disabled_at", "last_login_at", "active"}


def test_disable_ends_sessions_and_enable_lets_the_person_back(config: Path, database: Db
                                                              ) -> None:
    add_admin(config)
    ok(invoke(config, "add", "jane", "--role", "agent", "--password-env", "PW", PW=PASSWORD))
    jane = users.get(database, "jane")
    assert jane is not None
    now = datetime.now(UTC)
    sessions.start(database, "jane-session", jane.id, now, now + timedelta(days=1),
                   now - timedelta(days=30))
    assert ok(invoke(config, "disable", "JANE")) == (
        "disabled jane; their dashboard sessions have ended\n")
    assert not sessions.is_live(database, "jane-session", now)
    assert users.password_hash(database, "jane") is None
    assert ok(invoke(config, "disable", "jane")) == "jane is disabled already\n"
    assert ok(invoke(config, "enable", "jane")) == "enabled jane\n"
    assert ok(invoke(config, "enable", "jane")) == "jane is enabled already\n"
    assert verify_password(users.password_hash(database, "jane"), PASSWORD)
    assert [r[1] for r in audit_rows(database)] == ["user.add", "user.add", "user.disable",
                                                    "user.enable"]  # "already": no change


def test_the_last_admin_can_be_neither_disabled_nor_demoted(config: Path, database: Db) -> None:
    add_admin(config)
    refused(invoke(config, "disable", "boss"), UserError,
            "'boss' is the last enabled admin: make someone else admin first")
    refused(invoke(config, "set-role", "boss", "agent"), UserError, "last enabled admin")
    ok(invoke(config, "add", "jane", "--role", "agent", "--no-password"))
    assert ok(invoke(config, "set-role", "jane", "admin")) == "jane is now admin (was agent)\n"
    assert ok(invoke(config, "disable", "boss")).startswith("disabled boss")
    assert [r[1:4] for r in audit_rows(database)][1:] == [
        ("user.add", "user:jane", '{"password": false, "role": "agent"}'),
        ("user.role", "user:jane", '{"from": "agent", "to": "admin"}'),
        ("user.disable", "user:boss", None)]  # the refusals left no entry


def test_set_role_changes_it_once_and_is_audited(config: Path, database: Db) -> None:
    add_admin(config)
    ok(invoke(config, "add", "jane", "--role", "agent", "--no-password"))
    assert ok(invoke(config, "set-role", "Jane", "viewer")) == "jane is now viewer (was agent)\n"
    assert ok(invoke(config, "set-role", "jane", "viewer")) == "jane is viewer already\n"
    person = users.get(database, "jane")
    assert person is not None and person.role == "viewer"
    assert audit_rows(database)[-1] == (
        "cli:tester", "user.role", "user:jane", '{"from": "agent", "to": "viewer"}', None)


def test_set_password_replaces_and_removes_it(config: Path, database: Db) -> None:
    add_admin(config)
    ok(invoke(config, "add", "jane", "--role", "agent", "--no-password"))
    output = ok(invoke(config, "set-password", "jane", "--password-env", "NEW", NEW=OTHER))
    assert output == "set a new password of jane\n"
    assert verify_password(users.password_hash(database, "jane"), OTHER)
    assert ok(invoke(config, "set-password", "jane", "--no-password")) == (
        "removed the password of jane\n")
    assert users.password_hash(database, "jane") is None
    refused(invoke(config, "set-password", "jane"), UserError, "no terminal to ask on")
    assert [r[3] for r in audit_rows(database) if r[1] == "user.password"] == [
        '{"password": "set"}', '{"password": "removed"}']


def test_no_password_or_hash_reaches_the_audit_log_or_the_output(config: Path, database: Db,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.setattr(users_command, "_interactive", lambda: True)
    outputs = [
        ok(invoke(config, "add", "boss", "--role", "admin", "--password-env", "PW", PW=PASSWORD)),
        ok(invoke(config, "add", "jane", "--role", "agent", input=f"{OTHER}\n{OTHER}\n")),
        ok(invoke(config, "set-password", "jane", input=f"{PASSWORD}\n{PASSWORD}\n")),
        ok(invoke(config, "list")), ok(invoke(config, "list", "--json")),
    ]
    hashes = [r[0] for r in database.execute("SELECT password_hash FROM users").fetchall()]
    assert len(hashes) == 2 and all(h.startswith("$argon2id$") for h in hashes)
    secrets = [PASSWORD, OTHER, *hashes, *(h.rsplit("$", 1)[-1] for h in hashes)]
    dumped = json.dumps(audit_rows(database)) + "".join(outputs)
    assert not [s for s in secrets if s in dumped]
    assert {r[0] for r in audit_rows(database)} == {"cli:tester"}


def test_someone_unknown_is_named_in_a_clear_error(config: Path, database: Db) -> None:
    add_admin(config)
    for args in (["disable", "ghost"], ["enable", "Ghost"], ["set-role", "ghost", "agent"],
                 ["set-password", "ghost", "--no-password"]):
        refused(invoke(config, *args), UserError,
                "no user named 'ghost' (`listener users list` shows who there is)")
    assert len(audit_rows(database)) == 1


def test_the_installed_command_says_why_in_one_line_and_exits_1(config: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PW=PASSWORD, LOGNAME="operator")
    env.pop("LISTENER_CONFIG", None)

    def listener(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "listener", "users", *args, "-c",
                               str(config)], env=env, capture_output=True, text=True,
                              timeout=120, check=False, stdin=subprocess.DEVNULL)

    assert listener("add", "boss", "--role", "admin", "--password-env", "PW").returncode == 0
    last_admin = listener("disable", "boss")
    assert last_admin.returncode == 1 and last_admin.stdout == ""
    assert last_admin.stderr == ("error: 'boss' is the last enabled admin: make someone else "
                                 "admin first\n")
    no_terminal = listener("add", "jane", "--role", "agent")  # stdin is not a terminal
    assert no_terminal.returncode == 1 and "--password-env VAR" in no_terminal.stderr
    conn = open_db(config.parent / "listener.db")
    try:
        assert audit_rows(conn) == [
            ("cli:operator", "user.add", "user:boss", '{"password": true, "role": "admin"}',
             None)]
    finally:
        conn.close()
