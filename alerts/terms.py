"""Top terms: the words that set one group of posts apart from another (spikes, digests).

``top_terms`` ranks words by the log-odds ratio with an informative Dirichlet prior, z-scored
(Monroe, Colaresi & Quinn 2008, "Fightin' Words"): a word in 30 of the window's 200 posts and in
1% of the background's scores high; a word as common in both (the brand's own name) scores about
zero; a rare word is shrunk toward the background instead of topping the list on two mentions.
Counts are document frequencies (a word counts once per post), so one long rant cannot fill the
list. Only the first ``MAX_CHARS`` of each post are read.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

MAX_CHARS = 2000
PRIOR_WEIGHT = 500.0  # α0: how many pseudo-words the background prior is worth
_NOISE = re.compile(r"https?://\S+|www\.\S+|@\w+|&\w+;")
_WORD = re.compile(r"[^\W\d_]{3,}(?:['’][^\W\d_]+)*")

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't down during each even ever every few for from further get gets getting got had hadn't has
hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how
how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's like me more most
much mustn't my myself need no nor not now of off on once one only or other ought our ours
ourselves out over own really same shan't she she'd she'll she's should shouldn't so some still
such than that that's the their theirs them themselves then there there's these they they'd
they'll they're they've this those through to too under until up upon us very via was wasn't we
we'd we'll we're we've were weren't what what's when when's where where's which while who who's
whom why why's will with won't would wouldn't yet you you'd you'll you're you've your yours
yourself yourselves amp com http https rt www yes lol omg im dont cant wont thats ive youre
""".split())


def tokens(text: str) -> set[str]:
    """The distinct words of one post: lower case, no links, mentions or stop words."""
    cleaned = _NOISE.sub(" ", text[:MAX_CHARS].lower())
    return {w.replace("’", "'") for w in _WORD.findall(cleaned)} - STOP_WORDS


def top_terms(
    texts: Iterable[str], background: Iterable[str], *, exclude: Iterable[str] = (),
    limit: int = 8, min_posts: int = 3,
) -> list[str]:
    """Words over-represented in ``texts`` relative to ``background``, best first.

    ``exclude`` drops words (e.g. the brand's name and query terms; phrases are split into
    words); a word must appear in at least ``min_posts`` of ``texts``.
    """
    dropped = {w for phrase in exclude for w in tokens(phrase)}
    fg, bg = _document_frequencies(texts, dropped), _document_frequencies(background, dropped)
    n_fg, n_bg = sum(fg.values()), sum(bg.values())
    if not n_fg:
        return []
    total = n_fg + n_bg
    scored: list[tuple[float, str]] = []
    for word, y_fg in fg.items():
        if y_fg < min_posts:
            continue
        y_bg = bg.get(word, 0)
        alpha = PRIOR_WEIGHT * (y_fg + y_bg) / total
        delta = (_log_odds(y_fg, n_fg, alpha) - _log_odds(y_bg, n_bg, alpha))
        z = delta / math.sqrt(1 / (y_fg + alpha) + 1 / (y_bg + alpha))
        if z > 0:
            scored.append((z, word))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [word for _, word in scored[:limit]]


def _document_frequencies(texts: Iterable[str], dropped: set[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokens(text) - dropped)
    return counts


def _log_odds(count: int, total: int, alpha: float) -> float:
    return math.log((count + alpha) / (total + PRIOR_WEIGHT - count - alpha))
