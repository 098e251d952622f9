"""How posts are grouped for the encoder, and how preparing one chunk overlaps scoring the last.

Pure Python (no torch): the planning is testable on its own and shared by every device.

* :func:`plan_batches` sorts by length (a batch pads to its longest member, so mixing a tweet
  with a review wastes most of the work) and cuts batches either by count (CPU: 32 texts is as
  fast as more, and keeps memory low) or by a *token budget* (GPU: one batch should fill the
  device, ~1,000 tweets or ~60 reviews, never more padded positions than the budget).
* :func:`pipelined` runs ``prepare`` (normalise + tokenise: CPU, mostly in the tokenizer's Rust
  code, which releases the GIL) for chunk *k + 1* on a worker thread while the caller's thread
  scores chunk *k*. On a GPU that keeps tokenisation off the critical path; on a small CPU box
  both compete for the same cores, so callers there may simply call ``predict``.
* :func:`word_piece_ids` asks the Rust tokenizer for ids only, not the character offsets
  nobody here reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

P = TypeVar("P")
R = TypeVar("R")


def plan_batches(
    lengths: Sequence[int], *, batch_size: int, max_tokens: int | None = None
) -> list[list[int]]:
    """Indices into ``lengths`` grouped into length-sorted batches.

    Without ``max_tokens`` every batch holds ``batch_size`` texts (the last may hold fewer).
    With it, a batch grows while ``len(batch) * longest <= max_tokens`` (``batch_size`` is then
    ignored); a single text longer than the budget still gets a batch of its own.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if max_tokens is None:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:  # ascending: the newest member is always the longest
        if current and (len(current) + 1) * max(1, lengths[index]) > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def word_piece_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Each text's word-piece ids from a ``tokenizers.Tokenizer`` (special tokens, truncation
    and padding as it is configured).

    ``encode_batch_fast`` (tokenizers >= 0.20) gives the same ids without computing character
    offsets: on TweetEval's tweets 18.0 instead of 22.4 µs a post on 2 cores, and 1.6 instead
    of 2.8 µs of it on the calling thread, under the interpreter lock that a GPU's feeding
    thread shares with the whole classify stage. An older tokenizers has only ``encode_batch``.
    """
    encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
    return [encoding.ids for encoding in encode(list(texts))]


def pipelined(
    prepare: Callable[[Sequence[str]], P],
    score: Callable[[P], R],
    chunks: Iterable[Sequence[str]],
) -> Iterator[R]:
    """``score(prepare(chunk))`` for each chunk, in order, preparing the next chunk meanwhile.

    At most one chunk is prepared ahead, so memory holds two chunks at a time. An exception in
    either step propagates to the caller at that chunk (the worker thread is always joined).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
        pending: Future[P] | None = None
        for chunk in chunks:
            ahead = pool.submit(prepare, chunk)
            if pending is not None:
                yield score(pending.result())
            pending = ahead
        if pending is not None:
            yield score(pending.result())
