"""Render an :class:`AlertMessage` as an e-mail: subject line, plain-text body, HTML body.

Everything that comes from a post (text, author, brand, platform, URL) and the rule names is
*untrusted*. In the HTML part every such value goes through :func:`html.escape` (quotes too, so
nothing can leave an attribute), the only link is the post's URL and only when
:func:`alerts.render.common.safe_url` accepts it (http/https with a host), with
``rel="noopener noreferrer"``. No template engine is involved, so ``{{...}}`` stays text. The
subject is a header: control characters are dropped and all whitespace (CR and LF included) is
collapsed, so a brand such as ``"Acme\\r\\nBcc: x@y"`` cannot add a header. Long text is cut with
:func:`alerts.render.common.excerpt` (about 1,000 code points), so a 50k-character post makes a small
mail. Pure functions, no I/O.

Render a report (spike, digest, held alerts) as an e-mail: subject, text, HTML, inline chart.

The rules of :mod:`alerts.render.email` hold: every untrusted value (title, summary, facts,
terms, example posts) goes through :func:`html.escape` (quotes too) in the HTML part; the only
links are example posts' URLs that :func:`alerts.render.common.safe_url` accepted and an incident's
queue URL (our config, checked by :func:`alerts.render.common.config_url`), with
``rel="noopener noreferrer"``; no template engine, so ``{{...}}`` stays text; the subject is one
cleaned line, so nothing in a title can add a header.

A digest's chart (a PNG we drew) is embedded, never linked: the HTML part and the image travel in
one ``multipart/related`` part and ``<img>`` points at the image's ``Content-ID`` (``cid:``),
so mail clients show it without loading anything remote (a remote image would also be a
tracking pixel)::

    multipart/alternative
    ├── text/plain
    └── multipart/related
        ├── text/html    <img src="cid:chart.<alert id>@listener.invalid">
        └── image/png    Content-ID: <chart.<alert id>@listener.invalid>, inline

A chart that is not a PNG or is over :data:`CHART_MAX` bytes is left out, with a note; every
other part is bounded by :mod:`alerts.render.text`, so a report mail stays under about
``CHART_MAX`` × 4/3 (base64) + 150 KB.
"""

from __future__ import annotations

import html
import re
import textwrap
from email.message import EmailMessage

