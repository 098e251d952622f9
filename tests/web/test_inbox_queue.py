"""Issue 18, the queue a team works, through Flask's test client: views and their counts, a
status or an assignee per row and for ticked rows at once (all or nothing, one audit entry per
post), undo, the order that counts the customer's wait and flags what is overdue, and the
endpoint the page polls for new posts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from listener.core.models import Page, Post, Score
from listener.web import auditing, roles
from listener.web.context import InboxRules
from storage import db as store
from storage import inbox, users
from storage.inbox import Holder
from storage.tx import connect
from tests.web.people import CLIENT, add_people, app_for, changes, csrf_of, logged_in
from tests.web.seed import NOW, Seeded


@dataclass
class Team:
    path: Path
    ids: Seeded
    app: Flask
    clock: list[datetime]

    def client(self, name: str) -> tuple[FlaskClient, str]:
        """``name``'s logged-in client and the CSRF token its forms carry."""
        person = logged_in(self.app, name)
        return person, csrf_of(person)


@pytest.fixture
def team(seeded: tuple[Path, Seeded]) -> Team:
    path, ids = seeded
    add_people(path, root="admin", alice="agent", bob="agent", vera="viewer", dora="agent")
    db = connect(path)
    users.set_disabled(db, "dora", True, NOW)  # a former colleague: no longer given posts
    db.close()
    clock = [NOW]
    return Team(path, ids, app_for(path, clock=lambda: clock[0]), clock)


def holder(path: Path, post_id: int) -> Holder:
    db = connect(path)
    try:
        return inbox.holder(db, post_id)
    finally:
        db.close()


def add_post(path: Path, key: str, *, brand: str = "initech", hours_ago: float = 1,
             followers: int = 100, urgency: float = 0.9, sentiment: str = "negative") -> int:
    """A post stored now (written ``hours_ago``), scored, in the queue when negative."""
    post = Post(platform="x", platform_id=key, text=f"{key}: my order never arrived",
                created_at=NOW - timedelta(hours=hours_ago), source="x-main", brand=brand,
                lang="en", author=f"@{key}", author_followers=followers,
                url=f"https://x.example/{key}")
    db = store.open_db(path)
    try:
        store.store_page(db, "x-main", Page(posts=[post]), NOW)
        post_id = int(db.execute("SELECT id FROM posts WHERE platform_id = ?",
                                 [key]).fetchone()[0])
        store.save_scores(db, [(post_id, Score(sentiment, 0.8, 0.1, 0.1, urgency, "m", "1"),
                                "en")], NOW)
    finally:
        db.close()
    return post_id


def said(response: Any) -> str:
    """A response's text as a person reads it (the error page escapes quotes)."""
    return unescape(response.get_data(as_text=True))


def queue_ids(client: FlaskClient, query: str = "") -> list[int]:
    return [r["post_id"] for r in client.get(f"/api/queue?{query}").get_json()["rows"]]


def counts(html: str) -> dict[str, int]:
    """The views' counts as the tabs show them."""
    return {k: int(v.replace(",", "")) for k, v in
            re.findall(r'data-count="(\w+)">([0-9,]+)<', html)}


def test_with_a_text_search_only_the_current_view_is_counted(team: Team) -> None:
    """Each tab's count repeats the search: with one, the current view alone is counted (its
    total above the list too); without one, every tab is."""
    alice, _ = team.client("alice")
    plain = counts(alice.get("/queue?status=all").get_data(as_text=True))
    assert set(plain) == {"new", "mine", "open", "assigned", "replied", "handled",
                          "not_relevant", "all"}
    text = alice.get("/api/queue?status=all").get_json()["rows"][0]["text"]
    word = max(re.findall(r"[A-Za-z]{4,}", text), key=len)
    html = alice.get(f"/queue?status=all&q={word}").get_data(as_text=True)
    searched = counts(html)
    assert list(searched) == ["all"] and 0 < searched["all"] <= plain["all"]
    assert 'data-view="handled"' in html  # every tab is still there to click


def undo_of(location: str) -> str:
    """The entry ids a change's redirect carries for its Undo."""
    return parse_qs(urlsplit(location).query)["undo"][0]


def change(client: FlaskClient, token: str, post_ids: list[int] | int, **form: Any) -> Any:
    ids = post_ids if isinstance(post_ids, list) else [post_ids]
    return client.post("/queue/change", data={"csrf": token, "post_id": [str(i) for i in ids],
                                              "next": "/queue?status=open", **form})


