"""Issue 18 in a real browser: an agent's reply waits for approval, an admin approves it in
another browser, the post shows it pending, the real dispatch stage (run here, in-process)
sends it to the fake Mastodon instance on 127.0.0.1 once, and the post shows it sent with its
link; status changes with undo, assignment and notes; "copy reply and open the post" with the
clipboard read back; the pages at phone width. Headless Chromium driven by Playwright against
the real app on waitress over a real SQLite file; screenshots go to test-artifacts/inbox/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.dispatch import RetryPolicy
from alerts.replies.mastodon import MastodonAccountConfig, MastodonWriter
from alerts.replies.send import Sending, send_replies
from listener.core.models import Page, Post
from listener.web.context import InboxRules, ReplyAccount
from storage import db as store
from storage import replies
from storage.tx import connect
from tests.fakes.mastodon_api import FakeMastodon
from tests.web.conftest import running
from tests.web.people import PASSWORD, add_people, app_for, audit_rows
from tests.web.seed import NOW, Seeded

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "inbox"
TOKEN = "browser-mastodon-token"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
RULES = InboxRules(reply_approval=frozenset({"agent"}),
                   reply_accounts=(ReplyAccount("acme-mastodon", "mastodon",
                                                frozenset({"acme"})),))
REPLY = "So sorry, Ann! A new parcel left today."


def shot(tab: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


class Person:
    """A browser context logged in as someone; console errors and failed scripts collected."""

    def __init__(self, browser: Any, url: str, name: str, *, viewport: dict[str, int] = DESKTOP,
                 **context: Any) -> None:
        self.url = url
        self.context = browser.new_context(viewport=viewport, **context)
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.tab.goto(f"{url}/login")
        self.tab.fill("input[name=name]", name)
        self.tab.fill("input[name=password]", PASSWORD)
        with self.tab.expect_navigation():
            self.tab.click("#password-login button[type=submit]")

    def open(self, path: str) -> Any:
        self.tab.goto(f"{self.url}{path}")
        return self.tab

    def submit(self, selector: str) -> None:
        with self.tab.expect_navigation():
            self.tab.click(selector)

    def fits(self) -> None:
        """Nothing scrolls sideways at this width."""
        width = self.tab.evaluate("document.documentElement.scrollWidth")
        assert width <= self.tab.viewport_size["width"], width

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors


class Inbox:
    """The seeded dashboard with people, a Mastodon post the acme-mastodon account answers,
    and the fake instance it lives on."""

    def __init__(self, url: str, path: Path, ids: Seeded, fake: FakeMastodon, post: int,
                 reddit: int) -> None:
        self.url, self.path, self.ids, self.fake = url, path, ids, fake
        self.post, self.reddit = post, reddit

    def dispatch(self) -> replies.Reply:
        """The daemon's dispatch stage for replies, as it runs: every due reply, sent once."""
        config = MastodonAccountConfig(type="mastodon", name="acme-mastodon",
                                       base_url=self.fake.base_url, access_token=TOKEN)
        writer = MastodonWriter(config, timeout=5.0)
        db = connect(self.path)
        try:
            result = send_replies(db, {"acme-mastodon": writer},
                                  RetryPolicy(max_attempts=3, backoff_initial=10, backoff_max=60),
                                  Sending("browser-test"), clock=lambda: NOW)
            assert (result.sent, result.errors) == (1, [])
            [reply] = replies.for_post(db, self.post)
            return reply
        finally:
            db.close()
            writer.close()


@pytest.fixture
def inbox(browser: Any, seeded: tuple[Path, Seeded]) -> Iterator[Inbox]:
    path, ids = seeded
    add_people(path, root="admin", alice="agent")
    with FakeMastodon(access_token=TOKEN) as fake:
        status = fake.add_status("<p>acme lost my parcel</p>", acct="ann",
                                 created_at=NOW - timedelta(hours=2))
        db = connect(path)
        store.store_page(db, "m", Page(posts=[Post(
            platform="mastodon", platform_id=status["uri"], text="acme lost my parcel",
            created_at=NOW - timedelta(hours=2), source="m", brand="acme", author="ann",
            url=status["url"], raw={"id": status["id"], "uri": status["uri"]})]), NOW)
        post = int(db.execute("SELECT max(id) FROM posts").fetchone()[0])
        reddit = int(db.execute("SELECT id FROM posts WHERE platform = 'reddit'"
                                " ORDER BY id LIMIT 1").fetchone()[0])
        db.close()
        with running(app_for(path, inbox=RULES)) as url:
            yield Inbox(url, path, ids, fake, post, reddit)


