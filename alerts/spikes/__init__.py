"""Spike alerts: hourly volume and negative share per brand (and source) against a baseline.

``config`` (a detector's settings), ``stats`` (the statistical tests, pure numpy), ``detect``
(the reports stage's spike run: series from :mod:`storage.windows`, tests, cooldowns,
reports), ``report`` (what a spike report says: numbers, top terms, examples).
"""

from alerts.spikes.config import SpikeConfig
from alerts.spikes.detect import load_series, run_spikes

__all__ = ["SpikeConfig", "load_series", "run_spikes"]
