"""The query language on arbitrary strings: a parse or a QueryError, and what parses is usable.

Queries are drawn from any text and from the language's own tokens (words, phrases, prefixes,
AND/OR/NOT, ``-``, parentheses, stray quotes), so most reach deep into the parser. Whatever
parses must translate for every platform (or say, with a QueryError, why it cannot) and match
any post text without failing.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from listener.core.query import (
    MAX_BRANCHES,
    Node,
    QueryError,
    matches,
    parse,
    to_reddit,
    to_simple_queries,
    to_x,
)
from tests.property.strategies import PROPERTY, hostile_text

TOKENS = ("acme", "Acme", "cloud", "refund*", "*", "-", "-giveaway", '"acme cloud"', '"', '""',
          "AND", "OR", "NOT", "(", ")", "((", "))", "@AcmeCloud", "#outage", "down", "ü", "x-y")
token_queries = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=6)),
                         min_size=1, max_size=14).map(" ".join)
queries = st.one_of(st.text(max_size=60), token_queries)


def parsed(text: str) -> Node | None:
    try:
        return parse(text)
    except QueryError as exc:
        assert repr(text) in str(exc) or "position" in str(exc) or "term" in str(exc)
        return None


@PROPERTY
@given(queries, hostile_text)
def test_a_query_parses_or_is_a_query_error_and_then_works_everywhere(
    text: str, post: str
) -> None:
    node = parsed(text)
    if node is None:
        return
    assert isinstance(matches(node, post), bool)
    for translate in (to_x, to_reddit):
        try:
            assert isinstance(translate(node), str)
        except QueryError:
            pass  # only prefix terms: the platform's search cannot be sent such a query
    try:
        branches = to_simple_queries(node)
    except QueryError:
        return
    assert 1 <= len(branches) <= MAX_BRANCHES and all(isinstance(b, str) for b in branches)


@PROPERTY
@given(token_queries)
def test_the_x_translation_of_a_query_parses_back(text: str) -> None:
    node = parsed(text)
    if node is None:
        return
    try:
        translated = to_x(node)
    except QueryError:
        return
    assert parsed(translated) is not None  # our own output is a valid query again
