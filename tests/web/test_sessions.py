"""Issue 14 #9: wrong tokens are throttled per client, logout ends the session on the server,
and cookies are Secure over https. Flask's test client on the real app and SQLite file; the
browser half of the logout flow is in test_browser.py."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from listener.config import ServeSettings, load_config
from listener.web import security, sessions
from listener.web.app import WebSettings, create_app
from listener.web.hosts import normalise
from listener.web.serve import trusted_networks
from listener.web.throttle import BURST, REFILL_SECONDS, Throttle, client_key
from storage.tx import connect
from tests.web.conftest import TOKEN
from tests.web.seed import NOW, Seeded

ATTACKER, NEIGHBOUR, PROXY = "203.0.113.5", "203.0.113.6", "127.0.0.1"


class Clock:
    """A clock the test moves: throttling refills with time."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def trusted_networks_for(addresses: list[str]) -> tuple[Any, ...]:
    """serve.trusted_proxies as the serve command hands them to the app."""
    return trusted_networks(ServeSettings(trusted_proxies=addresses))


def _client(path: Path, clock: Any = lambda: NOW, **settings: Any) -> FlaskClient:
    return create_app(WebSettings(database=path, token=TOKEN, clock=clock, **settings)
                      ).test_client()


def _login(client: FlaskClient, token: str, address: str = ATTACKER, **kwargs: Any
           ) -> TestResponse:
    return client.post("/login", data={"token": token},
                       environ_base={"REMOTE_ADDR": address}, **kwargs)


def _api(client: FlaskClient, token: str, address: str = ATTACKER) -> TestResponse:
    return client.get("/api/queue", headers={"Authorization": f"Bearer {token}"},
                      environ_base={"REMOTE_ADDR": address})


def _session_cookie(response: TestResponse) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie")
               if c.startswith(security.SESSION_COOKIE + "=")]
    assert len(cookies) == 1, cookies
    return cookies[0]


def test_300_wrong_tokens_at_the_form_get_5_answers_then_429(seeded: tuple[Path, Seeded]
                                                               ) -> None:
    clock = Clock()
    client = _client(seeded[0], clock)
    answers = [_login(client, f"wrong-token-{i:04d}-0123456789") for i in range(300)]
    assert Counter(r.status_code for r in answers) == {401: BURST, 429: 300 - BURST}
    throttled = answers[-1]
    assert throttled.headers["Retry-After"] == str(int(REFILL_SECONDS))
    assert "try again in 12 s" in throttled.get_data(as_text=True)
    # throttled means throttled: the right token is not told apart from a wrong one
    assert _login(client, TOKEN).status_code == 429
    assert _login(client, TOKEN, NEIGHBOUR).status_code == 302  # other clients are not
    clock.now += timedelta(seconds=REFILL_SECONDS)
    assert _login(client, "still-wrong-0123456789").status_code == 401  # one try came back
    assert _login(client, TOKEN).status_code == 429
    clock.now += timedelta(seconds=REFILL_SECONDS)
    assert _login(client, TOKEN).status_code == 302


def test_wrong_bearer_tokens_are_throttled_right_ones_never(seeded: tuple[Path, Seeded]
                                                            ) -> None:
    clock = Clock()
    client = _client(seeded[0], clock)
    assert all(_api(client, TOKEN).status_code == 200 for _ in range(3 * BURST))
    answers = Counter(_api(client, f"wrong-{i}").status_code for i in range(300))
    assert answers == {401: BURST, 429: 300 - BURST}
    response = _api(client, TOKEN)
    assert response.status_code == 429 and response.headers["Retry-After"] == "12"
    assert _api(client, TOKEN, NEIGHBOUR).status_code == 200
    clock.now += timedelta(minutes=1)
    assert _api(client, TOKEN).status_code == 200


def test_an_ipv6_client_is_one_slash_64(seeded: tuple[Path, Seeded]) -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.5") == client_key(ATTACKER) == ATTACKER
    client = _client(seeded[0])
    statuses = [_api(client, "wrong", f"2001:db8::{i:x}").status_code for i in range(BURST + 1)]
    assert statuses == [401] * BURST + [429]
    throttle = Throttle(burst=2, refill_seconds=10, max_clients=3)
    for n in range(5):
        assert throttle.take(f"10.0.0.{n}", 0.0) == 0
    assert len(throttle._buckets) == 3  # bounded: the least recently used are forgotten


def test_behind_a_trusted_proxy_the_forwarded_client_is_throttled(
    seeded: tuple[Path, Seeded]
) -> None:
    """Behind nginx every request comes from 127.0.0.1: throttling by that address would lock
    everyone out. X-Forwarded-For names the client, believed only from a trusted proxy."""
    client = _client(seeded[0], trusted_proxies=trusted_networks_for([PROXY]))

    def via_proxy(forwarded: str) -> int:
        return client.post("/login", data={"token": "wrong-0123456789abcdef"},
                           headers={"X-Forwarded-For": forwarded},
                           environ_base={"REMOTE_ADDR": PROXY}).status_code

    assert [via_proxy(ATTACKER) for _ in range(BURST + 1)] == [401] * BURST + [429]
    assert via_proxy(NEIGHBOUR) == 401  # a different client behind the same proxy
    # what the client wrote itself (left of the proxy's entry) changes nothing
    assert via_proxy(f"198.51.100.7, {ATTACKER}") == 429
    # a client not behind a trusted proxy cannot pick its address
    direct = _client(seeded[0])
    spoofed = [direct.post("/login", data={"token": "wrong-0123456789abcdef"},
                           headers={"X-Forwarded-For": f"198.51.100.{i}"},
                           environ_base={"REMOTE_ADDR": ATTACKER}).status_code
               for i in range(BURST + 1)]
    assert spoofed == [401] * BURST + [429]


