"""``store_page`` on big pages: PostgreSQL's COPY path (``storage.db._copy_posts``) gives what
SQLite's executemany gives — new-post counts, ids in page order, dedup within the page and
against stored posts, cross-post links, extra brands, rejects, cursor — and a row the database
refuses is rejected alone, the rest stored."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.core.models import Page, Post
from storage import db as store
from storage.engine import POSTGRESQL, Db, dialect
from storage.tx import immediate
from tests.dbrows import count, rows
from tests.pg_server import Server

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=3)
WORDS = ("acme cloud down again support refund order never arrived app crash login broken "
         "love great thanks why still waiting billing charged twice outage").split()


def _post(rng: random.Random, n: int, **kw: Any) -> Post:
    text = kw.pop("text", None) or " ".join(rng.choice(WORDS) for _ in range(12)) + f" #{n}"
    fields: dict[str, Any] = {
        "source": "bulk", "brand": "acme", "author": f"user{n % 400}", "lang": "en",
        "author_followers": rng.randint(0, 10**6), "url": f"https://x.example/{n}",
        "raw": {"id": n, "m": {"likes": n % 13}}, "thread": f"t{n % 50}"}
    fields.update(kw)
    return Post(platform=fields.pop("platform", "x"), platform_id=str(n), text=text,
                created_at=fields.pop("created_at", START + timedelta(seconds=n)), **fields)


def pages() -> list[Page]:
    """2,000 posts, then a page of 5,000: 20 % repeats (half of stored posts, half of posts
    earlier in the same page), 5 % cross-posts (the same author's text on another platform
    minutes later), every tenth post about a second brand too."""
    rng = random.Random(17)
    first = [_post(rng, n, also_brands=("globex",) if n % 10 == 0 else ()) for n in range(2000)]
    big: list[Post] = []
    for i in range(5000):
        n = 2000 + i
        roll = rng.random()
        if roll < 0.1:
            big.append(rng.choice(first))
        elif roll < 0.2 and big:
            big.append(rng.choice(big))
        elif roll < 0.25:
            twin = rng.choice(first[-500:] + big[-50:])
            big.append(_post(rng, n, platform="reddit", text=twin.text, author=twin.author,
                             created_at=twin.created_at + timedelta(minutes=5)))
        else:
            big.append(_post(rng, n, also_brands=("globex", "initech") if n % 10 == 0 else ()))
    return [Page(posts=first, cursor={"since": 2000}),
            Page(posts=big, cursor={"since": 7000})]


def _expected_new(pages: list[Page]) -> list[int]:
    seen: set[str] = set()
    counts = []
    for page in pages:
        new = {p.key for p in page.posts} - seen
        seen |= new
        counts.append(len(new))
    return counts


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The page sizes that went through PostgreSQL's COPY path."""
    seen: list[int] = []
    real = store._copy_posts

    def spy(db: Db, page: list[Any]) -> list[int]:
        seen.append(len(page))
        return real(db, page)

    monkeypatch.setattr(store, "_copy_posts", spy)
    yield seen


def test_a_large_page_with_repeats_and_crossposts(any_db: Db, copies: list[int]) -> None:
    batches = pages()
    got = [store.store_page(any_db, "bulk", page, NOW) for page in batches]
    assert got == _expected_new(batches)
    assert count(any_db, "posts") == sum(got)
    assert copies == ([2000, 5000] if dialect(any_db) == POSTGRESQL else [])
    # ids follow the page's order; the first of two repeats is the one stored
    ids = [(r["platform"], r["platform_id"]) for r in rows(any_db, "posts", "id")]
    order: dict[tuple[str, str], None] = {}
    for page in batches:
        for p in page.posts:
            order.setdefault((p.platform, p.platform_id), None)
    assert ids == list(order)
    linked = any_db.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL"
                            ).fetchone()[0]
    assert linked > 200  # the cross-posts, each linked to its author's first post
    extra = count(any_db, "post_extra_brands")
    assert extra == sum(len(p.brands) - 1 for p in order_posts(batches))
    assert store.load_cursor(any_db, "bulk") == {"since": 7000}
    assert count(any_db, "rejects") == 0
    if dialect(any_db) == POSTGRESQL:  # emptied at commit
        assert any_db.execute("SELECT count(*) FROM store_page_rows").fetchone()[0] == 0


def order_posts(batches: list[Page]) -> list[Post]:
    """Each stored post once, the first of its repeats."""
    first: dict[str, Post] = {}
    for page in batches:
        for p in page.posts:
            first.setdefault(p.key, p)
    return list(first.values())


# rows by what they are about, not by id: PostgreSQL's sequences hand out an id to every row
# an INSERT tries, so a repeat (ON CONFLICT DO NOTHING) leaves a gap SQLite's max(id) + 1 has not
_BY_KEY = {
    "posts": "SELECT p.platform, p.platform_id, p.source, p.brand, p.kind, p.url, p.author,"
             " p.author_followers, p.text, p.lang, p.rating, p.created_at, p.collected_at,"
             " p.raw, p.text_hash, p.thread, o.platform, o.platform_id FROM posts p"
             " LEFT JOIN posts o ON o.id = p.duplicate_of ORDER BY p.platform, p.platform_id",
    "post_extra_brands": "SELECT p.platform, p.platform_id, e.brand FROM post_extra_brands e"
                         " JOIN posts p ON p.id = e.post_id ORDER BY 1, 2, 3",
    **{t: f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4"  # noqa: S608
       for t in ("post_hours", "post_days", "post_hours_extra", "post_days_extra")},
    "cursors": "SELECT source, value FROM cursors ORDER BY source",
}


