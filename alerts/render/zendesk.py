"""Zendesk ticket subjects, bodies, tags and priorities for post alerts and reports; pure.

Zendesk renders a comment's ``body`` as Markdown and expands ``{{...}}`` placeholders (dynamic
content) in subjects. Every untrusted string (post text, author, brand, a report's title, facts,
terms and example posts) goes through :func:`inert`: control-stripped, whitespace-collapsed, cut
with :func:`alerts.render.common.excerpt`, and defused with a zero-width space after every ``]`` (no
``[x](url)``, ``![](pixel)``, ``[x]: url``), after ``<`` (no raw HTML or ``<url>`` autolinks),
between ``{{`` / ``{%``, and after a leading ``@``; in comment bodies ``*``, ``_``, ``~``,
backticks and backslashes are backslash-escaped (:func:`alerts.render.common.markdown_literal`), so a
customer's ``*text*`` shows as written, not as emphasis. Subjects are plain text: no escapes. The only links are post URLs that
:func:`alerts.render.common.safe_url` accepted, with ``[``/``]`` encoded, and an incident's queue URL
(our config, checked by :func:`alerts.render.common.config_url`). An incident update added to the
first ticket is :func:`update_comment`, ending with the line :func:`comment_marker`.

A report's body is the shared layout of :mod:`alerts.render.text` written with
:data:`ZENDESK`; every part of it is bounded there, so the body stays under 25,000 characters
whatever the report holds.
"""

from __future__ import annotations

import hashlib
import re

from alerts.render.common import (
    LANGUAGE_MAX,
    ZWSP,
    brand_name,
    excerpt,
    language_label,
    language_warning,
    markdown_literal,
    reach_label,
    safe_url,
    sentiment_label,
    strip_controls,
    urgency_label,
)
from alerts.render.text import (
    TextStyle,
    kind_label,
    kind_tag,
    report_lines,
    report_title,
    report_view,
    update_blocks,
)
from listener.core.models import AlertMessage, ReportMessage, to_iso

SUBJECT_MAX = 150
TAG_MAX = 80
_TAG_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")
_PLACEHOLDER = re.compile(r"\{(?=[{%])")
_LEADING_AT = re.compile(r"(?<![\w.])@(?=\w)")
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


# -- post alerts ---------------------------------------------------------------------------


def inert(text: str, limit: int, *, markdown: bool = True) -> str:
    """Untrusted text made plain for Markdown and placeholders, cut to ``limit`` code points.

    A lone surrogate (possible in text decoded from JSON) becomes "?": it cannot be sent as UTF-8.
    ``markdown``: the text goes into a comment body (Markdown), so emphasis characters are
    escaped too; False for subjects and names, which Zendesk shows as plain text.
    """
    cut = excerpt(strip_controls(text), limit).encode("utf-8", "replace").decode("utf-8")
    if markdown:
        cut = markdown_literal(cut)
    cut = cut.replace("]", "]" + ZWSP).replace("<", "<" + ZWSP)
    return _LEADING_AT.sub("@" + ZWSP, _PLACEHOLDER.sub("{" + ZWSP, cut))


def ticket_link(url: str) -> str:
    """A URL that safe_url accepted, with ``[``/``]`` encoded: it cannot close a Markdown link."""
    return url.replace("[", "%5B").replace("]", "%5D")


def zendesk_tag(name: str) -> str:
    """Tag syntax: lower case, a-z 0-9 _ -, no spaces (Zendesk splits tags on spaces)."""
    return _TAG_UNSAFE.sub("_", name.lower()).strip("_-")[:TAG_MAX]


def ticket_subject(msg: AlertMessage) -> str:
    """``Acme · mastodon · negative``, plain text of at most 150 characters."""
    return inert(f"{brand_name(msg)} · {msg.post.platform} · {msg.score.sentiment}", SUBJECT_MAX,
                 markdown=False)


def ticket_priority(priority: str, urgent: bool = False) -> str:
    """Zendesk's low/normal/high; ``urgent`` (a post alert's urgency over the limit) lifts high."""
    priority = priority.lower() if priority.lower() in ("low", "high") else "normal"
    return "urgent" if priority == "high" and urgent else priority


