"""The fault matrix's entries for the stackexchange source (:mod:`tests.faults._sources`)."""

from __future__ import annotations

from datetime import datetime

from tests.fakes import stackexchange_api
from tests.faults.platform import Platform


def _question(fake: stackexchange_api.FakeStackExchange, number: int, at: datetime) -> None:
    fake.add(stackexchange_api.question(
        78000000 + number, int(at.timestamp()), f"Acme SDK is down ({number})",
        "<p>Every call times out since this morning.</p>"))


PLATFORMS: dict[str, Platform] = {
    "stackexchange": Platform(
        "se", stackexchange_api.FakeStackExchange,
        lambda f: f'type: stackexchange, name: se, base_url: "{f.base_url}", '
                  'key: {"$env": SE_KEY}, access_token: {"$env": SE_ACCESS_TOKEN}',
        _question,
        {"SE_KEY": stackexchange_api.KEY, "SE_ACCESS_TOKEN": stackexchange_api.TOKEN}),
}
