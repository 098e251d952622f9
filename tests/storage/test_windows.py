"""What happened to a brand's posts in a time window (storage/windows.py), on both engines
(``any_db``: an SQLite file, a PostgreSQL database): spike series, a digest's brand figures and
an incident's background texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Score
from storage import db as store
from storage.engine import Db
from storage.windows import (
    HourBucket,
    PostText,
    SeriesCount,
    brand_has_posts,
    brand_hours,
    brand_texts,
    brand_top_help,
    brand_top_negative,
    first_brand_texts,
    series_counts,
    series_examples,
    series_texts,
)

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = END - timedelta(hours=3)


def _score(sentiment: str, p_negative: float, urgency: float, version: str = "v1") -> Score:
    return Score(sentiment, p_negative, 0.0, 1 - p_negative, urgency, "m", version)


NEG = _score("negative", 0.9, 0.2)
POS = _score("positive", 0.1, 0.0)


def _post(pid: str, minutes_before_end: float, text: str = "", **fields: object) -> Post:
    return Post("x", pid, text or f"post {pid}", END - timedelta(minutes=minutes_before_end),
                **fields)  # type: ignore[arg-type]


def _stored(db: Db, *posts: Post, source: str = "src") -> dict[str, int]:
    """Store ``posts``; their ids by platform id."""
    store.store_page(db, source, Page(posts=list(posts)), END)
    return {r["platform_id"]: r["id"] for r in db.query("SELECT id, platform_id FROM posts")}


def _scored(db: Db, ids: dict[str, int], scores: dict[str, Score]) -> None:
    store.save_scores(db, [(ids[k], s, None) for k, s in scores.items()], END)


# -- spike series ---------------------------------------------------------------------------


def test_series_counts_hours_back_from_the_end_per_brand_and_source(any_db: Db) -> None:
    ids = _stored(
        any_db,
        _post("1", 10, brand="acme", source="reddit"),  # hour 0 (the window)
        _post("2", 20, brand="acme", source="reddit", also_brands=("globex",)),  # both brands
        _post("3", 70, brand="acme", source="hn"),  # hour 1, another source
        _post("4", 130, brand=None, source="hn"),  # hour 2, no brand
        _post("5", 200, brand="acme", source="reddit"),  # before the range
    )
    _scored(any_db, ids, {"1": NEG, "2": POS, "3": NEG})
    _scored(any_db, ids, {"1": _score("positive", 0.1, 0.0, "v2")})  # the newest score counts

    got = sorted(series_counts(any_db, START, END),
                 key=lambda c: (c.brand or "", c.source or "", c.hour))
    assert got == [
        SeriesCount(None, "hn", 2, posts=1, scored=0, negative=0),
        SeriesCount("acme", "hn", 1, posts=1, scored=1, negative=1),
        SeriesCount("acme", "reddit", 0, posts=2, scored=2, negative=0),
        SeriesCount("globex", "reddit", 0, posts=1, scored=1, negative=0),
    ]


def test_the_series_cuts_hours_at_the_same_seconds_on_both_engines(any_db: Db) -> None:
    """The series query's hour arithmetic (seconds since the epoch, integer division) and its
    counted comparison, on posts at the edges of its hours: exactly these cells on SQLite and on
    PostgreSQL, in (brand, source, hour) order, posts without a brand first."""
    def at(seconds_before_end: int, pid: str, **fields: object) -> Post:
        return Post("x", pid, f"post {pid}", END - timedelta(seconds=seconds_before_end),
                    **fields)  # type: ignore[arg-type]

    down = "the checkout page is down again, since noon"
    ids = _stored(
        any_db,
        at(1, "a", brand="acme", source="reddit"),  # the window's last second: hour 0
        at(3600, "b", brand="acme", source="reddit"),  # its first second: hour 0
        at(3601, "c", brand="acme", source="reddit"),  # the last second of hour 1
        at(3 * 3600, "d", brand="acme", source="hn", also_brands=("globex",)),  # START: hour 2
        at(3 * 3600 + 1, "e", brand="acme", source="reddit"),  # before the range
        at(0, "f", brand="acme", source="reddit"),  # at the end: the next window's
        at(7200, "g", source="reddit"),  # no brand: hour 1
        at(7201, "h", brand="acme", source="reddit"),  # hour 2, re-scored positive
        Post("x", "i", down, END - timedelta(minutes=30), brand="acme", source="reddit",
             author="ann"),  # hour 0
        Post("x", "j", down, END - timedelta(minutes=25), brand="acme", source="reddit",
             author="ann"),  # a cross-post of i: not counted
    )
    _scored(any_db, ids, {"a": NEG, "b": POS, "d": NEG, "g": NEG, "h": NEG, "j": NEG})
    _scored(any_db, ids, {"h": _score("positive", 0.1, 0.0, "v2")})

    assert series_counts(any_db, START, END) == [
        SeriesCount(None, "reddit", 1, posts=1, scored=1, negative=1),
        SeriesCount("acme", "hn", 2, posts=1, scored=1, negative=1),
        SeriesCount("acme", "reddit", 0, posts=3, scored=2, negative=1),
        SeriesCount("acme", "reddit", 1, posts=1, scored=0, negative=0),
        SeriesCount("acme", "reddit", 2, posts=1, scored=1, negative=0),
        SeriesCount("globex", "hn", 2, posts=1, scored=1, negative=1),
    ]


def test_a_cross_post_counts_once_in_a_series(any_db: Db) -> None:
    text = "the checkout page has been down for an hour now"
    _stored(any_db, _post("1", 30, text, brand="acme", author="ann"),
            _post("2", 20, text, brand="acme", author="Ann"))  # same author, same text
    assert series_counts(any_db, START, END) == [SeriesCount("acme", "src", 0, 1, 0, 0)]


def test_series_texts_keep_to_the_series_newest_first_within_the_limit(any_db: Db) -> None:
    _stored(
        any_db,
        _post("1", 50, "acme one", brand="acme", source="reddit"),
        _post("2", 40, "acme two", brand="acme", source="hn"),
        _post("3", 30, "globex also acme", brand="globex", also_brands=("acme",),
              source="reddit"),
        _post("4", 20, "no brand", source="reddit"),
        _post("5", 200, "too old", brand="acme", source="reddit"),
        _post("6", 0, "at the end: next window", brand="acme", source="reddit"),
    )
    assert series_texts(any_db, "acme", None, START, END, 10) == [
        "globex also acme", "acme two", "acme one"]
    assert series_texts(any_db, "acme", "reddit", START, END, 10) == [
        "globex also acme", "acme one"]
    assert series_texts(any_db, "acme", None, START, END, 2) == ["globex also acme", "acme two"]
    # no brand: the brand-less posts
    assert series_texts(any_db, None, None, START, END, 10) == ["no brand"]


def test_series_examples_are_scored_posts_most_negative_and_urgent_first(any_db: Db) -> None:
    ids = _stored(any_db, *(_post(str(i), 10 * i, brand="acme") for i in range(1, 6)))
    _scored(any_db, ids, {"1": _score("negative", 0.6, 0.1), "2": _score("negative", 0.6, 0.3),
                          "3": POS, "4": _score("negative", 0.9, 0.9)})  # 5 is not scored
    assert series_examples(any_db, "acme", None, START, END, 10) == [ids[k] for k in "4213"]
    assert series_examples(any_db, "acme", None, START, END, 2) == [ids["4"], ids["2"]]
    assert series_examples(any_db, "globex", None, START, END, 10) == []


# -- a digest's brand -----------------------------------------------------------------------


def test_brand_hours_count_posts_per_hour_sentiment_and_source(any_db: Db) -> None:
    ids = _stored(
        any_db,
        _post("1", 170, brand="acme", source="reddit"),  # hour 0 since START
        _post("2", 160, brand="acme", source="reddit"),
        _post("3", 100, brand="globex", also_brands=("acme",), source="hn"),  # hour 1
        _post("4", 10, brand="globex", source="hn"),
    )
    _scored(any_db, ids, {"1": _score("negative", 0.9, 0.7), "2": NEG, "3": POS,
                          "4": _score("negative", 0.9, 0.9)})
    got = sorted(brand_hours(any_db, "acme", START, END, 0.5), key=lambda b: (b.hour, b.sentiment))
    assert got == [HourBucket(0, "negative", "reddit", posts=2, help=1),
                   HourBucket(1, "positive", "hn", posts=1, help=0)]
    every = brand_hours(any_db, None, START, END, 0.5)  # no brand: every post
    assert sum(b.posts for b in every) == 4 and sum(b.help for b in every) == 2
    assert {b.sentiment for b in brand_hours(any_db, "globex", START, END, 0.5)} == {
        "positive", "negative"}


def test_brand_hours_cut_hours_at_the_same_seconds_on_both_engines(any_db: Db) -> None:
    """A digest's buckets (hours since the period start, in integer seconds; "needs a reply"
    counted by a comparison with the threshold, which is inclusive) on posts at the edges of
    the hours: exactly these buckets on SQLite and on PostgreSQL, in (hour, sentiment, source)
    order."""
    def at(seconds_after_start: int, pid: str, **fields: object) -> Post:
        return Post("x", pid, f"post {pid}", START + timedelta(seconds=seconds_after_start),
                    **fields)  # type: ignore[arg-type]

    refund = "charged twice for one order, refund please"
    ids = _stored(
        any_db,
        at(0, "a", brand="acme", source="reddit"),  # the period's first second: hour 0
        at(3599, "b", brand="acme", source="reddit"),  # the last second of hour 0
        at(3600, "c", brand="globex", also_brands=("acme",), source="hn"),  # hour 1
        at(3 * 3600 - 1, "d", brand="acme", source="reddit"),  # the last second: hour 2
        at(3 * 3600, "e", brand="acme", source="reddit"),  # at the end: not in the period
        at(-1, "f", brand="acme", source="reddit"),  # before it
        at(3 * 3600 - 1, "g", brand="globex", source="hn"),  # another brand's
        Post("x", "h", refund, START + timedelta(minutes=90), brand="acme", source="reddit",
             author="ann"),  # hour 1
        Post("x", "i", refund, START + timedelta(minutes=100), brand="acme", source="reddit",
             author="ann"),  # a cross-post of h: not counted
    )
    _scored(any_db, ids, {"a": _score("negative", 0.9, 0.5),  # exactly the threshold: help
                          "b": _score("negative", 0.9, 0.49), "c": POS,
                          "g": _score("neutral", 0.3, 0.9), "h": _score("negative", 0.8, 0.8),
                          "i": _score("negative", 0.8, 0.8)})  # d is not scored

    assert brand_hours(any_db, "acme", START, END, 0.5) == [
        HourBucket(0, "negative", "reddit", posts=2, help=1),
        HourBucket(1, "negative", "reddit", posts=1, help=1),
        HourBucket(1, "positive", "hn", posts=1, help=0),
        HourBucket(2, "unscored", "reddit", posts=1, help=0),
    ]
    assert brand_hours(any_db, None, START, END, 0.5) == [  # every post
        HourBucket(0, "negative", "reddit", posts=2, help=1),
        HourBucket(1, "negative", "reddit", posts=1, help=1),
        HourBucket(1, "positive", "hn", posts=1, help=0),
        HourBucket(2, "neutral", "hn", posts=1, help=1),
        HourBucket(2, "unscored", "reddit", posts=1, help=0),
    ]


def test_an_unscored_post_counts_as_unscored(any_db: Db) -> None:
    _stored(any_db, _post("1", 10, brand="acme"))
    assert brand_hours(any_db, "acme", START, END, 0.5) == [HourBucket(2, "unscored", "src", 1, 0)]


def test_brand_has_posts_probes_the_same_posts_the_hours_count(any_db: Db) -> None:
    assert not brand_has_posts(any_db, None, START, END)
    _stored(any_db, _post("1", 10, brand="globex", also_brands=("acme",)))
    assert brand_has_posts(any_db, "acme", START, END) and brand_has_posts(any_db, None, START, END)
    assert not brand_has_posts(any_db, "initech", START, END)
    assert not brand_has_posts(any_db, "acme", START - timedelta(hours=1), START)


def test_top_negative_weights_the_probability_by_the_authors_reach(any_db: Db) -> None:
    ids = _stored(
        any_db,
        _post("small", 10, brand="acme", author_followers=10),
        _post("big", 20, brand="acme", author_followers=200_000),
        _post("mid", 30, brand="acme", author_followers=5_000),
        _post("happy", 40, brand="acme", author_followers=1_000_000),
    )
    _scored(any_db, ids, {"small": _score("negative", 0.9, 0.0),
                          "big": _score("negative", 0.5, 0.0),
                          "mid": _score("negative", 0.7, 0.0), "happy": POS})
    # 0.5 × 2.0 = 1.0 > 0.7 × 1.2 = 0.84 < 0.9 × 1.0
    assert brand_top_negative(any_db, "acme", START, END, 5) == [
        ids["big"], ids["small"], ids["mid"]]
    assert brand_top_negative(any_db, "acme", START, END, 1) == [ids["big"]]


def test_top_help_is_the_most_urgent_then_the_widest_reach(any_db: Db) -> None:
    ids = _stored(
        any_db,
        _post("a", 10, brand="acme", author_followers=10),
        _post("b", 20, brand="acme", author_followers=5_000),
        _post("c", 30, brand="acme"),
        _post("calm", 40, brand="acme", author_followers=1_000_000),
    )
    _scored(any_db, ids, {"a": _score("negative", 0.9, 0.8), "b": _score("negative", 0.9, 0.8),
                          "c": _score("neutral", 0.2, 0.95), "calm": _score("neutral", 0.2, 0.4)})
    assert brand_top_help(any_db, "acme", START, END, 0.5, 5) == [ids["c"], ids["b"], ids["a"]]
    assert brand_top_help(any_db, "acme", START, END, 0.9, 5) == [ids["c"]]


def test_brand_texts_say_which_posts_are_negative_newest_first(any_db: Db) -> None:
    ids = _stored(
        any_db,
        _post("1", 30, "charged twice for one order, refund please", brand="acme"),
        _post("2", 20, "love it", brand="acme"),
        _post("3", 10, "not scored yet", brand="acme"),
        _post("4", 5, "no brand at all"),
    )
    _scored(any_db, ids, {"1": NEG, "2": POS})
    assert brand_texts(any_db, "acme", START, END, 10) == [
        PostText("not scored yet", False), PostText("love it", False),
        PostText("charged twice for one order, refund please", True)]
    assert [t.text for t in brand_texts(any_db, None, START, END, 2)] == [
        "no brand at all", "not scored yet"]


# -- an incident's background ---------------------------------------------------------------


def test_first_brand_texts_keep_cross_posts_and_leave_extra_brands_out(any_db: Db) -> None:
    text = "the checkout page has been down for an hour now"
    _stored(
        any_db,
        _post("1", 30, text, brand="acme", author="ann"),
        _post("2", 20, text, brand="acme", author="ann"),  # a cross-post: still read
        _post("3", 10, "globex first", brand="globex", also_brands=("acme",)),
        _post("4", 5, "no brand"),
    )
    assert first_brand_texts(any_db, "acme", START, END) == [text, text]
    assert first_brand_texts(any_db, None, START, END) == ["no brand"]
    assert first_brand_texts(any_db, "acme", START, END - timedelta(minutes=25)) == [text]


def test_texts_of_one_second_come_newest_stored_first(any_db: Db) -> None:
    """Posts written in the same second are read newest stored first, so a limit keeps the
    same posts on both engines."""
    _stored(any_db, *(_post(str(i), 10, f"text {i}", brand="acme") for i in range(1, 4)))
    assert series_texts(any_db, "acme", None, START, END, 2) == ["text 3", "text 2"]
    assert [t.text for t in brand_texts(any_db, "acme", START, END, 2)] == ["text 3", "text 2"]
    assert first_brand_texts(any_db, "acme", START, END) == ["text 3", "text 2", "text 1"]
