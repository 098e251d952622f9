"""Issue 14 #3: DNS rebinding. Only loopback Host names and configured ones are served, with
or without a token; through Flask's test client, the real waitress server, the serve: config,
and (in test_browser.py) a real browser whose resolver maps attacker.example to 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from flask.testing import FlaskClient

from listener.config import load_config
from listener.core.errors import ConfigError
from listener.web.app import WebSettings, create_app
from listener.web.hosts import host_name, is_allowed, normalise
from listener.web.serve import host_names
from storage.tx import connect
from tests.web.conftest import TOKEN
from tests.web.seed import NOW, Seeded

LOOPBACK = ("localhost", "localhost:8765", "LocalHost:80", "127.0.0.1", "127.0.0.1:8765",
            "[::1]", "[::1]:8765", "127.0.0.2:8765", "localhost.:8765")
FOREIGN = ("attacker.example", "attacker.example:8765", "localhost.attacker.example:8765",
           "127.0.0.1.nip.io:8765", "attacker.example:8765@localhost", "localhost:8765:1",
           "localhost:http", "[::1", "[::1]x", "::1", "", " ", "0.0.0.0:8765", "192.168.1.5")


def _app(path: Path, token: str | None = None, hosts: tuple[str, ...] = ()) -> FlaskClient:
    settings = WebSettings(database=path, token=token, clock=lambda: NOW,
                           allowed_hosts=normalise(hosts))
    return create_app(settings).test_client()


def _status(path: Path, post_id: int) -> str | None:
    db = connect(path)
    row = db.execute("SELECT status FROM post_status WHERE post_id = ?", [post_id]).fetchone()
    db.close()
    return row[0] if row else None


def test_host_names_are_read_like_browsers_send_them() -> None:
    assert host_name("Example.ORG:8765") == "example.org"
    assert host_name("[::1]:8765") == "::1" and host_name("localhost.") == "localhost"
    for malformed in ("[::1", "a:b:c", "x:", "x:123456", "x:８０", "[::1]x", ""):
        assert host_name(malformed) is None, malformed
    assert normalise(["Listener.Internal.", "[fe80:0::1]", "10.0.0.5:8765"]) == {
        "listener.internal", "fe80::1", "10.0.0.5"}
    assert is_allowed("127.8.9.10", frozenset()) and not is_allowed("10.0.0.5", frozenset())


def test_without_a_token_only_loopback_names_are_served(seeded: tuple[Path, Seeded]) -> None:
    path, ids = seeded
    client = _app(path)
    for host in LOOPBACK:
        response = client.get("/api/queue?status=all", headers={"Host": host})
        assert response.status_code == 200 and response.get_json()["rows"], host
    token = client.get(f"/posts/{ids.top_post}").get_data(as_text=True).split(
        'name="csrf" value="')[1][:64]
    for host in FOREIGN:
        for url in ("/api/queue?status=all", "/queue", f"/posts/{ids.top_post}",
                    "/static/app.css", "/export/queue.csv", "/nowhere"):
            response = client.get(url, headers={"Host": host})
            assert response.status_code == 421, (host, url)
            text = response.get_data(as_text=True)
            assert "does not answer" in text and "refund" not in text, (host, url)
            assert response.headers["Content-Security-Policy"]  # headers on refusals too
        changed = client.post(f"/posts/{ids.top_post}/status", headers={"Host": host},
                              data={"status": "handled", "csrf": token})
        assert changed.status_code == 421, host
    assert _status(path, ids.top_post) is None


def test_configured_names_are_served_and_a_token_does_not_widen_the_list(
    seeded: tuple[Path, Seeded]
) -> None:
    path = seeded[0]
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    client = _app(path, TOKEN, hosts=("listener.internal", "10.0.0.5"))
    for host in ("listener.internal", "LISTENER.internal:443", "10.0.0.5:8765", "localhost"):
        assert client.get("/api/queue", headers={**bearer, "Host": host}).status_code == 200
    for host in ("attacker.example", "internal", "x.listener.internal", "10.0.0.6"):
        refused = client.get("/api/queue", headers={**bearer, "Host": host})
        assert refused.status_code == 421, host
        assert client.get("/login", headers={"Host": host}).status_code == 421, host


def test_the_real_server_refuses_a_foreign_host(base_url: str) -> None:
    """The issue's curl: Host: attacker.example against 127.0.0.1 returned the queue."""
    foreign = httpx.get(f"{base_url}/api/queue?status=all", timeout=10,
                        headers={"Host": "attacker.example:8765"})
    assert foreign.status_code == 421 and "rows" not in foreign.text
    assert httpx.get(f"{base_url}/api/queue?status=all", timeout=10).json()["rows"]


def test_serve_allows_configured_public_and_bound_names(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "storage:\n  path: listener.db\nserve:\n  host: 0.0.0.0\n  token: " + TOKEN + "\n"
        "  public_url: https://Listener.Example.com/dash\n"
        "  allowed_hosts: [listener.internal, '[fd00::5]']\n", encoding="utf-8")
    serve = load_config(config, environ={}).serve
    assert normalise(host_names(serve, "0.0.0.0")) == {
        "listener.internal", "fd00::5", "listener.example.com"}
    assert normalise(host_names(serve, "10.0.0.5")) >= {"10.0.0.5"}  # a chosen address
    for bad, words in (("allowed_hosts: ['http://x.example/']", "not a host name"),
                       ("trusted_proxies: [proxy.example]", "not an IP address or network")):
        config.write_text(f"storage:\n  path: listener.db\nserve:\n  {bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=words):
            load_config(config, environ={})

