"""Reports (spikes, digests, held alerts) through every non-Slack sink: the real client (smtplib,
httpx) over real sockets to the fakes on 127.0.0.1, plus one run from a real SQLite outbox."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.render.email import CHART_MAX
from alerts.render.github import marker
from alerts.sinks.console import ConsoleSink, ConsoleSinkConfig
from alerts.sinks.email import EmailSink, EmailSinkConfig
from alerts.sinks.github import GitHubSink, GitHubSinkConfig
from alerts.sinks.jira import JiraSink, JiraSinkConfig
from alerts.sinks.webhook import WebhookSink, WebhookSinkConfig
from alerts.sinks.zendesk import ZendeskSink, ZendeskSinkConfig
from listener.core.errors import DeliveryError
from listener.core.models import Page, Post, Report, Score
from storage import db as store
from storage.reports import enqueue_report
from tests.alerts.factories import PNG, REPORT_END, make_report
from tests.alerts.test_dispatch import ManualClock
from tests.fakes.github_api import FakeGitHub
from tests.fakes.jira_api import CREATE_PATH, HANG_UP, SEARCH_PATH, FakeJira, valid_adf
from tests.fakes.smtp_server import FakeSMTPServer
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.fakes.zendesk_api import TICKETS, FakeZendesk

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "report_sinks"
ALERT_ID = "r1e2p3o4r5t6"
SHOWN = ("Acme: 5× the usual volume of negative posts", "120 posts in the last hour",
         "2026-11-20 11:00–12:00 UTC", "Baseline", "24/h", "outage, login, refund",
         "Post 1 of 2", "jane on mastodon (1,234 followers)", "negative 0.91", "high (0.83)",
         "The Acme app is down again, nobody answers.", "bob on x", "neutral 0.60",
         "acme login broken since 9am")


def save(name: str, content: str | bytes) -> None:
    """What a fake received, kept under test-artifacts/ for a human to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (ARTIFACTS / name).write_bytes(data)


def email_sink(port: int) -> EmailSink:
    return EmailSink(EmailSinkConfig(name="mail", host="127.0.0.1", port=port, security="none",
                                     from_address="listener@example.com",
                                     to=["ops@example.com"], timeout=5))


def zendesk_sink(fake: FakeZendesk) -> ZendeskSink:
    return ZendeskSink(ZendeskSinkConfig(name="zd", base_url=fake.base_url, email=fake.email,
                                         api_token=fake.token, requester="author",
                                         tags=["social"], timeout=5, min_interval=0))


def jira_sink(fake: FakeJira, **overrides: Any) -> JiraSink:
    return JiraSink(JiraSinkConfig(**{"name": "jira", "base_url": fake.base_url,
                                      "email": fake.email, "api_token": fake.token,
                                      "project_key": "SUP", "labels": ["social"], "timeout": 5,
                                      "min_interval": 0, **overrides}))


def github_sink(fake: FakeGitHub) -> GitHubSink:
    return GitHubSink(GitHubSinkConfig(name="gh", base_url=fake.base_url, token=fake.token,
                                       owner="acme", repo="support", labels=["triage"],
                                       timeout=5, min_interval=0))


def webhook_sink(receiver: FakeWebhookReceiver, clock: Any, **overrides: Any) -> WebhookSink:
    config = WebhookSinkConfig(**{"name": "hook", "url": receiver.url, "secret": receiver.secret,
                                  "timeout": 5, "allow_insecure_http": True,
                                  "allow_private_network": True, **overrides})
    return WebhookSink(config, clock=clock)


# -- console and e-mail -----------------------------------------------------------------------


def test_console_prints_title_window_facts_terms_and_examples() -> None:
    out = io.StringIO()
    ConsoleSink(ConsoleSinkConfig(name="console"), stream=out).send(make_report())
    text = out.getvalue()
    assert text.startswith("[!] Acme: 5× the usual volume") and text.endswith("\n\n")
    for part in SHOWN:
        assert part in text
    assert "- Top terms: outage, login, refund" in text and "- Priority: high" in text
    save("console.txt", text)


