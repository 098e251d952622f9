"""The default model on ONNX Runtime: the predictions of ``classifiers.transformer``, no torch.

Why: on 2 CPU cores the torch path scores ~285 posts/s and its process peaks near 575 MB RSS,
~200 MB of it for importing torch. Here, preprocess → forward → postprocess becomes:

* the same normalisation, then the encoder's own ``tokenizer.json`` through ``tokenizers``,
  truncated to ``max_length`` and padded per length-sorted batch (not to 128, as the file asks);
* ONNX Runtime runs the encoder, whose graph ends in the masked mean over tokens of every layer,
  so only ``(batch, layers + 1, 384)`` numbers leave it; numpy picks the layers named in the
  heads' JSON and runs both heads from ``heads.safetensors`` (in float32, like torch);
* :func:`classifiers.postprocess.postprocess`, shared with the torch backend.

The ONNX file (90 MB fp32, 56 MB int8) is not committed: the first load exports it in a
*subprocess* (torch + onnx), so the serving process never holds torch, and caches it with the
tokenizer and a stamp (encoder sha256, each file's sha256) checked on every load; a missing,
stale or corrupt entry is rebuilt in a temporary folder, then renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.artifacts import (
    DEFAULT_HEADS_DIR,
    HEADS_FILE,
    artifacts_version,
    default_encoder_dir,
    read_meta,
    sha256_file,
    verify_encoder,
)
from classifiers.base import Classifier, Prediction
from classifiers.normalize import NormalizeSettings, normalize_texts
from classifiers.postprocess import postprocess
from listener.errors import ClassifierError, MissingDependency

log = logging.getLogger(__name__)

CACHE_ENV = "LISTENER_CACHE_DIR"
MODEL_FILE, TOKENIZER_FILE, STAMP_FILE = "encoder.onnx", "tokenizer.json", "stamp.json"
STAMP_FORMAT = 1  # bump when the graph's inputs or outputs change: old entries get rebuilt
OPSET = 17
EXPORT_TIMEOUT_S = 600


def default_cache_dir() -> Path:
    """``$LISTENER_CACHE_DIR/onnx``, else ``~/.cache/listener/onnx``: exports are re-creatable."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "listener") / "onnx"


# --- the cache -----------------------------------------------------------------------------


