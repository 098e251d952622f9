"""What the overview shows, composed from storage/trends.py: the series per bucket, totals,
per-brand and per-source tables with the period before, spikes, and top negative terms.

Spikes are of two kinds, merged: those the live detector recorded (``reports``, with the
detector's own title and terms), and those found in the displayed series itself by the same
statistics (:mod:`alerts.spikes.history`), so imported or backfilled history shows its spikes
too. A found spike whose buckets a recorded one already covers is the same event: only the
recorded one is listed.

Terms are phrases (:mod:`alerts.terms`, what spike, digest and incident reports list), ranked
by how much more the period's negative posts use them than the period's other posts: what
people complain about, rather than what changed since the period before (the "before" column
says that). The brand's own words never count.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from alerts.spikes.history import BASELINES, FoundSpike, find_spikes
from alerts.spikes.stats import NEGATIVE, VOLUME
from alerts.terms import document_frequencies, posts_using, ranked_terms, top_terms
from listener.core.models import parse_iso, to_iso
from storage import teamwork
from storage.inbox import ResponseTimes
from storage.trends import (
    SENTIMENTS,
    Counts,
    Period,
    bucket_key,
    bucket_keys,
    counts_by,
    negative_texts,
    post_texts,
    spikes,
    total,
)

TOP_TERMS = 15
MIN_TERM_POSTS = 2  # a phrase in one negative post is an anecdote, not a term
BACKGROUND_SAMPLE = 1000  # newest other posts of the period the negative ones are compared with
MIN_SHARE_POSTS = 5  # a bucket's negative share is shown from this many scored posts up
SPAN = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
# a found spike's own top terms: only for the strongest few, from a small sample each, so a
# 90-day view with many spikes stays quick
TERMED_SPIKES, SPIKE_TEXTS, SPIKE_BACKGROUND = 3, 300, 1000


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
    words = tuple(exclude)
    return {
        "period": {"start": to_iso(period.start), "end": to_iso(period.end), "bucket": bucket,
                   "previous_start": to_iso(previous.start)},
        "buckets": keys,
        "series": series,
        "totals": {"current": total(now["bucket"]).as_dict(),
                   "previous": total(old["bucket"]).as_dict()},
        "by_brand": _compare(now["brand"], old["brand"]),
        "by_source": _compare(now["source"], old["source"]),
        "spikes": all_spikes(db, period, bucket, keys, brand, source, words,
                             _known(previous, old["bucket"], now["bucket"])),
        "terms": _terms(db, period, brand, source, words),
    }


def term_counts(texts: list[str], exclude: Iterable[str] = ()) -> dict[str, int]:
    """In how many of the texts each phrase appears (once per post), brand words left out."""
    return dict(document_frequencies(texts, exclude))


def _terms(db: Database, period: Period, brand: str | None, source: str | None,
           exclude: tuple[str, ...]) -> list[dict[str, Any]]:
    """Top phrases of negative posts against the period's other posts, with the share of
    (sampled) negative posts that use them, now and in the period before: shares compare
    fairly whatever the two samples' sizes."""
    texts = negative_texts(db, period, brand, source)
    others = post_texts(db, period, brand, source, BACKGROUND_SAMPLE, negative=False)
    ranked = ranked_terms(texts, others, exclude=exclude, limit=TOP_TERMS,
                          min_posts=MIN_TERM_POSTS)
    if not ranked:
        return []
    old_texts = negative_texts(db, period.previous(), brand, source)
    before = posts_using([term.text for term in ranked], old_texts, exclude)
    return [{"term": term.text, "posts": term.posts, "share": term.posts / len(texts),
             "previous_share": before.get(term.text, 0) / len(old_texts) if old_texts else None}
            for term in ranked]


def _share(counts: Counts) -> float | None:
    """A bucket's negative share, or None below MIN_SHARE_POSTS scored posts (noise, not news)."""
    scored = counts.negative + counts.neutral + counts.positive
    return counts.negative_share if scored >= MIN_SHARE_POSTS else None