def test_views_count_unassigned_mine_and_open(team: Team) -> None:
    alice, token = team.client("alice")
    bob, bob_token = team.client("bob")
    before = counts(alice.get("/queue").get_data(as_text=True))["new"]
    first, second, third, fourth = queue_ids(alice)[:4]
    assert change(alice, token, [first, second], assignee="me").status_code == 303
    assert change(bob, bob_token, third, assignee="me").status_code == 303
    assert change(alice, token, fourth, status="replied").status_code == 303
    html = alice.get("/queue").get_data(as_text=True)
    seen = counts(html)
    assert seen["new"] == before - 4
    assert seen["mine"] == 2 and seen["assigned"] == 3 and seen["replied"] == 1
    assert seen["open"] == before  # new + assigned + replied: nothing resolved yet
    assert fourth in queue_ids(alice, "status=replied")
    assert seen["handled"] == seen["not_relevant"] == 0 and seen["all"] == before
    assert 'data-view="new" aria-current="page"' in html  # Unassigned is the default view
    assert sorted(queue_ids(alice, "status=mine")) == sorted([first, second])
    assert queue_ids(bob, "status=mine") == [third]
    assert counts(bob.get("/queue?status=mine").get_data(as_text=True))["mine"] == 1
    assert change(alice, token, first, status="handled").status_code == 303
    assert queue_ids(alice, "status=mine") == [second]  # "Mine" holds open posts only
    now = counts(alice.get("/queue").get_data(as_text=True))
    assert (now["open"], now["handled"], now["mine"]) == (before - 1, 1, 1)
    assert counts(alice.get("/queue?brand=globex").get_data(as_text=True))["all"] < before
    for bad in ("status=mine2", "order=newest"):
        response = alice.get(f"/api/queue?{bad}")
        assert response.status_code == 400 and "must be one of" in response.get_json()["error"]


def test_a_row_change_is_audited_with_who_and_what(team: Team) -> None:
    alice, token = team.client("alice")
    post = queue_ids(alice)[0]
    response = change(alice, token, post, status="handled")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/queue?status=open&undo=")
    assert holder(team.path, post) == Holder("handled", None)
    assert change(alice, token, post, assignee="bob").status_code == 303
    assert holder(team.path, post) == Holder("handled", "bob")  # it only changes hands
    assert change(alice, token, post, status="new").status_code == 303
    assert holder(team.path, post) == Holder("new", None)
    other = queue_ids(alice)[0]
    assert change(alice, token, other, status="assigned").status_code == 303
    assert holder(team.path, other) == Holder("assigned", "alice")  # nobody had it: whoever asked
    entries = [(e.actor, e.action, e.target, e.detail, e.address) for e in changes(team.path)]
    assert entries == [
        ("alice", "post.status", f"post:{post}", {"from": "new", "to": "handled"}, CLIENT),
        ("alice", "post.assign", f"post:{post}", {"from": "handled", "to": "handled",
                                                  "from_assignee": None, "to_assignee": "bob"},
         CLIENT),
        ("alice", "post.status", f"post:{post}", {"from": "handled", "to": "new",
                                                  "from_assignee": "bob", "to_assignee": None},
         CLIENT),
        ("alice", "post.status", f"post:{other}", {"from": "new", "to": "assigned",
                                                   "from_assignee": None, "to_assignee": "alice"},
         CLIENT),
    ]
    assert all(e.at == "2026-11-20T12:00:00Z" for e in changes(team.path))


