"""The fault matrix's entries for the discourse source (:mod:`tests.faults._sources`)."""

from __future__ import annotations

from datetime import datetime

from tests.fakes import discourse_api
from tests.faults.platform import Platform


def _start() -> discourse_api.FakeDiscourse:
    return discourse_api.FakeDiscourse(api_key=discourse_api.API_KEY)


def _topic(fake: discourse_api.FakeDiscourse, number: int, at: datetime) -> None:
    fake.add_topic(f"acme is down again ({number})", f"<p>Since this morning, {number}.</p>",
                   username=f"user{number}", created_at=at)


PLATFORMS: dict[str, Platform] = {
    "discourse": Platform(
        "forum", _start,
        lambda f: f'type: discourse, name: forum, base_url: "{f.base_url}", brand: acme, '
                  'api_key: {"$env": DISCOURSE_API_KEY}, api_username: system',
        _topic, env={"DISCOURSE_API_KEY": discourse_api.API_KEY}),
}
