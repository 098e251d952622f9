"""The dashboard in a real browser: headless Chromium driven by Playwright, against the real app
served by waitress on 127.0.0.1, over a real SQLite file. Screenshots go to
test-artifacts/dashboard/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from listener.web import security
from storage.tx import connect
from tests.web.conftest import REBINDING_NAME, TOKEN, make_app, running, screenshot
from tests.web.seed import Seeded

CHART_TIMEOUT_MS = 10_000


def _chart_total(page: Any, canvas_id: str) -> float:
    """Sum of every value the drawn Chart.js chart holds (from the JSON API it fetched)."""
    return page.evaluate(
        """(id) => Chart.getChart(document.getElementById(id)).data.datasets
                 .flatMap((d) => d.data).reduce((a, v) => a + (v || 0), 0)""",
        canvas_id,
    )


def test_overview_renders_its_charts_with_data(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/?range=7d")
    page.wait_for_selector("#volume-chart[data-ready='1']", timeout=CHART_TIMEOUT_MS)
    page.wait_for_selector("#share-chart[data-ready='1']", timeout=CHART_TIMEOUT_MS)
    assert _chart_total(page, "volume-chart") > 100  # stacked sentiments + previous period
    assert _chart_total(page, "share-chart") > 0
    spikes = page.evaluate(
        "Chart.getChart(document.getElementById('volume-chart')).options.plugins.spikeShading.spikes"
    )
    assert [s["title"] for s in spikes] == ["acme on x-main: 40 posts in an hour (usual 2)"]
    assert page.inner_text("[data-kpi='total']").replace(",", "").isdigit()
    assert "outage" in page.inner_text("table.terms")
    screenshot(page, "overview")
    page.select_option("select[name=bucket]", "hour")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    page.wait_for_selector("#volume-chart[data-ready='1']", timeout=CHART_TIMEOUT_MS)
    labels = page.evaluate("Chart.getChart(document.getElementById('volume-chart')).data.labels")
    assert len(labels) == 168 and labels[-1] == "11-20 12h"
    screenshot(page, "overview-per-hour")


def test_a_filter_changes_the_queue(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/queue")
    everyone = page.locator("#queue tbody tr[data-post-id]")
    assert everyone.count() == 50  # a full first page
    page.select_option("select[name=brand]", "globex")
    page.select_option("select[name=lang]", "de")
    with page.expect_navigation():
        page.click("#queue-filters button[type=submit]")
    assert "brand=globex" in page.url and "lang=de" in page.url
    rows = page.locator("#queue tbody tr[data-post-id]")
    assert 0 < rows.count() < 50
    for row in rows.all():
        assert "globex · reddit" in row.inner_text()
        assert row.locator("td.lang .badge.lang").get_attribute("data-lang") == "de"
    page.fill("input[name=q]", "refund")
    with page.expect_navigation():
        page.click("#queue-filters button[type=submit]")
    found = page.locator("#queue tbody tr[data-post-id]").all_inner_texts()
    assert found and all("refund" in text for text in found)
    screenshot(page, "queue-filtered")


def test_a_feedback_click_persists_after_reload(page: Any, base_url: str,
                                                seeded: tuple[Path, Seeded]) -> None:
    post_id = seeded[1].top_post
    page.goto(f"{base_url}/posts/{post_id}")
    row = page.locator(".feedback-row[data-field=sentiment]")
    assert "model: negative" in row.inner_text()
    with page.expect_navigation():
        row.locator("button[data-label=neutral]").click()
    page.reload()
    row = page.locator(".feedback-row[data-field=sentiment]")
    assert row.locator("button[data-label=neutral]").get_attribute("aria-pressed") == "true"
    assert row.locator("[data-reviewed]").inner_text() == "reviewed: neutral (model wrong)"
    with page.expect_navigation():
        page.locator(".feedback-row[data-field=urgency] button[data-label=complaint]").click()
    screenshot(page, "post-with-feedback")
    page.goto(f"{base_url}/feedback")
    page.wait_for_selector("#accuracy-chart[data-ready='1']", timeout=CHART_TIMEOUT_MS)
    assert page.inner_text("[data-kpi=sentiment] + .delta") == "26 right of 41 reviewed"
    assert "sentiment\tneutral\tnegative\tlocal" in page.inner_text("#recent-feedback")
    screenshot(page, "feedback")


def test_the_retry_button_requeues_a_failed_alert(page: Any, base_url: str,
                                                  seeded: tuple[Path, Seeded]) -> None:
    path, ids = seeded
    page.goto(f"{base_url}/alerts")
    row = page.locator(f"#alerts tr[data-alert-id='{ids.failed_alert}']")
    assert "failed" in row.inner_text() and "channel_not_found" in row.inner_text()
    screenshot(page, "alerts")
    with page.expect_navigation():
        row.locator("button.retry").click()
    assert "queued again" in page.inner_text(".notice.ok")
    row = page.locator(f"#alerts tr[data-alert-id='{ids.failed_alert}']")
    assert "pending" in row.inner_text() and row.locator("button.retry").count() == 0
    db = connect(path)
    row = db.execute("SELECT status, next_attempt_at FROM alerts WHERE id = ?",
                     [ids.failed_alert]).fetchone()
    db.close()
    assert row == ("pending", "2026-11-20T12:00:00Z")  # due now: the next dispatch sends it


def test_hostile_post_text_stays_inert_in_the_browser(page: Any, base_url: str,
                                                      seeded: tuple[Path, Seeded]) -> None:
    page.goto(f"{base_url}/queue?order=rank")  # the hostile posts rank first
    cells = page.locator("#queue td.text").all_inner_texts()
    shown = " ".join(cells)
    assert "<script>window.pwned = 1</script>" in shown and 'onerror="window.pwned' in shown
    assert page.locator("#queue td.text script, #queue td.text img").count() == 0
    screenshot(page, "queue-hostile")
    for post_id in seeded[1].hostile.values():
        page.goto(f"{base_url}/posts/{post_id}")
        assert page.locator("#original-link").count() == 0  # javascript: never becomes a link
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map((a) => a.getAttribute('href'))")
    assert all(h.startswith(("/", "http://", "https://")) for h in hrefs), hrefs
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_with_a_token_the_browser_logs_in_first(browser: Any, seeded: tuple[Path, Seeded]) -> None:
    with running(make_app(seeded[0], token=TOKEN)) as url:
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(f"{url}/queue")
        assert "/login" in tab.url
        tab.fill("input[name=token]", "wrong-token-0123456789")
        with tab.expect_navigation():
            tab.click("button[type=submit]")
        assert "not right" in tab.inner_text("[role=alert]")
        tab.fill("input[name=token]", TOKEN)
        with tab.expect_navigation():
            tab.click("button[type=submit]")
        assert tab.url == f"{url}/queue"
        tab.goto(url)
        tab.wait_for_selector("#volume-chart[data-ready='1']", timeout=CHART_TIMEOUT_MS)
        context.close()


# What a DNS rebinding page does once its name resolves to 127.0.0.1 (issue 14 #3): read the
# queue, take a CSRF token from a post page, mark the post handled, all "same-origin".
REBINDING_ATTACK = """async (postId) => {
    const queue = await fetch('/api/queue?status=all');
    const rows = queue.ok ? (await queue.json()).rows.length : 0;
    const post = await fetch('/posts/' + postId);
    const found = (await post.text()).match(/name="csrf" value="([^"]+)"/);
    const body = new URLSearchParams({status: 'handled', csrf: found ? found[1] : ''});
    const change = await fetch('/posts/' + postId + '/status', {method: 'POST', body});
    return {queue: queue.status, rows: rows > 0, post: post.status, csrf: !!found,
            change: change.status};
}"""


def _post_status(path: Path, post_id: int) -> str | None:
    db = connect(path)
    row = db.execute("SELECT status FROM post_status WHERE post_id = ?", [post_id]).fetchone()
    db.close()
    return row[0] if row else None


def test_a_rebinding_page_can_neither_read_nor_change_the_dashboard(
    rebinding_browser: Any, seeded: tuple[Path, Seeded]
) -> None:
    path, ids = seeded
    with running(make_app(path)) as url:
        port = url.rsplit(":", 1)[1]
        context = rebinding_browser.new_context()
        tab = context.new_page()
        response = tab.goto(f"http://{REBINDING_NAME}:{port}/queue?status=all")
        assert response is not None and response.status == 421
        assert "does not answer to that host name" in tab.inner_text("body")
        screenshot(tab, "rebinding-refused")
        refused = tab.evaluate(REBINDING_ATTACK, ids.top_post)
        assert refused == {"queue": 421, "rows": False, "post": 421, "csrf": False,
                           "change": 421}
        assert _post_status(path, ids.top_post) is None
        tab.goto(f"{url}/queue?status=all")  # the same script on the dashboard's own origin
        assert tab.evaluate(REBINDING_ATTACK, ids.top_post) == {
            "queue": 200, "rows": True, "post": 200, "csrf": True, "change": 200}
        assert _post_status(path, ids.top_post) == "handled"
        context.close()


def test_a_copied_session_cookie_stops_working_at_logout(browser: Any,
                                                          seeded: tuple[Path, Seeded]) -> None:
    """Issue 14 #9: logging out ends the session on the server, not only in this browser."""
    with running(make_app(seeded[0], token=TOKEN)) as url:
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(f"{url}/login?next=/queue")
        tab.fill("input[name=token]", TOKEN)
        with tab.expect_navigation():
            tab.click("button[type=submit]")
        assert tab.url == f"{url}/queue"
        copied = [c for c in context.cookies() if c["name"] == security.SESSION_COOKIE]
        assert len(copied) == 1 and copied[0]["httpOnly"] and not copied[0]["secure"]
        thief = browser.new_context()
        thief.add_cookies(copied)
        stolen = thief.new_page()
        stolen.goto(f"{url}/queue")
        assert stolen.url == f"{url}/queue"  # the copy works while the session lasts
        with tab.expect_navigation():
            tab.click("form.logout button[type=submit]")
        assert "/login" in tab.url
        assert not [c for c in context.cookies() if c["name"] == security.SESSION_COOKIE]
        stolen.goto(f"{url}/queue")
        assert "/login" in stolen.url  # ended on the server: the copy is refused
        assert stolen.evaluate("fetch('/api/queue').then((r) => r.status)") == 401
        thief.close()
        context.close()