def test_email_embeds_the_chart_inline_with_a_matching_content_id() -> None:
    with FakeSMTPServer() as smtp:
        remote_id = email_sink(smtp.port).send(make_report(chart_png=PNG))
        (received,) = smtp.messages
    mail = received.message
    assert remote_id == mail["Message-ID"] == f"<{ALERT_ID}@example.com>"
    assert mail["Subject"] == "[listener] [!] Acme: 5× the usual volume of negative posts"
    assert mail["X-Listener-Alert-Id"] == ALERT_ID
    plain, related = mail.iter_parts()
    assert (mail.get_content_type(), plain.get_content_type(),
            related.get_content_type()) == ("multipart/alternative", "text/plain",
                                             "multipart/related")
    html_part, image = related.iter_parts()
    assert (html_part.get_content_type(), image.get_content_type()) == ("text/html", "image/png")
    assert image["Content-ID"] == f"<chart.{ALERT_ID}@listener.invalid>"
    assert image.get_content_disposition() == "inline" and image.get_content() == PNG
    html = html_part.get_content()
    assert f'<img src="cid:chart.{ALERT_ID}@listener.invalid"' in html
    assert html.count("<img") == 1 and 'src="http' not in html
    text = plain.get_content()
    for part in SHOWN:
        assert part in text and part in html
    assert "(The chart is in the HTML version of this message.)" in text
    assert len(received.data) < 30_000  # a 2 KB chart, two example posts
    save("email.eml", received.data)


@pytest.mark.parametrize("chart", [None, b"GIF89a not a png", PNG + b"\0" * CHART_MAX])
def test_email_without_a_usable_chart_or_examples(chart: bytes | None) -> None:
    with FakeSMTPServer() as smtp:
        email_sink(smtp.port).send(make_report(examples=(), chart_png=chart))
        mail = smtp.messages[0].message
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "<img" not in html and "Posts to read first" not in text + html
    assert "- Baseline: 24/h" in text and "Post 1" not in text
    left_out = "The chart was left out: not a PNG, or over 1,000,000 bytes."
    assert (left_out in text and left_out in html) is (chart is not None)
    assert len(smtp.messages[0].data) < 20_000  # an oversized chart never travels


# -- Zendesk ----------------------------------------------------------------------------------


def test_zendesk_opens_one_ticket_with_kind_and_brand_tags() -> None:
    with FakeZendesk() as fake:
        ticket_id = zendesk_sink(fake).send(make_report())
        (request,) = fake.requests
    assert request.headers["idempotency-key"] == ALERT_ID
    ticket = request.json["ticket"]
    assert ticket_id == str(fake.tickets[0]["id"])
    assert ticket["subject"] == "Acme: 5× the usual volume of negative posts"
    assert ticket["external_id"] == ALERT_ID and ticket["priority"] == "high"
    assert ticket["tags"] == ["social", "listener", "listener-spike", "acme-spikes", "brand-acme"]
    assert "requester" not in ticket  # a report has no single author, whatever the config says
    body = ticket["comment"]["body"]
    assert body.startswith("Spike report from social-listener") and ticket["comment"]["public"] is False
    for part in SHOWN:
        assert part in body
    assert "- Link: https://x.com/bob/status/2" in body
    save("zendesk.md", body)


def test_zendesk_retry_finds_the_ticket_of_a_lost_answer() -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake)
        fake.enqueue(HANG_UP, create=True)  # Zendesk creates it; the answer never arrives
        with pytest.raises(DeliveryError) as info:
            sink.send(make_report())
        assert info.value.retryable is True
        fake.expire_keys()  # even after the idempotency key expired
        assert sink.send(make_report(attempt=2)) == str(fake.tickets[0]["id"])
        assert len(fake.tickets) == 1
        assert [(r.method, r.path, r.query_lists) for r in fake.requests[1:]] == [
            ("GET", TICKETS, {"external_id": [ALERT_ID]})]


