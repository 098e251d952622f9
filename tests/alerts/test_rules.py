"""Rule conditions evaluated on plain values (a table of conditions × posts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.rules import Condition, priority
from listener.core.models import Post, Score

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def post(text: str, source: str = "x-main", brand: str = "acme", followers: int = 10) -> Post:
    return Post("x", "1", text, NOW, source=source, brand=brand, author_followers=followers)


def score(label: str = "negative", neg: float = 0.8, urgency: float = 0.5) -> Score:
    rest = (1 - neg) / 2
    return Score(label, neg, rest, rest, urgency, "m", "v")


CASES = [
    ({}, post("anything"), score(), True),
    ({"sentiment": "negative"}, post("x"), score("negative"), True),
    ({"sentiment": ["negative"]}, post("x"), score("neutral", neg=0.4), False),
    ({"sentiment": "negative", "min_probability": 0.7}, post("x"), score(neg=0.65), False),
    ({"sentiment": "negative", "min_probability": 0.6}, post("x"), score(neg=0.65), True),
    # summed probability of the listed labels
    ({"sentiment": ["negative", "neutral"], "min_probability": 0.8}, post("x"),
     score(neg=0.7), True),
    ({"min_urgency": 0.6}, post("x"), score(urgency=0.59), False),
    ({"min_urgency": 0.6}, post("x"), score(urgency=0.6), True),
    ({"keywords": ["refund"]}, post("I want a REFUND now"), score(), True),
    ({"keywords": ["refund"]}, post("refunds are great"), score(), False),  # whole words
    ({"keywords": ["not working"]}, post("app not working!"), score(), True),
    ({"keywords": ["c++"]}, post("my c++ build"), score(), True),  # regex chars are literal
    ({"sources": ["reddit"]}, post("x"), score(), False),
    ({"brands": ["acme"]}, post("x"), score(), True),
    ({"any": [{"keywords": ["refund"]}, {"min_urgency": 0.9}]}, post("help"), score(urgency=0.95),
     True),
    ({"any": [{"keywords": ["refund"]}, {"min_urgency": 0.9}]}, post("help"), score(), False),
    ({"all": [{"sentiment": "negative"}, {"min_urgency": 0.4}]}, post("x"), score(), True),
    ({"not": {"keywords": ["giveaway"]}}, post("win a giveaway"), score(), False),
    ({"sentiment": "negative", "not": {"sources": ["noise"]}}, post("x", source="noise"),
     score(), False),
    ({"platforms": ["x", "reddit"]}, post("x"), score(), True),
    ({"platforms": "reddit"}, post("x"), score(), False),
    ({"min_followers": 10_000}, post("x", followers=9_999), score(), False),
    ({"min_followers": 10_000}, post("x", followers=10_000), score(), True),
    ({"languages": ["EN"]}, Post("x", "1", "t", NOW, lang="en"), score(), True),
    ({"languages": ["de"]}, Post("x", "1", "t", NOW, lang="en"), score(), False),
    ({"languages": ["de"]}, Post("x", "1", "t", NOW), score(), True),  # unknown language
    ({"languages": ["de"]}, Post("x", "1", "t", NOW, lang="und"), score(), False),  # too short
    ({"max_rating": 2}, Post("appstore", "1", "t", NOW, rating=1), score(), True),
    ({"max_rating": 2}, Post("appstore", "1", "t", NOW, rating=4), score(), False),
    ({"max_rating": 2}, post("x"), score(), False),  # not a review
]


@pytest.mark.parametrize(("spec", "the_post", "the_score", "expected"), CASES)
def test_condition_table(spec: dict, the_post: Post, the_score: Score, expected: bool) -> None:
    assert Condition.model_validate(spec).matches(the_post, the_score) is expected


def test_source_refs_walk_nested_conditions() -> None:
    cond = Condition.model_validate({"sources": ["a"], "any": [{"not": {"sources": ["b"]}}]})
    refs = list(cond.source_refs(("when",)))
    assert refs == [(("when", "sources", 0), "a"), (("when", "any", 0, "not", "sources", 0), "b")]


def test_priority_combines_urgency_and_reach() -> None:
    assert priority(score(urgency=0.9), post("x")) == "high"
    assert priority(score(urgency=0.5), post("x", followers=20_000)) == "high"
    assert priority(score(urgency=0.5), post("x")) == "normal"
    assert priority(score("neutral", urgency=0.1), post("x")) == "low"