def _reply_status(tab: Any) -> list[str]:
    return [li.get_attribute("data-reply-status")
            for li in tab.locator("ol.replies li").all()]


def test_a_reply_waits_for_approval_is_approved_elsewhere_and_sent_once(
    browser: Any, inbox: Inbox
) -> None:
    alice = Person(browser, inbox.url, "alice")
    tab = alice.open(f"/posts/{inbox.post}")
    assert tab.inner_text("#reply-submit") == "Submit for approval"
    assert tab.inner_text("#reply-count") == "0 / 500"
    tab.fill("#reply-text", "x" * 501)
    assert "over" in (tab.get_attribute("#reply-count", "class") or "")
    assert tab.get_attribute("#reply-text", "aria-invalid") == "true"
    tab.fill("#reply-text", REPLY)
    assert tab.inner_text("#reply-count") == f"{len(REPLY)} / 500"
    assert tab.get_attribute("#reply-text", "aria-invalid") is None
    alice.submit("#reply-submit")
    assert tab.url.endswith(f"/posts/{inbox.post}#replies")
    assert _reply_status(tab) == ["awaiting_approval"]
    assert "awaiting approval" in tab.inner_text("ol.replies")

    root = Person(browser, inbox.url, "root")  # another browser context, another person
    approvals = root.open("/admin/replies")
    card = approvals.locator("section.approval")
    assert card.count() == 1
    assert REPLY in card.inner_text() and "acme lost my parcel" in card.inner_text()
    assert "Reply by alice" in card.inner_text()
    shot(approvals, "approvals-desktop")
    with approvals.expect_navigation():
        card.locator("button.approve").click()
    assert "Approved" in approvals.inner_text("#approvals-done")
    assert approvals.locator("#approvals-empty").count() == 1

    tab.reload()
    assert _reply_status(tab) == ["pending"]
    assert "approved by root" in tab.inner_text("ol.replies")
    assert inbox.fake.posted() == []  # the web process sends nothing itself

    sent = inbox.dispatch()
    tab.reload()
    assert _reply_status(tab) == ["sent"]
    link = tab.locator("ol.replies a.sent-link")
    [posted] = inbox.fake.posted()
    assert link.get_attribute("href") == posted["url"] == sent.remote_url
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    assert posted["content"].endswith(f" {REPLY}")  # after the mention of the customer
    assert len([r for r in inbox.fake.requests_to("/api/v1/statuses") if r.method == "POST"]) == 1
    assert tab.inner_text("#post-status") == "replied"
    assert tab.inner_text("#post-first-response").startswith("after 2 h")
    shot(tab, "post-desktop")
    assert [(e.actor, e.action) for e in audit_rows(inbox.path) if e.action.startswith("reply.")
            ] == [("alice", "reply.write"), ("root", "reply.approve"), ("alice", "reply.sent")]
    alice.close()
    root.close()


