"""``listener score``, ``listener eval`` and ``listener train``: the model's command-line face.

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


_model_option = click.option(
    "--model", "model", default="default", show_default=True, help="Model to load."
)
_device_option = click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda."
)
_backend_option = click.option(
    "--backend",
    type=click.Choice(["auto", "torch", "onnx"]),
    default="auto",
    show_default=True,
    help="onnx: the default model on ONNX Runtime, int8, CPU; the first use exports the encoder "
    "into $LISTENER_CACHE_DIR/onnx (default ~/.cache/listener/onnx). auto: onnx for the "
    "default model unless the machine has an NVIDIA GPU, else torch.",
)


@click.command()
@_model_option
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@_device_option
@_backend_option
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

    scored = score_stream(classifier, sys.stdin, sys.stdout, max(SCORE_CHUNK, batch_size), reject)
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
@_model_option
@click.option(
    "--predictions",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write per-post predictions here (.jsonl for JSON Lines, else TSV).",
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@_device_option
@_backend_option
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


def _parse_pooling(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    """``mean:-1,cls:-1`` → ("mean:-1", "cls:-1"); layers count from the end (-1 = last)."""
    if not value:
        return None
    specs = tuple(part.strip() for part in value.split(","))
    for spec in specs:
        kind, _, layer = spec.partition(":")
        if kind not in ("mean", "cls") or not layer.lstrip("-").isdigit():
            raise click.BadParameter(f"{spec!r}: use mean:LAYER or cls:LAYER, e.g. mean:-1")
    return specs


def finetune_spec(
    spec: Any, epochs: int | None, lr: float | None, rank: int | None
) -> Any:
    """The default fine-tuning recipe with the options given on the command line."""
    from dataclasses import replace

    given = {"epochs": epochs, "lr": lr, "rank": rank, "alpha": 2.0 * rank if rank else None}
    return replace(spec, **{k: v for k, v in given.items() if v is not None})


@click.command()
@click.option(
    "--data",
    default="../shared/data",
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with sentiment/{train,val}.tsv and complaints/train.tsv.",
)
@click.option(
    "--out",
    default="classifiers/models/default",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where heads.safetensors and heads.json are written.",
)
@click.option("--seed", default=13, show_default=True, type=int)
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--max-train", type=click.IntRange(min=1), help="Subsample sentiment/train.tsv.")
@click.option(
    "--finetune-epochs",
    type=click.IntRange(min=0),
    help="Epochs of LoRA fine-tuning of the encoder (default: the committed recipe's); "
    "0 keeps the encoder frozen and trains the heads only (minutes on CPU).",
)
@click.option("--finetune-lr", type=click.FloatRange(min=0, min_open=True), help="Adapters' LR.")
@click.option("--lora-rank", type=click.IntRange(min=1), help="Adapter rank (alpha = 2 × rank).")
@click.option("--cv-folds", default=5, show_default=True, type=click.IntRange(min=2))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@_device_option
@click.option(
    "--pooling",
    callback=_parse_pooling,
    help="Comma-separated poolings such as mean:-1 (last layer only). "
    "Default: mean of each of the last four layers.",
)
@click.option("--strip-hash", is_flag=True, help="Normalise #word to word.")
@click.option("--no-normalize", is_flag=True, help="Feed raw text (ablation only).")
@click.option(
    "--extra", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="More labelled TSV rows for training (repeatable), e.g. the dashboard's feedback "
    "export; sentiment or complaint labels pick the head.",
)
def train(
    data: Path,
    out: Path,
    seed: int,
    epochs: int,
    max_train: int | None,
    finetune_epochs: int | None,
    finetune_lr: float | None,
    lora_rank: int | None,
    cv_folds: int,
    batch_size: int,
    device: str,
    pooling: tuple[str, ...] | None,
    strip_hash: bool,
    no_normalize: bool,
    extra: tuple[Path, ...],
) -> None:
    """Train the default model (heads, then LoRA fine-tuning); prints val and CV metrics."""
    from classifiers.finetune import FinetuneSpec
    from classifiers.normalize import NormalizeSettings
    from classifiers.train import TrainConfig, run_training

    on = not no_normalize
    cfg = TrainConfig(
        data_dir=data,
        out_dir=out,
        seed=seed,
        epochs=epochs,
        max_train=max_train,
        cv_folds=cv_folds,
        embed_batch_size=batch_size,
        device=device,
        settings=NormalizeSettings(users=on, links=on, unescape_html=on, strip_hash=strip_hash),
        log=click.echo,
        extra=extra,
        finetune=finetune_spec(FinetuneSpec(), finetune_epochs, finetune_lr, lora_rank),
    )
    if pooling:
        cfg.pooling = pooling
    result = run_training(cfg)
    sentiment, urgency = result["metrics"]["sentiment"], result["metrics"]["urgency"]
    click.echo(
        f"sentiment ({sentiment['chosen']}): val macro-recall {100 * sentiment['val_macro_recall']:.1f}, "
        f"macro-F1 {100 * sentiment['val_macro_f1']:.1f}, accuracy {100 * sentiment['val_accuracy']:.1f}, "
        f"ECE {100 * sentiment['val_ece_before_temperature']:.1f} → "
        f"{100 * sentiment['val_ece_after_temperature']:.1f} (T={sentiment['temperature']:.2f})"
    )
    click.echo(
        f"urgency ({urgency['chosen']}): {urgency['cv_folds']}-fold CV macro-F1 "
        f"{100 * urgency['cv_macro_f1']:.1f}, ECE {100 * urgency['cv_ece_before_temperature']:.1f} → "
        f"{100 * urgency['cv_ece_after_temperature']:.1f} (T={urgency['temperature']:.2f})"
    )
    click.echo(f"model version {result['version']}")