def _compare(now: dict[str, Counts], before: dict[str, Counts]) -> list[dict[str, Any]]:
    names = sorted(set(now) | set(before), key=lambda k: (-now.get(k, Counts()).total, k))
    return [{"name": name, "current": now.get(name, Counts()).as_dict(),
             "previous": before.get(name, Counts()).as_dict()} for name in names]


# -- spikes ------------------------------------------------------------------------------------

Known = tuple[Period, dict[str, Counts]]  # bucket counts already read, and what they cover


def _known(previous: Period, old: dict[str, Counts], now: dict[str, Counts]) -> Known:
    """The period before and this one, per bucket, as one series (a bucket split between
    them, a week, is summed): usually the baseline spikes are tested against."""
    merged = dict(old)
    for key, counts in now.items():
        merged[key] = total({"a": merged[key], "b": counts}) if key in merged else counts
    return Period(previous.start, previous.end + (previous.end - previous.start)), merged


def all_spikes(db: Database, period: Period, bucket: str, keys: list[str], brand: str | None,
               source: str | None, exclude: tuple[str, ...] = (), known: Known | None = None
               ) -> list[dict[str, Any]]:
    """Recorded spikes, then those found in the series that no recorded one covers, in
    the order of their first bucket. ``known``: counts already read (:func:`_known`)."""
    recorded = [_place(s, keys, bucket) for s in spikes(db, period, brand, source)]
    covered = {i for s in recorded for i in range(s["first_bucket"], s["last_bucket"] + 1)}
    found = [s for s in _found(db, period, bucket, brand, source, known)
             if not covered & set(range(s.first, s.last + 1))]
    by_size = sorted(range(len(found)), key=lambda i: -_ratio(found[i]))
    termed = set(by_size[:TERMED_SPIKES])
    shown = [_found_spike(db, s, keys, bucket, brand, source,
                          exclude if i in termed else None) for i, s in enumerate(found)]
    return sorted(recorded + shown, key=lambda s: (s["first_bucket"], s["found_in_history"]))


def _ratio(spike: FoundSpike) -> float:
    """How many times the usual volume the spike's peak had (0 for a negativity spike)."""
    return spike.verdict.volume.ratio if spike.verdict.volume else 0.0


def _found(db: Database, period: Period, bucket: str, brand: str | None,
           source: str | None, known: Known | None = None) -> list[FoundSpike]:
    """Spikes in the displayed buckets, each tested against the buckets before it: the series
    goes back one baseline before the period, from ``known`` counts where they reach that
    far, else from the rollup (indexes returned are the displayed buckets')."""
    history = Period(period.start - SPAN[bucket] * BASELINES[bucket].buckets, period.end)
    if known is not None and known[0].start <= history.start and known[0].end >= period.end:
        counts = known[1]
    else:
        counts = counts_by(db, history, bucket, "bucket", brand, source)
    keys = bucket_keys(history, bucket)
    shown_from = keys.index(bucket_key(period.start, bucket))
    cells = [counts.get(k, Counts()) for k in keys]
    found = find_spikes([c.total for c in cells],
                        [c.negative + c.neutral + c.positive for c in cells],
                        [c.negative for c in cells], bucket, first=shown_from)
    return [FoundSpike(s.first - shown_from, s.last - shown_from, s.kinds,
                       s.peak - shown_from, s.verdict) for s in found]


