"""``listener train``: train the default model (heads, then LoRA fine-tuning of the encoder)
and print its validation and cross-validation metrics. ``listener train --from-feedback -c
config.yaml`` (also the command :func:`retrain`, for ``listener retrain``) retrains the heads
on the reviewed posts in the configured database instead and promotes the result only when
it is better (:mod:`listener.retraining`, :mod:`classifiers.corrections`).

A plain click command that :mod:`listener.cli` registers on the main group. Heavy imports (torch,
transformers, numpy) happen inside the command body so ``listener --help`` stays fast; the work
is in :mod:`classifiers.train` and :mod:`classifiers.finetune`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from listener.commands.options import (
    cli_actor,
    config_option,
    device_option,
    load_for_command,
)


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
@device_option
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
@click.option(
    "--from-feedback", is_flag=True,
    help="Retrain the heads on the reviewed posts of the database in --config and promote the "
    "result only if it beats the active model (same as `listener retrain`; --data, --seed, "
    "--epochs, --max-train (replayed rows) and --device apply, the other options do not).",
)
@config_option
@click.option("--dry-run", is_flag=True, help="With --from-feedback: compare, promote nothing.")
@click.option(
    "--models-dir", type=click.Path(file_okay=False, path_type=Path),
    help="With --from-feedback: where promoted models go (default: classifier.models_dir, "
    "else models/ beside the database).",
)
@click.pass_context
def train(
    ctx: click.Context,
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
    from_feedback: bool,
    config_path: str,
    dry_run: bool,
    models_dir: Path | None,
) -> None:
    """Train the default model (heads, then LoRA fine-tuning); prints val and CV metrics.
    With --from-feedback: retrain the heads on reviewers' corrections (`listener retrain`)."""
    if from_feedback:
        given = {name: ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
                 for name in ("data", "seed", "epochs")}
        ctx.invoke(
            retrain, config_path=config_path, dry_run=dry_run, models_dir=models_dir,
            data=data if given["data"] else None, seed=seed if given["seed"] else None,
            epochs=epochs if given["epochs"] else None, replay_rows=max_train, device=device,
            min_reviewed=None, held_out_percent=None, rescore_hours=None,
            max_english_drop=None, english_val_rows=None, lr=None, reviewed_weight=None)
        return
    if dry_run or models_dir is not None:
        raise click.UsageError("--dry-run and --models-dir go with --from-feedback")
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


@click.command("retrain")
@config_option
@click.option("--dry-run", is_flag=True,
              help="Train and compare, but promote nothing and record nothing.")
@click.option(
    "--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The committed training data (sentiment/{train,val}.tsv, complaints/train.tsv) "
    "[default: classifier.retrain.data_dir, else ../shared/data].",
)
@click.option(
    "--models-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Where promoted models go [default: classifier.models_dir, else models/ beside the "
    "database].",
)
@click.option("--min-reviewed", type=click.IntRange(min=1),
              help="Reviewed posts a field needs before its head is retrained [default: 50].")
@click.option("--held-out-percent", type=click.IntRange(1, 99),
              help="Share of reviewed posts held out to judge the candidate [default: 30].")
@click.option("--rescore-hours", type=click.FloatRange(min=0),
              help="A promoted model re-scores posts collected this recently [default: 48].")
@click.option("--replay-rows", type=click.IntRange(min=1),
              help="Committed sentiment rows replayed with the corrections [default: 4000].")
@click.option("--max-english-drop", type=click.FloatRange(min=0),
              help="Points of English val macro-recall a promotion may cost [default: 0.5].")
@click.option("--english-val-rows", type=click.IntRange(min=1), hidden=True,
              help="Judge on this many sentiment/val.tsv rows (tests).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), hidden=True,
              help="The heads' learning rate (tests: tiny data takes larger steps).")
@click.option("--reviewed-weight", type=click.FloatRange(min=0, min_open=True), hidden=True,
              help="How many committed rows one reviewed post weighs [default: 4].")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs [default: 6].")
@click.option("--seed", type=int, help="Seed [default: 13].")
@device_option
def retrain(
    config_path: str,
    dry_run: bool,
    data: Path | None,
    models_dir: Path | None,
    min_reviewed: int | None,
    held_out_percent: int | None,
    rescore_hours: float | None,
    replay_rows: int | None,
    max_english_drop: float | None,
    english_val_rows: int | None,
    lr: float | None,
    reviewed_weight: float | None,
    epochs: int | None,
    seed: int | None,
    device: str,
) -> None:
    """Retrain the model's heads on reviewers' corrections; promote only if better.

    Compares the active model and the candidate on the held-out reviewed posts (macro-recall
    per head) and on the English val set, prints the table and the decision, and records the
    decision in the audit log (model.retrain)."""
    from listener.core.models import utcnow
    from listener.retraining import (
        RESCORE_HOURS,
        data_dir_for,
        models_dir_for,
        retrain_from_feedback,
        retrain_section,
        settings_for,
    )
    from storage.db import open_db
    from storage.feedback import HELD_OUT_PERCENT

    config = load_for_command(config_path)
    section = retrain_section(config)
    settings = settings_for(config, min_reviewed=min_reviewed, replay_rows=replay_rows,
                            max_english_drop=max_english_drop, english_val_rows=english_val_rows,
                            lr=lr, reviewed_weight=reviewed_weight, epochs=epochs, seed=seed,
                            device=device)
    folder = models_dir or models_dir_for(config)
    percent = held_out_percent or int(section.get("held_out_percent") or HELD_OUT_PERCENT)
    hours = rescore_hours if rescore_hours is not None else float(
        section.get("rescore_hours") or RESCORE_HOURS)
    db = open_db(config.database)
    try:
        outcome = retrain_from_feedback(
            db, folder, data_dir_for(config, data), utcnow(), actor=cli_actor(),
            settings=settings, held_out_percent=percent, rescore_hours=hours,
            dry_run=dry_run, log_line=lambda line: click.echo(line, err=True))
    finally:
        db.close()
    click.echo(outcome.table())
    if outcome.promoted:
        click.echo(f"active model: {folder / str(outcome.version)}; the classify stage "
                   f"re-scores posts after id {outcome.rescore_after_post_id} with it (the "
                   "daemon loads it at its next start)")
    if not dry_run:
        click.echo("recorded in the audit log as model.retrain")
