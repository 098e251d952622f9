"""Issue 18 on the overview in Chromium: the Per menu, 30 days per hour, the shaded spike of an
imported history (no console error: the page's CSP allows no inline script)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.web.conftest import make_app, open_page, running, screenshot
from tests.web.test_trends_spikes import _history

CHART_TIMEOUT_MS = 10_000


def _options(page: Any) -> dict[str, bool]:
    """The Per menu's options: value → enabled."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelector(
        "select[name=bucket]").options].map((o) => [o.value, !o.disabled]))""")


def test_the_per_menu_offers_what_the_range_can_show(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/?range=24h")
    assert _options(page) == {"hour": True, "day": False, "week": False}
    page.select_option("select[name=range]", "90d")
    assert _options(page) == {"hour": False, "day": True, "week": True}
    assert page.input_value("select[name=bucket]") == "day"  # hour is not offered: visibly
    page.select_option("select[name=range]", "30d")
    page.select_option("select[name=bucket]", "hour")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    page.wait_for_selector("#volume-chart[data-ready='1']", timeout=CHART_TIMEOUT_MS)
    labels = page.evaluate("Chart.getChart(document.getElementById('volume-chart')).data.labels")
    assert len(labels) == 720  # 30 days per hour, as asked
    page.goto(f"{base_url}/?range=90d&bucket=hour")
    assert "per day or per week" in page.inner_text("#bucket-refused")


def test_an_imported_spike_is_shaded(browser: Any, tmp_path: Path) -> None:
    _history(tmp_path / "imported.db")
    with running(make_app(tmp_path / "imported.db")) as url, open_page(browser) as page:
        page.goto(f"{url}/?range=30d")
        page.wait_for_selector("#volume-chart[data-ready='1']", timeout=CHART_TIMEOUT_MS)
        shaded = page.evaluate("Chart.getChart(document.getElementById('volume-chart'))"
                               ".options.plugins.spikeShading.spikes")
        assert [(s["found_in_history"], s["when"]) for s in shaded] == [(True, "2026-11-10")]
        assert page.inner_text("[data-kpi='spikes']") == "1"
        assert "charged twice" in page.inner_text("ul.spikes")
        screenshot(page, "overview-imported-spike")
