"""The classifier interface. Torch is never imported here: only model modules import it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

SENTIMENT_LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")


class Prediction(NamedTuple):
    """One text's scores. ``probabilities`` has exactly the keys of :data:`SENTIMENT_LABELS`.
    A named tuple (made twice a post: by the model, then by the router): a quarter of a frozen
    dataclass's cost, as for the stored score."""

    sentiment: str
    probabilities: dict[str, float]
    urgency: float  # 0..1: probability that the post needs a reply from the brand
    # set by classifiers.routing.LanguageRouter: the language the text was scored as, whether
    # the model that scored it understands that language, and that model's "name version"
    language: str | None = None
    language_supported: bool = True
    scored_by: str | None = None


class Classifier(Protocol):
    """Loaded once per process, then called with batches of raw post texts."""

    name: str  # e.g. "default" or a Hugging Face id; stored with every score
    version: str  # changes whenever the weights change, so trends never mix models

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score ``texts`` (any length, any order); returns one Prediction per text, same order."""
        ...

    # Optional: ``embed(self, texts: Sequence[str]) -> numpy.ndarray`` returns one unit-length
    # float32 sentence vector per text (the encoder's mean over the last layer's tokens), for
    # grouping posts that say the same thing (incidents). Models without it are compared by
    # their words instead (:func:`alerts.similarity.hashed_ngrams`).
