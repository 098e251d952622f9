"""Slack Block Kit for a :class:`ReportMessage` (a spike, a digest, alerts held over quiet hours).

Pure functions, no I/O, Slack only: e-mail and ticket sinks render reports in their own modules.
Everything a report carries can be untrusted: its facts, terms and title come from posts and
configured names, its examples *are* posts. So every string goes through
:func:`alerts.render.common.fit_escaped` (``&``, ``<``, ``>`` escaped, ``@channel`` defused, cut to a size
Slack accepts) and links through :func:`alerts.render.common.safe_url`; an incident's queue URL (our
config, ``numbers["queue_url"]``) is the one other link, once :func:`alerts.render.common.config_url`
accepted it.

Sizes: at most 12 blocks (header, summary, facts, terms, divider, example heading, five examples,
context), each part cut to a budget (below), so the block JSON stays under ~12,000 characters
whatever the report holds: below Slack's 50 blocks and the ~13,000 characters where
``msg_blocks_too_long`` starts (PLATFORMS.md).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from alerts.render.common import (
    FALLBACK_MAX,
    HEADER_MAX,
    LANGUAGE_MAX,
    config_url,
    escape_mrkdwn,
    fit_escaped,
    language_label,
    language_warning,
    safe_url,
    sentiment_label,
    urgency_label,
)
from alerts.render.common import slack_message as slack_alert
from listener.core.models import AlertMessage, Post, ReportMessage, Score

MAX_FACTS = 10  # a section holds at most 10 fields
MAX_TERMS = 20
MAX_EXAMPLES = 5
# Characters (escaped) of each part: together they stay under ~12,000 characters of JSON.
SUMMARY_MAX = 700
FACT_LABEL_MAX, FACT_VALUE_MAX = 60, 200
TERM_MAX = 40
EXAMPLE_TEXT, EXAMPLE_TEXT_MAX = 280, 500  # code points of an example post; its escaped size
EXAMPLE_URL_MAX = 300  # a longer link is left out of an example (the alert carries it whole)
KIND_LABELS = {"spike": "Spike", "digest": "Digest", "held": "Held over quiet hours",
               "incident": "Incident", "incident_update": "Incident update"}
QUEUE_LINK = "Open the queue"
CHART_IN_THREAD = "chart: in the thread"
CHART_NOT_ATTACHED = "chart: see the e-mail digest or use a bot token"


def slack_payload(message: AlertMessage | ReportMessage, chart_note: str = "") -> dict[str, Any]:
    """The message for either kind: ``{"text": fallback, "blocks": [...]}``."""
    if isinstance(message, ReportMessage):
        return slack_report(message, chart_note)
    return slack_alert(message)


def slack_report(report: ReportMessage, chart_note: str = "") -> dict[str, Any]:
    """A report as Block Kit; ``chart_note`` says where the chart is, when the report has one."""
    blocks = [_header(report)]
    if report.summary.strip():
        blocks.append(_section(fit_escaped(report.summary, SUMMARY_MAX, limit=SUMMARY_MAX)))
    if report.facts or _queue(report):
        blocks.append(_facts(report))
    if report.terms:
        terms = [fit_escaped(t, TERM_MAX, limit=TERM_MAX) for t in report.terms[:MAX_TERMS]]
        blocks.append(_section("*Top terms*\n" + " · ".join(t for t in terms if t)))
    examples = report.examples[:MAX_EXAMPLES]
    if examples:
        blocks += [{"type": "divider"}, _section(f"*Example posts* ({len(examples)})")]
        blocks += [_example(report, post, score) for post, score in examples]
    blocks.append(_context(report, chart_note if report.chart_png else ""))
    return {"text": report_fallback(report), "blocks": blocks}


def report_fallback(report: ReportMessage) -> str:
    """The notification / screen-reader text: title and summary."""
    head = f"{'⚠️ ' if _alarming(report) else ''}{report.title}"
    text = f"{head}: {report.summary}" if report.summary.strip() else head
    return fit_escaped(text, 1000, limit=1000)[:FALLBACK_MAX]


def window_label(report: ReportMessage) -> str:
    """``2026-11-20 11:00 → 2026-11-20 12:00 UTC``: reports always speak UTC."""
    fmt = "%Y-%m-%d %H:%M"
    start, end = report.window_start.astimezone(UTC), report.window_end.astimezone(UTC)
    return f"{start.strftime(fmt)} → {end.strftime(fmt)} UTC"


def _alarming(report: ReportMessage) -> bool:
    return report.kind == "spike" or report.priority.lower() in ("high", "urgent")


def _mrkdwn(text: str) -> dict[str, Any]:
    """``verbatim`` stops Slack from auto-linking names and channels in our (escaped) text."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _header(report: ReportMessage) -> dict[str, Any]:
    marker = "⚠️ " if _alarming(report) else ""
    title = fit_escaped(report.title, HEADER_MAX - len(marker), limit=HEADER_MAX) or "Report"
    return {"type": "header", "text": {"type": "plain_text", "text": marker + title}}


