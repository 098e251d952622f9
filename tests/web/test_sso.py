"""Issue 18: single sign-on through a trusted reverse proxy (oauth2-proxy style). The header
counts only from a direct peer in ``serve.sso_proxies``; the config keys are validated."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from listener.config import load_config
from listener.core.errors import ConfigError
from listener.web.serve import sso_networks
from storage import users
from storage.tx import connect
from tests.web.conftest import TOKEN
from tests.web.people import add_people, app_for, audit_rows, post_status, user
from tests.web.seed import NOW, Seeded

HEADER = "X-Forwarded-User"
SSO_PROXY, OTHER_PROXY, CLIENT, ATTACKER = "10.0.0.2", "10.0.0.9", "198.51.100.7", "203.0.113.5"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _app(path: Path, clock: Any = lambda: NOW, **settings: Any) -> Flask:
    settings.setdefault("sso_proxies", (ipaddress.ip_network(SSO_PROXY),))
    return app_for(path, clock=clock, sso_header=HEADER, **settings)


def _get(client: FlaskClient, path: str, name: str, peer: str = SSO_PROXY, **headers: str
         ) -> TestResponse:
    return client.get(path, headers={HEADER: name, **headers},
                      environ_base={"REMOTE_ADDR": peer})


@pytest.fixture
def team(seeded: tuple[Path, Seeded]) -> tuple[Path, Seeded]:
    add_people(seeded[0], root="admin", alice="agent")
    return seeded


def test_the_header_from_the_sso_proxy_names_the_person(team: tuple[Path, Seeded]) -> None:
    path, ids = team
    client = _app(path).test_client()
    page = _get(client, "/queue", "Alice")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "signed in as <strong>alice</strong> (agent) via single sign-on" in html
    assert 'class="logout"' not in html  # the proxy holds the log-in, not the dashboard
    form = client.get(f"/posts/{ids.top_post}", headers={HEADER: "alice"},
                      environ_base={"REMOTE_ADDR": SSO_PROXY}).get_data(as_text=True)
    csrf = form.split('name="csrf" value="')[1].split('"')[0]
    done = client.post(f"/posts/{ids.top_post}/status", data={"csrf": csrf, "status": "handled"},
                       headers={HEADER: "alice"}, environ_base={"REMOTE_ADDR": SSO_PROXY})
    assert done.status_code == 303 and post_status(path, ids.top_post) == ("handled", "alice")
    logins = audit_rows(path, action="login")
    assert [(e.actor, e.detail) for e in logins] == [("alice", {"via": "sso"})]  # not per request
    found = user(path, "alice")
    assert found is not None and found.last_login_at == "2026-11-20T12:00:00Z"


def test_the_header_from_anyone_else_is_ignored_and_audited_once_a_minute(
    team: tuple[Path, Seeded]
) -> None:
    path = team[0]
    clock = Clock()
    client = _app(path, clock).test_client()
    for _ in range(20):
        response = _get(client, "/queue", "root", peer=ATTACKER)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
        assert _get(client, "/api/queue", "root", peer=ATTACKER).status_code == 401
    refused = audit_rows(path, action="login.sso_refused")
    assert len(refused) == 1  # not one per request: a forger cannot flood the audit log
    assert refused[0].actor == "anonymous" and refused[0].address == ATTACKER
    assert refused[0].detail == {"header": HEADER, "name": "root", "peer": ATTACKER}
    clock.now += timedelta(seconds=61)
    _get(client, "/queue", "root", peer=ATTACKER)
    _get(client, "/queue", "root", peer="203.0.113.6")  # another address counts on its own
    assert len(audit_rows(path, action="login.sso_refused")) == 3
    assert audit_rows(path, action="login") == []


def test_the_direct_peer_counts_not_what_x_forwarded_for_says(team: tuple[Path, Seeded]
                                                              ) -> None:
    """Behind a trusted proxy that is not an SSO proxy, the header is ignored even when the
    forwarded chain names the SSO proxy; through the SSO proxy, the audit log records the
    client's address."""
    path, ids = team
    trusted = (ipaddress.ip_network(OTHER_PROXY), ipaddress.ip_network(SSO_PROXY))
    client = _app(path, trusted_proxies=trusted).test_client()
    forged = _get(client, "/queue", "root", peer=OTHER_PROXY,
                  **{"X-Forwarded-For": SSO_PROXY})
    assert forged.status_code == 302
    direct = _get(client, "/queue", "root", peer=ATTACKER, **{"X-Forwarded-For": SSO_PROXY})
    assert direct.status_code == 302
    real = _get(client, "/queue", "alice", **{"X-Forwarded-For": CLIENT})
    assert real.status_code == 200
    [login] = audit_rows(path, action="login")
    assert (login.actor, login.address) == ("alice", CLIENT)


def test_an_unknown_name_is_refused_without_a_default_role(team: tuple[Path, Seeded]) -> None:
    path = team[0]
    client = _app(path).test_client()
    response = _get(client, "/queue", "carol@example.com")
    assert response.status_code == 403
    assert "carol@example.com may not use this dashboard" in response.get_data(as_text=True)
    assert _get(client, "/api/queue", "carol@example.com").status_code == 403
    assert user(path, "carol@example.com") is None
    [failed] = audit_rows(path, action="login.failed")  # once, though asked twice
    assert failed.detail == {"name": "carol@example.com", "via": "sso", "why": "no such user"}
    assert _get(client, "/queue", "not a name!").status_code == 403


