"""Issue 18: logging in by name and password, next to the shared token. Flask's test client on
the real app and a real SQLite file."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from listener.core.passwords import needs_rehash, verify_password
from listener.web import login, security
from listener.web.throttle import BURST
from storage import users
from storage.tx import connect
from tests.web.conftest import TOKEN
from tests.web.people import (
    CLIENT,
    PASSWORD,
    add_people,
    app_for,
    audit_rows,
    csrf_of,
    log_in,
    logged_in,
    post_status,
    user,
)
from tests.web.seed import NOW, Seeded


@pytest.fixture
def team(seeded: tuple[Path, Seeded]) -> tuple[Path, Seeded]:
    add_people(seeded[0], root="admin", alice="agent", vera="viewer")
    return seeded


def test_people_log_in_by_name_and_password(team: tuple[Path, Seeded]) -> None:
    path = team[0]
    client = app_for(path).test_client()
    assert client.get("/queue").headers["Location"] == "/login?next=/queue"
    assert client.get("/api/queue").status_code == 401
    form = client.get("/login?next=/queue").get_data(as_text=True)
    assert 'name="name"' in form and 'name="password"' in form and 'name="token"' not in form
    response = log_in(client, "Alice", next="/queue")  # names are not case-sensitive
    assert response.status_code == 302 and response.headers["Location"] == "/queue"
    cookie = client.get_cookie(security.SESSION_COOKIE)
    assert cookie is not None and cookie.http_only
    page = client.get("/queue").get_data(as_text=True)
    assert 'id="signed-in">signed in as <strong>alice</strong> (agent)' in page
    assert 'class="logout"' in page
    db = connect(path)
    rows = db.execute("SELECT w.user_id, u.name FROM web_sessions w JOIN users u"
                      " ON u.id = w.user_id").fetchall()
    db.close()
    assert [r[1] for r in rows] == ["alice"]
    found = user(path, "alice")
    assert found is not None and found.last_login_at == "2026-11-20T12:00:00Z"
    [entry] = audit_rows(path, action="login")
    assert (entry.actor, entry.target, entry.detail, entry.address) == (
        "alice", "user:alice", {"via": "password"}, CLIENT)


def test_wrong_passwords_and_unknown_names_are_refused_alike(
    team: tuple[Path, Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = team[0]
    client = app_for(path).test_client()
    checked: list[str | None] = []

    def spy(stored: str | None, password: str) -> bool:
        checked.append(stored)
        return verify_password(stored, password)

    monkeypatch.setattr(login, "verify_password", spy)
    wrong = log_in(client, "alice", "not the password at all")
    unknown = log_in(client, "mallory", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "That name or password is not right." in response.get_data(as_text=True)
        assert client.get_cookie(security.SESSION_COOKIE) is None
    # the unknown name was checked too (against a dummy hash): it costs the same time
    assert len(checked) == 2 and checked[0] is not None and checked[1] is None
    failed = audit_rows(path, action="login.failed")
    assert [(e.actor, e.target, e.detail["name"]) for e in failed] == [
        ("anonymous", "user:alice", "alice"), ("anonymous", "user:mallory", "mallory")]
    text = json.dumps([e.detail for e in failed])
    assert "not the password" not in text and PASSWORD not in text  # never the password


def test_wrong_passwords_are_throttled_per_address(team: tuple[Path, Seeded]) -> None:
    path = team[0]
    client = app_for(path).test_client()
    answers = [log_in(client, "alice", f"wrong password {i}").status_code
               for i in range(BURST + 3)]
    assert Counter(answers) == {401: BURST, 429: 3}
    throttled = log_in(client, "alice")  # right, but throttled: not told apart
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "12"
    assert "try again in 12 s" in throttled.get_data(as_text=True)
    assert log_in(client, "alice", address="203.0.113.77").status_code == 302
    assert len(audit_rows(path, action="login.failed")) == BURST  # throttled tries are not
    # the token and the password share the bucket: no extra guesses by switching
    token_client = app_for(path, token=TOKEN).test_client()
    for i in range(BURST):
        log_in(token_client, "alice", f"wrong {i}")
    assert token_client.post("/login", data={"token": TOKEN},
                             environ_base={"REMOTE_ADDR": CLIENT}).status_code == 429


def test_a_disabled_users_session_dies_at_once(team: tuple[Path, Seeded]) -> None:
    path = team[0]
    app = app_for(path)
    alice = logged_in(app, "alice")
    assert alice.get("/api/queue").status_code == 200
    db = connect(path)
    users.set_disabled(db, "alice", True, NOW)  # what `listener users disable` does
    db.close()
    assert alice.get("/api/queue").status_code == 401
    assert alice.get("/queue").headers["Location"].startswith("/login")
    assert log_in(app.test_client(), "alice").status_code == 401  # and cannot log in again


def test_the_user_is_checked_on_every_request_not_only_the_session(
    team: tuple[Path, Seeded]
) -> None:
    """Disabled behind storage's back (the session row not revoked), or given another role:
    it counts at the next click."""
    path, ids = team
    app = app_for(path)
    alice = logged_in(app, "alice")
    token = csrf_of(alice, f"/posts/{ids.top_post}")
    db = connect(path)
    users.set_role(db, "alice", "viewer")
    db.close()
    refused = alice.post(f"/posts/{ids.top_post}/status",
                         data={"csrf": token, "status": "handled"})
    assert refused.status_code == 403 and post_status(path, ids.top_post) is None
    db = connect(path)
    db.execute("UPDATE users SET disabled_at = '2026-11-20T12:00:00Z' WHERE name = 'alice'")
    db.close()
    assert alice.get("/api/queue").status_code == 401


def test_an_old_hash_is_upgraded_at_log_in(team: tuple[Path, Seeded]) -> None:
    path = team[0]
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    db = connect(path)
    users.set_password(db, "alice", weak, NOW)
    db.close()
    assert log_in(app_for(path).test_client(), "alice").status_code == 302
    db = connect(path)
    stored = users.password_hash(db, "alice")
    db.close()
    assert stored is not None and stored != weak and not needs_rehash(stored)
    assert verify_password(stored, PASSWORD)


def test_logout_ends_the_session_and_is_audited(team: tuple[Path, Seeded]) -> None:
    path = team[0]
    client = logged_in(app_for(path), "vera")
    copy = client.get_cookie(security.SESSION_COOKIE)
    assert copy is not None
    out = client.post("/logout", data={"csrf": csrf_of(client)})  # a viewer may log out
    assert out.status_code == 302 and out.headers["Location"] == "/login"
    client.set_cookie(security.SESSION_COOKIE, copy.value)
    assert client.get("/api/queue").status_code == 401
    [entry] = audit_rows(path, action="logout")
    assert (entry.actor, entry.target, entry.address) == ("vera", "user:vera", CLIENT)


def test_the_token_still_works_next_to_people(team: tuple[Path, Seeded]) -> None:
    """Scripts keep their Bearer token (acting as admin, recorded as 'token'), and the form
    keeps taking the token, so set-ups from before people existed keep working."""
    path, ids = team
    app = app_for(path, token=TOKEN)
    script = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert script.get("/api/queue", headers=auth).status_code == 200
    assert script.get("/admin/audit", headers=auth).status_code == 200  # role admin
    done = script.post(f"/posts/{ids.top_post}/status", data={"status": "handled"},
                       headers=auth, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert done.status_code == 303 and post_status(path, ids.top_post) == ("handled", "token")
    [entry] = audit_rows(path, action="post.status")
    assert (entry.actor, entry.address) == ("token", "192.0.2.9")
    browser = app.test_client()
    form = browser.get("/login").get_data(as_text=True)
    assert 'name="password"' in form and 'name="token"' in form and "access token" in form
    assert browser.post("/login", data={"token": "wrong-token-0123456789"}).status_code == 401
    assert browser.post("/login", data={"token": TOKEN}).status_code == 302
    page = browser.get("/queue").get_data(as_text=True)
    assert "signed in with the access token (admin)" in page
    assert [e.actor for e in audit_rows(path, action="login")] == ["token"]
    assert [e.detail for e in audit_rows(path, action="login.failed")] == [{"via": "token"}]


def test_people_without_a_token_need_a_log_in_and_bearer_means_nothing(
    team: tuple[Path, Seeded]
) -> None:
    client = app_for(team[0]).test_client()
    assert client.get("/api/queue", headers={"Authorization": "Bearer anything-at-all-here"}
                      ).status_code == 401
    assert client.post("/login", data={"token": "anything-at-all-here"}).status_code == 401


def test_with_neither_token_nor_people_everyone_is_local(seeded: tuple[Path, Seeded]) -> None:
    path, ids = seeded
    client = app_for(path).test_client()
    assert client.get("/login").headers["Location"] == "/"
    page = client.get("/queue").get_data(as_text=True)
    assert "signed-in" not in page and 'class="logout"' not in page
    assert "/admin/users" in page  # local is admin: People and the audit log in the nav
    done = client.post(f"/posts/{ids.top_post}/status",
                       data={"csrf": csrf_of(client), "status": "handled"})
    assert done.status_code == 303 and post_status(path, ids.top_post) == ("handled", "local")
    assert [e.actor for e in audit_rows(path)] == ["local"]


def test_the_last_enabled_person_disabled_means_no_log_in_again(
    seeded: tuple[Path, Seeded]
) -> None:
    """Only enabled users count: with every user disabled (and no token) the dashboard is as
    it was before people existed."""
    path = seeded[0]
    add_people(path, root="admin")
    app = app_for(path)
    assert app.test_client().get("/queue").status_code == 302
    db = connect(path)
    db.execute("UPDATE users SET disabled_at = '2026-11-20T12:00:00Z'")
    db.close()
    assert app.test_client().get("/queue").status_code == 200


def test_sessions_last_seven_days(team: tuple[Path, Seeded]) -> None:
    path = team[0]
    clock: dict[str, Any] = {"now": NOW}
    app = app_for(path, clock=lambda: clock["now"])
    client = logged_in(app, "alice")
    clock["now"] = NOW + timedelta(days=6, hours=23)
    assert client.get("/api/queue").status_code == 200
    clock["now"] = NOW + timedelta(days=7, seconds=1)
    assert client.get("/api/queue").status_code == 401


def test_logging_in_again_ends_the_browsers_previous_session(team: tuple[Path, Seeded]) -> None:
    """On a shared computer, the next person's log-in ends the last one's session for good."""
    path = team[0]
    client = logged_in(app_for(path), "alice")
    before = client.get_cookie(security.SESSION_COOKIE)
    assert before is not None
    assert log_in(client, "vera").status_code == 302
    assert "signed in as <strong>vera</strong>" in client.get("/queue").get_data(as_text=True)
    client.set_cookie(security.SESSION_COOKIE, before.value)
    assert client.get("/api/queue").status_code == 401
