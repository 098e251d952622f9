"""The triage queue's text search: the brand query language, compiled for each engine.

People type the language brand queries are written in (README "Brands and the query language",
:mod:`listener.core.query`): words, ``"quoted phrases"``, ``prefix*``, ``AND`` (or a space),
``OR``, ``NOT x`` / ``-x`` and parentheses. One search box, one language: a query pasted from a
brand's configuration finds the same posts in the queue. :func:`compile_search` parses it with
the brand parser (its :class:`~listener.core.query.QueryError` becomes a :class:`SearchError`
with the parser's message) and writes the tree as an FTS5 expression in which **every word is
a quoted string**: FTS5's own syntax (``NEAR(``, ``^``, ``:``, ``+``, ``*`` inside a word,
column filters) can never come from user input, only the ``AND``/``OR``/``NOT`` and parentheses
the compiler writes itself. SQLite runs that expression (``posts_fts MATCH ?``); PostgreSQL runs
its translation by :func:`tsquery` below, the FTS5-to-tsquery translator this module always had,
so both engines read one expression and find the same posts.

FTS5's ``NOT`` is binary (``a NOT b``): a negation narrows the words beside it. A search that is
only negative (``-twice``) is refused by the parser ("no positive term"), and so is a negation
with nothing beside it inside an ``OR`` (``refund OR -twice``), with a message naming it: the
queue lists posts that contain something, and the other filters (brand, time, sentiment) are
what narrows a whole queue. A term with no letter or digit (``-``, an emoji) cannot be in the
word index; it is left out, as FTS5 leaves such strings out of a row of words.

The FTS5-to-tsquery translator, in detail: PostgreSQL searches ``triage.search_vector``
(:mod:`storage.migrations_pg`) with ``to_tsquery('simple', search_fold(?))``, and
:func:`tsquery` writes that query's text from an FTS5 expression:

=====================  ==============================
FTS5                   tsquery
=====================  ==============================
``refund``             ``'refund'``
``ref*``               ``'ref':*``
``"app broken"``       ``'app' <-> 'broken'``
``a + b`` (a phrase)   ``'a' <-> 'b'``
``a b``, ``a AND b``   ``'a' & 'b'``
``a OR b``             ``'a' | 'b'``
``a NOT b``            ``'a' & !'b'``
``(a OR b) NOT c``     ``( 'a' | 'b' ) & !'c'``
``text:a``             ``'a'`` (the one column there is)
=====================  ==============================

The parser is FTS5's grammar (``fts5parse.y``), so a query is accepted or refused as SQLite
would: operators are upper case (``or`` is a word), ``NOT`` is binary (``a NOT b``; a leading
``NOT`` is an error), precedence is NOT over AND over OR, and words side by side bind tighter
than any operator (``a NOT b c`` is ``a NOT (b AND c)``; ``(a) b`` is an error). A word (FTS5's
"bareword") is made of ASCII letters, digits, ``_`` and any non-ASCII character; anything else
must be quoted, with ``""`` for a quote. Each word or quoted string is split at white space and
ASCII punctuation — where unicode61 splits words, and where the PostgreSQL document was split
(``search_document`` in :mod:`storage.migrations_pg`) — so ``"foo@bar.com"`` is the phrase
``'foo' <-> 'bar' <-> 'com'`` and ``bar`` alone finds it; every piece goes to PostgreSQL quoted;
a ``*`` makes the last piece a prefix. FTS5's treatment of a string with no letters or digits (``"!!"``, an
emoji) is kept: it matches nothing, yet is left out of a row of words (``refund 😀`` finds
``refund``).

Not translated, refused with a :class:`SearchError` (the queue shows its message): ``NEAR(…)``
and ``^`` (the first word of the text): a ``tsquery`` has neither "within N words" in any order
nor a position anchor. FTS5's special queries (a query starting with ``*``) are refused too.

Written here rather than taken from a library: none parses FTS5's grammar, and PostgreSQL's own
``websearch_to_tsquery`` reads ``NOT`` as a word, drops ``*`` and ignores parentheses — the same
saved search would find other posts on the two engines.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Literal

from listener.core.query import And, Node, Not, Or, QueryError, Term, parse, render_boolean

COLUMN = "text"  # posts_fts's one column, which a column filter (``text:refund``) may name
_SPACE = " \t\n\r"  # FTS5's white space; \f and \v are errors there, so here too


class SearchError(ValueError):
    """A search that cannot be read; the message says where, like SQLite's."""