# -- Jira and GitHub --------------------------------------------------------------------------


def test_jira_issue_is_labelled_by_kind_and_valid_adf() -> None:
    with FakeJira() as fake:
        key = jira_sink(fake).send(make_report())
        fields = fake.requests[0].json["fields"]
    assert key == "SUP-1" and fake.issues[0]["fields"] == fields
    assert fields["summary"] == "[!] Acme: 5× the usual volume of negative posts"
    assert fields["labels"] == ["social", "listener", f"listener-{ALERT_ID}", "listener-spike"]
    assert fields["priority"] == {"name": "High"} and valid_adf(fields["description"])
    texts = [n["text"] for n in walk(fields["description"]) if n["type"] == "text"]
    for part in SHOWN:
        assert any(part in t for t in texts), part
    links = [m["attrs"]["href"] for n in walk(fields["description"]) for m in n.get("marks", [])]
    assert links == ["https://mastodon.example/@jane/110000000000000001",
                     "https://x.com/bob/status/2"]
    save("jira.json", json.dumps(fields, indent=1, ensure_ascii=False))


def test_jira_retry_finds_the_issue_by_its_label() -> None:
    with FakeJira() as fake:
        sink = jira_sink(fake)
        fake.enqueue(HANG_UP, path=CREATE_PATH, commit=True)
        with pytest.raises(DeliveryError):
            sink.send(make_report())
        assert sink.send(make_report(attempt=2)) == "SUP-1" and len(fake.issues) == 1
        search = fake.requests[-1]
    assert search.path == SEARCH_PATH and search.json["jql"] == f'labels = "listener-{ALERT_ID}"'


def test_github_issue_is_labelled_and_ends_with_the_marker() -> None:
    with FakeGitHub() as fake:
        number = github_sink(fake).send(make_report())
        payload = fake.requests[0].json
    assert number == "1"
    assert payload["title"] == "[!] Acme: 5× the usual volume of negative posts"
    assert payload["labels"] == ["triage", "listener", "listener-spike"]
    body = payload["body"]
    assert body.endswith(marker(ALERT_ID)) and body.count("```text") == 2
    shown = html.unescape(re.sub(r"<[^>]*>", "", MarkdownIt("commonmark").render(body)))
    for part in SHOWN:  # what a reader sees once GitHub has rendered the Markdown
        assert part in shown, part
    save("github.md", body)


def test_github_retry_finds_the_issue_by_its_marker() -> None:
    with FakeGitHub() as fake:
        sink = github_sink(fake)
        fake.enqueue(HANG_UP, path="/repos/acme/support/issues", commit=True)
        with pytest.raises(DeliveryError):
            sink.send(make_report())
        assert sink.send(make_report(attempt=2)) == "1" and len(fake.issues) == 1
        assert [r.method for r in fake.requests] == ["POST", "GET"]  # found among the recent


# -- webhook ----------------------------------------------------------------------------------


def test_webhook_posts_the_signed_report_without_the_chart_by_default() -> None:
    clock = ManualClock()
    with FakeWebhookReceiver(clock=lambda: clock().timestamp()) as receiver:
        assert webhook_sink(receiver, clock).send(make_report(chart_png=PNG)) == "evt_1"
        (request,) = receiver.requests
    assert request.verdict == "ok" and request.headers["x-listener-id"] == ALERT_ID
    body = request.json
    assert set(body) == {"type", "kind", "alert_id", "name", "title", "summary", "window",
                         "brand", "source", "facts", "terms", "numbers", "examples",
                         "destination", "priority", "sent_at", "reply_to", "parent_alert_id"}
    assert (body["type"], body["kind"], body["alert_id"]) == ("report", "spike", ALERT_ID)
    assert body["reply_to"] is None and body["parent_alert_id"] is None  # not an update
    assert body["window"] == {"start": "2026-11-20T11:00:00Z", "end": "2026-11-20T12:00:00Z"}
    assert body["facts"][1] == {"label": "Baseline", "value": "24/h"}
    assert body["terms"] == ["outage", "login", "refund"]
    assert body["numbers"] == {"posts": 120, "baseline": 24.0, "negative_share": 0.71}
    first = body["examples"][0]
    assert first["post"]["text"] == "The Acme app is down again, nobody answers."
    assert first["score"]["probabilities"]["negative"] == 0.91
    assert set(first["post"]) == {"platform", "id", "url", "author", "author_followers", "text",
                                  "created_at", "brand", "lang", "kind", "rating"}