def _found_spike(db: Database, spike: FoundSpike, keys: list[str], bucket: str,
                 brand: str | None, source: str | None, exclude: tuple[str, ...] | None
                 ) -> dict[str, Any]:
    """A found spike in the shape of a recorded one (what the template and the API show);
    ``exclude`` None: no top terms for it (only the strongest few get them)."""
    start = _bucket_start(keys[spike.first], bucket)
    end = _bucket_start(keys[spike.last], bucket) + SPAN[bucket]
    terms: list[str] = []
    if exclude is not None:
        window = Period(start, end)
        baseline = Period(start - SPAN[bucket] * BASELINES[bucket].buckets, start)
        terms = top_terms(post_texts(db, window, brand, source, SPIKE_TEXTS),
                          post_texts(db, baseline, brand, source, SPIKE_BACKGROUND),
                          exclude=[*exclude, *(w for w in (brand, source) if w)])
    return {
        "id": None, "name": "history", "brand": brand, "source": source,
        "window_start": to_iso(start), "window_end": to_iso(end),
        "title": "; ".join(_headline(kind, spike, bucket) for kind in spike.kinds),
        "summary": (f"Found in the stored posts, each {bucket} against the {bucket}s before it;"
                    " no live alert recorded it (imported or backfilled history, or no"
                    " detector watching)."),
        "terms": terms, "found_in_history": True,
        "first_bucket": spike.first, "last_bucket": spike.last,
        "when": _when(start, end, bucket), **_queue_link(start, end),
    }


def _headline(kind: str, spike: FoundSpike, bucket: str) -> str:
    volume, negative = spike.verdict.volume, spike.verdict.negative
    if kind == VOLUME and volume:
        usual = f"{volume.expected:.0f}" if volume.expected >= 10 else f"{volume.expected:.1f}"
        return f"{volume.posts} posts in a {bucket} (usual {usual}) — {volume.ratio:.1f}×"
    if kind == NEGATIVE and negative:
        return f"negative share {negative.share:.0%} (usual {negative.baseline_share:.0%})"
    return kind


def _bucket_start(key: str, bucket: str) -> datetime:
    """The moment a bucket key ('2026-11-20T08', '2026-11-20') begins."""
    text = f"{key}:00:00" if bucket == "hour" else f"{key}T00:00:00"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _when(start: datetime, end: datetime, bucket: str) -> str:
    """A spike's window as a person reads it: '2026-11-18 10:00–11:00', '2026-11-14',
    'week of 2026-11-09', or its first and last day."""
    last = end - timedelta(seconds=1)
    if bucket == "hour":
        if start.date() == last.date():
            return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"
        return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M}"
    if end - start == SPAN[bucket]:
        return f"{start:%Y-%m-%d}" if bucket == "day" else f"week of {start:%Y-%m-%d}"
    return f"{start:%Y-%m-%d} – {last:%Y-%m-%d}"


def _queue_link(start: datetime, end: datetime) -> dict[str, str]:
    """The queue range and end that cover a spike's window (the queue's ranges are fixed)."""
    length = end - start
    span = next((name for name, hours in (("24h", 24), ("7d", 168), ("30d", 720))
                 if length <= timedelta(hours=hours)), "90d")
    return {"queue_range": span, "queue_end": to_iso(end - timedelta(seconds=1))}


def _place(spike: dict[str, Any], keys: list[str], bucket: str) -> dict[str, Any]:
    """A recorded spike with the first and last chart bucket its window covers (for the
    shading), how to read its window, and its queue link."""
    start, end = parse_iso(spike["window_start"]), parse_iso(spike["window_end"])
    first = bucket_key(start, bucket)
    last = bucket_key(end - timedelta(seconds=1), bucket)
    index = {k: i for i, k in enumerate(keys)}
    return {**spike, "found_in_history": False, "first_bucket": index.get(first, 0),
            "last_bucket": index.get(last, len(keys) - 1),
            "when": _when(start, end, "hour"), **_queue_link(start, end)}


# -- response times (issue 18) -------------------------------------------------------------------


def response_times(db: Database, period: Period, brand: str | None = None
                   ) -> dict[str, list[ResponseTimes]]:
    """First-response and resolution times of the period's answered posts, per brand and per
    agent (seconds; :func:`storage.teamwork.response_times`): the overview's card and its CSV."""
    return {by: teamwork.response_times(db, period.start, period.end, by, brand)
            for by in teamwork.GROUPS}
