"""The settings of a ``type: youtube`` source: its keys, their defaults and their checks."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from listener.core.httpguard import GuardSettings
from listener.sources.base import SourceConfig

DEFAULT_BASE_URL = "https://www.googleapis.com"
_CHANNEL = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
_VIDEO = re.compile(r"^[A-Za-z0-9_-]{11}$")


class YouTubeSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: youtube`` source."""

    api_key: str = Field(
        repr=False, min_length=1,
        description='YouTube Data API v3 key of a Google Cloud project, set as {"$env": '
        'YOUTUBE_API_KEY}, never in the file (Credentials > Create credentials > API key; '
        'restrict it to the YouTube Data API v3)',
    )
    channels: list[str] = Field(
        default_factory=list,
        description="channel ids (UC…, 24 characters; on the channel page: About > Share "
        "channel > Copy channel ID) whose videos' comments and replies are read",
    )
    videos: list[str] = Field(
        default_factory=list,
        description="video ids (the v= of a watch URL) whose comments and replies are read, "
        "on any channel",
    )
    search: bool = Field(
        False, description="also search new videos' titles and descriptions for each brand's "
        "query (search.list: 100 quota units a call)",
    )
    base_url: str = Field(
        DEFAULT_BASE_URL,
        description="API root; change only for a proxy or a test server",
    )
    daily_quota: int = Field(
        10000, ge=1, description="quota units a day (Pacific Time) this source may spend; it "
        "pauses until midnight Pacific before a call would pass it (the default quota of a "
        "project is 10,000; lower this when other programs share the project)",
    )
    max_pages: int = Field(
        5, ge=1, le=100, description="pages per channel, video or brand search per poll; a "
        "longer backlog is read over the next polls",
    )
    page_size: int = Field(
        100, ge=1, le=100, description="comment threads per request (YouTube max 100); "
        "searches ask for at most 50 (their maximum)",
    )
    watch_threads: int = Field(
        50, ge=0, le=1000, description="newest threads per channel or video re-counted each "
        "poll for new replies (1 quota unit per 50); 0 reads replies of new threads only",
    )
    search_interval: float = Field(
        1800, ge=0, description="seconds between two searches of a brand (each costs 100 "
        "units; the default quota allows about 95 a day)",
    )
    search_overlap: float = Field(
        3600, ge=0, le=7 * 86400, description="seconds searched again behind the newest video "
        "found, for videos that reach the search index late; repeats are skipped",
    )
    initial_lookback: float = Field(
        86400, ge=0, description="seconds of history the first poll reads (no cursor yet); "
        "`listener backfill` reaches further",
    )
    backfill_max_pages: int = Field(
        50, ge=1, le=100000, description="pages per channel, video or brand search when "
        "backfilling",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError(f"must be an http(s) URL such as {DEFAULT_BASE_URL}, not {value!r}")
        return value.rstrip("/")

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not _CHANNEL.match(v)]
        if bad:
            raise ValueError(f"not channel ids (UC followed by 22 letters, digits, - or _; a "
                             f"@handle or a channel URL will not do): {bad}")
        return list(dict.fromkeys(values))

    @field_validator("videos")
    @classmethod
    def _video_ids(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not _VIDEO.match(v)]
        if bad:
            raise ValueError(f"not video ids (11 letters, digits, - or _): {bad}")
        return list(dict.fromkeys(values))
