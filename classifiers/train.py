"""``listener train``: fit the default model's heads on a frozen all-MiniLM-L6-v2 encoder.

Recipe (first, CPU-friendly version; see classifiers/models/default/MODEL_CARD.md):

1. normalise texts (``classifiers.normalize``) and embed them once with the frozen encoder,
   mean-pooled over tokens for each of the last four layers (nothing is cached on disk);
2. sentiment: train candidate heads (linear = multinomial logistic regression, and a small MLP)
   on ``sentiment/train.tsv`` with class-balanced cross-entropy, because the metric is macro
   recall; keep the epoch and candidate with the best macro-recall on ``sentiment/val.tsv``.
   ``test.tsv`` is never read here: it is only for ``listener eval``;
3. temperature-scale the chosen sentiment head on val (ECE before/after is reported);
4. urgency: candidates scored by stratified k-fold macro-F1 on ``complaints/train.tsv``, the
   best one refitted on all rows;
5. write ``heads.safetensors`` + ``heads.json`` (a few MB at most).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from classifiers.artifacts import (
    DEFAULT_HEADS_DIR,
    ENCODER_PACKAGE,
    HEADS_FILE,
    META_FILE,
    artifacts_version,
)
from classifiers.base import SENTIMENT_LABELS
from classifiers.calibration import fit_temperature, stratified_folds
from classifiers.evaluate import (
    expected_calibration_error,
    macro_f1,
    macro_recall,
    read_labelled_tsv,
    sentiment_metrics,
)
from classifiers.normalize import DEFAULT_SETTINGS, NormalizeSettings, normalize_texts
from classifiers.postprocess import softmax
from classifiers.transformer import DEFAULT_POOLING, MAX_LENGTH, Encoder, Head
from listener.errors import ClassifierError

URGENCY_LABELS = ("not_complaint", "complaint")


@dataclass(frozen=True)
class HeadSpec:
    """One candidate head: ``hidden`` 0 means linear (logistic regression)."""

    hidden: int = 0
    input_dropout: float = 0.0
    dropout: float = 0.0
    epochs: int = 20

    @property
    def kind(self) -> str:
        return f"mlp{self.hidden}" if self.hidden else "linear"


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


def set_seeds(seed: int) -> None:
    """Same seed, same data, same device → same heads."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def head_logits(head: Head, x: np.ndarray, device: torch.device) -> np.ndarray:
    """Logits of a head for a feature matrix (evaluation mode, no gradients)."""
    head.eval()
    with torch.inference_mode():
        return head(torch.from_numpy(x).to(device)).float().cpu().numpy()


def train_head(
    x: np.ndarray,
    y: np.ndarray,
    spec: HeadSpec,
    cfg: TrainConfig,
    *,
    n_classes: int,
    balanced: bool,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    device: torch.device,
) -> tuple[Head, list[float]]:
    """Train one head with AdamW; with ``val``, keep the epoch with the best val macro-recall."""
    set_seeds(cfg.seed)
    head = Head(
        x.shape[1], n_classes, spec.hidden, input_dropout=spec.input_dropout, dropout=spec.dropout
    )
    head.mean.copy_(torch.from_numpy(x.mean(axis=0)))
    head.std.copy_(torch.from_numpy(x.std(axis=0) + 1e-6))
    head.to(device)
    weight = None
    if balanced:  # each class weighs the same in the loss, as in the macro metric
        counts = np.bincount(y, minlength=n_classes).astype(np.float32)
        weight = torch.from_numpy(len(y) / (n_classes * np.maximum(counts, 1))).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimiser = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    features, targets = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    history: list[float] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    for epoch in range(1, spec.epochs + 1):
        head.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(cfg.batch_size):
            batch = batch.to(device)
            optimiser.zero_grad()
            loss = loss_fn(head(features[batch]), targets[batch])
            loss.backward()
            optimiser.step()
            total += loss.detach().item() * len(batch)
        if val is None:
            continue
        score = macro_recall(val[1], head_logits(head, val[0], device).argmax(1), n_classes)
        history.append(score)
        cfg.log(
            f"  {spec.kind} epoch {epoch:>2}/{spec.epochs}  loss {total / len(x):.4f}  "
            f"val macro-recall {100 * score:.2f}"
        )
        if best is None or score > best[0]:
            best = (score, {k: v.detach().clone() for k, v in head.state_dict().items()})
    if best is not None:
        head.load_state_dict(best[1])
    return head.eval(), history


def cross_validate(
    x: np.ndarray, y: np.ndarray, spec: HeadSpec, cfg: TrainConfig, device: torch.device
) -> tuple[float, np.ndarray]:
    """Mean k-fold macro-F1 of a binary head (threshold 0.5) and its out-of-fold logits."""
    out_of_fold = np.zeros((len(y), 2), dtype=np.float32)
    scores = []
    for held_out in stratified_folds(y, cfg.cv_folds, cfg.seed):
        train_idx = np.setdiff1d(np.arange(len(y)), held_out)
        head, _ = train_head(
            x[train_idx], y[train_idx], spec, cfg, n_classes=2, balanced=False, device=device
        )
        out_of_fold[held_out] = head_logits(head, x[held_out], device)
        scores.append(macro_f1(y[held_out], out_of_fold[held_out].argmax(1), 2))
    return float(np.mean(scores)), out_of_fold


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
    logits = head_logits(head, val[0], device)
    temperature = fit_temperature(logits, val[1])
    gold = [SENTIMENT_LABELS[k] for k in val[1]]
    predicted = [SENTIMENT_LABELS[k] for k in logits.argmax(1)]
    before = sentiment_metrics(gold, predicted, softmax(logits))
    after_probs = softmax(logits / temperature)
    ece_after = expected_calibration_error(after_probs.max(1), logits.argmax(1) == val[1])
    metrics = {
        "chosen": spec.kind,
        "val_macro_recall_by_candidate": {k: round(v, 4) for k, v in results.items()},
        "val_macro_recall": round(before.macro_recall, 4),
        "val_macro_f1": round(before.macro_f1, 4),
        "val_accuracy": round(before.accuracy, 4),
        "val_ece_before_temperature": round(before.ece, 4),
        "val_ece_after_temperature": round(ece_after, 4),
        "temperature": round(temperature, 4),
    }
    return head, spec, metrics


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


def save_artifacts(out_dir: Path, heads: dict[str, Head], meta: dict[str, Any]) -> str:
    """Write the safetensors weights and the JSON; returns the new model version."""
    out_dir.mkdir(parents=True, exist_ok=True)
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
    rows = {"sentiment/train.tsv": len(train_texts), "sentiment/val.tsv": len(val_texts),
            "complaints/train.tsv": len(urgent_texts)}
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
    urgent_x = embed(encoder, urgent_texts, cfg, "complaints/train")
    sentiment_head, sentiment_spec, sentiment_metrics_ = train_sentiment(
        (train_x, train_y), (val_x, val_y), cfg, encoder.device
    )
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
    version = save_artifacts(Path(cfg.out_dir), heads, meta)
    cfg.log(
        f"wrote {cfg.out_dir}/{HEADS_FILE} and {META_FILE}: version {version}, "
        f"{time.perf_counter() - started:.0f}s in all"
    )
    return {"version": version, **meta}
