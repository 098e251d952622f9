"""Pure numpy helpers for calibrating and validating heads (no torch, testable on small arrays)."""

from __future__ import annotations

import numpy as np


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the NLL of ``softmax(logits / T)`` (convex in 1/T: ternary search)."""

    def nll(beta: float) -> float:
        z = logits * beta
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    low, high = 0.02, 20.0
    for _ in range(100):
        a, b = low + (high - low) / 3, high - (high - low) / 3
        if nll(a) < nll(b):
            high = b
        else:
            low = a
    return float(2.0 / (low + high))


def stratified_folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``k`` disjoint index sets with the same class mix (round-robin over shuffled classes)."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        for i, index in enumerate(members):
            folds[i % k].append(int(index))
    return [np.array(sorted(fold)) for fold in folds]
