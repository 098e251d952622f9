"""Issue 18 #4: every range per every bucket is shown as asked or refused with a message.

Before, ``range=30d&bucket=hour`` quietly became daily (and the form still said "hour").
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from listener.web.params import BUCKETS_FOR, RANGES
from storage.trends import BUCKETS

# bars each honoured combination shows, NOW being Friday 2026-11-20 12:00 UTC
HONOURED = {("24h", "hour"): 24, ("7d", "hour"): 168, ("7d", "day"): 7, ("30d", "hour"): 720,
            ("30d", "day"): 30, ("30d", "week"): 5, ("90d", "day"): 90, ("90d", "week"): 14}
REFUSED = {("24h", "day"): "one bar", ("24h", "week"): "one bar",
           ("7d", "week"): "two partial weeks", ("90d", "hour"): "2,160 bars"}
MATRIX = [(r, b) for r in RANGES for b in BUCKETS]


def test_the_matrix_is_complete() -> None:
    assert set(HONOURED) | set(REFUSED) == set(MATRIX) and not set(HONOURED) & set(REFUSED)
    assert {(r, b) for r, allowed in BUCKETS_FOR.items() for b in allowed} == set(HONOURED)


@pytest.mark.parametrize(("range_", "bucket"), sorted(HONOURED))
def test_an_offered_combination_is_shown_as_asked(client: FlaskClient, range_: str,
                                                  bucket: str) -> None:
    query = f"range={range_}&bucket={bucket}"
    data = client.get(f"/api/overview?{query}").get_json()
    assert data["period"]["bucket"] == bucket
    assert len(data["buckets"]) == len(data["series"]["total"]) == HONOURED[(range_, bucket)]
    page = client.get(f"/?{query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and f"per {bucket}; dashed" in html
    assert f'<option value="{bucket}" selected' in html
    csv = client.get(f"/export/overview.csv?{query}").get_data(as_text=True)
    assert len(csv.strip().splitlines()) == 1 + HONOURED[(range_, bucket)]


@pytest.mark.parametrize(("range_", "bucket"), sorted(REFUSED))
def test_a_refused_combination_says_why_and_what_the_range_can_do(
    client: FlaskClient, range_: str, bucket: str
) -> None:
    query = f"range={range_}&bucket={bucket}"
    allowed = " or ".join(f"per {b}" for b in BUCKETS_FOR[range_])
    api = client.get(f"/api/overview?{query}")
    error = api.get_json()["error"]
    assert api.status_code == 400 and REFUSED[(range_, bucket)] in error
    assert f"{range_} can be shown {allowed}" in error
    page = client.get(f"/?{query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="bucket-refused"' in html  # as the queue's search
    assert REFUSED[(range_, bucket)] in html and "<canvas" not in html  # no other data shown
    for offered in BUCKETS_FOR[range_]:
        assert f"per {offered}</a>" in html
    assert client.get(f"/export/overview.json?{query}").status_code == 400
