"""Scoring speed of every way we can run the default model on CPU: one command, one table.

    python bench/score_speed.py [--data PATH] [--limit N] [--naive-limit 500] [--chunk 2048]
                                [--only PATH ...]

Paths, slowest first:

* ``naive-pipeline``: transformers' ``pipeline("feature-extraction")`` on our encoder, one post
  per call (a subclass returns all hidden states: the stock one keeps only the last layer, our
  heads read four), then our pooling and heads: what a first attempt looks like.
* ``roberta-base``: a roberta-base-size ``RobertaForSequenceClassification`` (random weights,
  from ``RobertaConfig()``; speed does not depend on the weights) in a text-classification
  pipeline, batch 1: the cost of a fine-tuned tweet model such as twitter-roberta-base.
* ``torch-fp32``: our ``TransformerClassifier``, length-sorted batches of 32: the reference.
* ``torch-int8`` / ``torch-int8-pc``: the same after ``torch.ao.quantization.quantize_dynamic``
  of the encoder's Linear layers, per-tensor (the default) and per-channel weights.
* ``onnx-fp32`` / ``onnx-int8``: ``classifiers.onnx_backend`` (ONNX Runtime, no torch at run
  time), length-sorted batches of 32; ``onnx-int8`` is ``classifier.backend: onnx``.
* ``onnx-int8-all``: the same with *every* MatMul in int8, also the three that
  ``classifiers.onnx_export.FP32_MATMULS`` keeps in float32 (export format 1): the speed and
  the label agreement that choice trades.

The batch-1 paths score the first ``--naive-limit`` posts (the whole set takes minutes);
posts/s is that many posts over the time they took. The other paths score every post, handed
over ``--chunk`` at a time (2048 like ``listener eval``; the daemon hands over 256), and report
TweetEval's macro-recall with its difference from torch fp32. Load time is excluded and printed
apart; each path gets a warm-up call first. Run it on a quiet machine (check ``uptime``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from classifiers.base import SENTIMENT_LABELS, Classifier  # noqa: E402
from classifiers.evaluate import read_labelled_tsv, sentiment_metrics  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "sentiment" / "test.tsv"
MAX_LENGTH = 128
T = TypeVar("T")


@dataclass(frozen=True)
class Data:
    """The posts to score, their gold labels, and how to hand them over."""

    texts: list[str]
    gold: list[str]
    naive_limit: int
    chunk: int


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    path: str
    batch: int
    posts: int
    seconds: float
    load_seconds: float
    macro_recall: float | None = None
    labels: tuple[str, ...] = ()  # sentiment per post, to compare with torch fp32's


def loaded(load: Callable[[], T]) -> tuple[T, float]:
    """The loaded thing and the seconds it took."""
    start = time.perf_counter()
    thing = load()
    return thing, time.perf_counter() - start


def bench_batch1(name: str, score_one: Callable[[str], object], load_s: float, data: Data) -> Row:
    """Speed of a one-post-per-call path on the first ``naive_limit`` posts."""
    texts = data.texts[: data.naive_limit]
    for text in texts[:8]:  # warm-up
        score_one(text)
    start = time.perf_counter()
    for text in texts:
        score_one(text)
    return Row(name, 1, len(texts), time.perf_counter() - start, load_s)


def bench_classifier(name: str, batch: int, load: Callable[[], Classifier], data: Data) -> Row:
    """A Classifier on every post: speed and macro-recall."""
    model, load_s = loaded(load)
    model.predict(data.texts[:8])  # warm-up
    start = time.perf_counter()
    predictions = []
    for i in range(0, len(data.texts), data.chunk):
        predictions += model.predict(data.texts[i : i + data.chunk])
    seconds = time.perf_counter() - start
    probs = np.array([[p.probabilities[label] for label in SENTIMENT_LABELS] for p in predictions])
    labels = tuple(p.sentiment for p in predictions)
    result = sentiment_metrics(data.gold, list(labels), probs)
    return Row(name, batch, len(data.texts), seconds, load_s, result.macro_recall, labels)


def naive_pipeline(data: Data) -> Row:
    """transformers' feature-extraction pipeline, one post per call, then our pooling and heads."""
    import torch
    from transformers import pipeline
    from transformers.pipelines import FeatureExtractionPipeline

    from classifiers.postprocess import postprocess
    from classifiers.transformer import TransformerClassifier

    class HiddenStates(FeatureExtractionPipeline):
        def postprocess(self, model_outputs, return_tensors=False):  # type: ignore[no-untyped-def]
            return model_outputs["hidden_states"]

    def load() -> tuple[TransformerClassifier, Callable[..., object]]:
        model = TransformerClassifier(batch_size=1, device="cpu")  # for its heads and settings
        extract = pipeline(
            "feature-extraction",
            model=str(model.encoder.encoder_dir),
            pipeline_class=HiddenStates,
            model_kwargs={"output_hidden_states": True},
            device="cpu",
        )
        return model, extract

    (model, extract), load_s = loaded(load)
    urgent = model.urgent_index

    def score_one(text: str) -> object:
        (text,) = model.preprocess([text])
        hidden = extract(text, tokenize_kwargs={"truncation": True, "max_length": MAX_LENGTH})
        x = torch.cat([h[0].mean(0) for h in hidden[-4:]]).unsqueeze(0)  # one post: no padding
        with torch.inference_mode():
            logits = model.heads["sentiment"](x).numpy()
            two = model.heads["urgency"](x).numpy()
        return postprocess(logits, two[:, urgent] - two[:, 1 - urgent], model.temperature)

    return bench_batch1("naive-pipeline", score_one, load_s, data)


