"""Every post's language: the platform's tag, normalised, else detected offline (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from listener.core.language import (
    UNDETERMINED,
    detect,
    language_of,
    platform_language,
    with_languages,
)
from listener.core.models import Page, Post
from listener.core.query import Brand, parse
from listener.sources.collect import collect, pages_within
from storage import db as store

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(("tag", "code"), [
    ("en", "en"), ("pt-BR", "pt"), ("zh-Hant-TW", "zh"), ("EN", "en"), ("es_419", "es"),
    ("fil", "fil"), ("und", None), ("qme", None), ("zxx", None), ("", None), (None, None),
    ("not a tag", None), ("e", None),
])
def test_platform_tags_become_bare_codes_or_nothing(tag: str | None, code: str | None) -> None:
    assert platform_language(tag) == code


@pytest.mark.parametrize(("text", "code"), [
    ("Acme Cloud no funciona desde esta mañana, necesito ayuda por favor", "es"),
    ("Mein Konto ist gesperrt und niemand antwortet auf meine Anfragen", "de"),
    ("Je n'arrive plus à me connecter à mon compte depuis hier soir", "fr"),
    ("Não consigo entrar na minha conta, diz que a senha está errada", "pt"),
    ("Non riesco più ad accedere al mio account, la password è sbagliata", "it"),
    ("لا أستطيع الدخول إلى حسابي منذ الصباح، أرجو المساعدة", "ar"),
    ("मेरा खाता सुबह से बंद है, कृपया मदद करें", "hi"),
    ("my order never arrived and nobody answers the phone", "en"),
])
def test_detection_names_the_language_of_a_tweet(text: str, code: str) -> None:
    assert detect(text) == code


@pytest.mark.parametrize("text", ["ok!!", "lol", "@acme http://t.co/abcdefgh #fail 😡😡", ""])
def test_too_few_letters_is_undetermined(text: str) -> None:
    """Names, links and hashtags say nothing about the language and are not counted."""
    assert detect(text) == UNDETERMINED


def test_the_platforms_tag_wins_and_posts_without_one_are_detected() -> None:
    tagged = Post("x", "1", "Acme Cloud no funciona desde esta mañana", NOW, lang="pt-BR")
    bare = Post("x", "2", "Acme Cloud no funciona desde esta mañana", NOW)
    content_free = Post("x", "3", "Acme Cloud ist seit heute Morgen ausgefallen", NOW, lang="qme")
    assert [language_of(p) for p in (tagged, bare, content_free)] == ["pt", "es", "de"]
    page = with_languages(Page([tagged, bare, content_free], cursor=7))
    assert [p.lang for p in page.posts] == ["pt", "es", "de"] and page.cursor == 7


class _Spanish:
    """A source: one page of posts without language tags, as the file source gives them."""

    name, type = "imports", "file"

    def fetch(self, cursor: object):
        yield Page([Post("file", "1", "Acme no funciona desde esta mañana, ayuda", NOW),
                    Post("file", "2", "Acme stopped working this morning, help me", NOW),
                    Post("file", "3", "Acme!!", NOW)], cursor={"line": 3})


def test_collect_stores_each_posts_language_before_brand_filters_read_it(tmp_path: Path) -> None:
    """A brand limited to Spanish keeps the Spanish post and the one too short to tell."""
    db = store.open_db(tmp_path / "l.db")
    spanish = Brand("acme", "acme", parse("acme"), languages=frozenset({"es"}))
    assert collect(db, _Spanish(), lambda: NOW, brands=[spanish]) == 2
    assert {r["platform_id"]: r["lang"] for r in db.query("SELECT platform_id, lang FROM posts")} \
        == {"1": "es", "3": "und"}


def test_every_page_a_source_yields_passes_through_detection() -> None:
    pages = list(pages_within(_Spanish(), _Spanish().fetch(None), 5.0))
    assert [p.lang for p in pages[0].posts] == ["es", "en", "und"]
