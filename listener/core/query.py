"""One query language for every platform.

Users write what they listen for once, per brand::

    ("acme cloud" OR @AcmeCloud OR (acme AND (outage OR down))) -giveaway

Words and "quoted phrases" match whole words, case-insensitively (``refund*`` matches a prefix);
juxtaposition means AND; ``OR`` binds looser than AND (``a OR b -c`` is ``a OR (b -c)``); ``NOT x`` and ``-x`` exclude; parentheses
group. The same parsed query is (1) translated to each platform's own search syntax where the
platform has search, so we fetch less, and (2) always applied locally to what comes back, so every
platform obeys exactly the same query. Platforms without OR get the query's disjunctive normal
form: a few simple AND-queries whose union covers every match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from itertools import product

from listener.core.errors import ConfigError

MAX_BRANCHES = 16  # DNF expansions beyond this are refused: the query would cost too many calls


@dataclass(frozen=True)
class Term:
    text: str
    phrase: bool = False

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        prefix = self.text.endswith("*") and not self.phrase
        core = self.text[:-1] if prefix else self.text
        words = r"\s+".join(re.escape(w) for w in core.split())
        end = "" if prefix else r"(?!\w)"
        return re.compile(rf"(?<!\w){words}{end}", re.IGNORECASE)


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Term | And | Or | Not
_TOKEN = re.compile(r'\s*(?:(?P<open>\()|(?P<close>\))|"(?P<phrase>[^"]*)"|(?P<word>[^\s()"]+))')


class QueryError(ConfigError):
    """A query that cannot be parsed or used; the message points at the problem."""


def parse(text: str) -> Node:
    """Parse a query; raises QueryError with the offending position."""
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    node = parser.parse_or()
    if parser.pos != len(tokens):
        raise QueryError(f"unexpected {tokens[parser.pos][1]!r} in query {text!r}")
    if not positive_terms(node):
        raise QueryError(f"query {text!r} has no positive term: it would match everything")
    return node


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise QueryError(f"unbalanced quote at position {pos} in query {text!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "word" and value in ("AND", "OR", "NOT"):
            kind = value
        if kind == "phrase" and not value.strip():
            raise QueryError(f'empty phrase "" in query {text!r}')
        tokens.append((kind, value))
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.peek() == "OR":
            self.pos += 1
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self) -> Node:
        parts = [self.parse_unary()]
        while self.peek() not in (None, "OR", "close"):
            if self.peek() == "AND":
                self.pos += 1
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_unary(self) -> Node:
        kind = self.peek()
        if kind == "NOT":
            self.pos += 1
            return Not(self.parse_unary())
        if kind == "word" and self.tokens[self.pos][1].startswith("-") and len(
            self.tokens[self.pos][1]
        ) > 1:
            word = self.tokens[self.pos][1][1:]
            self.pos += 1
            return Not(Term(word))
        return self.parse_atom()

    def parse_atom(self) -> Node:
        if self.pos >= len(self.tokens):
            raise QueryError(f"query {self.text!r} ends where a term was expected")
        kind, value = self.tokens[self.pos]
        self.pos += 1
        if kind == "open":
            node = self.parse_or()
            if self.peek() != "close":
                raise QueryError(f"missing ')' in query {self.text!r}")
            self.pos += 1
            return node
        if kind in ("word", "phrase"):
            return Term(" ".join(value.split()), phrase=kind == "phrase")
        raise QueryError(f"unexpected {value!r} in query {self.text!r}")


def matches(node: Node, text: str) -> bool:
    """Evaluate the query against a post's text."""
    if isinstance(node, Term):
        return node.pattern.search(text) is not None
    if isinstance(node, And):
        return all(matches(p, text) for p in node.parts)
    if isinstance(node, Or):
        return any(matches(p, text) for p in node.parts)
    return not matches(node.part, text)


def positive_terms(node: Node) -> list[Term]:
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return []
    return [t for p in node.parts for t in positive_terms(p)]


def dnf(node: Node) -> list[tuple[Term, ...]]:
    """Positive AND-branches whose union covers every match (negations are left to ``matches``)."""
    branches = _dnf(node)
    unique = list(dict.fromkeys(tuple(dict.fromkeys(b)) for b in branches if b))
    if len(unique) > MAX_BRANCHES:
        raise QueryError(
            f"query expands to {len(unique)} searches on platforms without OR "
            f"(at most {MAX_BRANCHES}); simplify it"
        )
    return unique


