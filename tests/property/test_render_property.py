"""Renderers on arbitrary text: nothing a post says can ping, mention or link anywhere.

Every untrusted field of an alert (post text, author, brand, platform, URL, rule names, alert
id) is drawn from arbitrary Unicode mixed with the sequences attackers use. The outputs are then
read the way each destination reads them: Slack's mrkdwn control sequences, the Atlassian
Document Format's node and mark types, GitHub Markdown parsed with markdown-it-py, HTML parsed
with the standard library — and checked against each destination's size limits.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from alerts.render import common as render
from alerts.render import email as render_email
from alerts.render import github as render_github
from alerts.render import jira as render_jira
from listener.core.models import AlertMessage
from tests.alerts.factories import make_alert
from tests.property.strategies import PROPERTY, hostile_text

URLS = st.one_of(st.none(), hostile_text, st.sampled_from([
    "https://example.com/a?b=1&c=2", "https://x.example/s/1|<!channel>", "javascript:alert(1)",
    "https://ok.example/<@U1>", "http://h.example/a b>c", "data:text/html,<b>", "https://",
])).map(lambda u: u if u is None or not u.startswith("/") else "https://x" + u)


@st.composite
def alerts(draw: st.DrawFn) -> AlertMessage:
    return make_alert(
        text=draw(hostile_text), author=draw(st.one_of(st.none(), hostile_text)),
        brand=draw(st.one_of(st.none(), hostile_text)), platform=draw(hostile_text),
        url=draw(URLS), author_followers=draw(st.one_of(st.none(), st.integers(-5, 10**12))),
        rules=tuple(draw(st.lists(hostile_text, max_size=4))),
        alert_id=draw(st.one_of(st.just("a1b2c3d4e5f6"), hostile_text)),
        priority=draw(st.sampled_from(["low", "normal", "high"])),
    )


# -- Slack ---------------------------------------------------------------------------------

BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload["text"]]
    for block in payload["blocks"]:
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if part:
                texts.append(part["text"])
    return texts


@PROPERTY
@given(alerts())
def test_slack_message_has_no_live_control_sequence_and_fits(msg: AlertMessage) -> None:
    payload = render.slack_message(msg)
    url = render.safe_url(msg.post.url)
    ours = url.replace("&", "&amp;") if url else None
    for text in mrkdwn_texts(payload):
        if ours is not None:  # our one link: <url|Open on platform>, url percent-encoded
            text = text.replace(f"<{ours}|", "")
        assert "<" not in text, text  # every control sequence starts with "<"
        assert not BROADCAST.search(text), text
    if ours is not None:
        assert not re.search(r"[|<>\s]", ours)
    blocks = payload["blocks"]
    assert len(blocks) <= 50 and render.payload_size(payload) <= 13_000
    header = blocks[0]["text"]["text"]
    assert 0 < len(header) <= render.HEADER_MAX
    for block in blocks[1:]:
        if "text" in block:
            assert len(block["text"]["text"]) <= render.SECTION_MAX
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= render.FIELD_MAX for f in block.get("fields", []))
    assert len(payload["text"]) <= render.FALLBACK_MAX


# -- Jira ----------------------------------------------------------------------------------

ADF_NODES = {"doc", "paragraph", "text", "bulletList", "listItem"}


def adf_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("content", []) for n in adf_nodes(child))]


@PROPERTY
@given(alerts())
def test_jira_fields_are_plain_text_nodes_with_only_our_link(msg: AlertMessage) -> None:
    summary = render_jira.summary(msg)
    assert len(summary) <= render_jira.SUMMARY_MAX and not re.search(r"[\r\n]", summary)
    doc = render_jira.description(msg, 1000)
    assert render_jira.adf_size(doc) <= render_jira.DESCRIPTION_MAX
    url = render.safe_url(msg.post.url)
    for node in adf_nodes(doc):
        assert node["type"] in ADF_NODES  # no mention, emoji, inlineCard, media …
        for mark in node.get("marks", []):
            assert mark == {"type": "link", "attrs": {"href": url}}
        if node["type"] == "text":
            assert node["text"]  # ADF refuses empty text nodes
    json.dumps(doc)  # plain JSON all the way down


# -- GitHub --------------------------------------------------------------------------------

# GitHub turns these into mentions, references and links wherever Markdown text is parsed
LIVE_IN_TEXT = re.compile(r"[@#]\w|://|www\.", re.IGNORECASE)
PINGS = re.compile(r"[@#]\w")  # titles are not Markdown, but mentions and #refs work there too
# CommonMark plus GitHub's tables and strikethrough; GitHub's extended autolinks (bare URLs) are
# caught by LIVE_IN_TEXT on the text tokens, since every one of them would be a live link
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def inline_tokens(markdown: str) -> list[Any]:
    tokens = MARKDOWN.parse(markdown)
    return [t for block in tokens for t in [block, *(block.children or [])]]


@PROPERTY
@given(alerts())
def test_github_issue_has_no_mention_reference_image_html_or_foreign_link(
    msg: AlertMessage,
) -> None:
    title = render_github.title(msg)
    assert len(title) <= 256 and not PINGS.search(title) and "\n" not in title
    body = render_github.body(msg, 1000)
    assert len(body) <= render_github.BODY_MAX
    assert render_github.has_marker(body, msg.alert_id)
    url = render.safe_url(msg.post.url)
    for token in inline_tokens(body):
        assert token.type != "image", token
        if token.type == "html_inline":
            assert token.content in ("<sub>", "</sub>")  # our footnote, nothing from the post
        if token.type == "html_block":
            assert token.content.strip() == render_github.marker(msg.alert_id)
        if token.type == "link_open":
            assert url is not None and token.attrs["href"] == MARKDOWN.normalizeLink(url)
        if token.type == "text":
            assert not LIVE_IN_TEXT.search(token.content), token.content


# -- e-mail --------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@PROPERTY
@given(alerts(), st.sampled_from(["[listener]", "", "[a\r\nBcc: x@y]"]))
def test_email_has_one_safe_link_no_markup_and_a_one_line_subject(
    msg: AlertMessage, prefix: str,
) -> None:
    subject = render_email.subject_line(prefix, msg)
    assert not re.search(r"[\r\n]", subject) and len(subject) <= 2 * render_email.SUBJECT_MAX
    parser = _Tags()
    parser.feed(render_email.html_body(msg))
    names = {tag for tag, _ in parser.tags}
    assert names <= {"html", "head", "meta", "title", "body", "h2", "blockquote", "table", "tr",
                     "th", "td", "a", "em"}
    links = [attrs for tag, attrs in parser.tags if tag == "a"]
    url = render.safe_url(msg.post.url)
    assert [a["href"] for a in links] == ([url] if url else [])
    render_email.plain_body(msg)
