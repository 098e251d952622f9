"""``listener train``: the default model's heads, then its encoder's LoRA fine-tuning.

Recipe (see classifiers/models/default/MODEL_CARD.md):

1. normalise texts (``classifiers.normalize``) and embed them once with the frozen encoder,
   mean-pooled over tokens for each of the last four layers (nothing is cached on disk);
2. sentiment: train candidate heads (linear = multinomial logistic regression, and a small MLP)
   on ``sentiment/train.tsv`` with class-balanced cross-entropy, because the metric is macro
   recall; keep the epoch and candidate with the best macro-recall on ``sentiment/val.tsv``.
   ``test.tsv`` is never read here: it is only for ``listener eval``;
3. fine-tune the encoder through a LoRA adapter together with that head, warm-started from it
   (``classifiers.finetune``; skipped with ``finetune.epochs == 0``), then embed again with
   the adapter merged; temperature-scale the sentiment head on val (ECE before/after reported);
4. urgency, on the adapted encoder's features: candidates scored by stratified k-fold macro-F1 on ``complaints/train.tsv``, the
   best one refitted on all rows;
5. write ``heads.safetensors`` + ``heads.json`` + ``adapter.safetensors`` (a few MB in all).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from classifiers.artifacts import (
    ADAPTER_FILE,
    DEFAULT_HEADS_DIR,
    ENCODER_PACKAGE,
    HEADS_FILE,
    META_FILE,
    artifacts_version,
)
from classifiers.base import SENTIMENT_LABELS
from classifiers.calibration import fit_temperature
from classifiers.evaluate import (
    expected_calibration_error,
    read_labelled_tsv,
    sentiment_metrics,
)
from classifiers.finetune import FinetuneSpec, finetune_stage
from classifiers.heads_train import HeadSpec, cross_validate, head_logits, set_seeds, train_head
from classifiers.normalize import DEFAULT_SETTINGS, NormalizeSettings, normalize_texts
from classifiers.postprocess import softmax
from classifiers.transformer import DEFAULT_POOLING, MAX_LENGTH, Encoder, Head
from listener.core.errors import ClassifierError

URGENCY_LABELS = ("not_complaint", "complaint")


@dataclass
class TrainConfig:
    """Everything that shapes a training run; the defaults are the committed model's recipe."""

    data_dir: Path
    out_dir: Path = DEFAULT_HEADS_DIR
    seed: int = 13
    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 128  # rows per optimiser step
    embed_batch_size: int = 64  # texts per encoder forward pass
    max_train: int | None = None  # subsample sentiment/train.tsv (None = all rows)
    cv_folds: int = 5
    device: str = "auto"
    pooling: tuple[str, ...] = DEFAULT_POOLING
    settings: NormalizeSettings = DEFAULT_SETTINGS
    extra: tuple[Path, ...] = ()  # more labelled TSVs appended to a training set (--extra)
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)  # epochs=0: frozen encoder
    sentiment_candidates: tuple[HeadSpec, ...] = (
        HeadSpec(0, input_dropout=0.2),
        HeadSpec(512, input_dropout=0.1, dropout=0.5),
    )
    urgency_candidates: tuple[HeadSpec, ...] = (
        HeadSpec(0, input_dropout=0.2, epochs=30),
        HeadSpec(256, input_dropout=0.1, dropout=0.5, epochs=20),
    )
    log: Callable[[str], None] = field(default=print)


