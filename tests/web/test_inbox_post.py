"""Issue 18 on the post page, through the Flask test client: every status with undo, who has the
post, internal notes, the customer's wait against the target, replies (approval by role, the
platform's limit, an identical repeat refused, withdraw and send again), "copy reply and open
the post" where no account answers, and the admins' approvals — each change audited under
the person who made it, and refused to viewers (and approvals to agents)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask, g, render_template_string
from flask.testing import FlaskClient

from alerts.replies.registry import WRITERS, writer_class
from listener.core.models import Page, Post
from listener.web.context import InboxRules, ReplyAccount, Who
from listener.web.posts import UNDO_WINDOW, reply_limit
from storage import db as store
from storage import inbox, replies, teamwork
from storage.tx import connect
from tests.web.people import CLIENT, add_people, app_for, audit_rows, changes, logged_in
from tests.web.seed import NOW, Seeded

RULES = InboxRules(
    first_response=timedelta(hours=4), brand_first_response={"acme": timedelta(hours=1)},
    reply_approval=frozenset({"agent"}),
    reply_accounts=(ReplyAccount("acme-x", "x", frozenset({"acme"})),
                    ReplyAccount("acme-appstore", "appstore", frozenset({"acme"}))))


class Team:
    """The seeded database with people, an app whose clock a test can move, and post ids."""

    def __init__(self, path: Path, ids: Seeded) -> None:
        self.path, self.ids = path, ids
        self.clock = [NOW]
        self.app: Flask = app_for(path, clock=lambda: self.clock[0], inbox=RULES)
        db = connect(path)
        self.reddit = int(db.execute("SELECT id FROM posts WHERE platform = 'reddit'"
                                     " ORDER BY id LIMIT 1").fetchone()[0])
        self.appstore = int(db.execute("SELECT id FROM posts WHERE platform = 'appstore'"
                                       " AND brand = 'acme' ORDER BY id LIMIT 1").fetchone()[0])
        db.close()
        self.post = ids.top_post  # x, acme: the acme-x account answers it

    def client(self, name: str) -> FlaskClient:
        return logged_in(self.app, name)


@pytest.fixture
def team(seeded: tuple[Path, Seeded]) -> Team:
    add_people(seeded[0], root="admin", alice="agent", bob="agent", vera="viewer")
    return Team(*seeded)


def csrf(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found, path
    return found.group(1)


def send(client: FlaskClient, url: str, page: str, **form: str) -> tuple[int, str]:
    """POST a form of ``page`` (with its CSRF token); the status and the answer's text."""
    response = client.post(url, data={**form, "csrf": csrf(client, page)})
    return response.status_code, response.get_data(as_text=True)


def holder(path: Path, post_id: int) -> teamwork.Handling:
    db = connect(path)
    try:
        return teamwork.handling(db, post_id)
    finally:
        db.close()


def post_replies(path: Path, post_id: int) -> list[replies.Reply]:
    db = connect(path)
    try:
        return replies.for_post(db, post_id)
    finally:
        db.close()


def problem(html: str) -> str:
    found = re.search(r'id="post-problem">([^<]*)<', html)
    assert found, "no problem said on the page"
    return found.group(1).replace("&#39;", "'")


# -- status and undo -------------------------------------------------------------------------


def test_all_five_statuses_are_buttons_and_undo_puts_the_last_one_back(team: Team) -> None:
    alice = team.client("alice")
    page = f"/posts/{team.post}"
    html = alice.get(page).get_data(as_text=True)
    assert re.findall(r'data-status="([a-z_]+)"', html) == [
        "new", "assigned", "replied", "handled", "not_relevant"]
    assert 'id="undo"' not in html  # nothing of alice's to undo yet
    code, _ = send(alice, f"{page}/status", page, status="handled")
    assert code == 303
    state = holder(team.path, team.post)
    assert (state.status, state.first_response_at) == ("handled", "2026-11-20T12:00:00Z")
    html = alice.get(page).get_data(as_text=True)
    entry = re.search(r'name="entry" value="(\d+)"', html)
    assert entry and "Undo: back to new" in html
    assert send(alice, f"{page}/undo", page, entry=entry.group(1))[0] == 303
    state = holder(team.path, team.post)
    # a mis-click is not an answer: the first response it stamped is gone with it
    assert (state.status, state.first_response_at, state.resolved_at) == ("new", None, None)
    entries = [(e.actor, e.action, e.detail, e.address) for e in changes(team.path)]
    assert entries == [
        ("alice", "post.status", {"from": "new", "to": "handled"}, CLIENT),
        ("alice", "post.undo", {"from": "handled", "to": "new", "undoes": int(entry.group(1))},
         CLIENT)]
    code, html = send(alice, f"{page}/undo", page, entry=entry.group(1))  # undone already
    assert code == 409 and "can no longer be undone" in problem(html)
    assert holder(team.path, team.post).status == "new"