# -- tokens ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Token:
    kind: str  # STRING, OR, AND, NOT, one of _PUNCTUATION's values, or EOF
    text: str = ""  # a STRING's value (quotes removed); what an error quotes otherwise
    bare: bool = False  # a STRING written without quotes


_PUNCTUATION = {"(": "LP", ")": "RP", "{": "LCP", "}": "RCP", ":": "COLON", ",": "COMMA",
                "+": "PLUS", "*": "STAR", "-": "MINUS", "^": "CARET"}
_OPERATORS = ("OR", "AND", "NOT")


def _bareword(char: str) -> bool:
    return char >= "\x80" or (char.isascii() and (char.isalnum() or char in "_\x1a"))


def _tokens(q: str) -> list[_Token]:
    """FTS5's query tokens (fts5ExprGetToken); the query ends at a NUL, as a C string does."""
    q = q.split("\0", 1)[0]
    out: list[_Token] = []
    i = 0
    while True:
        while i < len(q) and q[i] in _SPACE:
            i += 1
        if i == len(q):
            out.append(_Token("EOF"))
            return out
        char = q[i]
        if char in _PUNCTUATION:
            out.append(_Token(_PUNCTUATION[char], char))
            i += 1
        elif char == '"':
            value, i = _quoted(q, i + 1)
            out.append(_Token("STRING", value))
        elif _bareword(char):
            end = i
            while end < len(q) and _bareword(q[end]):
                end += 1
            word = q[i:end]
            out.append(_Token(word if word in _OPERATORS else "STRING", word, bare=True))
            i = end
        else:
            raise SearchError(f'syntax error near "{char}"')


def _quoted(q: str, i: int) -> tuple[str, int]:
    """A quoted string's value from after its opening quote, and where the string ends."""
    value: list[str] = []
    while True:
        end = q.find('"', i)
        if end < 0:
            raise SearchError("unterminated string")
        value.append(q[i:end])
        if q.startswith('"', end + 1):  # "" is a quote inside the string
            value.append('"')
            i = end + 2
            continue
        return "".join(value), end + 1


# -- the query, as a tree ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Phrase:
    pieces: tuple[tuple[str, bool], ...]  # (text, prefix): words in a row


@dataclass(frozen=True)
class _Op:
    op: str  # "&", "|", or "!" (left AND NOT right)
    left: _Node
    right: _Node


_Node = _Phrase | _Op
# Matching nothing, in FTS5's two kinds: _EMPTY, a string without a letter or digit (FTS5_EOF),
# left out of a row of words; _NEVER, a column filter that leaves no column (a row with it
# matches nothing). Any other operator treats both alike.
_Nothing = Literal["empty", "never"]
_EMPTY: _Nothing = "empty"
_NEVER: _Nothing = "never"
_Result = _Node | _Nothing


_WORD_BREAKS = re.compile(r"[\s" + re.escape(string.punctuation) + "]+")


def _has_token(piece: str) -> bool:
    """Whether a piece holds a token for SQLite's unicode61 (letters, digits, private use)."""
    return any(unicodedata.category(c)[0] in "LN" or unicodedata.category(c) == "Co"
               for c in piece)


def _and(left: _Result, right: _Result) -> _Result:
    if isinstance(left, str) or isinstance(right, str):
        return _NEVER
    return _Op("&", left, right)


def _or(left: _Result, right: _Result) -> _Result:
    if isinstance(left, str):
        return _NEVER if isinstance(right, str) else right
    return left if isinstance(right, str) else _Op("|", left, right)


def _not(left: _Result, right: _Result) -> _Result:
    if isinstance(left, str):
        return _NEVER
    return left if isinstance(right, str) else _Op("!", left, right)