def read_split(path: Path, labels: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Texts and integer labels (index into ``labels``) of one shared-format TSV."""
    rows = read_labelled_tsv(path)
    unknown = sorted({row.get("label") or "" for row in rows} - set(labels))
    if unknown or not rows:
        raise ClassifierError(f"{path}: no rows or unknown labels {unknown}; expected {labels}")
    return [row["text"] for row in rows], np.array([labels.index(r["label"]) for r in rows])


def read_extra(path: Path) -> tuple[str, list[str], np.ndarray]:
    """An extra TSV (e.g. the dashboard's feedback export): its labels say which head it trains."""
    found = {row.get("label") or "" for row in read_labelled_tsv(path)}
    task = "sentiment" if found <= set(SENTIMENT_LABELS) else "urgency"
    texts, y = read_split(path, SENTIMENT_LABELS if task == "sentiment" else URGENCY_LABELS)
    return task, texts, y


def train_sentiment(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    device: torch.device,
) -> tuple[Head, HeadSpec, dict[str, Any]]:
    """Pick the best candidate head on val macro-recall, then fit its temperature on val."""
    results: dict[str, float] = {}
    best: tuple[float, Head, HeadSpec] | None = None
    for spec in cfg.sentiment_candidates:
        spec = HeadSpec(spec.hidden, spec.input_dropout, spec.dropout, cfg.epochs)
        cfg.log(f"sentiment head {spec.kind}:")
        head, history = train_head(
            *train, spec, cfg, n_classes=3, balanced=True, val=val, device=device
        )
        results[spec.kind] = max(history)
        if best is None or max(history) > best[0]:
            best = (max(history), head, spec)
        cfg.log(
            f"  best val macro-recall {100 * max(history):.2f} at epoch {1 + int(np.argmax(history))}"
        )
    assert best is not None, "at least one sentiment candidate is configured"
    _, head, spec = best
    metrics = {
        "chosen": spec.kind,
        "val_macro_recall_by_candidate": {k: round(v, 4) for k, v in results.items()},
        **calibrate_sentiment(head, val, device),
    }
    return head, spec, metrics


def calibrate_sentiment(
    head: Head, val: tuple[np.ndarray, np.ndarray], device: torch.device
) -> dict[str, Any]:
    """Fit the head's temperature on val; its val metrics and ECE before and after."""
    logits = head_logits(head, val[0], device)
    temperature = fit_temperature(logits, val[1])
    gold = [SENTIMENT_LABELS[k] for k in val[1]]
    predicted = [SENTIMENT_LABELS[k] for k in logits.argmax(1)]
    before = sentiment_metrics(gold, predicted, softmax(logits))
    after_probs = softmax(logits / temperature)
    ece_after = expected_calibration_error(after_probs.max(1), logits.argmax(1) == val[1])
    return {
        "val_macro_recall": round(before.macro_recall, 4),
        "val_macro_f1": round(before.macro_f1, 4),
        "val_accuracy": round(before.accuracy, 4),
        "val_ece_before_temperature": round(before.ece, 4),
        "val_ece_after_temperature": round(ece_after, 4),
        "temperature": round(temperature, 4),
    }


def train_urgency(
    x: np.ndarray, y: np.ndarray, cfg: TrainConfig, device: torch.device
) -> tuple[Head, HeadSpec, dict[str, Any]]:
    """Pick the urgency candidate with the best k-fold macro-F1, refit it on every row.

    Its temperature is fitted on the out-of-fold logits: there is no separate validation split
    of complaints, and a head trained on 2k rows is far too sure of itself without it.
    """
    scores, out_of_fold = {}, {}
    for spec in cfg.urgency_candidates:
        scores[spec.kind], out_of_fold[spec.kind] = cross_validate(x, y, spec, cfg, device)
        cfg.log(
            f"urgency head {spec.kind}: {cfg.cv_folds}-fold CV macro-F1 {100 * scores[spec.kind]:.2f}"
        )
    spec = max(cfg.urgency_candidates, key=lambda s: scores[s.kind])
    logits = out_of_fold[spec.kind]
    temperature = fit_temperature(logits, y)
    correct = logits.argmax(1) == y
    head, _ = train_head(x, y, spec, cfg, n_classes=2, balanced=False, device=device)
    metrics = {
        "chosen": spec.kind,
        "cv_folds": cfg.cv_folds,
        "cv_macro_f1_by_candidate": {k: round(v, 4) for k, v in scores.items()},
        "cv_macro_f1": round(scores[spec.kind], 4),
        "cv_ece_before_temperature": round(
            expected_calibration_error(softmax(logits).max(1), correct), 4
        ),
        "cv_ece_after_temperature": round(
            expected_calibration_error(softmax(logits / temperature).max(1), correct), 4
        ),
        "temperature": round(temperature, 4),
    }
    return head, spec, metrics


def head_config(head: Head, spec: HeadSpec, labels: tuple[str, ...]) -> dict[str, Any]:
    """What the loader needs to rebuild a head, plus how it was trained (for the card)."""
    return {
        "labels": list(labels),
        "in_dim": int(head.mean.shape[0]),
        "hidden": spec.hidden,
        "input_dropout": spec.input_dropout,
        "dropout": spec.dropout,
        "epochs": spec.epochs,
    }


def save_artifacts(
    out_dir: Path, heads: dict[str, Head], meta: dict[str, Any], adapter: Path | None
) -> str:
    """Write the heads, the JSON and move the adapter into place (or drop a stale one, so a
    frozen-encoder model never picks up an old adapter); returns the new model version."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if adapter is not None:
        adapter.replace(out_dir / ADAPTER_FILE)
    else:
        (out_dir / ADAPTER_FILE).unlink(missing_ok=True)
    tensors = {
        f"{task}.{name}": tensor.detach().float().cpu().contiguous()
        for task, head in heads.items()
        for name, tensor in head.state_dict().items()
    }
    save_file(tensors, str(out_dir / HEADS_FILE), metadata={"format": "listener-heads-1"})
    (out_dir / META_FILE).write_text(
        json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return artifacts_version(out_dir)


def embed(encoder: Encoder, texts: list[str], cfg: TrainConfig, what: str) -> np.ndarray:
    """Normalise and embed with a progress bar; reports the throughput."""
    started = time.perf_counter()
    cfg.log(f"embedding {len(texts)} {what} texts")
    features = encoder.embed(
        normalize_texts(texts, cfg.settings), batch_size=cfg.embed_batch_size, progress=True
    )
    seconds = time.perf_counter() - started
    cfg.log(
        f"  {len(texts)} texts in {seconds:.0f}s ({len(texts) / max(seconds, 1e-9):.0f} texts/s)"
    )
    return features


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """The whole recipe; prints progress through ``cfg.log`` and returns the written metadata."""
    started = time.perf_counter()
    set_seeds(cfg.seed)
    data = Path(cfg.data_dir)
    train_texts, train_y = read_split(data / "sentiment" / "train.tsv", SENTIMENT_LABELS)
    val_texts, val_y = read_split(data / "sentiment" / "val.tsv", SENTIMENT_LABELS)
    urgent_texts, urgent_y = read_split(data / "complaints" / "train.tsv", URGENCY_LABELS)
    if cfg.max_train and cfg.max_train < len(train_texts):
        keep = np.sort(
            np.random.default_rng(cfg.seed).permutation(len(train_texts))[: cfg.max_train]
        )
        train_texts, train_y = [train_texts[i] for i in keep], train_y[keep]
        cfg.log(f"subsampled sentiment/train.tsv to {len(keep)} rows (--max-train)")
    rows = {
        "sentiment/train.tsv": len(train_texts),
        "sentiment/val.tsv": len(val_texts),
        "complaints/train.tsv": len(urgent_texts),
    }
    for path in cfg.extra:  # reviewed posts: training rows only, never validation
        task, texts, y = read_extra(Path(path))
        if task == "sentiment":
            train_texts, train_y = train_texts + texts, np.concatenate([train_y, y])
        else:
            urgent_texts, urgent_y = urgent_texts + texts, np.concatenate([urgent_y, y])
        rows[f"extra {task}: {Path(path).name}"] = len(texts)
        cfg.log(f"added {len(texts)} {task} rows from {path} (--extra)")
    encoder = Encoder(device=cfg.device, pooling=cfg.pooling, max_length=MAX_LENGTH)
    cfg.log(
        f"encoder {encoder.encoder_dir} on {encoder.device}, {torch.get_num_threads()} CPU threads"
    )
    train_x = embed(encoder, train_texts, cfg, "sentiment/train")
    val_x = embed(encoder, val_texts, cfg, "sentiment/val")
    sentiment_head, sentiment_spec, sentiment_metrics_ = train_sentiment(
        (train_x, train_y), (val_x, val_y), cfg, encoder.device
    )
    adapter = None
    if cfg.finetune.epochs:
        del train_x  # 300 MB of features, not needed again
        adapter = Path(cfg.out_dir) / f".{ADAPTER_FILE}.new"  # moved into place by save_artifacts
        encoder, sentiment_head, tuning = finetune_stage(
            encoder,
            sentiment_head,
            (normalize_texts(train_texts, cfg.settings), train_y),
            (normalize_texts(val_texts, cfg.settings), val_y),
            cfg.finetune,
            adapter_out=adapter,
            seed=cfg.seed,
            log=cfg.log,
        )
        val_x = embed(encoder, val_texts, cfg, "sentiment/val, adapted encoder")
        frozen = sentiment_metrics_
        sentiment_metrics_ = {
            "chosen": frozen["chosen"],
            **calibrate_sentiment(sentiment_head, (val_x, val_y), encoder.device),
            "frozen_encoder": frozen,
            "finetune": tuning,
        }
    urgent_x = embed(encoder, urgent_texts, cfg, "complaints/train")
    urgency_head, urgency_spec, urgency_metrics = train_urgency(
        urgent_x, urgent_y, cfg, encoder.device
    )
    meta = {
        "format": 1,
        "encoder": {
            "package": ENCODER_PACKAGE,
            "sha256": encoder.sha256,
            "max_length": encoder.max_length,
            "pooling": list(encoder.pooling),
        },
        "normalize": cfg.settings.to_dict(),
        "sentiment": {
            **head_config(sentiment_head, sentiment_spec, SENTIMENT_LABELS),
            "temperature": sentiment_metrics_["temperature"],
        },
        "urgency": {
            **head_config(urgency_head, urgency_spec, URGENCY_LABELS),
            "positive": "complaint",
            "temperature": urgency_metrics["temperature"],
        },
        "adapter": (
            {"file": ADAPTER_FILE, "rank": cfg.finetune.rank, "alpha": cfg.finetune.alpha}
            if adapter
            else None
        ),
        "metrics": {"sentiment": sentiment_metrics_, "urgency": urgency_metrics},
        "training": {
            "seed": cfg.seed,
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
            "batch_size": cfg.batch_size,
            "rows": rows,
        },
    }
    heads = {"sentiment": sentiment_head, "urgency": urgency_head}
    version = save_artifacts(Path(cfg.out_dir), heads, meta, adapter)
    cfg.log(
        f"wrote {cfg.out_dir}/{HEADS_FILE} and {META_FILE}: version {version}, "
        f"{time.perf_counter() - started:.0f}s in all"
    )
    return {"version": version, **meta}
