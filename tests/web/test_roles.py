"""Issue 18: what viewers, agents and admins may do, enforced for every endpoint of the app.

The POST endpoints are read from ``app.url_map``, so a new one cannot be forgotten: it is
refused to viewers (and, in the admin blueprint, to agents) unless these tests are changed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.routing import Rule

from listener.web import roles
from storage.tx import connect
from tests.web.people import add_people, app_for, changes, csrf_of, logged_in, post_status, user
from tests.web.seed import Seeded

# what a full form of every POST endpoint would carry
FORM = {"status": "handled", "field": "sentiment", "label": "neutral", "role": "admin",
        "name": "mallory", "password": "a long enough password", "disabled": "1",
        "next": "/queue"}
ADMIN_PAGES = ("/admin/users", "/admin/audit", "/export/audit.csv")
KNOWN_POSTS = {"posts.status", "posts.add_feedback", "alerts.retry", "admin.add_user",
               "admin.set_role", "admin.set_disabled", "admin.reset_password", "posts.assign",
               "posts.undo", "posts.add_note", "replies.write", "replies.withdraw",
               "replies.send_again", "admin.approve_reply", "admin.reject_reply"}
# endpoints the shared FORM fills in full: an agent's POST there changes state (303); the
# others need fields of their own, so an agent is only seen not to be refused (no 403, no 5xx)
FORM_COMPLETE = {"posts.status", "posts.add_feedback", "alerts.retry"}


@pytest.fixture
def team(seeded: tuple[Path, Seeded]) -> tuple[Path, Seeded, Flask]:
    add_people(seeded[0], root="admin", alice="agent", vera="viewer")
    return seeded[0], seeded[1], app_for(seeded[0])


def _post_rules(app: Flask) -> list[Rule]:
    return sorted((r for r in app.url_map.iter_rules()
                   if "POST" in (r.methods or ()) and r.endpoint not in roles.OPEN_TO_ALL),
                  key=lambda r: r.rule)


def _url(rule: Rule, ids: Seeded) -> str:
    values = {"post_id": str(ids.top_post), "alert_id": ids.failed_alert, "name": "alice"}
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


def _alert_status(path: Path, alert_id: str) -> str:
    db = connect(path)
    row = db.execute("SELECT status FROM alerts WHERE id = ?", [alert_id]).fetchone()
    db.close()
    return str(row[0])


def test_every_state_changing_endpoint_is_enumerated(team: tuple[Path, Seeded, Flask]) -> None:
    """The rules below cover what the app has; a new POST endpoint shows up here."""
    app = team[2]
    assert {r.endpoint for r in _post_rules(app)} >= KNOWN_POSTS
    for rule in app.url_map.iter_rules():
        # nothing changes state through another method: PUT/PATCH/DELETE would pass the guard
        assert not (rule.methods or set()) & {"PUT", "PATCH", "DELETE"}, rule


def test_a_viewer_is_refused_every_post_with_a_readable_page(
    team: tuple[Path, Seeded, Flask]
) -> None:
    path, ids, app = team
    vera = logged_in(app, "vera")
    token = csrf_of(vera)
    for rule in _post_rules(app):
        url = _url(rule, ids)
        for form in ({**FORM, "csrf": token}, FORM):  # with the CSRF token, and a forged one
            response = vera.post(url, data=form)
            assert response.status_code == 403, (rule.endpoint, response.status_code)
            text = response.get_data(as_text=True)
            expected = roles.ADMIN_ONLY if rule.endpoint.startswith("admin.") else (
                roles.VIEWER_REFUSED)
            assert expected.replace("'", "&#39;") in text, rule.endpoint
    api = vera.post(f"/posts/{ids.top_post}/status", data=FORM,
                    headers={"Accept": "application/json"})
    assert api.status_code == 403
    assert post_status(path, ids.top_post) is None
    assert _alert_status(path, ids.failed_alert) == "failed"
    assert user(path, "mallory") is None and user(path, "alice").role == "agent"  # type: ignore[union-attr]
    assert changes(path) == []
    assert vera.post("/logout", data={"csrf": token}).status_code == 302  # she may leave


def test_a_viewer_sees_no_buttons(team: tuple[Path, Seeded, Flask]) -> None:
    _, ids, app = team
    vera = logged_in(app, "vera")
    for page in ("/queue", f"/posts/{ids.top_post}", "/alerts", "/feedback", "/"):
        html = vera.get(page).get_data(as_text=True)
        forms = re.findall(r'<form method="post" action="([^"]+)"', html)
        assert forms == ["/logout"], (page, forms)
        assert "People" not in html and "/admin/" not in html
    assert "signed in as <strong>vera</strong> (viewer)" in html
    alice = logged_in(app, "alice")
    html = alice.get(f"/posts/{ids.top_post}").get_data(as_text=True)
    assert f"/posts/{ids.top_post}/status" in html and "/feedback" in html
    assert "/admin/users" not in html  # agents do not manage people
    assert 'class="small retry"' in alice.get("/alerts").get_data(as_text=True)


def test_an_agent_works_the_queue_but_cannot_reach_the_admin_pages(
    team: tuple[Path, Seeded, Flask]
) -> None:
    path, ids, app = team
    alice = logged_in(app, "alice")
    token = csrf_of(alice)
    for rule in _post_rules(app):
        response = alice.post(_url(rule, ids), data={**FORM, "csrf": token})
        if rule.endpoint.startswith("admin."):
            assert response.status_code == 403, rule.endpoint
            assert "Only admins can manage people" in response.get_data(as_text=True)
        elif rule.endpoint in FORM_COMPLETE:
            assert response.status_code == 303, (rule.endpoint, response.status_code)
        else:
            assert response.status_code != 403 and response.status_code < 500, (
                rule.endpoint, response.status_code)
    assert post_status(path, ids.top_post) == ("handled", "alice")
    for page in ADMIN_PAGES:
        response = alice.get(page)
        assert response.status_code == 403, page
    assert alice.get("/export/audit.csv").get_json()["status"] == 403
    assert user(path, "mallory") is None


def test_an_admin_sees_the_people_and_audit_pages(team: tuple[Path, Seeded, Flask]) -> None:
    app = team[2]
    root = logged_in(app, "root")
    html = root.get("/queue").get_data(as_text=True)
    assert 'href="/admin/users"' in html and 'href="/admin/audit"' in html
    assert "signed in as <strong>root</strong> (admin)" in html
    for page in ADMIN_PAGES:
        assert root.get(page).status_code == 200, page
    people = root.get("/admin/users").get_data(as_text=True)
    assert all(f'data-user="{name}"' in people for name in ("root", "alice", "vera"))


def test_the_role_guard_needs_no_view_to_remember_it() -> None:
    assert roles.needs("posts.status", "posts", "POST") == "agent"
    assert roles.needs("anything.new", "anything", "POST") == "agent"  # by default
    assert roles.needs("admin.anything_new", "admin", "GET") == "admin"
    assert roles.needs("queue.page", "queue", "GET") is None
    assert roles.needs("auth.logout", "auth", "POST") is None
    assert roles.needs(None, None, "POST") is None  # no such page: 404