def test_logout_ends_the_session_on_the_server(seeded: tuple[Path, Seeded]) -> None:
    path = seeded[0]
    client = _client(path)
    login = _login(client, TOKEN)
    assert login.status_code == 302
    value = client.get_cookie(security.SESSION_COOKIE)
    assert value is not None and TOKEN not in value.value
    copy = value.value
    assert client.get("/api/queue").status_code == 200
    html = client.get("/queue").get_data(as_text=True)
    csrf = re.search(r'class="logout">\s*<input type="hidden" name="csrf" value="([^"]+)"', html)
    assert csrf, "the logout button"
    out = client.post("/logout", data={"csrf": csrf.group(1)})
    assert out.status_code == 302 and out.headers["Location"] == "/login"
    assert "Max-Age=0" in _session_cookie(out) or "Expires=Thu, 01 Jan 1970" in _session_cookie(out)
    client.set_cookie(security.SESSION_COOKIE, copy)  # a copy kept from before
    assert client.get("/api/queue").status_code == 401
    assert client.get("/queue").headers["Location"].startswith("/login")
    db = connect(path)
    rows = list(db.query("SELECT id, user_id, created_at, expires_at, revoked_at"
                         " FROM web_sessions"))
    db.close()
    assert len(rows) == 1 and rows[0]["user_id"] is None
    assert rows[0]["revoked_at"] == "2026-11-20T12:00:00Z"
    assert rows[0]["expires_at"] == "2026-11-27T12:00:00Z"
    assert copy.split(".")[0] not in rows[0]["id"]  # only a digest of the id is stored
    assert _login(client, TOKEN).status_code == 302  # logging in again starts a new one
    assert client.get("/api/queue").status_code == 200


def test_unknown_revoked_or_resigned_sessions_are_refused(seeded: tuple[Path, Seeded]) -> None:
    path = seeded[0]
    client = _client(path)
    made_up = sessions.cookie_value(TOKEN, "never-started")  # signed, but not in the table
    client.set_cookie(security.SESSION_COOKIE, made_up)
    assert client.get("/api/queue").status_code == 401
    db = connect(path)
    sid = sessions.start(db, NOW)
    db.close()
    client.set_cookie(security.SESSION_COOKIE, sessions.cookie_value(TOKEN, sid))
    assert client.get("/api/queue").status_code == 200
    client.set_cookie(security.SESSION_COOKIE, sessions.cookie_value("another-token-0123456", sid))
    assert client.get("/api/queue").status_code == 401  # a changed token ends every session
    client.set_cookie(security.SESSION_COOKIE, f"{sid}.")
    assert client.get("/api/queue").status_code == 401
    old = str(int(NOW.timestamp()))  # the signed-timestamp cookies of before are not sessions
    client.set_cookie(security.SESSION_COOKIE, f"{old}.{'0' * 64}")
    assert client.get("/api/queue").status_code == 401


def _cookies_of_a_login(client: FlaskClient, **kwargs: Any) -> list[str]:
    """Set-Cookie lines of a login (session) and of the page before it (CSRF)."""
    page = client.get("/login", **kwargs)
    assert page.status_code == 200
    login = client.post("/login", data={"token": TOKEN}, **kwargs)
    assert login.status_code == 302
    form = client.get("/queue", **kwargs)
    return [_session_cookie(login), *form.headers.getlist("Set-Cookie")]


def test_cookies_are_secure_when_the_browser_came_over_https(seeded: tuple[Path, Seeded]
                                                            ) -> None:
    path = seeded[0]
    plain = _cookies_of_a_login(_client(path))
    assert len(plain) == 2 and not any("Secure" in c for c in plain)
    https = _cookies_of_a_login(_client(path), base_url="https://localhost")
    assert len(https) == 2 and all("; Secure" in c for c in https)
    forwarded = {"headers": {"X-Forwarded-Proto": "https"}}
    untrusted = _cookies_of_a_login(_client(path), **forwarded)  # anyone can send the header
    assert not any("Secure" in c for c in untrusted)
    proxied = _cookies_of_a_login(_client(path, trusted_proxies=trusted_networks_for([PROXY])),
                                  **forwarded)
    assert all("; Secure" in c for c in proxied)
    http_behind_proxy = _cookies_of_a_login(
        _client(path, trusted_proxies=trusted_networks_for(["127.0.0.0/8"])),
        headers={"X-Forwarded-Proto": "http"})
    assert not any("Secure" in c for c in http_behind_proxy)
    forced = _cookies_of_a_login(_client(path, secure_cookies=True))
    assert all("; Secure" in c for c in forced)


def test_secure_cookies_are_a_serve_setting(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("storage:\n  path: listener.db\nserve:\n  secure_cookies: true\n"
                      "  trusted_proxies: [127.0.0.1, 10.0.0.0/8]\n", encoding="utf-8")
    serve = load_config(config, environ={}).serve
    assert serve.secure_cookies and [str(n) for n in trusted_networks(serve)] == [
        "127.0.0.1/32", "10.0.0.0/8"]
    assert normalise(serve.allowed_hosts) == frozenset()
