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

from alerts.render import alert_facts, excerpt, headline, safe_url, strip_controls
from listener.models import AlertMessage

SUMMARY_MAX = 255  # Jira: "Summary can't exceed 255 characters."
DESCRIPTION_MAX = 32_000  # Jira: 32,767 (CONTENT_LIMIT_EXCEEDED); measured as ADF JSON, headroom
LABEL_PREFIX = "listener-"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


def _clean(value: str | None, limit: int) -> str:
    """Control characters out, whitespace collapsed, cut to ``limit`` code points."""
    return excerpt(strip_controls(value or ""), limit)


def _text(value: str, href: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if href:
        node["marks"] = [{"type": "link", "attrs": {"href": href}}]
    return node


def _paragraph(*nodes: dict[str, Any]) -> dict[str, Any]:
    """ADF forbids empty text nodes: they are dropped here."""
    return {"type": "paragraph", "content": [n for n in nodes if n["text"]]}


def _fact(label: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "listItem", "content": [_paragraph(_text(f"{label}: "), *nodes)]}


def alert_label(alert_id: str) -> str:
    """Our idempotency label; the alert id is hex already, anything else is made label-safe."""
    return LABEL_PREFIX + _UNSAFE_ID.sub("_", alert_id)[:200]


def summary(msg: AlertMessage) -> str:
    """``Acme · mastodon: negative 0.91 — <post excerpt>``, one line of at most 255."""
    return _clean(headline(msg), SUMMARY_MAX)


def description(msg: AlertMessage, text_limit: int) -> dict[str, Any]:
    """The ADF document; the post excerpt is shortened until the JSON fits DESCRIPTION_MAX."""
    doc = _description(msg, text_limit)
    if _size(doc) <= DESCRIPTION_MAX:
        return doc
    low, high = 0, text_limit
    while low < high:  # longest excerpt that fits; JSON escaping makes size non-linear
        mid = (low + high + 1) // 2
        if _size(_description(msg, mid)) <= DESCRIPTION_MAX:
            low = mid
        else:
            high = mid - 1
    return _description(msg, low)


def _size(doc: dict[str, Any]) -> int:
    return len(json.dumps(doc, ensure_ascii=False))


def _description(msg: AlertMessage, text_limit: int) -> dict[str, Any]:
    post, score, facts = msg.post, msg.score, alert_facts(msg)
    intro = f"A {score.sentiment} post matched {facts.rules_label.lower()} {facts.rules}:"
    fact_items = [
        _fact("Brand", _text(_clean(facts.brand, 200))),
        _fact("Platform", _text(_clean(facts.platform, 100))),
        _fact("Author", _text(_clean(facts.author, 200))),
        _fact("Reach", _text(facts.reach)),
        _fact("Sentiment", _text(_clean(facts.sentiment, 100))),
        _fact("Urgency", _text(facts.urgency)),
        _fact("Priority", _text(_clean(facts.priority, 20))),
        _fact("Posted", _text(facts.posted)),
        _fact("Alert id", _text(_clean(facts.alert_id, 200))),
    ]
    url = safe_url(post.url)
    if url is not None:
        fact_items.insert(4, _fact("Link", _text(f"Open on {_clean(post.platform, 40)}", href=url)))
    return {
        "type": "doc",
        "version": 1,
        "content": [
            _paragraph(_text(_clean(intro, 600))),
            _paragraph(_text(_clean(post.text, text_limit) or "(no text)")),
            {"type": "bulletList", "content": fact_items},
            _paragraph(_text(
                f"Created by listener. The label {alert_label(msg.alert_id)} lets it find this "
                "issue again when a delivery is retried: please keep it."
            )),
        ],
    }


