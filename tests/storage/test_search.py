"""storage/search.py: the queue's FTS5 query syntax as a PostgreSQL tsquery.

The translation itself needs no database. SQLite's own FTS5 parser (an in-memory table) is the
judge of which queries are readable, and the last test checks that PostgreSQL finds what SQLite
finds for a few thousand generated queries.
"""

from __future__ import annotations

import itertools
import random
import re
import sqlite3
from collections.abc import Iterator

import pytest

from storage.search import SearchError, tsquery
from tests.pg_server import Server

# FTS5 query → tsquery text (to_tsquery('simple', search_fold(·)) reads it)
TRANSLATED = [
    # the pairs of tests/storage/test_migrations_pg.py, quoted as operands
    ("cafe", "'cafe'"), ("CAFÉ", "'CAFÉ'"), ("creme", "'creme'"),
    ('"app broken"', "'app' <-> 'broken'"), ("ref*", "'ref':*"),
    ("refund OR brulee", "'refund' | 'brulee'"), ("broken NOT refund", "'broken' & !'refund'"),
    ("москва", "'москва'"), ("ελλαδα", "'ελλαδα'"), ("ελλάδα", "'ελλάδα'"), ("viet", "'viet'"),
    ("lodz", "'lodz'"), ("łódź", "'łódź'"),
    # words side by side, AND, and FTS5's precedence: side by side, NOT, AND, OR
    ("app broken", "'app' & 'broken'"), ("app AND broken", "'app' & 'broken'"),
    ("a OR b c", "'a' | 'b' & 'c'"), ("a b OR c", "'a' & 'b' | 'c'"),
    ("a NOT b c", "'a' & !( 'b' & 'c' )"), ("a b NOT c", "'a' & 'b' & !'c'"),
    ("a NOT b AND c", "'a' & !'b' & 'c'"), ("a AND b NOT c", "'a' & 'b' & !'c'"),
    ("a NOT b OR c", "'a' & !'b' | 'c'"), ("a NOT b NOT c", "'a' & !'b' & !'c'"),
    ("a NOT \"b c\"", "'a' & !( 'b' <-> 'c' )"),
    # parentheses kept where tsquery's precedence needs them
    ("(a OR b) NOT c", "( 'a' | 'b' ) & !'c'"), ("a NOT (b OR c)", "'a' & !( 'b' | 'c' )"),
    ("(a OR b) AND (c OR d)", "( 'a' | 'b' ) & ( 'c' | 'd' )"), ("((a))", "'a'"),
    # phrases: quoted, joined with +, a prefix on the last word of a string
    ('"app bro"*', "'app' <-> 'bro':*"), ("a + b*", "'a' <-> 'b':*"), ("a* + b", "'a':* <-> 'b'"),
    ("a *", "'a':*"), ("a*b", "'a':* & 'b'"), ('"a"b', "'a' & 'b'"), ('"a""b"', "'a' <-> 'b'"),
    # split at ASCII punctuation, as the document is (migrations_pg search_document)
    ('"can\'t"', "'can' <-> 't'"), ('"x\\y"', "'x' <-> 'y'"), ('"x-y z"', "'x' <-> 'y' <-> 'z'"),
    # lower-case operators are words; a non-ASCII character is part of a word
    ("a or b", "'a' & 'or' & 'b'"), ("a\u00a0b", "'a' <-> 'b'"),
    # the column filter: posts_fts has one column, text
    ("text:a", "'a'"), ("TEXT : a b", "'a' & 'b'"), ('{text "text"}: (a OR b)', "'a' | 'b'"),
    ("-text:a OR b", "'b'"),
    # a string without letters or digits: left out of words side by side, nothing elsewhere
    ("a 😀", "'a'"), ('"a 😀 b"', "'a' <-> 'b'"), ("a OR \"\"", "'a'"), ("a NOT 😀", "'a'"),
    # ... and what matches nothing is the empty query
    ("😀", ""), ('""', ""), ("a AND 😀", ""), ("😀 NOT a", ""), ("a -text:b", ""),
    ("-{text}: a", ""),
    # the query ends at a NUL, as SQLite reads it
    ("a\0b", "'a'"),
]


@pytest.mark.parametrize(("fts5", "expected"), TRANSLATED)
def test_fts5_queries_become_tsqueries(fts5: str, expected: str) -> None:
    assert tsquery(fts5) == expected