def test_undo_is_only_for_whoever_made_the_change_while_nobody_changed_it_since(
    team: Team
) -> None:
    alice, bob = team.client("alice"), team.client("bob")
    page = f"/posts/{team.post}"
    send(alice, f"{page}/status", page, status="not_relevant")
    [change] = audit_rows(team.path, action="post.status")
    assert 'id="undo"' not in bob.get(page).get_data(as_text=True)
    code, html = send(bob, f"{page}/undo", page, entry=str(change.id))
    assert code == 409 and holder(team.path, team.post).status == "not_relevant"
    team.clock[0] = NOW + UNDO_WINDOW + timedelta(seconds=1)  # too late, even for alice
    assert 'id="undo"' not in alice.get(page).get_data(as_text=True)
    assert send(alice, f"{page}/undo", page, entry=str(change.id))[0] == 409
    team.clock[0] = NOW
    send(bob, f"{page}/status", page, status="replied")  # bob changed it since
    assert 'id="undo"' not in alice.get(page).get_data(as_text=True)
    assert send(alice, f"{page}/undo", page, entry=str(change.id))[0] == 409
    assert holder(team.path, team.post).status == "replied"
    assert send(alice, f"{page}/undo", page, entry="12x")[0] == 400


def test_assigned_gives_the_post_to_whoever_clicked_and_undo_restores_who_had_it(
    team: Team
) -> None:
    alice = team.client("alice")
    page = f"/posts/{team.post}"
    send(alice, f"{page}/status", page, status="assigned")
    assert (holder(team.path, team.post).status, holder(team.path, team.post).assignee) == (
        "assigned", "alice")
    send(alice, f"{page}/status", page, status="new")  # nobody has it any more
    assert holder(team.path, team.post).assignee is None
    html = alice.get(page).get_data(as_text=True)
    assert "Undo: back to assigned, alice" in html
    entry = re.search(r'name="entry" value="(\d+)"', html)
    assert entry
    send(alice, f"{page}/undo", page, entry=entry.group(1))
    state = holder(team.path, team.post)
    assert (state.status, state.assignee) == ("assigned", "alice")
    assert [e.detail for e in audit_rows(team.path, action="post.status")] == [
        {"from": "new", "to": "assigned", "from_assignee": None, "to_assignee": "alice"},
        {"from": "assigned", "to": "new", "from_assignee": "alice", "to_assignee": None}]


# -- who has it --------------------------------------------------------------------------------


def test_assign_to_me_to_someone_and_to_nobody_each_audited(team: Team) -> None:
    alice = team.client("alice")
    page = f"/posts/{team.post}"
    html = alice.get(page).get_data(as_text=True)
    menu = re.search(r'<select name="assignee">(.*?)</select>', html, re.S)
    assert menu and re.findall(r'<option value="([^"]*)"', menu.group(1)) == [
        "", "alice", "bob", "root"]  # active agents and admins; not the viewer
    assert send(alice, f"{page}/assign", page, assignee="me")[0] == 303
    assert holder(team.path, team.post).assignee == "alice"
    assert send(alice, f"{page}/assign", page, assignee="bob")[0] == 303
    assert 'id="post-assignee"><strong>bob</strong>' in alice.get(page).get_data(as_text=True)
    for name in ("vera", "mallory", "<b>x</b>"):
        code, html = send(alice, f"{page}/assign", page, assignee=name)
        assert code == 400 and "is not an active agent or admin" in problem(html)
    assert send(alice, f"{page}/assign", page, assignee="")[0] == 303
    state = holder(team.path, team.post)
    assert (state.status, state.assignee) == ("new", None)
    assert [(e.actor, e.detail) for e in audit_rows(team.path, action="post.assign")] == [
        ("alice", {"from": "new", "to": "assigned", "from_assignee": None,
                   "to_assignee": "alice"}),
        ("alice", {"from": "assigned", "to": "assigned", "from_assignee": "alice",
                   "to_assignee": "bob"}),
        ("alice", {"from": "assigned", "to": "new", "from_assignee": "bob",
                   "to_assignee": None})]


