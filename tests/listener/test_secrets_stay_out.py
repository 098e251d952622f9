"""Issue 14, item 4: no secret reaches the database or any output, whatever fails.

Before: a feed URL given as ``{"$env": …}`` was redacted in the log but stored verbatim in
``runs.error`` when the feed failed, and a ``?key=`` token too when the server echoed the URL.

Here every source and sink of a config full of secrets fails, run by the real CLI in a fresh
process (``listener run --once``): feeds whose server answers 500 echoing the request's URL and
headers, a feed URL that is itself the secret on a closed port, a feed with a literal (not
registered) ``?token=``, Mastodon and X with tokens against the same echoing server, and Slack,
webhook, GitHub and Zendesk destinations whose far end echoes too. Then the SQLite file's bytes
(and its -wal), every command's stdout and stderr, ``listener metrics``, ``listener alerts list``
and ``listener status`` are searched for every secret value: none may appear. The storage verbs
scrub what they write (``storage.db.scrubbed``), so this holds whoever wrote the error.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from listener.core.log import register_secret
from storage.db import scrubbed
from tests.e2e import NEGATIVE, cli_env, posts_jsonl, run_cli
from tests.fakes.base import FakeHTTPServer, ScriptedResponse

SECRETS = {
    "FEED_KEY": "feedkey-4f9a8b7c6d5e",
    "FEED_URL": "http://127.0.0.1:{closed}/alerts/feeds/0815471112345678/987654321?hl=en",
    "MASTODON_TOKEN": "masto-token-5a6b7c8d9e0f",
    "X_TOKEN": "AAAAAAAAAAAAAAAAAAAAAxbearer1234567890",
    "SLACK_URL": "http://127.0.0.1:{echo}/services/T0SECRET1/B0SECRET2/xoxwebhooksecret9876",
    "HOOK_TOKEN": "hooktoken-1a2b3c4d5e6f",
    "HOOK_SECRET": "whsec-signing-0123456789abcdef",
    "GITHUB_TOKEN": "ghp_githubtoken0123456789abcdefABCDEF",
    "ZD_EMAIL": "agent-7@acme-support.example",
    "ZD_TOKEN": "zendesk-api-token-9f8e7d6c5b4a",
}
LITERAL = "literal-token-55aa66bb"  # written in the config, never registered as a secret
CONFIG = """\
storage: {{path: listener.db}}
metrics: {{port: null}}
brands:
  - {{name: acme, query: 'acme OR order OR service OR app OR support'}}
sources:
  - {{type: file, name: imports, path: posts.jsonl, brand: acme}}
  - type: rss
    name: feed-key
    feeds: ["http://127.0.0.1:{echo}/feeds/alerts.xml?key=${{FEED_KEY}}&hl=en"]
  - {{type: rss, name: feed-env, feeds: [{{"$env": FEED_URL}}]}}
  - type: rss
    name: feed-literal
    feeds: ["http://127.0.0.1:{echo}/literal.xml?token={literal}"]
  - type: mastodon
    name: masto
    base_url: "http://127.0.0.1:{echo}"
    access_token: {{"$env": MASTODON_TOKEN}}
    hashtags: [acme]
  - type: x
    name: x
    base_url: "http://127.0.0.1:{echo}"
    bearer_token: {{"$env": X_TOKEN}}
rules:
  - name: everything
    destinations: [slack, hook, github, zendesk]
destinations:
  - {{type: slack, name: slack, webhook_url: {{"$env": SLACK_URL}}, timeout: 2, min_interval: 0}}
  - type: webhook
    name: hook
    url: "http://127.0.0.1:{echo}/hook?token=${{HOOK_TOKEN}}"
    secret: {{"$env": HOOK_SECRET}}
    allow_insecure_http: true
    allow_private_network: true
    timeout: 2
  - type: github
    name: github
    base_url: "http://127.0.0.1:{echo}/api/v3"
    token: {{"$env": GITHUB_TOKEN}}
    owner: acme
    repo: support
    timeout: 2
    min_interval: 0
  - type: zendesk
    name: zendesk
    base_url: "http://127.0.0.1:{echo}"
    email: {{"$env": ZD_EMAIL}}
    api_token: {{"$env": ZD_TOKEN}}
    timeout: 2
    min_interval: 0
