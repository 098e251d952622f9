"""storage.audit on both engines: entries stored with the change they describe or not at all,
their details as JSON, read back newest first through the admin's filters and pages, and
streamed oldest first in chunks for the CSV export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from storage import audit, users
from storage.audit import AuditFilter
from storage.engine import Db
from storage.tx import immediate

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def minute(n: int) -> datetime:
    return NOW + timedelta(minutes=n)


def fill(db: Db) -> None:
    """Six entries a minute apart, by three actors, on posts and a user."""
    audit.record(db, "jane", "post.status", minute(0), target="post:1",
                 detail={"from": "new", "to": "handled"}, address="10.0.0.1")
    audit.record(db, "bob", "post.note", minute(1), target="post:2", detail={"chars": 12})
    audit.record(db, "jane", "login.ok", minute(2), address="10.0.0.1")
    audit.record(db, "cli:root", "user.add", minute(3), target="user:bob",
                 detail={"role": "agent"})
    audit.record(db, "jane", "post.status", minute(4), target="post:2",
                 detail={"from": "new", "to": "ignored"})
    audit.record(db, "bob", "posts.export", minute(5))  # 'post.' must not match 'posts.'


def actions_of(found: list[audit.Entry]) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in found]


def test_an_entry_reads_back_as_recorded(any_db: Db) -> None:
    audit.record(any_db, "jane", "post.status", NOW, target="post:7",
                 detail={"from": "new", "to": "handled"}, address="2001:db8::1")
    [entry] = audit.entries(any_db, AuditFilter())
    assert (entry.at, entry.actor, entry.action, entry.target, entry.address) == (
        "2026-11-20T12:00:00Z", "jane", "post.status", "post:7", "2001:db8::1")
    assert entry.detail == {"from": "new", "to": "handled"}
    assert entry.id > 0


def test_an_entry_without_target_detail_or_address_reads_back_empty(any_db: Db) -> None:
    audit.record(any_db, "local", "login.ok", NOW)
    audit.record(any_db, "local", "login.ok", NOW, detail={})
    for entry in audit.entries(any_db, AuditFilter()):
        assert (entry.target, entry.detail, entry.address) == (None, {}, None)
    assert any_db.execute("SELECT count(*) FROM audit_log WHERE detail IS NULL").fetchone()[0] == 2


def test_details_round_trip_as_json_non_ascii_and_nested_included(any_db: Db) -> None:
    detail = {"note": "Café — 日本語 ✓ \"quoted\"\nline", "n": 3, "ok": True, "none": None,
              "tags": ["ä", "b"], "nested": {"x": 1.5}}
    audit.record(any_db, "zoë", "post.note", NOW, target="post:1", detail=detail)
    [entry] = audit.entries(any_db, AuditFilter(actor="zoë"))
    assert entry.detail == detail and entry.actor == "zoë"
    stored = any_db.execute("SELECT detail FROM audit_log").fetchone()[0]
    assert "Café — 日本語" in stored  # stored readable, not \\u-escaped


def test_an_entry_recorded_inside_a_failed_transaction_is_rolled_back_with_it(any_db: Db
                                                                             ) -> None:
    with pytest.raises(RuntimeError, match="the change failed"), immediate(any_db):
        users.add(any_db, "jane", "agent", None, NOW)
        audit.record(any_db, "cli:root", "user.add", NOW, target="user:jane",
                     detail={"role": "agent"})
        raise RuntimeError("the change failed")
    assert users.get(any_db, "jane") is None
    assert audit.entries(any_db, AuditFilter()) == []
    with immediate(any_db):  # and committed together when nothing fails
        users.add(any_db, "jane", "agent", None, NOW)
        audit.record(any_db, "cli:root", "user.add", NOW, target="user:jane")
    assert users.get(any_db, "jane") is not None
    assert actions_of(audit.entries(any_db, AuditFilter())) == [("cli:root", "user.add")]


def test_entries_come_newest_first(any_db: Db) -> None:
    fill(any_db)
    found = audit.entries(any_db, AuditFilter())
    assert [e.at for e in found] == sorted((e.at for e in found), reverse=True)
    assert found[0].action == "posts.export" and found[-1].action == "post.status"


@pytest.mark.parametrize(("wanted", "expected"), [
    (AuditFilter(actor="jane"), [("jane", "post.status"), ("jane", "login.ok"),
                                 ("jane", "post.status")]),
    (AuditFilter(actor="nobody"), []),
    (AuditFilter(action="post.status"), [("jane", "post.status"), ("jane", "post.status")]),
    (AuditFilter(action="post"), []),  # no dot: exact, and no action is called 'post'
    (AuditFilter(action="post."), [("jane", "post.status"), ("bob", "post.note"),
                                   ("jane", "post.status")]),
    (AuditFilter(action="user."), [("cli:root", "user.add")]),
    (AuditFilter(target="post:2"), [("jane", "post.status"), ("bob", "post.note")]),
    (AuditFilter(actor="jane", action="post.", target="post:2"), [("jane", "post.status")]),
])
def test_filters_narrow_by_actor_action_and_target(any_db: Db, wanted: AuditFilter,
                                                   expected: list[tuple[str, str]]) -> None:
    fill(any_db)
    assert actions_of(audit.entries(any_db, wanted)) == expected


def test_since_is_inclusive_and_until_exclusive(any_db: Db) -> None:
    fill(any_db)
    found = audit.entries(any_db, AuditFilter(since=minute(2), until=minute(4)))
    assert [e.at for e in found] == ["2026-11-20T12:03:00Z", "2026-11-20T12:02:00Z"]
    assert len(audit.entries(any_db, AuditFilter(since=minute(5)))) == 1
    assert len(audit.entries(any_db, AuditFilter(until=minute(0)))) == 0
    paris = minute(3).astimezone(ZoneInfo("Europe/Paris"))  # 13:03 there: the same instant
    assert [e.at for e in audit.entries(any_db, AuditFilter(since=paris))] == [
        "2026-11-20T12:05:00Z", "2026-11-20T12:04:00Z", "2026-11-20T12:03:00Z"]


def test_pages_go_back_with_before_id_until_nothing_is_left(any_db: Db) -> None:
    fill(any_db)
    everything = audit.entries(any_db, AuditFilter())
    pages: list[list[audit.Entry]] = []
    before: int | None = None
    while page := audit.entries(any_db, AuditFilter(), limit=4, before_id=before):
        pages.append(page)
        before = page[-1].id
    assert [len(p) for p in pages] == [4, 2]
    assert [e for p in pages for e in p] == everything
    filtered = audit.entries(any_db, AuditFilter(actor="jane"), limit=1,
                             before_id=everything[0].id)
    assert actions_of(filtered) == [("jane", "post.status")] and filtered[0].target == "post:2"


def test_every_entry_streams_all_oldest_first_in_small_chunks(any_db: Db) -> None:
    fill(any_db)
    newest_first = audit.entries(any_db, AuditFilter())
    for chunk in (1, 2, 4, 6, 100):
        assert list(audit.every_entry(any_db, AuditFilter(), chunk=chunk)) == newest_first[::-1]
    jane = list(audit.every_entry(any_db, AuditFilter(actor="jane"), chunk=2))
    assert [e.at for e in jane] == ["2026-11-20T12:00:00Z", "2026-11-20T12:02:00Z",
                                   "2026-11-20T12:04:00Z"]
    assert list(audit.every_entry(any_db, AuditFilter(actor="nobody"), chunk=2)) == []


def test_actions_lists_each_recorded_action_once_in_order(any_db: Db) -> None:
    assert audit.actions(any_db) == []
    fill(any_db)
    assert audit.actions(any_db) == ["login.ok", "post.note", "post.status", "posts.export",
                                     "user.add"]
