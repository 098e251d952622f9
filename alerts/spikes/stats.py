"""The statistics of spike detection: pure functions over hour-long counts (no database).

`alerts/spikes/detect.py` feeds these from SQLite; `bench/spikes.py` feeds the very same functions
synthetic series with known spikes. Counts are arrays indexed by *hours back*: index 0 is the
window under test (the trailing hour), index k the hour-long window that ended k hours before it,
so indexes 24, 48, … are the same time of day on earlier days.

Volume — negative binomial upper tail. Social volume is burstier than Poisson, so the window's
count is compared with NegBin(mean μ, dispersion φ), whose variance is μ + φμ²:

- μ (seasonal, the default): the trimmed mean (top and bottom quarter dropped) of the same
  time of day ±1 hour over the baseline's days, so a normal evening peak is expected and a
  spike in the baseline is trimmed away (±1 hour: 21 windows a week instead of 7, a steadier μ;
  the price is that a peak narrower than ~3 hours is partly averaged away). Flat: the trimmed
  mean of every baseline hour.
  μ is at least ``EXPECTED_FLOOR`` post/hour, so an empty baseline does not fire on 3 posts.
- φ: how far the baseline's own hours stray from the same model, chosen so that the median of
  their squared Pearson residuals is 0.455 (the median of a squared standard normal). A median,
  so last week's spike does not make the detector blind for a week.
- p = P(X ≥ posts) = I_q(posts, 1/φ) with q = μ/(μ + 1/φ) (regularized incomplete beta).

Negative share — one-sided two-proportion z-test of the window's share of negative posts
(among scored posts) against the whole baseline's share, its variance multiplied by the
baseline's own over-dispersion D ≥ 1 (median squared Pearson residual of its hours / 0.455): a
topic that swings the share every other hour does not page.

A test fires when p < the sensitivity's threshold, the window has at least ``min_volume`` posts
(scored posts for the share) and the change matters to a human: volume ≥ ``MIN_RATIO`` × μ, the
share up by ≥ ``MIN_SHARE_RISE``. μ is estimated from a few days, so p-values are approximate;
the thresholds were calibrated on synthetic series (`python bench/spikes.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import ArrayLike

VOLUME, NEGATIVE = "volume", "negative"
# one-sided p-value below which a test fires
SENSITIVITY_P = {"low": 1e-7, "medium": 1e-5, "high": 1e-4}
EXPECTED_FLOOR = 1.0  # posts/hour: what an empty baseline is taken to expect
MIN_RATIO = 1.5  # a volume spike is at least this many times the usual
MIN_SHARE_RISE = 0.10  # a negativity spike raises the share by at least 10 points
MIN_HISTORY_HOURS = 24  # a brand or source needs a day of posts before it can spike
PHI_MIN, PHI_MAX, PHI_DEFAULT = 0.01, 2.0, 0.1
MEDIAN_CHI2_1 = 0.4549  # median of a squared standard normal
EXTREME_RATIO = 5.0  # a volume spike this large is high priority


@dataclass(frozen=True)
class HourCounts:
    """Hour-long windows, newest first (index 0 is the window under test)."""

    posts: np.ndarray
    scored: np.ndarray  # posts with a score (the negative share's denominator)
    negative: np.ndarray  # posts whose newest score is negative

    @classmethod
    def of(cls, posts: ArrayLike, scored: ArrayLike, negative: ArrayLike) -> HourCounts:
        return cls(*(np.asarray(a, dtype=np.int64) for a in (posts, scored, negative)))


@dataclass(frozen=True)
class Settings:
    metric: str = "both"  # volume | negative | both
    p_threshold: float = SENSITIVITY_P["medium"]
    min_volume: int = 10
    seasonal: bool = True


@dataclass(frozen=True)
class VolumeTest:
    posts: int
    expected: float
    ratio: float
    dispersion: float
    p_value: float
    fired: bool


@dataclass(frozen=True)
class NegativeTest:
    scored: int
    negative: int
    share: float
    baseline_share: float
    z: float
    p_value: float
    fired: bool


@dataclass(frozen=True)
class Verdict:
    volume: VolumeTest | None
    negative: NegativeTest | None

    @property
    def fired(self) -> list[str]:
        tests = ((VOLUME, self.volume), (NEGATIVE, self.negative))
        return [kind for kind, test in tests if test is not None and test.fired]


def check(counts: HourCounts, settings: Settings, min_history: int = MIN_HISTORY_HOURS
          ) -> Verdict | None:
    """Both tests on one series; None while it has less than ``min_history`` windows of
    history (a day of hours; the overview's daily and weekly series pass their own)."""
    seen = np.flatnonzero(counts.posts[1:]) + 1
    history = int(seen[-1]) if seen.size else 0  # oldest hour with a post: collection began
    if history < min_history:
        return None
    volume = negative = None
    if settings.metric in ("volume", "both"):
        volume = volume_test(counts.posts[: history + 1], settings)
    if settings.metric in ("negative", "both"):
        negative = negative_test(counts.scored[: history + 1], counts.negative[: history + 1],
                                 settings)
    return Verdict(volume, negative)


def volume_test(posts: np.ndarray, settings: Settings) -> VolumeTest:
    """Is ``posts[0]`` improbably high for its time of day? (negative binomial upper tail)"""
    expected, baseline, fitted = expectation(posts, settings.seasonal)
    phi = dispersion(baseline, fitted)
    x = int(posts[0])
    p = negbin_sf(x, expected, phi)
    ratio = x / expected
    fired = (x >= settings.min_volume and ratio >= MIN_RATIO and p < settings.p_threshold)
    return VolumeTest(x, expected, ratio, phi, p, fired)


def expectation(posts: np.ndarray, seasonal: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """μ for the window, plus the baseline hours and what the same model expects of each.

    Seasonal: the baseline as a (days × 24) matrix whose column j holds the windows that ended
    j + 1 hours (mod 24) before the window's own time of day, so column 23 is the same time of
    day. Each column's expectation pools it with its two neighbours (±1 hour: 21 windows for a
    week), which steadies μ on small counts at the cost of a little of the daily curve.
    """
    days = (len(posts) - 1) // 24
    if seasonal and days >= 1:
        baseline = posts[1 : 24 * days + 1].reshape(days, 24).astype(float)
        pooled = np.concatenate([np.roll(baseline, 1, axis=1), baseline,
                                 np.roll(baseline, -1, axis=1)])
        columns = trimmed_mean(pooled)
        fitted = np.broadcast_to(columns, baseline.shape).ravel()
        return max(float(columns[23]), EXPECTED_FLOOR), baseline.ravel(), fitted
    baseline = posts[1:].astype(float)
    level = float(trimmed_mean(baseline))
    return max(level, EXPECTED_FLOOR), baseline, np.full(baseline.shape, level)


def trimmed_mean(values: np.ndarray) -> np.ndarray:
    """Column means without the top and bottom quarter of each column: robust to one past
    spike, not as coarse as a median on small counts."""
    ordered = np.sort(values, axis=0)
    cut = len(ordered) // 4
    means: np.ndarray = ordered[cut : len(ordered) - cut].mean(axis=0)
    return means


def dispersion(counts: np.ndarray, fitted: np.ndarray) -> float:
    """φ at which the median squared Pearson residual of the baseline hours is 0.455.

    Each hour's residual (c − m)²/(m + φm²) falls as φ grows and crosses 0.455 at its own
    φₖ = ((c − m)²/0.455 − m)/m², so the median residual crosses it at the median φₖ.
    """
    mask = fitted >= 1.0
    if mask.sum() < MIN_HISTORY_HOURS:
        return PHI_DEFAULT
    c, m = counts[mask], fitted[mask]
    each = ((c - m) ** 2 / MEDIAN_CHI2_1 - m) / (m * m)
    return float(np.clip(np.median(each), PHI_MIN, PHI_MAX))


def negative_test(scored: np.ndarray, negative: np.ndarray, settings: Settings) -> NegativeTest:
    """Has the window's negative share risen beyond what the baseline's hours wander?"""
    n1, k1 = int(scored[0]), int(negative[0])
    n0, k0 = int(scored[1:].sum()), int(negative[1:].sum())
    share = k1 / n1 if n1 else 0.0
    base = k0 / n0 if n0 else 0.0
    pooled = (k0 + k1) / (n0 + n1) if n0 + n1 else 0.0
    if n1 == 0 or n0 == 0 or pooled in (0.0, 1.0):
        return NegativeTest(n1, k1, share, base, 0.0, 1.0, False)
    inflation = share_dispersion(scored[1:], negative[1:], base)
    z = (share - base) / math.sqrt(inflation * pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    p = 0.5 * math.erfc(z / math.sqrt(2))
    fired = (n1 >= settings.min_volume and share - base >= MIN_SHARE_RISE
             and p < settings.p_threshold)
    return NegativeTest(n1, k1, share, base, z, p, fired)


def share_dispersion(scored: np.ndarray, negative: np.ndarray, share: float) -> float:
    """D ≥ 1: median squared Pearson residual of the baseline hours (≥ 5 scored) / 0.455."""
    mask = scored >= 5
    if mask.sum() < MIN_HISTORY_HOURS or share in (0.0, 1.0):
        return 1.0
    n, k = scored[mask], negative[mask]
    residuals = (k - n * share) ** 2 / (n * share * (1 - share))
    return float(np.clip(np.median(residuals) / MEDIAN_CHI2_1, 1.0, 20.0))


def due(fired: Sequence[str], last_fired: Mapping[str, datetime], end: datetime,
        cooldown: timedelta) -> list[str]:
    """The fired kinds whose last alert (window end) is at least ``cooldown`` old."""
    return [kind for kind in fired if kind not in last_fired or end - last_fired[kind] >= cooldown]


def negbin_sf(x: int, mean: float, phi: float) -> float:
    """P(X ≥ x) for X ~ NegBin(mean, φ) (variance mean + φ·mean²), exact to ~1e-13."""
    if x <= 0:
        return 1.0
    r = 1.0 / phi
    return betainc(float(x), r, mean / (mean + r))


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by Lentz's continued fraction (Numerical Recipes
    6.4); numpy has none and scipy is no dependency. Accurate for tiny tails, which is where
    the upper tail of the volume test lives."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h