def _queue(report: ReportMessage) -> str | None:
    """The dashboard's queue URL (our config: ``numbers["queue_url"]``) when it is a clean
    http(s) link, else None."""
    numbers = report.numbers if isinstance(report.numbers, dict) else {}
    return config_url(numbers.get("queue_url"))


def _facts(report: ReportMessage) -> dict[str, Any]:
    """Up to ten ``*label*\\nvalue`` fields; a report with more says how many are left out.

    The fact carrying the queue URL (an incident's "Queue") is the one field that links,
    ``<url|Open the queue>``, to a URL :func:`alerts.render.common.config_url` accepted; a report whose
    facts do not carry it gets the link as a field of its own, first. Every other value is
    escaped text.
    """
    queue = _queue(report)
    raw = report.numbers.get("queue_url") if queue else None
    facts: list[tuple[str, str | None]] = [  # None: the queue link
        (label, None if queue and isinstance(value, str) and value.strip() == raw else value)
        for label, value in report.facts
    ]
    if queue and all(value is not None for _, value in facts):
        facts.insert(0, ("Queue", None))
    shown = facts[:MAX_FACTS]
    left_out = len(facts) - len(shown)
    if left_out:
        shown[-1] = ("More", f"{left_out + 1} more facts in the e-mail or webhook report")
    fields = [
        _mrkdwn(f"*{fit_escaped(label, FACT_LABEL_MAX, limit=FACT_LABEL_MAX)}*\n"
                + (fit_escaped(value, FACT_VALUE_MAX, limit=FACT_VALUE_MAX) if value is not None
                   else _link(queue or "", QUEUE_LINK)))
        for label, value in shown
    ]
    return {"type": "section", "fields": fields}


def _link(url: str, label: str) -> str:
    """``<url|label>``: a URL that config_url accepted (``|<>`` encoded), ``&`` as ``&amp;``."""
    return f"<{url.replace('&', '&amp;')}|{label}>"


def _example(report: ReportMessage, post: Post, score: Score) -> dict[str, Any]:
    """``*<url|platform>* · author · negative 0.91 · urgency high (0.83) · language es``, a
    warning when no model understands the post's language, the quoted text."""
    verdict = AlertMessage(report.alert_id, report.rules, report.destination, post, score)
    platform = fit_escaped(post.platform, 40, limit=40) or "post"
    url = safe_url(post.url)
    link = url.replace("&", "&amp;") if url else ""
    where = f"<{link}|{platform}>" if link and len(link) <= EXAMPLE_URL_MAX else platform
    author = fit_escaped(post.author or "unknown", 60, limit=60)
    language = fit_escaped(language_label(verdict), LANGUAGE_MAX, limit=LANGUAGE_MAX)
    head = (f"*{where}* · {author} · {sentiment_label(verdict)} · "
            f"urgency {urgency_label(score.urgency)} · language {language}")
    warning = language_warning(verdict)
    if warning is not None:
        head += f"\n⚠️ *{escape_mrkdwn(warning)}*"
    body = fit_escaped(post.text, EXAMPLE_TEXT_MAX, limit=EXAMPLE_TEXT) or "_(no text)_"
    return _section(f"{head}\n> {body}")


def _context(report: ReportMessage, chart_note: str) -> dict[str, Any]:
    kind = KIND_LABELS.get(report.kind, report.kind)
    parts = [f"{fit_escaped(kind, 40, limit=40)} `{fit_escaped(report.name, 100, limit=100)}`"]
    scope = " · ".join(fit_escaped(s, 100, limit=100) for s in (report.brand, report.source) if s)
    if scope:
        parts.append(scope)
    parts += [window_label(report), f"report `{fit_escaped(report.alert_id, 64, limit=64)}`"]
    if chart_note:
        parts.append(chart_note)
    return {"type": "context", "elements": [_mrkdwn(" · ".join(parts))]}