class _Parser:
    """FTS5's grammar by recursive descent, with its precedence (module docstring)."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self, kind: str) -> _Token:
        token = self.peek()
        if token.kind != kind:
            raise SearchError(f'syntax error near "{token.text}"')
        self.at += 1
        return token

    def query(self) -> _Result:
        node = self.or_expr()
        self.take("EOF")
        return node

    def or_expr(self) -> _Result:
        node = self.and_expr()
        while self.peek().kind == "OR":
            self.at += 1
            node = _or(node, self.and_expr())
        return node

    def and_expr(self) -> _Result:
        node = self.not_expr()
        while self.peek().kind == "AND":
            self.at += 1
            node = _and(node, self.not_expr())
        return node

    def not_expr(self) -> _Result:
        node = self.unit()
        while self.peek().kind == "NOT":
            self.at += 1
            node = _not(node, self.unit())
        return node

    def unit(self) -> _Result:
        """``( expr )``, ``colset : ( expr )``, or words side by side (FTS5's exprlist)."""
        if self.peek().kind == "LP":
            self.at += 1
            node = self.or_expr()
            self.take("RP")
            return node
        if self.starts_colset():
            keep = self.colset()
            self.take("COLON")
            if self.peek().kind == "LP":
                self.at += 1
                node = self.or_expr()
                self.take("RP")
                return node if keep or node == _EMPTY else _NEVER
            first = self.nearset(keep)
        else:
            first = self.nearset(True)
        return self.row(first)

    def row(self, first: _Result) -> _Result:
        """Words side by side: FTS5 leaves out the _EMPTY ones (sqlite3Fts5ParseImplicitAnd)."""
        items = [first]
        while self.peek().kind in ("STRING", "CARET", "MINUS", "LCP"):
            if self.starts_colset():
                keep = self.colset()
                self.take("COLON")
                items.append(self.nearset(keep))
            else:
                items.append(self.nearset(True))
        kept = [item for item in items if item != _EMPTY]
        if not kept:
            return _EMPTY
        node = kept[0]
        for item in kept[1:]:
            node = _and(node, item)
        return node

    def starts_colset(self) -> bool:
        kind = self.peek().kind
        return kind in ("MINUS", "LCP") or kind == "STRING" and self.peek(1).kind == "COLON"

    def colset(self) -> bool:
        """A column filter: whether it keeps the one column (``text``, ``{text}``) or leaves
        none (``-text``); an unknown column is an error, as in SQLite."""
        exclude = self.peek().kind == "MINUS"
        if exclude:
            self.at += 1
        if self.peek().kind == "LCP":
            self.at += 1
            names = [self.take("STRING").text]
            while self.peek().kind == "STRING":
                names.append(self.take("STRING").text)
            self.take("RCP")
        else:
            names = [self.take("STRING").text]
        for name in names:
            if not (name.isascii() and name.lower() == COLUMN):
                raise SearchError(f"no such column: {name}")
        return not exclude

    def nearset(self, keep: bool) -> _Result:
        """A phrase (a column filter's ``keep`` applied); NEAR and ^ are refused."""
        token = self.peek()
        if token.kind == "CARET":
            raise SearchError("^ (the first word of the text) cannot be searched on"
                              " PostgreSQL")
        if token.kind == "STRING" and self.peek(1).kind == "LP":
            if token.bare and token.text == "NEAR":
                raise SearchError("NEAR(...) cannot be searched on PostgreSQL; use a"
                                  " \"quoted phrase\" or AND")
            raise SearchError(f'syntax error near "{token.text}"')
        phrase = self.phrase()
        if phrase == _EMPTY:
            return _EMPTY
        return phrase if keep else _NEVER

    def phrase(self) -> _Result:
        """``a``, ``a*``, ``"a b"``, ``a + b*``: each string's pieces in a row."""
        pieces: list[tuple[str, bool]] = []
        while True:
            value = self.take("STRING").text
            prefix = self.peek().kind == "STAR"
            if prefix:
                self.at += 1
            # words as the document's: split at white space and ASCII punctuation
            # (storage/migrations_pg.py search_document)
            words = [w for w in _WORD_BREAKS.split(value) if w and _has_token(w)]
            pieces.extend((w, prefix and i == len(words) - 1) for i, w in enumerate(words))
            if self.peek().kind != "PLUS":
                break
            self.at += 1
        return _Phrase(tuple(pieces)) if pieces else _EMPTY


# -- the tsquery's text ------------------------------------------------------------------------

_PRECEDENCE = {"|": 1, "&": 2, "!": 2}
_PHRASE, _ATOM = 3, 4


def _quote(piece: str) -> str:
    """A tsquery operand: quoted, so PostgreSQL's parser reads the piece as document text."""
    return "'" + piece.replace("\\", "\\\\").replace("'", "''") + "'"


def _text(node: _Node) -> tuple[str, int]:
    """The node's tsquery and its precedence (tsquery's: ! over <-> over & over |)."""
    if isinstance(node, _Phrase):
        words = [_quote(text) + (":*" if prefix else "") for text, prefix in node.pieces]
        return " <-> ".join(words), _ATOM if len(words) == 1 else _PHRASE
    level = _PRECEDENCE[node.op]
    left = _operand(node.left, level)
    if node.op == "!":
        return f"{left} & !{_operand(node.right, _ATOM)}", level
    return f"{left} {node.op} {_operand(node.right, level)}", level


def _operand(node: _Node, level: int) -> str:
    text, precedence = _text(node)
    return text if precedence >= level else f"( {text} )"


def tsquery(q: str) -> str:
    """The ``to_tsquery`` text of the FTS5 query ``q``; raises :class:`SearchError` where
    SQLite would refuse ``q`` or PostgreSQL cannot search it. An empty result matches nothing
    (``to_tsquery`` of it is the empty query)."""
    if q.startswith("*"):
        raise SearchError(f"unknown special query: {q[1:].split(chr(0), 1)[0]}")
    node = _Parser(_tokens(q)).query()
    return "" if isinstance(node, str) else _text(node)[0]


# -- the brand query language, compiled ---------------------------------------------------------

@dataclass(frozen=True)
class Search:
    """A queue search, compiled: ``fts5`` for ``posts_fts MATCH ?`` (SQLite), ``tsquery`` for
    ``to_tsquery('simple', search_fold(?))`` (PostgreSQL); both say the same thing."""

    text: str
    fts5: str
    tsquery: str


def compile_search(q: str) -> Search:
    """``q`` (brand query language) for both engines; raises :class:`SearchError` with the
    parser's message, naming a negation that has nothing to narrow, or naming a term without a
    letter or digit (the word index cannot hold it)."""
    try:
        node = parse(q)
    except QueryError as exc:
        raise SearchError(str(exc)) from None
    fts5 = _fts5(_without_double_negation(node))
    return Search(q, fts5, tsquery(fts5))


def _without_double_negation(node: Node) -> Node:
    """``NOT -x`` is ``x``: the compiler then only meets negations of something positive."""
    if isinstance(node, Not):
        inner = node.part
        if isinstance(inner, Not):
            return _without_double_negation(inner.part)
        return Not(_without_double_negation(inner))
    if isinstance(node, Term):
        return node
    parts = tuple(_without_double_negation(p) for p in node.parts)
    return And(parts) if isinstance(node, And) else Or(parts)


def _fts5(node: Node) -> str:
    """``node`` as FTS5 with every word quoted.

    An AND group becomes ``(positives NOT n1 NOT n2)``: FTS5's binary NOT narrows the group's
    positive part. A negation anywhere else has nothing to narrow and is refused."""
    if isinstance(node, Term):
        return _fts5_string(node)
    if isinstance(node, Not):
        raise SearchError(_lonely(node))
    if isinstance(node, Or):
        return f"({' OR '.join(_fts5(p) for p in node.parts)})"
    kept = [_fts5(p) for p in node.parts if not isinstance(p, Not)]
    negated = [p for p in node.parts if isinstance(p, Not)]
    if not kept:
        raise SearchError(_lonely(negated[0]))
    text = kept[0] if len(kept) == 1 else f"({' AND '.join(kept)})"
    if not negated:
        return text
    return f"({text}{''.join(f' NOT {_fts5(p.part)}' for p in negated)})"


def _fts5_string(term: Term) -> str:
    """A term as one FTS5 string (unicode61 splits it into words, as it split the post), with
    ``*`` after it for a prefix. A term without a letter or digit is refused rather than left
    out: ``-(a OR b)`` parses as the term ``-`` beside a group, and dropping it would search
    for the very words the person meant to exclude."""
    prefix = term.text.endswith("*") and not term.phrase
    text = (term.text.rstrip("*") if prefix else term.text).replace("\0", " ")
    if not _has_token(text):
        hint = " (to exclude a group, write NOT (a OR b))" if term.text == "-" else ""
        raise SearchError(f"{term.text!r} has no letter or digit to search for{hint}")
    return '"' + text.replace('"', '""') + '"' + ("*" if prefix else "")


def _lonely(node: Not) -> str:
    shown = render_boolean(node)
    return (f"{shown!r} excludes, but nothing beside it says what to look for: write it next"
            " to a word it narrows, as in: charged -twice")
