"""Discord webhook messages for post alerts and reports: one embed each; pure functions, no I/O.

Discord renders Markdown in an embed's title, description and field values, turns ``<@123>``,
``<@&456>`` and ``<#789>`` into mentions, ``@everyone``/``@here`` into broadcasts, and any
``http(s)://`` in text into a clickable link (``[label](url)`` into a masked one). Everything a
post or a report carries is *untrusted*, so every such string goes through :func:`inert`:
control and bidi characters out (:func:`alerts.render.common.strip_controls`), each Markdown
character (``\\ * _ ~ ` | > # - [ ] ( ) <``) backslash-escaped (Discord shows an escaped
character as itself, and an escaped ``<`` ends any mention), a zero-width space after ``@`` (no
broadcast, even where a client ignores ``allowed_mentions``) and inside ``://`` (no autolink).
The sink also sends ``allowed_mentions: {"parse": []}`` with every message, so nothing pings
whatever the text says. The one link in an alert is the embed's ``url`` (the title), set only
when :func:`alerts.render.common.safe_url` accepts the post's URL; a report links each example
post the same way (escaped label, percent-encoded target) and the dashboard's queue (our config,
:func:`alerts.render.text.queue_link`).

Limits (Discord's Execute Webhook reference): title 256, description 4096, at most 25 fields,
field name 256 and value 1024, footer 2048, and 6000 characters in all of a message's embeds; a
message over any of them is refused with HTTP 400, and a refused alert is one nobody sees. Sizes
are counted in UTF-16 code units (:func:`size`), never fewer than Discord counts, and every
piece is cut *after* escaping (:func:`fit`: the longest excerpt whose escaped form fits), so
the whole stays under each limit whatever the post holds.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from alerts.render.common import (
    LANGUAGE_MAX,
    alert_facts,
    fit_escaped,
    is_alarming,
    safe_url,
    strip_controls,
)
from alerts.render.text import (
    EXAMPLE_TEXT_MAX,
    Example,
    Fact,
    ReportView,
    kind_label,
    report_view,
)
from listener.core.models import AlertMessage, ReportMessage

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
TOTAL_MAX = 6000  # all embeds of one message together
CONTENT_MAX = 2000

# Our own budgets, well inside Discord's: an alert's parts add up to < 4,500 characters.
ALERT_TEXT_CODE_POINTS = 1000  # post text shown in an alert (PLATFORMS.md advises ~1000)
ALERT_TEXT_MAX = 2500  # its escaped size
FACT_MAX = 300  # escaped size of one fact's value
RULES_MAX = 500
# A report: title, summary, facts, then example posts in whatever room is left.
SUMMARY_MAX = 1000
FACTS_BUDGET = 2400  # escaped names + values of all fact fields together
EXAMPLES_SHOWN = 5
EXAMPLE_URL_MAX = 300  # a longer link is left out of an example (the post alert carries it whole)

COLOR_ALARM = 0xE74C3C
COLOR_INFO = 0x3498DB
NO_MENTIONS: dict[str, list[str]] = {"parse": []}
"""``allowed_mentions`` of every message: no user, role, @everyone or @here is ever pinged."""

_MARKDOWN = re.compile(r"([\\*_~`|>#\-\[\]()<])")
_AT = re.compile(r"@")
_SCHEME = re.compile(r":(?=//)")
_LINK_UNSAFE = re.compile(r"[()\s<>]")
ZWSP = "\u200b"


def size(text: str) -> int:
    """Length in UTF-16 code units: what a JavaScript limit counts, never less than code points."""
    return len(text.encode("utf-16-le")) // 2


def inert(text: str) -> str:
    """Untrusted text shown exactly as written: no Markdown, no mention, no ping, no link."""
    escaped = _MARKDOWN.sub(r"\\\1", strip_controls(text))
    escaped = _AT.sub("@" + ZWSP, escaped)
    return _SCHEME.sub(":" + ZWSP, escaped)


def fit(text: str, max_size: int, limit: int | None = None) -> str:
    """The inert excerpt of ``text`` (whitespace collapsed, at most ``limit`` code points) whose
    Discord size is at most ``max_size`` (:func:`alerts.render.common.fit_escaped`)."""
    return fit_escaped(text, max_size, max_size if limit is None else limit, inert, size)


def post_url(url: str | None) -> str | None:
    """A post's URL as a link target: accepted by :func:`safe_url` and free of format
    characters (a bidi override or a zero-width space would make it show something else)."""
    target = safe_url(url)
    if target is None or any(unicodedata.category(ch) in ("Cc", "Cf") for ch in target):
        return None
    return target


def link(url: str | None, label: str) -> str | None:
    """``[label](url)`` for a URL that :func:`post_url` accepts (parentheses and spaces
    percent-encoded so that the target cannot end early), else None; ``label`` is escaped."""
    target = post_url(url)
    if target is None or len(target) > EXAMPLE_URL_MAX:
        return None
    target = _LINK_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", target)
    return f"[{inert(label)}]({target})"


def _field(name: str, value: str, max_size: int = FACT_MAX, inline: bool = True) -> dict[str, Any]:
    return {"name": fit(name, 60), "value": fit(value, max_size) or "-", "inline": inline}


def embed_size(embed: dict[str, Any]) -> int:
    """What Discord counts against the 6000 characters: title, description, field names and
    values, footer text, author name."""
    total = size(embed.get("title", "")) + size(embed.get("description", ""))
    total += sum(size(f["name"]) + size(f["value"]) for f in embed.get("fields", []))
    total += size(embed.get("footer", {}).get("text", ""))
    return total + size(embed.get("author", {}).get("name", ""))


def message_size(payload: dict[str, Any]) -> int:
    """Characters of all the message's embeds together (the 6000 limit)."""
    return sum(embed_size(e) for e in payload.get("embeds", []))


