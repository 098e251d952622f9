"""One spike detector's settings (``spikes:`` in the config), apart from the detection so that
the report builder, which reads them too, imports them from below."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from alerts.spikes.stats import SENSITIVITY_P, Settings


class SpikeConfig(BaseModel):
    """One spike detector, routed to named destinations."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique detector name")
    destinations: list[str] = Field(min_length=1, description="destination names")
    brands: list[str] | None = Field(
        None, description="brands to watch; default every brand with posts (and posts without one)"
    )
    per_source: bool = Field(False, description="one series per brand and source, not per brand")
    metric: Literal["volume", "negative", "both"] = Field(
        "both", description="what can spike: post volume, negative share, or both"
    )
    sensitivity: Literal["low", "medium", "high"] = Field(
        "medium", description="p-value threshold: low 1e-7, medium 1e-5, high 1e-4"
    )
    min_volume: int = Field(10, ge=1, description="posts the window needs before either test fires")
    baseline_hours: int = Field(
        168, ge=24, le=24 * 28, description="hours before the window that make the baseline"
    )
    seasonal: bool = Field(
        True, description="expect the volume of the same time of day on earlier days (not the "
        "average hour)"
    )
    cooldown_minutes: int = Field(
        120, ge=0, le=24 * 60,
        description="no new alert of the same kind for the same series until then",
    )
    enabled: bool = Field(True, description="false keeps the detector but never runs it")
    dry_run: bool = Field(
        False, description="record the alerts (status dry_run) but never send them"
    )

    def settings(self) -> Settings:
        return Settings(metric=self.metric, p_threshold=SENSITIVITY_P[self.sensitivity],
                        min_volume=self.min_volume, seasonal=self.seasonal)