# -- notes -------------------------------------------------------------------------------------


def test_notes_are_listed_escaped_and_audited_by_id_not_by_text(team: Team) -> None:
    alice, bob = team.client("alice"), team.client("bob")
    page = f"/posts/{team.post}"
    secret = "called them back; account <b>4711</b>"
    response = alice.post(f"{page}/notes", data={"text": secret, "csrf": csrf(alice, page)})
    assert response.status_code == 303 and response.headers["Location"].endswith("#notes")
    send(bob, f"{page}/notes", page, text="refund approved\nby finance")
    html = alice.get(page).get_data(as_text=True)
    notes = re.findall(r'<li data-note-id="(\d+)"><p class="meta">(\w+) ·', html)
    assert [author for _, author in notes] == ["alice", "bob"]
    assert "account &lt;b&gt;4711&lt;/b&gt;" in html and "<b>4711</b>" not in html
    entries = audit_rows(team.path, action="post.note")
    assert [(e.actor, e.target, e.detail) for e in entries] == [
        ("alice", f"post:{team.post}", {"note": int(notes[0][0])}),
        ("bob", f"post:{team.post}", {"note": int(notes[1][0])})]
    assert "4711" not in json.dumps([e.detail for e in audit_rows(team.path)])
    for text in ("", "   ", "x" * (inbox.NOTE_MAX + 1)):
        code, html = send(alice, f"{page}/notes", page, text=text)
        assert code == 400 and "A note has 1 to 4,000 characters" in problem(html)
    assert len(audit_rows(team.path, action="post.note")) == 2


# -- the customer's wait ------------------------------------------------------------------------


def test_the_wait_is_shown_against_the_brands_target_then_the_response_time(
    team: Team
) -> None:
    alice = team.client("alice")
    page = f"/posts/{team.post}"  # acme, written 4 hours ago; acme's target is 1 hour
    html = alice.get(page).get_data(as_text=True)
    age = re.search(r'<dd id="post-age"([^>]*)>(.*?)</dd>', html, re.S)
    assert age and "data-overdue" in age.group(1)
    assert age.group(2).startswith("4 h") and "overdue" in age.group(2)
    assert "target of 1 h for acme" in age.group(2)
    assert '<dd id="post-first-response">not yet</dd>' in html
    team.clock[0] = NOW + timedelta(minutes=25)
    send(alice, f"{page}/status", page, status="replied")
    team.clock[0] = NOW + timedelta(hours=1)
    send(alice, f"{page}/status", page, status="handled")
    html = alice.get(page).get_data(as_text=True)
    assert "data-overdue" not in html
    assert 'id="post-first-response">after 4 h 25 min' in html
    assert 'id="post-resolved">after 5 h' in html


# -- replies -----------------------------------------------------------------------------------


