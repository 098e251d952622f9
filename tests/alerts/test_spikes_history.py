"""alerts/spikes/history.py: the live detector's tests over every bucket of a stored series."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.spikes import history
from alerts.spikes.history import BASELINES, find_spikes
from alerts.spikes.stats import VOLUME, HourCounts, Settings, check


def _series(rng: np.random.Generator, n: int, level: float) -> tuple[np.ndarray, ...]:
    """Poisson posts with a few volume bursts, negativity bursts and silent stretches."""
    posts = rng.poisson(level, n)
    negative = rng.binomial(posts, 0.2)
    for at in rng.integers(0, n, 4):
        posts[at] = posts[at] * int(rng.integers(2, 8)) + int(rng.integers(0, 30))
        negative[at] = min(negative[at], posts[at])
    for at in rng.integers(0, n, 4):
        negative[at] = posts[at]
    start = int(rng.integers(0, n // 3))
    posts[:start] = 0  # collection began later
    negative[:start] = 0
    scored = posts - rng.binomial(posts, 0.05)
    return posts, scored, np.minimum(negative, scored)


@pytest.mark.parametrize("bucket", ["hour", "day", "week"])
def test_the_quick_screen_never_skips_a_bucket_the_tests_would_fire_on(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    length = {"hour": 400, "day": 90, "week": 40}[bucket]
    fired = 0
    for trial in range(30):
        posts, scored, negative = _series(rng, length, float(rng.choice([0.5, 3, 20, 150])))
        first = int(rng.integers(0, length // 2))
        screened = find_spikes(posts, scored, negative, bucket, first=first)
        with monkeypatch.context() as patched:
            patched.setattr(history, "_may_fire", lambda arrays, *_: np.ones(
                len(arrays[0]), dtype=bool))
            everything = find_spikes(posts, scored, negative, bucket, first=first)
        assert screened == everything, (bucket, trial)
        fired += len(everything)
    assert fired > 10  # the series do spike


def test_each_bucket_is_tested_as_the_live_detector_tests_an_hour() -> None:
    """Bucket i of an hourly series gets exactly the verdict the detector gives the window
    whose baseline is the 168 hours before it."""
    rng = np.random.default_rng(2)
    posts = rng.poisson(20, 400)
    posts[300] = 160
    negative = rng.binomial(posts, 0.2)
    [spike] = find_spikes(posts, posts, negative, "hour", first=200)
    assert (spike.first, spike.last, spike.kinds) == (300, 300, (VOLUME,))
    window = HourCounts.of(posts[300 - 168:301][::-1], posts[300 - 168:301][::-1],
                           negative[300 - 168:301][::-1])
    assert spike.verdict == check(window, Settings())


def test_adjacent_buckets_are_one_spike_and_history_is_needed_first() -> None:
    posts = np.array([30] * 40 + [200, 210, 190] + [30] * 5)
    [spike] = find_spikes(posts, posts, posts // 5, "day")
    assert (spike.first, spike.last, spike.peak) == (40, 42, 41)
    early = np.array([30] * 5 + [300] + [30] * 5)  # under a week of history: no verdict
    assert find_spikes(early, early, early // 5, "day") == []
    assert BASELINES["day"].min_history == 7
