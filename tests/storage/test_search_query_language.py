"""Issue 18 #3: the queue's search box speaks the brand query language on both engines.

``storage.search.compile_search`` parses a search with the brand parser and writes it as an
FTS5 expression of quoted words (SQLite) and its tsquery (PostgreSQL). The old queue read FTS5
syntax: ``charged -twice`` was "no such column: twice" straight from SQLite.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from listener.core.models import Page, Post, Score
from listener.core.query import matches, parse
from storage import db as store
from storage import triage
from storage.engine import Db
from storage.search import SearchError, compile_search

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
POSTS = {
    "twice": "I was charged twice for one order",
    "once": "charged once, fine, but the app is slow",
    "apart": "twice now the app charged me and twice it failed",
    "refund": "where is my refund?",
    "chargeback": "filed a chargeback with my bank",
    "de": "Ich will mein Geld zurück, doppelt abgebucht!",
    "es": "Me cobraron dos veces y nadie responde. ¡Reembolso ya!",
    "syntax": "NEAR(the store) ^caret text:colon a*b and \"quotes\"",
}


def _stored(db: Db) -> dict[str, int]:
    posts = [Post(platform="x", platform_id=key, text=text, created_at=NOW - timedelta(hours=1),
                  source="x-main", brand="acme", lang="en") for key, text in POSTS.items()]
    store.store_page(db, "x-main", Page(posts=posts), NOW)
    ids = {r[1]: r[0] for r in db.execute("SELECT id, platform_id FROM posts").fetchall()}
    store.save_scores(db, [(i, Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "1"), "en")
                           for i in ids.values()], NOW)
    return ids


@pytest.mark.parametrize(("q", "found"), [
    ("charged -twice", {"once"}),
    ("charged NOT twice", {"once"}),
    ('"charged twice"', {"twice"}),
    ("charged twice", {"twice", "apart"}),
    ("charged AND twice", {"twice", "apart"}),
    ("refund OR chargeback", {"refund", "chargeback"}),
    ("(refund OR chargeback) -bank", {"refund"}),
    ("charged (once OR order)", {"twice", "once"}),
    ("(charged OR refund) NOT (twice)", {"once", "refund"}),
    ("charged NOT (once OR order)", {"apart"}),
    ("charge*", {"twice", "once", "apart", "chargeback"}),
    # non-ASCII words, accents optional as before
    ('"Geld zurück"', {"de"}), ("zuruck", {"de"}), ("reembolso OR abgebucht", {"de", "es"}),
    ("cobraron -nadie", set()), ("¡Reembolso", {"es"}),
    # FTS5's specials are text: words of the post, never FTS5 syntax
    ("NEAR(the store)", {"syntax"}), ("^caret", {"syntax"}), ("text:colon", {"syntax"}),
    ("a*b", {"syntax"}), ('"quotes"', {"syntax"}), ("store:", {"syntax"}),
    ("colon^", {"syntax"}), ("NEAR", {"syntax"}), ("twice*", {"twice", "apart"}),
])
def test_the_brand_query_language_finds_the_same_posts_on_both_engines(
    any_db: Db, q: str, found: set[str]
) -> None:
    ids = _stored(any_db)
    assert triage.check_search(any_db, q) is None, q
    rows = triage.queue(any_db, triage.QueueFilter(status=None, q=q))
    assert {r["post_id"] for r in rows} == {ids[k] for k in found}
    assert triage.count_queue(any_db, triage.QueueFilter(status=None, q=q)) == len(found)


@pytest.mark.parametrize(("q", "message"), [
    ("-twice", "has no positive term"),  # the parser's own message
    ("NOT twice", "has no positive term"),
    ("refund OR -twice", "'-twice' excludes, but nothing beside it"),
    ('"unbalanced', "unbalanced quote"),
    ("NEAR(", "ends where a term was expected"),
    ("(refund", "missing ')'"),
    ("refund)", "unexpected ')'"),
    ("refund OR", "ends where a term was expected"),
    ("*", "'*' has no letter or digit"),
    ("refund -(twice)", "'-' has no letter or digit"),
])
def test_what_cannot_be_read_is_the_parsers_message_never_the_databases(
    any_db: Db, q: str, message: str
) -> None:
    problem = triage.check_search(any_db, q)
    assert problem is not None and problem.startswith("The search could not be read: ")
    assert message in problem
    assert "fts5" not in problem.lower() and "syntax error" not in problem
    with pytest.raises(SearchError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*")):
        triage.queue(any_db, triage.QueueFilter(q=q))


def test_every_word_reaches_fts5_quoted() -> None:
    compiled = compile_search('NEAR(a b) ^c d:e f* "g h" NOT "i j" x+y')
    assert compiled.fts5 == ('(("NEAR" AND ("a" AND "b") AND "^c" AND "d:e" AND "f"* AND'
                             ' "g h" AND "x+y") NOT "i j")')
    assert compiled.tsquery == ("'NEAR' & 'a' & 'b' & 'c' & 'd' <-> 'e' & 'f':* & 'g' <-> 'h'"
                                " & 'x' <-> 'y' & !( 'i' <-> 'j' )")


# -- the brand matcher as the judge ------------------------------------------------------------

WORDS = ["charged", "twice", "refund", "app", "slow"]
FRAGMENTS = [*WORDS, "charge*", "ref*", '"charged twice"', '"app slow"', "-twice", "-app",
             "NOT", "OR", "AND", "(", ")", "NEAR(", "^", ":", "*", '"', "-"]
DOCUMENTS = [" ".join(p) for n in range(1, 4) for p in itertools.permutations(WORDS, n)]


def _queries(n: int, seed: int) -> Iterator[str]:
    rnd = random.Random(seed)
    for _ in range(n):
        yield " ".join(rnd.choice(FRAGMENTS) for _ in range(rnd.randint(1, 5)))


def test_sqlite_finds_exactly_what_brand_queries_match() -> None:
    """On texts of plain words the brand matcher (what a brand query keeps) is the oracle: a
    search that compiles finds exactly those texts; one that does not raises SearchError only."""
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE VIRTUAL TABLE f USING fts5(text, tokenize='unicode61 remove_diacritics 2')")
    lite.executemany("INSERT INTO f (rowid, text) VALUES (?, ?)", enumerate(DOCUMENTS))
    compared = 0
    for q in _queries(3000, seed=5):
        try:
            compiled = compile_search(q)
        except SearchError:
            continue
        node = parse(q)
        expected = {i for i, text in enumerate(DOCUMENTS) if matches(node, text)}
        found = {r[0] for r in lite.execute("SELECT rowid FROM f WHERE f MATCH ?",
                                            [compiled.fts5])}
        assert found == expected, (q, compiled.fts5)
        compared += 1
    lite.close()
    assert compared > 500
