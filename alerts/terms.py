"""Top terms: the phrases that set one group of posts apart from another (spikes, digests,
incidents, the dashboard's overview).

A post is read as **runs of content words**: stop words (every language the ``stop-words``
package has, the model's languages among them: ar, en, fr, de, hi, it, pt, es …), punctuation,
numbers, links, mentions and the caller's excluded words (the brand's name and query) end a
run. The candidates are the 1- to 3-word n-grams inside runs, so "I was charged twice, since
Monday" yields "charged", "twice", "charged twice" and "monday", never "twice since". A post
counts once per candidate (document frequency), so one long rant cannot fill the list.

``top_terms`` ranks candidates by the log-odds ratio with an informative Dirichlet prior,
z-scored (Monroe, Colaresi & Quinn 2008, "Fightin' Words"): a phrase in 30 of the window's 200
posts and in 1% of the background's scores high; one as common in both scores about zero; a
rare one is shrunk toward the background instead of topping the list on two mentions. Then a
phrase takes the place of the words inside it when it is in most of their posts
(``PHRASE_COVER``): "charged twice" instead of "charged" and "twice", while a word that is
mostly used elsewhere keeps its own place.

Stop words come from one list for all languages (a post's language is not needed, and a
German complaint quoting an English word reads the same): the union of the package's lists,
minus ``KEEP``, words those lists call filler that customer feedback uses as its subject
("order", "bill", "twice", "working" …), plus social-media noise. A word that is filler in one
language and content in another ("war", "man") is dropped everywhere: a rare loss, against
"die" and "con" topping the list. Scripts written without spaces (Chinese, Japanese, Thai) are
not split into words; their runs are whole clauses, which rarely repeat. Only the first
``MAX_CHARS`` of each post are read.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from stop_words import LANGUAGE_MAPPING, get_stop_words  # type: ignore[import-untyped]

MAX_CHARS = 2000
PRIOR_WEIGHT = 500.0  # α0: how many pseudo-words the background prior is worth
MAX_WORDS = 3  # longest phrase counted
MIN_LETTERS = 3  # shorter words ("tv", "ok") are not terms, and end a run
# posts whose runs and phrases are kept: the overview page and its charts' API read the same
# posts within a second, and the next view mostly the same again (a few MB)
CACHED_POSTS = 4096
SHORTLIST = 20  # ranked phrases per term asked for that may stand in for one another
PHRASE_COVER = 0.75  # a phrase replaces a word (or shorter phrase) in ≥ 75 % of its posts
_NOISE = re.compile(r"https?://\S+|www\.\S+|@\w+|&\w+;")

# words the stop lists call filler that complaints are about (kept as content)
KEEP = frozenset("""
bill billing call computer down email fix free help home microsoft open opened order ordered
orders page pages password problem problems room rooms service stop system test text twice
value web website webpage work worked working works ignored failing kunde cuenta
""".split())
# social-media noise no stop list has
EXTRA_STOP = frozenset("""
amp rt lol omg lmao smh tbh imo idk pls plz thx dont cant wont im ive youre thats isnt
""".split())


@cache
def stop_words() -> frozenset[str]:
    """Every language's stop words, loaded once per process (a few thousand words)."""
    words: set[str] = set(EXTRA_STOP)
    for code in LANGUAGE_MAPPING:
        words.update(_folded(w) for w in get_stop_words(code))
    return frozenset(words - KEEP)


