"""The torch half of :mod:`classifiers.corrections`: training a head further and writing a
promoted model. Apart so that importing the settings and outcomes (the CLI, the daemon's
schedule) does not import torch."""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from classifiers.artifacts import ADAPTER_FILE, HEADS_FILE, META_FILE, adapter_path
from classifiers.heads_train import set_seeds
from classifiers.model_store import ActiveModel, activate, install_version, prune
from classifiers.transformer import Head


def fine_tune_head(current: Head, conf: dict[str, Any], x: np.ndarray, y: np.ndarray,
                   weight: np.ndarray, *, epochs: int, lr: float, weight_decay: float,
                   batch_size: int, seed: int, balanced: bool, device: torch.device) -> Head:
    """A copy of ``current`` trained further on ``x``/``y``, row ``i`` weighing ``weight[i]``
    (class-balanced on top when the head's metric is macro-recall, as the committed recipe)."""
    set_seeds(seed)
    n_classes = len(conf["labels"])
    head = Head(int(conf["in_dim"]), n_classes, int(conf["hidden"]),
                input_dropout=float(conf.get("input_dropout", 0.0)),
                dropout=float(conf.get("dropout", 0.0)))
    head.load_state_dict(current.state_dict())  # mean/std buffers too: the same inputs
    head.to(device)
    sample = weight.astype(np.float32)
    if balanced:
        mass = np.bincount(y, weights=sample, minlength=n_classes)
        per_class = mass.sum() / (n_classes * np.maximum(mass, 1e-9))
        sample = sample * per_class[y].astype(np.float32)
    features = torch.from_numpy(x).to(device)
    targets = torch.from_numpy(y).long().to(device)
    weights = torch.from_numpy(sample).to(device)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr,
                                  weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        head.train()
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            batch = batch.to(device)
            optimiser.zero_grad()
            w = weights[batch]
            loss = (loss_fn(head(features[batch]), targets[batch]) * w).sum() / w.sum()
            loss.backward()
            optimiser.step()
    return head.eval()


def write_and_promote(models_dir: Path, current_dir: Path, meta: dict[str, Any],
                       new_meta: dict[str, Any], heads: dict[str, Head], now: datetime,
                       parent: str, rescore_after: int, keep_versions: int) -> str:
    """Write the candidate, name it (date + content hash), install it, make it active."""
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".candidate.", dir=models_dir) as tmp:
        folder = Path(tmp)
        tensors = {f"{task}.{name}": tensor.detach().float().cpu().contiguous()
                   for task, head in heads.items() for name, tensor in head.state_dict().items()}
        save_file(tensors, str(folder / HEADS_FILE), metadata={"format": "listener-heads-1"})
        files = {HEADS_FILE: folder / HEADS_FILE}
        adapter = adapter_path(current_dir, meta)
        digest = hashlib.sha256((folder / HEADS_FILE).read_bytes())
        digest.update(json.dumps(new_meta, sort_keys=True).encode())
        if adapter is not None:
            files[ADAPTER_FILE] = adapter
            digest.update(adapter.read_bytes())
        version = f"{now:%Y%m%d}-{digest.hexdigest()[:8]}"
        (folder / META_FILE).write_text(
            json.dumps({**new_meta, "version": version}, indent=2, sort_keys=True) + "\n",
            encoding="utf-8")
        files[META_FILE] = folder / META_FILE
        install_version(models_dir, version, files)
    activate(models_dir, ActiveModel(version, rescore_after, now.isoformat(timespec="seconds"),
                                     parent))
    prune(models_dir, keep_versions)
    return version
