"""Render an :class:`AlertMessage` as an e-mail: subject line, plain-text body, HTML body.

Everything that comes from a post (text, author, brand, platform, URL) and the rule names is
*untrusted*. In the HTML part every such value goes through :func:`html.escape` (quotes too, so
nothing can leave an attribute), the only link is the post's URL and only when
:func:`alerts.render.safe_url` accepts it (http/https with a host), with
``rel="noopener noreferrer"``. No template engine is involved, so ``{{...}}`` stays text. The
subject is a header: control characters are dropped and all whitespace (CR and LF included) is
collapsed, so a brand such as ``"Acme\\r\\nBcc: x@y"`` cannot add a header. Long text is cut with
:func:`alerts.render.excerpt` (about 1,000 code points), so a 50k-character post makes a small
mail. Pure functions, no I/O.
"""

from __future__ import annotations

import html
import textwrap

from alerts.render import (
    EXCERPT_CODE_POINTS,
    LANGUAGE_MAX,
    alert_facts,
    brand_name,
    excerpt,
    is_alarming,
    safe_url,
    sentiment_label,
    strip_controls,
)
from listener.core.models import AlertMessage

SUBJECT_MAX = 200  # code points: readable in a mail list, far below RFC 5322's line limit
SUBJECT_TEXT = 60  # code points of the post shown in the subject
FIELD_MAX = 300
_NO_LINK = "none (missing, or not an http/https link)"


def clean(text: str, limit: int = FIELD_MAX) -> str:
    """One line of at most ``limit`` code points, without control or bidi characters."""
    return excerpt(strip_controls(text), limit)


def title(msg: AlertMessage) -> str:
    """``Acme · mastodon``, cleaned (callers escape for HTML)."""
    return clean(f"{brand_name(msg)} · {msg.post.platform}", 150)


def subject_line(prefix: str, msg: AlertMessage) -> str:
    """``[listener] [!] Acme · x: negative 0.91 — first words of the post…``, one line."""
    marker = "[!] " if is_alarming(msg) else ""
    head = f"{prefix} {marker}{title(msg)}: {clean(sentiment_label(msg), 40)}"
    text = clean(msg.post.text, SUBJECT_TEXT)
    subject = clean(f"{head} — {text}" if text else head, SUBJECT_MAX)
    return subject.replace("\r", " ").replace("\n", " ")  # clean() already did; belt and braces


def fields(msg: AlertMessage) -> list[tuple[str, str]]:
    """Label/value pairs shown in both parts, values cleaned but not escaped."""
    facts = alert_facts(msg)
    return [
        ("Author", f"{clean(facts.author, 200)} ({facts.reach})"),
        ("Sentiment", clean(facts.sentiment, 60)),
        ("Urgency", facts.urgency),
        ("Language", clean(facts.language, LANGUAGE_MAX)),
        (facts.rules_label, clean(facts.rules, 500)),
        ("Priority", clean(facts.priority, 20)),
        ("Posted", facts.posted),
        ("Alert id", clean(facts.alert_id, 100)),
    ]


def plain_body(msg: AlertMessage) -> str:
    """The text/plain part: a header line, the fields, the link, the quoted excerpt."""
    marker = "[!] " if is_alarming(msg) else ""
    lines = [f"{marker}{title(msg)}", ""]
    warning = alert_facts(msg).language_warning
    if warning is not None:  # before the verdict it casts doubt on
        lines += [f"[!] {warning}", ""]
    lines += [f"{label}: {value}" for label, value in fields(msg)]
    lines.append(f"Link: {safe_url(msg.post.url) or _NO_LINK}")
    text = clean(msg.post.text, EXCERPT_CODE_POINTS) or "(no text)"
    quoted = textwrap.fill(text, 76, initial_indent="> ", subsequent_indent="> ",
                           break_long_words=True, break_on_hyphens=False)
    lines += ["", "Post:", quoted, ""]
    return "\n".join(lines)


def html_body(msg: AlertMessage) -> str:
    """The text/html part: every untrusted value escaped, one optional safe link."""
    e = _escape
    marker = "&#9888;&#65039; " if is_alarming(msg) else ""
    rows = "\n".join(
        f'<tr><th align="left" style="padding-right:12px">{e(label)}</th><td>{e(value)}</td></tr>'
        for label, value in fields(msg)
    )
    url = safe_url(msg.post.url)
    platform = e(clean(msg.post.platform, 40))
    link = (f'<a href="{e(url)}" rel="noopener noreferrer" target="_blank">Open on {platform}</a>'
            if url else e(_NO_LINK))
    text = e(clean(msg.post.text, EXCERPT_CODE_POINTS)) or "<em>(no text)</em>"
    warning = alert_facts(msg).language_warning
    notice = (f'<p style="color:#b00000"><strong>&#9888;&#65039; {e(warning)}</strong></p>\n'
              if warning is not None else "")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{e(title(msg))}</title></head>\n"
        '<body style="font-family:sans-serif">\n'
        f"<h2>{marker}{e(title(msg))}</h2>\n{notice}"
        '<blockquote style="border-left:3px solid #ccc;margin:0 0 12px;padding-left:12px">'
        f"{text}</blockquote>\n"
        f'<table cellpadding="2">\n{rows}\n<tr><th align="left">Link</th><td>{link}</td></tr>\n'
        "</table>\n</body></html>\n"
    )


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