def roberta_base(data: Data) -> Row:
    """A roberta-base-size classifier with random weights, text-classification pipeline, batch 1."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification
    from transformers import pipeline as make_pipeline

    from classifiers.artifacts import default_encoder_dir

    def load() -> Callable[..., object]:
        torch.manual_seed(0)
        model = RobertaForSequenceClassification(RobertaConfig(num_labels=3)).eval()
        # no download: MiniLM's WordPiece tokenizer, whose ids fit roberta's 50,265-word vocab
        tokenizer = AutoTokenizer.from_pretrained(str(default_encoder_dir()), local_files_only=True)
        return make_pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")

    classify, load_s = loaded(load)

    def score_one(text: str) -> object:
        return classify(text, truncation=True, max_length=MAX_LENGTH)

    return bench_batch1("roberta-base", score_one, load_s, data)


def torch_fp32(data: Data) -> Row:
    """The default backend as shipped: batches of 32, length-sorted."""
    from classifiers.transformer import TransformerClassifier

    return bench_classifier(
        "torch-fp32", 32, lambda: TransformerClassifier(batch_size=32, device="cpu"), data
    )


def torch_int8(per_channel: bool) -> Callable[[Data], Row]:
    """The default backend with the encoder's Linear layers dynamically quantised to int8."""

    def load() -> Classifier:
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        from classifiers.transformer import TransformerClassifier

        model = TransformerClassifier(batch_size=32, device="cpu")
        spec = {torch.nn.Linear: per_channel_dynamic_qconfig} if per_channel else {torch.nn.Linear}
        with warnings.catch_warnings():  # "migrate to torchao": fine for a measurement
            warnings.simplefilter("ignore")
            model.encoder.model = quantize_dynamic(model.encoder.model, spec, dtype=torch.qint8)
        return model

    name = "torch-int8-pc" if per_channel else "torch-int8"
    return lambda data: bench_classifier(name, 32, load, data)


def onnx(quantize: bool) -> Callable[[Data], Row]:
    """``classifiers.onnx_backend`` in fp32 or int8 (the first run builds the cached export)."""

    def load() -> Classifier:
        from classifiers.loader import load_classifier
        from classifiers.onnx_backend import load_onnx_classifier

        if quantize:  # exactly what `classifier.backend: onnx` loads
            return load_classifier("default", backend="onnx", batch_size=32)
        return load_onnx_classifier(quantize=False, batch_size=32)

    name = "onnx-int8" if quantize else "onnx-fp32"
    return lambda data: bench_classifier(name, 32, load, data)


