"""What every non-Slack destination shows of a report, cleaned once, in one layout.

A :class:`~listener.core.models.ReportMessage` (a spike, a digest, alerts held over quiet hours) is
about many posts. Everything in it that came from posts or config is *untrusted*: the title, the
summary, fact labels and values, terms, brand, source, and each example's author, text and URL.
:func:`report_view` cleans all of it in one place: control and bidi characters out, whitespace
collapsed, lone surrogates replaced, every piece cut to a fixed size, at most
:data:`EXAMPLES_MAX` example posts, and no URL but one that :func:`alerts.render.common.safe_url`
accepted. So every target starts from bounded, single-line text, and what a report *says*
(which facts, in which order, with which labels) is decided here and nowhere else.

The layout — title, summary, facts (terms among them), then each post to read first with its
text — is :func:`report_blocks`, a short list of headings, prose, fact lists and quotes. Targets
differ only in how they escape and mark those up: :func:`report_lines` writes them as text with
a :class:`TextStyle` each target fills with its own escaping (nothing for a terminal,
:data:`PLAIN`; Zendesk's inert Markdown; GitHub's code spans and fenced blocks), while Jira (ADF
nodes) and the HTML e-mail turn the same blocks into nodes and tags. Pure functions, no I/O.

Incidents (many customers reporting one problem) come as a first report (kind ``incident``) and
updates (``incident_update``). Their ``numbers["queue_url"]``, the dashboard's queue filtered to
the incident, is our config, not a post's: once :func:`alerts.render.common.config_url` accepted it,
it is the one link in a report besides the example posts' own. Where an update is added as a
comment to the ticket or issue of the first message, :func:`update_blocks` is its shorter
layout: title, how many reports are new, the queue link, the posts.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from alerts.render.common import (
    ELLIPSIS,
    LANGUAGE_MAX,
    alert_facts,
    config_url,
    excerpt,
    safe_url,
    strip_controls,
)
from listener.core.models import AlertMessage, Post, ReportMessage, Score, to_iso

# Each part is bounded so that the whole fits the tightest target (Jira: 32,767 characters of
# ADF JSON) even with no example text at all; the example texts then get what room is left.
TITLE_MAX = 200
SUMMARY_MAX = 600
LABEL_MAX = 40
VALUE_MAX = 160
FACTS_MAX = 20  # of the report's own facts; ours (window, brand, …) come on top
TERMS_MAX = 20
TERM_MAX = 40
EXAMPLES_MAX = 10
EXAMPLE_TEXT_MAX = 500  # code points of each example post: a report shows several
KIND_LABELS = {"spike": "Spike", "digest": "Digest", "held": "Held alerts",
               "incident": "Incident", "incident_update": "Incident update"}
NO_LINK = "none (missing, or not an http/https link)"
QUEUE_LABEL = "Open the queue"  # the label of the link to the dashboard's queue
T = TypeVar("T")
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")


def clean(text: str | None, limit: int) -> str:
    """One line of at most ``limit`` code points, no control/bidi characters, valid UTF-8.

    A lone surrogate (possible in text decoded from JSON) cannot be encoded as UTF-8, and an
    HTTP client would fail on it: it becomes "?". Only the first ``4 × limit`` characters are
    looked at (stripping is per character, and a report can quote huge posts): a text that is
    mostly whitespace or control characters shows less, still ending in "…".
    """
    text = text or ""
    if len(text) > 4 * limit + 16:
        text = text[: 4 * limit + 16] + ELLIPSIS
    cut = excerpt(strip_controls(text), limit)
    return cut.encode("utf-8", "replace").decode("utf-8")


def window_label(start: datetime, end: datetime) -> str:
    """``2026-11-20 11:00–12:00 UTC``, or ``2026-11-13 00:00 – 2026-11-20 00:00 UTC``."""
    a, b = to_iso(start), to_iso(end)  # 2026-11-20T11:00:00Z
    if a[:10] == b[:10]:
        return f"{a[:10]} {a[11:16]}–{b[11:16]} UTC"
    return f"{a[:10]} {a[11:16]} – {b[:10]} {b[11:16]} UTC"


def kind_label(msg: ReportMessage) -> str:
    """``Spike``, ``Digest``, ``Held alerts``; another kind is shown cleaned."""
    return KIND_LABELS.get(msg.kind) or clean(msg.kind, 40).capitalize() or "Report"


def kind_tag(msg: ReportMessage) -> str:
    """``listener-spike``: the label/tag that issue trackers and Zendesk file a report under."""
    return "listener-" + (_SLUG_UNSAFE.sub("-", msg.kind.lower()).strip("-")[:40] or "report")


def report_title(msg: ReportMessage) -> str:
    """The title, cleaned; ``Spike: volume`` when the report has none."""
    return clean(msg.title, TITLE_MAX) or clean(f"{kind_label(msg)}: {msg.name}", TITLE_MAX)


def is_urgent(msg: ReportMessage) -> bool:
    """High-priority reports get the same ``[!]`` marker as alarming post alerts."""
    return msg.priority.lower() in ("high", "urgent")


@dataclass(frozen=True)
class Example:
    """One post a human should read first, cleaned (not escaped)."""

    about: str  # "jane on mastodon (1,234 followers)"
    posted: str  # ISO 8601, UTC
    sentiment: str  # "negative 0.91"
    urgency: str  # "high (0.83)"
    platform: str
    url: str | None  # accepted by safe_url, else None
    text: str
    # "es"; "xx — Language not understood by the model: read it yourself" when no model reads it
    language: str = "unknown"


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    href: str | None = None  # the value is the label of a link to this (safe) URL


@dataclass(frozen=True)
class ReportView:
    """A report as every target shows it: cleaned and bounded, not yet escaped."""

    title: str
    urgent: bool
    summary: str
    facts: tuple[Fact, ...]  # the queue link among them, as a Fact with an href
    examples: tuple[Example, ...]
    more: int  # example posts left out (over EXAMPLES_MAX)
    queue_url: str | None = None  # the dashboard's queue (our config), checked by config_url
    new_reports: int | None = None  # an incident update: how many reports came since the last


def queue_link(msg: ReportMessage) -> str | None:
    """The link to the dashboard's queue (``numbers["queue_url"]``, an incident's), if it is a
    clean http(s) URL (:func:`alerts.render.common.config_url`); else None."""
    return config_url(msg.numbers.get("queue_url")) if isinstance(msg.numbers, dict) else None


def new_reports(msg: ReportMessage) -> int | None:
    """How many reports an incident update brings (``numbers["new_post_ids"]``), else None."""
    new = msg.numbers.get("new_post_ids") if isinstance(msg.numbers, dict) else None
    return len(new) if isinstance(new, list) else None


def report_view(msg: ReportMessage, text_limit: int = EXAMPLE_TEXT_MAX) -> ReportView:
    """The view of ``msg``; example texts are cut to ``text_limit`` code points.

    The queue URL is our config, not a post's: the fact that carries it (an incident's "Queue")
    becomes a link labelled "Open the queue", or one is added when no fact carries it. Every
    other fact is text, cleaned like the rest.
    """
    queue = queue_link(msg)
    raw_queue = msg.numbers.get("queue_url") if queue is not None else None
    facts = [Fact("Report", f"{kind_label(msg)} · {clean(msg.name, 100)}"),
             Fact("Window", window_label(msg.window_start, msg.window_end))]
    facts += [Fact(label, clean(value, 100)) for label, value in
              (("Brand", msg.brand), ("Source", msg.source)) if value]
    linked = False
    for label, value in msg.facts[:FACTS_MAX]:
        shown = clean(label, LABEL_MAX) or "-"
        if queue is not None and isinstance(value, str) and value.strip() == raw_queue:
            facts.append(Fact(shown, QUEUE_LABEL, queue))
            linked = True
        else:
            facts.append(Fact(shown, clean(value, VALUE_MAX) or "-"))
    if queue is not None and not linked:
        facts.append(Fact("Queue", QUEUE_LABEL, queue))
    terms = [term for term in (clean(t, TERM_MAX) for t in msg.terms[:TERMS_MAX]) if term]
    if terms:
        facts.append(Fact("Top terms", ", ".join(terms)))
    facts += [Fact("Priority", clean(msg.priority, 20)),
              Fact("Alert id", clean(msg.alert_id, 100))]
    examples = tuple(_example(msg, post, score, text_limit)
                     for post, score in msg.examples[:EXAMPLES_MAX])
    return ReportView(
        title=report_title(msg), urgent=is_urgent(msg), summary=clean(msg.summary, SUMMARY_MAX),
        facts=tuple(facts), examples=examples,
        more=max(0, len(msg.examples) - EXAMPLES_MAX), queue_url=queue,
        new_reports=new_reports(msg),
    )


def _example(msg: ReportMessage, post: Post, score: Score, text_limit: int) -> Example:
    """Labels and formats come from :func:`alerts.render.common.alert_facts`, as for a post alert."""
    facts = alert_facts(AlertMessage(msg.alert_id, msg.rules, msg.destination, post, score))
    url = safe_url(post.url)  # a bidi override or a lone surrogate in it: no link at all
    return Example(
        about=f"{clean(facts.author, 60)} on {clean(facts.platform, 40)}"
        + ("" if post.author_followers is None else f" ({facts.reach})"),
        posted=facts.posted,
        sentiment=clean(facts.sentiment, 40),
        urgency=facts.urgency,
        platform=clean(post.platform, 40),
        url=url if url is not None and clean(url, len(url)) == url else None,
        text=clean(post.text, text_limit),
        language=clean(facts.language, LANGUAGE_MAX) + (
            f" — {facts.language_warning}" if facts.language_warning is not None else ""),
    )


# -- the one layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int  # 1: the title, 2: a section, 3: one example post


@dataclass(frozen=True)
class Prose:
    text: str


@dataclass(frozen=True)
class Facts:
    items: tuple[Fact, ...]


@dataclass(frozen=True)
class Quote:
    text: str  # an example post's text


Block = Heading | Prose | Facts | Quote
Layout = Callable[[ReportView], list[Block]]


def report_blocks(view: ReportView) -> list[Block]:
    """The layout every target renders: title, summary, facts, then each post to read first."""
    blocks: list[Block] = [Heading(("[!] " if view.urgent else "") + view.title, 1)]
    if view.summary:
        blocks.append(Prose(view.summary))
    blocks.append(Facts(view.facts))
    return blocks + _example_blocks(view)


def update_blocks(view: ReportView) -> list[Block]:
    """An incident update as a comment on the ticket or issue of its first message: concise.

    The title, how many reports are new, the link to the queue, then the posts to read first;
    the rest (window, totals, priority) is in the first message and the title.
    """
    blocks: list[Block] = [Heading(("[!] " if view.urgent else "") + view.title, 1)]
    items = [Fact("New reports", f"{view.new_reports:,}")] if view.new_reports is not None else []
    if view.queue_url is not None:
        items.append(Fact("Queue", QUEUE_LABEL, view.queue_url))
    if items:
        blocks.append(Facts(tuple(items)))
    return blocks + _example_blocks(view)


def _example_blocks(view: ReportView) -> list[Block]:
    """A heading, then each post to read first: who, when, the verdict, its link, its text."""
    blocks: list[Block] = []
    if view.examples:
        blocks.append(Heading("Posts to read first", 2))
    for number, example in enumerate(view.examples, 1):
        link = (Fact("Link", f"Open on {example.platform}", example.url) if example.url
                else Fact("Link", NO_LINK))
        blocks += [
            Heading(f"Post {number} of {len(view.examples)}", 3),
            Facts((Fact("Author", example.about), Fact("Posted", example.posted),
                   Fact("Sentiment", example.sentiment), Fact("Urgency", example.urgency),
                   Fact("Language", example.language), link)),
            Quote(example.text or "(no text)"),
        ]
    if view.more:
        blocks.append(Prose(f"… and {view.more} more posts, not shown here."))
    return blocks


@dataclass(frozen=True)
class TextStyle:
    """How one text target writes each part; every function gets cleaned, untrusted text."""

    heading: Callable[[str, int], str]  # text, level
    text: Callable[[str], str]  # prose: the summary, notes
    label: Callable[[str], str]  # a fact's label, with its colon
    value: Callable[[str], str]  # a fact's value
    link: Callable[[str, str], str]  # a URL that safe_url accepted, and its label
    quote: Callable[[str], str]  # an example's text, as a block of lines


def _same(text: str) -> str:
    return text


def _plain_quote(text: str) -> str:
    return textwrap.fill(text, 76, initial_indent="  > ", subsequent_indent="  > ",
                         break_long_words=True, break_on_hyphens=False)


PLAIN = TextStyle(heading=lambda text, level: text, text=_same,
                  label=lambda label: f"{label}:", value=_same,
                  link=lambda url, label: url, quote=_plain_quote)
"""Terminals and the text/plain part of e-mails: the view is already clean, nothing to escape."""


def report_lines(view: ReportView, style: TextStyle, layout: Layout | None = None) -> list[str]:
    """The blocks of ``layout`` (:func:`report_blocks` unless given) as lines of text, a blank
    line between blocks."""
    lines: list[str] = []
    for block in (layout or report_blocks)(view):
        if lines:
            lines.append("")
        match block:
            case Heading(text, level):
                lines.append(style.heading(text, level))
            case Prose(text):
                lines.append(style.text(text))
            case Facts(items):
                lines += [f"- {style.label(f.label)} "
                          f"{style.link(f.href, f.value) if f.href else style.value(f.value)}"
                          for f in items]
            case Quote(text):
                lines.append(style.quote(text))
    return lines


def report_text(msg: ReportMessage) -> str:
    """The report as readable plain text (console, e-mail text part)."""
    return "\n".join(report_lines(report_view(msg), PLAIN))


def fit(build: Callable[[int], T], size: Callable[[T], int], max_size: int, text_limit: int) -> T:
    """``build(text_limit)``, or ``build(n)`` for the largest ``n`` whose result fits.

    Escaping makes size non-linear in the text length, so the limit is searched, not computed.
    The other parts of a report are bounded so that ``build(0)`` always fits a target's limit.
    """
    result = build(text_limit)
    if size(result) <= max_size:
        return result
    low, high = 0, text_limit
    while low < high:
        mid = (low + high + 1) // 2
        if size(build(mid)) <= max_size:
            low = mid
        else:
            high = mid - 1
    return build(low)
