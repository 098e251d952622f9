"""Incidents (a first report, then updates) rendered by every target: they read well, the queue
link (our config) is a real link where the format has links, and whatever came from posts stays
exactly as inert as in any report. What is checked is what each sink sends (its own builders),
without the network."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from markdown_it import MarkdownIt

from alerts.render.common import ZWSP, config_url
from alerts.render.email import report_html
from alerts.render.github import marker
from alerts.render.github import report_comment as github_comment
from alerts.render.jira import DESCRIPTION_MAX, adf_size
from alerts.render.jira import comment_marker as jira_marker
from alerts.render.jira import has_comment_marker as jira_has_marker
from alerts.render.jira import report_comment as jira_comment
from alerts.render.slack import slack_report
from alerts.render.text import report_text
from alerts.render.webhook import report_payload
from alerts.render.zendesk import comment_marker as zendesk_marker
from alerts.render.zendesk import has_comment_marker as zendesk_has_marker
from alerts.render.zendesk import update_comment
from alerts.sinks.email import EmailSink, EmailSinkConfig
from alerts.sinks.github import GitHubSink, GitHubSinkConfig
from alerts.sinks.jira import JiraSink, JiraSinkConfig
from alerts.sinks.zendesk import ZendeskSinkConfig, ticket_payload
from listener.core.models import ReportMessage
from tests.alerts.factories import make_post, make_report, make_score
from tests.fakes.jira_api import valid_adf

QUEUE = "http://127.0.0.1:8765/queue?incident=5f0c2a9e&status=all"
FIRST_ID, UPDATE_ID = "1c1de7f1257", "0bda7e0a11d"
HOSTILE_POST = ("<!channel> @here *bold* <script>alert(1)</script> <@U123> "
                "<https://evil.example|your bank> [x](https://evil.example) @team #12")
POST_URL = "https://x.com/bob/status/2"


def incident(**overrides: Any) -> ReportMessage:
    """An incident's first report, as alerts.incidents writes one (facts, numbers, link)."""
    fields: dict[str, Any] = {
        "alert_id": FIRST_ID, "kind": "incident", "name": "incidents",
        "title": "Acme: 12 customers report the same problem (15 posts since 11:40 UTC)",
        "summary": ("Since 2026-11-20 11:40 UTC, 12 different customers posted what looks like "
                    f"one problem. New reports follow as updates to this message; every post "
                    f"stays in the queue: {QUEUE}"),
        "facts": (("Customers", "12"), ("Reports", "15"), ("First report", "2026-11-20 11:40 UTC"),
                  ("Latest report", "2026-11-20 11:58 UTC"), ("Queue", QUEUE),
                  ("Customers so far", "jane, bob and 10 more")),
        "terms": ("login", "down"),
        "numbers": {"incident": "5f0c2a9e", "customers": 12, "reports": 15, "queue_url": QUEUE,
                    "authors": ["jane", "bob"], "post_ids": list(range(1, 16))},
        "priority": "high",
    }
    fields.update(overrides)
    return make_report(**fields)


def update(reply_to: str | None, **overrides: Any) -> ReportMessage:
    """An update of :func:`incident` (3 new reports) answering ``reply_to`` at its destination."""
    fields: dict[str, Any] = {
        "alert_id": UPDATE_ID, "kind": "incident_update", "name": "incidents",
        "title": "Acme incident: 3 more reports — 14 customers, 18 posts in all",
        "summary": f"Latest report 12:10 UTC. Queue: {QUEUE}",
        "facts": (("New reports", "3"), ("Customers", "14"), ("Reports", "18"),
                  ("Latest report", "2026-11-20 12:10 UTC"), ("Queue", QUEUE)),
        "terms": (),
        "numbers": {"incident": "5f0c2a9e", "new_post_ids": [16, 17, 18], "customers": 14,
                    "reports": 18, "queue_url": QUEUE},
        "priority": "high", "reply_to": reply_to, "parent_alert_id": FIRST_ID,
    }
    fields.update(overrides)
    return make_report(**fields)


def hostile(message: ReportMessage) -> ReportMessage:
    """The same report, its example posts saying what a post should never get to do."""
    from dataclasses import replace

    examples = ((make_post(text=HOSTILE_POST, author="<!here>"), make_score()),
                (make_post(platform="x", platform_id="2", url=POST_URL, text=HOSTILE_POST),
                 make_score()))
    return replace(message, examples=examples)


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []):
            yield from walk(child)


def slack_links(payload: dict[str, Any]) -> list[str]:
    """Every ``<target|label>`` / ``<target>`` Slack would act on in the blocks and fallback."""
    text = json.dumps(payload, ensure_ascii=False)
    return re.findall(r"<([^<>]*)>", text)


def zendesk_config(**overrides: Any) -> ZendeskSinkConfig:
    return ZendeskSinkConfig(**{"name": "zd", "subdomain": "acme", "email": "bot@acme.example",
                                "api_token": "t", **overrides})


