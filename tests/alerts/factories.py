"""Build alert value objects for tests with sensible defaults; override only what a test is about."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from listener.core.models import AlertMessage, Post, ReportMessage, Score

POSTED = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def make_post(**overrides: Any) -> Post:
    post = Post(
        platform="mastodon",
        platform_id="110000000000000001",
        text="The Acme app logged me out again and support is not answering.",
        created_at=POSTED,
        source="mastodon-acme",
        url="https://mastodon.example/@jane/110000000000000001",
        author="jane",
        author_followers=1234,
        brand="Acme",
    )
    return replace(post, **overrides)


def make_score(**overrides: Any) -> Score:
    score = Score(
        sentiment="negative",
        p_negative=0.91,
        p_neutral=0.07,
        p_positive=0.02,
        urgency=0.83,
        model="minilm-sentiment",
        model_version="1",
    )
    return score._replace(**overrides)


def make_alert(
    *, post: Post | None = None, score: Score | None = None, **overrides: Any
) -> AlertMessage:
    """An AlertMessage; ``text=``/``url=``/... shortcuts set fields of the post."""
    post_fields = {k: overrides.pop(k) for k in list(overrides) if k in Post.__dataclass_fields__}
    return AlertMessage(
        alert_id=overrides.pop("alert_id", "a1b2c3d4e5f6"),
        rules=overrides.pop("rules", ("negative-mentions",)),
        destination=overrides.pop("destination", "slack-support"),
        post=replace(post or make_post(), **post_fields),
        score=score or make_score(),
        **overrides,
    )


REPORT_END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # the signature, then bytes sinks pass on


def make_report(**overrides: Any) -> ReportMessage:
    """A spike report with two example posts and no chart; override what a test is about."""
    examples = (
        (make_post(platform_id="1", text="The Acme app is down again, nobody answers."),
         make_score()),
        (make_post(platform="x", platform_id="2", url="https://x.com/bob/status/2",
                   author="bob", author_followers=None, text="acme login broken since 9am"),
         make_score(sentiment="neutral", p_negative=0.3, p_neutral=0.6, p_positive=0.1,
                    urgency=0.45)),
    )
    fields: dict[str, Any] = {
        "alert_id": "r1e2p3o4r5t6", "kind": "spike", "name": "acme-spikes",
        "destination": "ops", "title": "Acme: 5× the usual volume of negative posts",
        "window_start": REPORT_END - timedelta(hours=1), "window_end": REPORT_END,
        "brand": "Acme", "source": None,
        "summary": "120 posts in the last hour against 24 on a usual hour; 71% negative.",
        "facts": (("Posts", "120"), ("Baseline", "24/h"), ("Negative", "71%")),
        "terms": ("outage", "login", "refund"), "examples": examples,
        "numbers": {"posts": 120, "baseline": 24.0, "negative_share": 0.71},
        "priority": "high",
    }
    fields.update(overrides)
    return ReportMessage(**fields)
