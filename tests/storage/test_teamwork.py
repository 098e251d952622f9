"""storage.teamwork on both engines (issue 18): a post's handling, response times with the
overview's brand filter (the same numbers as storage.inbox without it), overdue posts per brand,
forgetting an undone first response, the approvals count and post excerpts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import inbox, replies, teamwork, triage
from storage.engine import Db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NEGATIVE = Score("negative", 0.9, 0.05, 0.05, 0.8, "default", "v1")


def posts(db: Db, *specs: tuple[str, timedelta]) -> list[int]:
    """Negative posts (so in the queue) of (brand, age), oldest first; their ids."""
    page = [Post(platform="x", platform_id=f"t{i}", text=f"broken again {i}",
                 created_at=NOW - age, source="x-main", brand=brand, author=f"u{i}",
                 url=f"https://x.example/{i}") for i, (brand, age) in enumerate(specs)]
    store.store_page(db, "x-main", Page(posts=page), NOW)
    ids = {r["platform_id"]: r["id"] for r in db.query("SELECT id, platform_id FROM posts")}
    store.save_scores(db, [(ids[p.platform_id], NEGATIVE, "en") for p in page], NOW)
    return [int(ids[p.platform_id]) for p in page]


def answer(db: Db, post_id: int, by: str, after: timedelta, resolved: timedelta | None = None,
           *, created: datetime) -> None:
    triage.set_status(db, post_id, "replied", by, created + after)
    if resolved is not None:
        triage.set_status(db, post_id, "handled", by, created + resolved)


def test_handling_is_new_until_someone_touches_the_post(any_db: Db) -> None:
    [post] = posts(any_db, ("acme", timedelta(hours=3)))
    assert teamwork.handling(any_db, post) == teamwork.Handling("new", None, None, None, None,
                                                                None)
    inbox.assign(any_db, post, "alice", "root", NOW)
    triage.set_status(any_db, post, "handled", "alice", NOW + timedelta(minutes=5))
    state = teamwork.handling(any_db, post)
    assert (state.status, state.assignee, state.by) == ("handled", "alice", "alice")
    assert state.first_response_at == state.resolved_at == "2026-11-20T12:05:00Z"


def test_response_times_per_brand_and_agent_match_storage_inbox(any_db: Db) -> None:
    ids = posts(any_db, ("acme", timedelta(hours=10)), ("acme", timedelta(hours=9)),
                ("acme", timedelta(hours=8)), ("globex", timedelta(hours=7)),
                ("globex", timedelta(hours=6)))
    created = [NOW - timedelta(hours=h) for h in (10, 9, 8, 7, 6)]
    answer(any_db, ids[0], "alice", timedelta(minutes=30), timedelta(hours=2), created=created[0])
    answer(any_db, ids[1], "alice", timedelta(minutes=60), created=created[1])
    answer(any_db, ids[2], "bob", timedelta(minutes=90), timedelta(hours=3), created=created[2])
    inbox.assign(any_db, ids[3], "bob", "root", created[3])
    answer(any_db, ids[3], "alice", timedelta(hours=4), created=created[3])  # bob has it
    # ids[4] never answered: counts nowhere
    start, end = NOW - timedelta(days=1), NOW
    for by in teamwork.GROUPS:
        assert teamwork.response_times(any_db, start, end, by) == inbox.response_times(
            any_db, start, end, by)
    brands = {r.key: r for r in teamwork.response_times(any_db, start, end, "brand")}
    assert (brands["acme"].answered, brands["acme"].first_response_median,
            brands["acme"].first_response_p90) == (3, 3600.0, 5400.0)
    assert (brands["acme"].resolved, brands["acme"].resolution_median,
            brands["acme"].resolution_p90) == (2, 9000.0, 10800.0)
    assert (brands["globex"].answered, brands["globex"].resolved,
            brands["globex"].resolution_median) == (1, 0, None)
    agents = {r.key: (r.answered, r.first_response_median)
              for r in teamwork.response_times(any_db, start, end, "agent")}
    assert agents == {"alice": (2, 2700.0), "bob": (2, 9900.0)}  # bob: 90 min and 4 h
    only_acme = teamwork.response_times(any_db, start, end, "agent", brand="acme")
    assert {r.key: r.answered for r in only_acme} == {"alice": 2, "bob": 1}
    assert [r.key for r in teamwork.response_times(any_db, start, end, "brand", "globex")
            ] == ["globex"]
    assert teamwork.response_times(any_db, NOW, NOW + timedelta(days=1), "brand") == []
    with pytest.raises(ValueError, match="by must be one of"):
        teamwork.response_times(any_db, start, end, "source")


def test_p90_is_an_observed_value() -> None:
    assert teamwork.p90([]) is None
    assert teamwork.p90([5.0]) == 5.0
    assert teamwork.p90([float(v) for v in range(1, 11)]) == 10.0
    assert teamwork.p90([float(v) for v in range(1, 21)]) == 19.0


def test_overdue_posts_count_unanswered_queue_posts_past_their_brands_target(any_db: Db
                                                                             ) -> None:
    ids = posts(any_db, ("acme", timedelta(minutes=30)), ("acme", timedelta(hours=2)),
                ("acme", timedelta(hours=5)), ("acme", timedelta(days=9)),
                ("globex", timedelta(hours=2)), ("globex", timedelta(hours=5)),
                ("globex", timedelta(hours=6)))
    inbox.assign(any_db, ids[2], "alice", "root", NOW)  # assigned: still unanswered
    triage.set_status(any_db, ids[6], "replied", "bob", NOW)  # answered: not overdue
    counts = teamwork.overdue_posts(any_db, NOW, ["acme", "globex", "initech"],
                                    timedelta(hours=4), {"acme": timedelta(hours=1)},
                                    timedelta(days=7))
    # acme (1 h target): 2 h and 5 h, not 30 min, not the 9-day-old stale one;
    # globex (4 h): the 5 h one; initech has no posts but is listed
    assert counts == {"acme": 2, "globex": 1, "initech": 0}


def test_an_undone_first_response_is_forgotten_only_while_unanswered(any_db: Db) -> None:
    first, second = posts(any_db, ("acme", timedelta(hours=2)), ("acme", timedelta(hours=2)))
    triage.set_status(any_db, first, "handled", "alice", NOW)
    window = (NOW - timedelta(seconds=1), NOW)
    assert not teamwork.forget_first_response(any_db, first, *window)  # answered: kept
    inbox.restore(any_db, first, inbox.Holder("new", None), "alice", NOW)
    assert teamwork.forget_first_response(any_db, first, *window)
    assert teamwork.handling(any_db, first).first_response_at is None
    triage.set_status(any_db, second, "replied", "alice", NOW - timedelta(minutes=30))
    triage.set_status(any_db, second, "new", "alice", NOW)  # reopened: answered before
    assert not teamwork.forget_first_response(any_db, second, *window)
    assert teamwork.handling(any_db, second).first_response_at == "2026-11-20T11:30:00Z"


def test_awaiting_count_and_excerpts(any_db: Db) -> None:
    first, second = posts(any_db, ("acme", timedelta(hours=1)), ("globex", timedelta(hours=1)))
    any_db.execute("UPDATE posts SET text = ? WHERE id = ?", ["x" * 400, second])
    assert teamwork.awaiting_count(any_db) == 0
    for text in ("one", "two"):
        replies.create(any_db, first, "acme-x", "x", "alice", text, NOW, needs_approval=True)
    replies.create(any_db, first, "acme-x", "x", "alice", "three", NOW, needs_approval=False)
    assert teamwork.awaiting_count(any_db) == 2
    found = teamwork.excerpts(any_db, [first, second, second, 999_999])
    assert sorted(found) == [first, second]
    assert found[first].text == "broken again 0" and found[first].author == "u0"
    assert len(found[second].text) == 280 and found[second].text.endswith("…")
    assert teamwork.excerpts(any_db, []) == {}