# -- post alerts -------------------------------------------------------------------------------


def alert_embed(msg: AlertMessage) -> dict[str, Any]:
    """Title (sentiment, urgency), the post as description, its facts as fields."""
    facts = alert_facts(msg)
    marker = "⚠️ " if is_alarming(msg) else ""
    verdict = fit(f"{facts.sentiment}, urgency {facts.urgency}", 100)
    title = f"{marker}{fit(f'{facts.brand} · {facts.platform}', 120)} — {verdict}"
    text = fit(msg.post.text, ALERT_TEXT_MAX, ALERT_TEXT_CODE_POINTS) or "*(no text)*"
    description = f">>> {text}"
    if facts.language_warning is not None:  # first: it casts doubt on the verdict in the title
        description = f"⚠️ **{inert(facts.language_warning)}**\n\n{description}"
    fields = [
        _field("Brand", facts.brand, 200),
        _field("Platform", facts.platform, 100),
        _field("Author", f"{facts.author} ({facts.reach})", 250),
        _field("Language", facts.language, LANGUAGE_MAX * 2 + 10),
        _field(facts.rules_label, facts.rules, RULES_MAX, inline=False),
        _field("Priority", facts.priority, 40),
    ]
    embed: dict[str, Any] = {
        "title": title[:TITLE_MAX],
        "description": description,
        "color": COLOR_ALARM if marker else COLOR_INFO,
        "fields": fields,
        "footer": {"text": f"alert {strip_controls(facts.alert_id)[:100]} · posted "
                           f"{facts.posted}"},
    }
    url = post_url(msg.post.url)
    if url is not None:
        embed["url"] = url
    return embed


# -- reports -----------------------------------------------------------------------------------


def _fact_value(fact: Fact) -> str:
    if fact.href is not None:
        shown = link(fact.href, fact.value)
        if shown is not None:
            return shown
    return fit(fact.value, FACT_MAX) or "-"


def _report_fields(view: ReportView) -> list[dict[str, Any]]:
    """The facts as fields, within :data:`FACTS_BUDGET` and 25 fields; a last one counts those
    left out."""
    fields: list[dict[str, Any]] = []
    used = 0
    for number, fact in enumerate(view.facts):
        name, value = fit(fact.label, 60) or "-", _fact_value(fact)
        cost = size(name) + size(value)
        if len(fields) == FIELDS_MAX - 1 or used + cost > FACTS_BUDGET:
            left = len(view.facts) - number
            fields.append({"name": "More", "value": f"{left} more facts not shown",
                           "inline": False})
            break
        fields.append({"name": name, "value": value, "inline": True})
        used += cost
    return fields


def _example_head(number: int, total: int, example: Example) -> str:
    """``**Post 1 of 2** · jane on mastodon · negative 0.91 · urgency high (0.83) · es`` and
    the link, all escaped but the link."""
    head = (f"**Post {number} of {total}** · {fit(example.about, 150)} · "
            f"{fit(example.sentiment, 40)} · urgency {fit(example.urgency, 30)} · "
            f"language {fit(example.language, LANGUAGE_MAX * 3)}")
    shown = link(example.url, f"Open on {example.platform}")
    return head + (f"\n{shown}" if shown else "")


def _report_description(view: ReportView, room: int) -> str:
    """The summary, then as many example posts as fit in ``room`` characters, each text cut to
    what is left; then how many were left out."""
    parts = [fit(view.summary, SUMMARY_MAX)] if view.summary else []
    if view.new_reports is not None:
        parts.append(f"**{view.new_reports:,}** new reports since the last message")
    examples = view.examples[:EXAMPLES_SHOWN]
    more = view.more + len(view.examples) - len(examples)
    reserve = 60  # the "… and N more posts" line
    for number, example in enumerate(examples, 1):
        used = size("\n\n".join(parts))
        head = _example_head(number, len(examples), example)
        left = room - reserve - used - size(head) - 10
        if left < 0:
            more += len(examples) - number + 1
            break
        text = fit(example.text, left, EXAMPLE_TEXT_MAX) or "*(no text)*"
        parts.append(f"{head}\n> {text}")
    if more:
        parts.append(f"… and {more} more posts, not shown here.")
    return "\n\n".join(parts)


def report_embed(msg: ReportMessage) -> dict[str, Any]:
    """Title, summary and example posts as description, facts as fields; under 6000 in all."""
    view = report_view(msg)
    marker = "⚠️ " if view.urgent else ""
    title = marker + fit(view.title, TITLE_MAX - 4)
    fields = _report_fields(view)
    footer = f"{kind_label(msg)} · alert {strip_controls(msg.alert_id)[:100]}"
    fixed = size(title) + size(footer) + sum(size(f["name"]) + size(f["value"]) for f in fields)
    room = min(DESCRIPTION_MAX, TOTAL_MAX - fixed - 100)
    embed: dict[str, Any] = {
        "title": title,
        "description": _report_description(view, room),
        "color": COLOR_ALARM if view.urgent else COLOR_INFO,
        "fields": fields,
        "footer": {"text": footer},
    }
    if view.queue_url is not None:
        embed["url"] = view.queue_url
    return embed


def discord_payload(message: AlertMessage | ReportMessage,
                    username: str | None = None) -> dict[str, Any]:
    """The Execute Webhook body: one embed, no mention parsed, the configured ``username``."""
    embed = report_embed(message) if isinstance(message, ReportMessage) else alert_embed(message)
    payload: dict[str, Any] = {"embeds": [embed], "allowed_mentions": NO_MENTIONS}
    if username:
        payload["username"] = username
    return payload
