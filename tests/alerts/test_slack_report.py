"""Report messages (spikes, digests) as Slack Block Kit: escaping, limits, both Slack modes.

The rendered Block Kit of one post alert and one spike report is written to
``test-artifacts/slack/`` so that a person can paste it into Slack's Block Kit Builder.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from alerts.render.common import HEADER_MAX, SECTION_MAX, payload_size, slack_message
from alerts.render.slack import (
    CHART_IN_THREAD,
    CHART_NOT_ATTACHED,
    MAX_EXAMPLES,
    slack_report,
    window_label,
)
from alerts.sinks.slack import SlackSink, SlackSinkConfig
from tests.alerts.factories import PNG, make_alert, make_post, make_report, make_score
from tests.fakes.slack import BOT_TOKEN, FakeSlackAPI, FakeSlackWebhook, blocks_problem

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "slack"
HOSTILE = "<!channel> <@U1> <https://evil.example|your bank> @here & more"


def all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def test_report_blocks_show_title_summary_facts_terms_examples_and_window() -> None:
    payload = slack_report(make_report(chart_png=PNG), CHART_IN_THREAD)
    header, summary, facts, terms, divider, heading, *examples, context = payload["blocks"]
    assert header["text"]["text"] == "⚠️ Acme: 5× the usual volume of negative posts"
    assert summary["text"]["text"].startswith("120 posts in the last hour")
    assert [f["text"] for f in facts["fields"]] == ["*Posts*\n120", "*Baseline*\n24/h",
                                                    "*Negative*\n71%"]
    assert terms["text"]["text"] == "*Top terms*\noutage · login · refund"
    assert divider == {"type": "divider"} and "Example posts" in heading["text"]["text"]
    first, second = (e["text"]["text"] for e in examples)
    assert first.startswith("*<https://mastodon.example/@jane/110000000000000001|mastodon>* · "
                            "jane · negative 0.91 · urgency high (0.83) · language unknown\n"
                            "> The Acme app")
    assert "neutral 0.60 · urgency medium (0.45)" in second
    note = context["elements"][0]["text"]
    assert note == ("Spike `acme-spikes` · Acme · 2026-11-20 11:00 → 2026-11-20 12:00 UTC · "
                    "report `r1e2p3o4r5t6` · chart: in the thread")
    assert payload["text"].startswith("⚠️ Acme: 5× the usual volume")


def test_chart_note_only_when_there_is_a_chart() -> None:
    assert CHART_IN_THREAD not in all_text(slack_report(make_report(), CHART_IN_THREAD))
    with_chart = slack_report(make_report(chart_png=PNG), CHART_IN_THREAD)
    assert CHART_IN_THREAD in with_chart["blocks"][-1]["elements"][0]["text"]


def test_window_is_shown_in_utc_whatever_the_zone() -> None:
    paris = timezone(timedelta(hours=1))
    report = make_report(window_start=datetime(2026, 11, 20, 12, 0, tzinfo=paris),
                         window_end=datetime(2026, 11, 21, 12, 0, tzinfo=paris))
    assert window_label(report) == "2026-11-20 11:00 → 2026-11-21 11:00 UTC"


def test_hostile_text_everywhere_stays_inert() -> None:
    post = make_post(text=HOSTILE, author=HOSTILE, url="https://ok.example/a?x=1&y=<2>|z")
    report = make_report(
        title=HOSTILE, summary=HOSTILE, facts=((HOSTILE, HOSTILE),), terms=(HOSTILE,),
        brand=HOSTILE, name=HOSTILE, examples=((post, make_score()),
                                               (make_post(url="javascript:alert(1)"),
                                                make_score())),
    )
    text = all_text(slack_report(report, CHART_IN_THREAD))
    for smuggled in ("<!channel>", "<@U1>", "<https://evil", "javascript:"):
        assert smuggled not in text
    assert "@here" not in text  # defused with a zero-width space
    assert "&lt;!channel&gt;" in text and "&lt;@U1&gt;" in text and "&amp; more" in text
    # the only links are ours: the post's (with | < > percent-encoded and & escaped), labelled
    links = re.findall(r"<(https?://[^|>]*)\|([^>]*)>", text)
    assert links == [("https://ok.example/a?x=1&amp;y=%3C2%3E%7Cz", "mastodon")]


def test_huge_reports_stay_within_slack_limits() -> None:
    huge = "x&<" * 5000
    url = "https://example.com/" + "a" * 270  # just short enough to stay a link
    examples = tuple((make_post(platform_id=str(i), text=huge, author=huge, url=url),
                      make_score()) for i in range(12))
    report = make_report(title=huge, summary=huge, facts=tuple((huge, huge) for _ in range(30)),
                         terms=tuple(huge for _ in range(100)), examples=examples,
                         brand=huge, source=huge, name=huge, chart_png=PNG)
    payload = slack_report(report, CHART_IN_THREAD)
    blocks = payload["blocks"]
    assert blocks_problem(blocks) is None  # the fake's copy of Slack's documented limits
    assert len(blocks) <= 12 and payload_size(payload) < 12_000
    assert len(blocks[0]["text"]["text"]) <= HEADER_MAX
    assert all(len(b.get("text", {}).get("text", "")) <= SECTION_MAX for b in blocks)
    shown = [b for b in blocks if b.get("text", {}).get("text", "").startswith("*<https://")]
    assert len(shown) == MAX_EXAMPLES
    facts = blocks[2]["fields"]
    assert len(facts) == 10
    assert facts[-1]["text"] == "*More*\n21 more facts in the e-mail or webhook report"
    assert len(payload["text"]) <= 1000


def test_webhook_report_says_where_the_chart_is() -> None:
    with FakeSlackWebhook() as slack:
        sink = SlackSink(SlackSinkConfig(name="hook", webhook_url=slack.url, timeout=5))
        assert sink.send(make_report(chart_png=PNG)) is None
        sink.close()
        (request,) = slack.requests
    assert CHART_NOT_ATTACHED in request.json["blocks"][-1]["elements"][0]["text"]
    assert request.json["blocks"][0]["text"]["text"].startswith("⚠️ Acme: 5×")


@pytest.mark.parametrize("kind", ["spike", "digest", "held"])
def test_every_report_kind_is_accepted_by_the_fake_web_api(kind: str) -> None:
    with FakeSlackAPI() as fake:
        sink = SlackSink(SlackSinkConfig(name="bot", token=BOT_TOKEN, channel="C0FAKE00001",
                                         base_url=fake.api_url, timeout=5))
        ts = sink.send(make_report(kind=kind, priority="normal"))
        sink.close()
    assert ts == fake.messages[0]["ts"]
    marker = "⚠️ " if kind == "spike" else ""
    assert fake.messages[0]["blocks"][0]["text"]["text"].startswith(f"{marker}Acme: 5×")


def test_writes_block_kit_for_people_to_look_at() -> None:
    """``test-artifacts/slack/*.json``: paste into https://app.slack.com/block-kit-builder."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    alert = slack_message(make_alert(rules=("negative-mentions", "needs-help")))
    report = slack_report(make_report(chart_png=PNG), CHART_IN_THREAD)
    for name, payload in (("alert_blocks.json", alert), ("report_blocks.json", report)):
        path = ARTIFACTS / name
        path.write_text(json.dumps({"blocks": payload["blocks"]}, ensure_ascii=False, indent=2)
                        + "\n", encoding="utf-8")
        assert json.loads(path.read_text(encoding="utf-8"))["blocks"] == payload["blocks"]
