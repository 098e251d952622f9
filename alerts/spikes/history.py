"""Spikes in a stored series: the live detector's tests applied to every bucket of a history.

The live detector (:mod:`alerts.spikes.detect`) tests the trailing hour of every reports run,
so it only ever sees what arrives while it runs: history brought in by ``listener import`` or a
backfill, or hours when no detector was configured, never had a spike recorded. The dashboard
shows such history all the same; here each of its buckets (hours, days or weeks, oldest first)
is tested against the buckets before it with the very same statistics (:func:`stats.check`:
the negative binomial volume test and the over-dispersed negative-share test), at the
detector's default settings (medium sensitivity, 10 posts). Per bucket width:

- hour: 168 hours of baseline, seasonal (the same time of day ±1 hour), a day of history first:
  the live detector's defaults;
- day: 28 days, flat (the trimmed mean of the days: a weekly rhythm would need several weeks
  of each weekday before it says anything), a week of history first;
- week: 12 weeks, flat, four weeks of history first.

Adjacent buckets that fire are one spike. Pure functions over counts: no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from alerts.spikes.stats import (
    EXPECTED_FLOOR,
    MIN_RATIO,
    MIN_SHARE_RISE,
    HourCounts,
    Settings,
    Verdict,
    check,
)


@dataclass(frozen=True)
class Baseline:
    """How one bucket width is tested: buckets of baseline, seasonal or flat, and how many
    buckets of history a series needs before it can spike."""

    buckets: int
    seasonal: bool
    min_history: int


BASELINES = {"hour": Baseline(168, True, 24), "day": Baseline(28, False, 7),
             "week": Baseline(12, False, 4)}


@dataclass(frozen=True)
class FoundSpike:
    """Buckets ``first`` … ``last`` (indexes into the series) fired; ``peak`` is the one with
    the most posts, and ``verdict`` its tests' numbers."""

    first: int
    last: int
    kinds: tuple[str, ...]
    peak: int
    verdict: Verdict


def find_spikes(
    posts: Sequence[int], scored: Sequence[int], negative: Sequence[int], bucket: str,
    first: int = 0, settings: Settings | None = None,
) -> list[FoundSpike]:
    """Spikes among buckets ``first`` … the last of a series (oldest first; the buckets
    before ``first`` are only baseline): ``scored`` posts are the negative share's
    denominator. ``bucket`` is 'hour', 'day' or 'week' (:data:`BASELINES`)."""
    base = BASELINES[bucket]
    tested = replace(settings or Settings(), seasonal=base.seasonal)
    size = base.buckets + 1
    pad = np.zeros(size - 1, dtype=np.int64)
    arrays = [np.concatenate([pad, np.asarray(a, dtype=np.int64)])
              for a in (posts, scored, negative)]
    runs: list[list[tuple[int, Verdict]]] = []
    may_fire = _may_fire(arrays, base, tested)
    for i in range(first, len(posts)):
        if not may_fire[i + size - 1]:
            continue  # neither test can fire: skip the arithmetic
        end = i + size  # bucket i and the ``buckets`` before it, newest first
        window = HourCounts(*(a[end - size:end][::-1] for a in arrays))
        verdict = check(window, tested, base.min_history)
        if verdict is None or not verdict.fired:
            continue
        if runs and runs[-1][-1][0] == i - 1:
            runs[-1].append((i, verdict))
        else:
            runs.append([(i, verdict)])
    return [_spike(run, posts) for run in runs]


def _may_fire(arrays: list[np.ndarray], base: Baseline, settings: Settings) -> np.ndarray:
    """Per bucket (of the padded series), whether either test could fire: a necessary
    condition, cheap for a whole series at once, so that a busy 30-day hourly view runs the
    full tests on a few buckets instead of 720.

    Volume fires only at ``MIN_RATIO`` times the expected count, and the expected count is a
    trimmed mean of baseline buckets (seasonal: the same time of day ±1 hour), so at least their
    minimum (and ``EXPECTED_FLOOR``). The share fires only ``MIN_SHARE_RISE`` above the
    baseline's share, which is exact from running sums. Buckets before the data are zeros:
    they only weaken the bound (more buckets are tested), never skip one that would fire."""
    posts, scored, negative = arrays
    size = base.buckets + 1
    if base.seasonal:  # hours back of the pooled same-time-of-day buckets (stats.expectation)
        days = base.buckets // 24
        offsets = np.array([h for k in range(1, days + 1) for h in (24 * k - 1, 24 * k,
                                                                  24 * k - 23)])
    else:
        offsets = np.arange(1, size)
    index = np.arange(len(posts))[:, None] - offsets[None, :]
    lowest = np.where(index >= 0, posts[np.clip(index, 0, None)], 0).min(axis=1)
    expected = np.maximum(lowest, EXPECTED_FLOOR)
    volume = (posts >= settings.min_volume) & (posts >= MIN_RATIO * expected)
    n = np.concatenate([[0], np.cumsum(scored)])
    k = np.concatenate([[0], np.cumsum(negative)])
    ends = np.arange(len(posts))
    starts = np.clip(ends - (size - 1), 0, None)
    n0, k0 = n[ends] - n[starts], k[ends] - k[starts]  # the baseline: buckets before each
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = np.where((scored > 0) & (n0 > 0),
                        negative / np.maximum(scored, 1) - k0 / np.maximum(n0, 1), 0.0)
    share = (scored >= settings.min_volume) & (n0 > 0) & (rise >= MIN_SHARE_RISE - 1e-12)
    fired: np.ndarray = volume | share
    return fired


def _spike(run: list[tuple[int, Verdict]], posts: Sequence[int]) -> FoundSpike:
    kinds = tuple(dict.fromkeys(kind for _, verdict in run for kind in verdict.fired))
    peak, verdict = max(run, key=lambda item: (posts[item[0]], -item[0]))
    return FoundSpike(run[0][0], run[-1][0], kinds, peak, verdict)
