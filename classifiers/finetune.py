"""Stage 2 of ``listener train``: fine-tune the encoder for sentiment through a LoRA adapter.

Stage 1 (``classifiers.train``) fits the heads on the frozen encoder. Here the encoder gets
low-rank adapters (``classifiers.lora``) and is trained end to end together with the stage-1
sentiment head, which is the warm start: the adapters begin at zero, so step 0 *is* the frozen
model, and every later evaluation on val can only be kept if it beats it.

* batches are length-bucketed (shuffled, then sorted by length within windows of 50 batches),
  so a batch of tweets pads to ~30 word pieces, not 128 — ~2× the speed on CPU;
* the loss is class-balanced cross-entropy, as for the heads, because the metric is macro-recall;
* AdamW, linear warm-up then linear decay; adapters and head have their own learning rates;
* val macro-recall is printed ``evals_per_epoch`` times an epoch and the best state is kept;
* CUDA when present (bf16 autocast), else CPU. Seeds fixed: same data, same device → same adapter.

The urgency head is *not* trained into the encoder: it is refitted (with its k-fold CV) on the
adapted encoder's features afterwards, so its cross-validated figure stays honest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from classifiers.evaluate import macro_recall
from classifiers.lora import (
    DEFAULT_TARGETS,
    adapter_state,
    add_adapters,
    load_adapter_state,
    save_adapter,
)
from classifiers.transformer import Encoder, Head


@dataclass(frozen=True)
class FinetuneSpec:
    """The fine-tuning recipe; ``epochs=0`` skips the stage (heads on the frozen encoder)."""

    epochs: int = 4
    rank: int = 16
    alpha: float = 32.0
    lora_dropout: float = 0.1
    lr: float = 5e-4  # adapters
    head_lr: float = 1e-4  # the warm-started head moves slowly
    weight_decay: float = 1e-2
    batch_size: int = 32
    warmup: float = 0.06  # share of the steps
    evals_per_epoch: int = 4

    def adapter_config(self) -> dict[str, float | int]:
        """What :func:`classifiers.lora.merge_adapter` needs, stored in the heads' JSON."""
        return {"rank": self.rank, "alpha": self.alpha}


def length_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffled batches of similar lengths: shuffle, sort within windows, shuffle the batches."""
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window].tolist(), key=lambda i: lengths[i])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def logits_of(encoder: Encoder, head: Head, ids: list[list[int]]) -> np.ndarray:
    """A head's logits on the encoder as it is now (both in evaluation mode)."""
    encoder.model.eval()
    head.eval()
    features = torch.from_numpy(encoder.embed_ids(ids, batch_size=128)).to(encoder.device)
    with torch.inference_mode():
        return head(features).float().cpu().numpy()


def autocast(device: torch.device) -> object:
    """bf16 on CUDA (fast, no loss scaling needed); CPU stays float32 (bf16 is slower there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def schedule(total: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup`` of the steps, then linear decay to 0."""
    warm = max(1, int(total * warmup))
    return lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))