def ticket_body(msg: AlertMessage, limit: int) -> str:
    """The first comment: who posted what where, the model's verdict, the rules, the alert id."""
    post, score = msg.post, msg.score
    url = safe_url(post.url)
    link = ticket_link(url) if url else "(no safe link)"
    text = inert(post.text, limit) or "(no text)"
    author = inert(post.author or "unknown", 200)
    warning = language_warning(msg)
    lines = [
        f"{inert(ticket_subject(msg), SUBJECT_MAX)} — social-listener alert",
        "",
        # before the post and the verdict it casts doubt on; our text, inert like the rest
        *([f"**⚠️ {inert(warning, 200)}**", ""] if warning is not None else []),
        f"Post by {author} ({reach_label(post.author_followers)}) on {inert(post.platform, 40)},"
        f" {to_iso(post.created_at)}:",
        "",
        f"> {text}",
        "",
        f"- Sentiment: {sentiment_label(msg)}",
        f"- Urgency: {urgency_label(score.urgency)}",
        f"- Language: {inert(language_label(msg), LANGUAGE_MAX)}",
        f"- Rules: {inert(', '.join(msg.rules), 500) or '-'}",
        f"- Priority: {inert(msg.priority, 20)}",
        f"- Link: {link}",
        f"- Model: {inert(f'{score.model} {score.model_version}', 200)}",
        f"- Alert id: {msg.alert_id}",
    ]
    return "\n".join(lines)


def requester_for(msg: AlertMessage, domain: str) -> dict[str, str] | None:
    """A stable synthetic end user for the post's author (see :mod:`alerts.sinks.zendesk`)."""
    author = strip_controls(msg.post.author or "").strip()
    if not author:
        return None
    platform = _SLUG_UNSAFE.sub("-", msg.post.platform.lower()).strip("-")[:20] or "social"
    slug = _SLUG_UNSAFE.sub("-", author.lower()).strip("-")[:30] or "user"
    digest = hashlib.sha256(f"{msg.post.platform}\x1f{author}".encode()).hexdigest()[:10]
    name = inert(f"{author} ({msg.post.platform})", 100, markdown=False)
    return {"name": name, "email": f"{platform}-{slug}-{digest}@{domain}"}


# -- reports --------------------------------------------------------------------------------


def _inert(text: str) -> str:
    return inert(text, len(text))  # the view has cut it already


ZENDESK = TextStyle(
    heading=lambda text, level: f"**{_inert(text)}**",
    text=_inert,
    label=lambda label: f"{_inert(label)}:",
    value=_inert,
    link=lambda url, label: ticket_link(url),
    quote=lambda text: "> " + _inert(text),
)


def report_subject(msg: ReportMessage) -> str:
    """The report's title as plain text of at most 150 characters."""
    return inert(report_title(msg), SUBJECT_MAX, markdown=False)


def report_body(msg: ReportMessage, text_limit: int) -> str:
    """The first comment: what kind of report, then the shared layout, inert."""
    lead = f"{kind_label(msg)} report from social-listener"
    return "\n".join([lead, "", *report_lines(report_view(msg, text_limit), ZENDESK)])


def report_tags(msg: ReportMessage) -> list[str]:
    """``listener-spike``, the detector/digest name, and ``brand-<brand>`` when there is one."""
    tags = [kind_tag(msg), zendesk_tag(msg.name)]
    brand = zendesk_tag(msg.brand or "")
    if brand:
        tags.append(f"brand-{brand}"[:TAG_MAX])
    return [tag for tag in tags if tag]


def comment_marker(alert_id: str) -> str:
    """``listener-update:<alert id>``: the last line of an update's comment, a line of its own
    that no cleaned post can produce (quoted posts start with ``>``, facts with ``-``)."""
    return f"listener-update:{_UNSAFE_ID.sub('_', alert_id)[:200]}"


def has_comment_marker(comment: object, alert_id: str) -> bool:
    """True when a listed comment (``body`` or ``plain_body``) has this update's marker line."""
    if not isinstance(comment, dict):
        return False
    marker = comment_marker(alert_id)
    return any(isinstance(text, str) and marker in (line.strip() for line in text.splitlines())
               for text in (comment.get("body"), comment.get("plain_body")))


def update_comment(msg: ReportMessage, text_limit: int) -> str:
    """An incident update as a comment on the ticket of its first message: the title, how many
    reports are new, the queue link and the posts, inert; then the marker line that the retry
    looks for."""
    lines = report_lines(report_view(msg, text_limit), ZENDESK, update_blocks)
    return "\n".join([*lines, "", comment_marker(msg.alert_id)])
