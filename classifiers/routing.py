"""Score each post with the model configured for its language, and say when none covers it.

A model says which languages it understands with a ``languages`` attribute (a frozenset of
codes; a model without one is taken to understand English only, which is true of most
Hugging Face sentiment models and makes no false promise). ``classifier.models`` maps
languages to models, ``"*"`` naming the one for every other language. A post is
*supported* when the model that scores it was mapped to its language, or understands it, or
the post is ``und`` (too short to tell: the default model scores those, as it always has).
An unsupported post is still scored (by the ``"*"`` model, the best guess there is), but its
prediction says ``language_supported=False`` so nobody reads the guess as understanding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from classifiers.base import Classifier, Prediction

UNDETERMINED = "und"
ANY = "*"
ENGLISH_ONLY = frozenset({"en"})


def languages_of(model: Classifier) -> frozenset[str]:
    """The languages ``model`` says it understands (English when it says nothing)."""
    return frozenset(getattr(model, "languages", ENGLISH_ONLY))


class LanguageRouter:
    """A classifier over classifiers: posts grouped by language, each group scored by its model.

    ``name``/``version`` identify the whole routing (a score is redone when any routed model
    or the map changes); each prediction's ``scored_by`` names the model that made it. With a
    single model the router takes that model's name and version, so scores stored before
    routing existed stay current.
    """

    def __init__(self, routes: Mapping[str, Classifier], *, name: str | None = None,
                 detect: Callable[[str], str] | None = None) -> None:
        if ANY not in routes:
            raise ValueError("a language map needs a '*' model for every other language")
        self.routes = dict(routes)
        self.fallback = self.routes[ANY]
        self._detect = detect
        models = {id(m): m for m in self.routes.values()}
        if len(models) == 1:
            self.name, self.version = self.fallback.name, self.fallback.version
        else:
            spec = "|".join(f"{lang}={m.name}@{m.version}" for lang, m in sorted(self.routes.items()))
            self.name = name or self.fallback.name
            # readable where it matters (the English model's version, backend suffix included)
            # and changed by any other model or map entry (the hash)
            english = self.routes.get("en", self.fallback).version
            self.version = f"{english}+langs.{hashlib.sha256(spec.encode()).hexdigest()[:8]}"
        self.languages = frozenset(
            {lang for lang in self.routes if lang != ANY} | languages_of(self.fallback))
        english = self.routes.get("en", self.fallback)
        embed = getattr(english, "embed", None)
        if callable(embed):  # incidents compare posts in one vector space: the English model's
            self.embed: Callable[[Sequence[str]], Any] = embed

    def model_for(self, language: str) -> tuple[Classifier, bool]:
        """The model that scores ``language`` and whether it understands it."""
        model = self.routes.get(language)
        if model is not None:
            return model, True
        if language == UNDETERMINED:
            return self.routes.get("en", self.fallback), True
        return self.fallback, language in languages_of(self.fallback)

    def predict(self, texts: Sequence[str],
                languages: Sequence[str | None] | None = None) -> list[Prediction]:
        """One prediction per text, in order, each carrying its language, whether it was
        understood and which model made it. ``languages`` missing (or an item None): detected."""
        langs = [self._language(t, languages[i] if languages is not None else None)
                 for i, t in enumerate(texts)]
        groups: dict[int, tuple[Classifier, list[int]]] = {}
        supported: list[bool] = []
        routed: dict[str, tuple[Classifier, bool]] = {}  # once per language, not per post
        for i, lang in enumerate(langs):
            if lang not in routed:
                routed[lang] = self.model_for(lang)
            model, ok = routed[lang]
            groups.setdefault(id(model), (model, []))[1].append(i)
            supported.append(ok)
        out: list[Prediction | None] = [None] * len(texts)
        for model, indexes in groups.values():
            group = [texts[i] for i in indexes]
            # a model that reads languages (the multilingual one's per-language n-grams)
            made = (model.predict(group, [langs[i] for i in indexes])  # type: ignore[call-arg]
                    if getattr(model, "takes_languages", False) else model.predict(group))
            by = f"{model.name} {model.version}"
            for i, p in zip(indexes, made, strict=True):  # not dataclasses.replace: 3x dearer
                out[i] = Prediction(p.sentiment, p.probabilities, p.urgency, langs[i],
                                    supported[i], by)
        return [p for p in out if p is not None]

    def _language(self, text: str, given: str | None) -> str:
        """``given``, else the ``detect`` the router was built with (the caller's detector:
        classifiers import nothing from the layers above), else undetermined."""
        if given:
            return given
        return self._detect(text) if self._detect is not None else UNDETERMINED
