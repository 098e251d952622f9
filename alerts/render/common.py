"""Turn an :class:`AlertMessage` into what a destination displays; pure functions, no I/O.

Post text, author names, brands, rule names and URLs are all *untrusted*: anyone on the internet
can write a post that mentions a watched brand. Slack mrkdwn gives three characters a meaning
(``&``, ``<``, ``>``), and with them a post could ping a whole channel (``<!channel>``), mention
people (``<@U123>``) or show a harmless label over a hostile link (``<https://evil|docs>``). So
every untrusted string goes through :func:`escape_mrkdwn` (or :func:`safe_url`) before it is put
into a message, and every piece is cut to fit Slack's limits *before* it is sent: a message over a
limit is refused with HTTP 400, and a refused alert is an alert nobody sees.

A customer's text is shown as they wrote it, never interpreted. Every format drops control
characters (NUL, ESC, ...) and bidi overrides/isolates (U+202E can show a text backwards) with
:func:`strip_controls`. Formats that interpret markup get their own neutraliser here, so each
sink uses the same one: :func:`mrkdwn_text` for Slack (mrkdwn has no escape for ``*``, ``_``,
``~`` or backticks, and ``verbatim`` only stops auto-linking: Slack "will continue to process all
markdown formatting"; so a zero-width space goes on both sides of each such character, where it
can neither open nor close a span), :func:`markdown_literal` for Markdown (Zendesk comments:
backslash escapes). HTML is escaped by the e-mail renderer, Jira's ADF text nodes and JSON are
never parsed for markup, GitHub bodies put the text in a fenced code block.

Every format names the language the post was scored as (:func:`language_label`; a platform's
tag is untrusted text like the rest) and, when no configured model understands that language,
shows :data:`LANGUAGE_WARNING` ahead of the verdict it casts doubt on: the sentiment and urgency
are then a model's guess about text it cannot read.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from listener.core.models import AlertMessage, to_iso

# Slack's limits (docs.slack.dev, Block Kit reference) with some headroom.
HEADER_MAX = 150  # header block: plain_text, at most 150 characters
SECTION_MAX = 3000  # section text: at most 3000 characters (over → HTTP 400)
FIELD_MAX = 2000  # each section field: at most 2000 characters
FALLBACK_MAX = 40_000  # message text is truncated by Slack beyond this
EXCERPT_CODE_POINTS = 1000  # post text shown in an alert; PLATFORMS.md advises ~1000
URL_MAX = 1500  # longer links are dropped rather than risk a field over FIELD_MAX
CONFIG_URL_MAX = 500  # our own links (the dashboard's queue) are far shorter

# Shown wherever a post's language is one no configured model understands: its sentiment and
# urgency are the model's guess about text it cannot read, so a person has to read the post.
LANGUAGE_WARNING = "Language not understood by the model: read it yourself"
LANGUAGE_MAX = 40  # code points of a language label: a code, a note; a platform's tag is untrusted
URGENCY_HIGH = 0.7
URGENCY_MEDIUM = 0.4
ELLIPSIS = "…"
ZWSP = "\u200b"

_MRKDWN_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone))", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
# Characters that would end or split Slack's <url|label> syntax, or that never belong in a URL.
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f|<>\"\\^`{}]")
# Bidirectional overrides and isolates can make a terminal show text in another order.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# A cut must not leave a joiner dangling or separate a base character from what modifies it.
_JOINERS = frozenset("\u200d")
_MODIFIERS = frozenset("\u200d\ufe0e\ufe0f") | frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))


def escape_mrkdwn(text: str) -> str:
    """Escape ``&``, ``<``, ``>`` and defuse plain-text ``@channel``/``@here``/``@everyone``.

    The three entities are exactly what Slack asks for; anything else (``*``, ``_``) only changes
    formatting. A zero-width space after ``@`` keeps the word readable but stops it pinging, even
    where ``link_names`` is enabled.
    """
    return _BROADCAST.sub("@" + ZWSP, text.translate(_MRKDWN_ESCAPES))


_MRKDWN_MARKERS = re.compile(r"[*_~`]")
_QUOTE_AT_LINE_START = re.compile(r"^&gt;", re.MULTILINE)
_EMOJI_CODE = re.compile(r":(?=[A-Za-z0-9_+'-]+:)")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_~])")


def mrkdwn_text(text: str) -> str:
    """Untrusted text for a mrkdwn field, shown as written: never formatted, never a ping.

    :func:`strip_controls`, then :func:`escape_mrkdwn` (entities, ``@channel``), then a
    zero-width space on both sides of each ``*``, ``_``, ``~`` and backtick: a marker needs a
    word boundary on its outer side and text on its inner side, and this one has neither, so
    ``*bold*`` stays ``*bold*``. Also defused: ``>`` starting a line (a quote) and ``:name:``
    (an emoji code).
    """
    escaped = escape_mrkdwn(strip_controls(text))
    escaped = _MRKDWN_MARKERS.sub(lambda m: ZWSP + m.group() + ZWSP, escaped)
    escaped = _QUOTE_AT_LINE_START.sub(ZWSP + "&gt;", escaped)
    return _EMOJI_CODE.sub(":" + ZWSP, escaped)


def markdown_literal(text: str) -> str:
    """``*``, ``_``, ``~``, backticks and backslashes backslash-escaped: Markdown shows them as
    themselves instead of emphasis, strikethrough or code (links and HTML are the caller's)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def excerpt(text: str, limit: int = EXCERPT_CODE_POINTS) -> str:
    """Collapse whitespace and cut to at most ``limit`` code points, ending in "…" when cut.

    Python strings index code points, so a cut never splits a UTF-8 sequence or a surrogate
    pair; we also step back so that an emoji's modifier or joiner is not left on its own.
    """
    collapsed = _WHITESPACE.sub(" ", text).strip()
    if len(collapsed) <= limit:
        return collapsed
    if limit <= 0:
        return ""
    cut = limit - 1  # room for the ellipsis
    while cut > 0 and (collapsed[cut] in _MODIFIERS or _is_combining(collapsed[cut])):
        cut -= 1
    while cut > 0 and collapsed[cut - 1] in _JOINERS:
        cut -= 1
    return collapsed[:cut].rstrip() + ELLIPSIS


def _is_combining(char: str) -> bool:
    return unicodedata.combining(char) != 0


def fit_escaped(text: str, max_len: int, limit: int = EXCERPT_CODE_POINTS,
                escape: Callable[[str], str] | None = None,
                measure: Callable[[str], int] = len) -> str:
    """The neutralised (``escape``, by default :func:`mrkdwn_text`) excerpt of ``text``, at
    most ``max_len`` long as ``measure`` counts (Discord counts UTF-16 units, not code points).

    Escaping can grow text fivefold (``&`` → ``&amp;``), so the code-point limit alone does not
    bound the size; cutting *after* escaping could split an entity. So we search for the longest
    excerpt whose escaped form fits.
    """
    inert = mrkdwn_text if escape is None else escape
    text = strip_controls(text)  # before cutting: a control character is not worth a place
    escaped = inert(excerpt(text, limit))
    if measure(escaped) <= max_len:
        return escaped
    low, high = 0, min(limit, max_len)  # escaped length >= code points, so max_len bounds it
    while low < high:
        mid = (low + high + 1) // 2
        if measure(inert(excerpt(text, mid))) <= max_len:
            low = mid
        else:
            high = mid - 1
    return inert(excerpt(text, low))


def safe_url(url: str | None) -> str | None:
    """Return a link target that is safe inside ``<url|label>``, or None.

    Only ``http``/``https`` with a host are allowed (no ``javascript:``, ``data:``, ``slack:``).
    ``|``, ``<``, ``>``, spaces and control characters are percent-encoded so the URL cannot end
    the link early or bring its own label. ``&`` is left alone (it separates query parameters);
    :func:`slack_message` escapes it as ``&amp;`` like any mrkdwn text.
    """
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    encoded = _URL_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", url)
    return encoded if len(encoded) <= URL_MAX else None


def config_url(url: object, limit: int = CONFIG_URL_MAX) -> str | None:
    """A link that comes from our own config (the dashboard's queue URL), or None.

    Trusted as to *where* it points, still checked before it becomes a link target: a string of
    at most ``limit`` characters, no whitespace, control or format character (bidi overrides,
    zero-width characters) anywhere, and accepted by :func:`safe_url` (http/https with a host).
    A URL that fails is shown nowhere as a link; a report still carries it as text in its facts.
    """
    if not isinstance(url, str) or not url or len(url) > limit:
        return None
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in url):
        return None
    return safe_url(url)


