"""Issue 13 item 7: ``listener doctor`` reaches every host of every source and destination.

Real sockets only: a port on 127.0.0.1 nothing listens on (unreachable), the fake servers
(reachable), a fake SMTP server behind TLS with a throwaway CA (a verified handshake, and a
refused one), a name under ``.invalid`` (never resolves). Nothing is ever sent to them.
"""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from listener.commands import checks
from listener.config import load_config
from listener.core.netguard import Endpoint, endpoints
from listener.doctor import FAIL, OK, reach
from tests.fakes.feeds import FakeFeedServer
from tests.fakes.smtp_server import FakeSMTPServer, TestCA
from tests.fakes.webhook_receiver import FakeWebhookReceiver

HOOK_TOKEN = "tok-doctor-0123456789abcdef"
FEED_TOKEN = "feedkey-0123456789abcdef"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "posts.jsonl").write_text('{"id": "1", "text": "hi"}\n')
    path = tmp_path / "config.yaml"
    path.write_text("storage: {path: listener.db}\n" + text)
    return path


def doctor(config: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(checks.doctor, ["-c", str(config), "--no-model"], env=env)
    for secret in env.values():
        assert secret not in result.output
    print(result.output)
    return result.exit_code, [line for line in result.output.splitlines()
                              if line[:4] in ("OK  ", "FAIL", "SKIP")]


def test_an_unreachable_webhook_fails_and_reachable_hosts_pass_without_their_secrets(
    tmp_path: Path,
) -> None:
    # before: "SKIP destination hook: cannot be checked without delivering something", exit 0
    port = closed_port()
    with FakeWebhookReceiver() as receiver, FakeFeedServer() as feeds:
        config = write(tmp_path, """\
sources:
  - {type: file, name: exports, path: posts.jsonl}
  - {type: rss, name: alerts, feeds: [{"$env": FEED_URL}]}
destinations:
  - type: webhook
    name: down
    url: {"$env": DOWN_URL}
    secret: "webhook-hmac-secret-0123456789"
    allow_insecure_http: true
    allow_private_network: true
  - type: webhook
    name: up
    url: {"$env": UP_URL}
    secret: "webhook-hmac-secret-0123456789"
    allow_insecure_http: true
    allow_private_network: true
  - {type: console, name: console}
""")
        env = {"DOWN_URL": f"http://127.0.0.1:{port}/hooks/{HOOK_TOKEN}",
               "UP_URL": receiver.url, "FEED_URL": feeds.url(f"/alerts?key={FEED_TOKEN}")}
        code, lines = doctor(config, env)
        assert receiver.requests == [] and feeds.requests == []  # reached; nothing sent
        feed_port, receiver_port = feeds.port, receiver.port
    assert code == 1
    assert lines[1] == "OK    source exports: 1 file(s) readable (no network: nothing to reach)"
    assert lines[2].startswith(f"OK    source alerts: http://127.0.0.1:{feed_port} reachable "
                               "(DNS, TCP in ")
    assert lines[3].startswith("SKIP  source alerts: no credentials to check")
    assert lines[4] == (f"FAIL  destination down: cannot reach http://127.0.0.1:{port}: TCP "
                        f"connection to 127.0.0.1:{port} failed (Connection refused)")
    assert lines[5] == ("SKIP  destination down: credentials not checked: a host above is "
                        "unreachable")
    assert lines[6].startswith(f"OK    destination up: http://127.0.0.1:{receiver_port} reachable")
    assert lines[7].startswith("SKIP  destination up: cannot be checked without delivering")
    assert lines[8].startswith("OK    destination console: prints") and "no network" in lines[8]
    assert HOOK_TOKEN not in "\n".join(lines) and FEED_TOKEN not in "\n".join(lines)


def test_every_plugin_names_the_hosts_it_talks_to(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
brands: [{name: acme, query: acme}]
sources:
  - {type: file, name: exports, path: posts.jsonl}
  - {type: x, name: x, bearer_token: "x-token-0123456789"}
  - {type: reddit, name: reddit, client_id: "id-0123456789", client_secret: "secret-0123456789"}
  - {type: hackernews, name: hn}
  - {type: mastodon, name: masto, base_url: "https://mastodon.example:8443"}
  - {type: bluesky, name: bsky}
  - {type: bluesky, name: bsky-login, handle: acme.bsky.social, app_password: "abcd-efgh-ijkl"}
  - {type: rss, name: rss, feeds: ["https://a.example/feed?token=s3cret", "http://b.example/x"]}
  - {type: appstore, name: ios, apps: [{app_id: "123"}]}
  - {type: googleplay, name: play, apps: [{app_id: com.acme.app}]}
  - {type: youtube, name: yt, api_key: "yt-key-0123456789", channels: [UCabcdefghijklmnopqrstuv]}
  - {type: trustpilot, name: tp, api_key: "tp-key-0123456789", business_units: ["507f191e810c"]}
  - {type: facebook, name: fb, page_id: "1", access_token: "EAA-0123456789"}
  - {type: instagram, name: ig, account_id: "1", access_token: "EAA-0123456789"}
  - {type: discourse, name: forum, base_url: "https://community.acme.example"}
  - {type: stackexchange, name: so, site: stackoverflow, tags: [acme]}
  - {type: github, name: ghsrc, token: "ghp-0123456789", repos: [acme/app]}
destinations:
  - {type: console, name: console}
  - {type: slack, name: hook, webhook_url: "https://hooks.slack.com/services/T0/B0/secret"}
  - {type: slack, name: bot, token: "xoxb-0123456789", channel: C0123ABCDEF}
  - {type: zendesk, name: zd, subdomain: acme, email: a@acme.example, api_token: "zd-0123456789"}
  - {type: jira, name: jira, base_url: "https://acme.atlassian.net", email: a@acme.example,
     api_token: "jira-0123456789", project_key: SUP}
  - {type: github, name: gh, token: "ghp-0123456789", owner: acme, repo: support}
  - {type: email, name: mail, host: smtp.acme.example, port: 465, security: ssl,
     from_address: l@acme.example, to: [ops@acme.example]}
  - {type: email, name: relay, host: relay.acme.example, port: 587,
     from_address: l@acme.example, to: [ops@acme.example]}
  - {type: webhook, name: wh, url: "https://hooks.acme.example/in/secret", secret: "0123456789abcdef"}
"""), environ={})
    hosts = {c.name: [str(e) for e in endpoints(c)] for c in [*config.sources,
                                                               *config.destinations]}
    assert hosts == {
        "exports": [], "console": [],
        "x": ["https://api.twitter.com:443"],
        "reddit": ["https://www.reddit.com:443", "https://oauth.reddit.com:443"],
        "hn": ["https://hn.algolia.com:443"],
        "masto": ["https://mastodon.example:8443"],
        "bsky": ["https://public.api.bsky.app:443"],  # no login: never bsky.social
        "bsky-login": ["https://bsky.social:443"],  # logged in: the AppView is not used
        "rss": ["https://a.example:443", "http://b.example:80"],  # never the query's token
        "ios": ["https://itunes.apple.com:443"],
        "play": ["https://play.google.com:443"],
        "yt": ["https://www.googleapis.com:443"],
        "tp": ["https://api.trustpilot.com:443"],
        "fb": ["https://graph.facebook.com:443"],
        "ig": ["https://graph.facebook.com:443"],
        "forum": ["https://community.acme.example:443"],
        "so": ["https://api.stackexchange.com:443"],
        "ghsrc": ["https://api.github.com:443"],
        "hook": ["https://hooks.slack.com:443"],  # webhook mode: never the Web API
        "bot": ["https://slack.com:443"],
        "zd": ["https://acme.zendesk.com:443"],
        "jira": ["https://acme.atlassian.net:443"],
        "gh": ["https://api.github.com:443"],
        "mail": ["tls://smtp.acme.example:465"],  # SSL from the start; STARTTLS is the check's
        "relay": ["tcp://relay.acme.example:587"],
        "wh": ["https://hooks.acme.example:443"],
    }


def test_the_tls_handshake_is_verified(tmp_path: Path) -> None:
    ca = TestCA()
    with FakeSMTPServer(mode="ssl", tls=ca.server_context()) as smtp:
        port = smtp.port
        target = Endpoint("tls", "127.0.0.1", port)
        trusted = reach(target, ca_file=ca.write_ca(tmp_path / "ca.pem"))
        untrusted = reach(target)  # the public CAs do not know the test CA
    assert trusted.outcome == OK and "(DNS, TCP, TLS in " in trusted.detail
    assert untrusted.outcome == FAIL
    assert untrusted.detail.startswith(f"cannot reach tls://127.0.0.1:{port}: TLS handshake "
                                       "failed (certificate not trusted: ")


def test_a_name_that_does_not_resolve_fails_at_dns() -> None:
    check = reach(Endpoint("https", "listener-doctor.invalid", 443), timeout=2)
    assert check.outcome == FAIL
    assert check.detail.startswith("cannot reach https://listener-doctor.invalid:443: DNS lookup "
                                   "of listener-doctor.invalid failed (")
