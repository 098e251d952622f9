"""``listener score`` (posts from stdin, routed by language as the daemon routes them) and
``listener eval`` (a labelled data set): the model's command-line face, scoring and evaluation.

Plain click commands; ``listener.cli`` registers them on the main group. Heavy imports (torch,
transformers, numpy) happen inside the command bodies so ``listener --help`` stays fast. Errors
are raised as ListenerError subclasses; only ``listener.cli`` turns them into messages and exit codes.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

import click

from listener.commands.options import backend_option, device_option, model_option
from listener.core.errors import ClassifierError
from listener.core.language import detect, platform_language

if TYPE_CHECKING:
    from classifiers.base import Classifier, Prediction
    from classifiers.routing import LanguageRouter

SCORE_CHUNK = 512  # lines read before scoring: enough for length-sorted batches, bounded memory


@functools.lru_cache(maxsize=2)
def _classifier(spec: str, batch_size: int, device: str, backend: str = "auto") -> Classifier:
    """Load a model once per process, however many commands run in it (tests run several)."""
    from classifiers.loader import load_classifier

    return load_classifier(spec, batch_size=batch_size, device=device, backend=backend)


@functools.lru_cache(maxsize=2)
def _router(spec: str, batch_size: int, device: str, backend: str = "auto") -> LanguageRouter:
    """The model routed by language as the daemon routes it (:func:`classifiers.loader.
    load_routed`): ``default`` scores English with the English model and seven other languages
    with the multilingual one. Loaded once per process; ``eval`` and ``train`` keep the English
    model alone (their data sets are English)."""
    from classifiers.loader import load_routed

    return load_routed(spec, detect=detect, batch_size=batch_size, device=device,
                       backend=backend)


class ScoreInput(NamedTuple):
    """One post to score: its id, its text, and the language its line gave (None: detect)."""

    id: Any
    text: str
    lang: str | None = None


def parse_line(line: str, number: int) -> tuple[Any, str] | None:
    """``(id, text)`` of one input line (:func:`read_line` without the language)."""
    parsed = read_line(line, number)
    return None if parsed is None else (parsed.id, parsed.text)


def read_line(line: str, number: int) -> ScoreInput | None:
    """One input line: a JSON object with ``text`` (and maybe ``id`` and ``lang``) or plain
    text, detected per line. Blank lines give None; a line's id defaults to its 1-based number.

    A line that starts with ``{`` is meant as JSON: if it does not parse, has no string
    ``text`` or a ``lang`` that is not a string, it raises ClassifierError naming the line
    (scoring ``{broken json`` as a post's text would hide the mistake in plausible output).
    ``lang`` is read as a platform's tag (``pt-BR`` → ``pt``); one that names no language
    (``und``, empty) leaves the language to detection, as for a collected post.
    """
    stripped = line.strip()
    if not stripped:
        return None
    if not stripped.startswith("{"):
        return ScoreInput(number, stripped)
    try:
        record = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise ClassifierError(
            f"line {number}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str):
        raise ClassifierError(f"line {number}: no 'text' field (a string); "
                              'give {"id": ..., "text": "..."} or a plain line of text')
    lang = record.get("lang")
    if lang is not None and not isinstance(lang, str):
        raise ClassifierError(f"line {number}: 'lang' must be a language code such as "
                              f'"es" (a string), not {json.dumps(lang)}')
    return ScoreInput(record.get("id", number), text, platform_language(lang))


Reject = Callable[[str], None]


def _chunks(lines: Iterable[str], size: int, reject: Reject) -> Iterator[list[ScoreInput]]:
    """Parsed inputs in chunks of ``size``, skipping blank lines; a line that cannot be read
    goes to ``reject`` with its reason, and the rest go on."""
    chunk: list[ScoreInput] = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed = read_line(line, number)
        except ClassifierError as exc:
            reject(str(exc))
            continue
        if parsed is not None:
            chunk.append(parsed)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_stream(
    classifier: LanguageRouter, lines: Iterable[str], out: TextIO, chunk: int,
    reject: Reject | None = None,
) -> int:
    """Score lines and write one JSON object per input post; returns how many were scored.
    Each post goes to the model for its language (the line's ``lang``, else detected).
    Unreadable lines go to ``reject`` (default: raise, stopping the batch)."""
    count = 0
    for items in _chunks(lines, chunk, reject or _raise):
        predictions = classifier.predict([item.text for item in items],
                                         [item.lang for item in items])
        for item, pred in zip(items, predictions, strict=True):
            out.write(json.dumps(score_record(item.id, pred), ensure_ascii=False) + "\n")
        out.flush()
        count += len(items)
    return count


@click.command()
@model_option
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@device_option
@backend_option
def score(model: str, batch_size: int, device: str, backend: str) -> None:
    """Score posts from stdin: JSON Lines {"id", "text", "lang"} or plain text lines, mixed freely.

    Each post is scored by the model for its language: the line's "lang" (e.g. "es"), else the
    detected one, as the daemon does. Writes one JSON object per post to stdout: id (the line
    number when absent), sentiment, probabilities (negative, neutral, positive), urgency (0..1,
    needs a reply from the brand), lang (the language scored as; "und": too short to tell),
    language_supported (false: no model understands that language, the verdict is a guess) and
    scored_by (the model that scored it). A line that starts with { but is not valid JSON, or
    has no "text", is reported on stderr with its line number and skipped; the rest is scored,
    and the exit status is then 1.
    """
    classifier = _router(model, batch_size, device, backend)
    rejected: list[str] = []

    def reject(reason: str) -> None:
        rejected.append(reason)
        click.echo(reason, err=True)

    # a GPU's batch of 1,024: 4,096 lines at a time, which the model scores in overlapped parts
    chunk = max(SCORE_CHUNK, batch_size * 4)
    scored = score_stream(classifier, sys.stdin, sys.stdout, chunk, reject)
    if rejected:
        raise click.ClickException(f"{len(rejected)} line(s) rejected, {scored} scored")


def score_record(post_id: Any, pred: Prediction) -> dict[str, Any]:
    """One output line: the verdict, the language it was scored as, whether a model
    understands that language (false: the verdict is a guess, read the post) and which model
    scored it."""
    return {
        "id": post_id,
        "sentiment": pred.sentiment,
        "probabilities": {k: round(v, 6) for k, v in pred.probabilities.items()},
        "urgency": round(pred.urgency, 6),
        "lang": pred.language,
        "language_supported": pred.language_supported,
        "scored_by": pred.scored_by,
    }


def _raise(reason: str) -> None:
    raise ClassifierError(reason)


@click.command("eval")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labelled TSV: id, label (negative|neutral|positive), text.",
)
@model_option
@click.option(
    "--predictions",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write per-post predictions here (.jsonl for JSON Lines, else TSV).",
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@device_option
@backend_option
def eval_command(
    data: Path, model: str, predictions: Path | None, batch_size: int, device: str, backend: str
) -> None:
    """Evaluate sentiment on a labelled TSV; prints macro-recall (TweetEval's metric) and more."""
    import time

    from classifiers.evaluate import evaluate, format_report

    classifier = _classifier(model, batch_size, device, backend)
    started = time.perf_counter()
    result = evaluate(classifier, data, predictions_path=predictions)
    seconds = time.perf_counter() - started
    title = (
        f"model {classifier.name} (version {classifier.version}, backend {backend}) on {data}"
    )
    click.echo(format_report(result, title=title))
    click.echo(f"\nscored {result.n} posts in {seconds:.1f}s ({result.n / seconds:.0f} posts/s)")
    if predictions is not None:
        click.echo(f"predictions written to {predictions}")
