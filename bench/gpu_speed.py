"""GPU scoring speed of the default model: one command, one table (issue #3's ≥ 30,000 posts/s).

    python bench/gpu_speed.py [--data PATH] [--repeat 8] [--chunk 8192]
                              [--max-tokens 8192 16384 32768 65536] [--precision float16]
                              [--device cuda] [--limit N]

The posts of ``--data`` (TweetEval test by default), repeated ``--repeat`` times so the timed
part lasts seconds, not a fraction of one. Rows:

* ``end-to-end``: raw texts in, predictions out, through
  :meth:`TransformerClassifier.predict_chunks` — on CUDA, on one thread: chunk *k* queued on
  the GPU, chunk *k + 1* normalised and tokenised while it runs — with the library's defaults
  (``GPU_MAX_TOKENS``). This is the figure to compare with the target.
* ``end-to-end, 2 threads``: the way before (chunk *k + 1* tokenised on a second thread,
  ``classifiers.batching.pipelined``), for comparison.
* ``device, N tokens``: the same model on texts tokenised beforehand, batches of at most N padded
  word pieces: what the GPU alone sustains, per batch budget (how ``GPU_MAX_TOKENS`` was chosen).
* ``tokenise only``: normalising and tokenising on the CPU, nothing else: if it is slower than
  the device, the CPU is the bottleneck, however fast the GPU.
* ``end-to-end, 2 threads, S ms`` (``--switch-interval``): the two threads again with the
  interpreter's switch interval at S. On an H100 that way did 22–24k posts/s, slower than
  tokenising alone (48–53k) with the device at 122–138k: the thread launching kernels gives
  the lock up at each CUDA call and waits for the tokenising thread to hand it back (on a CPU,
  3,000 small torch calls took 27 ms alone and the whole 0.33–0.39 s of a normalising thread
  beside them, at 5, 1 and 0.2 ms alike).

Quality is checked once on the un-repeated posts: macro-recall at ``--precision`` and at
float32 on the same device, and the share of posts whose label both agree on. Load time and a
warm-up pass are excluded. ``--device cpu --limit 64`` runs the same code on a CPU (the test
suite does, so the benchmark cannot rot between GPU sessions); its figures are not GPU figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from classifiers.base import SENTIMENT_LABELS  # noqa: E402
from classifiers.batching import pipelined  # noqa: E402
from classifiers.evaluate import predict_all, read_labelled_tsv, sentiment_metrics  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "sentiment" / "test.tsv"
BUDGETS = (8192, 16384, 32768, 65536)


def timed(work: Callable[[], object], posts: int) -> tuple[float, float]:
    """Seconds and posts per second of ``work`` (which must end synchronised with the device)."""
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    return seconds, posts / seconds


def chunks(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[start : start + size] for start in range(0, len(texts), size)]


def quality(model, texts: list[str], gold: list[str]) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
    """Macro-recall and labels of one pass over the posts, scored as `listener eval` scores them."""
    predictions = predict_all(model, texts)
    labels = [p.sentiment for p in predictions]
    probs = [[p.probabilities[k] for k in SENTIMENT_LABELS] for p in predictions]
    return sentiment_metrics(gold, labels, probs).macro_recall, labels


def speed_rows(model, many: list[str], args: argparse.Namespace) -> list[str]:  # type: ignore[no-untyped-def]
    """The timed rows: end to end, device only per batch budget, tokenising only."""
    import torch

    out = []
    model.predict(many[:2048])  # warm-up: kernels, allocator, pinned buffers
    on_gpu = model.encoder.device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(model.encoder.device)

    def end_to_end() -> None:
        for _ in model.predict_chunks(chunks(many, args.chunk)):
            pass

    def two_threads() -> None:  # the way before 2026-12-06 on a GPU: a tokenising thread
        for _ in pipelined(model.prepare, model.score, chunks(many, args.chunk)):
            pass

    seconds, rate = timed(end_to_end, len(many))
    out.append(f"{'end-to-end':<24} {len(many):>8} {seconds:>8.2f} {rate:>10,.0f}")
    default_interval = sys.getswitchinterval()
    for interval in [None, *args.switch_interval]:  # does the lock's hand-over hold it up?
        sys.setswitchinterval(interval or default_interval)
        try:
            seconds, rate = timed(two_threads, len(many))
        finally:
            sys.setswitchinterval(default_interval)
        row = "end-to-end, 2 threads" + (f", {interval * 1000:g} ms" if interval else "")
        out.append(f"{row:<32} {len(many):>8} {seconds:>8.2f} {rate:>10,.0f}")
    prepared = [model.prepare(part) for part in chunks(many, args.chunk)]
    default_budget = model.max_tokens
    for budget in args.max_tokens:
        model.max_tokens = budget
        seconds, rate = timed(lambda: [model.forward_ids(ids) for ids in prepared], len(many))
        row = f"device, {budget} tokens"
        out.append(f"{row:<24} {len(many):>8} {seconds:>8.2f} {rate:>10,.0f}")
    model.max_tokens = default_budget
    parts = chunks(many, args.chunk)
    seconds, rate = timed(lambda: [model.prepare(part) for part in parts], len(many))
    out.append(f"{'tokenise only':<24} {len(many):>8} {seconds:>8.2f} {rate:>10,.0f}")
    if on_gpu:
        peak = torch.cuda.max_memory_allocated(model.encoder.device) / 2**20
        out.append(f"peak GPU memory allocated: {peak:,.0f} MiB")
    return out


def run(args: argparse.Namespace) -> list[str]:
    import torch

    from classifiers.transformer import TransformerClassifier

    rows = read_labelled_tsv(args.data)[: args.limit]
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    load_start = time.perf_counter()
    model = TransformerClassifier(device=args.device, precision=args.precision)
    load_s = time.perf_counter() - load_start
    on_gpu = model.encoder.device.type == "cuda"
    name = torch.cuda.get_device_name(model.encoder.device) if on_gpu else "CPU (not a GPU figure)"
    out = [
        f"{args.data}: {len(texts)} posts x {args.repeat}; device {name}; "
        f"torch {torch.__version__}; precision {model.encoder.dtype}; chunk {args.chunk}; "
        f"load {load_s:.1f} s; {time.strftime('%Y-%m-%d %H:%M')}",
        f"{'path':<24} {'posts':>8} {'seconds':>8} {'posts/s':>10}",
    ]
    out += speed_rows(model, texts * args.repeat, args)
    recall, labels = quality(model, texts, gold)
    del model
    reference = TransformerClassifier(device=args.device, precision="float32")
    recall32, labels32 = quality(reference, texts, gold)
    agree = sum(a == b for a, b in zip(labels, labels32, strict=True)) / max(1, len(labels))
    out.append(
        f"macro-recall {100 * recall:.2f} at {args.precision}, {100 * recall32:.2f} at float32 "
        f"(delta {100 * (recall - recall32):+.2f}); same label on {100 * agree:.2f} % of posts"
    )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="TSV: id, label, text")
    parser.add_argument("--limit", type=int, default=None, help="only the first N posts")
    parser.add_argument("--repeat", type=int, default=8, help="score the posts this many times")
    parser.add_argument("--chunk", type=int, default=8192, help="posts per predict call")
    parser.add_argument("--max-tokens", type=int, nargs="*", default=list(BUDGETS))
    parser.add_argument("--precision", default="float16", help="float16, bfloat16 or float32")
    parser.add_argument("--device", default="cuda", help="cuda (cpu: a smoke run, not a figure)")
    parser.add_argument(
        "--switch-interval", type=float, nargs="*", default=[0.001, 0.0002],
        help="end-to-end again with sys.setswitchinterval(S): the thread feeding the device "
        "waits up to S for the interpreter lock each time it gets it back from the tokenising "
        "thread (5 ms by default)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device here: run this on a GPU machine (--device cpu for a smoke run)")
            return 2
    print("\n".join(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
