"""Issue 15 on the dashboard, through Flask's test client: the language and whether the model
understood it in the queue, on the post and alerts pages, in every export and in the trends."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.web.multilingual import DEFAULT_MODEL, MULTILINGUAL_MODEL, Multilingual, add_multilingual
from tests.web.seed import Seeded

MARKER = "language not understood — read it yourself"


@pytest.fixture
def ml(seeded: tuple[Path, Seeded]) -> Multilingual:
    return add_multilingual(seeded[0])


def test_the_not_understood_filter(client: FlaskClient, ml: Multilingual) -> None:
    data = client.get("/api/queue?unsupported=1&status=all").get_json()
    assert {r["post_id"] for r in data["rows"]} == {ml.ids["ml-sw"], ml.ids["ml-ar"]}
    assert data["total"] == 2 and {r["language_supported"] for r in data["rows"]} == {0}
    assert {r["scored_by"] for r in data["rows"]} == {DEFAULT_MODEL}
    everything = client.get("/api/queue?unsupported=0&status=all").get_json()
    assert everything["total"] > 2
    for bad in ("2", "maybe", "ja"):
        response = client.get(f"/api/queue?unsupported={bad}")
        assert response.status_code == 400 and "'unsupported' must be 1 or 0" in response.get_json(
            )["error"]


def test_the_queue_page_shows_badges_markers_and_the_menu(client: FlaskClient, ml: Multilingual
                                                          ) -> None:
    html = client.get("/queue?unsupported=1").get_data(as_text=True)
    assert html.count(MARKER) == 2 and 'data-lang="sw"' in html and 'data-lang="ar"' in html
    assert 'lang="ar" dir="auto"' in html  # the text is read out, and laid out, as Arabic
    assert 'name="unsupported" value="1" checked' in html
    assert "unsupported=1" in html.split('class="exports"')[1]  # the export keeps the filter
    menu = client.get("/queue").get_data(as_text=True).split('name="lang"')[1].split("</select>")[0]
    for code in ("ar", "de", "en", "es", "fr", "hi", "sw"):
        assert f'<option value="{code}">{code}</option>' in menu, code
    assert '<option value="und">? (undetermined)</option>' in menu
    und = client.get("/queue?lang=und").get_data(as_text=True)
    assert 'title="language undetermined"' in und and MARKER not in und


def test_the_post_page_says_what_scored_it_and_whether_it_understood(
    client: FlaskClient, ml: Multilingual
) -> None:
    sw = client.get(f"/posts/{ml.ids['ml-sw']}").get_data(as_text=True)
    assert MARKER in sw and DEFAULT_MODEL in sw and 'data-lang="sw"' in sw
    es = client.get(f"/posts/{ml.ids['ml-es']}").get_data(as_text=True)
    assert MARKER not in es and "language understood" in es and MULTILINGUAL_MODEL in es
    api = client.get(f"/api/posts/{ml.ids['ml-sw']}").get_json()
    assert (api["lang"], api["scores"][0]["language_supported"], api["scores"][0]["scored_by"]
            ) == ("sw", 0, DEFAULT_MODEL)


def test_queue_and_alert_exports_carry_language_understanding_and_model(
    client: FlaskClient, ml: Multilingual
) -> None:
    rows = list(csv.DictReader(io.StringIO(
        client.get("/export/queue.csv?unsupported=1").get_data(as_text=True))))
    assert {(r["lang"], r["language_supported"], r["scored_by"]) for r in rows} == {
        ("sw", "0", DEFAULT_MODEL), ("ar", "0", DEFAULT_MODEL)}
    es = json.loads(client.get("/export/queue.json?lang=es").get_data(as_text=True))
    assert {(r["lang"], r["language_supported"], r["scored_by"]) for r in es} == {
        ("es", 1, MULTILINGUAL_MODEL)}
    alerts = {r["id"]: r for r in csv.DictReader(io.StringIO(
        client.get("/export/alerts.csv").get_data(as_text=True)))}
    assert (alerts[ml.alert]["lang"], alerts[ml.alert]["language_supported"],
            alerts[ml.alert]["scored_by"]) == ("sw", "0", DEFAULT_MODEL)
    page = client.get("/alerts?rule=unknown-language").get_data(as_text=True)
    assert 'data-lang="sw"' in page and MARKER in page


def test_trends_count_posts_not_understood_apart(client: FlaskClient, ml: Multilingual) -> None:
    data = client.get("/api/overview?range=24h&bucket=hour").get_json()
    totals, series = data["totals"]["current"], data["series"]
    assert totals["unsupported"] == sum(series["unsupported"]) == 2
    parts = ("negative", "neutral", "positive", "unsupported", "unscored")
    assert totals["total"] == sum(totals[name] for name in parts)
    for i, bucket_total in enumerate(series["total"]):
        assert bucket_total == sum(series[name][i] for name in parts)
    rows = list(csv.DictReader(io.StringIO(
        client.get("/export/overview.csv?range=24h&bucket=hour").get_data(as_text=True))))
    assert sum(int(r["unsupported"]) for r in rows) == 2
    assert all(int(r["total"]) == sum(int(r[name]) for name in parts) for r in rows)
    page = client.get("/?range=24h").get_data(as_text=True)
    assert "2 posts not understood" in page and "unsupported=1" in page