def finetune_sentiment(
    encoder: Encoder,
    head: Head,
    train: tuple[list[list[int]], np.ndarray],
    val: tuple[list[list[int]], np.ndarray],
    spec: FinetuneSpec,
    *,
    seed: int,
    log: Callable[[str], None],
) -> tuple[dict[str, torch.Tensor], Head, list[dict[str, float]]]:
    """Train adapters + head; returns the best adapter state, the head restored to the same
    evaluation, and the history of val evaluations (the first one is the frozen model)."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = encoder.device
    add_adapters(encoder.model, spec.rank, spec.alpha, spec.lora_dropout)
    encoder.model.to(device)
    head.to(device)
    adapters = [p for p in encoder.model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        [{"params": adapters, "lr": spec.lr}, {"params": head.parameters(), "lr": spec.head_lr}],
        weight_decay=spec.weight_decay,
    )
    ids, y = train
    lengths = [len(row) for row in ids]
    steps_per_epoch = -(-len(ids) // spec.batch_size)
    total = steps_per_epoch * spec.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule(total, spec.warmup))
    counts = np.bincount(y, minlength=3).astype(np.float32)
    weight = torch.from_numpy(len(y) / (3 * np.maximum(counts, 1))).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    targets = torch.from_numpy(y).long()
    every = max(1, steps_per_epoch // spec.evals_per_epoch)

    def evaluate(step: int, loss: float) -> dict[str, float]:
        score = macro_recall(val[1], logits_of(encoder, head, val[0]).argmax(1), 3)
        log(
            f"  step {step}/{total} (epoch {step / steps_per_epoch:.2f})  train loss {loss:.4f}  "
            f"val macro-recall {100 * score:.2f}"
        )
        return {"step": step, "epoch": round(step / steps_per_epoch, 2), "val_macro_recall": score}

    history = [evaluate(0, float("nan"))]
    best = (history[0]["val_macro_recall"], adapter_state(encoder.model), _copy(head))
    step, running, started = 0, [], time.perf_counter()
    log(
        f"fine-tuning: {len(adapters)} adapter tensors "
        f"({sum(p.numel() for p in adapters):,} numbers), {total} steps of {spec.batch_size}"
    )
    bar = tqdm(total=total, desc="fine-tuning", unit="step", mininterval=10.0)
    for _ in range(spec.epochs):
        for batch in length_batches(lengths, spec.batch_size, rng):
            encoder.model.train()
            head.train()
            with autocast(device):
                logits = head(encoder.forward_ids([ids[i] for i in batch]).float())
            loss = loss_fn(logits.float(), targets[batch].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(adapters, 1.0)
            optimiser.step()
            scheduler.step()
            step += 1
            running.append(loss.item())
            bar.update(1)
            if step % every == 0 or step == total:
                history.append(evaluate(step, float(np.mean(running[-every:]))))
                if history[-1]["val_macro_recall"] > best[0]:
                    best = (
                        history[-1]["val_macro_recall"],
                        adapter_state(encoder.model),
                        _copy(head),
                    )
    bar.close()
    log(
        f"  {total * spec.batch_size / (time.perf_counter() - started):.0f} examples/s; "
        f"best val macro-recall {100 * best[0]:.2f}"
    )
    load_adapter_state(encoder.model, best[1])
    head.load_state_dict(best[2])
    return best[1], head.eval(), history


def _copy(head: Head) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in head.state_dict().items()}


def finetune_stage(
    encoder: Encoder,
    head: Head,
    train: tuple[list[str], np.ndarray],
    val: tuple[list[str], np.ndarray],
    spec: FinetuneSpec,
    *,
    adapter_out: Path,
    seed: int,
    log: Callable[[str], None],
) -> tuple[Encoder, Head, dict[str, Any]]:
    """Fine-tune on normalised texts, write the adapter to ``adapter_out``, and return a fresh
    encoder with it merged — loaded exactly as serving loads it — with the tuned head."""
    train_ids, val_ids = encoder.token_ids(train[0]), encoder.token_ids(val[0])
    state, head, history = finetune_sentiment(
        encoder, head, (train_ids, train[1]), (val_ids, val[1]), spec, seed=seed, log=log
    )
    adapter_out.parent.mkdir(parents=True, exist_ok=True)
    save_adapter(adapter_out, state, spec.rank, spec.alpha)
    merged = Encoder(
        encoder.encoder_dir,
        device=str(encoder.device),
        expected_sha256=encoder.sha256,
        max_length=encoder.max_length,
        pooling=encoder.pooling,
        adapter=adapter_out,
    )
    for row in history:
        row["val_macro_recall"] = round(row["val_macro_recall"], 4)
    return merged, head, {"recipe": asdict(spec), "targets": DEFAULT_TARGETS, "history": history}
