"""Jira issue fields for a report (spike, digest, held alerts): summary and ADF description.

As for post alerts (:mod:`alerts.render_jira`), the description is Atlassian Document Format
built from plain ``text`` nodes only, so a title, fact, term or post text such as ``[~admin]``,
``@team``, ``{panel}``, ``[x|javascript:…]`` or ``h1.`` is characters, never wiki markup, a
mention or a smart link. The nodes are headings, paragraphs, bullet lists and block quotes; the
one mark is a ``link`` on our own "Open on <platform>" label, to a URL that
:func:`alerts.render.safe_url` accepted, or on "Open the queue", an incident's queue URL (our
config, checked by :func:`alerts.render.config_url`). Example texts are shortened until the JSON
fits Jira's limit. An incident update's comment (:func:`report_comment`) is built the same way.
Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

from alerts.render_jira import (
    DESCRIPTION_MAX,
    SUMMARY_MAX,
    adf_size,
    alert_label,
    fact_item,
    paragraph,
    text_node,
)
from alerts.render_report_text import (
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
from listener.core.models import ReportMessage


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
