"""Training the small heads on pooled encoder features: one head, its k-fold CV, its logits.

Split from ``classifiers.train`` (the recipe) so each stays readable; these are the plain
building blocks it combines: AdamW over a standardised linear layer or one-hidden-layer MLP,
class-balanced when the metric is macro-recall, best val epoch kept.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from classifiers.calibration import stratified_folds
from classifiers.evaluate import macro_f1, macro_recall
from classifiers.transformer import Head


class TrainConfig(Protocol):
    """What training a head reads of ``classifiers.train.TrainConfig`` (which builds on this
    module, so this one names only the settings it uses instead of importing it)."""

    seed: int
    lr: float
    weight_decay: float
    batch_size: int
    cv_folds: int
    log: Callable[[str], None]


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
