"""Report rendering for every non-Slack target: hostile text stays inert, huge reports fit each
target's limits, a report without examples, terms or chart still renders. What is checked here
is exactly what each sink sends (its own payload builders), without the network."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from markdown_it import MarkdownIt

from alerts.render.common import ZWSP
from alerts.render.github import BODY_MAX, marker
from alerts.render.jira import DESCRIPTION_MAX, adf_size
from alerts.render.text import EXAMPLE_TEXT_MAX, report_text
from alerts.render.webhook import report_payload
from alerts.sinks.email import EmailSink, EmailSinkConfig
from alerts.sinks.github import GitHubSink, GitHubSinkConfig
from alerts.sinks.jira import JiraSink, JiraSinkConfig
from alerts.sinks.zendesk import ZendeskSinkConfig, ticket_payload
from listener.core.models import ReportMessage
from tests.alerts.factories import PNG, make_post, make_report, make_score
from tests.fakes.jira_api import valid_adf

HOSTILE = ("<script>alert(1)</script> @channel @someuser @acme/owners [~admin] #1 acme/other#2 "
           "[x](javascript:alert(1)) ![](http://evil/pixel) <img src=x onerror=alert(1)> "
           "{{ticket.requester.email}} {% if 1 %} [x|javascript:alert(1)] {panel}hi{panel} "
           "h1. big https://evil.example/phish ```` &amp; \"q\" 'q' *b* _i_ | x |\n- [ ] task\n"
           "\x07\u202e\r\nBcc: evil@example.com \ud800")
SAFE = "https://ex.example/p?a=1&b=2"
CONTROLS = ("\x07", "\u202e", "\r", "\ud800")


def hostile_report() -> ReportMessage:
    examples = ((make_post(text=HOSTILE, author=HOSTILE, platform=HOSTILE,
                           url="javascript:alert(1)"), make_score(sentiment=HOSTILE)),
                (make_post(text=HOSTILE, url=SAFE), make_score()))
    return make_report(title=HOSTILE, summary=HOSTILE, brand=HOSTILE, source=HOSTILE,
                       name=HOSTILE, facts=((HOSTILE, HOSTILE),), terms=(HOSTILE, "@here"),
                       examples=examples, priority=HOSTILE, chart_png=PNG)


def huge_report() -> ReportMessage:
    huge = "<&@x` " + '"\\' * 100_000  # JSON doubles both: the worst case for Jira
    examples = tuple((make_post(text=huge, author=huge, url=SAFE), make_score()) for _ in range(50))
    return make_report(title=huge, summary=huge, facts=tuple((huge, huge) for _ in range(100)),
                       terms=(huge,) * 100, examples=examples, chart_png=PNG)


def bare_report() -> ReportMessage:
    return make_report(summary="", facts=(), terms=(), examples=(), chart_png=None, brand=None)


def email_sink() -> EmailSink:  # compose() only: no connection is made
    return EmailSink(EmailSinkConfig(name="mail", host="127.0.0.1", security="none",
                                     from_address="listener@example.com", to=["o@example.com"]))


def jira_fields(report: ReportMessage) -> dict[str, Any]:
    sink = JiraSink(JiraSinkConfig(name="jira", base_url="https://acme.atlassian.net",
                                   email="bot@acme.example", api_token="t", project_key="SUP"))
    try:
        return sink.fields(report)
    finally:
        sink.close()


def github_issue(report: ReportMessage) -> dict[str, Any]:
    sink = GitHubSink(GitHubSinkConfig(name="gh", token="t", owner="acme", repo="support"))
    try:
        return sink.issue(report)
    finally:
        sink.close()


def zendesk_ticket(report: ReportMessage) -> dict[str, Any]:
    config = ZendeskSinkConfig(name="zd", subdomain="acme", email="bot@acme.example",
                               api_token="t")
    return dict(ticket_payload(report, config)["ticket"])


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []):
            yield from walk(child)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


# -- hostile text -----------------------------------------------------------------------------


def test_console_text_has_no_control_characters() -> None:
    text = report_text(hostile_report())
    assert not any(c in text for c in CONTROLS)
    assert not any(line.startswith("Bcc:") for line in text.splitlines())
    assert "Bcc: evil@example.com" in text  # shown, as text on the line it came in


def test_email_headers_cannot_be_injected_and_html_is_inert() -> None:
    mail = email_sink().compose(hostile_report())
    assert mail["Bcc"] is None and "\n" not in mail["Subject"] and "\r" not in mail["Subject"]
    assert not any(line.lower().startswith(b"bcc:") for line in mail.as_bytes().splitlines())
    html = mail.get_body(("html",)).get_content()
    for raw in ("<script", "<img src=x", 'href="javascript', "<b>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "{{ticket.requester.email}}" in html
    assert re.findall(r'href="([^"]*)"', html) == ["https://ex.example/p?a=1&amp;b=2"]
    assert re.findall(r'<img src="([^"]*)"', html) == ["cid:chart.r1e2p3o4r5t6@listener.invalid"]
    text = mail.get_body(("plain",)).get_content()
    assert not any(c in text + html for c in CONTROLS)


def test_zendesk_markdown_and_placeholders_are_defused() -> None:
    ticket = zendesk_ticket(hostile_report())
    for text in (ticket["subject"], ticket["comment"]["body"]):
        assert "](" not in text and "{{" not in text and "{%" not in text
        assert re.search(r"<(?!\u200b)", text) is None  # no HTML tag, no <autolink>
        assert re.search(r"(?<![\w.])@\w", text) is None  # no @mention
        assert not any(c in text for c in CONTROLS)
    body = ticket["comment"]["body"]
    assert "[x]" + ZWSP + "(javascript:alert(1))" in body
    assert "- Link: " + SAFE in body and body.count("- Link: none") == 1
    assert all(re.fullmatch(r"[a-z0-9_-]+", tag) for tag in ticket["tags"])
    assert ticket["priority"] == "normal"  # an unknown priority falls back


def test_jira_description_is_plain_text_nodes_and_our_links() -> None:
    fields = jira_fields(hostile_report())
    assert "\n" not in fields["summary"] and len(fields["summary"]) <= 255
    doc = fields["description"]
    assert valid_adf(doc)
    assert {n["type"] for n in walk(doc)} <= {"doc", "heading", "paragraph", "bulletList",
                                              "listItem", "blockquote", "text"}
    marks = [m for n in walk(doc) for m in n.get("marks", [])]
    assert marks == [{"type": "link", "attrs": {"href": SAFE}}]
    texts = [n["text"] for n in walk(doc) if n["type"] == "text"]
    assert any("[~admin]" in t and "{panel}" in t and "[x|javascript" in t for t in texts)
    assert not any(c in "".join(texts) for c in CONTROLS)


def test_github_body_renders_inert_and_pings_no_one() -> None:
    issue = github_issue(hostile_report())
    body, title = issue["body"], issue["title"]
    html = MarkdownIt("commonmark").render(body)
    for raw in ("<script", "<img", "<b>", "<em>", "<strong>b", "<h1", "<li>task", "<table"):
        assert raw not in html, raw
    assert re.findall(r'<a href="([^"]*)"', html) == ["https://ex.example/p?a=1&amp;b=2"]
    for text in (body.replace(marker("r1e2p3o4r5t6"), ""), title):
        assert not re.search(r"[@#]\w", text)  # no mention, no issue reference
        assert not any(c in text for c in CONTROLS)
    assert body.endswith(marker("r1e2p3o4r5t6")) and "\n" not in title
    assert body.count("<!--") == 1 and issue["labels"] == ["listener", "listener-spike"]


def test_webhook_strings_are_stripped_of_controls() -> None:
    payload = report_payload(hostile_report(), "2026-11-20T12:00:00Z", 4000, True)
    assert not any(c in s for s in strings(payload) for c in CONTROLS)
    assert payload["examples"][0]["post"]["url"] is None  # javascript: is no link
    json.dumps(payload).encode("ascii")  # what the sink signs and sends


# -- size limits ------------------------------------------------------------------------------


def test_a_huge_report_fits_every_target() -> None:
    report = huge_report()
    fields = jira_fields(report)
    assert adf_size(fields["description"]) <= DESCRIPTION_MAX and valid_adf(fields["description"])
    quotes = [n for n in walk(fields["description"]) if n["type"] == "blockquote"]
    assert len(quotes) == 10  # at most ten example posts, each shortened to fit
    assert 0 < len(quotes[0]["content"][0]["content"][0]["text"]) < EXAMPLE_TEXT_MAX
    issue = github_issue(report)
    assert len(issue["body"]) <= BODY_MAX and len(issue["title"]) <= 256
    assert issue["body"].endswith(marker("r1e2p3o4r5t6"))
    assert len(zendesk_ticket(report)["comment"]["body"]) < 25_000
    text = report_text(report)
    assert len(text) < 50_000 and "… and 40 more posts, not shown here." in text
    assert len(email_sink().compose(report).as_bytes()) < 200_000


# -- nothing but the basics -------------------------------------------------------------------


def test_a_report_without_examples_terms_or_chart_renders_everywhere() -> None:
    report = bare_report()
    text = report_text(report)
    assert "Posts to read first" not in text and "Top terms" not in text
    assert "- Window: 2026-11-20 11:00–12:00 UTC" in text and "- Alert id: r1e2p3o4r5t6" in text
    fields = jira_fields(report)
    assert valid_adf(fields["description"]) and fields["summary"].endswith("negative posts")
    assert "Posts to read first" not in github_issue(report)["body"]
    ticket = zendesk_ticket(report)
    assert ticket["tags"] == ["listener", "listener-spike", "acme-spikes"]
    mail = email_sink().compose(report)
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    payload = report_payload(report, "now", 100, include_chart=True)
    assert payload["examples"] == [] and "chart_png" not in payload


@pytest.mark.parametrize(("kind", "label"), [("digest", "Digest"), ("held", "Held alerts"),
                                             ("odd kind!", "Odd kind!")])
def test_kind_names_the_report_and_its_labels(kind: str, label: str) -> None:
    report = make_report(kind=kind, title="")
    assert report_text(report).startswith(f"[!] {label}: acme-spikes")
    slug = re.sub(r"[^a-z0-9]+", "-", kind).strip("-")
    assert jira_fields(report)["labels"][-1] == f"listener-{slug}"
    assert zendesk_ticket(report)["tags"][1] == f"listener-{slug}"
