"""Low-rank adapters (LoRA) for the encoder: how the default model is fine-tuned and stays small.

Fine-tuning all of all-MiniLM-L6-v2 would mean committing a second 90 MB encoder. LoRA instead
learns, for each adapted linear layer ``W`` (out × in), two thin matrices ``A`` (r × in) and
``B`` (out × r) and uses ``W + (alpha / r) · B A``; with r = 16 on every linear layer of the six
transformer blocks that is 0.66M numbers (2.7 MB), saved as ``adapter.safetensors`` beside the
heads. ``B`` starts at zero, so training starts exactly from the frozen encoder.

Serving never runs the low-rank branch: :func:`merge_adapter` adds ``scale · B A`` into the
encoder's weights once at load, so the adapted encoder costs what the frozen one did, on torch
and in the exported ONNX graph alike. Written here rather than taken from peft so that serving
needs no extra package and the merge is ten lines anyone can read.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from listener.core.errors import ClassifierError

FORMAT = "listener-lora-1"
# every linear layer inside the transformer blocks (not the unused pooler)
DEFAULT_TARGETS = (
    r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)


class LoraLinear(nn.Module):
    """``base(x) + scale · B(A(dropout(x)))`` with ``base`` frozen; only A and B train."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises
        self.dropout = nn.Dropout(dropout)
        for param in base.parameters():
            param.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scale


def target_names(model: nn.Module, pattern: str = DEFAULT_TARGETS) -> list[str]:
    """Names of the linear layers an adapter applies to (a full match of ``pattern``)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and re.fullmatch(pattern, name)
    ]


def add_adapters(
    model: nn.Module, rank: int, alpha: float, dropout: float, pattern: str = DEFAULT_TARGETS
) -> list[str]:
    """Freeze ``model`` and wrap each target linear layer in a :class:`LoraLinear` (training)."""
    for param in model.parameters():
        param.requires_grad_(False)
    names = target_names(model, pattern)
    if not names:
        raise ClassifierError(f"no linear layer of the encoder matches {pattern!r}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoraLinear(getattr(parent, child), rank, alpha, dropout))
    return names


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained A and B of every wrapped layer, keyed ``<layer>.lora_A`` / ``.lora_B``."""
    return {
        name: tensor.detach().float().cpu().clone()
        for name, tensor in model.state_dict().items()
        if name.endswith((".lora_A", ".lora_B"))
    }


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put saved A/B back into a model wrapped by :func:`add_adapters` (best-epoch restore)."""
    missing = model.load_state_dict(state, strict=False)
    if missing.unexpected_keys:
        raise ClassifierError(f"adapter keys not in the model: {missing.unexpected_keys[:3]}")


def save_adapter(path: Path, state: dict[str, torch.Tensor], rank: int, alpha: float) -> None:
    """Write A/B as safetensors, with rank and alpha in its metadata: the file is all that
    :func:`merge_adapter` needs (the ONNX exporter gets only its path)."""
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(path),
        metadata={"format": FORMAT, "rank": str(rank), "alpha": repr(float(alpha))},
    )


def read_adapter(path: Path) -> tuple[dict[str, torch.Tensor], float]:
    """The A/B tensors and their scale ``alpha / rank``; a ClassifierError if unreadable."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta: dict[str, Any] = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        return tensors, float(meta["alpha"]) / int(meta["rank"])
    except (OSError, RuntimeError, ValueError, KeyError, SafetensorError) as exc:
        raise ClassifierError(f"cannot read the encoder adapter {path}: {exc}") from exc


def merge_adapter(model: nn.Module, path: Path) -> nn.Module:
    """Add ``scale · B A`` into the plain (unwrapped) encoder's weights, in place, once.

    The adapter is read on the CPU and moved to each weight's device: the encoder is on the GPU
    when there is one, and CUDA refuses to add a CPU tensor to a CUDA weight.

    Keys name the layers; a key that names no layer, or a shape mismatch, means the adapter was
    trained on another encoder and is a ClassifierError rather than a silently wrong model.
    """
    tensors, scale = read_adapter(path)
    layers = sorted({key.rsplit(".", 1)[0] for key in tensors})
    with torch.no_grad():
        for layer in layers:
            try:
                linear = model.get_submodule(layer)
                weight = linear.weight  # on whatever device the encoder was loaded (CUDA …)
                lora_b, lora_a = (tensors[f"{layer}.lora_{half}"].to(weight.device)
                                  for half in ("B", "A"))
                weight += (scale * (lora_b @ lora_a)).to(weight.dtype)
            except (AttributeError, KeyError, RuntimeError) as exc:
                raise ClassifierError(
                    f"the adapter {path} does not fit this encoder at {layer!r}: {exc}"
                ) from exc
    return model