@cache
def _marks() -> str:
    """Combining marks of the Basic Multilingual Plane (Devanagari's vowel signs, Arabic's
    harakat), escaped for a character class: part of a word, though Python's ``\\w`` splits
    "पैसा" in three at them. Listed once per process."""
    return re.escape("".join(chr(c) for c in range(0x300, 0x10000)
                             if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me")))


_ASCII_BREAKS = re.compile(r"[^a-z\s'-]+")  # the same for ASCII text (most posts): faster


@cache
def _breaks() -> re.Pattern[str]:
    """What ends a run: anything but letters, marks, white space, apostrophes and hyphens
    (punctuation, digits, symbols, emoji)."""
    return re.compile(rf"(?:[^\w\s'’\-{_marks()}]|[\d_])+")


def _folded(word: str) -> str:
    return unicodedata.normalize("NFC", word.lower()).replace("’", "'")


def runs(text: str, dropped: frozenset[str] = frozenset()) -> list[list[str]]:
    """The runs of content words of one post, lower case; ``dropped`` words end a run."""
    return [list(run) for run in _runs(text, dropped)]


@lru_cache(maxsize=CACHED_POSTS)
def _runs(text: str, dropped: frozenset[str]) -> tuple[tuple[str, ...], ...]:
    """:func:`runs`, kept for the last ``CACHED_POSTS`` posts read.

    Split first at what ends a run (:func:`_breaks`), then at white space and hyphens ("log-in"
    is "log in"): str.split does the per-word work.
    """
    stops = stop_words()
    cleaned = _NOISE.sub(" | ", text[:MAX_CHARS].lower())
    breaks = _ASCII_BREAKS
    if not cleaned.isascii():
        cleaned = unicodedata.normalize("NFC", cleaned).replace("’", "'")
        breaks = _breaks()
    out: list[tuple[str, ...]] = []
    for segment in breaks.split(cleaned):
        current: list[str] = []
        for raw in segment.replace("-", " ").split():
            word = raw.strip("'")
            if len(word) < MIN_LETTERS or word in stops or word in dropped:
                if current:
                    out.append(tuple(current))
                    current = []
            else:
                current.append(word)
        if current:
            out.append(tuple(current))
    return tuple(out)


@lru_cache(maxsize=CACHED_POSTS)
def phrases(text: str, dropped: frozenset[str] = frozenset()) -> frozenset[str]:
    """The distinct 1- to ``MAX_WORDS``-word phrases inside the post's runs (kept for the last
    ``CACHED_POSTS`` posts read)."""
    found: set[str] = set()
    for run in _runs(text, dropped):
        found.update(run)
        if len(run) > 1:  # MAX_WORDS = 3, spelt out: the overview reads thousands of posts
            pairs = [f"{a} {b}" for a, b in zip(run, run[1:], strict=False)]
            found.update(pairs)
            found.update(f"{a} {b}" for a, b in zip(pairs, run[2:], strict=False))
    return frozenset(found)


def excluded_words(exclude: Iterable[str]) -> frozenset[str]:
    """The words of ``exclude`` (brand names, query terms, phrases split into words)."""
    return frozenset(word for phrase in exclude for run in runs(phrase) for word in run) | \
        frozenset(_folded(w).strip("'") for phrase in exclude for w in phrase.split())


def document_frequencies(texts: Iterable[str], exclude: Iterable[str] = ()) -> Counter[str]:
    """In how many of the texts each phrase appears (once per post)."""
    dropped = excluded_words(exclude)
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(phrases(text, dropped))
    return counts


def posts_using(terms: Sequence[str], texts: Iterable[str], exclude: Iterable[str] = ()
                ) -> Counter[str]:
    """In how many of the texts each of ``terms`` appears, as :func:`phrases` would find it,
    without listing every phrase of every text: a term's words in a row inside one run."""
    dropped = excluded_words(exclude)
    counts: Counter[str] = Counter()
    for text in texts:
        padded = "".join(f"| {' '.join(run)} |" for run in _runs(text, dropped))
        counts.update(term for term in terms if f" {term} " in padded)
    return counts


@dataclass(frozen=True)
class Term:
    """A ranked phrase: its z-score and in how many foreground posts it appears."""

    text: str
    z: float
    posts: int


def ranked_terms(
    texts: Iterable[str], background: Iterable[str], *, exclude: Iterable[str] = (),
    limit: int = 8, min_posts: int = 3,
) -> list[Term]:
    """Phrases over-represented in ``texts`` relative to ``background``, best first, each
    phrase in place of the words it covers (module docstring)."""
    words = tuple(exclude)
    fg, bg = document_frequencies(texts, words), document_frequencies(background, words)
    scored = _scored(fg, bg, min_posts)[:limit * SHORTLIST]
    best = {term.text: term for term in scored}
    shown: dict[str, Term] = {}
    cover = _covering(scored, fg)
    for term in scored:
        text = term.text
        while text in cover:
            text = cover[text]
        shown.setdefault(text, best[text])
        if len(shown) == limit:
            break
    return list(shown.values())


def top_terms(
    texts: Iterable[str], background: Iterable[str], *, exclude: Iterable[str] = (),
    limit: int = 8, min_posts: int = 3,
) -> list[str]:
    """The phrases of :func:`ranked_terms`, as text: what spike, digest and incident reports
    list. ``exclude`` drops words (the brand's name, query terms; phrases are split into
    words); a phrase must appear in at least ``min_posts`` of ``texts``."""
    return [term.text for term in ranked_terms(texts, background, exclude=exclude,
                                               limit=limit, min_posts=min_posts)]


def _scored(fg: Counter[str], bg: Counter[str], min_posts: int) -> list[Term]:
    """Fightin' Words z of every phrase in ``min_posts``+ foreground posts, z > 0, best first
    (numpy: a thousand posts hold tens of thousands of phrases)."""
    n_fg, n_bg = sum(fg.values()), sum(bg.values())
    kept = [(phrase, y) for phrase, y in fg.items() if y >= min_posts]
    if not n_fg or not kept:
        return []
    y_fg = np.array([y for _, y in kept], dtype=float)
    y_bg = np.array([bg.get(phrase, 0) for phrase, _ in kept], dtype=float)
    alpha = PRIOR_WEIGHT * (y_fg + y_bg) / (n_fg + n_bg)
    with np.errstate(divide="ignore", invalid="ignore"):  # one phrase, no background: NaN
        delta = _log_odds(y_fg, n_fg, alpha) - _log_odds(y_bg, n_bg, alpha)
        z = delta / np.sqrt(1 / (y_fg + alpha) + 1 / (y_bg + alpha))
    scored = [Term(phrase, float(score), y) for (phrase, y), score in zip(kept, z, strict=True)
              if score > 0]
    scored.sort(key=lambda t: (-t.z, t.text))
    return scored


def _covering(scored: Sequence[Term], fg: Counter[str]) -> dict[str, str]:
    """For each ranked phrase, the longer ranked phrase that stands in for it: one holding it
    that appears in at least ``PHRASE_COVER`` of its posts (the most frequent such one)."""
    ranked = {term.text for term in scored}
    cover: dict[str, str] = {}
    for term in scored:
        words = term.text.split(" ")
        for n in range(1, len(words)):
            for i in range(len(words) - n + 1):
                inner = " ".join(words[i:i + n])
                if inner not in ranked or term.posts < PHRASE_COVER * fg[inner]:
                    continue
                known = cover.get(inner)
                if known is None or (fg[known], len(known)) < (term.posts, len(term.text)):
                    cover[inner] = term.text
    return cover


def _log_odds(count: np.ndarray, total: int, alpha: np.ndarray) -> np.ndarray:
    odds: np.ndarray = np.log((count + alpha) / (total + PRIOR_WEIGHT - count - alpha))
    return odds
