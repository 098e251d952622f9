"""Build alert value objects for tests with sensible defaults; override only what a test is about."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from listener.models import AlertMessage, Post, Score

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
    return replace(score, **overrides)


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
