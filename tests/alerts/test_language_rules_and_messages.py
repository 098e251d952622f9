"""Issue 15: rules that select posts by language, and alerts that say which language a post is
in and warn when no configured model understands it.

The rules run on real scores of the real routed model (English model + multilingual-e5) through
the real rules stage and database; every destination's renderer is checked for the language
line and the warning, and for keeping a hostile language tag inert.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from alerts.incidents import IncidentConfig
from alerts.render.common import LANGUAGE_WARNING, plain_text, slack_message
from alerts.render.email import html_body, plain_body
from alerts.render.github import body as github_body
from alerts.render.jira import description as jira_description
from alerts.render.slack import slack_payload
from alerts.render.text import report_text
from alerts.render.webhook import webhook_payload
from alerts.render.zendesk import ticket_body
from alerts.rules import Condition, RuleConfig
from alerts.rules_stage import RulesContext
from classifiers.routing import LanguageRouter
from listener.classify_stage import classify
from listener.config import load_config
from listener.core.errors import ConfigError
from listener.core.language import detect, with_languages
from listener.core.models import AlertMessage, Page, Post, Score
from listener.pipeline import evaluate_rules
from storage import db as store
from storage import due_alerts
from tests.alerts.factories import make_alert, make_post, make_report, make_score

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ENGLISH = "worst service ever, my order never arrived and nobody answers my emails"
SPANISH = "El pedido nunca llegó y nadie contesta, estoy harto de esta empresa"
RUSSIAN = "Этот сервис ужасен, заказ так и не пришёл, и никто не отвечает"  # no model reads it
MULTILINGUAL = "multilingual-e5 2da1897347e2"


@pytest.fixture(scope="module")
def router() -> LanguageRouter:
    """The default model as the daemon routes it (the multilingual half loads on first use)."""
    from classifiers.loader import load_routed

    return load_routed("default", detect=detect, device="cpu")


# -- rule conditions -----------------------------------------------------------------------


def post(lang: str | None = None) -> Post:
    return Post("x", "1", "text", NOW, lang=lang)


def score(lang: str | None = None, supported: bool = True) -> Score:
    return Score("negative", 0.8, 0.1, 0.1, 0.5, "m", "v", lang=lang,
                 language_supported=supported, scored_by="m v")


CASES = [
    # the language the post was scored as decides, else the post's own tag
    ({"languages": ["es"]}, post(), score("es"), True),
    ({"languages": ["es"]}, post("es"), score(), True),
    ({"languages": ["es"]}, post("en"), score("en"), False),
    ({"languages": ["ES"]}, post(), score("es"), True),  # codes are case-insensitive
    # a regional tag matches its language; a rule for the region matches only that region
    ({"languages": ["pt"]}, post("pt-BR"), score(), True),
    ({"languages": ["pt-br"]}, post("pt-BR"), score(), True),
    ({"languages": ["pt_BR"]}, post("pt-BR"), score(), True),
    ({"languages": ["pt-br"]}, post("pt"), score(), False),
    # und (too short to tell) is a language of its own: a rule for es never fires on it
    ({"languages": ["es"]}, post("und"), score("und"), False),
    ({"languages": "es"}, post(), score("und"), False),
    ({"languages": ["und"]}, post("und"), score("und"), True),
    # no language recorded at all (stored before detection, not rescored): it matches
    ({"languages": ["es"]}, post(), score(), True),
    ({"unsupported_language": True}, post("ru"), score("ru", supported=False), True),
    ({"unsupported_language": True}, post("es"), score("es"), False),
    ({"unsupported_language": False}, post("es"), score("es"), True),
    ({"unsupported_language": False}, post("ru"), score("ru", supported=False), False),
    # combined and nested like every other key
    ({"sentiment": "negative", "unsupported_language": True}, post(),
     score("ru", supported=False), True),
    ({"not": {"unsupported_language": True}}, post(), score("ru", supported=False), False),
    ({"any": [{"languages": ["de"]}, {"unsupported_language": True}]}, post(),
     score("ru", supported=False), True),
]


@pytest.mark.parametrize(("spec", "the_post", "the_score", "expected"), CASES)
def test_language_conditions(spec: dict, the_post: Post, the_score: Score, expected: bool
                             ) -> None:
    assert Condition.model_validate(spec).matches(the_post, the_score) is expected


CONFIG = """\
storage: {path: l.db}
rules:
  - name: languages
    when:
      WHEN
    destinations: [console]
destinations:
  - {type: console, name: console}
