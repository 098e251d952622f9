"""How alike two posts are in what they *say*: the measure incidents are grouped by.

Measure: the cosine of sentence vectors — the classifier's own encoder (all-MiniLM-L6-v2, the
mean over its last layer's tokens: :meth:`classifiers.base.Classifier.embed`), computed on the
text with the brand's identifying terms masked. Why this one:

- a normalised text hash only finds copies; an outage is "down?", "503 again", "can't log in",
  "nothing loads" — the same problem in different words, which a sentence encoder places close
  together and a hash never does;
- word shingles (Jaccard) do a little better than a hash but see no likeness between "outage"
  and "down", and short posts share few shingles at all;
- without the masking every post about a brand is alike: they all say "acme cloud", and the
  fine-tuned encoder also pulls all complaints together. Masking the brand's identifying terms
  (:func:`listener.core.query.identifying_terms` and the brand's name) leaves what the post is about.
  Measured on the outage benchmark (``python bench/mixed_day.py``; figures in bench/README.md).

A classifier without ``embed`` (any Hugging Face model) is compared by hashed character
n-grams instead (:func:`hashed_ngrams`): weaker on paraphrases, fine for near-copies.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np

from listener.core.query import Brand, identifying_terms

Vectorize = Callable[[Sequence[str]], np.ndarray]
"""Texts → unit-length float32 rows: the classifier's ``embed``, or :func:`hashed_ngrams`."""

HASH_DIM = 2048
_LINK = re.compile(r"https?://\S+|www\.\S+")
_SPACE = re.compile(r"\s+")


def masker(brand: Brand | None, name: str) -> Callable[[str], str]:
    """A function that blanks a post's identifying terms for ``brand`` (and its name's words)."""
    patterns = [t.pattern for t in identifying_terms(brand.query)] if brand else []
    words = [w for w in re.split(r"[\s_.-]+", name) if len(w) > 1]
    patterns += [re.compile(rf"(?<!\w)@?{re.escape(w)}\w*", re.IGNORECASE) for w in words]

    def mask(text: str) -> str:
        text = _LINK.sub(" ", text)
        for pattern in patterns:
            text = pattern.sub(" ", text)
        return _SPACE.sub(" ", text).strip()

    return mask


def hashed_ngrams(texts: Sequence[str], dim: int = HASH_DIM) -> np.ndarray:
    """Unit vectors of character 3-grams of each word (hashed to ``dim`` buckets, counted)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            padded = f" {word} "
            for i in range(len(padded) - 2):
                digest = hashlib.blake2b(padded[i:i + 3].encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def vectorizer(classifier: object | None) -> Vectorize:
    """The classifier's ``embed`` when it has one, else :func:`hashed_ngrams`."""
    embed = getattr(classifier, "embed", None)
    return embed if callable(embed) else hashed_ngrams
