"""The query language: a table of queries × posts, translations, and parse errors."""

from __future__ import annotations

import re

import pytest

from listener.core.query import QueryError, dnf, matches, parse, to_reddit, to_simple_queries, to_x

POSTS = {
    "outage": "Acme is DOWN again, our site is offline",
    "cloud": "Loving the new Acme Cloud CLI",
    "handle": "hey @AcmeCloud my invoice is wrong",
    "giveaway": "Acme cloud giveaway! retweet to win",
    "other": "acmecorp shares are up",
    "refunds": "Refunding is slow at acme",
}

TABLE = [
    # query, posts that match
    ("acme", {"outage", "cloud", "giveaway", "refunds"}),
    ('"acme cloud"', {"cloud", "giveaway"}),
    ("acme cloud", {"cloud", "giveaway"}),  # implicit AND, any order
    ("acme AND offline", {"outage"}),
    ("@AcmeCloud OR offline", {"handle", "outage"}),
    ("acme -giveaway", {"outage", "cloud", "refunds"}),
    ("acme NOT (cloud OR down)", {"refunds"}),
    ("(acme OR @acmecloud) -giveaway", {"outage", "cloud", "handle", "refunds"}),
    ("acme* -acme", {"other", "handle"}),  # prefix wildcard: acmecorp, @AcmeCloud
    ("refund*", {"refunds"}),
    ("invoice OR refund", {"handle"}),  # whole words: "Refunding" is not "refund"
    ("down OR cloud -giveaway", {"outage", "cloud"}),  # AND binds tighter than OR
]


@pytest.mark.parametrize(("query", "expected"), TABLE)
def test_query_table(query: str, expected: set[str]) -> None:
    node = parse(query)
    assert {name for name, text in POSTS.items() if matches(node, text)} == expected


@pytest.mark.parametrize(
    ("query", "x", "reddit", "simple"),
    [
        ('"acme cloud" OR acme', '"acme cloud" OR acme', '"acme cloud" OR acme',
         ['"acme cloud"', "acme"]),
        ("acme (down OR outage) -test", "acme (down OR outage) -test",
         "acme AND (down OR outage) AND NOT test", ["acme down", "acme outage"]),
        ("(a OR b) (c OR d)", "(a OR b) (c OR d)", "(a OR b) AND (c OR d)",
         ["a c", "a d", "b c", "b d"]),
    ],
)
def test_translations(query: str, x: str, reddit: str, simple: list[str]) -> None:
    node = parse(query)
    assert (to_x(node), to_reddit(node), to_simple_queries(node)) == (x, reddit, simple)


def test_every_dnf_branch_is_implied_by_the_query() -> None:
    node = parse("(acme OR @acmecloud) (down OR outage OR offline) -test")
    for branch in dnf(node):
        text = " ".join(t.text for t in branch)
        assert matches(node, text)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('"acme cloud', "unbalanced quote"),
        ("(acme OR b", "missing ')'"),
        ("acme OR", "ends where a term was expected"),
        ("-acme", "no positive term"),
        ("acme )", "unexpected ')'"),
        ('acme ""', "empty phrase"),
        (" ".join(f"(a{i} OR b{i})" for i in range(5)), "expands to 32 searches"),
    ],
)
def test_bad_queries_say_what_is_wrong(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)):
        dnf(parse(query))


@pytest.mark.parametrize(
    ("query", "x", "simple"),
    [
        ("acme refund*", "acme", ["acme"]),  # the prefix widens to anything: fetch more
        ("acme (refund* OR money)", "acme", ["acme"]),
        ("acme -refund*", "acme", ["acme"]),  # dropping an exclusion only fetches more
        ("acme -spam", "acme -spam", ["acme"]),
    ],
)
def test_prefix_terms_are_widened_for_platform_search(query: str, x: str, simple: list) -> None:
    node = parse(query)
    assert (to_x(node), to_simple_queries(node)) == (x, simple)


def test_a_query_of_prefixes_only_cannot_be_searched() -> None:
    with pytest.raises(QueryError, match="without '\\*'"):
        to_x(parse("refund* OR acme*"))