"""


@pytest.mark.parametrize(("when", "key", "reason"), [
    ("languages: [es, Spanish]", "rules[0].when.languages[1]", "'Spanish' is not a language code"),
    ("unsupported_language: maybe", "rules[0].when.unsupported_language", "valid boolean"),
])
def test_a_bad_language_condition_names_its_key(tmp_path: Path, when: str, key: str,
                                                reason: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("WHEN", when), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.key == key and info.value.line == 5 and reason in str(info.value)


def test_language_conditions_load_from_a_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("WHEN", "{languages: [es, pt-BR, und], "
                                           "unsupported_language: false}"), encoding="utf-8")
    when = load_config(path, environ={}).rules[0].when
    assert when.languages == ["es", "pt-br", "und"] and when.unsupported_language is False


# -- the real model, the real rules stage ----------------------------------------------------


def scored_db(db: Database, router: LanguageRouter) -> None:
    """Three posts stored as the pipeline stores them (languages detected), scored by the
    routed model."""
    posts = [Post("x", str(i), text, NOW, source="s", author=f"user{i}")
             for i, text in enumerate((ENGLISH, SPANISH, RUSSIAN))]
    store.store_page(db, "s", with_languages(Page(posts=posts)), NOW)
    assert classify(db, router, lambda: NOW) == 3


def test_the_real_model_flags_what_it_cannot_read(router: LanguageRouter) -> None:
    english, spanish, russian = router.predict([ENGLISH, SPANISH, RUSSIAN])
    assert (english.language, english.language_supported) == ("en", True)
    assert english.scored_by is not None and english.scored_by.startswith("default ")
    assert (spanish.language, spanish.language_supported, spanish.scored_by) == (
        "es", True, MULTILINGUAL)
    assert (russian.language, russian.language_supported, russian.scored_by) == (
        "ru", False, MULTILINGUAL)


def test_rules_select_scored_posts_by_language_and_support(db: Database,
                                                           router: LanguageRouter) -> None:
    scored_db(db, router)
    rules = [RuleConfig.model_validate(r) for r in (
        {"name": "unreadable", "when": {"unsupported_language": True}, "destinations": ["ops"]},
        {"name": "spanish", "when": {"languages": ["es"]}, "destinations": ["es-team"]},
        {"name": "understood", "when": {"unsupported_language": False, "languages": ["en"]},
         "destinations": ["ops"]},
    )]
    alone = RulesContext(incidents=IncidentConfig(enabled=False))
    assert evaluate_rules(db, rules, {"ops", "es-team"}, lambda: NOW, context=alone) == 3
    fired = {(r["rule"], r["platform_id"]) for r in db.query(
        "SELECT a.rule, p.platform_id FROM alerts a JOIN posts p ON p.id = a.post_id")}
    assert fired == {("unreadable", "2"), ("spanish", "1"), ("understood", "0")}


def test_the_delivered_alert_carries_the_warning(db: Database, router: LanguageRouter) -> None:
    scored_db(db, router)
    rule = RuleConfig.model_validate({"name": "all", "destinations": ["ops"]})
    alone = RulesContext(incidents=IncidentConfig(enabled=False))
    evaluate_rules(db, [rule], {"ops"}, lambda: NOW, context=alone)
    messages = [due_alerts.message(db, d) for d in due_alerts.due(db, NOW, 10)]
    by_id = {m.post.platform_id: m for m in messages if isinstance(m, AlertMessage)}
    assert by_id["2"].score.language_supported is False
    assert LANGUAGE_WARNING in plain_text(by_id["2"]) and "language: ru" in plain_text(by_id["2"])
    assert LANGUAGE_WARNING not in plain_text(by_id["1"])
    assert by_id["1"].score.scored_by == MULTILINGUAL


# -- every destination names the language and warns -----------------------------------------


def spanish_alert() -> AlertMessage:
    return make_alert(lang="es", score=make_score(lang="es", scored_by=MULTILINGUAL))


def unreadable_alert() -> AlertMessage:
    return make_alert(lang="ru", score=make_score(lang="ru", language_supported=False,
                                                  scored_by=MULTILINGUAL))


def texts(node: Any) -> Iterator[str]:
    """Every string in a JSON-like tree (Block Kit, ADF)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts(item)


def test_slack_names_the_language_and_puts_the_warning_under_the_header() -> None:
    fields = slack_message(spanish_alert())["blocks"][2]["fields"]
    assert {"type": "mrkdwn", "text": "*Language*\nes", "verbatim": True} in fields
    assert LANGUAGE_WARNING not in json.dumps(slack_message(spanish_alert()), ensure_ascii=False)
    payload = slack_message(unreadable_alert())
    header, warning, quote, facts, context = payload["blocks"]
    assert header["type"] == "header" and quote["text"]["text"].startswith("> The Acme app")
    assert warning["text"]["text"] == f"⚠️ *{LANGUAGE_WARNING}*"
    assert "*Language*\nru" in [f["text"] for f in facts["fields"]]
    assert payload["text"].endswith(f"({LANGUAGE_WARNING})")  # the notification says it too


