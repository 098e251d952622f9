"""Spike detection: hourly volume and negative share per brand (and source) vs a baseline.

Every reports run looks at the trailing hour ending at ``now`` floored to 10 minutes (the
*window*): a spike pages within ~10 minutes, and runs within the same 10 minutes produce the same
report id, so they add nothing. The window is compared with the hour-long windows before it (the
*baseline*, ``baseline_hours`` of them) by the tests in :mod:`alerts.spikes.stats`. A detector
that fires writes one report (numbers, top terms, example posts) with one alert per destination;
``cooldown_minutes`` keeps the same (detector, brand, source, kind of spike) from paging again
while a spike goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlite_utils import Database

from alerts.spikes.config import SpikeConfig
from alerts.spikes.report import build_report
from alerts.spikes.stats import HourCounts, check, due
from listener.core.query import Brand
from storage import outbox
from storage.reports import enqueue_report, spike_windows
from storage.windows import series_counts

WINDOW_STEP_MINUTES = 10
SeriesKey = tuple[str | None, str | None]  # (brand, source); source None: all sources


def window_end(now: datetime) -> datetime:
    """``now`` floored to 10 minutes: the end of the window every run in that slot tests."""
    return now.replace(minute=now.minute - now.minute % WINDOW_STEP_MINUTES, second=0,
                       microsecond=0)


def run_spikes(
    db: Database, detectors: Sequence[SpikeConfig], destinations: set[str], now: datetime,
    brands: Mapping[str, Brand] | None = None,
) -> int:
    """Check every detector; returns how many spike alerts were queued.

    ``brands`` (the configured ones) lets top terms leave out each brand's query terms.
    """
    end = window_end(now)
    loaded: dict[int, dict[SeriesKey, HourCounts]] = {}  # one query per baseline length
    added = 0
    for det in detectors:
        routes = [d for d in det.destinations if d in destinations]
        if not det.enabled or not routes:
            continue
        if det.baseline_hours not in loaded:
            loaded[det.baseline_hours] = load_series(db, end, det.baseline_hours)
        settings = det.settings()
        for (brand, source), counts in series_for(det, loaded[det.baseline_hours]).items():
            verdict = check(counts, settings)
            if verdict is None or not verdict.fired:
                continue
            kinds = due(verdict.fired, last_fired(db, det.name, brand, source, end), end,
                        timedelta(minutes=det.cooldown_minutes))
            if not kinds:
                continue
            query = brands.get(brand) if brands and brand else None
            report = build_report(db, det, brand, source, end, verdict, kinds, query)
            status = outbox.DRY_RUN if det.dry_run else outbox.PENDING
            added += enqueue_report(db, report, routes, now, status=status)
    return added


def load_series(db: Database, end: datetime, baseline_hours: int
                ) -> dict[SeriesKey, HourCounts]:
    """Posts, scored and negative posts per hour back from ``end``, per (brand, source): the
    window and its ``baseline_hours`` hours (:func:`storage.windows.series_counts`)."""
    start = end - timedelta(hours=baseline_hours + 1)
    size = baseline_hours + 1
    arrays: dict[SeriesKey, np.ndarray] = {}
    for cell in series_counts(db, start, end):
        key = (cell.brand, cell.source)
        if key not in arrays:
            arrays[key] = np.zeros((3, size), dtype=np.int64)
        arrays[key][:, cell.hour] = (cell.posts, cell.scored, cell.negative)
    return {key: HourCounts(*a) for key, a in arrays.items()}


def series_for(det: SpikeConfig, loaded: Mapping[SeriesKey, HourCounts]
               ) -> dict[SeriesKey, HourCounts]:
    """The detector's series: its brands, per source or summed over sources."""
    wanted = [key for key in loaded if det.brands is None or key[0] in det.brands]
    if det.per_source:
        return {key: loaded[key] for key in wanted}
    summed: dict[SeriesKey, HourCounts] = {}
    for brand, source in wanted:
        c = loaded[(brand, source)]
        prev = summed.get((brand, None))
        summed[(brand, None)] = c if prev is None else HourCounts(
            prev.posts + c.posts, prev.scored + c.scored, prev.negative + c.negative)
    return summed


def last_fired(db: Database, name: str, brand: str | None, source: str | None,
               end: datetime) -> dict[str, datetime]:
    """Window end of the newest earlier spike report per kind of spike (for cooldowns).

    Only the last day is looked at (cooldowns are shorter).
    """
    newest: dict[str, datetime] = {}
    for earlier in spike_windows(db, name, brand, source, end - timedelta(days=1)):
        for kind in earlier.spikes:
            if kind not in newest or earlier.window_end > newest[kind]:
                newest[kind] = earlier.window_end
    return newest