def test_a_reply_waits_for_approval_by_role_and_each_is_audited_as_its_author(
    team: Team
) -> None:
    alice, root = team.client("alice"), team.client("root")
    page = f"/posts/{team.post}"
    html = alice.get(page).get_data(as_text=True)
    assert 'data-limit="280"' in html and "Submit for approval" in html
    assert "Send reply" in root.get(page).get_data(as_text=True)  # admins need no approval
    response = alice.post(f"{page}/replies",
                          data={"text": "  Sorry, Ann — we're on it.  ", "csrf": csrf(alice, page)})
    assert response.status_code == 303 and response.headers["Location"].endswith("#replies")
    team.clock[0] = NOW + timedelta(minutes=1)  # replies are listed in the order written
    send(root, f"{page}/replies", page, text="We refunded you.")
    written = post_replies(team.path, team.post)
    assert [(r.author, r.status, r.account, r.platform, r.text) for r in written] == [
        ("alice", "awaiting_approval", "acme-x", "x", "Sorry, Ann — we're on it."),
        ("root", "pending", "acme-x", "x", "We refunded you.")]
    assert [(e.actor, e.detail["status"], e.address)
            for e in audit_rows(team.path, action="reply.write")] == [
        ("alice", "awaiting_approval", CLIENT), ("root", "pending", CLIENT)]
    html = alice.get(page).get_data(as_text=True)
    assert re.findall(r'data-reply-status="(\w+)"', html) == ["awaiting_approval", "pending"]
    assert "awaiting approval" in html and "/admin/replies" not in html  # agents: no link


def test_an_identical_repeat_is_refused_with_a_message_and_the_text_kept(team: Team) -> None:
    alice = team.client("alice")
    page = f"/posts/{team.post}"
    send(alice, f"{page}/replies", page, text="Please DM us your order number.")
    code, html = send(alice, f"{page}/replies", page, text="Please DM us your order number.")
    assert code == 400
    assert problem(html).startswith("Not saved: this reply was already written for this post")
    assert '<textarea name="text" id="reply-text"' in html
    assert ">Please DM us your order number.</textarea>" in html
    assert len(post_replies(team.path, team.post)) == 1
    assert len(audit_rows(team.path, action="reply.write")) == 1


def test_the_platforms_limit_is_its_writers_and_enforced_where_it_counts_characters(
    team: Team
) -> None:
    for platform in WRITERS:
        assert reply_limit(platform) == writer_class(platform).max_chars
    assert reply_limit("hackernews") is None
    root = team.client("root")
    store_page = f"/posts/{team.appstore}"
    assert 'data-limit="5970"' in root.get(store_page).get_data(as_text=True)
    code, html = send(root, f"{store_page}/replies", store_page, text="y" * 5971)
    assert code == 400 and "appstore takes at most 5,970" in problem(html)
    assert send(root, f"{store_page}/replies", store_page, text="y" * 5970)[0] == 303
    # X weighs links and some scripts its own way: its writer's count decides when sending
    page = f"/posts/{team.post}"
    assert send(root, f"{page}/replies", page, text="z" * 300)[0] == 303


def test_copy_and_open_where_no_account_answers_the_post(team: Team) -> None:
    alice = team.client("alice")
    page = f"/posts/{team.reddit}"
    html = alice.get(page).get_data(as_text=True)
    assert 'id="reply-form"' not in html
    link = re.search(r'<a href="([^"]+)" target="_blank" rel="noopener noreferrer"'
                     r' class="button" id="copy-open" data-copy="copy-text">', html)
    assert link and link.group(1).startswith("https://reddit.example/status/")
    assert 'data-limit="10000"' in html  # reddit's own limit, for writing it by hand
    code, html = send(alice, f"{page}/replies", page, text="hello")
    assert code == 400 and "No reply account answers this post" in problem(html)
    assert post_replies(team.path, team.reddit) == []
    db = connect(team.path)  # a post whose link is not http(s): copy only, no link
    store.store_page(db, "r", Page(posts=[Post(
        platform="reddit", platform_id="js1", text="help", created_at=NOW, source="reddit",
        brand="acme", url="javascript:window.pwned=1")]), NOW)
    js_post = int(db.execute("SELECT id FROM posts WHERE platform_id = 'js1'").fetchone()[0])
    db.close()
    html = alice.get(f"/posts/{js_post}").get_data(as_text=True)
    assert 'id="copy-open"' not in html and 'id="copy-only"' in html
    assert "javascript:" not in html.split('id="copy-reply"')[1]


def _failed_reply(path: Path, post_id: int, text: str) -> str:
    """A reply the dispatch stage parked: one attempt, refused by the platform."""
    db = connect(path)
    try:
        reply = replies.create(db, post_id, "acme-x", "x", "alice", text, NOW,
                               needs_approval=False)
        begun = replies.begin(db, reply.id, NOW)
        assert begun is not None
        replies.record_failure(db, begun, NOW, "403 <forbidden> duplicate content", None)
        return reply.id
    finally:
        db.close()


