"""The plumbing every source's cursor is made of (:mod:`listener.sources.cursor`), on plain values.

The sources' own suites (tests/listener/test_*_source.py) show it at work end to end; here each
rule is pinned down once: the seen list's bound, order, dedupe and JSON, and how a stored cursor
that is missing, foreign or partly malformed is read.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from listener.sources import reviews
from listener.sources.cursor import MAX_SEEN, CursorLayout, SeenIds
from listener.sources.reddit import items as reddit_items

LOG = logging.getLogger("tests.sources.cursor")
LAYOUT = CursorLayout(
    version=1, section="things", log=LOG,
    not_understood="source %s: cursor not understood; starting over",
    bad_entry="source %s: bad cursor entry for %s; starting it over",
)


def number_or_none(value: Any) -> int | None:
    """A tiny entry parser: an entry is an int, anything else is malformed."""
    return value if type(value) is int else None


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


# -- SeenIds --------------------------------------------------------------------------------


def test_merged_puts_newer_ids_in_front_each_once() -> None:
    seen = SeenIds(["3", "2", "1"])
    assert list(seen.merged(["5", "4", "3"])) == ["5", "4", "3", "2", "1"]
    assert list(seen.merged(["4", "4", "2"])) == ["4", "2", "3", "1"]  # repeats: first wins


def test_merged_keeps_the_newest_up_to_the_limit() -> None:
    seen = SeenIds(str(n) for n in range(10, 0, -1))
    assert list(seen.merged(["12", "11"], limit=4)) == ["12", "11", "10", "9"]
    assert len(SeenIds().merged(str(n) for n in range(MAX_SEEN + 50))) == MAX_SEEN
    assert MAX_SEEN == 1000  # what the Hacker News and RSS cursors have always kept


def test_merged_leaves_the_original_alone() -> None:
    seen = SeenIds(["1"])
    newer = seen.merged(["2"])
    assert list(seen) == ["1"] and list(newer) == ["2", "1"]
    assert newer != seen and newer == SeenIds(["2", "1"])


def test_membership_and_size() -> None:
    seen = SeenIds(["b", "a"])
    assert "a" in seen and "b" in seen and "c" not in seen and 1 not in seen
    assert len(seen) == 2 and len(SeenIds()) == 0 and "a" not in SeenIds()


def test_json_round_trip_is_a_plain_list_of_strings() -> None:
    seen = SeenIds(["40211234", "40211233"])
    assert seen.to_json() == ["40211234", "40211233"]
    assert json.dumps({"seen": seen.to_json()}) == '{"seen": ["40211234", "40211233"]}'
    assert SeenIds.from_json(json.loads(json.dumps(seen.to_json()))) == seen
    assert SeenIds.from_loose_json(seen.to_json()) == seen


def test_a_stored_list_is_kept_as_stored() -> None:
    """Neither reading reorders or dedupes: a saved cursor is written back byte for byte."""
    stored = ["2", "1", "2"]
    for read in (SeenIds.from_json, SeenIds.from_loose_json):
        seen = read(stored)
        assert seen is not None and seen.to_json() == stored


@pytest.mark.parametrize("value", [None, "12", {"a": 1}, 12, ["1", 2], ["1", None]])
def test_strict_reading_refuses_anything_but_a_list_of_strings(value: Any) -> None:
    assert SeenIds.from_json(value) is None


def test_loose_reading_takes_any_list_as_strings_and_bounds_it() -> None:
    assert SeenIds.from_loose_json([40211234, "x", None]) == SeenIds(["40211234", "x", "None"])
    assert list(SeenIds.from_loose_json(list(range(5)), limit=2) or []) == ["0", "1"]
    assert len(SeenIds.from_loose_json(list(range(MAX_SEEN + 1))) or []) == MAX_SEEN
    for value in (None, "12", {"a": 1}, 12):
        assert SeenIds.from_loose_json(value) is None


# -- CursorLayout ---------------------------------------------------------------------------


def test_no_cursor_yet_is_empty_and_quiet(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        assert LAYOUT.load(None, "src", number_or_none) == {}
        assert LAYOUT.entries(None, "src") == {}
    assert warnings(caplog) == []


@pytest.mark.parametrize("cursor", [
    ["not", "a", "cursor"],
    "text",
    {},
    {"version": 2, "things": {"a": 1}},  # another version
    {"things": {"a": 1}},  # no version
    {"version": 1, "queries": {"a": 1}},  # another source's section
    {"version": 1, "things": ["a", 1]},  # the section is not a map
])
def test_a_foreign_cursor_is_read_as_empty_with_one_warning(
    cursor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert LAYOUT.load(cursor, "src", number_or_none) == {}
    assert warnings(caplog) == ["source src: cursor not understood; starting over"]


def test_a_bad_entry_is_dropped_with_a_warning_the_others_are_kept(
    caplog: pytest.LogCaptureFixture
) -> None:
    cursor = {"version": 1, "things": {"a": 1, "b": "two", "c": 3}}
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        loaded = LAYOUT.load(cursor, "src", number_or_none)
    assert loaded == {"a": 1, "c": 3} and list(loaded) == ["a", "c"]  # stored order
    assert warnings(caplog) == ["source src: bad cursor entry for b; starting it over"]


def test_keys_read_only_those_in_their_order_named_as_given(
    caplog: pytest.LogCaptureFixture
) -> None:
    cursor = {"version": 1, "things": {"gone": "bad", "k1": 1, "k2": "bad", "k3": 3}}
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        loaded = LAYOUT.load(cursor, "src", number_or_none,
                             {"k3": "third", "k2": "second", "k1": "first", "new": "fourth"})
    assert list(loaded.items()) == [("k3", 3), ("k1", 1)]
    # an entry no longer configured is dropped without a word, even when malformed
    assert warnings(caplog) == ["source src: bad cursor entry for second; starting it over"]


def test_entries_are_the_stored_section_unchecked() -> None:
    section = {"a": "anything", "b": [1]}
    assert LAYOUT.entries({"version": 1, "things": section}, "src") == section


def test_dump_is_the_layout_load_reads_byte_for_byte() -> None:
    dumped = LAYOUT.dump({"b": 2, "a": 1})
    assert json.dumps(dumped) == '{"version": 1, "things": {"b": 2, "a": 1}}'
    assert LAYOUT.load(json.loads(json.dumps(dumped)), "src", number_or_none) == {"b": 2, "a": 1}


# -- the sources' use of it, on stored values they already had to handle ----------------------


def test_review_cursor_round_trips_and_refuses_a_seen_list_with_numbers(
    caplog: pytest.LogCaptureFixture
) -> None:
    at = datetime(2024, 5, 1, 9, tzinfo=UTC)
    mark = reviews.Watermark(at, "1107", SeenIds(["1107", "1106"]))
    stored = json.loads(json.dumps(reviews.dump_marks({"us:1": mark})))
    assert stored == {"version": 1, "apps": {"us:1": {
        "newest_at": "2024-05-01T09:00:00Z", "newest_id": "1107", "seen": ["1107", "1106"]}}}
    assert reviews.load_marks(stored, "ios") == {"us:1": mark}
    stored["apps"]["us:2"] = {"newest_at": None, "newest_id": None, "seen": [1106]}
    with caplog.at_level(logging.WARNING, logger="listener.sources.reviews"):
        assert list(reviews.load_marks(stored, "ios")) == ["us:1"]
    assert "source ios: bad cursor entry for us:2; reading it again" in caplog.text


def test_review_mark_advances_newest_first_within_its_limit() -> None:
    at = datetime(2024, 5, 1, 9, tzinfo=UTC)
    mark = reviews.Watermark(at, "2", SeenIds(["2", "1"]))
    later = datetime(2024, 5, 2, tzinfo=UTC)
    moved = mark.advanced([("4", later), ("3", at), ("2", at)], limit=3)
    assert (moved.newest_id, list(moved.seen)) == ("4", ["4", "3", "2"])
    assert moved.knows("3") and not moved.knows("1") and mark.knows("1")


def test_reddit_cursor_refuses_a_seen_list_that_is_not_strings(
    caplog: pytest.LogCaptureFixture
) -> None:
    good = {"scope": "/search?q=acme", "newest": "t3_b", "created_utc": 10, "seen": ["t3_b"]}
    empty = {**good, "seen": []}  # an empty list is a list: nothing seen near the mark yet
    bad = {**good, "seen": "t3_b"}
    cursor = {"version": 1, "streams": {"good": good, "empty": empty, "bad": bad}}
    with caplog.at_level(logging.WARNING, logger="listener.sources.reddit.items"):
        states = reddit_items.load_cursor(cursor, "r")
    assert list(states) == ["good", "empty"] and list(states["good"].mark.seen) == ["t3_b"]
    assert [r.getMessage() for r in caplog.records] == [
        "source 'r': bad cursor entry for bad; it starts afresh"]
    dumped = reddit_items.dump_cursor(states, ["good", "empty"])
    assert dumped == {"version": 1, "streams": {"good": {**good, "created_utc": 10.0},
                                                "empty": {**empty, "created_utc": 10.0}}}
