"""The dashboard's defences, through Flask's test client on the real app and a real SQLite file:
hostile post text stays inert, the token guards everything, CSRF guards every change."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from listener.web import security, sessions
from storage.tx import connect
from tests.web.conftest import TOKEN, make_app
from tests.web.seed import JS_URL, NOW, Seeded

PAGES = ("/", "/queue", "/alerts", "/feedback", "/api/overview", "/api/queue", "/api/alerts",
         "/export/queue.csv", "/export/alerts.json", "/static/app.css",
         "/static/vendor/chart.umd.min.js", "/static/charts.js")


def fetch(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    """GET, read and close (static files are streamed from open files)."""
    response = client.get(path, **kwargs)
    response.get_data()
    response.close()
    return response


def _form_token(client: FlaskClient, path: str) -> str:
    """The CSRF token a page's forms carry (the page also sets the cookie it is bound to)."""
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, f"no form on {path}"
    return found.group(1)


def _status(path: Path, post_id: int) -> str | None:
    db = connect(path)
    row = db.execute("SELECT status FROM post_status WHERE post_id = ?", [post_id]).fetchone()
    db.close()
    return row[0] if row else None


def test_hostile_text_is_escaped_and_never_a_link(client: FlaskClient,
                                                  seeded: tuple[Path, Seeded]) -> None:
    ids = seeded[1].hostile
    for path in ("/queue", *(f"/posts/{i}" for i in ids.values()), "/feedback", "/alerts"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>window.pwned" not in html and "<img src=x" not in html, path
        assert 'href="javascript:' not in html and "<a href=\"javascript" not in html, path
        assert "javascript:window.pwned=1" not in html, path  # the url field is not shown at all
    html = client.get(f"/posts/{ids['img']}").get_data(as_text=True)
    assert "&lt;img src=x onerror=&#34;window.pwned = 1&#34;&gt; broken login" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in client.get("/alerts").get_data(as_text=True)
    api = client.get(f"/api/posts/{ids['link']}").get_json()
    assert api["url"] is None and api["text"].startswith("click <a href=")
    rows = client.get("/api/queue?status=all&range=7d").get_json()["rows"]
    assert {r["url"] for r in rows if r["post_id"] in ids.values()} == {None}
    assert all(r["url"] is None or r["url"].startswith("https://") for r in rows)
    assert JS_URL not in client.get("/export/queue.csv?range=7d").get_data(as_text=True)


def test_security_headers_on_every_answer(client: FlaskClient) -> None:
    for path in ("/", "/api/overview", "/static/app.css", "/nowhere"):
        response = fetch(client, path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/", "/queue", "/alerts", "/feedback"):  # no inline script or handler at all
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\ssrc=)", html), path
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", html, re.IGNORECASE), path


@pytest.mark.parametrize("path", PAGES)
def test_without_the_token_every_path_is_refused(seeded: tuple[Path, Seeded], path: str) -> None:
    client = make_app(seeded[0], token=TOKEN).test_client()
    response = fetch(client, path)
    if path.startswith(("/api/", "/export/", "/static/")):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    else:
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")
    assert fetch(client, path, headers={"Authorization": "Bearer wrong"}).status_code in (302, 401)
    assert fetch(client, path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_login_sets_a_strict_httponly_session_that_expires(seeded: tuple[Path, Seeded]) -> None:
    app = make_app(seeded[0], token=TOKEN)
    client = app.test_client()
    assert client.post("/login", data={"token": "nope" * 5}).status_code == 401
    response = client.post("/login", data={"token": TOKEN, "next": "//evil.example/x"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert fetch(client, "/static/app.css").status_code == 200
    assert client.get("/api/queue").status_code == 200
    client.set_cookie(security.SESSION_COOKIE, "1." + "0" * 64)  # forged
    assert client.get("/api/queue").status_code == 401
    db = connect(seeded[0])
    started = sessions.start(db, NOW - timedelta(seconds=sessions.SESSION_MAX_AGE + 1))
    db.close()
    client.set_cookie(security.SESSION_COOKIE, sessions.cookie_value(TOKEN, started))  # expired
    assert client.get("/api/queue").status_code == 401


def test_state_changes_need_the_csrf_token(client: FlaskClient,
                                           seeded: tuple[Path, Seeded]) -> None:
    path, ids = seeded
    post = ids.top_post
    refused = client.post(f"/posts/{post}/status", data={"status": "handled"})
    assert refused.status_code == 400 and "security token" in refused.get_data(as_text=True)
    forged = client.post(f"/posts/{post}/status", data={"status": "handled", "csrf": "f" * 64})
    assert forged.status_code == 400
    assert client.post(f"/alerts/{ids.failed_alert}/retry").status_code == 400
    assert _status(path, post) is None
    token = _form_token(client, f"/posts/{post}")
    done = client.post(f"/posts/{post}/status",
                       data={"status": "handled", "csrf": token, "next": "https://evil.example/"})
    assert done.status_code == 303 and done.headers["Location"] == f"/posts/{post}"
    assert _status(path, post) == "handled"


def test_a_csrf_token_from_another_browser_does_not_work(seeded: tuple[Path, Seeded]) -> None:
    app = make_app(seeded[0])
    mallory, victim = app.test_client(), app.test_client()
    token = _form_token(mallory, "/queue")  # valid, but bound to mallory's cookie
    _form_token(victim, "/queue")
    response = victim.post(f"/posts/{seeded[1].top_post}/status",
                           data={"status": "handled", "csrf": token})
    assert response.status_code == 400


def test_api_clients_with_the_bearer_token_need_no_csrf(seeded: tuple[Path, Seeded]) -> None:
    path, ids = seeded
    client = make_app(path, token=TOKEN).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = client.post(f"/posts/{ids.top_post}/status", data={"status": "not_relevant"},
                           headers=auth)
    assert response.status_code == 303 and _status(path, ids.top_post) == "not_relevant"
    assert client.post(f"/posts/{ids.top_post}/status",
                       data={"status": "handled"}).status_code == 401
