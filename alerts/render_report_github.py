"""GitHub issue title and Markdown body for a report (spike, digest, held alerts); pure functions.

The defences of :mod:`alerts.render_github` apply unchanged: prose (title, summary, fact labels)
goes through :func:`~alerts.render_github.md_text` (every Markdown character escaped, mentions
and references neutralised), fact values sit in code spans and each example's text in its own
fenced block, whose fence the text cannot close; the only links are the example posts' URLs that
:func:`alerts.render.safe_url` accepted and an incident's queue link (our config, checked by
:func:`alerts.render.config_url`). The body ends with the same hidden marker as a post alert's,
so the sink's retry lookup (``attempt > 1``) finds an earlier report issue the same way; an
incident update's comment (:func:`report_comment`) ends with its own.
"""

from __future__ import annotations

from alerts.render import excerpt
from alerts.render_github import (
    BODY_MAX,
    TITLE_MAX,
    code_block,
    code_span,
    footer,
    marker,
    md_text,
    neutralise,
)
from alerts.render_report_text import (
    EXAMPLE_TEXT_MAX,
    TextStyle,
    fit,
    is_urgent,
    kind_label,
    report_lines,
    report_title,
    report_view,
    update_blocks,
)
from listener.core.models import ReportMessage

_VALUE_MAX = 2000  # the longest fact value (the top terms) is far shorter: nothing is cut here


def _quote(text: str) -> str:
    return code_block(text, len(text) + 1)  # already cut by the view


GITHUB = TextStyle(
    heading=lambda text, level: "#" * (level + 2) + " " + md_text(text),  # ### to #####
    text=md_text,
    label=lambda label: f"**{md_text(label)}:**",
    value=lambda value: code_span(value, _VALUE_MAX),
    link=lambda url, label: f"[{md_text(label)}](<{url}>)",
    quote=_quote,
)


def report_issue_title(msg: ReportMessage) -> str:
    """``[!] Acme: 5× the usual volume`` (titles are not Markdown, but mentions still ping)."""
    return neutralise(excerpt(("[!] " if is_urgent(msg) else "") + report_title(msg), TITLE_MAX))


def report_body(msg: ReportMessage, text_limit: int = EXAMPLE_TEXT_MAX) -> str:
    """The issue body; example texts are shortened until the whole body fits BODY_MAX."""
    return fit(lambda limit: _body(msg, limit), len, BODY_MAX, text_limit)


def _body(msg: ReportMessage, text_limit: int) -> str:
    lead = f"**listener {md_text(kind_label(msg).lower())} report**"
    return "\n".join([
        f"{lead}. Post texts are verbatim, shown as code.",
        "",
        *report_lines(report_view(msg, text_limit), GITHUB),
        "",
        *footer(msg.alert_id),
    ])


def report_comment(msg: ReportMessage, text_limit: int = EXAMPLE_TEXT_MAX) -> str:
    """An incident update as a comment on the issue of its first message: title, how many
    reports are new, the queue link and the posts (fenced), ending with the same hidden marker
    as an issue body, so the retry finds the comment with :func:`~alerts.render_github.has_marker`.
    """
    return fit(lambda limit: _comment(msg, limit), len, BODY_MAX, text_limit)


def _comment(msg: ReportMessage, text_limit: int) -> str:
    return "\n".join([
        "**listener incident update**. Post texts are verbatim, shown as code.",
        "",
        *report_lines(report_view(msg, text_limit), GITHUB, update_blocks),
        "",
        "<sub>Added by listener. The hidden marker below lets it find this comment again when "
        "a delivery is retried: please keep it.</sub>",
        "",
        marker(msg.alert_id),
    ])
