"""The default model on ONNX Runtime: the predictions of ``classifiers.transformer``, no torch.

Why: on 2 CPU cores the torch path scores ~300 posts/s and its process peaks near 600 MiB RSS,
~200 MiB of it for importing torch; this one scores ~800-1,000 posts/s (int8) and peaks near
230 MiB. Here, preprocess → forward → postprocess becomes:

* the same normalisation, then the encoder's own ``tokenizer.json`` through ``tokenizers``,
  truncated to ``max_length`` and padded per length-sorted batch (not to 128, as the file asks);
* ONNX Runtime runs the encoder, whose graph ends in the masked mean over tokens of every layer,
  so only ``(batch, layers + 1, 384)`` numbers leave it; numpy picks the layers named in the
  heads' JSON and runs both heads from ``heads.safetensors`` (in float32, like torch);
* :func:`classifiers.postprocess.postprocess`, shared with the torch backend.

Serving needs onnxruntime, tokenizers, safetensors and numpy only. The graph — the encoder with
the model's LoRA adapter merged into its weights — comes from the cache that
:mod:`classifiers.onnx_export` builds in a child process on first use (that needs torch,
transformers and onnx, all core dependencies). ``classifier.backend: auto``, the default, picks
this backend for the default model on machines without an NVIDIA GPU.

Model version: int8 moves probabilities by 0.013 on average (up to 0.19) and changes ~2.5 % of
the labels torch gives, so its scores are another model's: version ``<heads version>+onnx-int8.
<export format>``, and a switch of backend makes the pipeline score posts again instead of
mixing the two in one trend. fp32 (tests, ``bench/``) gives torch's probabilities within 2e-6, float
rounding rather than another model, so it keeps torch's version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.artifacts import (
    DEFAULT_HEADS_DIR,
    HEADS_FILE,
    adapter_path,
    artifacts_version,
    read_meta,
)
from classifiers.base import Classifier, Prediction
from classifiers.batching import word_piece_ids
from classifiers.normalize import NormalizeSettings, normalize_texts
from classifiers.onnx_export import (
    EXPORT_FORMAT,
    MODEL_FILE,
    TOKENIZER_FILE,
    default_cache_dir,
    ensure_cached,
)
from classifiers.postprocess import postprocess, unit_rows
from listener.core.errors import ClassifierError, MissingDependency

INT8_SUFFIX = f"+onnx-int8.{EXPORT_FORMAT}"  # see the module docstring


def import_onnxruntime() -> Any:
    """onnxruntime, or the install hint: it is an optional extra."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependency("onnxruntime", "onnx") from exc
    return onnxruntime