def _dnf(node: Node) -> list[tuple[Term, ...]]:
    if isinstance(node, Term):
        return [(node,)]
    if isinstance(node, Not):
        return [()]  # a negation restricts, it never adds matches
    if isinstance(node, Or):
        return [b for p in node.parts for b in _dnf(p)]
    combos = product(*(_dnf(p) for p in node.parts))
    return [tuple(t for branch in combo for t in branch) for combo in combos]


def identifying_terms(node: Node) -> list[Term]:
    """The terms that say *which brand* a post is about rather than what it says: a term that
    alone is enough to match (``"acme cloud"``, ``@AcmeCloud``) or that several AND-branches
    share (``acme`` in ``acme (outage OR down)``). Posts compared for what they say leave them
    out, since every post of the brand has them; ``outage`` and ``down`` stay."""
    try:
        branches = dnf(node)
    except QueryError:  # too many branches to enumerate: the query's every positive term
        return list(dict.fromkeys(positive_terms(node)))
    counts: dict[Term, int] = {}
    for branch in branches:
        for term in branch:
            counts[term] = counts.get(term, 0) + 1
    alone = {branch[0] for branch in branches if len(branch) == 1}
    return [t for t in counts if t in alone or counts[t] > 1]


def render_boolean(node: Node, *, and_word: str = " ", not_prefix: str = "-") -> str:
    """Boolean syntax for platforms that have it (X: implicit AND and ``-``; Reddit: AND/NOT)."""
    if isinstance(node, Term):
        return f'"{node.text}"' if node.phrase or " " in node.text else node.text
    if isinstance(node, Not):
        return f"{not_prefix}{_grouped(node.part, and_word, not_prefix)}"
    joiner = and_word if isinstance(node, And) else " OR "
    return joiner.join(_grouped(p, and_word, not_prefix) for p in node.parts)


def _grouped(node: Node, and_word: str, not_prefix: str) -> str:
    text = render_boolean(node, and_word=and_word, not_prefix=not_prefix)
    return f"({text})" if isinstance(node, And | Or) else text


def without_prefixes(node: Node) -> Node | None:
    """The query with prefix terms (``refund*``) widened to "anything"; None if nothing is left.

    Platforms' searches have no prefix wildcard: sending ``refund*`` or ``refund`` would miss
    "refunds". Widening only fetches more, and the local filter still applies the full query.
    """
    if isinstance(node, Term):
        return None if node.text.endswith("*") and not node.phrase else node
    if isinstance(node, Not):
        inner = without_prefixes(node.part)
        return None if inner is None or inner != node.part else node
    parts = [without_prefixes(p) for p in node.parts]
    if isinstance(node, Or):
        return None if any(p is None for p in parts) else Or(tuple(parts))  # type: ignore[arg-type]
    kept = tuple(p for p in parts if p is not None)
    return None if not kept else kept[0] if len(kept) == 1 else And(kept)


def _searchable(node: Node) -> Node:
    widened = without_prefixes(node)
    if widened is None or not positive_terms(widened):
        raise QueryError("this platform's search needs at least one term without '*' in the query")
    return widened


def to_x(node: Node) -> str:
    return render_boolean(_searchable(node))


def to_reddit(node: Node) -> str:
    return render_boolean(_searchable(node), and_word=" AND ", not_prefix="NOT ")


def to_simple_queries(node: Node) -> list[str]:
    """For platforms without OR (Hacker News, Bluesky, Mastodon): one query per DNF branch."""
    return [" ".join(render_boolean(t) for t in branch) for branch in dnf(_searchable(node))]


@dataclass(frozen=True)
class Brand:
    """What one brand listens for: its query plus optional language and author filters."""

    name: str
    text: str
    query: Node
    languages: frozenset[str] | None = None
    authors_include: frozenset[str] | None = None
    authors_exclude: frozenset[str] = frozenset()

    def accepts(self, text: str, lang: str | None, author: str | None) -> bool:
        """The local filter every platform obeys, whatever its own search returned."""
        if (self.languages is not None and lang is not None and lang != "und"
                and lang.lower() not in self.languages):  # too short to tell: kept
            return False
        who = (author or "").lower().lstrip("@")
        if self.authors_include is not None and who not in self.authors_include:
            return False
        if who and who in self.authors_exclude:
            return False
        return matches(self.query, text)
