"""GitHub issue title and Markdown body for an alert; pure functions, no I/O.

GitHub-flavoured Markdown gives a post many ways to act: ``@user`` and ``@org/team`` notify
people, ``#123`` and ``owner/repo#1`` cross-reference other issues, ``[x](javascript:…)`` and
bare ``https://…`` make links, ``![](http://evil/pixel)`` loads a tracking image, ``<details>``
and other HTML change the page, ``- [ ]`` makes task lists. So untrusted text never reaches the
body as Markdown:

- the post text goes into a fenced code block whose fence is longer than any backtick run in the
  text (the text cannot close it); inside, nothing is parsed: no link, image, HTML, mention,
  reference or task list;
- every other untrusted value (author, brand, platform, rules, sentiment) goes into an inline
  code span built the same way;
- ``@`` and ``#`` followed by a word character also get a zero-width joiner after them
  (``@​user``), in the title too, where code spans do not exist: defence in depth, no notification
  even if a value ever escaped its span;
- the only link is ours, to a URL that :func:`alerts.render.common.safe_url` accepted, in ``<…>`` form.

The body ends with the hidden marker ``<!-- listener:ALERT_ID -->``: the sink finds an issue that
an earlier, ambiguous attempt created by looking for it at the *end* of a body (post text quoting
a marker sits inside the code block, never last). Title ≤ 256 and body ≤ 65,536 characters are
GitHub's limits; both are kept well below.

GitHub issue title and Markdown body for a report (spike, digest, held alerts); pure functions.

The defences of :mod:`alerts.render.github` apply unchanged: prose (title, summary, fact labels)
goes through :func:`~alerts.render.github.md_text` (every Markdown character escaped, mentions
and references neutralised), fact values sit in code spans and each example's text in its own
fenced block, whose fence the text cannot close; the only links are the example posts' URLs that
:func:`alerts.render.common.safe_url` accepted and an incident's queue link (our config, checked by
:func:`alerts.render.common.config_url`). The body ends with the same hidden marker as a post alert's,
so the sink's retry lookup (``attempt > 1``) finds an earlier report issue the same way; an
incident update's comment (:func:`report_comment`) ends with its own.
"""

from __future__ import annotations

import re

