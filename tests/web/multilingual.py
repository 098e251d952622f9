"""Posts in several languages added to a dashboard database (issue 15), through the storage
verbs the daemon uses: some scored by a model that understands their language, some by one that
does not (``language_supported`` False: their sentiment is a guess and a person must read them).

Separate from ``tests.web.seed`` so the seeded figures other tests check stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import outbox
from tests.web.seed import NOW

MULTILINGUAL_MODEL = "multilingual-e5 2da1897347e2"
DEFAULT_MODEL = "default 37ebe04e3245+onnx-int8.2"
# platform id → (text, language, sentiment, urgency, understood, the model that scored it)
POSTS = {
    "ml-es": ("Pedí un reembolso y mañana hará un mes sin respuesta", "es", "negative", 0.8,
              True, MULTILINGUAL_MODEL),
    "ml-es2": ("El pedido llegó roto, hasta manana no contestan", "es", "negative", 0.7, True,
               MULTILINGUAL_MODEL),
    "ml-de": ("Ich will mein Geld zurück, der Support antwortet nicht", "de", "negative", 0.9,
              True, MULTILINGUAL_MODEL),
    "ml-fr": ("Le café de l'appli est en panne depuis hier", "fr", "negative", 0.6, True,
              MULTILINGUAL_MODEL),
    "ml-sw": ("Nimelipishwa mara mbili na hakuna anayejibu", "sw", "positive", 0.1, False,
              DEFAULT_MODEL),
    "ml-ar": ("لم يصل طلبي حتى الآن وأريد استرداد أموالي", "ar", "neutral", 0.2, False,
              DEFAULT_MODEL),
    "ml-hi": ("मेरा पैसा वापस करो, दो बार कटा", "hi", "negative", 0.7, True, MULTILINGUAL_MODEL),
    "ml-und": ("ugh!!! 😡😡", "und", "negative", 0.6, True, DEFAULT_MODEL),
}


@dataclass(frozen=True)
class Multilingual:
    """Post ids by platform id, and the alert raised on the Swahili post."""

    ids: dict[str, int]
    alert: str


def add_multilingual(path: Path, when: datetime = NOW - timedelta(hours=3)) -> Multilingual:
    """Add :data:`POSTS` (brand acme, source x-main) to the database at ``path``, each scored
    as it says, and one alert on the post no model understood."""
    db = store.open_db(path)
    posts = [Post(platform="x", platform_id=pid, text=text, created_at=when - timedelta(minutes=i),
                  source="x-main", brand="acme", lang=lang, author=f"ml{i}",
                  author_followers=300, url=f"https://x.example/status/{pid}")
             for i, (pid, (text, lang, *_)) in enumerate(POSTS.items())]
    store.store_page(db, "x-main", Page(posts=posts), NOW)
    ids = {r[0]: r[1] for r in db.execute(
        "SELECT platform_id, id FROM posts WHERE platform_id LIKE 'ml-%'")}
    scores = [(ids[pid], Score(sentiment, 0.8 if sentiment == "negative" else 0.1, 0.1,
                               0.8 if sentiment == "positive" else 0.1, urgency, "routed", "7",
                               lang=lang, language_supported=understood, scored_by=by), None)
              for pid, (_, lang, sentiment, urgency, understood, by) in POSTS.items()]
    store.save_scores(db, scores, NOW)
    sw = ids["ml-sw"]
    score_id = db.execute("SELECT max(id) FROM scores WHERE post_id = ?", [sw]).fetchone()[0]
    alert = outbox.NewAlert(rule="unknown-language", destination="support-slack", post_id=sw,
                            score_id=score_id, post_key="x:ml-sw")
    outbox.enqueue(db, [alert], [], NOW)
    db.close()
    return Multilingual(ids=ids, alert=alert.id)
