"""Jira issue fields for an alert: a one-line summary and an ADF description; pure functions.

Atlassian Document Format is JSON, not markup: only what is a node or a mark does anything. So
every untrusted string (post text, author, brand, rule names) goes into a plain ``text`` node,
where ``{{code}}``, ``[label|javascript:…]``, ``<script>`` or ``@someone`` are characters, nothing
more. No wiki markup, mention, emoji, smart-link or media node is ever produced; the one mark is
a ``link`` on our own label, with a URL that :func:`alerts.render.safe_url` accepted (http/https).

Jira refuses a description over 32,767 characters (``CONTENT_LIMIT_EXCEEDED``) and a summary over
255 characters or with line breaks; both are cut here, before anything is sent.
"""

from __future__ import annotations

import json
import re
from typing import Any

from alerts.render import (
    LANGUAGE_MAX,
    alert_facts,
    excerpt,
    headline,
    safe_url,
    strip_controls,
)
from alerts.render_report_text import fit
from listener.core.models import AlertMessage

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


