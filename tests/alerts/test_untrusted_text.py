"""A customer's text is shown as written, never interpreted (issue 14 item 10), in every format a
sink sends: no formatting from their ``*``/``_``/``~``/backticks, no bidi overrides, no control
characters. The neutralisers live in :mod:`alerts.render`, so each format is checked here."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from alerts.render.common import ZWSP, markdown_literal, mrkdwn_text, plain_text, slack_message
from alerts.render.email import html_body, plain_body, subject_line
from alerts.render.github import body as github_body
from alerts.render.github import title as github_title
from alerts.render.jira import description as jira_description
from alerts.render.jira import summary as jira_summary
from alerts.render.slack import slack_payload
from alerts.render.webhook import webhook_payload
from alerts.render.zendesk import ticket_body, ticket_subject
from tests.alerts.factories import make_alert, make_post, make_report, make_score

CONTROLS = "\x00\x07\x1b\x7f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
TEXT = ("Refund me *now* or _else_, ~never~ again `rm -rf` ```x``` :fire:\n> quoted "
        "\u202edesrever\u202c \u2066iso\u2069 nul\x00 esc\x1b[31mred\x1b[0m bell\x07 del\x7f")
AUTHOR = "*boss*\u202e_x_\x1b"
MARKED = ("*now*", "_else_", "~never~", "`rm -rf`", "```x```", "*boss*")


def hostile() -> Any:
    return make_alert(text=TEXT, author=AUTHOR)


def hostile_report() -> Any:
    post = make_post(platform_id="9", text=TEXT, author=AUTHOR)
    return make_report(examples=((post, make_score()),), title="Spike *now*\u202e",
                       facts=(("Top *term*", "`x`\x00"),))


def no_controls(rendered: str) -> None:
    found = sorted({f"U+{ord(ch):04X}" for ch in rendered if ch in CONTROLS})
    assert not found, f"control or bidi characters left: {found}"


def test_mrkdwn_text_defuses_every_marker_and_keeps_every_character() -> None:
    out = mrkdwn_text("*b* _i_ ~s~ `c`\n> q :fire: \u202ex\x00")
    assert re.search(f"(?<!{ZWSP})[*_~`]|[*_~`](?!{ZWSP})", out) is None  # each one fenced
    assert f"\n{ZWSP}&gt; q" in out and f":{ZWSP}fire:" in out
    assert out.replace(ZWSP, "") == "*b* _i_ ~s~ `c`\n&gt; q :fire: x"  # what the reader sees


def test_markdown_literal_escapes_emphasis_and_code() -> None:
    assert markdown_literal(r"*a* _b_ ~c~ `d` \e") == r"\*a\* \_b\_ \~c\~ \`d\` \\e"


@pytest.mark.parametrize("render", [lambda: slack_message(hostile()),
                                    lambda: slack_payload(hostile_report())],
                         ids=["alert", "report"])
def test_slack_shows_the_text_as_written(render: Any) -> None:
    payload = render()
    rendered = json.dumps(payload, ensure_ascii=False)
    no_controls(rendered)
    for marked in MARKED:
        assert marked not in rendered, f"{marked!r} would be formatted by Slack"
    assert f"{ZWSP}*{ZWSP}now{ZWSP}*{ZWSP}" in rendered  # still there, still readable
    assert "desrever" in rendered and "iso" in rendered


def test_slack_keeps_its_own_formatting() -> None:
    blocks = slack_message(hostile())["blocks"]
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields[0].startswith("*Author*\n" + f"{ZWSP}*{ZWSP}boss")
    assert blocks[1]["text"]["text"].startswith("> Refund me ")


def test_email_plain_html_and_subject() -> None:
    message = hostile()
    for rendered in (plain_body(message), html_body(message)):
        no_controls(rendered)
        assert "desrever" in rendered
    no_controls(subject_line("[l]", message))
    assert "<script" not in html_body(make_alert(text="<script>x</script>"))


def test_zendesk_comment_is_literal_markdown_and_the_subject_plain() -> None:
    body = ticket_body(hostile(), 1000)
    no_controls(body)
    assert r"\*now\*" in body and r"\_else\_" in body and r"\`rm -rf\`" in body
    assert r"\~never\~" in body and r"\*boss\*" in body
    subject = ticket_subject(make_alert(brand="Acme_Cloud"))
    assert "Acme_Cloud" in subject and "\\" not in subject  # Zendesk shows subjects as typed


def test_jira_adf_text_nodes_hold_plain_text() -> None:
    message = hostile()
    document = jira_description(message, 1000)
    no_controls(json.dumps(document, ensure_ascii=False) + jira_summary(message))
    texts = _texts(document)
    assert any("*now*" in t and "desrever" in t for t in texts)  # literal: ADF has no markup
    marked = [n for n in _nodes(document) if n.get("type") == "text" and "now" in n["text"]]
    assert marked and all(not n.get("marks") for n in marked)


def test_github_issue_body_and_title() -> None:
    message = hostile()
    body, title = github_body(message, 1000), github_title(message)
    no_controls(body + title)
    assert "desrever" in body


def test_webhook_json_carries_clean_display_text() -> None:
    payload = webhook_payload(hostile(), "2026-11-20T12:00:00Z", 4000)
    no_controls(json.dumps(payload, ensure_ascii=False))
    assert payload["post"]["text"].startswith("Refund me *now*")  # JSON: no markup to defuse
    assert payload["post"]["author"] == "*boss*_x_"


def test_console_text() -> None:
    rendered = plain_text(hostile())
    no_controls(rendered)
    assert "*now*" in rendered and "desrever" in rendered


def _nodes(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node] + [n for child in node.get("content", []) for n in _nodes(child)]
    return []


def _texts(document: dict[str, Any]) -> list[str]:
    return [n["text"] for n in _nodes(document) if n.get("type") == "text"]