def test_a_disabled_user_is_refused_at_once(team: tuple[Path, Seeded]) -> None:
    path = team[0]
    client = _app(path).test_client()
    assert _get(client, "/queue", "alice").status_code == 200
    db = connect(path)
    users.set_disabled(db, "alice", True, NOW)
    db.close()
    assert _get(client, "/queue", "alice").status_code == 403


def test_a_default_role_creates_the_user(team: tuple[Path, Seeded]) -> None:
    path, ids = team
    client = _app(path, sso_default_role="viewer").test_client()
    page = _get(client, "/queue", "Carol@Example.com")
    assert page.status_code == 200
    assert "signed in as <strong>carol@example.com</strong> (viewer)" in page.get_data(
        as_text=True)
    created = user(path, "carol@example.com")
    assert created is not None and created.role == "viewer" and not created.has_password
    [added] = audit_rows(path, action="user.add")
    assert (added.actor, added.target, added.detail) == (
        "sso", "user:carol@example.com", {"role": "viewer", "password": False})
    assert _get(client, "/queue", "carol@example.com").status_code == 200
    assert len(audit_rows(path, action="user.add")) == 1  # once
    assert 'method="post"' not in _get(client, f"/posts/{ids.top_post}",
                                       "carol@example.com").get_data(as_text=True)
    refused = client.post(f"/posts/{ids.top_post}/status", data={"status": "handled"},
                          headers={HEADER: "carol@example.com"},
                          environ_base={"REMOTE_ADDR": SSO_PROXY})
    assert refused.status_code == 403  # a viewer, as configured


def test_sso_needs_a_log_in_even_before_anyone_exists(seeded: tuple[Path, Seeded]) -> None:
    """Without users or a token the dashboard is open on loopback; configuring single sign-on
    closes it: a request without the proxy's header is not 'local'."""
    client = _app(seeded[0], sso_default_role="agent").test_client()
    response = client.get("/queue")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert "single sign-on" in client.get("/login").get_data(as_text=True)
    assert _get(client, "/queue", "dora").status_code == 200  # the first user, by the proxy


def test_the_bearer_token_still_wins(team: tuple[Path, Seeded]) -> None:
    client = _app(team[0], token=TOKEN).test_client()
    response = client.get("/api/queue", headers={"Authorization": f"Bearer {TOKEN}",
                                                 HEADER: "alice"},
                          environ_base={"REMOTE_ADDR": SSO_PROXY})
    assert response.status_code == 200 and audit_rows(team[0], action="login") == []


# --- configuration ------------------------------------------------------------------------

def _config(tmp_path: Path, serve: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("storage:\n  path: listener.db\nserve:\n" + serve, encoding="utf-8")
    return path


@pytest.mark.parametrize(("serve", "key", "message"), [
    ("  sso_header: X-Forwarded-User\n", "serve.sso_proxies", "list the proxies allowed"),
    ("  sso_header: X-Forwarded-User\n  sso_proxies: []\n", "serve.sso_proxies",
     "list the proxies allowed"),
    ("  sso_header: X-Forwarded-User\n  sso_proxies: [proxy.internal]\n", "serve.sso_proxies",
     "not an IP address or network"),
    ("  sso_header: X-Forwarded-User\n  sso_proxies: [0.0.0.0/0]\n", "serve.sso_proxies",
     "every address"),
    ("  sso_header: 'X Forwarded User'\n  sso_proxies: [127.0.0.1]\n", "serve.sso_header",
     "not a header name"),
    ("  sso_header: Authorization\n  sso_proxies: [127.0.0.1]\n", "serve.sso_header",
     "cannot name the person"),
    ("  sso_header: X-Forwarded-User\n  sso_proxies: [127.0.0.1]\n  sso_default_role: admin\n",
     "serve.sso_default_role", "'viewer' or 'agent'"),
    ("  sso_default_role: viewer\n", "serve.sso_default_role", "needs sso_header"),
])
def test_bad_sso_settings_name_the_key(tmp_path: Path, serve: str, key: str, message: str
                                       ) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, serve), environ={})
    assert info.value.key == key and message in str(info.value), str(info.value)
    assert info.value.file is not None and info.value.file.endswith("config.yaml")
    assert info.value.line is not None


def test_sso_settings_reach_the_app(tmp_path: Path) -> None:
    serve = load_config(_config(tmp_path, (
        "  sso_header: X-Auth-Request-Email\n  sso_proxies: [127.0.0.1, 10.0.0.0/8]\n"
        "  sso_default_role: agent\n")), environ={}).serve
    assert (serve.sso_header, serve.sso_default_role) == ("X-Auth-Request-Email", "agent")
    assert [str(n) for n in sso_networks(serve)] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert load_config(_config(tmp_path, "  port: 8765\n"), environ={}).serve.sso_header is None