def jira_sink() -> JiraSink:
    return JiraSink(JiraSinkConfig(name="jira", base_url="https://acme.atlassian.net",
                                   email="bot@acme.example", api_token="t", project_key="SUP"))


def github_sink() -> GitHubSink:
    return GitHubSink(GitHubSinkConfig(name="gh", token="t", owner="acme", repo="support"))


def email_sink() -> EmailSink:  # compose() only: no connection is made
    return EmailSink(EmailSinkConfig(name="mail", host="127.0.0.1", security="none",
                                     from_address="listener@example.com", to=["o@example.com"]))


# -- they read well -----------------------------------------------------------------------------


def test_text_names_the_kind_and_shows_the_queue_link() -> None:
    first, later = report_text(incident()), report_text(update("1"))
    assert first.startswith("[!] Acme: 12 customers report the same problem")
    assert "- Report: Incident · incidents" in first and "- Customers: 12" in first
    assert f"- Queue: {QUEUE}" in first and first.count(f"- Queue: {QUEUE}") == 1
    assert "- Top terms: login, down" in first and "Post 2 of 2" in first
    assert later.startswith("[!] Acme incident: 3 more reports — 14 customers, 18 posts in all")
    assert "- Report: Incident update · incidents" in later and "- New reports: 3" in later
    assert f"- Queue: {QUEUE}" in later


def test_slack_blocks_link_the_queue_and_name_the_kind() -> None:
    for message, kind in ((incident(), "Incident"), (update("1767225601.000001"),
                                                      "Incident update")):
        payload = slack_report(message)
        facts = next(b for b in payload["blocks"] if "fields" in b)
        queue = [f["text"] for f in facts["fields"] if f["text"].startswith("*Queue*")]
        assert queue == [f"*Queue*\n<{QUEUE.replace('&', '&amp;')}|Open the queue>"]
        assert payload["blocks"][-1]["elements"][0]["text"].startswith(f"{kind} `incidents`")
        assert payload["blocks"][0]["text"]["text"].startswith("⚠️ Acme")


def test_a_ticket_comment_for_an_update_is_concise() -> None:
    body = update_comment(update("35437"), 500)
    lines = body.splitlines()
    assert lines[0] == ("**[!]" + ZWSP  # inert: no ] followed by ( can ever make a link
                        + " Acme incident: 3 more reports — 14 customers, 18 posts in all**")
    assert "- New reports: 3" in lines and f"- Queue: {QUEUE}" in lines
    assert "Post 1 of 2" in body and "The Acme app is down again, nobody answers." in body
    assert lines[-1] == zendesk_marker(UPDATE_ID) == f"listener-update:{UPDATE_ID}"
    for left_out in ("Window", "Priority", "Alert id", "Report:", "Latest report 12:10"):
        assert left_out not in body  # the first ticket and the title say those
    assert zendesk_has_marker({"body": body}, UPDATE_ID)
    assert not zendesk_has_marker({"body": body}, FIRST_ID)
    quoted = update_comment(hostile(update("1")), 500)
    assert not zendesk_has_marker({"body": f"> {zendesk_marker(UPDATE_ID)}"}, UPDATE_ID)
    assert quoted.splitlines()[-1] == zendesk_marker(UPDATE_ID)


def test_jira_and_github_comments_for_an_update() -> None:
    doc = jira_comment(update("SUP-1"))
    assert valid_adf(doc) and adf_size(doc) <= DESCRIPTION_MAX
    texts = [n["text"] for n in walk(doc) if n["type"] == "text"]
    assert texts[0].startswith("[!] Acme incident: 3 more reports")
    assert "New reports: " in texts and "3" in texts and "Window: " not in texts
    assert jira_has_marker(doc, UPDATE_ID) and not jira_has_marker(doc, FIRST_ID)
    assert texts[-1] == jira_marker(UPDATE_ID)
    body = github_comment(update("1"))
    assert body.endswith(marker(UPDATE_ID)) and "**New reports:** `3`" in body
    assert f"[Open the queue](<{QUEUE}>)" in body and "**Window:**" not in body


# -- hostile posts, a real queue link -------------------------------------------------------------


@pytest.mark.parametrize("make", [incident, lambda: update("1767225601.000001")])
def test_slack_hostile_posts_stay_inert_and_the_queue_is_a_link(make: Any) -> None:
    payload = slack_report(hostile(make()))
    text = json.dumps(payload, ensure_ascii=False)
    assert "<!channel>" not in text and "<!here>" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt;" in text and "@" + ZWSP + "here" in text
    # shown as written: neither a ping nor formatting (zero-width spaces around * _ ~ `)
    assert "&lt;script&gt;" in text and "*bold*" not in text
    assert "\u200b*\u200bbold\u200b*\u200b" in text
    assert sorted(slack_links(payload)) == sorted([
        f"{QUEUE.replace('&', '&amp;')}|Open the queue",
        "https://mastodon.example/@jane/110000000000000001|mastodon", f"{POST_URL}|x"])