def stamp_problem(entry: Path, encoder_sha256: str, quantize: bool) -> str | None:
    """Why the cache entry cannot be used, or ``None`` when it can (hashes ~60-90 MB: ~0.2 s)."""
    try:
        stamp = json.loads((entry / STAMP_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "not built yet"
    except (OSError, ValueError) as exc:
        return f"unreadable stamp ({exc})"
    expected = {"format": STAMP_FORMAT, "encoder_sha256": encoder_sha256, "int8": quantize}
    for key, value in expected.items():
        if stamp.get(key) != value:
            return f"the stamp says {key}={stamp.get(key)!r}, need {value!r}"
    for name in (MODEL_FILE, TOKENIZER_FILE):
        try:
            if sha256_file(entry / name) != stamp.get("sha256", {}).get(name):
                return f"{name} is corrupt (its sha256 differs from the stamp)"
        except OSError:
            return f"{name} is missing"
    return None


def ensure_cached(
    cache_dir: Path, encoder_dir: Path | None, encoder_sha256: str, quantize: bool
) -> Path:
    """The verified cache entry for this encoder and precision, exported first if need be."""
    entry = Path(cache_dir) / f"{encoder_sha256[:12]}-{'int8' if quantize else 'fp32'}"
    problem = stamp_problem(entry, encoder_sha256, quantize)
    if problem is None:
        return entry
    log.info("building the ONNX encoder in %s (%s): a few seconds", entry, problem)
    build_entry(entry, encoder_dir or default_encoder_dir(), encoder_sha256, quantize)
    problem = stamp_problem(entry, encoder_sha256, quantize)
    if problem is not None:
        raise ClassifierError(f"the ONNX cache {entry} is unusable right after a build: {problem}")
    return entry


def build_entry(entry: Path, encoder_dir: Path, encoder_sha256: str, quantize: bool) -> None:
    """Export into a temporary folder beside ``entry``, stamp it, then rename it into place."""
    verify_encoder(encoder_dir, encoder_sha256)  # never cache a graph of the wrong weights
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    except OSError as exc:
        raise ClassifierError(
            f"cannot write the ONNX cache in {entry.parent}: {exc}; point {CACHE_ENV} (or "
            "cache_dir) to a writable folder"
        ) from exc
    try:
        run_export(encoder_dir, tmp / MODEL_FILE, quantize)
        shutil.copyfile(encoder_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        hashes = {name: sha256_file(tmp / name) for name in (MODEL_FILE, TOKENIZER_FILE)}
        stamp = {"format": STAMP_FORMAT, "encoder_sha256": encoder_sha256, "int8": quantize}
        (tmp / STAMP_FILE).write_text(json.dumps({**stamp, "sha256": hashes}, indent=2))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the daemon may run as another user
        replace_dir(tmp, entry)
    except OSError as exc:
        raise ClassifierError(f"cannot write the ONNX cache entry {entry}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` where ``target`` (stale or corrupt, if any) is; a reader that catches the
    moment in between finds no valid stamp and rebuilds, which is slow but never wrong."""
    shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(new, target)
    except OSError:
        if not target.exists():  # else a concurrent build won the race; the caller re-checks
            raise


def run_export(encoder_dir: Path, out: Path, quantize: bool) -> None:
    """Run :func:`export_onnx` in a child process, so torch never loads into this one."""
    command = [sys.executable, "-m", "classifiers.onnx_backend", "export", str(encoder_dir)]
    command += [str(out), "--int8"] if quantize else [str(out)]
    root = str(Path(__file__).resolve().parents[1])  # the child imports this very package
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=EXPORT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClassifierError(f"exporting the encoder to ONNX failed: {exc}") from exc
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise ClassifierError(
            f"exporting the encoder to ONNX failed (exit {done.returncode}): {tail}\n"
            "the export needs torch, transformers and onnx: pip install 'social-listener[onnx]'"
        )


# --- the export (child process only: imports torch) ----------------------------------------


def export_onnx(encoder_dir: Path, out: Path, quantize: bool) -> None:
    """Encoder → ONNX: inputs ``input_ids``, ``attention_mask`` (int64, batch × tokens), output
    ``layer_means`` (batch × layers + 1 × hidden), the masked mean over tokens of the embeddings
    and of every layer, i.e. the torch path's ``mean:<layer>`` pooling for every layer at once.
    """
    import torch
    from transformers import AutoModel

    # eager attention exports as plain MatMul + Softmax: as fast as SDPA here, and all of its
    # MatMuls with constant weights get quantised
    model = AutoModel.from_pretrained(
        str(encoder_dir), local_files_only=True, attn_implementation="eager"
    ).eval()

    class LayerMeans(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            ).hidden_states
            weights = attention_mask.unsqueeze(-1).to(hidden[-1].dtype)
            count = weights.sum(1).clamp(min=1.0)
            return torch.stack([(h * weights).sum(1) / count for h in hidden], dim=1)

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])  # a padded row on purpose
    axes = {0: "batch", 1: "tokens"}
    fp32 = out.with_suffix(".fp32.onnx") if quantize else out
    with torch.inference_mode():
        torch.onnx.export(
            LayerMeans(),
            (ids, (ids != 0).long()),
            str(fp32),
            dynamo=False,  # the TorchScript exporter needs no onnxscript and takes seconds
            input_names=["input_ids", "attention_mask"],
            output_names=["layer_means"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "layer_means": {0: "batch"}},
            opset_version=OPSET,
        )
    if quantize:
        quantize_int8(fp32, out)
        fp32.unlink()


def quantize_int8(source: Path, out: Path) -> None:
    """Dynamic int8 quantisation of the MatMuls, weights per output channel.

    Measured on TweetEval test: per-tensor weights cost 2 points of macro-recall, per channel
    0.1-0.2; also quantising the word-embedding lookup (``Gather``) saves 35 MB of disk but
    costs another 0.4 point, for no speed (a lookup does no arithmetic).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m classifiers.onnx_backend export ENCODER_DIR OUT [--int8]``: for the cache."""
    args = list(sys.argv[1:] if argv is None else argv)
    quantize = "--int8" in args
    args = [arg for arg in args if arg != "--int8"]
    if len(args) != 3 or args[0] != "export":
        print(main.__doc__, file=sys.stderr)
        return 2
    export_onnx(Path(args[1]), Path(args[2]), quantize)
    return 0


# --- serving (no torch) --------------------------------------------------------------------


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
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

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
        suffix = "+onnx-int8" if quantize else "+onnx-fp32"  # stored scores never mix backends
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

    The first call per cache folder exports the encoder (seconds; needs torch, transformers and
    onnx installed); later calls verify and load the cached graph. ``version`` is the torch
    model's plus ``+onnx-int8`` or ``+onnx-fp32``, so stored scores never mix backends. Batches
    of 32 are as fast as 64 on CPU and keep peak RSS ~70 MB lower.
    """
    if batch_size < 1:
        raise ClassifierError(f"batch size must be at least 1, got {batch_size}")
    import_onnxruntime()  # the install hint before any slow work
    heads_dir = Path(heads_dir)
    meta = read_meta(heads_dir)
    enc = meta["encoder"]
    entry = ensure_cached(cache_dir or default_cache_dir(), encoder_dir, enc["sha256"], quantize)
    encoder = OnnxEncoder(entry, max_length=int(enc["max_length"]), num_threads=num_threads)
    return OnnxClassifier(encoder, heads_dir, meta, batch_size=batch_size, quantize=quantize)


if __name__ == "__main__":
    raise SystemExit(main())