def urgency_label(urgency: float) -> str:
    """``0.83`` → ``"high (0.83)"``: a word for skimming, the number for judging."""
    word = "high" if urgency >= URGENCY_HIGH else "medium" if urgency >= URGENCY_MEDIUM else "low"
    return f"{word} ({urgency:.2f})"


def sentiment_label(msg: AlertMessage) -> str:
    """``"negative 0.91"``: the label with the probability the model gave it."""
    score = msg.score
    probability = {
        "negative": score.p_negative,
        "neutral": score.p_neutral,
        "positive": score.p_positive,
    }.get(score.sentiment.lower())
    return score.sentiment if probability is None else f"{score.sentiment} {probability:.2f}"


def is_alarming(msg: AlertMessage) -> bool:
    """Negative, urgent or high-priority alerts get a warning marker so they stand out."""
    return (
        msg.score.sentiment.lower() == "negative"
        or msg.score.urgency >= URGENCY_HIGH
        or msg.priority.lower() in ("high", "urgent")
    )


def reach_label(followers: int | None) -> str:
    return "unknown" if followers is None else f"{followers:,} followers"


def language_label(msg: AlertMessage) -> str:
    """``es``, ``und (too short to tell)`` or ``unknown``: the language the post was scored as
    (else its own tag), raw: a platform's tag is untrusted, so callers clean and escape it."""
    language = (msg.score.lang or msg.post.lang or "").strip()
    if not language:
        return "unknown"
    return f"{language} (too short to tell)" if language.lower() == "und" else language