dispatch: {{once_max_wait: 0, max_attempts: 1}}
"""


class EchoServer(FakeHTTPServer):
    """A server that fails every request with 500 and quotes it back, URL and headers: what a
    misconfigured proxy or a chatty API error page does."""

    name = "echo"
    methods = ("GET", "POST", "PUT", "PATCH")

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> ScriptedResponse:
        self._record({"method": method, "path": path, "query": query})
        credentials = {k: v for k, v in headers.items() if k in ("authorization", "x-api-key")}
        echoed = f"{method} {path}?{query} failed; credentials sent: {json.dumps(credentials)}"
        return ScriptedResponse(500, {"error": echoed, "message": echoed},
                                headers={"Content-Type": "application/json"})


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def secret_values(env: dict[str, str]) -> dict[str, str]:
    """Every value that must not appear: the secrets, the parts a message could show of the
    secret URLs, the literal token, and Zendesk's Basic credentials as sent."""
    values = {name: env[name] for name in SECRETS}
    values["SLACK_URL path"] = "/services/T0SECRET1/B0SECRET2/xoxwebhooksecret9876"
    values["FEED_URL path"] = "/alerts/feeds/0815471112345678/987654321"
    values["literal"] = LITERAL
    basic = f"{env['ZD_EMAIL']}/token:{env['ZD_TOKEN']}".encode()
    values["zendesk basic"] = base64.b64encode(basic).decode()
    return values


def scan(name: str, data: bytes, values: dict[str, str]) -> list[str]:
    return [f"{secret} in {name}" for secret, value in values.items()
            if value.encode() in data]


def test_no_secret_reaches_the_database_or_any_output(tmp_path: Path, echo: EchoServer) -> None:
    env = cli_env("http://127.0.0.1:9/unused")
    for name, value in SECRETS.items():
        env[name] = value.format(echo=echo.port, closed=closed_port())
    (tmp_path / "posts.jsonl").write_text(posts_jsonl(NEGATIVE), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(echo=echo.port, literal=LITERAL), encoding="utf-8")

    outputs: dict[str, Any] = {}
    run = run_cli(["run", "--once", "-c", str(config)], env)
    outputs["run --once"] = run
    assert run.returncode == 1, run.stderr  # sources failed; the alerts were parked
    for args in (["metrics", "-c", str(config)], ["alerts", "list", "-c", str(config)],
                 ["alerts", "list", "--status", "failed", "-c", str(config)],
                 ["status", "-c", str(config)]):
        outputs[" ".join(args[:-2])] = run_cli(args, env)

    db = tmp_path / "listener.db"
    found = [hit for path in (db, db.with_name("listener.db-wal"))
             if path.exists() for hit in scan(path.name, path.read_bytes(), secret_values(env))]
    for name, result in outputs.items():
        found += scan(f"{name} stdout", result.stdout.encode(), secret_values(env))
        found += scan(f"{name} stderr", result.stderr.encode(), secret_values(env))
    assert not found, found

    # the failures really happened and were recorded, with the secrets masked
    conn = Database(db)
    errors = {r["target"]: r["error"] for r in conn.query(
        "SELECT target, error FROM runs WHERE stage = 'collect' AND status = 'error'")}
    assert {"feed-key", "feed-env", "feed-literal", "masto", "x"} <= set(errors), errors
    assert {r["destination"] for r in conn.query(
        "SELECT destination FROM alerts WHERE status = 'failed' AND last_error IS NOT NULL"
    )} == {"slack", "hook", "github", "zendesk"}
    assert len(echo.requests) >= 6  # the echoing server was asked by sources and sinks alike


def test_scrubbed_masks_registered_secrets_and_credential_parameters() -> None:
    register_secret("https://feeds.example/alerts/feeds/123456789012/345?hl=en&k=zzsecret42")
    text = ("cannot fetch https://feeds.example/alerts/feeds/123456789012/345 (echo: "
            "GET /x?key=abc123&page=2&Api_Key=k9&sig=s1) user https://bob:hunter2@h.example/ "
            "k=zzsecret42; api_key=bare1 X-Api-Key=bare2 password=pw1 in sorted(r, key=lambda r: 1)")
    assert scrubbed(text, None) == (
        "cannot fetch https://feeds.example*** (echo: GET /x?key=***&page=2&Api_Key=***&sig=***)"
        " user https://bob:***@h.example/ k=***; api_key=*** X-Api-Key=*** password=*** in "
        "sorted(r, key=lambda r: 1)")
    assert scrubbed("x" * 600 + "\ud800") == "x" * 500  # cut, and storable UTF-8
    assert scrubbed("abc\ud800") == "abc\ufffd"


def test_short_lived_tokens_are_masked_while_they_are_among_the_newest() -> None:
    """Minted access tokens are masked like any secret, but only the newest 64 are kept: a
    daemon minting one an hour for months must not scan thousands on every log line."""
    from listener.core import log

    tokens = [f"minted-access-token-{i:04d}-xyz" for i in range(70)]
    for token in tokens:
        log.register_short_lived_secret(token)
    assert log.redact(f"Bearer {tokens[-1]}") == "Bearer ***"
    assert log.redact(f"Bearer {tokens[6]}") == "Bearer ***"
    assert log.redact(f"Bearer {tokens[5]}") == f"Bearer {tokens[5]}"  # expired long ago
    assert len(log._SHORT_LIVED) == 64