from alerts.render.common import (
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
from alerts.render.text import (
    PLAIN,
    Block,
    Facts,
    Heading,
    Prose,
    Quote,
    clean,
    is_urgent,
    report_blocks,
    report_lines,
    report_title,
    report_view,
)
from listener.core.models import AlertMessage, ReportMessage

SUBJECT_MAX = 200  # code points: readable in a mail list, far below RFC 5322's line limit
SUBJECT_TEXT = 60  # code points of the post shown in the subject
FIELD_MAX = 300
_NO_LINK = "none (missing, or not an http/https link)"


def field_line(text: str, limit: int = FIELD_MAX) -> str:
    """One line of at most ``limit`` code points, without control or bidi characters."""
    return excerpt(strip_controls(text), limit)


def title(msg: AlertMessage) -> str:
    """``Acme · mastodon``, cleaned (callers escape for HTML)."""
    return field_line(f"{brand_name(msg)} · {msg.post.platform}", 150)


def subject_line(prefix: str, msg: AlertMessage) -> str:
    """``[listener] [!] Acme · x: negative 0.91 — first words of the post…``, one line."""
    marker = "[!] " if is_alarming(msg) else ""
    head = f"{prefix} {marker}{title(msg)}: {field_line(sentiment_label(msg), 40)}"
    text = field_line(msg.post.text, SUBJECT_TEXT)
    subject = field_line(f"{head} — {text}" if text else head, SUBJECT_MAX)
    return subject.replace("\r", " ").replace("\n", " ")  # field_line() already did; belt and braces


def fields(msg: AlertMessage) -> list[tuple[str, str]]:
    """Label/value pairs shown in both parts, values cleaned but not escaped."""
    facts = alert_facts(msg)
    return [
        ("Author", f"{field_line(facts.author, 200)} ({facts.reach})"),
        ("Sentiment", field_line(facts.sentiment, 60)),
        ("Urgency", facts.urgency),
        ("Language", field_line(facts.language, LANGUAGE_MAX)),
        (facts.rules_label, field_line(facts.rules, 500)),
        ("Priority", field_line(facts.priority, 20)),
        ("Posted", facts.posted),
        ("Alert id", field_line(facts.alert_id, 100)),
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
    text = field_line(msg.post.text, EXCERPT_CODE_POINTS) or "(no text)"
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
    platform = e(field_line(msg.post.platform, 40))
    link = (f'<a href="{e(url)}" rel="noopener noreferrer" target="_blank">Open on {platform}</a>'
            if url else e(_NO_LINK))
    text = e(field_line(msg.post.text, EXCERPT_CODE_POINTS)) or "<em>(no text)</em>"
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


CHART_MAX = 1_000_000  # bytes; our charts are tens of KB
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CID_DOMAIN = "listener.invalid"  # RFC 2606: a Content-ID names no real host
_NOT_ID = re.compile(r"[^A-Za-z0-9._-]")
_QUOTE_STYLE = "border-left:3px solid #ccc;margin:0 0 12px;padding-left:12px"


def report_subject(prefix: str, msg: ReportMessage, reply: bool = False) -> str:
    """``[listener] [!] Acme: 5× the usual volume``, one line of at most 200 characters;
    ``Re: …`` with ``reply`` (an incident update threaded under its first mail)."""
    head = f"Re: {prefix}" if reply else prefix
    return clean(f"{head} {'[!] ' if is_urgent(msg) else ''}{report_title(msg)}", SUBJECT_MAX)


def chart_png(msg: ReportMessage) -> bytes | None:
    """The chart when it is a PNG of at most CHART_MAX bytes, else None."""
    png = msg.chart_png
    return png if png and png.startswith(PNG_SIGNATURE) and len(png) <= CHART_MAX else None


def chart_cid(alert_id: str) -> str:
    """``chart.<alert id>@listener.invalid``: the same on every retry of the same report."""
    return f"chart.{_NOT_ID.sub('', alert_id)[:64] or 'report'}@{CID_DOMAIN}"


def chart_note(msg: ReportMessage) -> str:
    """What the text part says about the chart ("" when the report has none)."""
    if msg.chart_png is None:
        return ""
    if chart_png(msg) is None:
        return f"(The chart was left out: not a PNG, or over {CHART_MAX:,} bytes.)"
    return "(The chart is in the HTML version of this message.)"


def report_plain(msg: ReportMessage) -> str:
    """The text/plain part: the shared layout, then a word about the chart."""
    note = chart_note(msg)
    return "\n".join([*report_lines(report_view(msg), PLAIN), *(["", note] if note else []), ""])


def report_html(msg: ReportMessage, cid: str | None) -> str:
    """The text/html part; with ``cid``, the chart is shown right after the facts."""
    blocks = report_blocks(report_view(msg))
    parts = [_html(block) for block in blocks]
    if cid is not None:
        chart = f'<p><img src="cid:{_e(cid)}" alt="Chart" style="max-width:100%"></p>'
    else:
        chart = f"<p><em>{_e(chart_note(msg))}</em></p>" if msg.chart_png is not None else ""
    if chart:
        parts.insert(next(i for i, b in enumerate(blocks) if isinstance(b, Facts)) + 1, chart)
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{_e(report_title(msg))}</title></head>\n"
        f'<body style="font-family:sans-serif">\n{body}\n</body></html>\n'
    )


def write_report(mail: EmailMessage, prefix: str, msg: ReportMessage, reply: bool = False) -> None:
    """Give ``mail`` the report's subject (``Re: …`` with ``reply``), text and HTML parts and,
    if usable, the inline chart."""
    png = chart_png(msg)
    cid = chart_cid(msg.alert_id) if png is not None else None
    mail["Subject"] = report_subject(prefix, msg, reply)
    mail.set_content(report_plain(msg))
    mail.add_alternative(report_html(msg, cid), subtype="html")
    if png is not None:
        html_part = next(p for p in mail.iter_parts() if p.get_content_type() == "text/html")
        html_part.add_related(png, maintype="image", subtype="png", cid=f"<{cid}>",
                              disposition="inline", filename="chart.png")


def _html(block: Block) -> str:
    match block:
        case Heading(text, level):  # h2 for the title, h3 sections, h4 posts
            return f"<h{level + 1}>{_e(text)}</h{level + 1}>"
        case Prose(text):
            return f"<p>{_e(text)}</p>"
        case Facts(items):
            rows = "\n".join(
                f'<tr><th align="left" style="padding-right:12px">{_e(f.label)}</th>'
                f"<td>{_link(f.href, f.value) if f.href else _e(f.value)}</td></tr>"
                for f in items
            )
            return f'<table cellpadding="2">\n{rows}\n</table>'
        case Quote(text):
            return f'<blockquote style="{_QUOTE_STYLE}">{_e(text)}</blockquote>'
    raise TypeError(f"unknown block {block!r}")


def _link(href: str, label: str) -> str:
    return f'<a href="{_e(href)}" rel="noopener noreferrer" target="_blank">{_e(label)}</a>'


def _e(text: str) -> str:
    return html.escape(text, quote=True)
