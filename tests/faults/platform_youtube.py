"""The fault matrix's entries for the youtube source (:mod:`tests.faults._sources`)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.fakes import youtube_api
from tests.faults.platform import Platform

CHANNEL = "UCacmeAcmeAcmeAcme000001"
VIDEO = "acmeVideo01"


def _start() -> youtube_api.FakeYouTube:
    """The fake with the brand's channel and one video on it (comments arrive on it)."""
    fake = youtube_api.FakeYouTube()
    fake.add_channel(CHANNEL, "Acme", subscribers=1200)
    fake.add_video(VIDEO, CHANNEL, "Acme product tour", published=datetime(2026, 11, 1, tzinfo=UTC))
    return fake


def _comment(fake: youtube_api.FakeYouTube, number: int, at: datetime) -> None:
    fake.add_thread(f"UgxFault{number:04d}", VIDEO, f"acme cloud is down again ({number})",
                    published=at)


PLATFORMS: dict[str, Platform] = {
    "youtube": Platform(
        "yt", _start,
        lambda f: f'type: youtube, name: yt, base_url: "{f.base_url}", '
                  f'api_key: {{"$env": YOUTUBE_API_KEY}}, channels: [{CHANNEL}]',
        _comment, env={"YOUTUBE_API_KEY": youtube_api.KEY}),
}
