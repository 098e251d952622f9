"""Issue 15 in a real browser (headless Chromium, Playwright, the app on waitress): each queued
post's language badge, the "not understood" marker and filter, search across diacritics and
scripts, the post page, and the overview's "not understood" series. Screenshots go to
test-artifacts/dashboard/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import screenshot
from tests.web.multilingual import DEFAULT_MODEL, MULTILINGUAL_MODEL, Multilingual, add_multilingual
from tests.web.seed import Seeded

CHART_TIMEOUT_MS = 10_000
MARKER = "language not understood — read it yourself"


@pytest.fixture
def ml(seeded: tuple[Path, Seeded]) -> Multilingual:
    return add_multilingual(seeded[0])


def _apply(page: Any) -> None:
    with page.expect_navigation():
        page.click("#queue-filters button[type=submit]")


def _row(page: Any, post_id: int) -> Any:
    return page.locator(f"#queue tr[data-post-id='{post_id}']")


def test_the_queue_shows_each_language_and_filters_what_was_not_understood(
    page: Any, base_url: str, ml: Multilingual
) -> None:
    page.goto(f"{base_url}/queue")
    menu = page.locator("select[name=lang] option").all_inner_texts()
    assert {"ar", "es", "hi", "sw", "? (undetermined)"} <= set(menu)
    page.check("input[name=unsupported]")
    _apply(page)
    assert "unsupported=1" in page.url
    rows = page.locator("#queue tbody tr[data-post-id]")
    assert sorted(int(r.get_attribute("data-post-id")) for r in rows.all()) == sorted(
        [ml.ids["ml-sw"], ml.ids["ml-ar"]])
    for post_id, code in ((ml.ids["ml-sw"], "sw"), (ml.ids["ml-ar"], "ar")):
        row = _row(page, post_id)
        marker = row.locator("[data-not-understood]")
        assert marker.is_visible() and marker.inner_text().endswith(MARKER)
        assert marker.get_attribute("role") == "note"
        badge = row.locator("td.lang .badge.lang")
        assert badge.is_visible() and badge.get_attribute("title") == f"language: {code}"
        assert "the model's guess" in row.locator("td.model").inner_text()
        assert row.locator("td.model .badge.s-negative, td.model .badge.s-positive").count() == 0
    assert page.locator("input[name=unsupported]").is_checked()  # the form keeps the filter
    screenshot(page, "queue-not-understood")
    page.uncheck("input[name=unsupported]")
    page.select_option("select[name=lang]", "und")
    _apply(page)
    row = _row(page, ml.ids["ml-und"])
    badge = row.locator("td.lang .badge.lang")
    assert badge.get_attribute("title") == "language undetermined"
    assert badge.locator("[aria-hidden=true]").inner_text() == "?"
    assert badge.locator(".sr-only").inner_text() == "language undetermined"
    assert row.locator("[data-not-understood]").count() == 0  # understood by the default model


@pytest.mark.parametrize(("typed", "expected"), [
    ("manana", ("ml-es", "ml-es2")), ("mañana", ("ml-es", "ml-es2")),
    ("zuruck", ("ml-de",)), ("cafe", ("ml-fr",)), ("طلبي", ("ml-ar",)), ("पैसा", ("ml-hi",)),
])
def test_a_search_finds_words_whatever_their_accents_or_script(
    page: Any, base_url: str, ml: Multilingual, typed: str, expected: tuple[str, ...]
) -> None:
    page.goto(f"{base_url}/queue")
    page.fill("input[name=q]", typed)
    _apply(page)
    found = {int(r.get_attribute("data-post-id"))
             for r in page.locator("#queue tbody tr[data-post-id]").all()}
    assert found == {ml.ids[pid] for pid in expected}, typed
    assert page.input_value("input[name=q]") == typed


def test_the_post_page_shows_its_language_understanding_and_model(
    page: Any, base_url: str, ml: Multilingual
) -> None:
    page.goto(f"{base_url}/posts/{ml.ids['ml-ar']}")
    assert page.locator("#post-lang .badge.lang").inner_text().endswith("ar")
    assert page.locator("#post-text").get_attribute("lang") == "ar"
    assert page.locator("#score-language [data-not-understood]").inner_text().endswith(MARKER)
    assert DEFAULT_MODEL in page.inner_text("#scored-by")
    screenshot(page, "post-not-understood")
    page.goto(f"{base_url}/posts/{ml.ids['ml-es']}")
    assert page.locator("#score-language [data-not-understood]").count() == 0
    assert "language understood" in page.inner_text("#score-language")
    assert MULTILINGUAL_MODEL in page.inner_text("#scored-by")


def test_the_overview_draws_posts_not_understood_as_their_own_series(
    page: Any, base_url: str, ml: Multilingual
) -> None:
    page.goto(f"{base_url}/?range=24h&bucket=hour")
    page.wait_for_selector("#volume-chart[data-ready='1']", timeout=CHART_TIMEOUT_MS)
    datasets = page.evaluate(
        """Chart.getChart(document.getElementById('volume-chart')).data.datasets
             .map((d) => ({label: d.label, sum: d.data.reduce((a, v) => a + (v || 0), 0),
                           color: d.backgroundColor}))""")
    by_label = {d["label"]: d for d in datasets}
    assert by_label["not understood"]["sum"] == 2
    colors = [d["color"] for d in datasets if d["label"] != "total, period before"]
    assert len(set(colors)) == len(colors)  # a colour of its own
    legend = page.evaluate(
        """Chart.getChart(document.getElementById('volume-chart')).legend.legendItems
             .map((item) => item.text)""")
    assert "not understood" in legend
    bars = sum(d["sum"] for d in datasets if d["label"] != "total, period before")
    assert bars == int(page.inner_text("[data-kpi='total']").replace(",", ""))  # all add up
    notice = page.locator("#unsupported-notice")
    assert "2 posts not understood" in notice.inner_text()
    screenshot(page, "overview-not-understood")
    with page.expect_navigation():
        notice.locator("a").click()
    assert page.locator("#queue tbody tr[data-post-id]").count() == 2
