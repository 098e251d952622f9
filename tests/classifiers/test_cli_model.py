"""The score and eval commands through click's CliRunner, on the real default model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from classifiers.base import SENTIMENT_LABELS
from listener.commands.scoring import eval_command, parse_line, score
from listener.core.errors import ClassifierError


def run_score(stdin: str, *args: str) -> list[dict]:
    result = CliRunner().invoke(score, ["--device", "cpu", *args], input=stdin)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_score_json_lines() -> None:
    stdin = (
        json.dumps({"id": "t1", "text": "I love this, best purchase ever"})
        + "\n"
        + json.dumps({"id": 7, "text": "worst service, my order never arrived and nobody answers"})
        + "\n"
    )
    first, second = run_score(stdin)
    assert (first["id"], first["sentiment"]) == ("t1", "positive")
    assert (second["id"], second["sentiment"]) == (7, "negative")
    assert set(first) == {"id", "sentiment", "probabilities", "urgency", "lang", "language_supported",
                          "scored_by"}
    assert tuple(first["probabilities"]) == SENTIMENT_LABELS
    assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert second["urgency"] > first["urgency"]


def test_score_plain_lines_mixed_with_json_and_blank_lines() -> None:
    stdin = (
        "I love this, best purchase ever\n\n" + json.dumps({"text": "terrible, I hate it"}) + "\n"
    )
    stdin += "[brackets are not JSON Lines here] awful awful awful\n"
    rows = run_score(stdin, "--batch-size", "2")
    assert [row["id"] for row in rows] == [1, 3, 4]  # line numbers; the blank line is skipped
    assert [row["sentiment"] for row in rows[:2]] == ["positive", "negative"]


def test_score_reports_bad_json_lines_and_scores_the_rest() -> None:
    # before: line 5 aborted the whole batch, and line 3 was scored as the text "{broken json"
    stdin = "\n".join([
        json.dumps({"id": "a", "text": "I love this, best purchase ever"}),
        "terrible, I hate it",
        '{broken json, "text": "awful"',
        "",
        '{"id": 5, "body": "no text here"}',
        '{"id": 6, "text": 42}',
        json.dumps({"id": "g", "text": "worst service, my order never arrived"}),
    ]) + "\n"
    result = CliRunner().invoke(score, ["--device", "cpu", "--batch-size", "2"], input=stdin)
    assert result.exit_code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["a", 2, "g"]
    assert result.stderr.splitlines() == [
        "line 3: not valid JSON: Expecting property name enclosed in double quotes (column 2)",
        "line 5: no 'text' field (a string); give {\"id\": ..., \"text\": \"...\"} or a plain "
        "line of text",
        "line 6: no 'text' field (a string); give {\"id\": ..., \"text\": \"...\"} or a plain "
        "line of text",
        "Error: 3 line(s) rejected, 3 scored",
    ]


def test_score_unknown_model_is_a_classifier_error() -> None:
    result = CliRunner().invoke(score, ["--model", "someone/some-model"], input="hi\n")
    assert isinstance(result.exception, ClassifierError)


def test_parse_line() -> None:
    assert parse_line("  hello  \n", 3) == (3, "hello")
    assert parse_line('{"text": "hi", "id": "x"}', 1) == ("x", "hi")
    assert parse_line("[1, 2]", 2) == (2, "[1, 2]")
    with pytest.raises(ClassifierError, match="line 7: not valid JSON"):
        parse_line("{not json}", 7)
    assert parse_line(" \n", 4) is None


def test_eval_prints_report_and_writes_predictions(tmp_path: Path) -> None:
    data = tmp_path / "mini.tsv"
    data.write_text(
        "id\tlabel\ttext\n"
        "a\tpositive\tI love this, best purchase ever\n"
        "b\tnegative\tworst service, my order never arrived and nobody answers\n"
        "c\tnegative\tThis is terrible, I hate it and want my money back\n",
        encoding="utf-8",
    )
    preds = tmp_path / "preds.jsonl"
    args = [
        "--data",
        str(data),
        "--predictions",
        str(preds),
        "--device",
        "cpu",
        "--batch-size",
        "32",
    ]
    result = CliRunner().invoke(eval_command, args)
    assert result.exit_code == 0, result.output
    assert "macro-recall" in result.output and "rows            3" in result.output
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [row["id"] for row in lines] == ["a", "b", "c"]
    assert [row["predicted"] for row in lines] == ["positive", "negative", "negative"]


def test_eval_requires_data() -> None:
    result = CliRunner().invoke(eval_command, [])
    assert result.exit_code == 2 and "--data" in result.output
