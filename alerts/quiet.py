"""Quiet hours: a rule's alerts are held while people sleep and sent as ONE report afterwards.

An alert decided inside its rule's quiet hours is stored with status ``held``: recorded, never
sent on its own (``alerts.rules_stage`` decides that); :mod:`alerts.held` rolls them up into one
report when the quiet period ends.

Times of day are local to an IANA time zone and converted with :mod:`zoneinfo`, so "07:00
Europe/Berlin" is 06:00 UTC in winter and 05:00 UTC in summer.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def _time_of_day(value: Any) -> Any:
    """"HH:MM" on a 24-hour clock; explains YAML's sexagesimal trap (22:00 unquoted is 1320)."""
    if isinstance(value, int) and not isinstance(value, bool):
        hours, minutes = divmod(value, 60)
        raise ValueError(f'write the time in quotes, e.g. "{hours:02d}:{minutes:02d}" (unquoted, '
                         f"YAML reads {hours}:{minutes:02d} as the number {value})")
    if not isinstance(value, str) or not _HHMM.fullmatch(value):
        raise ValueError(f"expected a time of day as HH:MM on a 24-hour clock, got {value!r}")
    return value


def _time_zone(value: Any) -> Any:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin, "
                         "America/New_York or UTC") from exc
    return value


TimeOfDay = Annotated[str, BeforeValidator(_time_of_day)]
TimeZoneName = Annotated[str, BeforeValidator(_time_zone)]


def local_time(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    """``day`` at ``hhmm`` wall-clock time in ``zone``, as UTC.

    A time that does not exist that day (skipped by a DST change) resolves with the offset
    before the change; an ambiguous one (repeated) takes its first occurrence.
    """
    hour, minute = map(int, hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


class QuietHours(BaseModel):
    """A daily stretch of local time in which a rule's alerts are held, not sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: TimeOfDay = Field(description="local time the quiet hours begin, HH:MM (quoted)")
    end: TimeOfDay = Field(
        description="local time they end, HH:MM (quoted); earlier than start: crosses midnight"
    )
    timezone: TimeZoneName = Field("UTC", description="IANA time zone of start and end")

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end are the same time: nothing would be "
                             "quiet (or everything); set different times")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def label(self) -> str:
        return f"{self.start}–{self.end} {self.timezone}"

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware) falls in the quiet hours: start inclusive, end exclusive."""
        now = moment.astimezone(self.zone).strftime("%H:%M")
        if self.start < self.end:  # "HH:MM" strings order like times
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def last_end(self, now: datetime) -> datetime:
        """When the latest quiet period that has ended by ``now`` ended (UTC)."""
        today = now.astimezone(self.zone).date()
        end = local_time(today, self.end, self.zone)
        return end if end <= now else local_time(today - timedelta(days=1), self.end, self.zone)