def test_both_engines_store_the_same_rows(tmp_path: Path, pg_server: Server) -> None:
    lite, pg = store.open_db(tmp_path / "bulk.db"), store.open_db(pg_server.new_database())
    try:
        batches = pages()
        for db in (lite, pg):
            assert [store.store_page(db, "bulk", page, NOW) for page in batches] == \
                _expected_new(batches)
        for table, sql in _BY_KEY.items():
            assert pg.execute(sql).fetchall() == [tuple(r) for r in lite.execute(sql)], table
        # the same posts in the same order of ids
        order = "SELECT platform, platform_id FROM posts ORDER BY id"
        assert pg.execute(order).fetchall() == [tuple(r) for r in lite.execute(order)]
    finally:
        lite.close()
        pg.close()


def _with_refused(n: int = 300) -> tuple[Page, Post]:
    rng = random.Random(3)
    posts = [_post(rng, i) for i in range(n)]
    # NOT NULL: refused inside SQL, after the rows before it went in (both engines)
    broken = Post(platform=None, platform_id="bad", text="t", created_at=NOW)  # type: ignore[arg-type]
    posts.insert(n // 2, broken)
    return Page(posts=[*posts, posts[0]], cursor={"since": n}), broken


def test_a_refused_row_on_the_fast_path_is_rejected_alone(any_db: Db, copies: list[int]
                                                          ) -> None:
    store.store_page(any_db, "bulk", Page(posts=[_post(random.Random(1), 10_000)]), NOW)
    page, broken = _with_refused()
    assert store.store_page(any_db, "bulk", page, NOW) == 300
    assert copies == ([302] if dialect(any_db) == POSTGRESQL else [])  # then row by row
    assert count(any_db, "posts") == 301
    [reject] = rows(any_db, "rejects")
    assert reject["location"] == broken.key
    assert "IntegrityError" in reject["reason"] or "NotNullViolation" in reject["reason"]
    assert store.load_cursor(any_db, "bulk") == {"since": 300}
    # the rollups count each stored post once: nothing of the failed COPY is left
    assert any_db.execute("SELECT sum(n) FROM post_hours").fetchone()[0] == 301


def test_values_only_postgresql_refuses_fail_the_copy_then_that_row_alone(
    pg_server: Server, copies: list[int],
) -> None:
    db = store.open_db(pg_server.new_database())
    try:
        rng = random.Random(5)
        posts = [_post(rng, i) for i in range(200)]
        nul = _post(rng, 900, text="a NUL \x00 PostgreSQL text cannot hold")  # refused by the server
        odd = _post(rng, 901)
        object.__setattr__(odd, "author_followers", "many")  # past Post's repairs: COPY's dump
        page = Page(posts=[*posts[:50], nul, *posts[50:100], odd, *posts[100:]],
                    cursor={"n": 1})
        assert store.store_page(db, "bulk", page, NOW) == 200
        assert copies == [202]
        assert sorted(r["location"] for r in rows(db, "rejects")) == [nul.key, odd.key]
        assert count(db, "posts") == 200 and store.load_cursor(db, "bulk") == {"n": 1}
    finally:
        db.close()


def test_pages_inside_a_callers_transaction_are_stored_row_by_row_alike(
    any_db: Db, copies: list[int],
) -> None:
    rng = random.Random(9)
    first = [_post(rng, i) for i in range(100)]
    second = [*first[50:], *(_post(rng, i) for i in range(100, 200))]
    with immediate(any_db):  # the temporary table would still hold the first page's rows
        assert store.store_page(any_db, "bulk", Page(posts=first), NOW) == 100
        assert store.store_page(any_db, "bulk", Page(posts=second), NOW) == 100
    assert copies == [] and count(any_db, "posts") == 200


def test_small_pages_use_executemany(any_db: Db, copies: list[int]) -> None:
    rng = random.Random(11)
    small = [_post(rng, i) for i in range(store.COPY_MIN_ROWS - 1)]
    assert store.store_page(any_db, "bulk", Page(posts=small), NOW) == len(small)
    big = [_post(rng, i) for i in range(100, 100 + store.COPY_MIN_ROWS)]
    assert store.store_page(any_db, "bulk", Page(posts=big), NOW) == len(big)
    assert copies == ([store.COPY_MIN_ROWS] if dialect(any_db) == POSTGRESQL else [])


def test_ingest_bench_with_several_writers_stores_what_one_writer_stores(
        pg_server: Server) -> None:
    """bench/ingest.py --writers: collect workers storing the same pages at once, through
    separate connections, keep dedup and cross-post links exact (and the bench cannot rot)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(repo / "bench" / "ingest.py"), "--postgresql", "--url",
         pg_server.url, "--posts", "3000", "--batch", "250", "--writers", "1", "3",
         "--deal", "blocks"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    table = [line.split() for line in done.stdout.splitlines()
             if line.split()[:2] in (["blocks", "1"], ["blocks", "3"])]
    assert [row[1] for row in table] == ["1", "3"]
    one, three = table
    assert one[4] == three[4] and int(one[4].replace(",", "")) > 2000  # new posts
    assert one[5] == three[5] and int(one[5].replace(",", "")) > 0  # cross-posts linked