def language_warning(msg: AlertMessage) -> str | None:
    """:data:`LANGUAGE_WARNING` when no configured model understands the post's language (its
    verdict is a guess, the post must be read), else None."""
    return None if msg.score.language_supported else LANGUAGE_WARNING


def brand_name(msg: AlertMessage) -> str:
    """The brand the alert is about: the post's brand, else its source, else ``mention``."""
    return msg.post.brand or msg.post.source or "mention"


class AlertFacts(NamedTuple):
    """The facts every alert format lists, raw: each format cleans, cuts and escapes its own way."""

    brand: str
    platform: str
    author: str
    reach: str
    sentiment: str
    urgency: str
    rules_label: str  # "Rule" or "Rules"
    rules: str
    priority: str
    posted: str
    alert_id: str
    language: str = "unknown"  # see language_label
    language_warning: str | None = None  # LANGUAGE_WARNING when the model cannot read the post


def alert_facts(msg: AlertMessage) -> AlertFacts:
    """One place that decides what an alert's facts say (labels, fallbacks, formats)."""
    post = msg.post
    return AlertFacts(
        brand=brand_name(msg),
        platform=post.platform,
        author=post.author or "unknown",
        reach=reach_label(post.author_followers),
        sentiment=sentiment_label(msg),
        urgency=urgency_label(msg.score.urgency),
        rules_label="Rules" if len(msg.rules) > 1 else "Rule",
        rules=", ".join(msg.rules) or "-",
        priority=msg.priority,
        posted=to_iso(post.created_at),
        alert_id=msg.alert_id,
        language=language_label(msg),
        language_warning=language_warning(msg),
    )


def headline(msg: AlertMessage) -> str:
    """``[!] Acme · mastodon: negative 0.91 — <post text>``, uncut: issue titles and summaries."""
    head = f"{'[!] ' if is_alarming(msg) else ''}{brand_name(msg)} · {msg.post.platform}"
    return f"{head}: {sentiment_label(msg)} — {strip_controls(msg.post.text)}"


def _title(msg: AlertMessage) -> str:
    """Brand · platform, raw (callers escape)."""
    return f"{brand_name(msg)} · {msg.post.platform}"


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object; ``verbatim`` stops Slack from auto-linking names and channels."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _field(label: str, value: str, max_len: int = 300) -> dict[str, Any]:
    """A ``*Label*\\nvalue`` section field with the (untrusted) value escaped and cut to fit."""
    return _mrkdwn(f"*{label}*\n{fit_escaped(value, max_len, limit=max_len)}")


def _link_field(msg: AlertMessage) -> dict[str, Any] | None:
    """``<url|Open on platform>`` when the post URL is safe, else no field at all."""
    url = safe_url(msg.post.url)
    if url is None:
        return None
    platform = fit_escaped(msg.post.platform, 40, limit=40)
    return _mrkdwn(f"*Link*\n<{url.replace('&', '&amp;')}|Open on {platform}>")


def _header_block(msg: AlertMessage) -> dict[str, Any]:
    marker = "⚠️ " if is_alarming(msg) else ""
    title = fit_escaped(_title(msg), HEADER_MAX - len(marker), limit=HEADER_MAX)
    return {"type": "header", "text": {"type": "plain_text", "text": marker + title}}