def test_webhook_includes_the_chart_when_configured() -> None:
    clock = ManualClock()
    with FakeWebhookReceiver(clock=lambda: clock().timestamp()) as receiver:
        webhook_sink(receiver, clock, include_chart=True).send(make_report(chart_png=PNG))
        body = receiver.deliveries[0]
    assert base64.b64decode(body["chart_png"]) == PNG
    save("webhook.json", receiver.requests[0].body)


# -- from the outbox --------------------------------------------------------------------------


def test_a_stored_report_reaches_email_webhook_and_jira_once(tmp_path: Path) -> None:
    """enqueue_report → dispatch → three sinks; Jira's first answer is lost and retried."""
    clock = ManualClock()
    db = store.open_db(tmp_path / "listener.db")
    ids = store_posts(db, clock)
    report = Report(kind="digest", name="acme-daily", title="Acme: daily digest",
                    window_start=REPORT_END - timedelta(days=1), window_end=REPORT_END,
                    brand="Acme", facts=[("Posts", "2")], terms=["outage"],
                    example_post_ids=ids, chart_png=PNG, numbers={"posts": 2})
    assert enqueue_report(db, report, ["mail", "hook", "jira"], clock()) == 3
    with FakeSMTPServer() as smtp, FakeJira() as jira, \
            FakeWebhookReceiver(clock=lambda: clock().timestamp()) as receiver:
        jira.enqueue(HANG_UP, path=CREATE_PATH, commit=True)
        sinks = {"mail": email_sink(smtp.port), "jira": jira_sink(jira, name="jira"),
                 "hook": webhook_sink(receiver, clock, include_chart=True)}
        result = dispatch(db, sinks, RetryPolicy(backoff_initial=10), clock=clock,
                          sleep=clock.sleep, wait_up_to=3600, strict=True)
        mail = smtp.messages[0].message
        delivered = receiver.deliveries
    assert (result.delivered, result.retried, result.failed) == (3, 1, 0)
    assert len(smtp.messages) == 1 and len(jira.issues) == 1 and len(delivered) == 1
    image = next(p for p in mail.walk() if p.get_content_type() == "image/png")
    assert image.get_content() == PNG and "Post 2 of 2" in mail.get_body(("plain",)).get_content()
    assert [e["post"]["text"] for e in delivered[0]["examples"]] == ["the app is down", "refund?"]
    assert jira.issues[0]["fields"]["labels"][-1] == "listener-digest"
    rows = db.execute("SELECT destination, status, attempts FROM alerts ORDER BY destination")
    assert [tuple(r) for r in rows] == [("hook", "delivered", 1), ("jira", "delivered", 2),
                                        ("mail", "delivered", 1)]
    db.close()


def store_posts(db: Database, clock: ManualClock) -> list[int]:
    posts = [Post("x", "1", "the app is down", clock(), source="s", url="https://x.com/a/1"),
             Post("x", "2", "refund?", clock(), source="s")]
    store.store_page(db, "s", Page(posts=posts), clock())
    ids = [r["id"] for r in db.query("SELECT id FROM posts ORDER BY id")]
    store.save_scores(db, [(i, Score("negative", 0.9, 0.08, 0.02, 0.7, "m", "1"), None)
                           for i in ids], clock())
    return ids


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every node of an ADF document, depth first."""
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []):
            yield from walk(child)