class OnnxEncoder:
    """Tokenise with ``tokenizers``, run the cached graph in length-sorted batches."""

    def __init__(self, entry: Path, *, max_length: int, num_threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        ort = import_onnxruntime()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        try:
            self.tokenizer = Tokenizer.from_file(str(entry / TOKENIZER_FILE))
            options = ort.SessionOptions()
            options.intra_op_num_threads = num_threads or cores or os.cpu_count() or 1
            options.inter_op_num_threads = 1
            # idle threads sleep instead of spinning: the daemon scores 256 posts per call, with
            # numpy's heads in between; measured +5-11 % there, -3-11 % on one call of 2,048
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(
                str(entry / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # tokenizers' and onnxruntime's errors share no narrower base
            raise ClassifierError(
                f"cannot load the ONNX encoder from {entry}: {exc}; delete it to rebuild it"
            ) from exc
        self.pad_id = int((self.tokenizer.padding or {}).get("pad_id", 0))
        self.hidden = int(self.session.get_outputs()[0].shape[-1])  # 384 for MiniLM
        self.tokenizer.no_padding()  # the file pads every text to 128; we pad per batch
        self.tokenizer.enable_truncation(max_length)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids with [CLS] and [SEP], truncated like the torch path's tokenizer."""
        return word_piece_ids(self.tokenizer, texts)

    def batches(
        self, texts: Sequence[str], *, batch_size: int
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """``(positions, layer means)`` per length-sorted batch of normalised texts; the caller
        finishes each batch before asking for the next, so memory stays one batch deep."""
        ids = self.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # less padding per batch
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            yield batch, self._run([ids[i] for i in batch])

    def _run(self, batch_ids: list[list[int]]) -> np.ndarray:
        """Pad one batch to its longest text and run the graph."""
        width = max(len(row) for row in batch_ids)
        input_ids = np.full((len(batch_ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.int64)
        for row, seq in enumerate(batch_ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        (means,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
        return means


def pooled_layers(pooling: Sequence[str]) -> list[int]:
    """Layer indices of the ``mean:<layer>`` poolings in the heads' JSON, e.g. ``[-4, ..., -1]``;
    the features are those layers' means side by side, as in the torch path."""
    unsupported = [spec for spec in pooling if not spec.startswith("mean:")]
    if unsupported:
        raise ClassifierError(
            f"pooling {unsupported} is not supported by the onnx backend (only mean:<layer>); "
            "use the torch backend for these heads"
        )
    return [int(spec.split(":")[1]) for spec in pooling]


ERF_COEFFICIENTS = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU like ``torch.nn.GELU()`` (within 2e-6). numpy has no erf and scipy is no
    dependency, so erf is Abramowitz & Stegun 7.1.26, in float32 and mostly in place: on
    (2048, 512) the naive float64 form took 44 MB of temporaries."""
    z = np.abs(x) * np.float32(np.sqrt(0.5))
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    tail = np.full_like(t, ERF_COEFFICIENTS[0])  # 1 - erf(|x| / √2) = t · poly(t) · exp(-z²)
    for coefficient in ERF_COEFFICIENTS[1:]:
        tail *= t
        tail += np.float32(coefficient)
    tail *= t
    tail *= np.exp(-(z * z))
    tail *= 0.5  # gelu(x) = x · (1 - tail/2) for x ≥ 0 and x · tail/2 below, as erf is odd
    return x * np.where(x >= 0, 1.0 - tail, tail)


class NumpyHead:
    """``classifiers.transformer.Head`` at inference: standardise, Linear [→ GELU → Linear].

    The standardisation is folded into the first layer once, at load ((x - m) / s) @ W + b =
    x @ (W / s) + (b - (m / s) @ W), so scoring allocates no (n, 1536) temporaries.
    """

    def __init__(self, tensors: dict[str, np.ndarray], task: str, conf: dict[str, Any]) -> None:
        prefix = f"{task}.net."
        found = {int(key[len(prefix) :].split(".")[0]) for key in tensors if key.startswith(prefix)}
        try:
            mean, std = (tensors[f"{task}.{name}"].astype(np.float64) for name in ("mean", "std"))
            layers = [
                (tensors[f"{prefix}{i}.weight"].T.astype(np.float64), tensors[f"{prefix}{i}.bias"])
                for i in sorted(found)
            ]
        except KeyError as exc:
            raise ClassifierError(f"{HEADS_FILE} lacks {exc} for the {task} head") from exc
        fits = bool(layers) and layers[0][0].shape[0] == int(conf["in_dim"]) == len(mean)
        if not fits or len(layers) != (2 if int(conf["hidden"]) else 1):
            raise ClassifierError(f"{HEADS_FILE} does not match the {task} head in the JSON")
        weight, bias = layers[0]
        layers[0] = (weight / std[:, None], bias - (mean / std) @ weight)
        self.layers = [(w.astype(np.float32), b.astype(np.float32)) for w, b in layers]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = gelu(x)
        return x


class OnnxClassifier:
    """The default model on ONNX Runtime; built by :func:`load_onnx_classifier`, then reused."""

    def __init__(
        self,
        encoder: OnnxEncoder,
        heads_dir: Path,
        meta: dict[str, Any],
        *,
        batch_size: int,
        quantize: bool,
    ) -> None:
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(heads_dir / HEADS_FILE))
        except OSError as exc:
            raise ClassifierError(f"cannot read {heads_dir / HEADS_FILE}: {exc}") from exc
        self.encoder, self.batch_size = encoder, batch_size
        self.heads = {
            task: NumpyHead(tensors, task, meta[task]) for task in ("sentiment", "urgency")
        }
        self.layers = pooled_layers(meta["encoder"]["pooling"])
        self.settings = NormalizeSettings.from_dict(meta["normalize"])
        self.labels: tuple[str, ...] = tuple(meta["sentiment"]["labels"])
        self.temperature = float(meta["sentiment"]["temperature"])
        self.urgency_temperature = float(meta["urgency"].get("temperature", 1.0))
        self.urgent_index = meta["urgency"]["labels"].index(meta["urgency"]["positive"])
        suffix = INT8_SUFFIX if quantize else ""  # see the module docstring
        self.name, self.version = "default", artifacts_version(heads_dir) + suffix

    def forward(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Sentiment logits (n, 3) and urgency logits (n,) for normalised texts.

        The heads run once per call, not per batch: numpy's OpenBLAS threads spin after each
        product and, on 2 cores, fight ONNX Runtime's threads; per batch that halved the speed.
        Memory grows with the call (the pipeline passes 256 texts, ``evaluate`` 2048).
        """
        features = np.empty((len(texts), len(self.layers) * self.encoder.hidden), np.float32)
        for positions, means in self.encoder.batches(texts, batch_size=self.batch_size):
            features[positions] = means[:, self.layers].reshape(len(positions), -1)
        sentiment = self.heads["sentiment"](features)
        two = self.heads["urgency"](features)
        return sentiment, two[:, self.urgent_index] - two[:, 1 - self.urgent_index]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence vectors: the mean over the last layer's tokens, as
        all-MiniLM-L6-v2 is meant to be used (see :class:`classifiers.base.Classifier`)."""
        out = np.zeros((len(texts), self.encoder.hidden), np.float32)
        normalised = normalize_texts([str(text) for text in texts], self.settings)
        try:
            for positions, means in self.encoder.batches(normalised, batch_size=self.batch_size):
                out[positions] = means[:, -1]
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            raise ClassifierError(f"model {self.name!r} (onnx) failed on a batch: {exc}") from exc
        return unit_rows(out)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score raw post texts; any failure inside the model becomes a ClassifierError."""
        if not texts:
            return []
        normalised = normalize_texts([str(text) for text in texts], self.settings)
        try:
            sentiment, urgency = self.forward(normalised)
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            raise ClassifierError(f"model {self.name!r} (onnx) failed on a batch: {exc}") from exc
        return postprocess(
            sentiment,
            urgency,
            self.temperature,
            self.labels,
            urgency_temperature=self.urgency_temperature,
        )


def load_onnx_classifier(
    *,
    batch_size: int = 32,
    heads_dir: Path = DEFAULT_HEADS_DIR,
    quantize: bool = True,
    cache_dir: Path | None = None,
    encoder_dir: Path | None = None,
    num_threads: int | None = None,
) -> Classifier:
    """The default model served by ONNX Runtime, int8 unless ``quantize=False``.

    The first call per cache folder exports the encoder in a child process (seconds; needs
    torch, transformers and onnx installed); later calls verify and load the cached graph.
    ``version`` is the torch model's, plus :data:`INT8_SUFFIX` for int8. Batches of 32 are as
    fast as 64 on CPU and keep peak RSS ~70 MB lower.
    """
    if batch_size < 1:
        raise ClassifierError(f"batch size must be at least 1, got {batch_size}")
    import_onnxruntime()  # the install hint before any slow work
    heads_dir = Path(heads_dir)
    meta = read_meta(heads_dir)
    enc = meta["encoder"]
    entry = ensure_cached(
        cache_dir or default_cache_dir(),
        encoder_dir,
        enc["sha256"],
        quantize,
        adapter_path(heads_dir, meta),
    )
    encoder = OnnxEncoder(entry, max_length=int(enc["max_length"]), num_threads=num_threads)
    return OnnxClassifier(encoder, heads_dir, meta, batch_size=batch_size, quantize=quantize)
