"""The JSON bodies the webhook destination POSTs: one per post alert, one per report; pure.

Both carry ``"type"`` (``"alert"`` or ``"report"``) so a receiver can tell them apart. A report
is about many posts (a spike, a digest, alerts held over quiet hours)::

    {"type": "report", "kind": "spike", "alert_id": "…", "name": "volume", "title": "…",
     "summary": "…", "window": {"start": "2026-11-20T11:00:00Z", "end": "…"},
     "brand": "Acme", "source": null, "facts": [{"label": "posts", "value": "120"}],
     "terms": ["outage"], "numbers": {…}, "examples": [{"post": {…}, "score": {…}}],
     "destination": "…", "priority": "high", "sent_at": "…", "chart_png": "<base64>",
     "reply_to": null, "parent_alert_id": null}

An incident comes as a first report (``"kind": "incident"``) and updates
(``"incident_update"``), whose ``parent_alert_id`` is the ``alert_id`` of the first report at
this destination and ``reply_to`` the receipt (``id``) the receiver answered it with; both are
null otherwise (and ``reply_to`` is null when the first report was never delivered here), so a
receiver can add an update to what it made of the first report. ``numbers["queue_url"]`` links
to the dashboard's queue filtered to the incident.

A post alert's ``score`` says which language the post was scored as and by which model:
``{"sentiment": …, "lang": "es", "language_supported": true, "scored_by": "multilingual-e5
2da1897347e2", …}``; ``language_supported: false`` means no configured model understands that
language, so the sentiment and urgency are a guess and a person must read the post.

``examples`` hold the same ``post`` and ``score`` objects as a post alert's body; ``numbers``
are the report's machine-readable figures as the detector wrote them; ``chart_png`` (a digest's
chart, base64) is there only with ``include_chart: true``. JSON escapes what it must, so
untrusted strings are only stripped of control and bidi characters (and post texts cut); a
receiver that renders them must escape them itself.
"""

from __future__ import annotations

import base64
from typing import Any

from alerts.render.common import excerpt, safe_url, strip_controls
from listener.core.models import AlertMessage, Post, ReportMessage, Score, to_iso


def _text(value: str) -> str:
    """Control and bidi characters out; a lone surrogate (valid in Python, not in UTF-8 or
    strict JSON parsers) becomes "?"."""
    return strip_controls(value).encode("utf-8", "replace").decode("utf-8")


def post_json(post: Post, text_limit: int) -> dict[str, Any]:
    """A post as receivers get it; the text cut to ``text_limit`` code points."""
    author = _text(post.author).strip() if post.author else None
    return {
        "platform": _text(post.platform), "id": post.platform_id, "url": safe_url(post.url),
        "author": author or None, "author_followers": post.author_followers,
        "text": excerpt(_text(post.text), text_limit),
        "created_at": to_iso(post.created_at), "brand": post.brand and _text(post.brand),
        "lang": post.lang and _text(post.lang),
        "kind": post.kind, "rating": post.rating,
    }


def score_json(score: Score) -> dict[str, Any]:
    """A score as receivers get it. ``lang`` is the language the post was scored as,
    ``language_supported`` false when no configured model understands it (sentiment and urgency
    are then a guess: a person must read the post), ``scored_by`` the model that scored it."""
    return {
        "sentiment": _text(score.sentiment),
        "probabilities": {"negative": score.p_negative, "neutral": score.p_neutral,
                          "positive": score.p_positive},
        "urgency": score.urgency, "model": score.model, "model_version": score.model_version,
        "lang": score.lang and _text(score.lang),
        "language_supported": score.language_supported,
        "scored_by": score.scored_by and _text(score.scored_by),
    }


def webhook_payload(msg: AlertMessage, sent_at: str, text_limit: int) -> dict[str, Any]:
    """A post alert's body; untrusted strings are control-stripped and the text cut."""
    return {
        "type": "alert",
        "id": msg.alert_id,
        "rules": list(msg.rules),
        "destination": msg.destination,
        "priority": msg.priority,
        "post": post_json(msg.post, text_limit),
        "score": score_json(msg.score),
        "sent_at": sent_at,
    }


def report_payload(
    msg: ReportMessage, sent_at: str, text_limit: int, include_chart: bool
) -> dict[str, Any]:
    """A report's body (see the module docstring); each example's text cut to ``text_limit``."""
    payload: dict[str, Any] = {
        "type": "report",
        "kind": msg.kind,
        "alert_id": msg.alert_id,
        "name": _text(msg.name),
        "title": _text(msg.title),
        "summary": _text(msg.summary),
        "window": {"start": to_iso(msg.window_start), "end": to_iso(msg.window_end)},
        "brand": msg.brand and _text(msg.brand),
        "source": msg.source and _text(msg.source),
        "facts": [{"label": _text(label), "value": _text(value)} for label, value in msg.facts],
        "terms": [_text(term) for term in msg.terms],
        "numbers": msg.numbers,
        "examples": [{"post": post_json(post, text_limit), "score": score_json(score)}
                     for post, score in msg.examples],
        "destination": msg.destination,
        "priority": _text(msg.priority),
        "sent_at": sent_at,
        "reply_to": msg.reply_to and _text(msg.reply_to),
        "parent_alert_id": msg.parent_alert_id and _text(msg.parent_alert_id),
    }
    if include_chart and msg.chart_png:
        payload["chart_png"] = base64.b64encode(msg.chart_png).decode("ascii")
    return payload