def test_send_again_and_withdraw_where_the_reply_allows_it(team: Team) -> None:
    alice = team.client("alice")
    page = f"/posts/{team.post}"
    parked = _failed_reply(team.path, team.post, "We are sorry.")
    html = alice.get(page).get_data(as_text=True)
    assert "last error: 403 &lt;forbidden&gt; duplicate content" in html
    assert 'class="small send-again"' in html
    assert send(alice, f"{page}/replies/retry", page, reply=parked)[0] == 303
    [reply] = post_replies(team.path, team.post)
    assert (reply.status, reply.attempts) == ("pending", 1)
    # tried once already: it may have reached the platform, so it cannot be withdrawn
    code, html = send(alice, f"{page}/replies/withdraw", page, reply=parked)
    assert code == 409 and "cannot be withdrawn" in problem(html)
    team.clock[0] = NOW + timedelta(minutes=1)
    send(alice, f"{page}/replies", page, text="Second thoughts")
    waiting = post_replies(team.path, team.post)[1]
    assert waiting.status == "awaiting_approval"
    assert send(alice, f"{page}/replies/withdraw", page, reply=waiting.id)[0] == 303
    assert post_replies(team.path, team.post)[1].status == "cancelled"
    assert "withdrawn" in alice.get(page).get_data(as_text=True)
    assert [(e.actor, e.action, e.detail) for e in audit_rows(team.path, action="reply.")
            if e.action in ("reply.retry", "reply.cancel")] == [
        ("alice", "reply.retry", {"reply": parked}),
        ("alice", "reply.cancel", {"reply": waiting.id})]
    other = f"/posts/{team.reddit}"  # a reply id must be one of the post's own
    assert send(alice, f"{other}/replies/withdraw", other, reply=parked)[0] == 404
    assert send(alice, f"{page}/replies/retry", page, reply="not-an-id")[0] == 400


def test_a_sent_reply_links_to_the_platform_only_by_http(team: Team) -> None:
    db = connect(team.path)
    for text, url in (("first", "https://x.example/acme/status/1"), ("second", "javascript:x")):
        reply = replies.create(db, team.post, "acme-x", "x", "root", text, NOW,
                               needs_approval=False)
        begun = replies.begin(db, reply.id, NOW)
        assert begun is not None
        replies.record_sent(db, begun, f"r-{text}", url, NOW)
    db.close()
    html = team.client("alice").get(f"/posts/{team.post}").get_data(as_text=True)
    assert re.findall(r'data-reply-status="(\w+)"', html) == ["sent", "sent"]
    assert re.findall(r'<a href="([^"]+)"[^>]*class="sent-link"', html) == [
        "https://x.example/acme/status/1"]
    assert "javascript:x" not in html
    assert holder(team.path, team.post).status == "replied"  # the dispatch stage moved it


# -- approvals --------------------------------------------------------------------------------


