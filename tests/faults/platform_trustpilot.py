"""The fault matrix's entries for the trustpilot source (:mod:`tests.faults._sources`)."""

from __future__ import annotations

from datetime import datetime

from tests.fakes import trustpilot_api
from tests.faults.platform import Platform


def _start() -> trustpilot_api.FakeTrustpilot:
    fake = trustpilot_api.FakeTrustpilot()
    fake.add_unit()
    return fake


def _review(fake: trustpilot_api.FakeTrustpilot, number: int, at: datetime) -> None:
    fake.add_reviews(trustpilot_api.review(
        f"6737a{number:019d}", at, title=f"acme {number}", text="the order never arrived"))


PLATFORMS: dict[str, Platform] = {
    "trustpilot": Platform(
        "tp", _start,
        lambda f: f'type: trustpilot, name: tp, brand: acme, base_url: "{f.base_url}", '
                  f'business_units: ["{trustpilot_api.UNIT_ID}"], '
                  'api_key: {"$env": TRUSTPILOT_API_KEY}',
        _review, env={"TRUSTPILOT_API_KEY": trustpilot_api.API_KEY}),
}
