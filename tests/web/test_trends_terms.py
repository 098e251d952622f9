"""Issue 18 #2 on the overview: the terms card lists phrases, in every language's words.

Before, the card counted single words against an English stop list: "back", "give" and "since"
topped it, "charged" and "twice" came apart, and German or Spanish filler ("mein", "und",
"por") counted as news.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from stop_words import get_stop_words

from alerts.terms import KEEP
from listener.core.models import Page, Post, Score
from storage import db as store
from tests.web.conftest import make_app
from tests.web.seed import NOW

NEGATIVE = {
    "en": ["I was charged twice for my order, since Monday nobody answers. Give me my money back",
           "Acme charged twice again, give my money back since it is your mistake",
           "charged twice on my card since the update, want it back",
           "app keeps crashing since the update, give me back my money"],
    "de": ["Ich wurde doppelt abgebucht und niemand antwortet mir, wo ist mein Geld",
           "Schon wieder doppelt abgebucht, ich will mein Geld zurück",
           "Die App stürzt ab und dann wurde doppelt abgebucht, Geld zurück bitte"],
    "es": ["Me cobraron dos veces y nadie responde, quiero mi reembolso ya",
           "Otra vez me cobraron dos veces por el mismo pedido, quiero mi reembolso",
           "La aplicación no funciona y además me cobraron dos veces"],
}
OTHER = ["Love the new dashboard, great work team, since the update it is back to fast",
         "Does the new plan include exports? Give it a try",
         "Moving our team over next week, back soon",
         "Die neue Version gefällt mir sehr gut und ist schnell",
         "Me encanta la nueva versión, gracias por todo"]


def _stored(path: Path) -> None:
    posts, n = [], 0
    for copies, texts, sentiment in ((6, NEGATIVE, "negative"), (12, {"xx": OTHER}, "positive")):
        for lang, lines in texts.items():
            for text in lines:
                for copy in range(copies):
                    n += 1
                    posts.append((Post("x", f"p{n}", f"{text} #{copy}",
                                       NOW - timedelta(hours=1 + n % 100), source="x-main",
                                       brand="acme", lang=lang if lang != "xx" else "en"),
                                  sentiment))
    db = store.open_db(path)
    store.store_page(db, "import", Page(posts=[p for p, _ in posts]), NOW)
    ids = dict(db.execute("SELECT platform_id, id FROM posts").fetchall())
    store.save_scores(db, [(ids[p.platform_id], Score(s, 0.9 if s == "negative" else 0.05, 0.05,
                                                      0.05, 0.6, "m", "1"), p.lang)
                           for p, s in posts], NOW)
    db.close()


def test_the_terms_card_shows_phrases_without_stop_words(tmp_path: Path) -> None:
    _stored(tmp_path / "t.db")
    client = make_app(tmp_path / "t.db").test_client()
    terms = [t["term"] for t in client.get("/api/overview?range=7d").get_json()["terms"]]
    assert "charged twice" in terms[:3]  # a phrase, in place of "charged" and "twice"
    assert not {"charged", "twice", "back", "give", "since", "acme"} & set(terms)
    assert any("doppelt abgebucht" in t for t in terms) and "cobraron" in terms
    assert "geld zurück" in terms and "reembolso" in terms
    filler = {w for lang in ("en", "de", "es") for w in get_stop_words(lang)} - KEEP
    for term in terms:
        assert not set(term.split()) & filler, term
    html = client.get("/?range=7d").get_data(as_text=True)
    assert ">charged twice</a>" in html
    assert "q=%22charged+twice%22" in html  # the link searches the phrase in the queue
    found = client.get("/api/queue?range=7d&status=all&sentiment=negative"
                       "&q=%22charged+twice%22").get_json()
    assert found["total"] == 18  # three texts, six copies each
