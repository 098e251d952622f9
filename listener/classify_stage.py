"""The classify stage: score every post the configured model version has not scored yet.

Apart from :mod:`listener.pipeline` (which wires the stages into a runtime) because it is the
one stage whose speed decides how much a deployment can watch: it reads posts, runs the model
and writes scores, and with other workers on the database it claims its batches first
(:mod:`storage.claims`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from classifiers.base import Classifier
from classifiers.routing import LanguageRouter
from listener.core import instruments
from listener.core.models import Clock, Score
from listener.workers import LEASE_SECONDS
from storage import claims
from storage import db as store


def classify(
    db: Database, classifier: LanguageRouter, clock: Clock, *, batch_size: int = 256,
    stop: threading.Event | None = None, on_batch: Callable[[int], None] | None = None,
    owner: str | None = None,
) -> int:
    """Score every post this model version has not scored yet, each with the model for its
    language; ``on_batch(scored so far)`` after each saved batch feeds a terminal's progress
    line (thousands of posts take half a minute). With ``owner`` (other workers share the
    database) each batch is claimed first (:mod:`storage.claims`) and released once saved."""
    done = 0
    name, version = classifier.name, classifier.version
    while not (stop and stop.is_set()):
        posts = (claims.posts_to_score(db, name, version, batch_size, owner, clock(),
                                       LEASE_SECONDS)
                 if owner is not None else store.posts_to_score(db, name, version, batch_size))
        if not posts:
            break
        with instruments.CLASSIFIER_BATCH.time():
            # posts stored before languages were detected have none: the router detects them
            predictions = classifier.predict([p.text for p in posts], [p.lang for p in posts])
        scores = [
            (post.id, _score(p, classifier), None)
            for post, p in zip(posts, predictions, strict=True)
        ]
        done += store.save_scores(db, scores, clock())
        if owner is not None:
            claims.release_scored(db, name, version, [p.id for p in posts], owner)
        if on_batch is not None:
            on_batch(done)
    return done


def _score(p: Any, classifier: Classifier) -> Score:
    probs = p.probabilities
    return Score(
        sentiment=p.sentiment, p_negative=probs["negative"], p_neutral=probs["neutral"],
        p_positive=probs["positive"], urgency=p.urgency, model=classifier.name,
        model_version=classifier.version, lang=p.language,
        language_supported=p.language_supported, scored_by=p.scored_by,
    )
