"""Issue 14, item 1: every post is storable as built, whichever source built it.

``Post`` repairs at construction what storage could not take as given (lone surrogates in any
text field or in raw's strings and keys, counts beyond SQLite's INTEGER, ratings outside 0-5,
dates at the calendar's edges), and ``store_page`` writes them to a real database and reads
them back — on both engines (``any_db``). Before the fix each of these raised inside
``store_page`` and failed the whole page.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from listener.core.models import Page, Post, Rejected, to_iso
from storage import db as store
from storage.engine import Db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LONE = "\udc80"  # what surrogateescape makes of an undecodable byte; a lone low surrogate
BAD = f"a{LONE}b"
FIXED = "a\ufffdb"
INT_MAX = 2**63 - 1


def make(**fields: Any) -> Post:
    values: dict[str, Any] = {"platform": "x", "platform_id": "1", "text": "hello",
                              "created_at": NOW, "source": "src"}
    return Post(**{**values, **fields})


def round_trip(db: Db, post: Post) -> tuple[dict[str, Any], Post]:
    """Store the post, then read its row and the Post the later stages rebuild from it."""
    assert store.store_page(db, "src", Page(posts=[post], cursor={"at": 1}), NOW) == 1
    row = dict(next(db.query("SELECT * FROM posts")))
    return row, store.post_from_row(row)


def test_lone_surrogates_in_every_text_field_become_replacement_characters(any_db: Db) -> None:
    db = any_db
    post = make(platform=BAD, platform_id=BAD, text=f"{BAD} a text long enough to be hashed",
                source=BAD, url=f"https://e.example/{BAD}", author=BAD, lang=BAD, kind=BAD,
                brand=BAD, thread=BAD, also_brands=(BAD, "other"),
                raw={BAD: [BAD, {"k": BAD}], "n": 1})
    row, back = round_trip(db, post)
    for column in ("platform", "platform_id", "source", "author", "lang", "kind", "brand",
                   "thread"):
        assert row[column] == FIXED, column
    assert row["text"].startswith(FIXED) and row["url"].endswith(FIXED)
    assert row["text_hash"] is not None
    assert json.loads(row["raw"]) == {FIXED: [FIXED, {"k": FIXED}], "n": 1}
    assert back.also_brands == () and post.also_brands == (FIXED, "other")
    assert store.load_cursor(db, "src") == {"at": 1}


def test_a_surrogate_pair_is_joined_into_its_character() -> None:
    assert make(text="smile \ud83d\ude00").text == "smile \U0001f600"


@pytest.mark.parametrize(("given", "kept"), [
    (10**400, INT_MAX), (2**63, INT_MAX), (1e308, INT_MAX), (INT_MAX, INT_MAX), (0, 0),
    (12.0, 12), (-5, None), (math.nan, None), (math.inf, None), (True, None), ("77", 77),
    ("9" * 5000, INT_MAX), ("many", None),
])
def test_follower_counts_fit_sqlite_integer(any_db: Db, given: Any, kept: int | None) -> None:
    db = any_db
    row, back = round_trip(db, make(author_followers=given))
    assert row["author_followers"] == kept and back.author_followers == kept


@pytest.mark.parametrize(("given", "kept"), [
    (4, 4.0), (0, 0.0), (5.0, 5.0), (5.5, None), (-1, None), (math.nan, None),
    (math.inf, None), (10**400, None), (False, None),
])
def test_a_rating_outside_zero_to_five_is_no_rating(any_db: Db, given: Any,
                                                   kept: float | None) -> None:
    db = any_db
    row, back = round_trip(db, make(rating=given, kind="review"))
    assert row["rating"] == kept and back.rating == kept


@pytest.mark.parametrize(("given", "iso"), [
    (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
    (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=3))), "0001-01-01T00:00:00Z"),
    (datetime(999, 5, 6, 7, 8, 9), "0999-05-06T07:08:09Z"),  # naive: taken as UTC
    (datetime.max.replace(tzinfo=timezone(timedelta(hours=-3))), "9999-12-31T23:59:59Z"),
])
def test_dates_at_the_calendar_edges_stay_valid_iso(any_db: Db, given: datetime,
                                                   iso: str) -> None:
    db = any_db
    # before: strftime wrote year 1 as "1-01-01T…", which sorts wrong and never parses back
    row, back = round_trip(db, make(created_at=given))
    assert row["created_at"] == iso and to_iso(back.created_at) == iso


def test_rejects_with_surrogates_in_location_and_reason_are_stored(any_db: Db) -> None:
    db = any_db
    # a file name with an undecodable byte (surrogateescape) and a reason quoting the record
    page = Page(posts=[make()], cursor={"at": 2},
                rejected=[Rejected(f"caf{LONE}.jsonl:3", f"bad 'kind': {BAD}")])
    assert store.store_page(db, "src", page, NOW) == 1
    [reject] = db.query("SELECT location, reason FROM rejects")
    assert reject == {"location": "caf\ufffd.jsonl:3", "reason": f"bad 'kind': {FIXED}"}


def test_a_post_whose_values_cannot_be_computed_is_rejected_alone(any_db: Db) -> None:
    db = any_db
    broken = make(platform_id="2", created_at="yesterday")  # not a datetime: to_iso fails
    page = Page(posts=[make(), broken, make(platform_id="3")], cursor={"at": 3})
    assert store.store_page(db, "src", page, NOW) == 2
    [reject] = db.query("SELECT location, reason FROM rejects")
    assert reject["location"] == "x:2" and "cannot be stored" in reject["reason"]
    assert store.load_cursor(db, "src") == {"at": 3}


@pytest.mark.parametrize(("a", "b", "same"), [
    ("Our app is down again since this morning https://t.co/abc", "our APP is down again"
     "   since this morning https://t.co/xyz", True),  # links, case and spacing aside
    ("Our app is down again since this morning www.acme.com/s", "Our app is down again since"
     " this morning", True),
    ("Our app is down again since this morning ftp://x", "Our app is down again since this"
     " morning", False),  # not a link the pattern knows: part of the text
    ("Our app is down again since this morning HTTP://X.Y", "Our app is down again since"
     " this morning", False),  # the pattern is lower-case: kept as the old hash kept it
])
def test_the_cross_post_hash_ignores_links_case_and_spacing(a: str, b: str, same: bool) -> None:
    """storage.db.text_hash skips the links' pattern where no link can be: the same hashes."""
    assert (store.text_hash(a) == store.text_hash(b)) is same
    assert store.text_hash("short text https://x.y") is None
