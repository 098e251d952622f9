"""Batch planning and the prepare/score overlap: pure Python, no model."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classifiers.batching import pipelined, plan_batches, word_piece_ids


def test_count_batches_are_length_sorted() -> None:
    lengths = [5, 1, 9, 3, 7]
    assert plan_batches(lengths, batch_size=2) == [[1, 3], [0, 4], [2]]


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=130), max_size=300),
    budget=st.integers(min_value=1, max_value=4096),
)
def test_token_budget_batches_cover_every_text_once_within_the_budget(
    lengths: list[int], budget: int
) -> None:
    batches = plan_batches(lengths, batch_size=1, max_tokens=budget)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)  # padding stays small
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= budget or len(batch) == 1  # an over-long text travels alone
    for first, second in zip(batches, batches[1:], strict=False):  # batches are as full as allowed
        assert (len(first) + 1) * lengths[second[0]] > budget


def test_token_budget_fills_a_gpu_batch_with_tweets_and_few_reviews() -> None:
    tweets, reviews = [30] * 5000, [128] * 1000
    batches = plan_batches(tweets + reviews, batch_size=32, max_tokens=32768)
    sizes = [len(b) for b in batches]
    assert sizes[0] == 32768 // 30 and sizes[-1] <= 32768 // 128


@pytest.mark.parametrize(("batch_size", "max_tokens"), [(0, None), (1, 0)])
def test_bad_sizes_are_refused(batch_size: int, max_tokens: int | None) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_batches([1, 2], batch_size=batch_size, max_tokens=max_tokens)


def test_pipelined_keeps_order_and_prepares_the_next_chunk_during_scoring() -> None:
    """score(k) waits until prepare(k + 1) has started: without the overlap this would hang."""
    started = [threading.Event() for _ in range(4)]

    def prepare(chunk: list[str]) -> list[str]:
        started[int(chunk[0])].set()
        return [text.upper() for text in chunk]

    def score(prepared: list[str]) -> str:
        k = int(prepared[0])
        if k + 1 < len(started):
            assert started[k + 1].wait(timeout=10), f"chunk {k + 1} was not prepared meanwhile"
        return "".join(prepared)

    chunks = [[str(k), "a", "b"] for k in range(4)]
    assert list(pipelined(prepare, score, chunks)) == ["0AB", "1AB", "2AB", "3AB"]
    assert list(pipelined(prepare, score, [])) == []


def test_pipelined_raises_where_a_chunk_fails() -> None:
    def prepare(chunk: list[str]) -> list[str]:
        if chunk == ["bad"]:
            raise ValueError("cannot tokenise")
        return chunk

    results = pipelined(prepare, lambda p: p[0], [["ok"], ["bad"], ["later"]])
    assert next(results) == "ok"
    with pytest.raises(ValueError, match="cannot tokenise"):
        next(results)


def _word_level() -> object:
    """A real ``tokenizers.Tokenizer`` (word level, [CLS]/[SEP] added, truncation at 4)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "refund": 3, "please": 4, "now": 5}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tokenizer.enable_truncation(4)
    return tokenizer


class _OldTokenizer:
    """What a tokenizers older than 0.20 offers: ``encode_batch`` only."""

    def __init__(self, real: object) -> None:
        self.encode_batch = real.encode_batch  # type: ignore[attr-defined]


def test_word_piece_ids_are_encode_batchs_with_or_without_the_fast_call() -> None:
    tokenizer = _word_level()
    texts = ["refund please", "refund please now now", "what", ""]
    expected = [[1, 3, 4, 2], [1, 3, 4, 2], [1, 0, 2], [1, 2]]
    assert [e.ids for e in tokenizer.encode_batch(texts)] == expected  # type: ignore[attr-defined]
    assert word_piece_ids(tokenizer, texts) == expected
    assert word_piece_ids(_OldTokenizer(tokenizer), tuple(texts)) == expected
