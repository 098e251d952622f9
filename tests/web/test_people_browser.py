"""Issue 18 in a real browser: people log in by name, each change is theirs in the audit log,
viewers get no buttons, and an admin adds someone who can then log in. Headless Chromium
driven by Playwright against the real app on waitress over a real SQLite file; screenshots go
to test-artifacts/dashboard/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import running, screenshot
from tests.web.people import PASSWORD, add_people, app_for, audit_rows, post_status
from tests.web.seed import Seeded


class Person:
    """One browser context logged in as someone; console errors are collected."""

    def __init__(self, browser: Any, url: str, name: str, password: str = PASSWORD) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.tab.goto(f"{url}/queue")
        assert "/login" in self.tab.url
        self.tab.fill("input[name=name]", name)
        self.tab.fill("input[name=password]", password)
        with self.tab.expect_navigation():
            self.tab.click("#password-login button[type=submit]")
        assert self.tab.url == f"{url}/queue", self.tab.url

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def team(browser: Any, seeded: tuple[Path, Seeded]) -> Iterator[tuple[str, Path, Seeded]]:
    path, ids = seeded
    add_people(path, root="admin", alice="agent", bob="agent", vera="viewer")
    with running(app_for(path)) as url:
        yield url, path, ids


def _mark(person: Person, url: str, post_id: int, status: str) -> None:
    person.tab.goto(f"{url}/posts/{post_id}")
    with person.tab.expect_navigation():
        person.tab.click(f"button[data-status={status}]")
    assert person.tab.url == f"{url}/posts/{post_id}"


def test_an_agent_marks_a_post_handled_and_the_admin_sees_it(
    browser: Any, team: tuple[str, Path, Seeded]
) -> None:
    url, path, ids = team
    alice = Person(browser, url, "alice")
    assert "signed in as alice (agent)" in alice.tab.inner_text("#signed-in")
    assert alice.tab.locator("nav a[href='/admin/audit']").count() == 0
    row = alice.tab.locator(f"#queue tr[data-post-id='{ids.top_post}']")
    with alice.tab.expect_navigation():
        row.locator("button[data-status=handled]").click()
    assert post_status(path, ids.top_post) == ("handled", "alice")
    root = Person(browser, url, "root")
    with root.tab.expect_navigation():
        root.tab.click("nav a[href='/admin/audit']")
    entry = root.tab.locator("#audit tr[data-action='post.status']")
    assert entry.count() == 1
    text = entry.inner_text()
    assert "alice" in text and f"post:{ids.top_post}" in text and "from: new; to: handled" in text
    assert "127.0.0.1" in text
    screenshot(root.tab, "audit-log")
    with root.tab.expect_navigation():
        entry.locator("td.actor a").click()  # only alice's entries
    assert {r.get_attribute("data-action") for r in
            root.tab.locator("#audit tbody tr").all()} == {"login", "post.status"}
    assert alice.errors == [] and root.errors == []
    alice.close()
    root.close()


def test_two_people_at_once_each_change_is_theirs(browser: Any,
                                                  team: tuple[str, Path, Seeded]) -> None:
    url, path, ids = team
    first, second = ids.hostile["script"], ids.hostile["img"]
    alice = Person(browser, url, "alice")
    bob = Person(browser, url, "bob")  # both logged in at the same time
    _mark(alice, url, first, "handled")
    _mark(bob, url, second, "not_relevant")
    _mark(bob, url, first, "new")
    _mark(alice, url, second, "handled")
    assert post_status(path, first) == ("new", "bob")
    assert post_status(path, second) == ("handled", "alice")
    entries = [(e.actor, e.target, e.detail["to"]) for e in audit_rows(path, action="post.")]
    assert entries == [("alice", f"post:{first}", "handled"),
                       ("bob", f"post:{second}", "not_relevant"),
                       ("bob", f"post:{first}", "new"),
                       ("alice", f"post:{second}", "handled")]
    alice.tab.reload()
    assert "(alice)" in alice.tab.inner_text("dl.facts")  # status … since … (alice)
    assert "signed in as bob (agent)" in bob.tab.inner_text("#signed-in")
    assert alice.errors == [] and bob.errors == []
    alice.close()
    bob.close()


FORGED_POST = """async ([postId]) => {
    const csrf = document.querySelector('form.logout input[name=csrf]').value;
    const body = new URLSearchParams({status: 'handled', csrf});
    const response = await fetch('/posts/' + postId + '/status', {method: 'POST', body});
    return {status: response.status, text: await response.text()};
}"""


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(
    browser: Any, team: tuple[str, Path, Seeded]
) -> None:
    url, path, ids = team
    vera = Person(browser, url, "vera")
    assert "signed in as vera (viewer)" in vera.tab.inner_text("#signed-in")
    for page in ("/queue", f"/posts/{ids.top_post}", "/alerts"):
        vera.tab.goto(f"{url}{page}")
        assert vera.tab.locator("form[method=post]").count() == 1, page  # logging out only
        assert vera.tab.locator("button[data-status], button[data-label], button.retry"
                                ).count() == 0, page
    screenshot(vera.tab, "viewer-alerts")
    refused = vera.tab.evaluate(FORGED_POST, [ids.top_post])
    assert refused["status"] == 403 and "Viewers cannot change anything" in refused["text"]
    assert post_status(path, ids.top_post) is None
    assert [e for e in audit_rows(path) if not e.action.startswith("login")] == []
    assert all("403" in e for e in vera.errors), vera.errors  # the refused fetch, nothing else
    vera.close()


def test_an_admin_adds_someone_who_can_then_log_in(browser: Any,
                                                   team: tuple[str, Path, Seeded]) -> None:
    url, path, _ = team
    root = Person(browser, url, "root")
    with root.tab.expect_navigation():
        root.tab.click("nav a[href='/admin/users']")
    form = root.tab.locator("#add-user")
    form.locator("input[name=name]").fill("Dana")
    form.locator("select[name=role]").select_option("agent")
    form.locator("input[name=password]").fill("dana's own passphrase")
    with root.tab.expect_navigation():
        form.locator("button[type=submit]").click()
    assert "dana: added" in root.tab.inner_text("#people-done")
    assert "agent" in root.tab.inner_text("#people tr[data-user='dana']")
    screenshot(root.tab, "people")
    dana = Person(browser, url, "dana", "dana's own passphrase")
    assert "signed in as dana (agent)" in dana.tab.inner_text("#signed-in")
    [added] = audit_rows(path, action="user.add")
    assert (added.actor, added.target) == ("root", "user:dana")
    assert [e.actor for e in audit_rows(path, action="login")] == ["root", "dana"]
    assert root.errors == [] and dana.errors == []
    root.close()
    dana.close()
