"""``listener train``: train the default model (heads, then LoRA fine-tuning of the encoder)
and print its validation and cross-validation metrics.

A plain click command that :mod:`listener.cli` registers on the main group. Heavy imports (torch,
transformers, numpy) happen inside the command body so ``listener --help`` stays fast; the work
is in :mod:`classifiers.train` and :mod:`classifiers.finetune`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from listener.commands.options import device_option


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
