"""Spike detection: hourly volume and negative share per brand (and source) vs a baseline.

(Being written: the detector, its config and its synthetic-series evaluation.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database


class SpikeConfig(BaseModel):
    """One spike detector, routed to named destinations."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique detector name")
    destinations: list[str] = Field(min_length=1, description="destination names")


def run_spikes(
    db: Database, detectors: Sequence[SpikeConfig], destinations: set[str], now: datetime
) -> int:
    """Check every detector; returns how many spike alerts were queued."""
    return 0
