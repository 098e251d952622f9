"""Rate-limit header parsing and the status → exception map shared by HTTP collectors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listener.core.errors import RateLimited, SourceError
from listener.sources.http import raise_for_status, retry_after

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "Fri, 20 Nov 2026 12:01:00 GMT"}, 60.0),
        ({"x-rate-limit-reset": str(int(NOW.timestamp()) + 90)}, 90.0),  # X: epoch seconds
        ({"X-Ratelimit-Reset": "42"}, 42.0),  # Reddit: seconds until reset
        ({"Retry-After": "soon"}, 60.0),
        ({}, 60.0),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float) -> None:
    assert retry_after(headers, NOW) == pytest.approx(expected)


def test_status_map() -> None:
    raise_for_status("s", 200, {}, "", NOW)
    with pytest.raises(RateLimited) as limited:
        raise_for_status("s", 429, {"Retry-After": "5"}, "slow down", NOW)
    assert limited.value.retry_after == 5
    with pytest.raises(SourceError, match="credentials were refused"):
        raise_for_status("s", 401, {}, "Unauthorized", NOW)
    with pytest.raises(SourceError, match="HTTP 502"):
        raise_for_status("s", 502, {}, "<html>bad gateway</html>", NOW)
