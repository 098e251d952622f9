"""storage.users on both engines: people added, found in any case, disabled (their web sessions
end), enabled again, given passwords and roles — and never left without an enabled admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listener.core.errors import ConfigError
from storage import sessions, users
from storage.engine import Db
from storage.users import UserError

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"  # only stored, never checked


def start_session(db: Db, digest: str, user_id: int | None) -> None:
    sessions.start(db, digest, user_id, NOW, expires_at=NOW + timedelta(days=7),
                   forget_expired_before=NOW - timedelta(days=30))


def revoked_at(db: Db, digest: str) -> str | None:
    row = db.execute("SELECT revoked_at FROM web_sessions WHERE id = ?", [digest]).fetchone()
    return row[0] if row else "missing"


def test_a_person_is_stored_lower_case_and_found_in_any_case(any_db: Db) -> None:
    added = users.add(any_db, "  Jane.Doe@Example.com ", "agent", HASH, NOW)
    assert added.name == "jane.doe@example.com"
    assert (added.role, added.has_password, added.active) == ("agent", True, True)
    assert (added.created_at, added.disabled_at, added.last_login_at) == (
        "2026-11-20T12:00:00Z", None, None)
    assert users.get(any_db, "JANE.DOE@example.COM") == added
    assert users.get(any_db, " jane.doe@example.com ") == added
    assert users.by_id(any_db, added.id) == added
    assert users.get(any_db, "nobody") is None
    assert users.by_id(any_db, added.id + 1000) is None


@pytest.mark.parametrize("name", ["", "   ", "-jane", ".jane", "jane doe", "jane/doe", "jané",
                                  "a" * 129, "jane;drop"])
def test_names_that_cannot_be_login_names_are_refused_with_the_rule(any_db: Db, name: str
                                                                   ) -> None:
    with pytest.raises(UserError, match="not a usable name: 1-128 letters, digits"):
        users.add(any_db, name, "agent", None, NOW)
    assert users.everyone(any_db) == []


def test_the_longest_name_and_every_allowed_character_are_accepted(any_db: Db) -> None:
    assert users.add(any_db, "a" * 128, "viewer", None, NOW).name == "a" * 128
    assert users.add(any_db, "0a._@+-z", "viewer", None, NOW).name == "0a._@+-z"


@pytest.mark.parametrize("role", ["Admin", "root", "", "agents"])
def test_an_unknown_role_is_refused_naming_the_roles(any_db: Db, role: str) -> None:
    with pytest.raises(UserError, match=r"unknown role .*: one of admin, agent, viewer"):
        users.add(any_db, "jane", role, None, NOW)
    assert users.get(any_db, "jane") is None


def test_a_user_error_is_a_config_error_so_the_cli_reports_it_in_one_line() -> None:
    assert issubclass(UserError, ConfigError)
    assert users.check_role("viewer") == "viewer"
    assert users.normalize_name(" Bob ") == "bob"


def test_a_taken_name_is_refused_in_any_case_even_when_disabled(any_db: Db) -> None:
    users.add(any_db, "admin", "admin", HASH, NOW)
    users.add(any_db, "jane", "agent", None, NOW)
    users.set_disabled(any_db, "jane", True, NOW)
    for name in ("jane", "JANE", "admin"):
        with pytest.raises(UserError, match="exists already"):
            users.add(any_db, name, "viewer", None, NOW)
    assert [u.name for u in users.everyone(any_db)] == ["admin", "jane"]


def test_disabling_ends_that_persons_open_sessions_and_only_theirs(any_db: Db) -> None:
    users.add(any_db, "boss", "admin", HASH, NOW)
    jane = users.add(any_db, "jane", "agent", HASH, NOW)
    bob = users.add(any_db, "bob", "agent", HASH, NOW)
    start_session(any_db, "jane-1", jane.id)
    start_session(any_db, "jane-2", jane.id)
    start_session(any_db, "bob-1", bob.id)
    start_session(any_db, "token-1", None)  # the shared serve.token's session
    sessions.revoke(any_db, "jane-2", NOW + timedelta(minutes=5))  # logged out earlier

    disabled = users.set_disabled(any_db, "Jane", True, LATER)
    assert disabled.disabled_at == "2026-11-20T13:00:00Z" and not disabled.active
    assert revoked_at(any_db, "jane-1") == "2026-11-20T13:00:00Z"
    assert revoked_at(any_db, "jane-2") == "2026-11-20T12:05:00Z"  # the first end stays
    assert revoked_at(any_db, "bob-1") is None
    assert revoked_at(any_db, "token-1") is None
    assert not sessions.is_live(any_db, "jane-1", LATER)
    assert sessions.is_live(any_db, "bob-1", LATER)


def test_enabling_again_lets_the_person_log_in_with_their_password(any_db: Db) -> None:
    users.add(any_db, "boss", "admin", HASH, NOW)
    users.add(any_db, "jane", "agent", HASH, NOW)
    users.set_disabled(any_db, "jane", True, NOW)
    assert users.password_hash(any_db, "jane") is None  # a disabled person cannot log in
    enabled = users.set_disabled(any_db, "jane", False, LATER)
    assert enabled.active and enabled.disabled_at is None
    assert (enabled.role, enabled.has_password) == ("agent", True)
    assert users.password_hash(any_db, "JANE") == HASH


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(any_db: Db) -> None:
    users.add(any_db, "boss", "admin", HASH, NOW)
    users.add(any_db, "jane", "agent", HASH, NOW)
    with pytest.raises(UserError, match="'boss' is the last enabled admin: make someone else"):
        users.set_disabled(any_db, "boss", True, NOW)
    for role in ("agent", "viewer"):
        with pytest.raises(UserError, match="'boss' is the last enabled admin"):
            users.set_role(any_db, "Boss", role)
    boss = users.get(any_db, "boss")
    assert boss is not None and boss.active and boss.role == "admin"
    assert users.set_role(any_db, "boss", "admin").role == "admin"  # no change: allowed


def test_a_disabled_admin_does_not_count_as_the_other_admin(any_db: Db) -> None:
    users.add(any_db, "boss", "admin", HASH, NOW)
    users.add(any_db, "old", "admin", HASH, NOW)
    users.set_disabled(any_db, "old", True, NOW)
    with pytest.raises(UserError, match="last enabled admin"):
        users.set_disabled(any_db, "boss", True, NOW)
    assert users.set_role(any_db, "old", "viewer").role == "viewer"  # disabled: not guarded


def test_with_a_second_admin_either_may_be_disabled_or_demoted(any_db: Db) -> None:
    users.add(any_db, "boss", "admin", HASH, NOW)
    users.add(any_db, "jane", "agent", HASH, NOW)
    assert users.set_role(any_db, "jane", "admin").role == "admin"
    assert not users.set_disabled(any_db, "boss", True, NOW).active
    with pytest.raises(UserError, match="'jane' is the last enabled admin"):
        users.set_role(any_db, "jane", "viewer")
    users.set_disabled(any_db, "boss", False, LATER)
    assert users.set_role(any_db, "jane", "viewer").role == "viewer"


def test_changes_to_someone_unknown_are_refused_by_name(any_db: Db) -> None:
    users.add(any_db, "boss", "admin", HASH, NOW)
    with pytest.raises(UserError, match="no user named 'ghost'"):
        users.set_disabled(any_db, "Ghost", True, NOW)
    with pytest.raises(UserError, match="no user named 'ghost'"):
        users.set_disabled(any_db, "ghost", False, NOW)
    with pytest.raises(UserError, match="no user named 'ghost'"):
        users.set_role(any_db, "ghost", "agent")
    with pytest.raises(UserError, match="no user named 'ghost'"):
        users.set_password(any_db, "ghost", HASH, NOW)
    with pytest.raises(UserError, match="unknown role 'boss'"):
        users.set_role(any_db, "boss", "boss")


def test_a_password_is_set_replaced_and_removed(any_db: Db) -> None:
    users.add(any_db, "sso", "viewer", None, NOW)  # comes only through the single-sign-on proxy
    assert users.password_hash(any_db, "sso") is None
    assert users.set_password(any_db, "sso", HASH, NOW).has_password
    assert users.password_hash(any_db, "SSO") == HASH
    assert users.set_password(any_db, "sso", HASH + "x", NOW).has_password
    assert users.password_hash(any_db, "sso") == HASH + "x"
    removed = users.set_password(any_db, "sso", None, NOW)
    assert not removed.has_password and users.password_hash(any_db, "sso") is None
    assert users.password_hash(any_db, "nobody") is None


def test_everyone_lists_enabled_people_first_then_by_name(any_db: Db) -> None:
    for name in ("zoe", "boss", "carl", "anna", "mia"):
        users.add(any_db, name, "admin" if name == "boss" else "agent", None, NOW)
    users.set_disabled(any_db, "anna", True, NOW)
    users.set_disabled(any_db, "mia", True, NOW)
    assert [u.name for u in users.everyone(any_db)] == ["boss", "carl", "zoe", "anna", "mia"]


def test_any_active_is_whether_anyone_enabled_is_left(any_db: Db) -> None:
    assert not users.any_active(any_db)
    users.add(any_db, "boss", "admin", None, NOW)
    users.add(any_db, "jane", "agent", None, NOW)
    assert users.any_active(any_db)
    users.set_disabled(any_db, "jane", True, NOW)
    assert users.any_active(any_db)  # boss, the last admin, stays


def test_any_active_is_false_on_a_database_without_the_tables() -> None:
    from storage.tx import connect

    bare = connect(":memory:")
    try:
        assert not users.any_active(bare)
    finally:
        bare.close()


def test_logging_in_records_the_time(any_db: Db) -> None:
    jane = users.add(any_db, "jane", "agent", HASH, NOW)
    users.logged_in(any_db, jane.id, LATER)
    found = users.get(any_db, "jane")
    assert found is not None and found.last_login_at == "2026-11-20T13:00:00Z"


def test_disabling_again_keeps_the_time_access_was_first_taken_away(any_db: Db) -> None:
    users.add(any_db, "boss", "admin", HASH, NOW)
    jane = users.add(any_db, "jane", "agent", HASH, NOW)
    users.set_disabled(any_db, "jane", True, NOW)
    start_session(any_db, "stray", jane.id)  # a row a racing log-in could have left
    again = users.set_disabled(any_db, "jane", True, LATER)
    assert again.disabled_at == "2026-11-20T12:00:00Z"
    assert revoked_at(any_db, "stray") == "2026-11-20T13:00:00Z"


def test_a_new_password_ends_the_persons_open_sessions(any_db: Db) -> None:
    """A password is reset because someone else may know it, and may be logged in with it; a
    re-hash of the same password at log-in (end_sessions=False) leaves sessions alone."""
    user = users.add(any_db, "ann", "agent", HASH, NOW)
    sessions.start(any_db, "d1", user.id, NOW, NOW + timedelta(days=7), NOW)
    users.set_password(any_db, "ann", HASH + "y", NOW, end_sessions=False)
    assert sessions.is_live(any_db, "d1", NOW)
    users.set_password(any_db, "ann", HASH + "z", NOW)
    assert not sessions.is_live(any_db, "d1", NOW)
