"""Jira issue fields for an alert: a one-line summary and an ADF description; pure functions.

Atlassian Document Format is JSON, not markup: only what is a node or a mark does anything. So
every untrusted string (post text, author, brand, rule names) goes into a plain ``text`` node,
where ``{{code}}``, ``[label|javascript:…]``, ``<script>`` or ``@someone`` are characters, nothing
more. No wiki markup, mention, emoji, smart-link or media node is ever produced; the one mark is
a ``link`` on our own label, with a URL that :func:`alerts.render.common.safe_url` accepted (http/https).

Jira refuses a description over 32,767 characters (``CONTENT_LIMIT_EXCEEDED``) and a summary over
255 characters or with line breaks; both are cut here, before anything is sent.

Jira issue fields for a report (spike, digest, held alerts): summary and ADF description.

As for post alerts (:mod:`alerts.render.jira`), the description is Atlassian Document Format
built from plain ``text`` nodes only, so a title, fact, term or post text such as ``[~admin]``,
``@team``, ``{panel}``, ``[x|javascript:…]`` or ``h1.`` is characters, never wiki markup, a
mention or a smart link. The nodes are headings, paragraphs, bullet lists and block quotes; the
one mark is a ``link`` on our own "Open on <platform>" label, to a URL that
:func:`alerts.render.common.safe_url` accepted, or on "Open the queue", an incident's queue URL (our
config, checked by :func:`alerts.render.common.config_url`). Example texts are shortened until the JSON
fits Jira's limit. An incident update's comment (:func:`report_comment`) is built the same way.
Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from alerts.render.common import (
    LANGUAGE_MAX,
    alert_facts,
    excerpt,
    headline,
    safe_url,
    strip_controls,
)
from alerts.render.text import (
    EXAMPLE_TEXT_MAX,
    Block,
    Facts,
    Heading,
    Layout,
    Prose,
    Quote,
    clean,
    fit,
    is_urgent,
    report_blocks,
    report_title,
    report_view,
    update_blocks,
)
from listener.core.models import AlertMessage, ReportMessage

SUMMARY_MAX = 255  # Jira: "Summary can't exceed 255 characters."
DESCRIPTION_MAX = 32_000  # Jira: 32,767 (CONTENT_LIMIT_EXCEEDED); measured as ADF JSON, headroom
LABEL_PREFIX = "listener-"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


def _clean(value: str | None, limit: int) -> str:
    """Control characters out, whitespace collapsed, cut to ``limit`` code points."""
    return excerpt(strip_controls(value or ""), limit)


def text_node(value: str, href: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if href:
        node["marks"] = [{"type": "link", "attrs": {"href": href}}]
    return node


def paragraph(*nodes: dict[str, Any]) -> dict[str, Any]:
    """ADF forbids empty text nodes: they are dropped here."""
    return {"type": "paragraph", "content": [n for n in nodes if n["text"]]}


def fact_item(label: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "listItem", "content": [paragraph(text_node(f"{label}: "), *nodes)]}


def alert_label(alert_id: str) -> str:
    """Our idempotency label; the alert id is hex already, anything else is made label-safe."""
    return LABEL_PREFIX + _UNSAFE_ID.sub("_", alert_id)[:200]


def summary(msg: AlertMessage) -> str:
    """``Acme · mastodon: negative 0.91 — <post excerpt>``, one line of at most 255."""
    return _clean(headline(msg), SUMMARY_MAX)


def description(msg: AlertMessage, text_limit: int) -> dict[str, Any]:
    """The ADF document; the post excerpt is shortened until the JSON fits DESCRIPTION_MAX."""
    return fit(lambda limit: _description(msg, limit), adf_size, DESCRIPTION_MAX, text_limit)


def adf_size(doc: dict[str, Any]) -> int:
    """Characters of the document as JSON: what Jira's 32,767 limit counts."""
    return len(json.dumps(doc, ensure_ascii=False))


