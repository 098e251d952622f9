"""Incident verbs of storage/incidents.py that read posts, on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlite_utils import Database

from listener.core.models import Page, Post
from storage import db as store
from storage.incidents import member_texts

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_member_texts_are_the_texts_of_the_posts_asked_for(db: Database) -> None:
    posts = [Post("x", str(i), f"the app is down {i}", NOW, brand="acme") for i in range(4)]
    store.store_page(db, "src", Page(posts=posts), NOW)
    ids = [r["id"] for r in db.query("SELECT id FROM posts ORDER BY id")]
    assert sorted(member_texts(db, [ids[3], ids[1]])) == ["the app is down 1",
                                                          "the app is down 3"]
    assert member_texts(db, [ids[0], 10_000]) == ["the app is down 0"]
    assert member_texts(db, []) == []