def test_approvals_are_the_admins_and_each_decision_is_audited(team: Team) -> None:
    alice, root, vera = team.client("alice"), team.client("root"), team.client("vera")
    page = f"/posts/{team.post}"
    send(alice, f"{page}/replies", page, text="Good news: refunded!")
    team.clock[0] = NOW + timedelta(minutes=1)
    send(alice, f"{page}/replies", page, text="It's your own fault")
    good, bad = (r.id for r in post_replies(team.path, team.post))
    for person in (alice, vera):
        assert person.get("/admin/replies").status_code == 403
        for action in ("approve", "reject"):
            response = person.post(f"/admin/replies/{action}", data={
                "reply": good, "reason": "no", "csrf": csrf(person, page)})
            assert response.status_code == 403
            assert "Only admins" in response.get_data(as_text=True)
    assert {r.status for r in post_replies(team.path, team.post)} == {"awaiting_approval"}
    html = root.get("/admin/replies").get_data(as_text=True)
    assert re.findall(r'<section class="approval" data-reply-id="(\w+)">', html) == [good, bad]
    assert 'id="approvals-count">2<' in html and "by user" in html  # the post's author
    assert "It&#39;s your own fault" in html
    code, html = send(root, "/admin/replies/approve", "/admin/replies", reply=good)
    assert code == 303
    code, html = send(root, "/admin/replies/reject", "/admin/replies", reply=bad, reason="  ")
    assert code == 400 and "Say why it is rejected" in html
    response = root.post("/admin/replies/reject", data={
        "reply": bad, "reason": "tone: never blame the customer",
        "csrf": csrf(root, "/admin/replies")})
    assert response.status_code == 303 and "done=rejected" in response.headers["Location"]
    assert "Rejected: it will not be sent" in root.get(
        response.headers["Location"]).get_data(as_text=True)
    assert [(r.status, r.approved_by) for r in post_replies(team.path, team.post)] == [
        ("pending", "root"), ("rejected", "root")]
    assert [(e.actor, e.action, e.detail, e.address) for e in audit_rows(team.path)
            if e.action in ("reply.approve", "reply.reject")] == [
        ("root", "reply.approve", {"reply": good}, CLIENT),
        ("root", "reply.reject", {"reply": bad, "reason": "tone: never blame the customer"},
         CLIENT)]
    code, html = send(root, "/admin/replies/approve", "/admin/replies", reply=bad)
    assert code == 409 and "not waiting for approval" in html
    assert "rejected by root: tone: never blame the customer" in alice.get(page).get_data(
        as_text=True)
    assert 'id="approvals-empty"' in root.get("/admin/replies").get_data(as_text=True)


def test_admins_get_the_waiting_count_for_the_navigation(team: Team) -> None:
    alice = team.client("alice")
    page = f"/posts/{team.post}"
    send(alice, f"{page}/replies", page, text="one")
    send(alice, f"{page}/replies", page, text="two")
    with team.app.test_request_context("/"):
        g.who = Who("root", "admin", "session", 1)
        assert render_template_string("{{ approvals_waiting() }}") == "2"
        g.who = Who("alice", "agent", "session", 2)
        assert render_template_string("{{ approvals_waiting() }}") == "0"


# -- viewers ----------------------------------------------------------------------------------


def test_a_viewer_reads_replies_and_notes_but_has_no_form_and_is_refused(team: Team) -> None:
    alice, vera = team.client("alice"), team.client("vera")
    page = f"/posts/{team.post}"
    send(alice, f"{page}/notes", page, text="VIP customer")
    send(alice, f"{page}/replies", page, text="On it!")
    before = len(audit_rows(team.path))
    for path in (page, f"/posts/{team.reddit}"):
        html = vera.get(path).get_data(as_text=True)
        assert re.findall(r'<form method="post" action="([^"]+)"', html) == ["/logout"]
        assert 'id="copy-open"' not in html and "data-status" not in html
    html = vera.get(page).get_data(as_text=True)
    assert "VIP customer" in html and "On it!" in html
    [reply] = post_replies(team.path, team.post)
    token = csrf(vera, page)
    for url, form in ((f"{page}/status", {"status": "handled"}),
                      (f"{page}/assign", {"assignee": "me"}), (f"{page}/undo", {"entry": "1"}),
                      (f"{page}/notes", {"text": "hi"}), (f"{page}/replies", {"text": "hi"}),
                      (f"{page}/replies/withdraw", {"reply": reply.id}),
                      (f"{page}/replies/retry", {"reply": reply.id}),
                      ("/admin/replies/approve", {"reply": reply.id}),
                      ("/admin/replies/reject", {"reply": reply.id, "reason": "x"})):
        response = vera.post(url, data={**form, "csrf": token})
        assert response.status_code == 403, url
    assert len(audit_rows(team.path)) == before  # nothing was recorded: nothing changed
    assert post_replies(team.path, team.post)[0].status == "awaiting_approval"
    assert holder(team.path, team.post).status == "new"


def test_a_long_wait_reads_in_days_and_hours(team: Team) -> None:
    team.clock[0] = datetime(2026, 11, 21, 12, 0, tzinfo=NOW.tzinfo)
    html = team.client("alice").get(f"/posts/{team.post}").get_data(as_text=True)
    assert re.search(r'<dd id="post-age"[^>]*>1 d 4 h', html)
