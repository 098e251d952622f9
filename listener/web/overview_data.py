"""What the overview shows, composed from storage/trends.py: the series per bucket, totals,
per-brand and per-source tables with the period before, spikes, and top negative terms.

Words are counted with ``alerts.terms.tokens``, the tokenizer spike and digest reports use, so
a term reads the same in a Slack spike alert and on the dashboard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from alerts.terms import tokens
from listener.core.models import parse_iso, to_iso
from storage.trends import (
    SENTIMENTS,
    Counts,
    Period,
    bucket_key,
    bucket_keys,
    counts_by,
    negative_texts,
    spikes,
    total,
)

TOP_TERMS = 15
MIN_SHARE_POSTS = 5  # a bucket's negative share is shown from this many scored posts up


def overview(
    db: Database, period: Period, bucket: str, brand: str | None = None,
    source: str | None = None, exclude: Iterable[str] = (),
) -> dict[str, Any]:
    """Everything the overview page and /api/overview show for a period and the one before."""
    previous = period.previous()
    now, old = ({group: counts_by(db, p, bucket, group, brand, source)
                 for group in ("bucket", "brand", "source")} for p in (period, previous))
    keys = bucket_keys(period, bucket)
    empty = Counts()
    current = [now["bucket"].get(k, empty) for k in keys]
    before = [old["bucket"].get(k, empty) for k in bucket_keys(previous, bucket)]
    before = (before + [empty] * len(keys))[:len(keys)]  # bucket i of each period, side by side
    series: dict[str, list[Any]] = {
        name: [getattr(c, name) for c in current] for name in (*SENTIMENTS, "urgent", "total")
    }
    series["negative_share"] = [_share(c) for c in current]
    series["previous_total"] = [c.total for c in before]
    series["previous_negative_share"] = [_share(c) for c in before]
    return {
        "period": {"start": to_iso(period.start), "end": to_iso(period.end), "bucket": bucket,
                   "previous_start": to_iso(previous.start)},
        "buckets": keys,
        "series": series,
        "totals": {"current": total(now["bucket"]).as_dict(),
                   "previous": total(old["bucket"]).as_dict()},
        "by_brand": _compare(now["brand"], old["brand"]),
        "by_source": _compare(now["source"], old["source"]),
        "spikes": [_place(s, keys, bucket) for s in spikes(db, period, brand, source)],
        "terms": _terms(db, period, brand, source, exclude),
    }


def term_counts(texts: list[str], exclude: Iterable[str] = ()) -> Counter[str]:
    """In how many of the texts each word appears (once per post), brand words left out."""
    dropped = {word for phrase in exclude for word in tokens(phrase)}
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokens(text) - dropped)
    return counts


def _terms(db: Database, period: Period, brand: str | None, source: str | None,
           exclude: Iterable[str]) -> list[dict[str, Any]]:
    """Top terms of negative posts with the share of (sampled) negative posts that use them,
    now and in the period before: shares compare fairly whatever the two samples' sizes."""
    words = tuple(exclude)
    texts = negative_texts(db, period, brand, source)
    old_texts = negative_texts(db, period.previous(), brand, source)
    now, before = term_counts(texts, words), term_counts(old_texts, words)
    return [{"term": term, "posts": count, "share": count / len(texts),
             "previous_share": before.get(term, 0) / len(old_texts) if old_texts else None}
            for term, count in now.most_common(TOP_TERMS)]


def _share(counts: Counts) -> float | None:
    """A bucket's negative share, or None below MIN_SHARE_POSTS scored posts (noise, not news)."""
    scored = counts.negative + counts.neutral + counts.positive
    return counts.negative_share if scored >= MIN_SHARE_POSTS else None


def _compare(now: dict[str, Counts], before: dict[str, Counts]) -> list[dict[str, Any]]:
    names = sorted(set(now) | set(before), key=lambda k: (-now.get(k, Counts()).total, k))
    return [{"name": name, "current": now.get(name, Counts()).as_dict(),
             "previous": before.get(name, Counts()).as_dict()} for name in names]


def _place(spike: dict[str, Any], keys: list[str], bucket: str) -> dict[str, Any]:
    """A spike with the first and last chart bucket its window covers (for the shading)."""
    first = bucket_key(parse_iso(spike["window_start"]), bucket)
    last = bucket_key(parse_iso(spike["window_end"]) - timedelta(seconds=1), bucket)
    index = {k: i for i, k in enumerate(keys)}
    return {**spike, "first_bucket": index.get(first, 0),
            "last_bucket": index.get(last, len(keys) - 1)}