@pytest.mark.parametrize("make", [incident, lambda: update(None)])
def test_email_html_escapes_posts_and_links_the_queue(make: Any) -> None:
    mail = email_sink().compose(hostile(make()))
    page = mail.get_body(("html",)).get_content()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;!channel&gt;" in page
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]*)"', page)]
    assert hrefs == [QUEUE, "https://mastodon.example/@jane/110000000000000001", POST_URL]
    assert '>Open the queue</a>' in page


@pytest.mark.parametrize("make", [incident, lambda: update(None)])
def test_zendesk_ticket_and_comment_defuse_posts(make: Any) -> None:
    message = hostile(make())
    for body in (ticket_payload(message, zendesk_config())["ticket"]["comment"]["body"],
                 update_comment(message, 500)):
        assert re.search(r"<(?!\u200b)", body) is None  # no HTML, no <autolink>
        prose = body.replace("https://mastodon.example/@jane/", "")  # a post's own link
        assert re.search(r"(?<![\w.])@\w", prose) is None  # no @mention
        assert "](" not in body  # no Markdown link but a bare URL Zendesk links itself
        assert f"- Queue: {QUEUE}" in body and r"\*bold\*" in body  # Markdown-literal


@pytest.mark.parametrize("which", ["issue", "comment"])
def test_jira_posts_are_text_nodes_and_the_queue_a_link_mark(which: str) -> None:
    message = hostile(update("SUP-1"))
    if which == "issue":
        sink = jira_sink()
        doc = sink.fields(hostile(incident()))["description"]
        sink.close()
    else:
        doc = jira_comment(message)
    assert valid_adf(doc)
    assert {n["type"] for n in walk(doc)} <= {"doc", "heading", "paragraph", "bulletList",
                                              "listItem", "blockquote", "text"}
    hrefs = [m["attrs"]["href"] for n in walk(doc) for m in n.get("marks", [])]
    assert hrefs == [QUEUE, "https://mastodon.example/@jane/110000000000000001", POST_URL]
    linked = [n["text"] for n in walk(doc) if n.get("marks")]
    assert linked[0] == "Open the queue"
    assert any(HOSTILE_POST in n.get("text", "") for n in walk(doc))  # characters, nothing more


@pytest.mark.parametrize("which", ["issue", "comment"])
def test_github_posts_are_fenced_and_the_queue_a_link(which: str) -> None:
    if which == "issue":
        sink = github_sink()
        body = sink.issue(hostile(incident()))["body"]
        sink.close()
    else:
        body = github_comment(hostile(update("1")))
    page = MarkdownIt("commonmark").render(body)
    for raw in ("<script", "<strong>bold", "<em>bold"):
        assert raw not in page
    prose = re.sub(r"\]\(<[^>]*>\)", "", body)  # link targets: ours and the posts' own
    assert not re.search(r"[@#]\w", prose.replace(marker(FIRST_ID), "")
                         .replace(marker(UPDATE_ID), ""))  # no mention, no reference
    hrefs = [html.unescape(h) for h in re.findall(r'<a href="([^"]*)"', page)]
    assert hrefs == [QUEUE, "https://mastodon.example/@jane/110000000000000001", POST_URL]


def test_webhook_carries_the_thread_ids_and_the_posts_as_data() -> None:
    payload = report_payload(hostile(update("evt_1")), "2026-11-20T12:10:00Z", 4000, False)
    assert (payload["kind"], payload["reply_to"], payload["parent_alert_id"]) == (
        "incident_update", "evt_1", FIRST_ID)
    assert payload["numbers"]["queue_url"] == QUEUE
    assert payload["numbers"]["new_post_ids"] == [16, 17, 18]
    assert payload["examples"][0]["post"]["text"] == HOSTILE_POST  # data: the receiver escapes
    first = report_payload(incident(), "now", 4000, False)
    assert first["reply_to"] is None and first["parent_alert_id"] is None


# -- a queue URL that is not a clean http(s) link is no link ----------------------------------


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "http://127.0.0.1:8765/queue x",
                                 "http://127.0.0.1:8765/q\u202eueue", "http://127.0.0.1/\u200bq",
                                 "http:///no-host", "http://127.0.0.1/" + "q" * 600, 42, None])
def test_a_bad_queue_url_is_never_a_link(bad: object) -> None:
    assert config_url(bad) is None
    message = update("1", numbers={"new_post_ids": [1], "queue_url": bad},
                      facts=(("Queue", str(bad)),), examples=())
    assert "Open the queue" not in json.dumps(slack_report(message), ensure_ascii=False)
    assert "Open the queue" not in report_text(message)
    assert "href" not in report_html(message, None)
    doc = jira_comment(message)
    assert not [m for n in walk(doc) for m in n.get("marks", [])]
    assert "](<" not in github_comment(message)


def test_config_url_accepts_a_clean_dashboard_link() -> None:
    assert config_url(QUEUE) == QUEUE
    assert config_url("https://listener.example.com/queue?incident=a%20b") is not None
