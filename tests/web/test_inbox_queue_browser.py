"""Issue 18, the queue a team works, in a real browser: two people at once, the keyboard
(j j a h u), ticking rows for one change, the notice of new posts, a viewer's page, and the
queue at phone width. Headless Chromium driven by Playwright against the real app on waitress
over a real SQLite file; screenshots go to test-artifacts/inbox/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.inbox import Holder
from tests.web.conftest import running
from tests.web.people import PASSWORD, add_people, app_for, audit_rows
from tests.web.seed import Seeded
from tests.web.test_inbox_queue import add_post, holder

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "inbox"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
ROWS = "#queue tbody tr[data-post-id]"
TICK = "input[type=checkbox][name=post_id]"  # a row's tick (its forms name the post too)


def screenshot(tab: Any, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=full_page)
    return path


class Person:
    """One browser context logged in as someone, on the queue; console errors collected."""

    def __init__(self, browser: Any, url: str, name: str, viewport: dict[str, int] = DESKTOP
                 ) -> None:
        self.url = url
        self.context = browser.new_context(viewport=viewport)
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.tab.goto(f"{url}/queue")
        self.tab.fill("input[name=name]", name)
        self.tab.fill("input[name=password]", PASSWORD)
        with self.tab.expect_navigation():
            self.tab.click("#password-login button[type=submit]")
        assert self.tab.url == f"{url}/queue", self.tab.url

    def row(self, post_id: int) -> Any:
        return self.tab.locator(f"#queue tr[data-post-id='{post_id}']")

    def ids(self) -> list[int]:
        return [int(r.get_attribute("data-post-id")) for r in self.tab.locator(ROWS).all()]

    def current(self) -> int | None:
        """The row the keyboard is on."""
        found = self.tab.locator("#queue tr.current")
        return int(found.get_attribute("data-post-id")) if found.count() else None

    def key(self, key: str) -> None:
        """A shortcut that changes something: the page comes back after the change."""
        with self.tab.expect_navigation():
            self.tab.keyboard.press(key)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors


@pytest.fixture
def team(browser: Any, seeded: tuple[Path, Seeded]) -> Iterator[tuple[str, Path, Seeded]]:
    path, ids = seeded
    add_people(path, alice="agent", bob="agent", vera="viewer")
    with running(app_for(path)) as url:
        yield url, path, ids


def test_two_people_at_once_each_change_is_theirs(browser: Any,
                                                  team: tuple[str, Path, Seeded]) -> None:
    url, path, _ = team
    alice = Person(browser, url, "alice")
    bob = Person(browser, url, "bob")  # both on the same page of the queue at the same time
    first, second, third = alice.ids()[:3]
    assert bob.ids()[:3] == [first, second, third]
    with alice.tab.expect_navigation():
        alice.row(first).locator("button[data-action=assign-me]").click()
    assert alice.tab.inner_text("#queue-done").startswith(f"Post {first} given to alice.")
    with bob.tab.expect_navigation():
        bob.row(second).locator("button[data-status=handled]").click()
    assert f"Post {second} marked handled." in bob.tab.inner_text("#queue-done")
    bob.row(third).locator("select[name=assignee]").select_option("alice")
    with bob.tab.expect_navigation():
        bob.row(third).locator("button[data-action=give]").click()
    assert holder(path, first) == Holder("assigned", "alice")
    assert holder(path, second) == Holder("handled", None)
    assert holder(path, third) == Holder("assigned", "alice")
    entries = [(e.actor, e.action, e.target) for e in audit_rows(path, action="post.")]
    assert entries == [("alice", "post.assign", f"post:{first}"),
                       ("bob", "post.status", f"post:{second}"),
                       ("bob", "post.assign", f"post:{third}")]
    with alice.tab.expect_navigation():
        alice.tab.click("nav.queue-views a[data-view=mine]")
    assert sorted(alice.ids()) == sorted([first, third])
    assert alice.tab.inner_text("[data-count=mine]") == "2"
    assert alice.row(third).locator(".assignee").inner_text() == "you"
    bob.tab.goto(f"{url}/queue?status=open")
    assert bob.row(first).locator(".assignee").inner_text() == "alice"
    screenshot(alice.tab, "queue-mine-desktop", full_page=False)
    alice.close()
    bob.close()


def test_the_keyboard_works_the_queue_j_j_a_h_u(browser: Any,
                                                team: tuple[str, Path, Seeded]) -> None:
    url, path, _ = team
    alice = Person(browser, url, "alice")
    tab = alice.tab
    tab.goto(f"{url}/queue?status=open")
    first, second, third = alice.ids()[:3]
    tab.keyboard.press("j")
    assert alice.current() == first
    tab.keyboard.press("j")
    assert alice.current() == second
    focused = tab.evaluate("document.activeElement.dataset.postId")
    assert focused == str(second)
    outline = tab.evaluate("getComputedStyle(document.querySelector('#queue tr.current'))"
                           ".outlineStyle")
    assert outline == "solid"  # the focus can be seen
    alice.key("a")
    assert holder(path, second) == Holder("assigned", "alice")
    assert alice.current() == second  # back on the same row after the change
    assert alice.row(second).locator(".assignee").inner_text() == "you"
    alice.key("h")
    assert holder(path, second) == Holder("handled", "alice")
    assert second not in alice.ids() and alice.current() == third  # the next one is up
    alice.key("u")
    assert holder(path, second) == Holder("assigned", "alice")
    assert alice.current() == second
    assert "Undone: post" in tab.inner_text("#queue-done")
    actions = [(e.actor, e.action) for e in audit_rows(path, target=f"post:{second}")]
    assert actions == [("alice", "post.assign"), ("alice", "post.status"),
                       ("alice", "post.undo")]
    tab.keyboard.press("?")
    assert tab.locator("#queue-help").is_visible()
    assert "assign it to me" in tab.inner_text("#queue-help")
    screenshot(tab, "queue-keyboard-help", full_page=False)
    tab.keyboard.press("Escape")
    assert not tab.locator("#queue-help").is_visible()
    tab.locator("input[name=q]").focus()
    tab.keyboard.type("jh")  # typing is typing
    assert tab.input_value("input[name=q]") == "jh" and alice.current() == second
    assert holder(path, second) == Holder("assigned", "alice")
    tab.locator("input[name=q]").fill("")
    alice.row(second).focus()
    with tab.expect_navigation():
        tab.keyboard.press("o")
    assert tab.url == f"{url}/posts/{second}"
    alice.close()


def test_ticked_rows_are_marked_handled_together_and_undone_together(
    browser: Any, team: tuple[str, Path, Seeded]
) -> None:
    url, path, _ = team
    alice = Person(browser, url, "alice")
    tab = alice.tab
    tab.goto(f"{url}/queue?brand=globex&lang=de")
    apply_status = tab.locator("#bulk button[name=apply][value=status]")
    assert apply_status.is_disabled()  # nothing ticked yet
    tab.check("#select-all")
    ids = alice.ids()
    assert 1 < len(ids) <= 50 and apply_status.is_enabled()
    assert tab.inner_text("#selected-count") == f"{len(ids)} ticked:"
    alice.row(ids[0]).locator(TICK).uncheck()
    assert tab.evaluate("document.getElementById('select-all').indeterminate")
    alice.row(ids[1]).focus()
    tab.keyboard.press("x")  # the keyboard unticks one more
    chosen = ids[2:]
    assert tab.inner_text("#selected-count") == f"{len(chosen)} ticked:"
    tab.select_option("#bulk select[name=status]", "handled")
    screenshot(tab, "queue-bulk-ticked", full_page=False)
    with tab.expect_navigation():
        apply_status.click()
    assert f"{len(chosen)} posts marked handled." in tab.inner_text("#queue-done")
    assert [holder(path, i).status for i in chosen] == ["handled"] * len(chosen)
    assert [holder(path, i).status for i in ids[:2]] == ["new", "new"]
    entries = audit_rows(path, action="post.status")
    assert sorted(int(e.target.split(":")[1]) for e in entries if e.target) == sorted(chosen)
    assert {(e.actor, e.detail["bulk"]) for e in entries} == {("alice", len(chosen))}
    with tab.expect_navigation():
        tab.click("#undo-form button")
    assert [holder(path, i).status for i in chosen] == ["new"] * len(chosen)
    assert len(audit_rows(path, action="post.undo")) == len(chosen)
    alice.close()


def test_new_posts_are_announced_and_shown_when_nobody_is_busy(
    browser: Any, team: tuple[str, Path, Seeded]
) -> None:
    url, path, _ = team
    waiting = add_post(path, "initech-first", hours_ago=2)
    alice = Person(browser, url, "alice")
    tab = alice.tab
    tab.clock.install()  # the page's 20 s timer runs when the test says so
    tab.goto(f"{url}/queue?brand=initech")
    assert alice.ids() == [waiting]
    alice.row(waiting).locator(TICK).check()  # in the middle of something
    arrived = add_post(path, "initech-second", hours_ago=30)  # written yesterday, stored now
    tab.clock.run_for(21_000)
    notice = tab.locator("#queue-live")
    notice.wait_for(state="visible")
    assert notice.inner_text() == "1 new post — show them"
    assert alice.ids() == [waiting]  # not reloaded under a ticked row
    assert alice.row(waiting).locator(TICK).is_checked()
    screenshot(tab, "queue-new-posts-notice", full_page=False)
    with tab.expect_navigation():
        tab.click("#show-new")
    assert sorted(alice.ids()) == sorted([waiting, arrived])
    assert "new since you looked" in alice.row(arrived).inner_text()
    assert "new since you looked" not in alice.row(waiting).inner_text()
    third = add_post(path, "initech-third", hours_ago=1)
    with tab.expect_navigation():  # nothing ticked, no field in use: it shows them itself
        tab.clock.run_for(21_000)
    assert third in alice.ids()
    assert "new since you looked" in alice.row(third).inner_text()
    alice.close()


def test_a_viewer_sees_no_controls_and_the_keys_change_nothing(
    browser: Any, team: tuple[str, Path, Seeded]
) -> None:
    url, path, _ = team
    vera = Person(browser, url, "vera")
    tab = vera.tab
    assert tab.locator("form[method=post]").count() == 1  # logging out only
    assert tab.locator("#bulk, input[name=post_id], #queue td.actions, [data-view=mine]"
                       ).count() == 0
    first = vera.ids()[0]
    tab.keyboard.press("j")
    assert vera.current() == first
    for key in ("a", "h", "n", "x", "u"):
        tab.keyboard.press(key)
    tab.wait_for_timeout(300)
    assert tab.url == f"{url}/queue" and holder(path, first) == Holder("new", None)
    tab.keyboard.press("?")
    assert "assign it to me" not in tab.inner_text("#queue-help")
    assert audit_rows(path, action="post.") == []
    screenshot(tab, "queue-viewer", full_page=False)
    vera.close()


def test_the_queue_fits_a_phone_and_its_buttons_work_there(
    browser: Any, team: tuple[str, Path, Seeded]
) -> None:
    url, path, _ = team
    desktop = Person(browser, url, "alice")
    screenshot(desktop.tab, "queue-desktop", full_page=False)
    desktop.close()
    alice = Person(browser, url, "alice", PHONE)
    tab = alice.tab
    for page in ("/queue", "/queue?status=all", "/queue?status=open&order=rank"):
        tab.goto(f"{url}{page}")
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (page, width)
    tab.goto(f"{url}/queue")
    first = alice.ids()[0]
    card = alice.row(first)
    assert tab.evaluate("getComputedStyle(document.querySelector('#queue tbody tr'))"
                        ".display") == "block"  # rows are cards
    text = card.locator("td.text").bounding_box()
    assert text["width"] > 250  # the text has the card's width, not one letter's
    handled = card.locator("button[data-status=handled]")
    handled.scroll_into_view_if_needed()
    box = handled.bounding_box()
    assert handled.is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert box["height"] >= 28  # big enough for a thumb
    assert card.locator(".overdue-flag").inner_text().startswith("⚠ overdue by")
    screenshot(tab, "queue-phone", full_page=False)
    with tab.expect_navigation():
        handled.click()
    assert holder(path, first).status == "handled"
    assert tab.locator("#queue-done").is_visible()
    assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(tab, "queue-phone-after-change", full_page=False)
    alice.close()