@pytest.mark.parametrize(("fts5", "message"), [
    ("", 'syntax error near ""'), ("   ", 'syntax error near ""'),
    ('"open', "unterminated string"), ("a.b", 'syntax error near "."'),
    ("NOT a", 'syntax error near "NOT"'), ("a OR", 'syntax error near ""'),
    ("a OR OR b", 'syntax error near "OR"'), ("a AND NOT b", 'syntax error near "NOT"'),
    ("(a", 'syntax error near ""'), ("a)", 'syntax error near ")"'), ("()", 'syntax error near ")"'),
    ("(a) b", 'syntax error near "b"'), ("a (b)", 'syntax error near "a"'),
    ("a**", 'syntax error near "*"'), ("+a", 'syntax error near "+"'), ("a\fb", 'near "\f"'),
    ("x:a", "no such column: x"), ("a-b", "no such column: b"), ("{text x}: a", "column: x"),
    ("text:", 'syntax error near ""'), ("a text:(b)", 'syntax error near "("'),
    ("near(a b)", 'syntax error near "near"'), ("\0", 'syntax error near ""'),
    # FTS5 reads these; a tsquery cannot say them
    ("NEAR(a b)", "NEAR(...) cannot be searched on PostgreSQL"),
    ("text:NEAR(a b, 3)", "NEAR(...) cannot be searched"), ("^a", "^ (the first word"),
    ("a ^b", "^ (the first word"), ("*", "unknown special query"),
    ("*reads", "unknown special query: reads"),
])
def test_what_cannot_be_read_says_why(fts5: str, message: str) -> None:
    with pytest.raises(SearchError, match=re.escape(message)):
        tsquery(fts5)


# -- SQLite's FTS5 as the judge --------------------------------------------------------------

FRAGMENTS = [
    "a", "b", "c", "refund", "ref", "apple", "app*", '"a b"', '"b a"', '"c refund"*', "café",
    "ÄBC", '"x-y"', '"can\'t"', "😀", '""', "or", "not", "text", "NEAR", "OR", "AND", "NOT",
    "(", ")", ":", "text:", "-text:", "{text}:", "{", "}", "-", "+", "*", "^", ",", '"', "'", ".",
    "\\", "0", "é", "\t",
]
DOCUMENTS = [" ".join(p) for n in range(4) for p in itertools.permutations(
    ["a", "b", "c", "refund"], n)] + [
    "text near or", "apple pie", "Café crème", "x-y z", "can't stop", "ÄBC a", "refunded app"]


def _queries(n: int, seed: int) -> Iterator[str]:
    """Random queries from FTS5's pieces: most are refused, enough are read."""
    rnd = random.Random(seed)
    for _ in range(n):
        yield rnd.choice([" ", ""]).join(rnd.choice(FRAGMENTS) for _ in range(rnd.randint(1, 6)))


@pytest.fixture(scope="module")
def fts5() -> Iterator[sqlite3.Connection]:
    """posts_fts's tokenizer over DOCUMENTS, in memory."""
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE VIRTUAL TABLE f USING fts5(text,"
                 " tokenize='unicode61 remove_diacritics 2')")
    lite.executemany("INSERT INTO f (rowid, text) VALUES (?, ?)", enumerate(DOCUMENTS))
    yield lite
    lite.close()


def _fts5_finds(lite: sqlite3.Connection, q: str) -> set[int] | None:
    """What FTS5 finds; None where it refuses the query."""
    try:
        return {r[0] for r in lite.execute("SELECT rowid FROM f WHERE f MATCH ?", [q])}
    except sqlite3.OperationalError:
        return None


def _pg_only_refusal(exc: SearchError) -> bool:
    return "PostgreSQL" in str(exc) or "special query" in str(exc)


def test_a_query_is_refused_exactly_when_sqlite_refuses_it(fts5: sqlite3.Connection) -> None:
    read = 0
    for q in _queries(5000, seed=17):
        try:
            tsquery(q)
        except SearchError as exc:
            assert _fts5_finds(fts5, q) is None or _pg_only_refusal(exc), q
        else:
            assert _fts5_finds(fts5, q) is not None, q
            read += 1
    assert read > 500  # the generator reaches past the parser often enough


def test_postgresql_finds_what_sqlite_finds(fts5: sqlite3.Connection, pg_server: Server) -> None:
    """The same documents in a tsvector column, as triage.search_vector holds them."""
    import psycopg

    with psycopg.connect(pg_server.new_database(), autocommit=True) as pg:
        pg.execute("CREATE TEMP TABLE d (id integer, v tsvector)")
        with pg.cursor() as cur:
            cur.executemany("INSERT INTO d VALUES (%s, to_tsvector('simple', search_fold(%s)))",
                            list(enumerate(DOCUMENTS)))
        compared = 0
        for q in _queries(3000, seed=23):
            expected = _fts5_finds(fts5, q)
            try:
                text = tsquery(q)
            except SearchError:
                continue
            assert expected is not None, q
            found = {r[0] for r in pg.execute(
                "SELECT id FROM d WHERE v @@ to_tsquery('simple', search_fold(%s))", [text])}
            assert found == expected, (q, text)
            compared += 1
        assert compared > 300