from alerts.render.common import (
    ELLIPSIS,
    LANGUAGE_MAX,
    alert_facts,
    excerpt,
    headline,
    is_alarming,
    safe_url,
    strip_controls,
)
from alerts.render.text import (
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
from listener.core.models import AlertMessage, ReportMessage

TITLE_MAX = 200  # GitHub: 256
BODY_MAX = 60_000  # GitHub: 65,536 characters
TEXT_LINES_MAX = 200
ZWJ = "\u200d"
_PINGS = re.compile(r"([@#])(?=\w)")
_BACKTICKS = re.compile(r"`+")
_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


def neutralise(text: str) -> str:
    """``@user``/``#12`` → ``@\u200duser``/``#\u200d12``: still readable, never a mention/ref."""
    return _PINGS.sub(lambda m: m.group(1) + ZWJ, text)


def md_text(value: str) -> str:
    """Untrusted text as literal Markdown prose, for places where a code span would be clumsy.

    CommonMark lets any ASCII punctuation be backslash-escaped, and an escaped character is
    never markup: with all of them escaped no link, image, emphasis, HTML, heading, list, table
    or ``<…>``/``www.``/``https://`` autolink can start. ``@``/``#`` are neutralised first.
    Callers pass one line (newlines would start new blocks).
    """
    return _MD_PUNCTUATION.sub(r"\\\1", neutralise(value))


def marker_key(alert_id: str) -> str:
    """``listener:<alert id>``, with anything but ``[A-Za-z0-9_-]`` replaced (ids are hex)."""
    return f"listener:{_UNSAFE_ID.sub('_', alert_id)[:200]}"


def footer(alert_id: str) -> list[str]:
    """The closing lines of every issue we open: why the hidden marker is there, then it."""
    return [
        "<sub>Created by listener. The hidden marker below lets it find this issue again when a "
        "delivery is retried: please keep it.</sub>",
        "",
        marker(alert_id),
    ]


def marker(alert_id: str) -> str:
    """The hidden HTML comment that identifies our issue; the id cannot end the comment."""
    return f"<!-- {marker_key(alert_id)} -->"


def has_marker(body: str | None, alert_id: str) -> bool:
    """True when ``body`` ends with this alert's marker (as :func:`body` writes it)."""
    return isinstance(body, str) and body.rstrip().endswith(marker(alert_id))


def _fence_for(text: str, minimum: int) -> str:
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    return "`" * max(minimum, longest + 1)


def code_span(value: str | None, limit: int = 200) -> str:
    """An inline code span of the cleaned value; nothing inside it is Markdown."""
    text = neutralise(excerpt(strip_controls(value or ""), limit))
    if not text:
        return "(none)"
    fence = _fence_for(text, 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""  # CommonMark strips these
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(text: str, limit: int) -> str:
    """The post as a fenced block, line breaks kept, cut to ``limit`` characters in all."""
    lines: list[str] = []
    used = 0
    for raw in strip_controls(text).splitlines():
        line = " ".join(raw.split())
        if not line and (not lines or not lines[-1]):
            continue  # no leading or repeated blank lines
        room = limit - used
        if len(lines) >= TEXT_LINES_MAX or len(line) + 1 > room:
            cut = excerpt(line, room - 1) if len(lines) < TEXT_LINES_MAX else ""
            lines.append(cut if cut.endswith(ELLIPSIS) else ELLIPSIS)
            break
        lines.append(line)
        used += len(line) + 1
    content = neutralise("\n".join(lines).strip("\n")) or "(no text)"
    fence = _fence_for(content, 3)
    return f"{fence}text\n{content}\n{fence}"


def title(msg: AlertMessage) -> str:
    """``Acme · mastodon: negative 0.91 — <post excerpt>`` (titles have no code spans)."""
    return neutralise(excerpt(strip_controls(headline(msg)), TITLE_MAX))


def body(msg: AlertMessage, text_limit: int) -> str:
    """The issue body; the post excerpt is shortened until the whole body fits BODY_MAX."""
    text = _body(msg, text_limit)
    while len(text) > BODY_MAX and text_limit > 0:  # rare: only with a huge text_limit
        text_limit = max(0, text_limit - (len(text) - BODY_MAX) - 100)
        text = _body(msg, text_limit)
    return text


def _body(msg: AlertMessage, text_limit: int) -> str:
    facts = alert_facts(msg)
    url = safe_url(msg.post.url)
    lines = [
        f"- **Brand:** {code_span(facts.brand)}",
        f"- **Platform:** {code_span(facts.platform, 100)}",
        f"- **Author:** {code_span(facts.author)} ({facts.reach})",
        f"- **Post:** [open the post](<{url}>)" if url else "- **Post:** (no safe link)",
        f"- **Sentiment:** {code_span(facts.sentiment, 100)}",
        f"- **Urgency:** {facts.urgency}",
        f"- **Language:** {code_span(facts.language, LANGUAGE_MAX)}",
        f"- **{facts.rules_label}:** {code_span(facts.rules, 500)}",
        f"- **Priority:** {code_span(facts.priority, 20)}",
        f"- **Posted:** {facts.posted}",
        f"- **Alert id:** {code_span(facts.alert_id)}",
    ]
    lead = "**listener alert**" + (" ⚠️" if is_alarming(msg) else "")
    # before the post and the verdict it casts doubt on; our text, escaped like any prose
    warning = ([f"> ⚠️ **{md_text(facts.language_warning)}**", ""]
               if facts.language_warning is not None else [])
    return "\n".join([
        *warning,
        f"{lead}: a post matched. Post text (verbatim, shown as code):",
        "",
        code_block(msg.post.text, text_limit),
        "",
        *lines,
        "",
        *footer(msg.alert_id),
    ])


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
    return fit(lambda limit: _report_body(msg, limit), len, BODY_MAX, text_limit)


def _report_body(msg: ReportMessage, text_limit: int) -> str:
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
    as an issue body, so the retry finds the comment with :func:`~alerts.render.github.has_marker`.
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