def test_changes_are_checked_before_anything_is_written(team: Team) -> None:
    alice, token = team.client("alice")
    post = queue_ids(alice)[0]
    for form, words in (({"status": "done"}, "status must be one of"),
                        ({"assignee": "vera"}, "not an active agent or admin"),  # a viewer
                        ({"assignee": "dora"}, "not an active agent or admin"),  # disabled
                        ({"assignee": "mallory"}, "not an active agent or admin"),
                        ({"apply": "assignee"}, "say what to change"),
                        ({}, "say what to change")):
        response = change(alice, token, post, **form)
        assert response.status_code == 400 and words in said(response), form
    for ids, words in ((["12x"], "'post_id' must be ids"), (["0"], "'post_id' must be ids"),
                       (["99999999999999999999"], "'post_id' must be ids"),
                       ([str(i) for i in range(1, 102)], "at most 100 posts")):
        response = alice.post("/queue/change", data={"csrf": token, "post_id": ids,
                                                     "status": "handled"})
        assert response.status_code == 400 and words in said(response), ids
    nothing = alice.post("/queue/change", data={"csrf": token, "status": "handled",
                                                "next": "/queue?brand=acme&undo=7&done=x"})
    assert nothing.status_code == 303  # nothing ticked: said on the page, nothing changed
    assert nothing.headers["Location"] == "/queue?brand=acme&done=none-selected"
    page = alice.get(nothing.headers["Location"]).get_data(as_text=True)
    assert "Tick the posts to change first" in page
    away = change(alice, token, post, status="handled", next="https://evil.example/")
    assert away.headers["Location"].startswith("/queue?")  # never off the site
    assert changes(team.path)[-1].detail == {"from": "new", "to": "handled"}
    again = change(alice, token, post, status="handled")
    assert again.headers["Location"].endswith("done=unchanged")  # already so: no entry
    assert len(changes(team.path)) == 1


def test_a_viewer_is_refused_every_queue_change_and_sees_no_controls(team: Team) -> None:
    vera, token = team.client("vera")
    post = queue_ids(vera)[0]
    for url, form in (("/queue/change", {"post_id": str(post), "status": "handled"}),
                      ("/queue/change", {"post_id": str(post), "assignee": "me"}),
                      ("/queue/undo", {"entries": "1"})):
        response = vera.post(url, data={"csrf": token, **form})
        assert response.status_code == 403, url
        assert roles.VIEWER_REFUSED.replace("'", "&#39;") in response.get_data(as_text=True)
    assert holder(team.path, post) == Holder("new", None) and changes(team.path) == []
    html = vera.get("/queue").get_data(as_text=True)
    assert re.findall(r'<form method="post" action="([^"]+)"', html) == ["/logout"]
    assert 'type="checkbox" name="post_id"' not in html and 'id="bulk"' not in html
    assert 'data-view="mine"' not in html  # nobody gives a viewer posts
    assert "<kbd>h</kbd>" not in html and "<kbd>j</kbd>" in html  # only what a viewer can do
    assert vera.get("/api/queue/version?since=0").status_code == 200  # reading is fine


