"""Issue 18: every change made through the dashboard is in the audit log — who, what, to what,
from where — stored with the change; the admin's people page, audit page and CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from listener.web import auditing
from storage import audit, feedback
from storage.tx import connect
from tests.web.people import (
    CLIENT,
    PASSWORD,
    add_people,
    app_for,
    audit_rows,
    changes,
    csrf_of,
    log_in,
    logged_in,
    post_status,
    user,
)
from tests.web.seed import NOW, Seeded


@pytest.fixture
def team(seeded: tuple[Path, Seeded]) -> tuple[Path, Seeded, Flask]:
    add_people(seeded[0], root="admin", alice="agent", vera="viewer")
    return seeded[0], seeded[1], app_for(seeded[0])


def _entry(path: Path, action: str) -> audit.Entry:
    [entry] = audit_rows(path, action=action)
    return entry


def test_queue_work_is_audited_with_actor_target_detail_and_address(
    team: tuple[Path, Seeded, Flask]
) -> None:
    path, ids, app = team
    alice = logged_in(app, "alice")
    post = ids.top_post
    token = csrf_of(alice, f"/posts/{post}")
    assert alice.post(f"/posts/{post}/status",
                      data={"csrf": token, "status": "handled"}).status_code == 303
    assert alice.post(f"/posts/{post}/status",
                      data={"csrf": token, "status": "new"}).status_code == 303
    assert alice.post(f"/posts/{post}/feedback", data={"csrf": token, "field": "sentiment",
                                                       "label": "neutral"}).status_code == 303
    assert alice.post(f"/alerts/{ids.failed_alert}/retry",
                      data={"csrf": token}).status_code == 303
    entries = [(e.actor, e.action, e.target, e.detail, e.address) for e in changes(path)]
    assert entries == [
        ("alice", "post.status", f"post:{post}", {"from": "new", "to": "handled"}, CLIENT),
        ("alice", "post.status", f"post:{post}", {"from": "handled", "to": "new"}, CLIENT),
        ("alice", "post.feedback", f"post:{post}", {"field": "sentiment", "label": "neutral"},
         CLIENT),
        ("alice", "alert.retry", f"alert:{ids.failed_alert}", {}, CLIENT),
    ]
    assert post_status(path, post) == ("new", "alice")
    db = connect(path)
    mine = [r for r in feedback.for_post(db, post) if r["by"] == "alice"]
    db.close()
    assert [r["label"] for r in mine] == ["neutral"]
    assert all(e.at == "2026-11-20T12:00:00Z" for e in changes(path))


def test_a_change_and_its_entry_are_stored_together(
    team: tuple[Path, Seeded, Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the audit entry cannot be written, the change is not kept either."""
    path, ids, app = team
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer 500, as in production
    alice = logged_in(app, "alice")
    token = csrf_of(alice)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the audit log is full")

    monkeypatch.setattr(auditing, "record", broken)
    response = alice.post(f"/posts/{ids.top_post}/status",
                          data={"csrf": token, "status": "handled"})
    assert response.status_code == 500
    assert post_status(path, ids.top_post) is None
    monkeypatch.undo()
    assert alice.post(f"/posts/{ids.top_post}/status",
                      data={"csrf": token, "status": "handled"}).status_code == 303
    assert post_status(path, ids.top_post) == ("handled", "alice")


def _admin(app: Flask) -> tuple[FlaskClient, str]:
    root = logged_in(app, "root")
    return root, csrf_of(root, "/admin/users")


def test_the_admin_manages_people_and_every_change_is_audited(
    team: tuple[Path, Seeded, Flask]
) -> None:
    path, _, app = team
    root, token = _admin(app)
    added = root.post("/admin/users", data={"csrf": token, "name": "Bob", "role": "agent",
                                            "password": PASSWORD})
    assert added.status_code == 303
    page = root.get(added.headers["Location"]).get_data(as_text=True)
    assert "bob: added." in page and 'data-user="bob"' in page
    bob = logged_in(app, "bob")
    assert bob.get("/api/queue").status_code == 200
    assert root.post("/admin/users/bob/role",
                     data={"csrf": token, "role": "viewer"}).status_code == 303
    assert user(path, "bob").role == "viewer"  # type: ignore[union-attr]
    new_password = "another long password"
    assert root.post("/admin/users/bob/password",
                     data={"csrf": token, "password": new_password}).status_code == 303
    assert bob.get("/api/queue").status_code == 401  # a reset ends their sessions
    assert log_in(app.test_client(), "bob", new_password).status_code == 302
    assert root.post("/admin/users/bob/disabled",
                     data={"csrf": token, "disabled": "1"}).status_code == 303
    assert log_in(app.test_client(), "bob", new_password).status_code == 401
    assert root.post("/admin/users/bob/disabled",
                     data={"csrf": token, "disabled": "0"}).status_code == 303
    assert user(path, "bob").active  # type: ignore[union-attr]
    entries = [(e.actor, e.action, e.target, e.detail, e.address) for e in changes(path)]
    assert entries == [
        ("root", "user.add", "user:bob", {"role": "agent", "password": True}, CLIENT),
        ("root", "user.role", "user:bob", {"from": "agent", "to": "viewer"}, CLIENT),
        ("root", "user.password", "user:bob", {}, CLIENT),
        ("root", "user.disable", "user:bob", {}, CLIENT),
        ("root", "user.enable", "user:bob", {}, CLIENT),
    ]
    text = repr(audit_rows(path))
    assert PASSWORD not in text and new_password not in text