def _text_block(msg: AlertMessage) -> dict[str, Any]:
    """The post itself, quoted; whitespace is collapsed so a single ``>`` quotes all of it."""
    body = fit_escaped(msg.post.text, SECTION_MAX - 2) or "_(no text)_"
    return {"type": "section", "text": _mrkdwn("> " + body)}


def _fields_block(msg: AlertMessage) -> dict[str, Any]:
    post, score = msg.post, msg.score
    fields = [
        _field("Author", post.author or "unknown", 200),
        _field("Reach", reach_label(post.author_followers)),
        _field("Sentiment", sentiment_label(msg)),
        _field("Urgency", urgency_label(score.urgency)),
        _field("Language", language_label(msg), LANGUAGE_MAX),
        _field("Rules" if len(msg.rules) > 1 else "Rule", ", ".join(msg.rules) or "-", 500),
    ]
    link = _link_field(msg)
    if link is not None:
        fields.append(link)
    return {"type": "section", "fields": fields}  # Slack allows at most 10 fields


def _warning_block(msg: AlertMessage) -> dict[str, Any] | None:
    """A section of its own under the header when the model cannot read the post's language:
    the verdict below is a guess, and the reader must see that before trusting it."""
    warning = language_warning(msg)
    if warning is None:
        return None
    return {"type": "section", "text": _mrkdwn(f"⚠️ *{escape_mrkdwn(warning)}*")}


def _context_block(msg: AlertMessage) -> dict[str, Any]:
    posted = to_iso(msg.post.created_at)
    alert_id = fit_escaped(msg.alert_id, 200, limit=200)
    return {"type": "context", "elements": [_mrkdwn(f"Posted {posted} · alert `{alert_id}`")]}


def fallback_text(msg: AlertMessage) -> str:
    """The notification / screen-reader text Slack shows where blocks are not rendered."""
    head = f"{'⚠️ ' if is_alarming(msg) else ''}{_title(msg)}: {sentiment_label(msg)}"
    text = f"{fit_escaped(head, 300, limit=300)}: {fit_escaped(msg.post.text, 1000, limit=300)}"
    warning = language_warning(msg)
    if warning is not None:  # a notification is all some people read
        text += f" ({escape_mrkdwn(warning)})"
    return text[:FALLBACK_MAX]


def slack_message(msg: AlertMessage) -> dict[str, Any]:
    """The webhook payload: ``{"text": fallback, "blocks": [...]}``, within Slack's limits.

    Four blocks (header, quoted text, fields, context) of at most roughly 6k characters in all,
    far from the 50-block and ~13k-character ceilings, whatever the post contains; a fifth,
    the language warning, right under the header when no model understands the post's language.
    """
    blocks = [_header_block(msg), _warning_block(msg), _text_block(msg), _fields_block(msg),
              _context_block(msg)]
    return {"text": fallback_text(msg), "blocks": [b for b in blocks if b is not None]}


def payload_size(payload: dict[str, Any]) -> int:
    """Characters of the blocks as JSON: what Slack's ``msg_blocks_too_long`` check counts."""
    return len(json.dumps(payload.get("blocks", []), ensure_ascii=False))


def strip_controls(text: str) -> str:
    """Drop control characters (except newline) and bidi overrides that could spoof a terminal."""
    return "".join(
        ch
        for ch in text.replace("\t", " ")
        if ch == "\n" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS)
    )


def plain_text(msg: AlertMessage, text_limit: int = 2000) -> str:
    """A readable multi-line rendering for terminals and logs (the console sink)."""
    post, score = msg.post, msg.score
    marker = "[!] " if is_alarming(msg) else ""
    lines = [
        f"{marker}{_title(msg)} — {sentiment_label(msg)}, urgency {urgency_label(score.urgency)}",
        f"rules: {', '.join(msg.rules) or '-'} · priority: {msg.priority}"
        f" · language: {excerpt(language_label(msg), LANGUAGE_MAX)}",
        f"author: {post.author or 'unknown'} ({reach_label(post.author_followers)})",
        f"posted: {to_iso(post.created_at)} · alert: {msg.alert_id}",
    ]
    warning = language_warning(msg)
    if warning is not None:  # second, under the verdict it casts doubt on
        lines.insert(1, f"[!] {warning}")
    if post.url:
        lines.append(f"url: {post.url}")
    body = post.text if len(post.text) <= text_limit else post.text[: text_limit - 1] + ELLIPSIS
    lines.extend("  | " + line for line in body.splitlines() or [""])
    return strip_controls("\n".join(lines))
