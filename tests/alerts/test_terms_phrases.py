"""Issue 18 #2: top terms are phrases, with every language's stop words left out.

Before, a post was a bag of single words with an English stop list: the overview's top terms
read "back", "give", "since", and German or Spanish complaints listed "mein", "und", "por".
"""

from __future__ import annotations

from stop_words import get_stop_words

from alerts.terms import KEEP, phrases, ranked_terms, runs, stop_words, top_terms

COMPLAINTS = [
    "I was charged twice for my order, since Monday nobody answers. Give me my money back!",
    "Charged twice again?! Please give my money back #{n}",
    "@AcmeCloud you charged twice on my card since the update, want it back {n}",
    "charged twice for one month. since when is that ok https://t.co/{n}",
]
GERMAN = [
    "Ich wurde doppelt abgebucht und niemand antwortet mir seit Tagen! Wo ist mein Geld? {n}",
    "Schon wieder doppelt abgebucht, ich will mein Geld zurück, das ist eine Frechheit {n}",
    "Die App stürzt ab und dann wurde doppelt abgebucht. Geld zurück bitte! {n}",
]
SPANISH = [
    "Me cobraron dos veces y nadie responde, quiero mi reembolso ya {n}",
    "Otra vez me cobraron dos veces por el mismo pedido, esto es una estafa {n}",
    "La aplicación no funciona y además me cobraron dos veces. ¿Dónde está mi reembolso? {n}",
]
EVERYDAY = [
    "Love the new dashboard, great work team {n}",
    "Does the new plan include exports? {n}",
    "Moving our team over next week, excited {n}",
    "Die neue Version gefällt mir sehr gut {n}",
    "Me encanta la nueva versión, gracias {n}",
]


def _texts(templates: list[str], times: int) -> list[str]:
    return [t.format(n=n) for n in range(times) for t in templates]


def test_runs_end_at_stop_words_punctuation_links_and_mentions() -> None:
    assert runs("I was charged twice, since Monday: give me my money back!") == [
        ["charged", "twice"], ["monday"], ["money"]]
    assert runs("@acme refund please https://x.example/a refund now") == [["refund"], ["refund"]]
    assert runs("login-page broken 404 again") == [["login", "page", "broken"]]
    assert runs("Acme app broken", frozenset({"acme"})) == [["app", "broken"]]
    assert phrases("charged twice for one app login error") == {
        "charged", "twice", "charged twice", "app", "login", "error", "app login", "login error",
        "app login error"}


def test_words_with_combining_marks_stay_whole() -> None:
    """Devanagari vowel signs and Arabic letters: Python's \\w alone would split "पैसा"."""
    assert {"पैसा", "वापस"} <= {word for run in runs("मेरा पैसा वापस करो") for word in run}
    assert any("طلبي" in run for run in runs("لم يصل طلبي حتى الآن"))


def test_every_language_of_the_model_has_its_stop_words_loaded_once() -> None:
    words = stop_words()
    assert words is stop_words()  # one set per process
    for lang, sample in (("en", "since"), ("de", "und"), ("fr", "nous"), ("es", "porque"),
                         ("it", "della"), ("pt", "não"), ("ar", "الذي"), ("hi", "इसके")):
        assert sample in get_stop_words(lang) and sample in words, (lang, sample)
    assert "twice" in KEEP and "twice" not in words  # filler to the lists, a complaint to us


def test_phrases_not_single_words_and_no_stop_words_in_any_language() -> None:
    texts = _texts(COMPLAINTS, 8) + _texts(GERMAN, 8) + _texts(SPANISH, 8)
    background = _texts(EVERYDAY, 40)
    terms = top_terms(texts, background, exclude=["acme"], limit=15)
    assert "charged twice" in terms[:3]
    assert not {"charged", "twice"} & set(terms)  # the phrase stands for both words
    assert any("doppelt abgebucht" in t for t in terms) and "cobraron" in terms
    assert not {"back", "give", "since"} & set(terms)
    german_spanish = set(get_stop_words("de")) | set(get_stop_words("es"))
    for term in terms:
        assert not set(term.split()) & german_spanish, term


def test_a_word_mostly_used_elsewhere_keeps_its_own_place() -> None:
    """"refund" is in 30 posts, each of its phrases in 10: no phrase covers the word, while
    "refund requested" covers "requested" (all of its posts)."""
    texts = [f"refund {word} {n}" for word in ("requested", "denied", "twice")
             for n in range(10)]
    background = [f"great team, lovely day {n}" for n in range(100)]
    ranked = ranked_terms(texts, background, min_posts=3)
    shown = [t.text for t in ranked]
    assert shown[0] == "refund" and ranked[0].posts == 30
    assert {"refund requested", "refund denied", "refund twice"} <= set(shown)
    assert not {"requested", "denied", "twice"} & set(shown)


def test_top_terms_keeps_its_signature_for_reports() -> None:
    assert top_terms([], ["anything"]) == []
    texts = [f"server outage in paris {n}" for n in range(5)]
    background = [f"lovely weather in rome {n}" for n in range(50)]
    assert top_terms(texts, background, min_posts=6) == []
    assert top_terms(texts, background) == ["server outage", "paris"]  # "in" ends the run
    assert top_terms(["refund"] * 5, []) == []  # one word, nothing to compare with: no news
