"""Rendering: escaping of untrusted text, excerpts, safe links and Slack's size limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from alerts.render.common import (
    ZWSP,
    escape_mrkdwn,
    excerpt,
    plain_text,
    safe_url,
    slack_message,
    urgency_label,
)
from tests.alerts.factories import make_alert, make_score

HOSTILE = (
    "<!channel> <!here> <!everyone> <@U123> <#C42|general> <!subteam^S1> "
    "<https://evil.example|click me> @channel @here @Everyone & done"
)


def text_fields(node: Any) -> Iterator[str]:
    """Every string under a ``"text"`` key anywhere in the payload (blocks, fields, context)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from text_fields(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_fields(item)


def all_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from all_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from all_strings(item)


def test_escape_exactly_three_characters() -> None:
    assert escape_mrkdwn("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape_mrkdwn("&amp;") == "&amp;amp;"  # already-escaped text is not trusted either
    assert escape_mrkdwn("*bold* _it_ `code` \"q\" 'a'") == "*bold* _it_ `code` \"q\" 'a'"


def test_escape_defuses_broadcasts_but_keeps_them_readable() -> None:
    out = escape_mrkdwn("@channel @HERE @everyone @chan @jane")
    assert out == f"@{ZWSP}channel @{ZWSP}HERE @{ZWSP}everyone @chan @jane"


@pytest.mark.parametrize("url", [None, "https://mastodon.example/@jane/1"])
def test_hostile_post_cannot_ping_mention_or_forge_links(url: str | None) -> None:
    msg = make_alert(
        text=HOSTILE, author="<!channel>", brand="<@U999>", rules=("<!here>",), url=url
    )
    payload = slack_message(msg)
    texts = list(text_fields(payload)) + [payload["text"]]
    assert len(texts) > 5
    joined = "\n".join(texts)
    assert "<!" not in joined and "<@" not in joined and "<#" not in joined
    for text in texts:
        assert "@channel" not in text and "@here" not in text, text
        if "<http" in text:  # only our own link to the post itself
            assert text.count("<") == 1 and f"<{url}|" in text
    assert "&lt;!channel&gt;" in joined and "&lt;https://evil.example|click me&gt;" in joined
    assert f"@{ZWSP}channel" in joined  # still readable


def test_excerpt_cuts_at_code_points_including_emoji() -> None:
    text = "😀" * 1500
    cut = excerpt(text, 1000)
    assert len(cut) == 1000 and cut.endswith("…") and set(cut[:-1]) == {"😀"}
    cut.encode("utf-8")  # no lone surrogates


def test_excerpt_keeps_emoji_sequences_whole_and_collapses_whitespace() -> None:
    family = "👩\u200d👩\u200d👧"
    cut = excerpt("a" * 997 + family, 1000)
    assert not cut[:-1].endswith("\u200d") and len(cut) <= 1000
    assert excerpt("  a \n\n b\t c  ") == "a b c"
    assert excerpt("short", 1000) == "short"


def test_urgency_and_sentiment_labels() -> None:
    assert urgency_label(0.83) == "high (0.83)"
    assert urgency_label(0.5) == "medium (0.50)"
    assert urgency_label(0.1) == "low (0.10)"
    fields = json.dumps(slack_message(make_alert())["blocks"][2])
    assert "negative 0.91" in fields and "high (0.83)" in fields and "1,234 followers" in fields


def test_huge_text_stays_within_slack_limits() -> None:
    long = "x" * 5000
    msg = make_alert(
        text=("& < > " * 10_000)[:50_000],
        author=long,
        brand=long,
        rules=tuple(f"rule-{i}" * 50 for i in range(40)),
        url="https://example.com/" + "&" * 5000,
        alert_id=long,
    )
    payload = slack_message(msg)
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    assert len(json.dumps(blocks, ensure_ascii=False)) < 10_000
    assert len(payload["text"]) <= 40_000
    assert len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
    for text in all_strings(payload):  # escaping was not cut in half
        assert "&am\n" not in text and not text.endswith(("&", "&a", "&am", "&amp", "&l", "&lt"))


def test_excerpt_in_message_is_quoted_escaped_and_cut() -> None:
    section = slack_message(make_alert(text="a<b " + "y" * 3000))["blocks"][1]["text"]["text"]
    assert section.startswith("> a&lt;b ") and section.endswith("…")
    assert len(section.replace("&lt;", "<")) <= 1002


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>",
        "slack://channel?id=C1",
        "ftp://example.com/x",
        "https://",
        "//evil.example/x",
        "",
        None,
    ],
)
def test_unsafe_urls_yield_no_link(url: str | None) -> None:
    assert safe_url(url) is None
    fields = slack_message(make_alert(url=url))["blocks"][2]["fields"]
    assert not any("Link" in f["text"] for f in fields)


def test_pipe_in_url_cannot_forge_a_label() -> None:
    url = "https://evil.example/a|Official Acme support> <!channel>"
    assert safe_url(url) == "https://evil.example/a%7COfficial%20Acme%20support%3E%20%3C!channel%3E"
    link = slack_message(make_alert(url=url))["blocks"][2]["fields"][-1]["text"]
    assert link.count("|") == 1 and link.count("<") == 1 and link.count(">") == 1
    assert link.endswith("|Open on mastodon>")


def test_ampersand_in_url_is_kept_and_escaped() -> None:
    url = "https://example.com/p?a=1&b=2"
    assert safe_url(url) == url
    link = slack_message(make_alert(url=url))["blocks"][2]["fields"][-1]["text"]
    assert "<https://example.com/p?a=1&amp;b=2|" in link


def test_header_marks_negative_or_urgent_alerts() -> None:
    alarming = slack_message(make_alert())["blocks"][0]["text"]["text"]
    calm = make_alert(score=make_score(sentiment="positive", p_positive=0.9, urgency=0.1))
    assert alarming == "⚠️ Acme · mastodon"
    assert slack_message(calm)["blocks"][0]["text"]["text"] == "Acme · mastodon"


def test_context_has_post_time_and_alert_id() -> None:
    context = slack_message(make_alert())["blocks"][3]["elements"][0]["text"]
    assert "2024-05-01T12:30:00Z" in context and "a1b2c3d4e5f6" in context


def test_plain_text_is_readable_and_strips_controls() -> None:
    text = plain_text(
        make_alert(text="line one\nline\x1b[31m two\r\x07 \u202eevil", author="ja\x00ne")
    )
    assert "Acme · mastodon" in text and "negative 0.91" in text and "high (0.83)" in text
    assert "  | line one\n  | line[31m two\n  |  evil" in text  # CR breaks the line
    assert "author: jane (1,234 followers)" in text
    assert not any(ch in text for ch in "\x1b\r\x07\x00\u202e")