def _description(msg: AlertMessage, text_limit: int) -> dict[str, Any]:
    post, score, facts = msg.post, msg.score, alert_facts(msg)
    intro = f"A {score.sentiment} post matched {facts.rules_label.lower()} {facts.rules}:"
    fact_items = [
        fact_item("Brand", text_node(_clean(facts.brand, 200))),
        fact_item("Platform", text_node(_clean(facts.platform, 100))),
        fact_item("Author", text_node(_clean(facts.author, 200))),
        fact_item("Reach", text_node(facts.reach)),
        fact_item("Sentiment", text_node(_clean(facts.sentiment, 100))),
        fact_item("Urgency", text_node(facts.urgency)),
        fact_item("Language", text_node(_clean(facts.language, LANGUAGE_MAX))),
        fact_item("Priority", text_node(_clean(facts.priority, 20))),
        fact_item("Posted", text_node(facts.posted)),
        fact_item("Alert id", text_node(_clean(facts.alert_id, 200))),
    ]
    url = safe_url(post.url)
    if url is not None:
        link = text_node(f"Open on {_clean(post.platform, 40)}", href=url)
        fact_items.insert(4, fact_item("Link", link))
    # before the post and the verdict it casts doubt on; a plain text node like the rest
    warning = ([paragraph(text_node(f"⚠️ {facts.language_warning}"))]
               if facts.language_warning is not None else [])
    return {
        "type": "doc",
        "version": 1,
        "content": [
            paragraph(text_node(_clean(intro, 600))),
            *warning,
            paragraph(text_node(_clean(post.text, text_limit) or "(no text)")),
            {"type": "bulletList", "content": fact_items},
            paragraph(text_node(
                f"Created by listener. The label {alert_label(msg.alert_id)} lets it find this "
                "issue again when a delivery is retried: please keep it."
            )),
        ],
    }


def report_summary(msg: ReportMessage) -> str:
    """``[!] Acme: 5× the usual volume``, one line of at most 255 characters."""
    return clean(("[!] " if is_urgent(msg) else "") + report_title(msg), SUMMARY_MAX)


def report_description(msg: ReportMessage, text_limit: int = EXAMPLE_TEXT_MAX) -> dict[str, Any]:
    """The ADF document; example texts are shortened until the JSON fits DESCRIPTION_MAX."""
    return fit(lambda limit: _document(msg, limit), adf_size, DESCRIPTION_MAX, text_limit)


def report_comment(msg: ReportMessage, text_limit: int = EXAMPLE_TEXT_MAX) -> dict[str, Any]:
    """An incident update as a comment (ADF) on the issue of its first message: title, how many
    reports are new, the queue link, the posts; it ends with the paragraph of
    :func:`comment_marker`, which the retry looks for. Fitted to DESCRIPTION_MAX as well."""
    return fit(lambda limit: _comment(msg, limit), adf_size, DESCRIPTION_MAX, text_limit)


def comment_marker(alert_id: str) -> str:
    """The last paragraph of an update's comment; it names the update by its alert label."""
    return (f"Added by listener as update {alert_label(alert_id)}; that id lets it find this "
            "comment again when a delivery is retried.")


def has_comment_marker(body: object, alert_id: str) -> bool:
    """True when a comment's ADF body ends with this update's marker paragraph (post texts sit
    in block quotes and list items, never in a last top-level paragraph of their own)."""
    content = body.get("content") if isinstance(body, dict) else None
    last = content[-1] if isinstance(content, list) and content else None
    if not isinstance(last, dict) or last.get("type") != "paragraph":
        return False
    nodes = last.get("content")
    text = "".join(n.get("text", "") for n in nodes if isinstance(n, dict)) \
        if isinstance(nodes, list) else ""
    return text == comment_marker(alert_id)


def _document(msg: ReportMessage, text_limit: int) -> dict[str, Any]:
    content = _content(msg, text_limit, report_blocks)
    content.append(paragraph(text_node(
        f"Created by listener. The label {alert_label(msg.alert_id)} lets it find this issue "
        "again when a delivery is retried: please keep it."
    )))
    return {"type": "doc", "version": 1, "content": content}


def _comment(msg: ReportMessage, text_limit: int) -> dict[str, Any]:
    content = _content(msg, text_limit, update_blocks)
    content.append(paragraph(text_node(comment_marker(msg.alert_id))))
    return {"type": "doc", "version": 1, "content": content}


def _content(msg: ReportMessage, text_limit: int, layout: Layout) -> list[dict[str, Any]]:
    return [_node(block) for block in layout(report_view(msg, text_limit))]


def _node(block: Block) -> dict[str, Any]:
    match block:
        case Heading(text, level):  # h3 for the title, h4 sections, h5 posts
            return {"type": "heading", "attrs": {"level": level + 2},
                    "content": [text_node(text)]}
        case Prose(text):
            return paragraph(text_node(text))
        case Facts(items):
            return {"type": "bulletList", "content": [
                fact_item(f.label, text_node(f.value, href=f.href)) for f in items
            ]}
        case Quote(text):
            return {"type": "blockquote", "content": [paragraph(text_node(text))]}
    raise TypeError(f"unknown block {block!r}")
