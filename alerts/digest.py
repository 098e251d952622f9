"""Digests: a daily or weekly summary per brand, with a chart; and alerts held over quiet hours.

(Being written: the digest figures, the chart and the quiet-hours roll-up.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database


class DigestConfig(BaseModel):
    """One digest schedule, routed to named destinations."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique digest name")
    destinations: list[str] = Field(min_length=1, description="destination names")


def run_digests(
    db: Database, digests: Sequence[DigestConfig], destinations: set[str], now: datetime
) -> int:
    """Send every digest whose period has ended; returns how many digest alerts were queued."""
    return 0