def test_bulk_changes_are_all_or_nothing_with_an_entry_per_post(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    team.app.config["PROPAGATE_EXCEPTIONS"] = False  # answer 500, as in production
    alice, token = team.client("alice")
    ids = queue_ids(alice)[:3]
    missing = change(alice, token, [*ids, 999_999], status="handled")
    assert missing.status_code == 404 and "no post 999999" in missing.get_data(as_text=True)
    calls: list[str] = []
    real = auditing.record

    def fails_on_the_second(*args: Any, **kwargs: Any) -> None:
        calls.append(kwargs.get("target", ""))
        if len(calls) == 2:
            raise RuntimeError("the audit log is full")
        real(*args, **kwargs)

    monkeypatch.setattr(auditing, "record", fails_on_the_second)
    assert change(alice, token, ids, status="handled").status_code == 500
    monkeypatch.undo()
    assert [holder(team.path, i) for i in ids] == [Holder("new", None)] * 3
    assert changes(team.path) == []
    done = change(alice, token, ids, apply="status", status="handled", assignee="bob")
    assert done.status_code == 303
    assert [holder(team.path, i).status for i in ids] == ["handled"] * 3
    assigned = change(alice, token, ids, apply="assignee", status="handled", assignee="bob")
    assert assigned.status_code == 303
    assert [holder(team.path, i) for i in ids] == [Holder("handled", "bob")] * 3
    entries = changes(team.path)
    assert [(e.action, e.target) for e in entries] == (
        [("post.status", f"post:{i}") for i in ids] + [("post.assign", f"post:{i}") for i in ids])
    assert {e.detail["bulk"] for e in entries} == {3} and {e.actor for e in entries} == {"alice"}
    page = alice.get(assigned.headers["Location"]).get_data(as_text=True)
    assert "3 posts given to bob." in page


def test_undo_puts_back_status_and_assignee_and_is_audited(team: Team) -> None:
    alice, token = team.client("alice")
    first, second = queue_ids(alice)[:2]
    assert change(alice, token, first, assignee="me").status_code == 303
    replied = change(alice, token, [first, second], status="replied")
    page = alice.get(replied.headers["Location"]).get_data(as_text=True)
    assert "2 posts marked replied." in page and 'id="undo-form"' in page
    entries = re.search(r'name="entries" value="([0-9,]+)"', page)
    assert entries and entries.group(1) == undo_of(replied.headers["Location"])
    assert _first_response(team.path, first) is not None
    undone = alice.post("/queue/undo", data={"csrf": token, "entries": entries.group(1),
                                             "next": "/queue?status=open"})
    assert undone.status_code == 303
    assert holder(team.path, first) == Holder("assigned", "alice")
    assert holder(team.path, second) == Holder("new", None)
    assert _first_response(team.path, first) is None  # a mis-click is not an answer
    [a, b] = [e for e in changes(team.path) if e.action == "post.undo"]
    assert (a.actor, a.target, a.detail) == ("alice", f"post:{first}", {
        "from": "replied", "to": "assigned", "undoes": int(entries.group(1).split(",")[0]),
        "bulk": 2})
    assert b.target == f"post:{second}"
    again = alice.get(undone.headers["Location"]).get_data(as_text=True)
    assert "Undone: 2 posts are back as they were." in again and ">Redo</button>" in again
    redo = alice.post("/queue/undo", data={"csrf": token,
                                           "entries": undo_of(undone.headers["Location"])})
    assert redo.status_code == 303 and holder(team.path, second).status == "replied"
    nothing = alice.post("/queue/undo", data={"csrf": token, "entries": ""})
    assert nothing.status_code == 303 and nothing.headers["Location"].endswith(
        "done=nothing-to-undo")
    assert alice.post("/queue/undo", data={"csrf": token, "entries": "x"}).status_code == 400


def _first_response(path: Path, post_id: int) -> str | None:
    db = connect(path)
    try:
        row = db.execute("SELECT first_response_at FROM post_status WHERE post_id = ?",
                         [post_id]).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def test_undo_is_refused_whole_when_it_is_no_longer_safe(team: Team) -> None:
    alice, token = team.client("alice")
    bob, bob_token = team.client("bob")
    first, second, third = queue_ids(alice)[:3]
    both = undo_of(change(alice, token, [first, second], status="handled").headers["Location"])
    refused = bob.post("/queue/undo", data={"csrf": bob_token, "entries": both})
    assert refused.status_code == 409  # not his change
    assert change(bob, bob_token, second, status="replied").status_code == 303
    refused = alice.post("/queue/undo", data={"csrf": token, "entries": both})
    assert refused.status_code == 409 and "Nothing was undone" in refused.get_data(as_text=True)
    assert holder(team.path, first).status == "handled"  # all or nothing
    assert holder(team.path, second).status == "replied"  # bob's change stands
    assert 'id="undo-form"' not in alice.get(f"/queue?undo={both}").get_data(as_text=True)
    late = undo_of(change(alice, token, third, status="not_relevant").headers["Location"])
    team.clock[0] = NOW + timedelta(minutes=16)
    assert alice.post("/queue/undo", data={"csrf": token, "entries": late}).status_code == 409
    assert holder(team.path, third).status == "not_relevant"
    assert [e.action for e in changes(team.path)].count("post.undo") == 0


def _inbox_app(team: Team, **rules: Any) -> FlaskClient:
    app = app_for(team.path, clock=lambda: team.clock[0], inbox=InboxRules(**rules))
    return logged_in(app, "alice")


def test_a_post_waiting_past_its_brand_target_comes_first_and_says_so(team: Team) -> None:
    fresh = add_post(team.path, "fresh", hours_ago=0.2, followers=100_000, urgency=0.9)  # 5.4
    waited = add_post(team.path, "waited", hours_ago=2.2, followers=1_000, urgency=0.9)  # 3.6
    other = add_post(team.path, "other", brand="hooli", hours_ago=2.2, followers=1_000,
                     urgency=0.9)
    alice = _inbox_app(team, first_response=timedelta(hours=4),
                       brand_first_response={"initech": timedelta(hours=1)})
    ranked = queue_ids(alice, "brand=initech&order=rank")
    assert ranked == [fresh, waited]  # rank alone: the big account first
    assert queue_ids(alice, "brand=initech") == [waited, fresh]  # x3 after twice the target
    rows = {r["post_id"]: r for r in alice.get("/api/queue?brand=initech").get_json()["rows"]}
    assert rows[waited]["overdue_by_s"] == 4320 and rows[waited]["waited_s"] == 7920  # 1.2 h, 2.2 h
    assert rows[fresh]["overdue_by_s"] is None
    assert rows[waited]["priority"] == pytest.approx(3 * rows[waited]["rank"])
    html = alice.get("/queue?brand=initech").get_data(as_text=True)
    row = html.split(f'data-post-id="{waited}"')[1].split("</tr>")[0]
    assert "overdue" in html.split(f'data-post-id="{waited}"')[1].split(">")[0]  # the row's class
    assert "waiting 2 h 12 min" in row and "overdue by 1 h 12 min" in row  # in words, not colour
    assert 'aria-hidden="true">⚠' in row
    assert "overdue by" not in html.split(f'data-post-id="{fresh}"')[1].split("</tr>")[0]
    hooli = alice.get("/api/queue?brand=hooli").get_json()["rows"]
    assert [(r["post_id"], r["overdue_by_s"]) for r in hooli] == [(other, None)]  # 4 h target
    assert change(alice, csrf_of(alice), waited, status="replied").status_code == 303
    answered = alice.get("/api/queue?brand=initech&status=all").get_json()["rows"]
    assert [(r["post_id"], r["overdue_by_s"]) for r in answered] == [(fresh, None),
                                                                      (waited, None)]
    stale = add_post(team.path, "stale", hours_ago=24 * 8, followers=100_000)
    rows = alice.get("/api/queue?brand=initech").get_json()["rows"]
    assert [r["post_id"] for r in rows][-1] == stale  # a week unanswered: it sinks
    assert "stale: unanswered for over 7 d" in alice.get(
        "/queue?brand=initech").get_data(as_text=True)


def test_the_refresh_endpoint_counts_arrivals_for_the_current_filters(team: Team) -> None:
    alice, token = team.client("alice")
    html = alice.get("/queue?brand=initech").get_data(as_text=True)
    since = int(re.search(r'data-since="(\d+)"', html).group(1))  # type: ignore[union-attr]
    url = re.search(r'data-version-url="([^"]+)"', html).group(1).replace(  # type: ignore[union-attr]
        "&amp;", "&")
    assert f"since={since}" in url and "brand=initech" in url
    quiet = alice.get(url).get_json()
    assert quiet["arrived"] == 0 and quiet["newest_id"] == since and quiet["total"] == 0
    arrived = add_post(team.path, "late", hours_ago=30)  # written yesterday, stored now
    add_post(team.path, "elsewhere", brand="hooli")
    add_post(team.path, "happy", sentiment="positive", urgency=0.1)  # not queue work
    now = alice.get(url).get_json()
    assert (now["arrived"], now["newest_id"], now["total"]) == (1, arrived, 1)
    assert alice.get(f"/api/queue/version?since={since}").get_json()["arrived"] == 2
    mine = f"/api/queue/version?status=mine&since={since}"
    assert alice.get(mine).get_json()["arrived"] == 0
    assert change(alice, token, arrived, assignee="me").status_code == 303
    assert alice.get(mine).get_json()["arrived"] == 1
    for bad in ("since=-1", "since=abc", "since=12345678901234567890"):
        response = alice.get(f"/api/queue/version?{bad}")
        assert response.status_code == 400 and "'since'" in response.get_json()["error"]


def test_the_page_works_without_javascript(team: Team) -> None:
    """Select all is a link, every control a form with the CSRF token and a way back."""
    alice, _ = team.client("alice")
    html = alice.get("/queue?brand=globex").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" id="select-all-link"', html)
    assert link and "select=all" in link.group(1)
    ticked = alice.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    boxes = re.findall(r'<input type="checkbox" name="post_id" value="\d+" form="bulk"[^>]*>',
                       ticked)
    assert boxes and all("checked" in b for b in boxes)
    forms = re.findall(r'<form method="post" action="(/queue/[a-z]+)"', html)
    assert set(forms) == {"/queue/change"} and len(forms) > 50
    assert html.count('name="csrf"') >= len(forms)
    assert '<script src="/static/queue.js" defer></script>' in html
    assert "<script>" not in html.split("<main>")[1]  # nothing inline: the CSP forbids it
