"""Render a report (spike, digest, held alerts) as an e-mail: subject, text, HTML, inline chart.

The rules of :mod:`alerts.render_email` hold: every untrusted value (title, summary, facts,
terms, example posts) goes through :func:`html.escape` (quotes too) in the HTML part; the only
links are example posts' URLs that :func:`alerts.render.safe_url` accepted and an incident's
queue URL (our config, checked by :func:`alerts.render.config_url`), with
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
other part is bounded by :mod:`alerts.render_report_text`, so a report mail stays under about
``CHART_MAX`` × 4/3 (base64) + 150 KB.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage

from alerts.render_email import SUBJECT_MAX
from alerts.render_report_text import (
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
from listener.core.models import ReportMessage

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
