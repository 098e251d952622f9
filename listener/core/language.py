"""The language of every post: the platform's own tag when it gives one, else detected offline.

Detection uses py3langid (a maintained fork of langid.py: a naive-Bayes model over byte
n-grams for ~140 languages (we let it choose among ~70) that ships inside the package, 10,000 tweets/s on one core, a few
MB of memory). lingua-language-detector was measured too (``bench/language_detection.py``):
about as accurate on UMSAB's tweets (±2 points a language), but 1.4 GB of memory and 30× slower
with every language loaded, which a daemon scoring thousands of posts a minute cannot afford.

A tweet is short and mixes in names, links and hashtags, so the guess is made on the words
alone, and only when there are enough letters; otherwise the post is ``und`` (undetermined, as
BCP 47 says), which the default model scores. No confidence floor: the model spreads its
probability over ~70 languages, so on tweets any floor that catches a wrong guess throws away
more right ones (floor 0.3: Portuguese 90.7 → 86.7 % correct; 0.7: → 64.8 %; bench).
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from typing import Any

from listener.core.models import Page, Post

UNDETERMINED = "und"
MIN_LETTERS = 12  # below this a tweet's language is a coin toss ("ok!!", "lol", a name)
# X's tags for posts with no linguistic content (media only, hashtags only, cashtags, emoji)
# and the BCP 47 "no language" codes: the platform says nothing about the language
_NO_LANGUAGE = {"und", "zxx", "mul", "mis", "qme", "qam", "qct", "qht", "qst", "art"}
_TAG = re.compile(r"^([a-z]{2,3})(?:[-_][a-z0-9]{1,8})*$")
_NOISE = re.compile(r"(?:https?://|www\.)\S+|[@#$]\w+|&\w+;", re.IGNORECASE)

# The languages detection chooses among: those written on social media by millions, which
# py3langid knows (~70 of its 140). Left out: languages whose short texts look like English
# tweets to a byte n-gram model (Nigerian Pidgin, Luxembourgish, Bikol, Latin, Esperanto,
# Frisian, Javanese …): with them, 4.6 % of TweetEval's English tweets were called something
# else; without, 2.3 %, and every UMSAB language is detected as well or better (bench).
CANDIDATES = (
    "af am ar az be bg bn bs ca cs cy da de el en es et eu fa fi fr ga gl gu he hi hr hu hy id"
    " is it ja ka kk km kn ko lt lv mk ml mn mr ms my ne nl no pa pl ps pt ro ru si sk sl sq sr"
    " sv sw ta te th tl tr uk ur uz vi zh zu"
).split()

# A text that is nearly as likely English as its best guess is English: the language most
# brand posts are in, and the one the English model scores best. With this margin (in
# py3langid's log-probability units) 0.8 % of TweetEval's English tweets are called another
# language instead of 2.3 %, at the cost of 0.6 points of German on UMSAB (bench).
ENGLISH_MARGIN = 5.0

_identifier: Any = None
_identifier_lock = threading.Lock()


def platform_language(tag: str | None) -> str | None:
    """A platform's language tag as a bare lower-case code ("pt-BR" → "pt"), or None when it
    names no language (missing, malformed, or one of X's content-free tags)."""
    if not tag:
        return None
    match = _TAG.match(tag.strip().lower())
    if match is None or match.group(1) in _NO_LANGUAGE:
        return None
    return match.group(1)


def detect(text: str) -> str:
    """The language of ``text`` as py3langid's code (ISO 639-1 where one exists), or
    :data:`UNDETERMINED` when it has too few letters to tell."""
    words = _NOISE.sub(" ", text)
    if sum(ch.isalpha() for ch in words) < MIN_LETTERS:
        return UNDETERMINED
    ranked = _model().rank(words)
    best, score = ranked[0]
    if best != "en" and score - dict(ranked)["en"] <= ENGLISH_MARGIN:
        return "en"
    return str(best)


def language_of(post: Post) -> str:
    """The platform's tag when it names a language, else the detected one."""
    return platform_language(post.lang) or detect(post.text)


def with_languages(page: Page) -> Page:
    """``page`` with every post's ``lang`` set (the platform's, normalised, or detected): the
    brands' ``languages`` filters, the rules and the classifier's routing all read it."""
    posts = []
    changed = False
    for post in page.posts:
        language = language_of(post)
        if language != post.lang:
            post = replace(post, lang=language)
            changed = True
        posts.append(post)
    return replace(page, posts=posts) if changed else page


def _model() -> Any:
    """py3langid's identifier, loaded once per process (a quarter of a second) on first use."""
    global _identifier
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
            identifier.set_languages(CANDIDATES)
            _identifier = identifier
        return _identifier