@pytest.mark.parametrize(("url", "form", "message"), [
    ("/admin/users", {"name": "alice", "role": "agent", "password": PASSWORD},
     "exists already"),
    ("/admin/users", {"name": "bob", "role": "agent", "password": "short"}, "at least 10"),
    ("/admin/users", {"name": "bob", "role": "owner", "password": PASSWORD}, "unknown role"),
    ("/admin/users", {"name": "no spaces", "role": "agent", "password": PASSWORD},
     "not a usable name"),
    ("/admin/users/root/disabled", {"disabled": "1"}, "last enabled admin"),
    ("/admin/users/root/role", {"role": "agent"}, "last enabled admin"),
    ("/admin/users/nobody/role", {"role": "agent"}, "no user named"),
    ("/admin/users/nobody/password", {"password": PASSWORD}, "no user named"),
])
def test_changes_that_cannot_be_made_are_said_on_the_page(
    team: tuple[Path, Seeded, Flask], url: str, form: dict[str, str], message: str
) -> None:
    path, _, app = team
    root, token = _admin(app)
    response = root.post(url, data={"csrf": token, **form})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="people-problem"' in html and message in html.replace("&#39;", "'"), html
    assert changes(path) == []


def test_a_user_added_without_a_password_comes_only_through_sso(
    team: tuple[Path, Seeded, Flask]
) -> None:
    path, _, app = team
    root, token = _admin(app)
    assert root.post("/admin/users", data={"csrf": token, "name": "sam@example.com",
                                           "role": "viewer", "password": ""}).status_code == 303
    assert not user(path, "sam@example.com").has_password  # type: ignore[union-attr]
    assert log_in(app.test_client(), "sam@example.com", "").status_code == 401
    assert "none (single sign-on only)" in root.get("/admin/users").get_data(as_text=True)


def _record(path: Path, n: int, days_ago: int) -> None:
    """``n`` entries as the CLI would leave them, a minute apart, ``days_ago`` days back."""
    db = connect(path)
    for i in range(n):
        audit.record(db, "cli:ops", "user.add", NOW - timedelta(days=days_ago, minutes=i),
                     target=f"user:u{i}")
    db.close()


def test_the_audit_page_filters_and_pages_back(team: tuple[Path, Seeded, Flask]) -> None:
    path, ids, app = team
    _record(path, audit.PAGE, days_ago=10)  # more than one page with what follows
    alice = logged_in(app, "alice")
    alice.post(f"/posts/{ids.top_post}/status",
               data={"csrf": csrf_of(alice), "status": "handled"})
    root, _ = _admin(app)
    page = root.get("/admin/audit").get_data(as_text=True)
    assert page.count("<tr data-entry-id=") == audit.PAGE
    first = page.index('data-action="login"')  # root's own log-in: the newest entry
    assert first < page.index('data-action="post.status"')
    assert 'id="audit-older"' in page
    older = page.split('id="audit-older"')[0].rsplit('href="', 1)[1].split('"')[0]
    rest = root.get(older.replace("&amp;", "&")).get_data(as_text=True)
    assert 0 < rest.count("<tr data-entry-id=") < audit.PAGE and 'id="audit-older"' not in rest
    by_prefix = root.get("/admin/audit?action=post.").get_data(as_text=True)
    assert by_prefix.count("<tr data-entry-id=") == 1 and f"post:{ids.top_post}" in by_prefix
    by_actor = root.get("/admin/audit?actor=alice").get_data(as_text=True)
    assert {"login", "post.status"} == {a for a in ("login", "post.status", "user.add")
                                         if f'data-action="{a}"' in by_actor}
    assert root.get("/admin/audit?target=user:u3").get_data(as_text=True).count(
        "<tr data-entry-id=") == 1
    recent = root.get("/admin/audit?since=2026-11-15").get_data(as_text=True)
    assert 'data-action="user.add"' not in recent and 'data-action="post.status"' in recent
    old = root.get("/admin/audit?until=2026-11-10").get_data(as_text=True)  # inclusive
    assert old.count("<tr data-entry-id=") == audit.PAGE
    assert root.get("/admin/audit?since=yesterday").status_code == 400
    assert root.get("/admin/audit?before_id=²").status_code == 400


def test_the_csv_export_streams_every_match_and_defuses_formulas(
    team: tuple[Path, Seeded, Flask]
) -> None:
    path, ids, app = team
    alice = logged_in(app, "alice")
    alice.post(f"/posts/{ids.top_post}/status",
               data={"csrf": csrf_of(alice), "status": "handled"})
    db = connect(path)  # what a hostile name could leave in the log
    audit.record(db, "cli:ops", "login.failed", NOW, target="=HYPERLINK(\"http://x\")",
                 detail={"name": "=1+1"}, address="-2+3")
    db.close()
    _record(path, 300, days_ago=3)  # more than the page shows
    root, _ = _admin(app)
    response = root.get("/export/audit.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["id", "at", "actor", "action", "target", "detail", "address"]
    assert len(rows) == 1 + len(audit_rows(path))
    hostile = next(r for r in rows if r[3] == "login.failed")
    assert hostile[4] == "'=HYPERLINK(\"http://x\")" and hostile[6] == "'-2+3"
    assert hostile[5] == '{"name": "=1+1"}'
    ids_in_order = [int(r[0]) for r in rows[1:]]
    assert ids_in_order == sorted(ids_in_order)  # oldest first
    only = root.get("/export/audit.csv?action=post.&actor=alice").get_data(as_text=True)
    [header, line] = list(csv.reader(io.StringIO(only)))
    assert line[2:5] == ["alice", "post.status", f"post:{ids.top_post}"]
    assert '"from": "new"' in line[5] and line[6] == CLIENT