def onnx_int8_all(data: Data) -> Row:
    """Every MatMul in int8: quantise the cached fp32 graph again, into a temporary folder."""
    import shutil
    import tempfile

    from classifiers.artifacts import DEFAULT_HEADS_DIR, adapter_path, read_meta
    from classifiers.onnx_backend import OnnxClassifier, OnnxEncoder
    from classifiers.onnx_export import (
        MODEL_FILE,
        TOKENIZER_FILE,
        default_cache_dir,
        ensure_cached,
        quantize_int8,
    )

    meta = read_meta(DEFAULT_HEADS_DIR)
    adapter = adapter_path(DEFAULT_HEADS_DIR, meta)
    fp32 = ensure_cached(default_cache_dir(), None, meta["encoder"]["sha256"], False, adapter)
    with tempfile.TemporaryDirectory() as folder:
        entry = Path(folder)
        quantize_int8(fp32 / MODEL_FILE, entry / MODEL_FILE, keep_fp32=())
        shutil.copyfile(fp32 / TOKENIZER_FILE, entry / TOKENIZER_FILE)

        def load() -> Classifier:
            encoder = OnnxEncoder(entry, max_length=int(meta["encoder"]["max_length"]))
            return OnnxClassifier(encoder, DEFAULT_HEADS_DIR, meta, batch_size=32, quantize=True)

        return bench_classifier("onnx-int8-all", 32, load, data)


PATHS: dict[str, Callable[[Data], Row]] = {
    "naive-pipeline": naive_pipeline,
    "roberta-base": roberta_base,
    "torch-fp32": torch_fp32,
    "torch-int8": torch_int8(per_channel=False),
    "torch-int8-pc": torch_int8(per_channel=True),
    "onnx-fp32": onnx(quantize=False),
    "onnx-int8": onnx(quantize=True),
    "onnx-int8-all": onnx_int8_all,
}


def format_table(rows: Sequence[Row]) -> str:
    """The table, with each path's macro-recall difference from torch fp32 and the share of
    posts that get torch fp32's label."""
    reference = next((r for r in rows if r.path == "torch-fp32"), None)
    lines = [
        f"{'path':<15} {'batch':>5} {'posts':>6} {'load s':>7} {'score s':>8} {'posts/s':>8} "
        f"{'macro-recall':>12} {'Δ vs fp32':>9} {'same label':>10}"
    ]
    for r in rows:
        recall = delta = same = "–"
        if r.macro_recall is not None:
            recall = f"{100 * r.macro_recall:.2f}"
        if reference is not None and r is not reference and r.macro_recall is not None:
            delta = f"{100 * (r.macro_recall - (reference.macro_recall or 0.0)):+.2f}"
            agree = np.mean([a == b for a, b in zip(r.labels, reference.labels, strict=True)])
            same = f"{100 * agree:.2f} %"
        lines.append(
            f"{r.path:<15} {r.batch:>5} {r.posts:>6} {r.load_seconds:>7.1f} {r.seconds:>8.1f} "
            f"{r.posts / r.seconds:>8.1f} {recall:>12} {delta:>9} {same:>10}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="TSV: id, label, text")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N posts")
    parser.add_argument("--naive-limit", type=int, default=500, help="posts for batch-1 paths")
    parser.add_argument("--chunk", type=int, default=2048, help="posts per predict() call")
    parser.add_argument("--only", nargs="+", choices=list(PATHS), help="run only these paths")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = read_labelled_tsv(args.data)[: args.limit]
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    data = Data(texts, gold, args.naive_limit, args.chunk)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{args.data}: {len(texts)} posts, {args.chunk} per call; {cores} CPU cores; "
        f"load average {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    results = []
    for name in args.only or list(PATHS):
        results.append(PATHS[name](data))
        print(f"  done: {name}", file=sys.stderr, flush=True)
    print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
