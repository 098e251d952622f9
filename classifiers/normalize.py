"""Tweet normalisation the way TweetEval-style models expect it.

Pure functions, no model imports: the same normalisation runs at training time
(``classifiers.train``) and at scoring time (``classifiers.transformer``), and the settings
used for training are stored with the trained heads so the two can never drift apart.

What changes and why:

* ``@name`` → ``@user``: user names carry no sentiment but are many and rare, and TweetEval's
  validation set ships already anonymised this way, so train and real posts must match it.
* links (``http://…``, ``https://…``, ``www.…``) → ``http``: same reason (TweetEval convention).
* HTML entities (``&amp;``, ``&gt;``) are decoded: some SemEval files keep them, others not.
* runs of white space (tabs, newlines) become one space.
* emoji and hashtags are kept; optionally the ``#`` is dropped so ``#fail`` reads as ``fail``.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass
from typing import Any

_MENTION = re.compile(r"(?<![\w@])@\w+")
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)\S+", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<![\w#&])#(\w)")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class NormalizeSettings:
    """Which optional steps run; stored in the heads' JSON so scoring repeats training exactly."""

    users: bool = True
    links: bool = True
    unescape_html: bool = True
    strip_hash: bool = False

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalizeSettings:
        """Build from JSON; unknown keys are an error so a newer artifact is never half-read."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown normalisation settings: {sorted(unknown)}")
        return cls(**{key: bool(value) for key, value in data.items()})


DEFAULT_SETTINGS = NormalizeSettings()


def normalize_text(text: str, settings: NormalizeSettings = DEFAULT_SETTINGS) -> str:
    """Return ``text`` normalised for the encoder (see the module docstring for the steps).

    Each pattern runs only on a text that can hold a match (``in`` tests in C, a tenth of a
    regex scan): on a GPU this function is a third of the CPU's work per post. The tests are
    exact: no character matches h, t, p, w, ``:``, ``/`` or ``.`` under IGNORECASE other than
    those whose ``lower()`` is that letter. Spaces are joined by ``str.split`` (the same
    Unicode white space as ``\\s``, four times faster), and not at all in a printable text
    without two spaces in a row or at either end (every other white space character is not
    printable; on TweetEval's tweets 3.3–3.4 µs a tweet instead of 3.7–4.3); ``tests/classifiers/
    test_normalize.py`` holds both against the patterns alone.
    """
    if settings.unescape_html:
        text = html.unescape(text)
    if settings.links:
        lowered = text.lower()
        if "http" in lowered or "www." in lowered:
            text = _URL.sub("http", text)
    if settings.users and "@" in text:
        text = _MENTION.sub("@user", text)
    if settings.strip_hash and "#" in text:
        text = _HASHTAG.sub(r"\1", text)
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text  # already single-spaced: the only white space a printable text holds is " "
    return " ".join(text.split())


def normalize_texts(texts: list[str], settings: NormalizeSettings = DEFAULT_SETTINGS) -> list[str]:
    """Normalise a batch; a convenience so callers need not write the comprehension."""
    return [normalize_text(text, settings) for text in texts]