def test_status_undo_assignment_and_notes(browser: Any, inbox: Inbox) -> None:
    alice = Person(browser, inbox.url, "alice")
    tab = alice.open(f"/posts/{inbox.post}")
    assert tab.locator("#post-age[data-overdue]").count() == 0  # 2 h of a 4 h target
    alice.submit("button[data-status=handled]")
    assert tab.inner_text("#post-status") == "handled"
    assert tab.get_attribute("button[data-status=handled]", "aria-pressed") == "true"
    assert "Undo: back to new" in tab.inner_text("#undo-button")
    alice.submit("#undo-button")
    assert tab.inner_text("#post-status") == "new"
    assert tab.inner_text("#post-first-response") == "not yet"
    alice.submit("#assign-me")
    assert tab.inner_text("#post-assignee") == "alice"
    assert tab.inner_text("#post-status") == "assigned"
    tab.select_option("#assign-form select[name=assignee]", "root")
    alice.submit("#assign-form button[type=submit]")
    assert tab.inner_text("#post-assignee") == "root"
    alice.submit("#unassign")
    assert tab.inner_text("#post-assignee") == "nobody"
    for text in ("Customer is a journalist: be careful.", "Called back, <b>no answer</b>."):
        tab.fill("#note-text", text)
        alice.submit("#note-form button[type=submit]")
    assert tab.url.endswith("#notes")
    notes = tab.locator("#notes-list li .note-text").all_inner_texts()
    assert notes == ["Customer is a journalist: be careful.", "Called back, <b>no answer</b>."]
    assert [e.action for e in audit_rows(inbox.path) if e.action.startswith("post.")] == [
        "post.status", "post.undo", "post.assign", "post.assign", "post.assign", "post.note",
        "post.note"]
    alice.submit("button[data-status=replied]")  # answered after 2 h: on the overview's card
    overview = alice.open("/?range=7d")
    card = overview.locator("#response-times")
    assert "2 h" in card.locator("table[data-response-by=brand] tr[data-name=acme]").inner_text()
    assert card.locator("table[data-response-by=agent] tr[data-name=alice]").count() == 1
    card.screenshot(path=str(shot(overview, "overview-desktop").with_name(
        "overview-response-times-desktop.png")))
    alice.close()


def test_copy_reply_and_open_the_post_where_no_account_answers(browser: Any,
                                                               inbox: Inbox) -> None:
    alice = Person(browser, inbox.url, "alice", permissions=["clipboard-read",
                                                              "clipboard-write"])
    alice.context.route("https://reddit.example/**",
                        lambda route: route.fulfill(status=200, body="the reddit post",
                                                    content_type="text/plain"))
    tab = alice.open(f"/posts/{inbox.reddit}")
    assert tab.locator("#reply-form").count() == 0
    opener = tab.locator("#copy-open")
    assert opener.get_attribute("target") == "_blank"
    assert opener.get_attribute("rel") == "noopener noreferrer"
    text = "Hi! Could you DM us your order number? — Acme support"
    tab.fill("#copy-text", text)
    assert tab.inner_text("#copy-count") == f"{len(text)} / 10000"
    with alice.context.expect_page() as opened:
        opener.click()
    post_tab = opened.value
    post_tab.wait_for_load_state()
    assert post_tab.url == tab.get_attribute("#copy-open", "href")
    assert post_tab.evaluate("window.opener") is None
    tab.wait_for_function("document.getElementById('copy-done').textContent !== ''")
    assert tab.inner_text("#copy-done").startswith("Reply copied")
    assert tab.evaluate("navigator.clipboard.readText()") == text
    shot(tab, "copy-and-open-desktop")
    assert audit_rows(inbox.path, action="reply.") == []  # nothing written, nothing sent
    post_tab.close()
    alice.close()


def test_the_pages_fit_a_phone(browser: Any, inbox: Inbox) -> None:
    db = connect(inbox.path)
    replies.create(db, inbox.post, "acme-mastodon", "mastodon", "alice",
                   "A long reply with a long link https://example.com/" + "a" * 120, NOW,
                   needs_approval=True)
    db.close()
    alice = Person(browser, inbox.url, "alice", viewport=PHONE)
    tab = alice.open(f"/posts/{inbox.post}")
    tab.fill("#note-text", "Phone check: a note with a " + "verylongword" * 12)
    alice.submit("#note-form button[type=submit]")
    alice.fits()
    shot(tab, "post-phone")
    alice.open(f"/posts/{inbox.reddit}")
    alice.fits()
    shot(alice.tab, "copy-and-open-phone")
    alice.open("/?range=7d")
    assert alice.tab.locator("#response-times").is_visible()
    alice.fits()
    alice.tab.locator("#response-times").screenshot(
        path=str(ARTIFACTS / "overview-response-times-phone.png"))
    root = Person(browser, inbox.url, "root", viewport=PHONE)
    approvals = root.open("/admin/replies")
    assert approvals.locator("section.approval").count() == 1
    root.fits()
    shot(approvals, "approvals-phone")
    alice.close()
    root.close()
