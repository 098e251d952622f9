"""``listener score`` scores each post with the model for its language, as the daemon does, and
says on every line which language that was, whether a model understands it and which model
scored it (issue 15). The real routed default model throughout."""

from __future__ import annotations

import json

from click.testing import CliRunner

from listener.commands.scoring import read_line, score

ENGLISH = "worst service ever, my order never arrived and nobody answers my emails"
SPANISH = "El pedido nunca llegó y nadie contesta, estoy harto de esta empresa"
RUSSIAN = "Этот сервис ужасен, заказ так и не пришёл, и никто не отвечает"
MULTILINGUAL = "multilingual-e5 "


def run_score(lines: list[str], *args: str, code: int = 0) -> list[dict]:
    result = CliRunner().invoke(score, ["--device", "cpu", *args], input="\n".join(lines) + "\n")
    assert result.exit_code == code, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def by_id(rows: list[dict]) -> dict:
    return {row["id"]: row for row in rows}


def test_each_line_says_its_language_its_support_and_its_model() -> None:
    rows = by_id(run_score([ENGLISH, SPANISH, RUSSIAN, "ok!!"]))
    assert set(rows[1]) == {"id", "sentiment", "probabilities", "urgency", "lang",
                            "language_supported", "scored_by"}
    english, spanish, russian, short = rows[1], rows[2], rows[3], rows[4]
    assert (english["lang"], english["language_supported"]) == ("en", True)
    assert english["scored_by"].startswith("default ") and english["sentiment"] == "negative"
    assert (spanish["lang"], spanish["language_supported"]) == ("es", True)
    assert spanish["scored_by"].startswith(MULTILINGUAL)  # before: the English model guessed
    assert (russian["lang"], russian["language_supported"]) == ("ru", False)
    assert russian["scored_by"].startswith(MULTILINGUAL)  # the best guess, flagged
    assert (short["lang"], short["language_supported"]) == ("und", True)
    assert short["scored_by"] == english["scored_by"]  # too short to tell: the English model


def test_a_lines_lang_wins_over_detection() -> None:
    rows = by_id(run_score([
        json.dumps({"id": "tagged", "text": ENGLISH, "lang": "es"}),
        json.dumps({"id": "region", "text": SPANISH, "lang": "pt-BR"}),
        json.dumps({"id": "no-language", "text": SPANISH, "lang": "und"}),
        json.dumps({"id": "null", "text": SPANISH, "lang": None}),
    ]))
    assert (rows["tagged"]["lang"], rows["tagged"]["scored_by"][:16]) == ("es", MULTILINGUAL)
    assert rows["region"]["lang"] == "pt"  # a platform's tag, read the same way
    assert rows["no-language"]["lang"] == "es" and rows["null"]["lang"] == "es"  # detected


def test_a_lang_that_is_not_a_string_is_rejected_with_its_line() -> None:
    result = CliRunner().invoke(score, ["--device", "cpu"], input="\n".join([
        json.dumps({"id": "a", "text": SPANISH, "lang": 3}),
        json.dumps({"id": "b", "text": SPANISH}),
    ]) + "\n")
    assert result.exit_code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["b"]
    assert result.stderr.splitlines()[0] == (
        "line 1: 'lang' must be a language code such as \"es\" (a string), not 3")


def test_an_english_only_model_flags_what_it_cannot_read() -> None:
    english, spanish = run_score([ENGLISH, SPANISH], "--model", "default-english")
    assert english["language_supported"] is True
    assert (spanish["lang"], spanish["language_supported"]) == ("es", False)
    assert spanish["scored_by"] == english["scored_by"]


def test_read_line_keeps_the_language() -> None:
    assert read_line('{"id": 1, "text": "hola", "lang": "ES"}', 1) == (1, "hola", "es")
    assert read_line("plain text", 4) == (4, "plain text", None)
    assert read_line("   ", 5) is None