def test_console_names_the_language_and_warns() -> None:
    assert "· language: es" in plain_text(spanish_alert())
    assert LANGUAGE_WARNING not in plain_text(spanish_alert())
    lines = plain_text(unreadable_alert()).splitlines()
    assert lines[1] == f"[!] {LANGUAGE_WARNING}" and "· language: ru" in lines[2]


def test_email_names_the_language_and_warns() -> None:
    assert "\nLanguage: es\n" in plain_body(spanish_alert())
    assert LANGUAGE_WARNING not in plain_body(spanish_alert()) + html_body(spanish_alert())
    text, html = plain_body(unreadable_alert()), html_body(unreadable_alert())
    assert f"\n\n[!] {LANGUAGE_WARNING}\n\nAuthor:" in text and "\nLanguage: ru\n" in text
    assert f"<strong>&#9888;&#65039; {LANGUAGE_WARNING}</strong>" in html
    assert '<th align="left" style="padding-right:12px">Language</th><td>ru</td>' in html


def test_jira_names_the_language_and_warns() -> None:
    spanish = list(texts(jira_description(spanish_alert(), 1000)))
    assert "Language: " in spanish and "es" in spanish and LANGUAGE_WARNING not in str(spanish)
    doc = jira_description(unreadable_alert(), 1000)
    intro, warning, quote = doc["content"][:3]
    assert warning == {"type": "paragraph",
                       "content": [{"type": "text", "text": f"⚠️ {LANGUAGE_WARNING}"}]}
    assert quote["content"][0]["text"].startswith("The Acme app")


def test_github_names_the_language_and_warns() -> None:
    assert "- **Language:** `es`" in github_body(spanish_alert(), 1000)
    body = github_body(unreadable_alert(), 1000)
    warning = LANGUAGE_WARNING.replace(":", "\\:")  # md_text escapes our text like any prose
    assert body.startswith(f"> ⚠️ **{warning}**\n\n**listener alert**")
    assert "- **Language:** `ru`" in body


def test_zendesk_names_the_language_and_warns() -> None:
    assert "\n- Language: es\n" in ticket_body(spanish_alert(), 1000)
    body = ticket_body(unreadable_alert(), 1000).splitlines()
    assert body[2] == f"**⚠️ {LANGUAGE_WARNING}**" and "- Language: ru" in body


def test_webhook_json_carries_language_support_and_model() -> None:
    score = webhook_payload(unreadable_alert(), "2026-11-20T12:00:00Z", 1000)["score"]
    assert (score["lang"], score["language_supported"], score["scored_by"]) == (
        "ru", False, MULTILINGUAL)
    post = webhook_payload(spanish_alert(), "2026-11-20T12:00:00Z", 1000)["post"]
    assert post["lang"] == "es"


def test_reports_name_each_example_posts_language() -> None:
    """Held alerts reach people as a report: its example posts carry the warning too."""
    posts = ((make_post(platform_id="1", lang="es"), make_score(lang="es")),
             (make_post(platform_id="2", lang="ru"),
              make_score(lang="ru", language_supported=False)))
    report = make_report(kind="held", examples=posts)
    text = report_text(report)
    assert "- Language: es\n" in text and f"- Language: ru — {LANGUAGE_WARNING}\n" in text
    first, second = (text for text in texts(slack_payload(report)["blocks"])
                     if "The Acme app" in text)
    assert "· language es\n>" in first and LANGUAGE_WARNING not in first
    assert f"· language ru\n⚠️ *{LANGUAGE_WARNING}*\n>" in second


def test_a_post_without_language_says_unknown_and_und_says_why() -> None:
    assert "*Language*\nunknown" in texts(slack_message(make_alert()))
    short = make_alert(lang="und", score=make_score(lang="und"))
    assert "- Language: und (too short to tell)" in ticket_body(short, 1000)


HOSTILE_TAG = "<!channel> *x* {{y}} [a](http://e) @here\n<b>"


@pytest.mark.parametrize("where", ["post", "score"])
def test_a_hostile_language_tag_stays_inert(where: str) -> None:
    """A file import's ``lang`` column is anyone's text: it is escaped like any other value."""
    alert = make_alert(lang=HOSTILE_TAG) if where == "post" else make_alert(
        score=make_score(lang=HOSTILE_TAG, language_supported=False))
    slack = "\n".join(texts(slack_message(alert)["blocks"]))
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack and "@here" not in slack
    assert "<b>" not in html_body(alert) and "&lt;!channel&gt;" in html_body(alert)
    assert "{{" not in ticket_body(alert, 1000) and "](" not in ticket_body(alert, 1000)
    assert "`<!channel>" in github_body(alert, 1000)  # inside a code span
    assert "\n<b>" not in plain_text(alert)  # one line: no forged line in the console
